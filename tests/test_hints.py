"""The user's colours: hints and reference frames, from the parsing to the CLI and the video pipeline."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from hueshift_core.errors import InputError
from hueshift_core.hints import (
    FrameColour,
    HintPoint,
    hints_from_png,
    load_user_colours,
    parse_colour,
    parse_reference_arg,
    points_from_json,
    rasterise,
    reference_from_image,
    to_working,
    user_colours,
)
from hueshift_core.images import colorize_image

RED = (200, 30, 30)


def test_colours_parse_and_refuse_clearly():
    assert parse_colour("#b03020") == (176, 48, 32)
    assert parse_colour("b03020") == (176, 48, 32)
    assert parse_colour("#f00") == (255, 0, 0)
    assert parse_colour([1, 2, 3]) == (1, 2, 3)
    for bad in ("red", "#12345", "#gg0000", 7, [1, 2, 300]):
        with pytest.raises(InputError, match="#rrggbb"):
            parse_colour(bad)


@pytest.mark.parametrize("data,match", [
    ([], "no hints"),
    ({"x": 0.5}, "JSON list"),
    ([{"x": 1.2, "y": 0.5, "color": "#ff0000"}], "outside the frame"),
    ([{"x": 0.5, "y": -0.1, "color": "#ff0000"}], "outside the frame"),
    ([{"x": 0.5, "color": "#ff0000"}], "no \"y\""),
    ([{"x": 0.5, "y": 0.5}], "no \"color\""),
    ([{"x": 0.5, "y": 0.5, "color": "blue"}], "#rrggbb"),
    ([{"x": 0.5, "y": 0.5, "color": "#00f", "frame": -1}], "frame index"),
    ([{"x": 0.5, "y": 0.5, "color": "#00f", "frame": 1, "time": 0.5}], "both"),
    ([{"x": 0.5, "y": 0.5, "color": "#00f", "radius": 2}], "radius"),
    ([{"x": 0.5, "y": 0.5, "color": "#00f", "size": 2}], "unknown field"),
    ([{"x": 0.5, "y": 0.5, "color": "#00f"}] * 1001, "more than 1000"),
])
def test_bad_hints_are_refused_with_one_line(data, match):
    with pytest.raises(InputError, match=match) as err:
        points_from_json(data)
    assert "\n" not in str(err.value)


def test_points_rasterise_where_they_say():
    fc = rasterise([HintPoint(0.25, 0.5, RED, radius=0.05)], 100, 200)
    ys, xs = np.nonzero(fc.mask)
    assert abs(xs.mean() - 50) <= 1 and abs(ys.mean() - 50) <= 1
    assert fc.ab[50, 50, 0] > 40  # red: a > 0
    assert fc.mask.sum() < 200 and not fc.reference
    # a tiny dot still reaches the model's working size
    ab, mask = to_working(rasterise([HintPoint(0.5, 0.5, RED, radius=0.0)], 480, 854), (64, 112))
    assert mask.sum() >= 1 and ab[0, 0][mask[0, 0] > 0].min() > 0.3


def test_frames_from_time_and_past_the_end():
    pts = points_from_json([{"x": 0.5, "y": 0.5, "color": "#00f", "time": 1.0},
                            {"x": 0.5, "y": 0.5, "color": "#f00", "frame": 3}, {"x": 0.1, "y": 0.1, "color": "#0f0"}])
    got = user_colours(48, 64, hints=pts, fps=24.0, num_frames=30)
    assert sorted(got) == [0, 3, 24]
    with pytest.raises(InputError, match="past the end"):
        user_colours(48, 64, hints=pts, fps=24.0, num_frames=20)


def test_png_hints_and_references(tmp_path):
    rgba = np.zeros((90, 160, 4), np.uint8)
    rgba[10:20, 10:20] = (30, 30, 200, 255)  # BGR red, opaque
    cv2.imwrite(str(tmp_path / "h.png"), rgba)
    fc = hints_from_png(tmp_path / "h.png", 45, 80)  # same aspect, half size
    assert fc.mask.shape == (45, 80) and 20 <= fc.mask.sum() <= 30 and fc.ab[7, 7, 0] > 40
    with pytest.raises(InputError, match="aspect"):
        hints_from_png(tmp_path / "h.png", 80, 80)
    cv2.imwrite(str(tmp_path / "no-alpha.png"), rgba[..., :3])
    with pytest.raises(InputError, match="alpha"):
        hints_from_png(tmp_path / "no-alpha.png", 90, 160)
    cv2.imwrite(str(tmp_path / "clear.png"), np.zeros((90, 160, 4), np.uint8))
    with pytest.raises(InputError, match="no opaque"):
        hints_from_png(tmp_path / "clear.png", 90, 160)
    ref = np.zeros((90, 160, 3), np.uint8)
    ref[:] = RED
    fc = reference_from_image(ref, 180, 320)
    assert fc.reference and fc.mask.min() == 1 and fc.ab.shape == (180, 320, 2)
    with pytest.raises(InputError, match="grey"):
        reference_from_image(np.full((90, 160, 3), 128, np.uint8), 90, 160)
    with pytest.raises(InputError, match="aspect"):
        reference_from_image(ref, 100, 100)
    assert parse_reference_arg("a/b.png@12") == (tmp_path.__class__("a/b.png"), 12)
    assert parse_reference_arg("a@b.png")[1] == 0


def test_hints_reach_the_photo_and_a_reference_sets_its_colour(prior_model):
    grey = np.tile(np.linspace(40, 220, 128, dtype=np.uint8), (72, 1))
    plain = colorize_image(grey, prior_model)
    hinted = colorize_image(grey, prior_model, hints=[HintPoint(0.5, 0.5, RED, radius=0.2)])
    assert np.abs(plain.astype(int) - hinted).mean() > 0.5
    ref = np.zeros((72, 128, 3), np.uint8)
    ref[:] = RED
    out = colorize_image(grey, prior_model, reference=ref)
    lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(int)
    assert lab[..., 1].mean() - 128 > 20  # red everywhere: the reference's colour
    with pytest.raises(InputError, match="not both"):
        colorize_image(grey, prior_model, reference=ref, hints=[HintPoint(0.5, 0.5, RED)])


def test_hints_need_a_model_with_a_prior(tiny_model_path):
    grey = np.full((64, 64), 128, np.uint8)
    with pytest.raises(InputError, match="colour prior"):
        colorize_image(grey, tiny_model_path, hints=[HintPoint(0.5, 0.5, RED)])


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hueshift_core.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_cli_colorize_image_with_hints_and_bad_hints(tmp_path, prior_model):
    grey = np.tile(np.linspace(40, 220, 128, dtype=np.uint8), (72, 1))
    cv2.imwrite(str(tmp_path / "in.png"), grey)
    (tmp_path / "h.json").write_text(json.dumps([{"x": 0.5, "y": 0.5, "color": "#c02020", "radius": 0.2}]))
    r = _cli("colorize-image", tmp_path / "in.png", "-o", tmp_path / "out.png", "--model", prior_model.path,
             "--hints", tmp_path / "h.json", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "out.png")).shape == (72, 128, 3)
    for content, match in (("", "empty"), ("[{\"x\": 2, \"y\": 0.5, \"color\": \"#fff\"}]", "outside the frame"),
                           ("{not json", "not valid JSON"), ("[{\"x\": 0.5, \"y\": 0.5, \"color\": \"pink\"}]", "#rrggbb"),
                           ("[{\"x\": 0.5, \"y\": 0.5, \"color\": \"#fff\", \"frame\": 3}]", "photo")):
        (tmp_path / "bad.json").write_text(content)
        r = _cli("colorize-image", tmp_path / "in.png", "-o", tmp_path / "bad-out.png", "--model", prior_model.path,
                 "--hints", tmp_path / "bad.json", "--no-progress")
        assert r.returncode == 2 and match in r.stderr, (content, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "bad-out.png").exists()
    cv2.imwrite(str(tmp_path / "grey-ref.png"), grey)
    r = _cli("colorize-image", tmp_path / "in.png", "-o", tmp_path / "bad-out.png", "--model", prior_model.path,
             "--reference", tmp_path / "grey-ref.png", "--no-progress")
    assert r.returncode == 2 and "grey" in r.stderr and not (tmp_path / "bad-out.png").exists()


def test_video_hints_become_keyframes_and_carry(prior_model, tmp_path):
    """A hinted frame in the middle of a shot becomes a keyframe; a reference on frame 0 sets the shot's colour,
    and it is carried to the frames after it."""
    from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (72, 136), dtype=np.uint8), (0, 0), 3)
    frames = np.stack([np.roll(base, k, axis=1) for k in range(12)])
    rgb = np.repeat(frames[..., None], 3, axis=-1)
    ref = np.zeros((72, 136, 3), np.uint8)
    ref[:] = (40, 90, 200)  # blue
    user = user_colours(72, 136, references={0: ref}, hints=[HintPoint(0.5, 0.5, RED, radius=0.3, frame=6)],
                        num_frames=12)
    pipe = VideoPipeline(prior_model, PipelineOptions(deflicker=0.0, overlap=False), user=user)
    out = np.concatenate(list(pipe.run(iter([rgb[:6], rgb[6:]]))))
    lab = cv2.cvtColor(out.reshape(-1, 136, 3), cv2.COLOR_RGB2LAB).reshape(12, 72, 136, 3).astype(int) - 128
    assert lab[0, ..., 2].mean() < -20 and lab[1, ..., 2].mean() < -15  # blue at the reference, and carried
    assert lab[6, 30:42, 60:76, 1].mean() > 15  # red at the hint on frame 6, which took over
    assert pipe.stats.keyframes >= 2  # frame 6 was made a keyframe
    plain = VideoPipeline(prior_model, PipelineOptions(deflicker=0.0, overlap=False))
    list(plain.run(iter([rgb])))
    assert plain.stats.keyframes == 1


def test_load_user_colours_from_files(tmp_path):
    (tmp_path / "h.json").write_text(json.dumps([{"x": 0.5, "y": 0.5, "color": "#c02020", "frame": 2}]))
    ref = np.zeros((36, 64, 3), np.uint8)
    ref[:] = RED
    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(ref, cv2.COLOR_RGB2BGR))
    got = load_user_colours(tmp_path / "h.json", [f"{tmp_path / 'ref.png'}@5"], 72, 128, fps=24, num_frames=10)
    assert sorted(got) == [2, 5] and got[5].reference and isinstance(got[2], FrameColour)
    with pytest.raises(InputError, match="outside the video"):
        load_user_colours(None, [f"{tmp_path / 'ref.png'}@50"], 72, 128, fps=24, num_frames=10)
    with pytest.raises(InputError, match="not found"):
        load_user_colours(tmp_path / "missing.json", None, 72, 128)


def test_cli_video_hints_colorize_and_colorize_many(tmp_path):
    """`hueshift colorize --hints` and `colorize-many --hints {stem: [...]}` on the bundled example clip: the hinted
    colour is in the output where it was put; a hint past the end is refused with one line and nothing written."""
    from pathlib import Path

    from hueshift_core.video import read_frames

    clip = Path(__file__).resolve().parents[1] / "workflows" / "input" / "hueshift_example.mp4"
    point = {"x": 0.55, "y": 0.4, "color": "#2050d0", "radius": 0.15, "frame": 0}
    (tmp_path / "h.json").write_text(json.dumps([point]))
    (tmp_path / "many.json").write_text(json.dumps({"hueshift_example": [point]}))
    r = _cli("colorize", clip, "-o", tmp_path / "one.mp4", "--hints", tmp_path / "h.json", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = _cli("colorize-many", clip, "-o", tmp_path / "many", "--hints", tmp_path / "many.json", "--no-progress")
    assert r.returncode == 0, r.stderr
    r = _cli("colorize", clip, "-o", tmp_path / "auto.mp4", "--no-progress")
    assert r.returncode == 0, r.stderr
    blue = {}
    for name, path in (("one", tmp_path / "one.mp4"), ("many", tmp_path / "many" / "hueshift_example.mp4"),
                       ("auto", tmp_path / "auto.mp4")):
        f = next(iter(read_frames(str(path), 1)))[0]
        lab = cv2.cvtColor(f, cv2.COLOR_RGB2LAB).astype(int) - 128
        blue[name] = lab[60:85, 160:190, 2].mean()  # b at the hint (blue: negative)
    assert blue["one"] < blue["auto"] - 10 and abs(blue["one"] - blue["many"]) < 1, blue
    (tmp_path / "late.json").write_text(json.dumps([{**point, "frame": 500}]))
    r = _cli("colorize", clip, "-o", tmp_path / "late.mp4", "--hints", tmp_path / "late.json", "--no-progress")
    assert r.returncode == 2 and "past the end" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "late.mp4").exists()

    # colorize-many --reference FOLDER: <stem>.png gives the video's frame 0 its colour (a blue-tinted frame here)
    first = next(iter(read_frames(str(clip), 1)))[0]
    lab = cv2.cvtColor(first, cv2.COLOR_RGB2LAB)
    lab[..., 1], lab[..., 2] = 128, 80  # every pixel blue, the frame's own lightness
    refs = tmp_path / "refs"
    refs.mkdir()
    blue_bgr = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    cv2.imwrite(str(refs / "hueshift_example.png"), blue_bgr)
    r = _cli("colorize-many", clip, "-o", tmp_path / "ref", "--reference", refs, "--no-progress")
    assert r.returncode == 0, r.stderr
    f = next(iter(read_frames(str(tmp_path / "ref" / "hueshift_example.mp4"), 1)))[0]
    assert (cv2.cvtColor(f, cv2.COLOR_RGB2LAB).astype(int) - 128)[..., 2].mean() < -25
    # a reference named after no input, a grey one, one of another aspect: one line each, exit 2, no video
    for name, img, match in (("other_clip.png", blue_bgr, "name no input"),
                             ("hueshift_example@3.png", cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), "is grey"),
                             ("hueshift_example@3.png", blue_bgr[:, :blue_bgr.shape[1] // 2], "aspect ratio")):
        bad = tmp_path / f"bad-{match.replace(' ', '-')}"
        bad.mkdir()
        cv2.imwrite(str(bad / name), img)
        r = _cli("colorize-many", clip, "-o", bad / "out", "--reference", bad, "--no-progress")
        assert r.returncode == 2 and match in r.stderr, r.stderr
        assert not list((bad / "out").glob("*.mp4")) if (bad / "out").exists() else True


def test_spread_hints_follows_surfaces_and_keeps_the_rest():
    """A hint's colour reaches its own surface (same lightness), much less across an edge, nothing far away."""
    from hueshift_core.hints import spread_hints

    h, w = 64, 112
    l = torch.full((1, 1, h, w), -0.5)
    l[..., 40:] = 0.6  # two surfaces: dark on the left, light on the right
    ab = torch.zeros(1, 2, h, w)
    hint, mask = torch.zeros(1, 2, h, w), torch.zeros(1, 1, h, w)
    hint[:, 0, 30, 30], mask[:, :, 30, 30] = 0.5, 1.0
    out = spread_hints(ab, l, hint, mask)
    assert abs(float(out[0, 0, 30, 30]) - 0.5) < 0.03  # at the hint: the hint's colour
    same, across = float(out[0, 0, 30, 22]), float(out[0, 0, 30, 44])  # 8 px away on each side
    assert same > 0.3 and across < 0.5 * same
    far = spread_hints(ab, l, hint, mask, sigma_space=0.05)
    assert float(far[0, 0, 30, 100].abs()) < 1e-3
    assert torch.equal(spread_hints(ab, l, hint, torch.zeros_like(mask)), ab)  # no hints: unchanged
