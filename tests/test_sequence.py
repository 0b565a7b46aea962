"""Frame sequences as video: a folder or %06d pattern in, an mp4 or %06d pattern out, same pipeline."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from hueshift_core import cli
from hueshift_core.errors import InputError
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions
from hueshift_core.video import probe
from hueshift_core.video.files import colorize_video
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline
from hueshift_core.video.sequence import is_pattern, is_sequence, probe_sequence, read_sequence, sequence_files

OPTS = PipelineOptions(sample=SampleOptions(steps=2))


def _frames(n=12, h=48, w=64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        img = ((np.sin((xx + 2 * t) / 5.0) + np.cos(yy / 7.0)) * 60 + 128).clip(0, 255).astype(np.uint8)
        out.append(np.repeat(img[..., None], 3, axis=2))
    return np.stack(out)


def _write_seq(folder: Path, frames: np.ndarray, name="f{}.png") -> None:
    folder.mkdir(exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / name.format(i + 1)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


def test_sequence_files_order_and_patterns(tmp_path):
    _write_seq(tmp_path / "s", _frames(11))
    (tmp_path / "s" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "s" / "notes.txt").write_text("x")
    names = [p.name for p in sequence_files(tmp_path / "s")]
    assert names == [f"f{i}.png" for i in range(1, 12)]  # f2 before f10
    assert [p.name for p in sequence_files(tmp_path / "s" / "f%d.png")] == names
    assert is_sequence(tmp_path / "s") and is_pattern("out/%06d.png") and not is_sequence(tmp_path / "x.mp4")
    info = probe_sequence(tmp_path / "s", 25)
    assert (info.width, info.height, info.frame_count, info.fps, info.has_audio) == (64, 48, 11, Fraction(25), False)
    with pytest.raises(InputError, match="holds no images"):
        sequence_files(tmp_path / "s" / "g%03d.png")


def test_sequence_in_and_out_is_the_pipeline_exactly(tmp_path, tiny_model_path):
    frames = _frames()
    _write_seq(tmp_path / "scans", frames)
    model = get_model(tiny_model_path)
    want = np.concatenate(list(VideoPipeline(model, OPTS).run(iter([frames]))))
    res = colorize_video(tmp_path / "scans", tmp_path / "out" / "%06d.png", model, OPTS)
    assert res.frames == len(frames)
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(1, len(frames) + 1)]
    got = np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
    assert np.array_equal(got, want)  # PNG is lossless: the same pipeline, the same frames


def test_cli_sequence_to_mp4_with_fps(tmp_path, tiny_model_path, capsys):
    _write_seq(tmp_path / "scans", _frames(10))
    rc = cli.main(["colorize", str(tmp_path / "scans"), "-o", str(tmp_path / "out.mp4"), "--fps", "12",
                   "--model", str(tiny_model_path), "--steps", "2", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    info = probe(tmp_path / "out.mp4")
    assert (info.frame_count, info.fps, info.width, info.height) == (10, Fraction(12), 64, 48)
    # and back out of that mp4 as a sequence
    rc = cli.main(["colorize", str(tmp_path / "out.mp4"), "-o", str(tmp_path / "seq" / "f_%04d.png"),
                   "--model", str(tiny_model_path), "--steps", "2", "--no-progress"])
    assert rc == 0
    assert len(list((tmp_path / "seq").glob("f_*.png"))) == 10


def test_bad_frame_leaves_no_partial_sequence(tmp_path, tiny_model_path, capsys):
    _write_seq(tmp_path / "scans", _frames(6))
    (tmp_path / "scans" / "f4.png").write_text("damaged")
    rc = cli.main(["colorize", str(tmp_path / "scans"), "-o", str(tmp_path / "out" / "%06d.png"),
                   "--model", str(tiny_model_path), "--steps", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "f4.png is not a readable image" in err
    assert not (tmp_path / "out").exists()  # the folder it created is gone, nothing half-written


def test_sequence_options_refused_before_work(tmp_path, tiny_model_path, capsys, monkeypatch):
    monkeypatch.setattr("hueshift_core.cli.video.get_model", lambda *a, **k: pytest.fail("model loaded"))
    _write_seq(tmp_path / "scans", _frames(3))
    video = tmp_path / "v.mp4"
    cases = [
        (["colorize", str(tmp_path / "scans"), "-o", str(tmp_path / "o" / "%06d.gif")], "give a name ending in"),
        (["colorize", str(tmp_path / "scans"), "-o", str(tmp_path / "scans" / "f%d.png")], "overwrite the input"),
        (["colorize", str(tmp_path / "scans"), "-o", str(tmp_path / "o.mp4"), "--fps", "0"], "frame rate must be"),
        (["colorize", str(tmp_path / "empty"), "-o", str(tmp_path / "o.mp4")], "holds no images"),
    ]
    (tmp_path / "empty").mkdir()
    for argv, pattern in cases:
        assert cli.main(argv + ["--model", str(tiny_model_path)]) == 2
        assert pattern in capsys.readouterr().err
    frames = _frames(4)
    from hueshift_core.video import VideoWriter

    with VideoWriter(video, 64, 48, 24) as w:
        w.write(frames)
    assert cli.main(["colorize", str(video), "-o", str(tmp_path / "o.mp4"), "--fps", "30",
                     "--model", str(tiny_model_path)]) == 2
    assert "is for a frame-sequence input" in capsys.readouterr().err


def test_read_sequence_refuses_a_size_change(tmp_path):
    _write_seq(tmp_path / "s", _frames(3))
    cv2.imwrite(str(tmp_path / "s" / "f4.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(InputError, match="same size"):
        list(read_sequence(tmp_path / "s"))
