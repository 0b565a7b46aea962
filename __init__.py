"""ComfyUI-HueShift: ComfyUI's entry point only. The nodes (and torch) load when ComfyUI asks for them."""

from __future__ import annotations

import logging
import sys

MINIMUM_COMFYUI = "0.3.64"


def _missing_api() -> str | None:
    """Inside a ComfyUI too old for the V3 node API (``comfy_api.latest``): what is missing, else None.

    Outside ComfyUI (a library user, the tests importing this file) nothing is checked.
    """
    if "folder_paths" not in sys.modules:
        return None
    try:
        import comfy_api.latest  # noqa: F401 - already imported by any ComfyUI that has it
    except ImportError:
        return "comfy_api.latest"
    return None


if (_missing := _missing_api()) is not None:
    logging.getLogger("HueShift").error(
        "ComfyUI-HueShift needs ComfyUI >= %s (its V3 node API, %s, is missing here): update ComfyUI; "
        "no HueShift nodes were loaded.", MINIMUM_COMFYUI, _missing)


async def comfy_entrypoint():
    from .nodes import HueShiftExtension

    return HueShiftExtension()
