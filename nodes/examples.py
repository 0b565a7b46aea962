"""The bundled workflows' example inputs, put in ComfyUI's input folder so a template runs as shipped.

``workflows/input/`` holds a 16-frame 320x180 grey clip (from DAVIS "camel") and a grey 480x270
photo (DAVIS "dog"); the templates read them as ``hueshift_example.mp4`` / ``.jpg``. A file of
that name already in the input folder is left alone (a user's own, or an earlier copy).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .common import LOG
from .comfy_compat import folder_paths

EXAMPLES = Path(__file__).resolve().parents[1] / "workflows" / "input"
NAMES = ("hueshift_example.mp4", "hueshift_example.jpg")


def install_example_inputs() -> list[str]:
    """Copy each example input missing from ComfyUI's input folder there; the names copied."""
    base = folder_paths.get_input_directory()
    copied = []
    for name in NAMES:
        src, dst = EXAMPLES / name, os.path.join(base, name)
        if os.path.lexists(dst) or not src.is_file():
            continue
        try:
            os.makedirs(base, exist_ok=True)
            shutil.copyfile(src, dst)
            copied.append(name)
        except OSError as err:  # a read-only input folder: the templates then need a file picked by hand
            LOG.warning("HueShift: could not copy the example input %s to %s (%s)", name, base, err)
    if copied:
        LOG.info("HueShift: copied the templates' example inputs to %s: %s", base, ", ".join(copied))
    return copied
