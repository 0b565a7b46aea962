import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hueshift_core.errors import InputError
from hueshift_core.images import colorize_frames, colorize_image
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions, working_size


def test_working_size_keeps_aspect_and_multiple():
    assert working_size(480, 854) == (64, 112)
    assert working_size(479, 853) == (64, 112)
    assert working_size(64, 64) == (64, 64)
    assert working_size(16, 16) == (64, 64)
    h, w = working_size(100, 2000)
    assert h % 8 == 0 and w % 8 == 0 and w <= 256
    with pytest.raises(InputError):
        working_size(0, 10)


def test_colorize_image_any_size_and_grey(tiny_model_path, photo):
    model = get_model(tiny_model_path)
    opts = SampleOptions(steps=3)
    out = colorize_image(photo, model, options=opts)
    assert out.shape == photo.shape and out.dtype == np.uint8
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    out_g = colorize_image(grey, model, options=opts)
    assert out_g.shape == photo.shape
    odd = np.ascontiguousarray(photo[:37, :53])
    assert colorize_image(odd, model, options=opts).shape == (37, 53, 3)


def test_luminance_is_preserved(tiny_model_path, photo):
    """Only chroma is generated: L of the output equals L of the input (up to gamut clipping)."""
    from hueshift_core.model.lab import rgb_to_lab
    model = get_model(tiny_model_path)
    out = colorize_image(photo, model, options=SampleOptions(steps=2))
    lin = rgb_to_lab(torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255)[:, 0]
    lout = rgb_to_lab(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255)[:, 0]
    assert float((lin - lout).abs().median()) < 1.0


def test_seed_reproducible(tiny_model_path, photo):
    model = get_model(tiny_model_path)
    a = colorize_image(photo, model, options=SampleOptions(steps=3, seed=1))
    b = colorize_image(photo, model, options=SampleOptions(steps=3, seed=1))
    assert np.array_equal(a, b)


def test_batches_match_single(tiny_model_path):
    model = get_model(tiny_model_path)
    frames = torch.rand(5, 3, 40, 72)
    out = colorize_frames(model, frames, SampleOptions(steps=2, batch_size=2))
    assert out.shape == frames.shape


def test_bad_image_inputs(tiny_model_path):
    model = get_model(tiny_model_path)
    with pytest.raises(InputError):
        colorize_image(np.zeros((4, 4, 3), np.float32), model)
    with pytest.raises(InputError):
        colorize_image(np.zeros((4, 4, 5), np.uint8), model)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hueshift_core.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_cli_one_and_many(tmp_path, tiny_model_path, photo):
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    cv2.imwrite(str(a), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY))
    r = _cli("colorize-image", a, "-o", tmp_path / "one.png", "--model", tiny_model_path, "--steps", 2)
    assert r.returncode == 0, r.stderr
    assert "turned grey first" in r.stderr
    assert cv2.imread(str(tmp_path / "one.png")).shape == photo.shape
    r = _cli("colorize-image", a, b, "-o", tmp_path / "out", "--model", tiny_model_path, "--steps", 2)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_cli_bad_inputs_one_line(tmp_path, tiny_model_path, photo):
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), photo)
    txt = tmp_path / "notes.png"
    txt.write_text("not an image")
    evil = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, evil)
    cases = [
        (["colorize-image", tmp_path / "missing.png", "-o", tmp_path / "o.png", "--model", tiny_model_path], "not found"),
        (["colorize-image", txt, "-o", tmp_path / "o.png", "--model", tiny_model_path], "not a readable image"),
        (["colorize-image", a, "-o", tmp_path / "o.png", "--model", evil], "never unpickles"),
        (["colorize-image", a, "-o", tmp_path / "no" / "dir" / "o.png", "--model", tiny_model_path], "does not exist"),
    ]
    for args, msg in cases:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.png").exists()
