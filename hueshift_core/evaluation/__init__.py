"""Measuring colourization: a colourized video against its ground-truth colour video.

This sub-package holds the metrics and the ``hueshift eval`` command. Everything works on single frames
or frame pairs (numpy ``uint8`` RGB ``[H, W, 3]``, sRGB, 0..255; an output and its truth the same shape),
so a whole video never has to be held in memory: :class:`VideoMetrics` (:mod:`.accumulators`) is fed
``(output, truth)`` pairs in display order and gives a :class:`VideoMetricsSummary`. Fidelity (PSNR,
CIEDE2000) is :mod:`.fidelity`; CIELAB conversion, the grey baseline :func:`grey_like` and Hasler &
Süsstrunk colourfulness are :mod:`.frames`; the temporal metrics, CDC (Jensen-Shannon divergence of RGB
histograms at gaps 1, 2, 4, as TCVC / ColorMNet) and warp error (Lai et al. 2018, occlusions after Ruder
et al. 2016, DIS flow on the truth), are :mod:`.temporal`. :mod:`.clips` colorizes colour clips turned
grey and reports all of it (:func:`evaluate`, ``hueshift eval``). Read CDC and warp error together with
fidelity and the colourfulness ratio: a grey or washed-out output is trivially stable and can score
below the truth's own floor (feed the truth as the output, ``baselines=True``, to get that floor).

Importing this package loads no model and no PyAV; :func:`evaluate` and :func:`evaluate_clip` load the
pipeline on first use.
"""

from __future__ import annotations

import importlib

from .accumulators import PSNR_CAP, FrameMetrics, VideoMetrics, VideoMetricsSummary, evaluate_video
from .frames import colourfulness, frame_to_lab, grey_like, lab_to_frame
from .fidelity import ciede2000, hue_errors, mean_ciede2000, psnr
from .temporal import (CDC_GAPS, CDCAccumulator, WarpErrorAccumulator, cdc, channel_histograms, dis_flow,
                       js_divergence, occlusion_mask, warp_error, warp_error_pair, warp_frame)

_LAZY = {"evaluate": "clips", "evaluate_clip": "clips"}  # they import the pipeline: torch, PyAV


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CDC_GAPS", "PSNR_CAP", "CDCAccumulator", "FrameMetrics", "VideoMetrics", "VideoMetricsSummary",
    "WarpErrorAccumulator", "cdc", "channel_histograms", "ciede2000", "colourfulness", "dis_flow",
    "evaluate", "evaluate_clip", "evaluate_video", "frame_to_lab", "grey_like", "hue_errors", "js_divergence", "lab_to_frame",
    "mean_ciede2000", "occlusion_mask", "psnr", "warp_error", "warp_error_pair", "warp_frame",
]
