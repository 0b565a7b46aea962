import cv2
import numpy as np
import pytest
import torch

from hueshift_core.errors import InputError
from hueshift_core.model import lab as color


def _random_rgb(n=4, h=16, w=24, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_lab_matches_scikit_image(dtype):
    skcolor = pytest.importorskip("skimage.color")
    rgb = _random_rgb(dtype=dtype)
    lab = color.rgb_to_lab(rgb)
    assert lab.shape == rgb.shape and lab.dtype == dtype
    ref = skcolor.rgb2lab(rgb.permute(0, 2, 3, 1).double().numpy())
    tol = 1e-9 if dtype == torch.float64 else 2e-3
    np.testing.assert_allclose(lab.permute(0, 2, 3, 1).double().numpy(), ref, atol=tol)


def test_rgb_to_lab_close_to_opencv():
    # OpenCV's float path uses rounded constants and a tabulated gamma: agreement to ~0.5 units.
    rgb = _random_rgb()
    lab = color.rgb_to_lab(rgb)
    for i in range(rgb.shape[0]):
        ref = cv2.cvtColor(rgb[i].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2Lab)
        np.testing.assert_allclose(lab[i].permute(1, 2, 0).numpy(), ref, atol=0.6)


def test_reference_values():
    # sRGB primaries and white in CIELAB (D65), as published (e.g. Bruce Lindbloom's calculator).
    rgb = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 0]], dtype=torch.float64)
    lab = color.rgb_to_lab(rgb.reshape(5, 3, 1, 1)).reshape(5, 3)
    expected = torch.tensor([[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86],
                             [100.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lab, expected, atol=0.02, rtol=0)


def test_srgb_gamma_is_applied():
    # mid-grey 0.5 in sRGB is L = 53.39 (with gamma); a linear-light conversion would give 76.07.
    lab = color.rgb_to_lab(torch.full((1, 3, 1, 1), 0.5))
    assert abs(float(lab[0, 0]) - 53.39) < 0.05


def test_round_trip_error_bounded():
    rgb = _random_rgb(n=8, h=32, w=32, seed=1, dtype=torch.float64)
    back = color.lab_to_rgb(color.rgb_to_lab(rgb))
    err = (back - rgb).abs().max().item()
    assert err < 1e-6, f"round-trip max error {err}"
    rgb32 = rgb.float()
    err32 = (color.lab_to_rgb(color.rgb_to_lab(rgb32)) - rgb32).abs().max().item()
    assert err32 < 2e-3, f"float32 round-trip max error {err32}"  # well under one 8-bit level


def test_normalisation_ranges_and_inverse():
    # every sRGB colour fits in [-1, 1] after normalisation
    grid = torch.stack(torch.meshgrid(*[torch.linspace(0, 1, 17)] * 3, indexing="ij")).reshape(3, -1, 1)
    lab = color.rgb_to_lab(grid[None])
    l_n, ab_n = color.normalize_l(lab[:, :1]), color.normalize_ab(lab[:, 1:])
    assert l_n.min() >= -1 - 1e-6 and l_n.max() <= 1 + 1e-6
    assert ab_n.abs().max() <= 1.0
    torch.testing.assert_close(color.denormalize_ab(ab_n), lab[:, 1:])
    torch.testing.assert_close(color.denormalize_l(l_n), lab[:, :1])


def test_split_merge_and_errors():
    lab = color.rgb_to_lab(_random_rgb(n=1))
    l, ab = color.split_lab(lab)
    assert l.shape[1] == 1 and ab.shape[1] == 2
    torch.testing.assert_close(color.merge_lab(l, ab), lab)
    with pytest.raises(InputError, match="upscale the chroma"):
        color.merge_lab(l, ab[..., :8, :8])
    with pytest.raises(InputError, match=r"\[..., 3, H, W\]"):
        color.rgb_to_lab(torch.zeros(1, 4, 8, 8))


def test_grey_has_no_chroma():
    rgb = _random_rgb(n=2)
    grey = color.to_grey(rgb)
    assert color.chroma_amount(grey).max() < 0.5
    assert color.chroma_amount(rgb).min() > 5
    torch.testing.assert_close(color.rgb_to_l(grey), color.rgb_to_l(rgb), atol=0.05, rtol=0)
