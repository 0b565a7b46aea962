"""`hueshift eval`: report structure and the ground-truth / grey baselines, on a synthetic colour clip."""

import json
import subprocess
import sys

import numpy as np
from test_pipeline import synthetic

from hueshift_core.evaluation import VideoMetrics, evaluate, grey_like
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions
from hueshift_core.video import read_frames
from hueshift_core.video.pipeline import PipelineOptions


def test_report_has_all_numbers_and_baselines(tmp_path, tiny_model_path):
    clip = synthetic(tmp_path / "clip.mp4", n=10, colour=True)
    model = get_model(tiny_model_path)
    (tmp_path / "saved").mkdir()
    res = evaluate([clip], model, PipelineOptions(sample=SampleOptions(steps=2)), save_dir=tmp_path / "saved",
                   log=lambda s: None)
    r = res["clips"]["clip"]
    assert r["frames"] == 10 and r["fps"] > 0
    for label in ("hueshift", "ground_truth", "grey"):
        for key in ("psnr", "ciede2000", "colourfulness_output", "colourfulness_ratio", "cdc", "warp_error"):
            assert key in r[label], (label, key)
    assert r["ground_truth"]["ciede2000"] == 0 and r["ground_truth"]["colourfulness_ratio"] == 1
    assert r["grey"]["colourfulness_output"] < 1.0
    assert (tmp_path / "saved" / "clip.mp4").exists()
    # the report's ground-truth numbers equal an independent pass of the metrics over the decoded clip
    frames = [f for b in read_frames(clip) for f in b]
    vm = VideoMetrics()
    for f in frames:
        vm.update(f, f)
    assert abs(vm.summary().cdc - r["ground_truth"]["cdc"]) < 1e-12
    vg = VideoMetrics()
    for f in frames:
        vg.update(grey_like(f), f)
    assert abs(vg.summary().ciede2000 - r["grey"]["ciede2000"]) < 1e-9
    assert res["average"]["hueshift"]["ciede2000"] == r["hueshift"]["ciede2000"]


def test_cli_writes_report(tmp_path, tiny_model_path):
    clip = synthetic(tmp_path / "c.mp4", n=6, colour=True)
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "hueshift_core.cli", "eval", str(clip), "--report", str(report),
                        "--model", str(tiny_model_path), "--steps", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(report.read_text())
    assert set(data) >= {"clips", "average", "settings", "machine"}
    assert np.isfinite(data["average"]["hueshift"]["ciede2000"])


def test_report_baselines_match_independent_implementations(tmp_path, tiny_model_path):
    """Ground-truth CDC and grey ΔE00 of the report, recomputed from their definitions with SciPy and
    scikit-image instead of hueshift_core.evaluation."""
    import pytest
    distance = pytest.importorskip("scipy.spatial.distance")
    skcolor = pytest.importorskip("skimage.color")
    clip = synthetic(tmp_path / "clip.mp4", n=9, colour=True)
    r = evaluate([clip], get_model(tiny_model_path), PipelineOptions(sample=SampleOptions(steps=1)),
                 log=lambda s: None)["clips"]["clip"]
    frames = [f for b in read_frames(clip) for f in b]

    def hist(f):
        return [np.bincount(f[..., c].ravel(), minlength=256) / f[..., c].size for c in range(3)]

    per_gap = []
    for d in (1, 2, 4):
        js = [np.mean([distance.jensenshannon(p, q) ** 2 for p, q in zip(hist(frames[i]), hist(frames[i + d]))])
              for i in range(len(frames) - d)]
        per_gap.append(np.mean(js))
    assert abs(np.mean(per_gap) - r["ground_truth"]["cdc"]) < 1e-9

    de = []
    for f in frames:
        lab = skcolor.rgb2lab(f / 255.0)
        lab[..., 1:] = 0
        grey = np.clip(np.round(skcolor.lab2rgb(lab) * 255), 0, 255) / 255.0
        de.append(skcolor.deltaE_ciede2000(skcolor.rgb2lab(grey), skcolor.rgb2lab(f / 255.0)).mean())
    assert abs(np.mean(de) - r["grey"]["ciede2000"]) < 0.05
