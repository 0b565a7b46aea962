"""HueShift's ComfyUI nodes: one module per domain, one registration list.

Reach this package only relatively (``from .nodes import ...``): ComfyUI owns a top-level
module named ``nodes``.
"""

from __future__ import annotations

from .colorize import DDPMColorize, LABUpscale
from .comfy_compat import ComfyExtension
from .examples import install_example_inputs
from .hints import ColourHints, ReferenceFrames
from .model import ModelLoader, register_model_folder
from .temporal import Deflicker, KeyframeSelect, Propagate
from .video import ColorizeVideoFile, LoadVideoFrames

NODES = [LoadVideoFrames, KeyframeSelect, ModelLoader, DDPMColorize, Propagate, LABUpscale, Deflicker,
         ColorizeVideoFile, ColourHints, ReferenceFrames]


class HueShiftExtension(ComfyExtension):
    async def get_node_list(self) -> list:
        # before ComfyUI builds the schemas: the model dropdown and the input-file dropdowns read these folders
        register_model_folder()
        install_example_inputs()
        return list(NODES)


__all__ = ["NODES", "HueShiftExtension"]
