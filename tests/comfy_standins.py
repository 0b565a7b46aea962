"""Test fakes for the parts of ComfyUI the nodes use, for node tests run without ComfyUI.

They live here, never in the pack: the pack imports the real ComfyUI unconditionally.
:func:`install` puts them in ``sys.modules`` under ComfyUI's own module names (``folder_paths``,
``comfy.model_management``, ``comfy.model_patcher``, ``comfy.utils``, ``comfy_api.latest``), as
ComfyUI's own unit tests patch ``sys.modules``. Each mirrors the real object's name, signature and
attributes as of ComfyUI 0.3.64 and nothing more: no validation of graphs, no server. A node that
works here but not in a real server is caught by ``tests/test_comfyui_server.py``.
"""

from __future__ import annotations

import mimetypes
import os
import sys
import tempfile
import threading
import types
import weakref
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import torch

# --- comfy_api.latest.io --------------------------------------------------------------------


class _Input:
    def __init__(self, id: str, display_name: str | None = None, optional: bool = False, tooltip: str | None = None,
                 default: Any = None, min: Any = None, max: Any = None, step: Any = None,
                 options: list | None = None, control_after_generate: bool | None = None,
                 upload: Any = None, multiline: bool = False, force_input: bool | None = None,
                 display_mode: Any = None, lazy: bool | None = None, socketless: bool | None = None) -> None:
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.default, self.min, self.max, self.step, self.options = default, min, max, step, options
        self.control_after_generate, self.upload, self.multiline = control_after_generate, upload, multiline
        self.force_input = force_input


class _Output:
    def __init__(self, id: str | None = None, display_name: str | None = None, tooltip: str | None = None,
                 is_output_list: bool = False) -> None:
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _comfytype(io_type: str, widget: bool = False) -> type:
    """A ComfyUI type: ``X.Input(...)``, ``X.Output(...)``, ``X.io_type``."""
    inp = type("Input", (_Input,), {"io_type": io_type, "widget": widget})
    out = type("Output", (_Output,), {"io_type": io_type})
    return type(io_type.title(), (), {"io_type": io_type, "Input": inp, "Output": out})


class UploadType(str, Enum):
    image = "image_upload"
    audio = "audio_upload"
    video = "video_upload"


class FolderType(str, Enum):
    input = "input"
    output = "output"
    temp = "temp"


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


@dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list | None = None
    outputs: list | None = None
    hidden: list | None = None
    description: str = ""
    is_output_node: bool = False
    not_idempotent: bool = False


class NodeOutput:
    def __init__(self, *args: Any, ui: Any = None) -> None:
        self.args, self.ui = args, ui

    @property
    def result(self) -> tuple | None:
        return self.args if self.args else None


class ComfyNode:
    """Classmethods only, as in ComfyUI; ``hidden`` holds the hidden inputs (all None here)."""

    hidden = SimpleNamespace(unique_id=None, prompt=None, extra_pnginfo=None)

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs: Any) -> NodeOutput:
        raise NotImplementedError


def Custom(io_type: str) -> type:
    return _comfytype(io_type)


io = SimpleNamespace(
    ComfyNode=ComfyNode, Schema=Schema, NodeOutput=NodeOutput, Custom=Custom, UploadType=UploadType,
    FolderType=FolderType, Hidden=Hidden,
    Image=_comfytype("IMAGE"), Audio=_comfytype("AUDIO"), Video=_comfytype("VIDEO"), Mask=_comfytype("MASK"),
    Int=_comfytype("INT", True), Float=_comfytype("FLOAT", True), String=_comfytype("STRING", True),
    Boolean=_comfytype("BOOLEAN", True), Combo=_comfytype("COMBO", True),
)

# --- comfy_api.latest.ui ----------------------------------------------------------------------


class SavedResult(dict):
    def __init__(self, filename: str, subfolder: str, type: FolderType) -> None:
        super().__init__(filename=filename, subfolder=subfolder, type=type.value)


class PreviewText:
    def __init__(self, value: str) -> None:
        self.value = value

    def as_dict(self) -> dict:
        return {"text": (self.value,)}


class PreviewVideo:
    def __init__(self, values: list) -> None:
        self.values = values

    def as_dict(self) -> dict:
        return {"images": self.values, "animated": (True,)}


ui = SimpleNamespace(SavedResult=SavedResult, PreviewText=PreviewText, PreviewVideo=PreviewVideo)


class ComfyExtension:
    async def on_load(self) -> None:
        pass

    async def get_node_list(self) -> list:
        raise NotImplementedError


# --- VIDEO (comfy_api.latest.InputImpl / Types) -----------------------------------------------


@dataclass
class VideoComponents:
    images: torch.Tensor
    frame_rate: Fraction
    audio: Any = None
    metadata: dict | None = None


class VideoFromFile:
    def __init__(self, file: str) -> None:
        self.file = file

    def get_stream_source(self) -> str:
        return self.file


class VideoFromComponents:
    def __init__(self, components: VideoComponents) -> None:
        self.components = components

    def get_components(self) -> VideoComponents:
        return self.components


# --- folder_paths -----------------------------------------------------------------------------


class _FolderPaths:
    """``folder_paths`` over a base folder (a temporary one in tests): input/, output/, models/."""

    def __init__(self, base: str) -> None:
        self.set_base(base)

    def set_base(self, base: str) -> None:
        self.base_path = base
        self.models_dir = os.path.join(base, "models")
        self.input_directory = os.path.join(base, "input")
        self.output_directory = os.path.join(base, "output")
        self.folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}

    def set_input_directory(self, path: str) -> None:
        self.input_directory = path

    def set_output_directory(self, path: str) -> None:
        self.output_directory = path

    def get_input_directory(self) -> str:
        return self.input_directory

    def get_output_directory(self) -> str:
        return self.output_directory

    def add_model_folder_path(self, folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
        paths = self.folder_names_and_paths.setdefault(folder_name, ([], set()))[0]
        if full_folder_path not in paths:
            paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)

    def get_folder_paths(self, folder_name: str) -> list[str]:
        return list(self.folder_names_and_paths[folder_name][0])

    def get_filename_list(self, folder_name: str) -> list[str]:
        folders, exts = self.folder_names_and_paths[folder_name]
        out = set()
        for folder in folders:
            for root, _dirs, files in os.walk(folder, followlinks=True):
                for f in files:
                    if not exts or os.path.splitext(f)[1].lower() in exts:
                        out.add(os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/"))
        return sorted(out)

    def get_full_path(self, folder_name: str, filename: str) -> str | None:
        if folder_name not in self.folder_names_and_paths:
            return None
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for folder in self.folder_names_and_paths[folder_name][0]:
            if os.path.isfile(os.path.join(folder, filename)):
                return os.path.join(folder, filename)
        return None

    def get_full_path_or_raise(self, folder_name: str, filename: str) -> str:
        path = self.get_full_path(folder_name, filename)
        if path is None:
            raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
        return path

    @staticmethod
    def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
        return [f for f in files if (mimetypes.guess_type(f, strict=False)[0] or "").split("/")[0] in content_types]


folder_paths = _FolderPaths(os.path.join(tempfile.gettempdir(), "comfyui-standin"))  # tests set their own

# --- comfy.model_management and comfy.utils.ProgressBar ---------------------------------------


class InterruptProcessingException(Exception):
    pass


class _ModelManagement:
    InterruptProcessingException = InterruptProcessingException

    def __init__(self) -> None:
        self._lock, self._interrupt = threading.Lock(), False

    @staticmethod
    def get_torch_device() -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def intermediate_device() -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def unet_offload_device() -> torch.device:
        return torch.device("cpu")

    @staticmethod
    def should_use_fp16(device=None, model_params: int = 0, prioritize_performance: bool = True,
                        manual_cast: bool = False) -> bool:
        return False

    @staticmethod
    def should_use_bf16(device=None, model_params: int = 0, prioritize_performance: bool = True,
                        manual_cast: bool = False) -> bool:
        return False

    @staticmethod
    def soft_empty_cache(force: bool = False) -> None:
        pass

    # The loaded-model list: ComfyUI keeps LoadedModel records holding weak references to patchers.
    current_loaded_models: list = []

    def load_models_gpu(self, models: list, memory_required: int = 0, force_patch_weights: bool = False,
                        minimum_memory_required=None, force_full_load: bool = False) -> None:
        for m in models:
            if not any(r() is m for r in self.current_loaded_models):
                m.model.to(m.load_device)
                self.current_loaded_models.insert(0, weakref.ref(m))

    def loaded_models(self, only_currently_used: bool = False) -> list:
        return [m for m in (r() for r in self.current_loaded_models) if m is not None]

    def unload_all_models(self) -> None:
        for m in self.loaded_models():
            m.model.to(m.offload_device)
        self.current_loaded_models.clear()

    def interrupt_current_processing(self, value: bool = True) -> None:
        with self._lock:
            self._interrupt = value

    def throw_exception_if_processing_interrupted(self) -> None:
        with self._lock:
            if self._interrupt:
                self._interrupt = False
                raise InterruptProcessingException()


model_management = _ModelManagement()


class ModelPatcher:
    """``comfy.model_patcher.ModelPatcher``: a module with the device it runs on and the one it waits on."""

    def __init__(self, model: torch.nn.Module, load_device: torch.device, offload_device: torch.device,
                 size: int = 0, weight_inplace_update: bool = False) -> None:
        self.model, self.load_device, self.offload_device, self.size = model, load_device, offload_device, size


class ProgressBar:
    """Counts updates (tests read ``current``); the real one also reports to the UI and raises on Cancel."""

    def __init__(self, total: int, node_id: str | None = None) -> None:
        self.total, self.current, self.node_id = total, 0, node_id

    def update_absolute(self, value: int, total: int | None = None, preview: Any = None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        model_management.throw_exception_if_processing_interrupted()

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value)


# --- installing them under ComfyUI's module names ----------------------------------------------------------


def modules() -> dict[str, types.ModuleType]:
    """The fakes as modules named like ComfyUI's: what ``install`` puts in ``sys.modules``."""
    def module(name: str, **attrs) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    latest = module("comfy_api.latest", io=io, ui=ui, ComfyExtension=ComfyExtension,
                    InputImpl=SimpleNamespace(VideoFromFile=VideoFromFile, VideoFromComponents=VideoFromComponents),
                    Types=SimpleNamespace(VideoComponents=VideoComponents))
    comfy = module("comfy", model_management=model_management)
    comfy.utils = module("comfy.utils", ProgressBar=ProgressBar)
    comfy.model_patcher = module("comfy.model_patcher", ModelPatcher=ModelPatcher)
    comfy.__path__ = []  # a package, so ``from comfy import model_management`` and ``comfy.utils`` resolve
    return {"folder_paths": folder_paths, "comfy": comfy, "comfy.model_management": model_management,
            "comfy.utils": comfy.utils, "comfy.model_patcher": comfy.model_patcher,
            "comfy_api": module("comfy_api", latest=latest, __path__=[]), "comfy_api.latest": latest}


def install(monkeypatch) -> None:
    """Put the fakes in ``sys.modules`` for the life of ``monkeypatch`` (refuses if a real ComfyUI is loaded)."""
    real = [name for name in ("comfy", "comfy_api", "folder_paths") if name in sys.modules
            and not getattr(sys.modules[name], "_hueshift_standin", False)]
    if real:
        raise RuntimeError(f"a real ComfyUI is already imported ({real}): the stand-ins would hide it")
    for name, mod in modules().items():
        try:
            mod._hueshift_standin = True
        except AttributeError:  # the folder_paths/model_management objects are instances, not modules
            object.__setattr__(mod, "_hueshift_standin", True)
        monkeypatch.setitem(sys.modules, name, mod)
