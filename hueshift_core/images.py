"""Photos: colour for whole images and frame batches, and reading image files.

The stages, each a pure function over tensors:

* :func:`frames_to_lab` / :func:`downsample_l` / :func:`merge_to_rgb` — RGB to L and ab, L to the model's
  working size, L and ab back to RGB (:func:`check_frames` refuses NaN and 0-255 frames);
* :func:`sample_frames_ab` — each frame's colour at the working size
  (:func:`~hueshift_core.model.sampling.colour_ab`: the colour prior, diffusion anchored on it at `variety > 0`);
* :func:`upscale_merge` — that colour upscaled guided by the full-resolution L, merged with it;
* :func:`colorize_frames` — full-resolution RGB frames in, colorized RGB frames out;
* :func:`colorize_image` — one image (numpy, any size, grey or colour) in and out;
* :func:`colorize_batch` — same-size images in one model batch, each as it would come out alone;
* :func:`read_image` — an image file -> uint8 RGB or grey, upright (EXIF), 16-bit scaled to 8,
  decompression bombs refused.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .hints import FrameColour, HintPoint, rasterise, reference_from_image, to_working
from .model.checkpoint import ColorModel, get_model
from .model.lab import denormalize_ab, lab_to_rgb, normalize_l, rgb_to_lab
from .model.diffusion import Callback, Sampler
from .model.sampling import SampleOptions, closer_l, colour_ab, make_noise, working_size
from .model.upscale import Upscale, upscale_ab
from .outputs import check_input_file

RANGE_SLACK = 1e-3  # frames a little outside [0, 1] (resampling overshoot) are clamped, not refused


def check_rgb_batch(frames: torch.Tensor) -> None:
    """The one shape check of this module: RGB (or grey as RGB) frames ``[B, 3, H, W]``."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be RGB [B, 3, H, W], got {shape}")


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Refuse what would silently give a wrong colour: not a float tensor, NaN or infinite values, values
    outside [0, 1] (0-255 frames, say). Returns ``frames`` clamped to [0, 1]."""
    if not isinstance(frames, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor, got {type(frames).__name__}")
    if not frames.is_floating_point():
        raise InputError(f"{name} must be float in [0, 1], got {frames.dtype}; convert uint8 with x.float() / 255")
    if frames.numel() == 0:
        raise InputError(f"{name} is empty: {tuple(frames.shape)}")
    finite = torch.isfinite(frames)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{name} contain {bad} NaN or infinite value(s): fix the node or code that made them")
    lo, hi = float(frames.amin()), float(frames.amax())
    if hi > 1.0 + RANGE_SLACK or lo < -RANGE_SLACK:
        hint = " (they look like 0-255 values: divide by 255)" if hi > 1.5 else ""
        raise InputError(f"{name} must be in [0, 1], got values from {lo:.4g} to {hi:.4g}{hint}")
    return frames.clamp(0.0, 1.0) if hi > 1.0 or lo < 0.0 else frames


def frames_to_lab(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB ``[B, 3, H, W]`` in [0, 1] -> (L ``[B, 1, H, W]`` in [0, 100], ab ``[B, 2, H, W]``).

    NaN/infinite values and values outside [0, 1] raise :class:`InputError` (see :func:`check_frames`)."""
    check_rgb_batch(frames)
    lab = rgb_to_lab(check_frames(frames))
    return lab[:, :1], lab[:, 1:]


def downsample_l(l_full: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """L ``[B, 1, H, W]`` in [0, 100] -> normalised L ``[B, 1, h, w]`` in [-1, 1] (area filter)."""
    return normalize_l(F.interpolate(l_full, size=size, mode="area"))


def merge_to_rgb(l_full: torch.Tensor, ab_full: torch.Tensor) -> torch.Tensor:
    """(L [0, 100] ``[B, 1, H, W]``, ab CIELAB ``[B, 2, H, W]``) -> RGB ``[B, 3, H, W]`` in [0, 1]."""
    return lab_to_rgb(torch.cat([l_full, ab_full.to(l_full.dtype)], dim=1))


@torch.no_grad()
def sample_frames_ab(model: ColorModel, frames: torch.Tensor, options: SampleOptions = SampleOptions(), *,
                     generator: torch.Generator | None = None, callback: Callback | None = None,
                     hints: FrameColour | None = None) -> torch.Tensor:
    """Sample each frame's colour independently: RGB (or grey) ``[B, 3, H, W]`` in [0, 1] ->
    CIELAB ab ``[B, 2, h, w]`` at the working size, in batches of ``options.batch_size``.

    ``hints`` (:class:`~hueshift_core.hints.FrameColour`, any size of the frames' aspect) are the user's
    colours for every frame: hints go to the colour prior (a model with one: the default); a reference
    is the frames' colour as it stands."""
    check_rgb_batch(frames)
    if not isinstance(options, SampleOptions):
        raise InputError(f"options must be a SampleOptions, got {type(options).__name__}")
    check_frames(frames)
    g = generator if generator is not None else torch.Generator().manual_seed(options.seed)
    size = working_size(*frames.shape[-2:], options.short_side, model.info.config.multiple, options.max_long_side)
    hint_ab = hint_mask = None
    if hints is not None:
        if hints.reference:
            ab = torch.from_numpy(hints.resized(*size).ab).permute(2, 0, 1)[None]
            return ab.expand(frames.shape[0], -1, -1, -1).clone()
        if model.prior is None:
            raise InputError(f"colour hints need a model with a colour prior (hueshift-v3 or later, the default); "
                             f"{Path(model.path).name or 'this model'} has none")
        hint_ab, hint_mask = to_working(hints, size)
    out = []
    for i in range(0, frames.shape[0], options.batch_size):
        l_full, _ = frames_to_lab(frames[i:i + options.batch_size].float())
        n = l_full.shape[0]
        ab = colour_ab(model, downsample_l(l_full, size), options, generator=g, callback=callback,
                       hint_ab=None if hint_ab is None else hint_ab.expand(n, -1, -1, -1),
                       hint_mask=None if hint_mask is None else hint_mask.expand(n, -1, -1, -1),
                       l_prior=closer_l(model, l_full, size))
        out.append(denormalize_ab(ab.float().cpu()))
    return torch.cat(out)


@torch.no_grad()
def upscale_merge(frames: torch.Tensor, ab: torch.Tensor, upscale: Upscale | str = Upscale.GUIDED, *,
                  callback: Callback | None = None) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` (whose L is kept) + CIELAB ab ``[B, 2, h, w]`` -> RGB ``[B, 3, H, W]`` in [0, 1],
    the chroma upscaled guided by each frame's L; one frame at a time (``callback(i, B)`` after each)."""
    check_rgb_batch(frames)
    if not isinstance(ab, torch.Tensor) or ab.dim() != 4 or ab.shape[1] != 2 or ab.shape[0] != frames.shape[0]:
        shape = tuple(ab.shape) if isinstance(ab, torch.Tensor) else type(ab).__name__
        raise InputError(f"chroma must be [{frames.shape[0]}, 2, h, w] for {frames.shape[0]} frame(s), got {shape}")
    if not bool(torch.isfinite(ab).all()):
        raise InputError("chroma contains NaN or infinite values: fix the node or code that made it")
    try:
        upscale = Upscale(upscale)
    except ValueError:
        raise InputError(f"upscale must be one of {[u.value for u in Upscale]}, got {upscale!r}") from None
    check_frames(frames)
    out = []
    for i in range(frames.shape[0]):
        l_full, _ = frames_to_lab(frames[i:i + 1].float())
        out.append(merge_to_rgb(l_full, upscale_ab(ab[i:i + 1], l_full, upscale)))
        if callback is not None:
            callback(i + 1, frames.shape[0])
    return torch.cat(out)


def colorize_frames(model: ColorModel, frames: torch.Tensor, options: SampleOptions = SampleOptions(), *,
                    upscale: Upscale | str = Upscale.GUIDED, generator: torch.Generator | None = None,
                    callback: Callback | None = None, hints: FrameColour | None = None) -> torch.Tensor:
    """Colorize RGB (or grey) frames ``[B, 3, H, W]`` in [0, 1] independently -> ``[B, 3, H, W]`` in [0, 1].

    Only L of the input is used. Frames are sampled in batches of ``options.batch_size``; ``hints``: the
    user's colours for every frame (:func:`sample_frames_ab`).
    """
    ab = sample_frames_ab(model, frames, options, generator=generator, callback=callback, hints=hints)
    return upscale_merge(frames, ab, upscale)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W]`` / ``[H, W, 1|3|4]`` (RGB/RGBA) -> float ``[1, 3, H, W]`` in [0, 1]."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = f"{image.dtype} array" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"image must be a uint8 numpy array, got {got}; convert floats in [0, 1] with "
                         "(x * 255).round().astype(np.uint8)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got {image.shape}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image is empty: {image.shape}")
    image = image[..., :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """float ``[1, 3, H, W]`` / ``[3, H, W]`` in [0, 1] -> uint8 ``[H, W, 3]``."""
    x = x[0] if x.dim() == 4 else x
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def colorize_image(image: np.ndarray, model: ColorModel | str | Path | None = None, *,
                   options: SampleOptions = SampleOptions(), upscale: Upscale | str = Upscale.GUIDED,
                   hints: FrameColour | list[HintPoint] | None = None,
                   reference: np.ndarray | None = None) -> np.ndarray:
    """Colorize one image: uint8 RGB ``[H, W, 3]`` (or grey ``[H, W]``) -> uint8 RGB ``[H, W, 3]``.

    A colour input is turned grey first (only its L is used). ``model`` is a loaded model,
    a checkpoint path, or ``None`` for the shipped default. ``hints``: the user's colours, as points
    (:class:`~hueshift_core.hints.HintPoint`) or a :class:`~hueshift_core.hints.FrameColour`;
    ``reference``: a colour image (uint8 RGB, the same aspect) whose colour the output takes.
    """
    if not isinstance(options, SampleOptions):
        raise InputError(f"options must be a SampleOptions, got {type(options).__name__}")
    x = image_to_tensor(image)
    if not isinstance(model, ColorModel):
        model = get_model(model)
    h, w = x.shape[-2:]
    if reference is not None:
        if hints is not None:
            raise InputError("give hints or a reference, not both: a reference already sets every pixel's colour")
        hints = reference_from_image(reference, h, w)
    elif isinstance(hints, list):
        hints = rasterise(hints, h, w)
    return tensor_to_image(colorize_frames(model, x, options, upscale=upscale, hints=hints))


MAX_PIXELS = 8192 * 8192  # larger images (or headers that claim to be: decompression bombs) are refused


def _header_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or GIF header, without decoding; None if not found."""
    b = data[:65536].tobytes()
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        return struct.unpack(">II", b[16:24])
    if b[:2] == b"BM" and len(b) >= 26:
        w, h = struct.unpack("<ii", b[18:26])
        return abs(w), abs(h)
    if b[:4] == b"GIF8" and len(b) >= 10:
        return struct.unpack("<HH", b[6:10])
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", b[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", b[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def read_image(path: Path) -> np.ndarray:
    """An image file -> uint8 RGB ``[H, W, 3]`` or grey ``[H, W]``, upright (EXIF orientation applied)."""
    path = check_input_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise InputError(f"cannot read image {path}: {err.strerror or err}") from None
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(f"{path} claims to be {size[0]}x{size[1]} pixels: images above {MAX_PIXELS // 10**6} "
                         "megapixels are refused (a damaged or hostile file?); downscale it first")
    try:
        # ANYCOLOR|ANYDEPTH (not UNCHANGED): EXIF orientation is applied, as viewers show the photo
        img = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise InputError(f"{path} is not a readable image (PNG, JPEG, BMP, WebP, TIFF): it is damaged, cut "
                         "short or another kind of file")
    if img.size == 0 or img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(f"{path} is {img.shape[1]}x{img.shape[0]} pixels: give 1 to {MAX_PIXELS // 10**6} "
                         "megapixels")
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        if not np.isfinite(img).all():
            raise InputError(f"{path} holds NaN or infinite pixel values: it cannot be shown as an image")
        top = 65535.0 if data.dtype == np.uint16 or img.max() > 255 else max(1.0, float(img.max()))
        img = (np.clip(img, 0, None) / top * 255).clip(0, 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def batchable(options: SampleOptions) -> bool:
    """Samplers whose result depends only on the starting noise (which a batch keeps per image)."""
    return options.sampler is Sampler.DPMPP_2M or (options.sampler is Sampler.DDIM and options.eta == 0)


def colorize_batch(images: list[np.ndarray], model, options: SampleOptions = SampleOptions(),
                   upscale: Upscale | str = Upscale.GUIDED, hints: FrameColour | None = None) -> list[np.ndarray]:
    """Colorize same-size uint8 images (``[H, W]`` or ``[H, W, 3]``) in one model batch -> uint8 RGB each.

    Every image starts from the noise it would get alone (``options.seed``), so with ddim (eta 0) or
    dpmpp_2m the colours equal :func:`~hueshift_core.images.colorize_image`'s within float rounding;
    other samplers colorize one image at a time. ``hints``: the user's colours, the same for every image."""
    if len(images) == 1 or not batchable(options) or (hints is not None and hints.reference):
        return [colorize_image(im, model, options=options, upscale=upscale, hints=hints) for im in images]
    x = torch.cat([image_to_tensor(im) for im in images])
    l_full, _ = frames_to_lab(x)
    size = working_size(*x.shape[-2:], options.short_side, model.info.config.multiple, options.max_long_side)
    noise = torch.cat([make_noise((1, 2, *size), torch.Generator().manual_seed(options.seed)) for _ in images])
    hint_ab = hint_mask = None
    if hints is not None:
        hint_ab, hint_mask = (t.expand(len(images), -1, -1, -1) for t in to_working(hints, size))
    ab = colour_ab(model, downsample_l(l_full, size), options, generator=torch.Generator().manual_seed(options.seed),
                   noise=noise, hint_ab=hint_ab, hint_mask=hint_mask, l_prior=closer_l(model, l_full, size))
    rgb = upscale_merge(x, denormalize_ab(ab.float().cpu()), upscale)
    return [tensor_to_image(f) for f in rgb]
