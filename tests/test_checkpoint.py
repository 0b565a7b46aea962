import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from conftest import TINY
from safetensors.torch import save_file

from hueshift_core.errors import CheckpointError
from hueshift_core.model.checkpoint import (
    ModelInfo,
    default_model_path,
    load_model,
    read_info,
    resolve_model_path,
    save_checkpoint,
)
from hueshift_core.model.diffusion import Prediction, Schedule
from hueshift_core.model.unet import ColorUNet


def _info(**prov):
    return ModelInfo(TINY, Schedule.LINEAR, 1000, Prediction.EPS, prov)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = ColorUNet(TINY)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, net.state_dict(), _info(steps=12, data="unit"))
    info = read_info(path)
    assert info.config == TINY and info.schedule is Schedule.LINEAR and info.prediction is Prediction.EPS
    assert info.provenance == {"steps": 12, "data": "unit"}
    model = load_model(path)
    for k, v in net.state_dict().items():
        assert torch.equal(model.net.state_dict()[k], v), k
    assert not model.net.training
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_fp16_save_loads_as_float32(tmp_path):
    net = ColorUNet(TINY)
    path = tmp_path / "h.safetensors"
    save_checkpoint(path, net.state_dict(), _info(), dtype=torch.float16)
    m = load_model(path)
    assert m.dtype == torch.float32
    w = net.state_dict()["stem.weight"]
    torch.testing.assert_close(m.net.state_dict()["stem.weight"], w.half().float())


def test_pickle_renamed_safetensors_is_refused(tmp_path):
    path = tmp_path / "evil.safetensors"
    torch.save(ColorUNet(TINY).state_dict(), path)  # a zip-based pickle
    with pytest.raises(CheckpointError, match="never unpickles") as err:
        load_model(path)
    assert "\n" not in str(err.value)
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=2))  # a legacy pickle stream
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_model(raw)


def test_a_safetensors_header_length_that_looks_like_a_pickle_opcode_loads(tmp_path):
    """The first bytes of a safetensors file are its header length's lowest: 0x80 (a pickle's first opcode)
    for about 1 file in 32 (the length is a multiple of 8), "PK" (a zip's) more rarely; such a file is
    safetensors all the same and loads."""
    net = ColorUNet(TINY)

    def save(pad: int) -> Path:
        path = tmp_path / f"h{pad}.safetensors"
        save_checkpoint(path, net.state_dict(), _info(pad="x" * pad))
        return path

    base = struct.unpack("<Q", save(0).read_bytes()[:8])[0]
    for lowest, mask in ((0x80, 0xFF), (0x4B50, 0xFFFF)):  # the first byte 0x80; the first two "PK"
        want = base + ((lowest - base) & mask)
        path = next((p for p in map(save, range(max(0, want - base - 8), want - base + 9))
                     if struct.unpack("<Q", p.read_bytes()[:8])[0] & mask == lowest), None)
        assert path is not None, f"no padding gave a header length ending {lowest:#x}"
        assert path.read_bytes()[:1] == b"\x80" if lowest == 0x80 else path.read_bytes()[:2] == b"PK"
        assert load_model(path).net.state_dict()["stem.weight"].shape == net.state_dict()["stem.weight"].shape


@pytest.mark.parametrize("content,match", [
    (b"", "empty"),
    (b"\x01\x02\x03", "truncated"),
    (bytes(range(256)) * 10, "not a valid safetensors"),
    (struct.pack("<Q", 10_000) + b"{}", "not a valid safetensors"),
])
def test_corrupt_files(tmp_path, content, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_model(path)


def test_truncated_real_checkpoint(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, ColorUNet(TINY).state_dict(), _info())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="folder"):
        load_model(tmp_path)


def test_plain_safetensors_without_metadata(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a HueShift model"):
        load_model(path)


def test_missing_extra_and_misshaped_tensors(tmp_path):
    sd = ColorUNet(TINY).state_dict()
    path = tmp_path / "m.safetensors"
    missing = dict(sd)
    missing.pop("stem.weight")
    save_checkpoint(path, missing, _info())
    with pytest.raises(CheckpointError, match="1 missing"):
        load_model(path)
    save_checkpoint(path, {**sd, "bonus": torch.zeros(1)}, _info())
    with pytest.raises(CheckpointError, match="unexpected"):
        load_model(path)
    save_checkpoint(path, {**sd, "stem.weight": torch.zeros(3, 3)}, _info())
    with pytest.raises(CheckpointError, match="shape"):
        load_model(path)


def test_unknown_config_or_schedule(tmp_path):
    path = tmp_path / "m.safetensors"
    sd = {k: v.contiguous() for k, v in ColorUNet(TINY).state_dict().items()}
    meta = {"hueshift.format": "1", "hueshift.unet_config": json.dumps({"base_channels": 16, "warp": 9}),
            "hueshift.schedule": "cosine", "hueshift.num_timesteps": "1000", "hueshift.prediction": "v"}
    save_file(sd, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="unknown model config"):
        load_model(path)
    meta["hueshift.unet_config"] = TINY.to_json()
    meta["hueshift.schedule"] = "sigmoid"
    save_file(sd, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="invalid metadata"):
        load_model(path)
    del meta["hueshift.prediction"]
    meta["hueshift.schedule"] = "cosine"
    save_file(sd, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="'hueshift.prediction' is missing"):
        load_model(path)


def test_nan_weights_refused(tmp_path):
    sd = ColorUNet(TINY).state_dict()
    sd["stem.weight"] = torch.full_like(sd["stem.weight"], float("nan"))
    path = tmp_path / "nan.safetensors"
    save_checkpoint(path, sd, _info())
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(path)


def test_default_model_is_shipped_and_loads():
    path = resolve_model_path(None)
    assert path == default_model_path()
    assert path.stat().st_size <= 32 * 1024 * 1024  # issue 19: hueshift-v3 with its colour prior, <= 32 MB
    model = load_model(path)
    info = model.info
    assert info.provenance.get("steps", 0) > 1000, "the shipped model must be trained"
    assert model.prior is not None, "the shipped model carries the colour prior its sampling is anchored on"
    from hueshift_core.model.checkpoint import load_state

    prior_prov = json.loads(load_state(path)[1]["hueshift.prior_provenance"])
    assert prior_prov["crops_seen"] > 30_000, "the colour prior must be trained"


def test_a_shipped_model_by_its_name(tmp_path, monkeypatch, capsys):
    """`--model hueshift-v2` finds the shipped file wherever the package is installed; a file of that name in the
    working folder still wins; an unknown name says which models are shipped."""
    from hueshift_core.cli.commands import main
    from hueshift_core.model.checkpoint import shipped_models

    names = shipped_models()
    assert names[:2] == ["hueshift-v1", "hueshift-v2"] and default_model_path().stem == names[-1]
    weights = default_model_path().parent
    assert resolve_model_path("hueshift-v2") == weights / "hueshift-v2.safetensors"
    assert resolve_model_path("hueshift-v2.safetensors") == weights / "hueshift-v2.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hueshift-v2.safetensors").write_bytes(b"")
    assert resolve_model_path("hueshift-v2.safetensors") == Path("hueshift-v2.safetensors")
    with pytest.raises(CheckpointError, match="not a shipped model.*hueshift-v1, hueshift-v2.*git history"):
        resolve_model_path("hueshift-v99")
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "grey.png"), np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)))
    assert main(["colorize-image", "grey.png", "-o", "out.png", "--model", "hueshift-v1", "--steps", "2",
                 "--no-progress"]) == 0
    assert (tmp_path / "out.png").is_file()
    assert main(["colorize-image", "grey.png", "-o", "x.png", "--model", "hueshift-v99", "--no-progress"]) == 2
    assert "not a shipped model" in capsys.readouterr().err and not (tmp_path / "x.png").exists()
