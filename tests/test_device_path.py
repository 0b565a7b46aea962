"""Where the work runs: the CPU fast paths equal the reference within rounding, and the device path (torch
upscale + kornia LAB on the model's device) gives the same frames, with its tensors on that device."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.lab import lab_to_rgb_u8
from hueshift_core.model.sampling import SampleOptions
from hueshift_core.video.analysis import frame_l
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

OPTS = PipelineOptions(sample=SampleOptions(steps=2))


def _lab(b=3, h=37, w=53, seed=0):
    rng = np.random.default_rng(seed)
    l = rng.random((b, h, w), np.float32) * 100
    ab = (rng.standard_normal((b, h, w, 2)) * 40).astype(np.float32)
    return l, ab


def test_lab_to_rgb_u8_equals_reference_within_rounding():
    l, ab = _lab()
    got = lab_to_rgb_u8(l, ab)
    want = np.stack([np.clip(cv2.cvtColor(np.concatenate([l[i][..., None], ab[i]], -1), cv2.COLOR_Lab2RGB)
                             * 255.0 + 0.5, 0, 255).astype(np.uint8) for i in range(len(l))])
    assert got.shape == want.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1


def _clip(n=10, h=72, w=128):
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.repeat(((np.sin((xx + 3 * t) / 6.0) * np.cos(yy / 9.0)) * 90 + 128).clip(0, 255)
                        .astype(np.uint8)[..., None], 3, axis=2) for t in range(n)]
    return np.stack(frames)


def _run(model, torch_finish: bool, device=None):
    pipe = VideoPipeline(model, OPTS)
    pipe.torch_finish = torch_finish
    out = np.concatenate(list(pipe.run(iter([_clip()]))))
    return out, pipe.stats.devices


def test_device_path_on_cpu_gives_the_same_frames(tiny_model_path):
    model = get_model(tiny_model_path, "cpu")
    fast, dev_fast = _run(model, False)
    torch_path, dev_torch = _run(model, True)
    assert fast.shape == torch_path.shape
    diff = np.abs(fast.astype(int) - torch_path)
    assert diff.mean() < 0.5 and diff.max() <= 3  # OpenCV vs torch resize and LAB: rounding only
    # where the tensors were (read off the tensors themselves, no mocks)
    assert dev_fast == {"diffusion": "cpu", "upscale": "cpu", "to_rgb": "cpu"}
    assert dev_torch == {"diffusion": "cpu", "upscale": "cpu", "to_rgb": "cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_path_runs_on_the_gpu(tiny_model_path):
    cpu, _ = _run(get_model(tiny_model_path, "cpu"), False)
    gpu, devices = _run(get_model(tiny_model_path, "cuda"), False)
    assert set(devices.values()) == {"cuda:0"}
    assert np.abs(cpu.astype(int) - gpu).mean() < 2.0


def test_frame_l_grey_by_table_exactly_and_colour_by_formula():
    rng = np.random.default_rng(3)
    grey = np.repeat(rng.integers(0, 256, (33, 47, 1), dtype=np.uint8), 3, axis=2)
    colour = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    for rgb in (grey, colour):
        ref = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
        l, chroma = frame_l(rgb)
        assert l.dtype == np.float32 and l.shape == rgb.shape[:2]
        if rgb is grey:
            assert np.array_equal(l, ref[..., 0])  # the same values, not just close
        else:  # CIELAB's own formula: within OpenCV's approximation of it, and equal to a float64 reference
            assert np.abs(l - ref[..., 0]).max() < 0.25
            c = rgb / 255.0
            lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
            y = lin @ np.array([0.212671, 0.715160, 0.072169])
            exact = np.where(y > 216 / 24389, 116 * np.cbrt(y) - 16, y * 24389 / 27)
            assert np.abs(l - exact).max() < 0.01
        assert (chroma > 2.0) == (float(np.abs(ref[::8, ::8, 1:]).mean()) > 2.0)
