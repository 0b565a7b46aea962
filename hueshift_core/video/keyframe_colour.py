"""Keyframe colour from the diffusion model, as the video path samples it.

:class:`KeyframeColorizer` turns keyframes' uint8 L at the propagation resolution into ab there,
sampled at the working resolution (:class:`~hueshift_core.video.analysis.Sizes`):

* random draws are per shot: :meth:`~KeyframeColorizer.start_shot` seeds a generator from (seed, the
  shot's first frame in the whole video; :func:`shot_generator`), so a shot's colours do not depend on
  what came before it, and a run over a piece of a video that starts at a cut gives the frames a run
  over the whole video gives (what :mod:`hueshift_core.cluster` relies on);
* ``share_noise``: one noise tensor per shot, so the keyframes of a shot start from the same noise;
* later keyframes of a shot start from the colour carried into them, so they agree with the earlier
  keyframes instead of choosing new colours: with a colour prior (hueshift-v3 on) the shot's colour is kept
  where it still tracks (weighted by its chained confidence) and the prior's colour fills the rest; without
  one (v1, v2) diffusion re-noises the carried colour to ``warm_start`` (SDEdit, Meng et al. 2022);
* ``consensus`` (with a prior): the shot's colour where it tracks is the running mean of the prior's views of
  the shot, its keyframes so far, instead of the first keyframe's view alone: the k-th keyframe moves the
  carried colour 1/k of the way to its own view. A shot's colour no longer rests on one frame's guess, and it
  changes less with each keyframe, so it stays steady;
* the user's colours (``user``: :class:`~hueshift_core.hints.FrameColour` by frame index in the whole video):
  a referenced frame takes the reference's colour, a hinted one the prior's colour with those hints; either
  replaces what was carried in, so a later hinted frame of a shot takes over from there.

It is a ``colour`` source for :class:`~hueshift_core.video.segments.SegmentWalker` (call it with a frame, the
colour carried into it and its confidence); :meth:`~KeyframeColorizer.sample` and :func:`to_prop`
are the two halves the staged ComfyUI graph calls separately (chroma at the working resolution travels
between nodes).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..hints import FrameColour, spread_hints, to_working
from ..model.checkpoint import ColorModel
from ..model.lab import denormalize_ab, normalize_ab, normalize_l
from ..model.diffusion import Callback
from ..model.sampling import SampleOptions, closer_l, colour_ab, for_video, make_noise
from .analysis import AnalysedFrame, Sizes, StageTimer


def shot_generator(seed: int, start: int) -> torch.Generator:
    """The random generator of the shot starting at frame ``start`` of a video (0-based, in the whole
    video): seeded with ``seed`` itself for the first shot, and a hash of (seed, start) for later ones,
    so a shot's colours do not depend on what came before it."""
    if start == 0:
        return torch.Generator().manual_seed(seed)
    digest = hashlib.blake2b(f"hueshift-shot:{seed}:{start}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def to_prop(ab_work: torch.Tensor, prop: tuple[int, int]) -> list[np.ndarray]:
    """CIELAB ab ``[K, 2, h, w]`` at the working resolution -> K float32 arrays ``[H', W', 2]`` at the
    propagation resolution ``prop`` (bicubic)."""
    ab = F.interpolate(ab_work.float().cpu(), size=prop, mode="bicubic", align_corners=False)
    return [a.permute(1, 2, 0).numpy().astype(np.float32) for a in ab]


@dataclass
class KeyframeStats:
    # per later keyframe: mean |ab| (CIELAB) between its sampled colour and the colour carried into it
    # from the keyframe before, over the pixels that still track (chained confidence > 0.5)
    jumps: list[float] = field(default_factory=list)
    chroma: list[float] = field(default_factory=list)  # mean |ab| of every sampled keyframe (wash-out check)
    device: str = ""  # where diffusion ran


class KeyframeColorizer:
    """Keyframe colour (see the module docstring). ``sample``: :class:`SampleOptions`; ``warm_start`` in
    (0, 1] (1 = every keyframe from scratch); ``first_frame``: index in the whole video of the first
    frame this run sees (a piece of a longer video)."""

    def __init__(self, model: ColorModel, sizes: Sizes, sample: SampleOptions = SampleOptions(), *,
                 warm_start: float = 0.5, share_noise: bool = True, first_frame: int = 0,
                 timer: StageTimer | None = None, callback: Callback | None = None,
                 stats: KeyframeStats | None = None, user: dict[int, FrameColour] | None = None,
                 consensus: bool = True) -> None:
        self.model, self.sizes, self.options = model, sizes, sample
        # the prior's colour on video frames: at the model's video saturation, but not where the user gave
        # hints (their frame's colour is the user's, not the prior's unsure guess)
        self._video = for_video(model, sample)
        self.user = dict(user or {})
        if self.user and model.prior is None and not all(c.reference for c in self.user.values()):
            raise InputError(f"colour hints need a model with a colour prior (hueshift-v3 or later, the default); "
                             f"{model.path.rsplit('/', 1)[-1] or 'this model'} has none")
        self.warm_start, self.share_noise, self.first_frame = warm_start, share_noise, int(first_frame)
        self.consensus = consensus
        self._views = 0  # the prior's own views of this shot in the colour carried (inf after a user's colour)
        self._own: torch.Tensor | None = None  # the last sample()'s prior colour before the carried colour joined
        self.timer = timer if timer is not None else StageTimer()
        self.stats = stats if stats is not None else KeyframeStats()
        self.callback = callback  # told of every sampling step: callback(i, steps)
        self.last: torch.Tensor | None = None  # the last sample() result, ab [K, 2, *work] on the CPU
        self._gen = torch.Generator().manual_seed(sample.seed)
        self._noise: torch.Tensor | None = None

    def start_shot(self, frame: AnalysedFrame) -> None:
        """A new shot starts at ``frame``: new noise, from the shot's own generator."""
        self._noise = None
        self._views = 0
        self._gen = shot_generator(self.options.seed, self.first_frame + frame.index)

    def sample(self, l_props: list[np.ndarray], init: list[np.ndarray] | None = None,
               hints: FrameColour | None = None, conf: list[np.ndarray] | None = None) -> torch.Tensor:
        """uint8 L ``[h, w]`` at the propagation resolution (K frames) -> CIELAB ab ``[K, 2, *work]`` float32
        on the CPU. ``init`` (colour carried in, ab ``[h, w, 2]`` each) warm-starts the sampler when
        ``warm_start < 1`` (models without a colour prior); with a colour prior and ``conf`` (its chained
        confidence), the carried colour where it still tracks is spread over the surfaces it sits on
        (:func:`~hueshift_core.hints.spread_hints`), so content that lost track near them keeps their colour.
        ``hints``: the user's colours for these frames."""
        o, work = (self._video if hints is None else self.options), self.sizes.work
        l = torch.from_numpy(np.stack(l_props)).float()[:, None] / 2.55
        l_work = normalize_l(F.interpolate(l, size=work, mode="area"))
        noise = None
        if self.share_noise:
            if self._noise is None:
                self._noise = make_noise((1, 2, *work), self._gen)
            noise = self._noise.expand(len(l_props), -1, -1, -1).contiguous()
        hint_ab = hint_mask = None
        if hints is not None:
            hint_ab, hint_mask = (t.expand(len(l_props), -1, -1, -1) for t in to_working(hints, work))
        warm = init is not None and self.warm_start < 1.0 and self.model.prior is None
        init_ab = None
        if warm:
            ab0 = torch.from_numpy(np.stack(init)).permute(0, 3, 1, 2)
            init_ab = normalize_ab(F.interpolate(ab0, size=work, mode="area"))
        l_prior = closer_l(self.model, l, work)  # the prior's closer look, from the propagation-size L
        with self.timer("diffusion"):
            ab = colour_ab(self.model, l_work, o, generator=self._gen, init_ab=init_ab,
                           strength=self.warm_start if warm else 1.0, noise=noise, callback=self.callback,
                           hint_ab=hint_ab, hint_mask=hint_mask, l_prior=l_prior)
        self._own = ab.float().cpu()
        if init is not None and conf is not None and hints is None and self.model.prior is not None:
            carried = normalize_ab(F.interpolate(torch.from_numpy(np.stack(init)).permute(0, 3, 1, 2), size=work,
                                                 mode="area"))
            tracked = F.interpolate(torch.from_numpy(np.stack(conf))[:, None], size=work, mode="area") > 0.5
            ab = spread_hints(self._own, l_work, self._agreed(carried, self._own), tracked.float())
        self.stats.device = str(ab.device)
        self.last = denormalize_ab(ab.float().cpu())
        return self.last

    def colour(self, l_props: list[np.ndarray], init: list[np.ndarray] | None = None,
               conf: list[np.ndarray] | None = None, hints: FrameColour | None = None) -> list[np.ndarray]:
        """:meth:`sample`, then :func:`to_prop`: ab ``[h, w, 2]`` per frame at the propagation resolution.
        Records each keyframe's chroma and, with ``init``, its jump from the carried colour. With a colour
        prior, a later keyframe keeps the shot's colour where it tracks: ``conf * shot + (1 - conf) * new``, where
        ``shot`` is the carried colour, or with ``consensus`` the mean of the prior's views of the shot
        (:meth:`_agreed`); not for hinted frames: the user's colour takes over, and is then kept, not averaged."""
        out = to_prop(self.sample(l_props, init, hints, conf), self.sizes.prop)
        if init is not None and hints is None and self.model.prior is not None and conf is not None:
            agreed = [self._agreed(old, own) for old, own in zip(init, to_prop(denormalize_ab(self._own),
                                                                             self.sizes.prop))]
            out = [(c[..., None] * old + (1.0 - c[..., None]) * new).astype(np.float32)
                   for new, old, c in zip(out, agreed, conf)]
            self._views += 1
        else:
            self._views = math.inf if hints is not None else 1
        self.stats.chroma += [float(np.abs(a).mean()) for a in out]
        if init is not None:
            for new, old, c in zip(out, init, conf or [None] * len(out)):
                mask = c > 0.5 if c is not None and (c > 0.5).any() else np.ones(new.shape[:2], bool)
                self.stats.jumps.append(float(np.abs(new - old)[mask].mean()))
        return out

    def _agreed(self, carried, own):
        """The shot's colour where it tracks: the colour carried in, or with ``consensus`` the mean of the prior's
        views of the shot so far (the carried colour holds ``_views`` of them) and this one (``own``)."""
        if not self.consensus or not math.isfinite(self._views) or self._views < 1:
            return carried
        n = self._views
        return (n * carried + own) / (n + 1)

    def __call__(self, frame: AnalysedFrame, init: np.ndarray | None = None,
                 conf: np.ndarray | None = None) -> np.ndarray:
        """One keyframe as a ``colour`` source of :class:`~hueshift_core.video.segments.SegmentWalker`."""
        user = self.user.get(self.first_frame + frame.index)
        if user is not None and user.reference:
            ab = user.resized(*self.sizes.prop).ab
            self._views = math.inf  # the user's colour: kept, not averaged with the prior's views
            self.stats.chroma.append(float(np.abs(ab).mean()))
            return ab
        return self.colour([frame.l_prop], None if init is None else [init], None if conf is None else [conf],
                           hints=user)[0]
