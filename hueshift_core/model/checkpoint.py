"""Safetensors checkpoints that describe themselves; nothing is ever unpickled.

The header metadata (string -> string) holds everything a loader needs:

* ``hueshift.format``: ``"1"``;
* ``hueshift.unet_config``: :class:`UNetConfig` as JSON;
* ``hueshift.schedule``, ``hueshift.num_timesteps``, ``hueshift.prediction``;
* ``hueshift.provenance``: JSON (data, steps, batch, hardware, losses...), free form;
* ``hueshift.guidance`` (optional): the classifier-free guidance scale the model is meant to be
  sampled with; present only for models trained with L dropped some of the time;
* ``hueshift.prior_config``, ``hueshift.prior_provenance`` (optional, hueshift-v3 on): a colour prior
  (:mod:`.prior`) stored in the same file, its tensors under ``prior.``, and how it is read:
  ``hueshift.prior_temperature``, ``_balance`` (v3 on), ``_hue``, ``_side`` (v4 on), ``_flip`` (v5 on) —
  :class:`~.prior.PriorDecoding`, whose defaults stand for the fields a file lacks.

Every failure is a :class:`CheckpointError` with a one-line message naming the problem.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import CheckpointError, InputError
from ..outputs import atomic_output
from .diffusion import Prediction, Schedule, make_schedule
from .prior import ColourPrior, PriorConfig, PriorDecoding
from .unet import ColorUNet, UNetConfig

FORMAT_VERSION = "1"
_MAX_HEADER = 100 * 1024 * 1024
MAX_GUIDANCE = 20.0


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint says about itself."""

    config: UNetConfig
    schedule: Schedule
    num_timesteps: int
    prediction: Prediction
    provenance: dict[str, Any] = field(default_factory=dict)
    guidance: float | None = None  # default guidance scale; None: not trained for guidance (scale 1 only)


@dataclass
class ColorModel:
    """A loaded network with its schedule: the object samplers and the pipeline use."""

    net: ColorUNet
    info: ModelInfo
    path: str = ""
    prior: ColourPrior | None = None  # the colour prior sampling is anchored on (hueshift-v3 on)
    prior_decoding: PriorDecoding = PriorDecoding()  # how the prior is read, as shipped (sampling.prior_ab)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return make_schedule(self.info.schedule, self.info.num_timesteps)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], info: ModelInfo,
                    dtype: torch.dtype | None = None, *, prior=None,
                    prior_decoding: PriorDecoding = PriorDecoding(), prior_provenance: dict | None = None) -> None:
    """Write ``state_dict`` and ``info`` to ``path`` atomically (temp file, then rename).

    ``dtype`` (e.g. ``torch.float16``) converts floating-point tensors before saving. ``prior`` (a
    :class:`~.prior.ColourPrior`) is stored beside the UNet, with how it is read and its provenance.
    """
    path = Path(path)
    tensors = {}
    for k, v in state_dict.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    metadata = {
        "hueshift.format": FORMAT_VERSION,
        "hueshift.unet_config": info.config.to_json(),
        "hueshift.schedule": info.schedule.value,
        "hueshift.num_timesteps": str(info.num_timesteps),
        "hueshift.prediction": info.prediction.value,
        "hueshift.provenance": json.dumps(info.provenance, sort_keys=True),
    }
    if info.guidance is not None:
        metadata["hueshift.guidance"] = repr(float(info.guidance))
    if prior is not None:
        tensors.update(prior_tensors(prior, dtype))
        metadata.update(prior_metadata(prior, prior_decoding, prior_provenance))
    with atomic_output(path, "checkpoint", CheckpointError, temp_name=f".{path.name}.tmp-{os.getpid()}") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _sniff(path: Path) -> None:
    """Reject what is obviously not safetensors before any parser sees it."""
    if not path.is_file() and path.exists() and not path.is_dir():
        raise CheckpointError(f"model file {path} is not a regular file (a FIFO or device?): give a .safetensors file")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise CheckpointError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"model path is a folder, not a .safetensors file: {path}") from None
    except OSError as err:
        raise CheckpointError(f"cannot read model file {path}: {err.strerror or err}") from None
    if size == 0:
        raise CheckpointError(f"model file {path} is empty (0 bytes): download or copy it again")
    # a safetensors file: an 8-byte header length (any first byte, 0x80 and "PK" included), then its JSON
    header_next = size >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] <= _MAX_HEADER
    if not header_next and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path} is a pickled PyTorch file, not safetensors; HueShift never unpickles files "
            "(they can run code): use a .safetensors checkpoint"
        )
    if size < 8:
        raise CheckpointError(f"{path} is not a safetensors file (only {size} bytes): it is truncated or corrupt")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER or n + 8 > size or head[8:9] != b"{":
        raise CheckpointError(f"{path} is not a valid safetensors file (bad header): it is truncated or corrupt")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A checkpoint's header metadata alone (no tensor is read)."""
    path = Path(path)
    _sniff(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types; keep one line
        raise CheckpointError(f"{path} is not a valid safetensors file ({str(err).splitlines()[0]})") from None


def read_info(path: str | os.PathLike) -> ModelInfo:
    """Read and validate only the metadata of a checkpoint."""
    return _info_from_metadata(Path(path), read_metadata(path))


def _info_from_metadata(path: Path, meta: dict[str, str]) -> ModelInfo:
    if meta.get("hueshift.format") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a safetensors file but not a HueShift model (no 'hueshift.format' = "
            f"{FORMAT_VERSION!r} in its metadata)"
        )
    try:
        config = UNetConfig.from_json(meta["hueshift.unet_config"])
        schedule = Schedule(meta["hueshift.schedule"])
        num_timesteps = int(meta["hueshift.num_timesteps"])
        prediction = Prediction(meta["hueshift.prediction"])
        provenance = json.loads(meta.get("hueshift.provenance", "{}"))
        guidance = float(meta["hueshift.guidance"]) if "hueshift.guidance" in meta else None
    except KeyError as err:
        raise CheckpointError(f"{path}: metadata field {err.args[0]!r} is missing") from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as err:
        raise CheckpointError(f"{path}: invalid metadata ({str(err).splitlines()[0][:200] if str(err) else type(err).__name__})") from None
    if not 2 <= num_timesteps <= MAX_TIMESTEPS:
        raise CheckpointError(f"{path}: num_timesteps must be 2 to {MAX_TIMESTEPS}, got {num_timesteps}: "
                              "the file is corrupt or not a HueShift model")
    _check_config_size(path, config)
    if not isinstance(provenance, dict):
        raise CheckpointError(f"{path}: invalid metadata (provenance must be a JSON object)")
    if guidance is not None and not 0.0 <= guidance <= MAX_GUIDANCE:
        raise CheckpointError(f"{path}: guidance scale {guidance} outside [0, {MAX_GUIDANCE}]")
    return ModelInfo(config, schedule, num_timesteps, prediction, provenance, guidance)


MAX_TIMESTEPS = 100_000
# Every number in a checkpoint's metadata is bounded before anything is allocated from it.
CONFIG_BOUNDS = {"base_channels": 1024, "num_res_blocks": 16, "head_channels": 4096, "groups": 1024,
                 "extra_cond_channels": 64, "out_channels": 64}
MAX_PARAMETERS = 2_000_000_000  # the shipped model has 6.3 M


def _check_config_size(path: Path, config: UNetConfig) -> None:
    """Refuse a config whose numbers are absurd (a corrupt or hostile file) before a network is built."""
    for name, limit in CONFIG_BOUNDS.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise CheckpointError(f"{path}: model config {name} = {value!r} is outside 0..{limit}: the file is "
                                  "corrupt or not a HueShift model")
    mults = config.channel_mults
    if len(mults) > 8 or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 64 for m in mults):
        raise CheckpointError(f"{path}: model config channel_mults = {str(list(mults))[:60]} is outside 1..64 (at most 8 "
                              "levels): the file is corrupt or not a HueShift model")
    if not (isinstance(config.dropout, (int, float)) and 0.0 <= config.dropout < 1.0):
        raise CheckpointError(f"{path}: model config dropout = {config.dropout!r} is outside [0, 1)")
    # weights of the residual blocks' 3x3 convolutions dominate: an upper estimate of the parameter count
    widest = config.base_channels * max(mults)
    estimate = 2 * 9 * widest * widest * (config.num_res_blocks + 1) * (2 * len(mults) + 1)
    if estimate > MAX_PARAMETERS:
        raise CheckpointError(f"{path}: model config asks for about {estimate:.3g} parameters (more than "
                              f"{MAX_PARAMETERS:.0e}): the file is corrupt or not a HueShift model")


def load_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the raw metadata of any safetensors file (no HueShift checks)."""
    path = Path(path)
    _sniff(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise CheckpointError(f"{path} is not a valid safetensors file ({str(err).splitlines()[0]})") from None
    return tensors, meta


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch.device this machine has, or one clear :class:`InputError`."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device("cpu" if device is None else str(device))
        except (RuntimeError, ValueError, TypeError):
            raise InputError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r}: no CUDA GPU is available here (torch {torch.__version__} sees "
                             "none); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"device {device!r}: Apple's MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise InputError(f"unsupported device {device!r}: use cpu, cuda, cuda:N or mps")
    return dev


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32) -> ColorModel:
    """Load a HueShift checkpoint into an eval-mode :class:`ColorModel` on ``device``."""
    if not isinstance(path, (str, os.PathLike)):
        raise CheckpointError(f"model must be a path to a .safetensors file, got {path!r}")
    path = Path(path)
    device = resolve_device(device)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise CheckpointError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype}")
    info = read_info(path)  # metadata checked and bounded before any tensor is read or allocated
    tensors, meta = load_state(path)
    info = _info_from_metadata(path, meta)
    prior, prior_decoding = _load_prior(path, tensors, meta, device, dtype)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(PRIOR_PREFIX)}
    with torch.device("meta"):  # shapes only: nothing is allocated until the file is known to match
        expected = ColorUNet(info.config).state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]!r})")
        raise CheckpointError(f"{path}: tensors do not match its config: {', '.join(parts)}")
    for k, v in expected.items():
        if tensors[k].shape != v.shape:
            raise CheckpointError(
                f"{path}: tensor {k!r} has shape {tuple(tensors[k].shape)}, config expects {tuple(v.shape)}"
            )
        if not torch.isfinite(tensors[k].float()).all():
            raise CheckpointError(f"{path}: tensor {k!r} contains NaN or infinity: the file is corrupt")
    net = ColorUNet(info.config)
    net.load_state_dict({k: t.float() for k, t in tensors.items()})
    net.eval().requires_grad_(False).to(device=device, dtype=dtype)
    if device.type == "cpu":
        # NHWC convolutions: oneDNN's native layout on the CPU, no reorder around each conv, and the
        # attention's channels land contiguous for the fused kernel. Same outputs within float rounding
        # (tests/test_unet.py); benchmarks/bench_unet.py times both layouts.
        net.to(memory_format=torch.channels_last)
    return ColorModel(net=net, info=info, path=str(path), prior=prior, prior_decoding=prior_decoding)


DEFAULT_MODEL_NAME = "hueshift-v8.safetensors"


def default_model_path() -> Path:
    """The model shipped inside the package (``hueshift_core/weights``)."""
    return Path(__file__).resolve().parent.parent / "weights" / DEFAULT_MODEL_NAME


def shipped_models() -> list[str]:
    """The names of the models shipped inside the package (``hueshift-v1`` ... ), oldest first."""
    names = [f.name[:-len(".safetensors")] for f in default_model_path().parent.glob("hueshift-v*.safetensors")]
    return sorted(names, key=lambda n: int(n[len("hueshift-v"):]) if n[len("hueshift-v"):].isdigit() else 0)


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """``path`` if given (a file, or the name of a shipped model such as ``hueshift-v2``, with or without
    ``.safetensors``), else the shipped default; a clear error if neither exists."""
    if path is not None:
        p = Path(path)
        if not p.exists() and p.parent == Path("."):
            shipped = default_model_path().parent / (p.name if p.suffix == ".safetensors" else f"{p.name}.safetensors")
            if shipped.is_file():
                return shipped
            if not p.suffix:
                raise CheckpointError(f"model {p.name!r}: no such file, and not a shipped model (shipped: "
                                      f"{', '.join(shipped_models()) or 'none'}; hueshift-v3 to v5 are in the "
                                      f"project's git history, see its model card); give a .safetensors file")
        return p
    p = default_model_path()
    if not p.exists():
        raise CheckpointError(
            f"no model given and the default model {p} is not installed: pass --model PATH to a "
            "HueShift .safetensors checkpoint (or reinstall the package)"
        )
    return p


_MODEL_CACHE: dict[tuple[str, str, torch.dtype], ColorModel] = {}


def get_model(path: str | Path | None = None, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> ColorModel:
    """Load (once per process) the model at ``path``, or the shipped default."""
    p = resolve_model_path(path).resolve()
    key = (str(p), str(resolve_device(device)), dtype)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_model(p, device, dtype)
    return _MODEL_CACHE[key]


# ---- the colour prior: tensors under "prior." in the same kind of self-describing file ------------------

PRIOR_PREFIX = "prior."


def prior_metadata(net, decoding: PriorDecoding, provenance: dict | None = None) -> dict[str, str]:
    """The header fields that describe a colour prior stored beside (or without) a UNet: its config, how it
    is read (:class:`~.prior.PriorDecoding`) and its provenance."""
    return {"hueshift.prior_config": net.config.to_json(), **decoding.metadata(),
            "hueshift.prior_provenance": json.dumps(provenance or {}, sort_keys=True)}


def prior_tensors(net, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in net.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point() and "running_var" not in k:
            v = v.to(dtype)
        out[PRIOR_PREFIX + k] = v.contiguous()
    return out


def _load_prior(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str], device: torch.device,
                dtype: torch.dtype) -> tuple[ColourPrior | None, PriorDecoding]:
    """The colour prior stored in a checkpoint (``prior.*`` tensors) and how it is read, or (None, the default)
    when it has none.
    Its config is bounded and every tensor checked against it before anything is loaded."""
    if "hueshift.prior_config" not in meta:
        if any(k.startswith(PRIOR_PREFIX) for k in tensors):
            raise CheckpointError(f"{path}: it holds colour-prior tensors but no 'hueshift.prior_config'")
        return None, PriorDecoding()
    try:  # the config bounded, the decoding settings in range (PriorDecoding checks them)
        config = PriorConfig.from_json(meta["hueshift.prior_config"])
        decoding = PriorDecoding.from_metadata(meta)
    except (InputError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid colour-prior metadata ({str(err).splitlines()[0][:200]})") from None
    with torch.device("meta"):
        expected = ColourPrior(config).state_dict()
    have = {k[len(PRIOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(PRIOR_PREFIX)}
    if "log_weights" not in have and "log_weights" in expected:  # exports from before the weights were kept
        have["log_weights"] = torch.zeros(expected["log_weights"].shape)
    if set(have) != set(expected):
        raise CheckpointError(f"{path}: colour-prior tensors do not match its config "
                              f"({len(set(expected) - set(have))} missing, {len(set(have) - set(expected))} unexpected)")
    for k, v in expected.items():
        if have[k].shape != v.shape:
            raise CheckpointError(f"{path}: colour-prior tensor {k!r} has shape {tuple(have[k].shape)}, "
                                  f"its config expects {tuple(v.shape)}")
        if have[k].is_floating_point() and not torch.isfinite(have[k].float()).all():
            raise CheckpointError(f"{path}: colour-prior tensor {k!r} contains NaN or infinity: the file is corrupt")
    net = ColourPrior(config)
    net.load_state_dict({k: (t.float() if t.is_floating_point() else t) for k, t in have.items()})
    net.eval().requires_grad_(False).to(device=device)
    return net, decoding


def load_prior(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[ColourPrior, PriorDecoding]:
    """The colour prior alone from any HueShift file that holds one (a training export or a model), and how it
    is read."""
    path = Path(path)
    tensors, meta = load_state(path)
    prior, decoding = _load_prior(path, tensors, meta, resolve_device(device), torch.float32)
    if prior is None:
        raise CheckpointError(f"{path} holds no colour prior (hueshift-v3 and later do; v1 and v2 do not)")
    return prior, decoding


def save_prior(path: str | os.PathLike, net, *, decoding: PriorDecoding, provenance: dict | None = None,
               dtype: torch.dtype | None = None) -> None:
    """Write a colour prior alone (a training run's export) atomically."""
    path = Path(path)
    with atomic_output(path, "checkpoint", CheckpointError, temp_name=f".{path.name}.tmp-{os.getpid()}") as tmp:
        save_file(prior_tensors(net, dtype), str(tmp), metadata={
            "hueshift.format": FORMAT_VERSION, **prior_metadata(net, decoding, provenance)})
