"""colorize-image at scale: batches equal single images, decode-ahead is bounded, mixed sizes and bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hueshift_core import cli
from hueshift_core.cli import image as cli_image
from hueshift_core.images import colorize_image
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.diffusion import Sampler
from hueshift_core.model.sampling import SampleOptions


def _photos(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
        out.append(img)
    return out


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
def test_batch_equals_one_at_a_time(tiny_model_path, sampler):
    model = get_model(tiny_model_path)
    opts = SampleOptions(steps=3, sampler=Sampler(sampler), seed=7)
    imgs = _photos(3, 40, 56)
    batched = cli_image.colorize_batch(imgs, model, opts)
    single = [colorize_image(im, model, options=opts) for im in imgs]
    for b, s in zip(batched, single):
        assert b.shape == s.shape and b.dtype == np.uint8
        assert np.abs(b.astype(int) - s.astype(int)).max() <= 1  # rounding only


def test_decode_ahead_is_bounded(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cli_image, "read_image", lambda p: calls.append(p) or np.zeros((4, 4), np.uint8))
    inputs = [tmp_path / f"{i}.png" for i in range(50)]
    consumed = 0
    for src, img in cli_image._decoded(inputs, ahead=4):
        consumed += 1
        assert len(calls) <= consumed + 4  # never more than `ahead` images decoded and waiting
    assert consumed == 50 and calls == inputs


def test_many_mixed_sizes_and_a_bad_file(tmp_path, tiny_model_path, capsys):
    paths = []
    for i, img in enumerate(_photos(5, 32, 48) + _photos(3, 64, 64, seed=1)):
        p = tmp_path / f"p{i}.png"
        cv2.imwrite(str(p), img)
        paths.append(p)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    paths.insert(3, bad)
    out = tmp_path / "out"
    rc = cli.main(["colorize-image", *map(str, paths), "-o", str(out), "--model", str(tiny_model_path),
                   "--steps", "2", "--batch-size", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert sorted(p.name for p in out.iterdir()) == sorted(f"p{i}.png" for i in range(8))
    assert captured.err.strip().splitlines()[-1] == f"hueshift colorize-image: 8 of 9 images colorized; 1 failed: {bad}"
    assert sorted(Path(line).name for line in captured.out.split()) == sorted(f"p{i}.png" for i in range(8))
    # the same photo comes out the same whether it was batched or alone
    model = get_model(tiny_model_path)
    alone = colorize_image(cv2.cvtColor(cv2.imread(str(paths[0])), cv2.COLOR_BGR2RGB), model,
                           options=SampleOptions(steps=2))
    got = cv2.cvtColor(cv2.imread(str(out / "p0.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(got.astype(int) - alone.astype(int)).max() <= 1


def test_batch_size_checked(tmp_path, tiny_model_path, capsys):
    rc = cli.main(["colorize-image", "a.png", "b.png", "-o", str(tmp_path / "o"), "--batch-size", "0"])
    assert rc == 2 and "--batch-size must be 1 to 256" in capsys.readouterr().err


def _peak_traced(tmp_path, n: int, monkeypatch, tiny_model_path) -> int:
    import tracemalloc

    src = tmp_path / f"in{n}"
    src.mkdir()
    img = _photos(1, 256, 384)[0]
    ok, buf = cv2.imencode(".png", img)
    for i in range(n):
        (src / f"p{i:04d}.png").write_bytes(buf.tobytes())
    # the model is not what is measured here: the photos held by the stream are
    monkeypatch.setattr(cli_image, "colorize_batch", lambda imgs, *a, **k: [np.ascontiguousarray(i) for i in imgs])
    tracemalloc.start()
    try:
        rc = cli.main(["colorize-image", *map(str, sorted(src.iterdir())), "-o", str(tmp_path / f"out{n}"),
                       "--model", str(tiny_model_path), "--batch-size", "4", "--no-progress"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rc == 0 and len(list((tmp_path / f"out{n}").iterdir())) == n
    return peak


def test_memory_flat_in_the_number_of_photos(tmp_path, monkeypatch, tiny_model_path, capsys):
    small = _peak_traced(tmp_path, 24, monkeypatch, tiny_model_path)
    large = _peak_traced(tmp_path, 120, monkeypatch, tiny_model_path)
    capsys.readouterr()
    photo = 256 * 384 * 3
    with capsys.disabled():
        print(f"\npeak traced memory: 24 photos {small / 2**20:.1f} MB, 120 photos {large / 2**20:.1f} MB "
              f"(one photo {photo / 2**20:.2f} MB)")
    assert large < small + 8 * photo  # 96 more photos (28 MB if they were all held) add next to nothing
    assert large < 40 * photo  # at most a few batches' worth of photos held at once
