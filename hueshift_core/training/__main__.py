"""``python -m hueshift_core.training ...``: the same as ``hueshift train ...``."""

from .command import main

raise SystemExit(main())
