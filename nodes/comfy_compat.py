"""The one place HueShift's nodes touch ComfyUI.

It imports the real ComfyUI (``comfy_api.latest``: ``io``, ``ui``, ``ComfyExtension``;
``folder_paths``; ``comfy.model_management``; ``comfy.model_patcher.ModelPatcher``;
``comfy.utils.ProgressBar``; the VIDEO implementations), unconditionally: the pack runs inside
ComfyUI or not at all. A ComfyUI too old for this API is caught earlier, at load time, by the
pack's ``__init__`` (one line in ComfyUI's log). The node tests put fakes under these module
names (``tests/comfy_standins.py``); nothing here knows about them.
"""

from __future__ import annotations

import folder_paths
from comfy import model_management
from comfy.model_patcher import ModelPatcher
from comfy.utils import ProgressBar
from comfy_api.latest import ComfyExtension, InputImpl, Types, io, ui

VideoFromFile, VideoFromComponents = InputImpl.VideoFromFile, InputImpl.VideoFromComponents
VideoComponents = Types.VideoComponents

__all__ = ["ComfyExtension", "ModelPatcher", "ProgressBar", "VideoComponents", "VideoFromComponents",
           "VideoFromFile", "folder_paths", "io", "model_management", "ui"]
