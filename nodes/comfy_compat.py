"""The one place HueShift's nodes touch ComfyUI.

Inside a ComfyUI server this module re-exports the real ``comfy_api.latest`` (``io``, ``ui``,
``ComfyExtension``), ``folder_paths``, ``comfy.model_management``, ``comfy.utils.ProgressBar``
and the VIDEO implementations. Without ComfyUI (CI, a plain ``pytest``) it falls back to the
minimal stand-ins in :mod:`._standins`, which copy only the surface the nodes use so their
schemas can be built and ``execute`` called directly. ``IN_COMFYUI`` says which one is live;
only a real server (``tests/test_comfyui_server.py``) proves the real thing.
"""

from __future__ import annotations

try:  # inside ComfyUI
    import folder_paths
    from comfy import model_management
    from comfy.utils import ProgressBar
    from comfy_api.latest import ComfyExtension, InputImpl, Types, io, ui

    VideoFromFile, VideoFromComponents = InputImpl.VideoFromFile, InputImpl.VideoFromComponents
    VideoComponents = Types.VideoComponents

    IN_COMFYUI = True
except ImportError:  # CI and library users: no ComfyUI on the path
    from ._standins import (
        ComfyExtension,
        ProgressBar,
        VideoComponents,
        VideoFromComponents,
        VideoFromFile,
        folder_paths,
        io,
        model_management,
        ui,
    )

    IN_COMFYUI = False

__all__ = ["IN_COMFYUI", "ComfyExtension", "ProgressBar", "VideoComponents", "VideoFromComponents", "VideoFromFile",
           "folder_paths", "io", "model_management", "ui"]
