"""HueShiftModelLoader: a HueShift checkpoint from ComfyUI's models/hueshift folder, or the shipped one."""

from __future__ import annotations

import os

from ..hueshift_core.checkpoint import default_model_path
from ..hueshift_core.colorize import get_model
from ..hueshift_core.errors import CheckpointError
from .comfy_compat import folder_paths, io
from .common import CATEGORY, MODEL, PRECISIONS, device_and_dtype

FOLDER = "hueshift"
DEFAULT = "default (shipped)"


def register_model_folder() -> None:
    """Make ``models/hueshift`` a ComfyUI model folder (idempotent; keeps extra_model_paths.yaml entries)."""
    path = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(FOLDER, path, is_default=True)
        folder_paths.folder_names_and_paths[FOLDER][1].add(".safetensors")
    else:
        folder_paths.folder_names_and_paths[FOLDER] = ([path], {".safetensors"})


def model_names() -> list[str]:
    """The dropdown: the shipped model first, then every .safetensors file in the hueshift folders."""
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
            description="Loads a HueShift colorization model (.safetensors) once and keeps it in memory.",
            inputs=[
                io.Combo.Input("model_name", options=model_names(), default=DEFAULT,
                               tooltip="A HueShift checkpoint from ComfyUI's models/hueshift folder, or the "
                                       "model shipped with the node pack."),
                io.Combo.Input("precision", options=list(PRECISIONS), default="auto",
                               tooltip="Weight precision. auto: fp16 on a GPU that supports it, fp32 on the CPU "
                                       "(half precision is never used on the CPU)."),
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
        device, dtype = device_and_dtype(precision)
        return io.NodeOutput(get_model(model_path(model_name), device, dtype))

