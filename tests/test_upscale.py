import pytest
import torch
import torch.nn.functional as F

from hueshift_core.errors import InputError
from hueshift_core.model.upscale import upscale_ab, upscale_bicubic, upscale_guided


def _scene(h=96, w=160):
    """L with a sharp diagonal-ish edge and ab that changes exactly at that edge."""
    y, x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = (x + 0.37 * y) > (w * 0.55)
    l = torch.where(inside, 75.0, 30.0)[None, None].float()
    ab = torch.stack([torch.where(inside, 40.0, -20.0), torch.where(inside, -30.0, 25.0)])[None].float()
    return l, ab


def test_shapes_and_identity():
    l, ab = _scene()
    small = F.interpolate(ab, size=(24, 40), mode="area")
    for method in ("bicubic", "guided"):
        out = upscale_ab(small, l, method)
        assert out.shape == ab.shape
    assert upscale_ab(ab, l) is ab  # same size: nothing to do


def test_guided_beats_bicubic_at_luminance_edges():
    l, ab = _scene()
    small = F.interpolate(ab, size=(24, 40), mode="area")
    err_bic = (upscale_bicubic(small, (96, 160)) - ab).abs().mean()
    err_gui = (upscale_guided(small, l) - ab).abs().mean()
    assert err_gui < 0.8 * err_bic, (float(err_gui), float(err_bic))


def test_flat_luminance_reduces_to_bicubic():
    _, ab = _scene()
    small = F.interpolate(ab, size=(24, 40), mode="area")
    flat = torch.full((1, 1, 96, 160), 50.0)
    torch.testing.assert_close(upscale_guided(small, flat), upscale_bicubic(small, (96, 160)), atol=1e-4, rtol=0)


def test_odd_sizes_and_batch():
    l = torch.rand(3, 1, 479, 853) * 100
    small = torch.randn(3, 2, 64, 112) * 20
    assert upscale_ab(small, l).shape == (3, 2, 479, 853)


def test_mismatched_inputs_are_clear():
    with pytest.raises(InputError, match="frames"):
        upscale_ab(torch.zeros(2, 2, 8, 8), torch.zeros(3, 1, 16, 16))
    with pytest.raises(InputError, match="aspect"):
        upscale_ab(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 16, 64))
    with pytest.raises(InputError, match=r"\[B, 2, h, w\]"):
        upscale_ab(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError):
        upscale_ab(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 16, 16), "lanczos")


def test_opencv_cpu_path_equals_torch_reference():
    """On the CPU the upscale runs through OpenCV's resize; float64 input takes the torch path."""
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(3, 2, 64, 112, generator=g) * 20
    l_full = (torch.rand(3, 1, 480, 854, generator=g) * 100)
    for fast, ref in [(upscale_guided(ab, l_full), upscale_guided(ab.double(), l_full.double())),
                      (upscale_bicubic(ab, (480, 854)), upscale_bicubic(ab.double(), (480, 854)))]:
        assert fast.dtype == torch.float32 and fast.shape == ref.shape
        assert float((fast.double() - ref).abs().max()) < 1e-3
