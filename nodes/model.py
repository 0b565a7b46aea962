"""HueShiftModelLoader: a HueShift checkpoint from ComfyUI's models/hueshift folder, or a shipped one.

Memory follows ComfyUI's model management (as core's CLIP vision and upscale models do): the
weights are loaded on ComfyUI's offload device and wrapped in a ``ModelPatcher``; a node that
samples asks ``model_management.load_models_gpu`` to move them to the torch device, and ComfyUI
moves them back or drops them when another model needs the room (or on "Unload models"). The
loader keeps only a weak reference: a second load of the same file reuses the model while
ComfyUI (its node cache) still holds it, and nothing of it stays once ComfyUI lets it go.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

from ..hueshift_core.errors import CheckpointError
from ..hueshift_core.model.checkpoint import ColorModel, default_model_path, load_model
from .comfy_compat import ModelPatcher, folder_paths, io, model_management
from .common import CATEGORY, MODEL, PRECISIONS, device_and_dtype

FOLDER = "hueshift"
DEFAULT = "default (shipped)"
SHIPPED_DIR = str(default_model_path().parent)


@dataclass(eq=False)
class HueShiftModel:
    """What travels on a HUESHIFT_MODEL socket: the model and the patcher ComfyUI manages it by."""

    model: ColorModel
    patcher: ModelPatcher

    def for_sampling(self) -> ColorModel:
        """Ask ComfyUI to put the weights on its torch device (making room if needed); the model."""
        model_management.load_models_gpu([self.patcher])
        return self.model


_LOADED: weakref.WeakValueDictionary[tuple, HueShiftModel] = weakref.WeakValueDictionary()


def load(path: str, precision: str = "auto") -> HueShiftModel:
    """The model in ``path`` at ``precision``, loaded on the offload device, or the one already loaded."""
    device, dtype = device_and_dtype(precision)
    key = (os.path.realpath(path), os.path.getmtime(path), str(device), dtype)
    if (found := _LOADED.get(key)) is not None:
        return found
    offload = model_management.unet_offload_device()
    model = load_model(path, offload, dtype)
    size = sum(p.numel() * p.element_size() for p in model.net.parameters())
    loaded = HueShiftModel(model, ModelPatcher(model.net, load_device=device, offload_device=offload, size=size))
    _LOADED[key] = loaded
    return loaded


def register_model_folder() -> None:
    """Make ``models/hueshift`` (first) and the pack's shipped weights ComfyUI's "hueshift" model folders.

    Idempotent; keeps entries users add with extra_model_paths.yaml.
    """
    path = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER] = ([path], {".safetensors"})
    else:
        folder_paths.add_model_folder_path(FOLDER, path, is_default=True)
        folder_paths.folder_names_and_paths[FOLDER][1].add(".safetensors")
    folder_paths.add_model_folder_path(FOLDER, SHIPPED_DIR)


def model_names() -> list[str]:
    """The dropdown: the default model first, then every .safetensors file in the hueshift folders
    (users' models and the shipped ones)."""
    register_model_folder()
    return [DEFAULT] + [f for f in folder_paths.get_filename_list(FOLDER) if f.lower().endswith(".safetensors")]


def model_path(name: str) -> str:
    """The file behind a dropdown entry; a :class:`CheckpointError` naming the folder if there is none."""
    if name == DEFAULT:
        path = default_model_path()
        if not path.is_file():
            raise CheckpointError(f"the shipped model {path} is missing: reinstall ComfyUI-HueShift")
        return str(path)
    if name not in model_names():
        folders = ", ".join(folder_paths.get_folder_paths(FOLDER))
        raise CheckpointError(f"model '{name}' is not in the HueShift model folder ({folders}): "
                              "put the .safetensors file there and refresh, or pick another model")
    return folder_paths.get_full_path_or_raise(FOLDER, name)


class ModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftModelLoader",
            display_name="HueShift Model Loader",
            category=CATEGORY,
            description="Loads a HueShift colorization model (.safetensors). ComfyUI manages its memory: it is "
                        "moved to the GPU to sample and can be unloaded like any other model.",
            inputs=[
                io.Combo.Input("model_name", options=model_names(), default=DEFAULT,
                               tooltip="A HueShift checkpoint from ComfyUI's models/hueshift folder or shipped with "
                                       "the node pack; 'default (shipped)' is the pack's current default model."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="Weight precision. auto: fp16 (or bf16) on a GPU that supports it, fp32 on "
                                       "the CPU (half precision is never used on the CPU)."),
            ],
            outputs=[MODEL.Output(display_name="model", tooltip="The loaded model.")],
        )

    @classmethod
    def validate_inputs(cls, model_name: str) -> bool | str:
        try:
            model_path(model_name)
        except CheckpointError as err:
            return str(err)
        return True

    @classmethod
    def execute(cls, model_name: str, precision: str) -> io.NodeOutput:
        return io.NodeOutput(load(model_path(model_name), precision))


__all__ = ["DEFAULT", "HueShiftModel", "ModelLoader", "load", "model_names", "model_path", "register_model_folder"]
