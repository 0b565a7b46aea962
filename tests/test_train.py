import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY
from safetensors import safe_open

from hueshift_core.errors import CheckpointError, InputError
from hueshift_core.model.checkpoint import load_model
from hueshift_core.model.unet import ColorUNet
from hueshift_core.training import TrainConfig, Trainer, load_images

ROOT = Path(__file__).resolve().parents[1]


def _jpeg(rng, size=64, grey=False):
    img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    if grey:
        img = np.repeat(img[..., :1], 3, axis=2)
    ok, buf = cv2.imencode(".jpg", img)
    return buf.tobytes()


@pytest.fixture
def shard(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "train-00.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(40):
            z.writestr(f"img_{i}.JPEG", _jpeg(rng))
        z.writestr("grey_0.JPEG", _jpeg(rng, grey=True))
        z.writestr("broken_0.JPEG", b"\xff\xd8 not really a jpeg")
    return path


def test_load_images_counts_skips(shard):
    data = load_images([shard])
    assert len(data) == 40 and data.images.shape == (40, 64, 64, 3) and data.images.dtype == torch.uint8
    assert data.skipped == {"grey": 1, "unreadable": 1}


def test_load_images_folder_and_video(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.GaussianBlur(rng.integers(0, 255, (80, 120, 3), np.uint8), (0, 0), 2))
    vid = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for i in range(20):
        w.write(cv2.GaussianBlur(rng.integers(0, 255, (72, 96, 3), np.uint8), (0, 0), 2))
    w.release()
    data = load_images([tmp_path], video_every=5)
    assert data.images.shape[1:] == (64, 64, 3)
    assert len(data) == 3 + 4


def test_bad_data_sources(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match="not a valid zip"):
        load_images([bad])
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(InputError, match="holds no images"):
        load_images([empty])
    with pytest.raises(InputError, match="not found"):
        load_images([tmp_path / "missing.zip"])
    greys = tmp_path / "greys.zip"
    with zipfile.ZipFile(greys, "w") as z:
        z.writestr("g.JPEG", _jpeg(np.random.default_rng(0), grey=True))
    with pytest.raises(InputError, match="no usable colour images"):
        load_images([greys])


def _trainer(data, out, steps, init_seed=0, seed=0):
    torch.manual_seed(init_seed)
    net = ColorUNet(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    cfg = TrainConfig(batch_size=8, max_steps=steps, warmup_steps=2, log_every=1, ckpt_every=0, sample_every=0,
                      val_every=0, seed=seed)
    train, val = data.split(8)
    return Trainer(net, train, opt, cfg, out_dir=out, val=val)


def test_training_reduces_loss_and_writes_files(shard, tmp_path):
    data = load_images([shard])
    tr = _trainer(data, tmp_path / "run", steps=30)
    before = tr.validation_loss()
    result = tr.fit(progress=False)
    assert result["step"] == 30
    assert result["val_loss"] < before
    assert (tmp_path / "run" / "last.safetensors").exists() and (tmp_path / "run" / "ema.safetensors").exists()
    model = load_model(tmp_path / "run" / "ema.safetensors")
    assert model.info.provenance["steps"] == 30
    tr.sample_grid(tmp_path / "grid.png", n=2, steps=2)
    assert cv2.imread(str(tmp_path / "grid.png")).shape == (3 * 64, 2 * 64, 3)


def test_resume_is_exact(shard, tmp_path):
    data = load_images([shard])
    straight = _trainer(data, tmp_path / "a", steps=6)
    straight.fit(progress=False)
    first = _trainer(data, tmp_path / "b", steps=6)
    for _ in range(3):  # stopped half-way, as by Ctrl-C or a time limit
        first.train_step()
    (tmp_path / "b").mkdir()
    first.save_training_state(tmp_path / "b" / "last.safetensors")
    resumed = _trainer(data, tmp_path / "b", steps=6, init_seed=123)  # a different init: resume must overwrite it
    resumed.gen.manual_seed(99)
    resumed.load_training_state(tmp_path / "b" / "last.safetensors")
    assert resumed.step == 3
    resumed.fit(progress=False)
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_from_other_config_refused(shard, tmp_path):
    data = load_images([shard])
    tr = _trainer(data, tmp_path / "a", steps=1)
    tr.fit(progress=False)
    from hueshift_core.model.unet import UNetConfig
    other_cfg = UNetConfig(**{**TINY.__dict__, "base_channels": 24})
    net = ColorUNet(other_cfg)
    other = Trainer(net, data, torch.optim.AdamW(net.parameters()), tr.cfg, out_dir=tmp_path / "c")
    with pytest.raises(CheckpointError, match="another model config"):
        other.load_training_state(tmp_path / "a" / "last.safetensors")


def test_cli_errors(shard, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    blocked = tmp_path / "file"
    blocked.write_text("x")
    r = subprocess.run([sys.executable, "-m", "hueshift_core.cli", "train", str(shard), "-o", str(blocked / "run"),
                        "--steps", "1", "--batch", "4", "--holdout", "4", "--device", "cpu", "--config", TINY.to_json()],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "hueshift_core.cli", "train", str(tmp_path / "nope.zip"), "-o",
                        str(tmp_path / "r")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "not found" in r.stderr


@pytest.mark.slow
def test_ddp_two_processes_end_with_identical_weights(shard, tmp_path):
    """`torchrun --nproc_per_node 2` on the CPU (gloo): both ranks hold the same weights after training."""
    script = tmp_path / "ddp_check.py"
    script.write_text(f"""
import sys, torch, torch.distributed as dist
from safetensors.torch import save_file
sys.path.insert(0, {str(ROOT)!r})
from hueshift_core import training as train
args = train.build_parser().parse_args([{str(shard)!r}, "-o", {str(tmp_path / 'run')!r}, "--steps", "4", "--batch", "8",
    "--holdout", "8", "--device", "cpu", "--no-progress", "--log-every", "2", "--val-every", "0",
    "--sample-every", "0", "--config", {TINY.to_json()!r}])
dist.init_process_group("gloo")
trainer = train.run_training(args, torch.device("cpu"))
assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
save_file({{k: v.contiguous() for k, v in trainer.net.state_dict().items()}},
          {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.safetensors")
dist.destroy_process_group()
""")

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                        str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = _weights(tmp_path / "rank0.safetensors")
    w1 = _weights(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys() and len(w0) > 10
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    init = ColorUNet(TINY).state_dict()
    assert any(not torch.equal(w0[k], init[k]) for k in w0), "weights did not change"
    assert (tmp_path / "run" / "model-fp16.safetensors").exists()
    assert not (tmp_path / "run" / "rank1").exists()


def _weights(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}
