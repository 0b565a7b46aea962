"""``python -m hueshift_core.cli ...``: the ``hueshift`` command."""

from .commands import main

raise SystemExit(main())
