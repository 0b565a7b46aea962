"""Bad and odd input against the CLI, the Python API and the nodes: each case asserts its exact outcome.

The promise (README, "Bad input"): one clear line and exit status 2, never a traceback, never a
half-written or partial file, never a destroyed input, never a silently wrong output; with several
inputs a bad one is reported and the rest are done. Everything is built here from small synthetic
files (PyAV, OpenCV, numpy) and a tiny random model, so the suite runs in CI in well under two minutes.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from hueshift_core import cli, outputs
from hueshift_core.errors import HueShiftError, InputError, VideoError
from hueshift_core.images import colorize_frames, colorize_image, upscale_merge
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions
from hueshift_core.model.upscale import upscale_ab
from hueshift_core.video import VideoWriter, probe, read_frames
from hueshift_core.video.files import colorize_video
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["--steps", "2"]


# --- synthetic inputs -----------------------------------------------------------------------------------------

def _frame(h, w, i=0, colour=False):
    y, x = np.mgrid[0:h, 0:w]
    v = ((x * 3 + y * 2 + 8 * i) % 200 + 30).astype(np.uint8)
    rgb = np.stack([v, v, v], -1)
    if colour:
        rgb[..., 0] = np.clip(v.astype(int) + 60, 0, 255)
        rgb[..., 2] = v // 2
    return rgb


def _encode(path, frames, *, fps=24, fmt=None, rotation=None, pts_ms=None):
    """PyAV directly: a display rotation, explicit (variable) timestamps in ms, or a raw elementary stream."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if rotation is not None:
            s.set_display_rotation(rotation)
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts_ms is not None:
                vf.pts, vf.time_base = pts_ms[i], Fraction(1, 1000)
            else:
                vf.pts, vf.time_base = i, Fraction(1, fps)
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return path


def _jpeg_with_orientation(rgb, orientation):
    """A JPEG whose EXIF says how to turn it (6 = rotate 90 degrees clockwise to display)."""
    jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01" + \
        orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    return jpg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpg[2:]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_path):
    d = tmp_path_factory.mktemp("bad_input")
    f = {"dir": d, "model": tiny_model_path}
    with VideoWriter(d / "grey.mp4", 64, 48, 24) as w:
        for i in range(6):
            w.write(_frame(48, 64, i))
    f["grey"] = d / "grey.mp4"
    with VideoWriter(d / "colour.mp4", 64, 48, 24) as w:
        for i in range(6):
            w.write(_frame(48, 64, i, colour=True))
    f["colour"] = d / "colour.mp4"
    f["rotated"] = _encode(d / "rotated.mp4", [_frame(32, 64, i) for i in range(4)], rotation=90)
    f["vfr"] = _encode(d / "vfr.mp4", [_frame(32, 64, i) for i in range(12)],
                       pts_ms=[sum(20 if k % 2 else 60 for k in range(i)) for i in range(12)])
    f["raw"] = _encode(d / "raw.h264", [_frame(32, 64, i) for i in range(12)], fps=24, fmt="h264")
    with VideoWriter(d / "long.mp4", 64, 48, 24) as w:  # index first (faststart): a cut file still opens
        for i in range(30):
            w.write(_frame(48, 64, i))
    data = (d / "long.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: int(len(data) * 0.85)])  # the first (key) frame is a third of it
    f["truncated"] = d / "truncated.mp4"
    img = _frame(40, 60)
    img[:, :10] = 255  # a white band on the left, to see which way the image was turned
    cv2.imwrite(str(d / "photo.png"), img)
    f["png"] = d / "photo.png"
    (d / "exif.jpg").write_bytes(_jpeg_with_orientation(img, 6))
    f["exif"] = d / "exif.jpg"
    cv2.imwrite(str(d / "deep.png"), (_frame(20, 30).astype(np.uint16) * 257))
    f["png16"] = d / "deep.png"
    bgra = np.dstack([_frame(20, 30), np.full((20, 30), 128, np.uint8)])
    cv2.imwrite(str(d / "alpha.png"), bgra)
    f["alpha"] = d / "alpha.png"
    # a PNG header that claims 100000 x 100000 pixels (a decompression bomb), nothing behind it
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (100000).to_bytes(4, "big") * 2 +
                                 b"\x08\x02\x00\x00\x00" + b"\x00" * 64)
    f["bomb"] = d / "bomb.png"
    (d / "notes.png").write_text("not an image")
    f["notes"] = d / "notes.png"
    (d / "notes.mp4").write_text("not a video")
    f["notes_mp4"] = d / "notes.mp4"
    (d / "empty.mp4").write_bytes(b"")
    f["empty"] = d / "empty.mp4"
    os.mkfifo(d / "pipe.mp4")
    f["fifo"] = d / "pipe.mp4"
    return f


def _model_variant(tmp_path, tiny, **changes):
    """The tiny model with its metadata changed (the tensors kept)."""
    with safe_open(str(tiny), "pt") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    cfg = json.loads(meta["hueshift.unet_config"])
    for k, v in changes.items():
        if k == "num_timesteps":
            meta["hueshift.num_timesteps"] = str(v)
        else:
            cfg[k] = v
    meta["hueshift.unet_config"] = json.dumps(cfg)
    path = tmp_path / "variant.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def run_cli(capsys, *args):
    """``hueshift ARGS`` in this process -> (exit status, stdout, stderr); never a traceback."""
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err
    return rc, out, err


def one_error(rc, err, command, pattern):
    """Exit status 2 and exactly one line, ``hueshift COMMAND: error: ...`` matching ``pattern``."""
    lines = [line for line in err.strip().splitlines() if line]
    assert rc == 2, err
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"hueshift {command}: error: "), lines[0]
    assert pattern.lower() in lines[0].lower(), (pattern, lines[0])


def leftovers(folder, *keep):
    """Files in ``folder`` other than ``keep`` (partial files included: they are hidden)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in keep)


def fingerprint(path):
    st = os.stat(path)
    return st.st_ino, st.st_size, Path(path).read_bytes()


# === colorize-image ============================================================================================

def test_image_output_equal_to_input_is_refused(files, tmp_path, capsys):
    src = tmp_path / "in.png"
    src.write_bytes(files["png"].read_bytes())
    before = fingerprint(src)
    rc, _, err = run_cli(capsys, "colorize-image", src, "-o", src, "--model", files["model"], *STEPS)
    one_error(rc, err, "colorize-image", "is the input")
    assert fingerprint(src) == before and leftovers(tmp_path) == ["in.png"]


def test_image_output_hard_link_to_input_is_refused(files, tmp_path, capsys):
    src = tmp_path / "in.png"
    src.write_bytes(files["png"].read_bytes())
    os.link(src, tmp_path / "link.png")
    rc, _, err = run_cli(capsys, "colorize-image", src, "-o", tmp_path / "link.png", "--model", files["model"])
    one_error(rc, err, "colorize-image", "is the input")
    assert (tmp_path / "link.png").read_bytes() == files["png"].read_bytes()


@pytest.mark.parametrize("name", ["out.txt", "out.mp4", "out.gifx"])
def test_image_bad_output_extension_is_refused_before_sampling(files, tmp_path, capsys, monkeypatch, name):
    monkeypatch.setattr("hueshift_core.cli.image.colorize_image", lambda *a, **k: pytest.fail("sampled"))
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / name, "--model", files["model"])
    one_error(rc, err, "colorize-image", "give a name ending in .png")
    assert leftovers(tmp_path) == []


def test_image_output_without_extension_is_written_as_png(files, tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "result", "--model", files["model"],
                         *STEPS)
    assert rc == 0 and out.strip() == str(tmp_path / "result.png")
    assert cv2.imread(str(tmp_path / "result.png")).shape == (40, 60, 3) and leftovers(tmp_path) == ["result.png"]


@pytest.mark.parametrize("key, pattern", [
    ("bomb", "claims to be 100000x100000"),
    ("notes", "not a readable image"),
    ("fifo", "a FIFO"),
    ("empty", "empty (0 bytes)"),
])
def test_image_bad_input_files(files, tmp_path, capsys, key, pattern):
    rc, _, err = run_cli(capsys, "colorize-image", files[key], "-o", tmp_path / "o.png", "--model", files["model"])
    one_error(rc, err, "colorize-image", pattern)
    assert leftovers(tmp_path) == []


def test_image_missing_input_and_folder_input(files, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "colorize-image", tmp_path / "missing.png", "-o", tmp_path / "o.png",
                         "--model", files["model"])
    one_error(rc, err, "colorize-image", "not found")
    rc, _, err = run_cli(capsys, "colorize-image", files["dir"], "-o", tmp_path / "o.png", "--model", files["model"])
    one_error(rc, err, "colorize-image", "is a folder")
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_image_output_device_is_never_replaced(files, capsys):
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", "/dev/null", "--model", files["model"])
    one_error(rc, err, "colorize-image", "character device")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("args, pattern", [
    (["--seed", str(2**70)], "seed must be 0 to 2**64 - 1"),
    (["--seed", "-1"], "seed must be 0 to 2**64 - 1"),
    (["--steps", "0"], "steps must be 1 to"),
    (["--guidance", "nan"], "guidance scale must be in [0, 20]"),
    (["--guidance-interval", "0.8", "0.2"], "guidance interval must satisfy 0 <= lo <= hi <= 1"),
    (["--device", "quantum"], "unknown device 'quantum'"),
    pytest.param(["--device", "cuda"], "no CUDA GPU", marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                                reason="a GPU is here")),
])
def test_image_bad_options(files, tmp_path, capsys, args, pattern):
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "o.png", "--model", files["model"],
                         *args)
    one_error(rc, err, "colorize-image", pattern)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("changes, pattern", [
    ({"base_channels": 2**40}, "base_channels = 1099511627776 is outside"),
    ({"num_timesteps": 10**13}, "num_timesteps must be 2 to 100000"),
    ({"head_channels": 0}, "invalid metadata"),
    ({"num_res_blocks": 10**9}, "num_res_blocks = 1000000000 is outside"),
    ({"channel_mults": [1] * 40}, "at most 8 levels"),
    ({"base_channels": 1024}, "config expects"),  # in bounds, but not what the file holds: shapes checked first
])
def test_image_absurd_model_metadata(files, tmp_path, capsys, changes, pattern):
    bad = _model_variant(tmp_path, files["model"], **changes)
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "o.png", "--model", bad)
    one_error(rc, err, "colorize-image", pattern)
    assert leftovers(tmp_path) == ["variant.safetensors"]


def test_image_pickled_model_is_never_unpickled(files, tmp_path, capsys):
    evil = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, evil)
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "o.png", "--model", evil)
    one_error(rc, err, "colorize-image", "never unpickles")


@pytest.mark.parametrize("make, pattern", [
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    (lambda p: None, "model file not found"),
])
def test_image_model_path_problems(files, tmp_path, capsys, make, pattern):
    model = tmp_path / "m.safetensors"
    make(model)
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "o.png", "--model", model)
    one_error(rc, err, "colorize-image", pattern)
    assert not (tmp_path / "o.png").exists()


def test_image_exif_orientation_is_honoured(files, tmp_path, capsys):
    rc, _, _ = run_cli(capsys, "colorize-image", files["exif"], "-o", tmp_path / "o.png", "--model", files["model"],
                       *STEPS)
    out = cv2.imread(str(tmp_path / "o.png"))
    assert rc == 0 and out.shape == (60, 40, 3)  # stored 60 wide, shown (EXIF 6) turned a quarter clockwise
    grey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(float)
    assert grey[:8].mean() > grey[-8:].mean() + 50  # the white left band is now on top


@pytest.mark.parametrize("key", ["png16", "alpha"])
def test_image_16_bit_and_alpha_are_colorized(files, tmp_path, capsys, key):
    rc, out, _ = run_cli(capsys, "colorize-image", files[key], "-o", tmp_path / "o.png", "--model", files["model"],
                         *STEPS)
    assert rc == 0 and cv2.imread(str(tmp_path / "o.png")).shape == (20, 30, 3)


def test_image_output_name_too_long(files, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / ("x" * 250 + ".png"),
                         "--model", files["model"])
    one_error(rc, err, "colorize-image", "name is too long")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where, pattern", [("missing/dir/o.png", "does not exist"), ("/proc/o.png", "/proc")])
def test_image_output_folder_problems(files, tmp_path, capsys, where, pattern):
    target = where if where.startswith("/") else tmp_path / where
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", target, "--model", files["model"])
    one_error(rc, err, "colorize-image", pattern)
    assert leftovers(tmp_path) == []


def test_image_rename_not_permitted_at_the_end(files, tmp_path, capsys, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(outputs.os, "replace", refuse)
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], "-o", tmp_path / "o.png", "--model", files["model"],
                         *STEPS)
    one_error(rc, err, "colorize-image", "Operation not permitted")
    assert leftovers(tmp_path) == []


# --- many images: the bad ones are reported, the rest done ------------------------------------------------------

def test_many_images_one_corrupt(files, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, err = run_cli(capsys, "colorize-image", files["png"], files["notes"], files["alpha"], "-o", out,
                              "--model", files["model"], *STEPS)
    lines = err.strip().splitlines()
    assert rc == 2
    assert lines[0] == f"hueshift colorize-image: error: {files['notes']} is not a readable image (PNG, JPEG, BMP, " \
                       "WebP, TIFF): it is damaged, cut short or another kind of file"
    assert lines[-1] == f"hueshift colorize-image: 2 of 3 images colorized; 1 failed: {files['notes']}"
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "photo.png"]
    assert stdout.split() == [str(out / "photo.png"), str(out / "alpha.png")]


def test_many_images_all_bad_leave_no_folder(files, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = run_cli(capsys, "colorize-image", files["notes"], files["bomb"], "-o", out, "--model", files["model"])
    assert rc == 2 and err.strip().splitlines()[-1].endswith(f"0 of 2 images colorized; 2 failed: {files['notes']}, "
                                                             f"{files['bomb']}")
    assert not out.exists()


def test_one_image_into_a_new_folder_with_a_trailing_slash(files, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "colorize-image", files["png"], "-o", f"{tmp_path / 'new'}/", "--model",
                           files["model"], *STEPS)
    assert rc == 0 and out.split() == [str(tmp_path / "new" / "photo.png")]
    assert err.strip() == f"hueshift colorize-image: 1 of 1 images colorized into {tmp_path / 'new'}"


def test_many_images_same_stem_and_file_as_folder(files, tmp_path, capsys):
    other = tmp_path / "photo.jpg"
    other.write_bytes(files["exif"].read_bytes())
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], other, "-o", tmp_path / "out", "--model",
                         files["model"])
    one_error(rc, err, "colorize-image", "would overwrite each other")
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], files["alpha"], "-o", tmp_path / "file",
                         "--model", files["model"])
    one_error(rc, err, "colorize-image", "-o must be a folder")


def test_many_images_bad_model_stops_at_once(files, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "colorize-image", files["png"], files["alpha"], "-o", tmp_path / "out",
                         "--model", tmp_path / "none.safetensors")
    one_error(rc, err, "colorize-image", "model file not found")
    assert not (tmp_path / "out").exists()


# === colorize (video) =========================================================================================

def test_video_output_equal_to_input(files, tmp_path, capsys):
    src = tmp_path / "in.mp4"
    src.write_bytes(files["grey"].read_bytes())
    before = fingerprint(src)
    rc, _, err = run_cli(capsys, "colorize", src, "-o", src, "--model", files["model"], *STEPS)
    one_error(rc, err, "colorize", "is the input")
    os.symlink(src, tmp_path / "alias.mp4")
    rc, _, err = run_cli(capsys, "colorize", src, "-o", tmp_path / "alias.mp4", "--model", files["model"], *STEPS)
    one_error(rc, err, "colorize", "is the input")
    assert fingerprint(src) == before and leftovers(tmp_path) == ["alias.mp4", "in.mp4"]


@pytest.mark.parametrize("name", ["out.avi", "out.webm", "out.txt", "out"])
def test_video_output_extension_must_fit_the_container(files, tmp_path, capsys, name):
    rc, _, err = run_cli(capsys, "colorize", files["grey"], "-o", tmp_path / name, "--model", files["model"])
    one_error(rc, err, "colorize", "give a name ending in .mp4, .m4v, .mov, .mkv")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target, pattern", [
    ("/dev/null", "character device"),
    ("{tmp}", "is a folder"),
    ("{tmp}/" + "v" * 245 + ".mp4", "name is too long"),
    ("/proc/x.mp4", "cannot create files"),
    ("{tmp}/no/x.mp4", "does not exist"),
])
def test_video_output_problems_found_before_the_work(files, tmp_path, capsys, monkeypatch, target, pattern):
    monkeypatch.setattr("hueshift_core.cli.video.get_model", lambda *a, **k: pytest.fail("model loaded"))
    rc, _, err = run_cli(capsys, "colorize", files["grey"], "-o", target.format(tmp=tmp_path), "--model",
                         files["model"])
    one_error(rc, err, "colorize", pattern)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("key, pattern", [
    ("fifo", "is a FIFO (named pipe), not a video"),
    ("empty", "empty (0 bytes)"),
    ("notes_mp4", "not a readable video"),
    ("png", "still image"),
])
def test_video_bad_input_files(files, tmp_path, capsys, key, pattern):
    rc, _, err = run_cli(capsys, "colorize", files[key], "-o", tmp_path / "o.mp4", "--model", files["model"])
    one_error(rc, err, "colorize", pattern)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("args, pattern", [
    (["--max-frames", "0"], "--max-frames must be >= 1"),
    (["--deflicker", "nan"], "deflicker strength must be in [0, 1)"),
    (["--warm-start", "2"], "warm_start must be in (0, 1]"),
    (["--seed", str(2**70)], "seed must be 0 to 2**64 - 1"),
    (["--device", "quantum"], "unknown device"),
    (["--threads", "0"], "--threads must be 1 to 1024"),
    (["--guidance", "3"], "was not trained for classifier-free guidance"),
])
def test_video_bad_options(files, tmp_path, capsys, args, pattern):
    rc, _, err = run_cli(capsys, "colorize", files["grey"], "-o", tmp_path / "o.mp4", "--model", files["model"],
                         "--no-progress", *args)
    one_error(rc, err, "colorize", pattern)
    assert leftovers(tmp_path) == []


def test_video_truncated_file_gives_one_warning_line(files, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "colorize", files["truncated"], "-o", tmp_path / "o.mp4", "--model",
                           files["model"], "--no-progress", *STEPS)
    warns = [line for line in err.splitlines() if "warning" in line]
    assert rc == 0 and len(warns) == 1, err
    assert warns[0].startswith("hueshift colorize: warning: ") and "truncated" in warns[0]
    with pytest.warns(UserWarning, match="truncated or damaged"):
        assert probe(tmp_path / "o.mp4").frame_count == sum(len(b) for b in read_frames(files["truncated"]))


def test_video_rotation_metadata_is_honoured(files, tmp_path, capsys):
    info = probe(files["rotated"])
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    rc, _, _ = run_cli(capsys, "colorize", files["rotated"], "-o", tmp_path / "o.mp4", "--model", files["model"],
                       "--no-progress", *STEPS)
    out = probe(tmp_path / "o.mp4")
    assert rc == 0 and (out.width, out.height, out.rotation) == (32, 64, 0)  # upright pixels, like a player shows


def test_video_variable_frame_rate_keeps_its_timing(files, tmp_path, capsys):
    rc, _, _ = run_cli(capsys, "colorize", files["vfr"], "-o", tmp_path / "o.mp4", "--model", files["model"],
                       "--no-progress", *STEPS)

    def times(path):
        with av.open(str(path)) as c:
            return [float(f.pts * f.time_base) for f in c.decode(video=0)]

    src, out = times(files["vfr"]), times(tmp_path / "o.mp4")
    assert rc == 0 and len(out) == len(src) == 12
    np.testing.assert_allclose(np.array(out) - out[0], np.array(src) - src[0], atol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a whole VFR file is not mistaken for a truncated one
        assert abs(probe(tmp_path / "o.mp4").duration_s - probe(files["vfr"]).duration_s) < 0.05


def test_video_raw_h264_keeps_its_frame_rate(files, tmp_path, capsys):
    assert probe(files["raw"]).fps == 24
    rc, _, _ = run_cli(capsys, "colorize", files["raw"], "-o", tmp_path / "o.mp4", "--model", files["model"],
                       "--no-progress", *STEPS)
    out = probe(tmp_path / "o.mp4")
    assert rc == 0 and out.fps == 24 and out.frame_count == 12


@pytest.mark.parametrize("h, w", [(16, 2000), (2000, 16)])
def test_video_thin_frames_are_colorized(tmp_path, tiny_model_path, h, w):
    with VideoWriter(tmp_path / "thin.mp4", w, h, 24) as wr:
        for i in range(3):
            wr.write(_frame(h, w, i))
    r = colorize_video(tmp_path / "thin.mp4", tmp_path / "o.mp4", tiny_model_path,
                       PipelineOptions(sample=SampleOptions(steps=2)))
    info = probe(tmp_path / "o.mp4")
    assert (r.frames, info.width, info.height, info.frame_count) == (3, w, h, 3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_video_sigterm_and_sighup_leave_no_partial_file(files, tmp_path, capsys, monkeypatch, sig):
    real = VideoPipeline.run

    def run_then_signal(self, batches, progress=None):
        for k, batch in enumerate(real(self, batches, progress)):
            yield batch
            if k == 0:
                os.kill(os.getpid(), sig)  # a job scheduler, `docker stop`, a closed terminal

    monkeypatch.setattr(VideoPipeline, "run", run_then_signal)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        rc, _, err = run_cli(capsys, "colorize", files["grey"], "-o", tmp_path / "o.mp4", "--model", files["model"], "--no-progress", "--max-gap", "1",
                             *STEPS)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert rc == 128 + sig and err.strip() == f"hueshift colorize: interrupted ({signal.Signals(sig).name}); " \
                                              "no partial output was left"
    assert leftovers(tmp_path) == []


def test_video_rename_not_permitted_after_the_work(files, tmp_path, capsys, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "replace", refuse)
    rc, _, err = run_cli(capsys, "colorize", files["grey"], "-o", tmp_path / "o.mp4", "--model", files["model"],
                         "--no-progress", *STEPS)
    one_error(rc, err, "colorize", "cannot put the finished video in place")
    assert leftovers(tmp_path) == []


def test_interrupt_during_start_up_is_one_line(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr("hueshift_core.cli.commands.build_parser", interrupted)
    rc, _, err = run_cli(capsys, "colorize", "in.mp4", "-o", "out.mp4")
    assert rc == 130 and err.strip() == "hueshift colorize: interrupted (Ctrl-C); no partial output was left"


def test_the_command_starts_without_importing_torch():
    """Start-up is quick, and Ctrl-C in it lands in main()'s handler, not in an import of torch."""
    code = "import sys, hueshift_core.cli; print('torch' in sys.modules, 'av' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr


# === eval =====================================================================================================

def test_eval_report_equal_to_a_clip(files, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(files["colour"].read_bytes())
    before = fingerprint(clip)
    rc, _, err = run_cli(capsys, "eval", clip, "--report", clip, "--model", files["model"], *STEPS)
    one_error(rc, err, "eval", "is the input")
    assert fingerprint(clip) == before and leftovers(tmp_path) == ["clip.mp4"]


@pytest.mark.parametrize("target, pattern", [("{tmp}", "is a folder"), ("{tmp}/no/r.json", "does not exist"),
                                             ("/dev/null", "character device")])
def test_eval_report_path_problems(files, tmp_path, capsys, target, pattern):
    rc, _, err = run_cli(capsys, "eval", files["colour"], "--report", target.format(tmp=tmp_path), "--model",
                         files["model"], *STEPS)
    one_error(rc, err, "eval", pattern)
    assert leftovers(tmp_path) == []


def test_eval_grey_clip_is_one_clear_line(files, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "eval", files["grey"], "--report", tmp_path / "r.json", "--model", files["model"],
                         *STEPS)
    one_error(rc, err, "eval", "is grey: eval compares the colorized clip with the clip's own colours")
    assert leftovers(tmp_path) == []


def test_eval_many_clips_one_bad(files, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "eval", files["colour"], files["grey"], files["notes_mp4"], "--report",
                         tmp_path / "r.json", "--model", files["model"], *STEPS)
    lines = err.strip().splitlines()
    assert rc == 2
    assert sum(line.startswith("hueshift eval: error: ") for line in lines) == 2
    assert lines[-1] == f"hueshift eval: 1 of 3 clips evaluated; 2 failed: {files['grey']}, {files['notes_mp4']}"
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report["clips"]) == ["colour"] and sorted(report["failed"]) == sorted([str(files["grey"]),
                                                                                       str(files["notes_mp4"])])
    assert leftovers(tmp_path) == ["r.json"]


def test_eval_full_disk_leaves_no_partial_report(files, tmp_path, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", full)
    rc, _, err = run_cli(capsys, "eval", files["colour"], "--report", tmp_path / "r.json", "--model", files["model"],
                         *STEPS)
    lines = err.strip().splitlines()
    assert rc == 2 and lines[0].startswith("colour ") and len(lines) == 2  # the clip's numbers, then the error
    assert lines[1] == f"hueshift eval: error: cannot write report {tmp_path / 'r.json'}: No space left on device"
    assert leftovers(tmp_path) == []


# === train ====================================================================================================

@pytest.mark.parametrize("extra", [[], ["--weights", "1", "--cond-drop", "0.1", "--threads", "1"]])
def test_train_refusal_leaves_no_run_folder(tmp_path, capsys, extra):
    run = tmp_path / "run"
    rc, _, err = run_cli(capsys, "train", tmp_path / "missing.zip", "-o", run, "--steps", "1", *extra)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("hueshift train: error: ")
    assert not run.exists()


def test_train_unknown_device(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "train", tmp_path, "-o", tmp_path / "run", "--device", "quantum")
    one_error(rc, err, "train", "unknown device")


# === the Python API ===========================================================================================

@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return get_model(tiny_model_path)


def _rgb(n=1, h=16, w=24):
    return torch.rand(n, 3, h, w)


@pytest.mark.parametrize("poison, pattern", [
    (float("nan"), "NaN or infinite"),
    (float("inf"), "NaN or infinite"),
    (255.0, "divide by 255"),
    (-0.5, "must be in [0, 1]"),
])
def test_api_colorize_frames_refuses_bad_values(tiny, poison, pattern):
    x = _rgb()
    x[0, 0, 3, 3] = poison
    with pytest.raises(InputError, match=pattern.replace("[", r"\[").replace("]", r"\]")):
        colorize_frames(tiny, x, SampleOptions(steps=1))


def test_api_colorize_frames_0_255_frame_is_refused_not_whitened(tiny):
    with pytest.raises(InputError, match="divide by 255"):
        colorize_frames(tiny, _rgb() * 255, SampleOptions(steps=1))


def test_api_uint8_tensor_and_float_image(tiny):
    with pytest.raises(InputError, match="x.float"):
        colorize_frames(tiny, (torch.rand(1, 3, 8, 8) * 255).byte(), SampleOptions(steps=1))
    with pytest.raises(InputError, match="uint8 numpy array, got float32"):
        colorize_image(np.zeros((8, 8, 3), np.float32), tiny)


def test_api_upscale_merge_refuses_nan_chroma():
    ab = torch.zeros(1, 2, 8, 8)
    ab[0, 0, 1, 1] = float("nan")
    with pytest.raises(InputError, match="chroma contains NaN"):
        upscale_merge(_rgb(1, 16, 16), ab)


@pytest.mark.parametrize("make", [
    lambda: SampleOptions(sampler="euler"),
    lambda: SampleOptions(seed=2**70),
    lambda: SampleOptions(steps=0),
    lambda: SampleOptions(seed=1.5),
    lambda: PipelineOptions(mode="fast"),
    lambda: upscale_ab(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 16, 16), "lanczos"),
    lambda: get_model(None, "quantum"),
    lambda: VideoWriter("out.avi", 32, 32, 24),
])
def test_api_errors_are_hueshift_errors(make):
    with pytest.raises(HueShiftError) as err:
        make()
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_api_cuda_without_a_gpu(tiny_model_path):
    with pytest.raises(InputError, match="no CUDA GPU"):
        get_model(tiny_model_path, "cuda")


def test_api_colorize_video_onto_itself(files, tmp_path, tiny):
    src = tmp_path / "in.mp4"
    src.write_bytes(files["grey"].read_bytes())
    with pytest.raises(VideoError, match="is the input"):
        colorize_video(src, src, tiny)
    assert src.read_bytes() == files["grey"].read_bytes() and leftovers(tmp_path) == ["in.mp4"]


def test_api_thin_image(tiny):
    out = colorize_image(np.zeros((16, 2000), np.uint8), tiny, options=SampleOptions(steps=1))
    assert out.shape == (16, 2000, 3)


# === the nodes (through the pack, with ComfyUI's stand-ins) ===================================================

PACK = "comfyui_hueshift_bad_input"


@pytest.fixture(scope="module")
def pack(comfy_standins, tiny_model_path):
    """The node pack imported as ComfyUI imports it, and the tiny model loaded by the pack's own core."""
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    try:
        spec.loader.exec_module(module)
        color = importlib.import_module(f"{PACK}.nodes.colorize")
        errors = importlib.import_module(f"{PACK}.hueshift_core.errors")
        model = importlib.import_module(f"{PACK}.hueshift_core.model.checkpoint").load_model(tiny_model_path)

        class Held:  # what the model loader hands on: the model to sample with
            def for_sampling(self):
                return model

        yield color, errors, Held()
    finally:
        for name in [k for k in sys.modules if k == PACK or k.startswith(PACK + ".")]:
            del sys.modules[name]


def _images(n=2, h=24, w=40):
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    v = 0.2 + 0.6 * (x + y) / 2
    return torch.stack([v, v, v], -1)[None].repeat(n, 1, 1, 1).contiguous()


@pytest.mark.parametrize("poison, pattern", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                             (200.0, "divide by 255")])
def test_node_ddpm_colorize_refuses_bad_values(pack, poison, pattern):
    color, errors, held = pack
    img = _images()
    img[1, 5, 5, 0] = poison
    with pytest.raises(errors.InputError, match=pattern):
        color.DDPMColorize.execute(images=img, model=held, steps=1, sampler="ddim", seed=0, batch_size=2,
                                   working_size=16)


def test_node_lab_upscale_refuses_bad_values_and_takes_good_ones(pack):
    color, errors, held = pack
    img = _images()
    chroma = color.DDPMColorize.execute(images=img, model=held, steps=1, sampler="ddim", seed=0, batch_size=2,
                                        working_size=16).args[0]
    with pytest.raises(errors.InputError, match="divide by 255"):
        color.LABUpscale.execute(images=img * 255, chroma=chroma, method="guided")
    bad = img.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(errors.InputError, match="NaN or infinite"):
        color.LABUpscale.execute(images=bad, chroma=chroma, method="guided")
    out = color.LABUpscale.execute(images=img, chroma=chroma, method="guided").args[0]
    assert out.shape == img.shape and bool(torch.isfinite(out).all())
