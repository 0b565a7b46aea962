"""ComfyUI-HueShift: ComfyUI's entry point only. The nodes (and torch) load when ComfyUI asks for them."""

from __future__ import annotations


async def comfy_entrypoint():
    from .nodes import HueShiftExtension

    return HueShiftExtension()
