"""The ComfyUI nodes without ComfyUI: schemas, execution on small inputs, bad input, progress, Cancel.

The pack is loaded the way ComfyUI loads it (the repository root as a package, nodes reached
relatively), under the name ``comfyui_hueshift``, with the test fakes of ``tests/comfy_standins.py``
in ``sys.modules`` under ComfyUI's module names (the ``comfy_standins`` fixture of conftest.py).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACK = "comfyui_hueshift"
pytestmark = pytest.mark.usefixtures("comfy_standins")


def load_pack():
    """Import the repository root as ComfyUI does (a package from its ``__init__.py``); return it."""
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK]


def pack_module(name: str):
    """``pack_module("nodes.video")`` -> the pack's module (``comfyui_hueshift.nodes.video``)."""
    load_pack()
    return importlib.import_module(f"{PACK}.{name}")


def node_classes() -> dict[str, type]:
    ext = asyncio.run(load_pack().comfy_entrypoint())
    return {cls.define_schema().node_id: cls for cls in asyncio.run(ext.get_node_list())}


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """ComfyUI's folders in a temporary base (input/, output/, models/hueshift/); the compat module."""
    compat = pack_module("nodes.comfy_compat")
    fp = compat.folder_paths
    for sub in ("input", "output", "models/hueshift"):
        (tmp_path / sub).mkdir(parents=True)
    monkeypatch.setattr(fp, "models_dir", str(tmp_path / "models"))
    monkeypatch.setattr(fp, "input_directory", str(tmp_path / "input"), raising=False)
    monkeypatch.setattr(fp, "output_directory", str(tmp_path / "output"), raising=False)
    fp.set_input_directory(str(tmp_path / "input"))
    fp.set_output_directory(str(tmp_path / "output"))
    monkeypatch.delitem(fp.folder_names_and_paths, "hueshift", raising=False)
    monkeypatch.setattr(compat.model_management, "current_loaded_models", [])
    return compat


@pytest.fixture
def nodes():
    return node_classes()


def errors():
    return pack_module("hueshift_core.errors")


def images(n: int = 3, h: int = 24, w: int = 40, colour: bool = False, seed: int = 0) -> torch.Tensor:
    """An IMAGE batch [n, h, w, 3]: grey gradients with a moving square (colourful if asked)."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    out = []
    for i in range(n):
        v = 0.2 + 0.5 * (x + y) / 2 + 0.02 * torch.rand(h, w, generator=g)
        v[4:12, 4 + 2 * i:12 + 2 * i] = 0.9
        rgb = torch.stack([v, v, v], dim=-1)
        if colour:
            rgb[..., 0] = (rgb[..., 0] * 1.3).clamp(0, 1)
            rgb[..., 2] = rgb[..., 2] * 0.6
        out.append(rgb)
    return torch.stack(out).float()


class Recorder:
    """Stands in for ComfyUI's ProgressBar and counts updates."""

    instances: typing.ClassVar[list[Recorder]] = []

    def __init__(self, total: int, node_id=None) -> None:
        self.total, self.current = total, 0
        Recorder.instances.append(self)

    def update(self, value: int) -> None:
        self.current += value


@pytest.fixture
def bars(monkeypatch):
    Recorder.instances = []
    monkeypatch.setattr(pack_module("nodes.common"), "ProgressBar", Recorder)
    return Recorder.instances


@pytest.fixture
def fixed_threads(monkeypatch):
    """For bit-for-bit comparisons of a staged graph with the pipeline: each node sizes the thread pools by the
    machine's load when it runs (hueshift_core.threads.configure), and float sums split over another number of
    threads can differ in the last bit (a flaky mismatch on a busy machine); a count given in OMP_NUM_THREADS is
    taken as it is."""
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_model(comfy, tiny_model_path, nodes):
    """The conftest's tiny random model, installed in models/hueshift and loaded by the loader node."""
    shutil.copy(tiny_model_path, Path(comfy.folder_paths.models_dir) / "hueshift" / "tiny.safetensors")
    return nodes["HueShiftModelLoader"].execute(model_name="tiny.safetensors", precision="auto").args[0]


SHIPPED = sorted(p.name for p in (ROOT / "hueshift_core" / "weights").glob("*.safetensors"))


def run(cls, **inputs):
    out = cls.execute(**inputs)
    return out.args, out.ui


# --- the pack and its schemas -----------------------------------------------------------------

EXPECTED = {"HueShiftLoadVideoFrames", "HueShiftKeyframeSelect", "HueShiftModelLoader", "HueShiftDDPMColorize",
            "HueShiftPropagate", "HueShiftLABUpscale", "HueShiftDeflicker", "HueShiftColorizeVideoFile",
            "HueShiftColourHints", "HueShiftReferenceFrames"}


def test_entrypoint_lists_every_node(nodes):
    assert set(nodes) == EXPECTED


def test_importing_the_pack_root_loads_nothing_heavy():
    code = (f"import importlib.util, sys; s = importlib.util.spec_from_file_location('p', {str(ROOT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(ROOT)!r}]); m = importlib.util.module_from_spec(s); "
            "sys.modules['p'] = m; s.loader.exec_module(m); "
            "heavy = [k for k in ('torch', 'av', 'cv2', 'p.nodes') if k in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_schema(node_id, nodes):
    schema = nodes[node_id].define_schema()
    assert schema.category == "HueShift"
    assert schema.display_name.startswith("HueShift ") and schema.description
    for names in ([i.id for i in schema.inputs], [o.display_name for o in schema.outputs]):
        assert len(names) == len(set(names))
    for inp in schema.inputs:
        assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"
    for out in schema.outputs:
        assert out.tooltip and out.display_name


def test_only_the_savers_are_output_nodes(nodes):
    assert {k for k, c in nodes.items() if c.define_schema().is_output_node} == {"HueShiftColorizeVideoFile"}


# --- model loader ---------------------------------------------------------------------------------

def test_model_loader_options_validation_and_cache(comfy, tiny_model_path, nodes):
    loader = nodes["HueShiftModelLoader"]
    assert loader.define_schema().inputs[0].options == ["default (shipped)", *SHIPPED]
    (Path(comfy.folder_paths.models_dir) / "hueshift" / "sub").mkdir()
    shutil.copy(tiny_model_path, Path(comfy.folder_paths.models_dir) / "hueshift" / "sub" / "tiny.safetensors")
    (Path(comfy.folder_paths.models_dir) / "hueshift" / "notes.txt").write_text("not a model")
    options = loader.define_schema().inputs[0].options
    assert options == ["default (shipped)", *sorted(SHIPPED + ["sub/tiny.safetensors"])]
    assert loader.validate_inputs(model_name="sub/tiny.safetensors") is True
    assert loader.validate_inputs(model_name="default (shipped)") is True
    for name in SHIPPED:  # the pack's own weights are listed by file name too
        assert loader.validate_inputs(model_name=name) is True
    for bad in ("missing.safetensors", "../../models/hueshift/sub/tiny.safetensors", "notes.txt"):
        msg = loader.validate_inputs(model_name=bad)
        assert isinstance(msg, str) and "not in the HueShift model folder" in msg
    a = loader.execute(model_name="sub/tiny.safetensors", precision="auto").args[0]
    b = loader.execute(model_name="sub/tiny.safetensors", precision="fp32").args[0]
    assert a is b and a.model.dtype == torch.float32 and a.model.device.type == "cpu"
    with pytest.raises(errors().CheckpointError, match="not in the HueShift model folder"):
        loader.execute(model_name="missing.safetensors", precision="auto")


def test_model_memory_is_left_to_comfyui(comfy, tiny_model_path, nodes):
    """Loaded on the offload device, handed to model_management to sample, reused while held, gone once let go."""
    import gc
    import weakref

    mm = comfy.model_management
    shutil.copy(tiny_model_path, Path(comfy.folder_paths.models_dir) / "hueshift" / "tiny.safetensors")
    loader = nodes["HueShiftModelLoader"]
    held = loader.execute(model_name="tiny.safetensors", precision="auto").args[0]
    assert held.patcher.model is held.model.net and held.patcher.offload_device == mm.unet_offload_device()
    assert held.patcher.load_device == mm.get_torch_device() and mm.loaded_models() == []  # not yet asked to load
    nodes["HueShiftDDPMColorize"].execute(images=images(1), model=held, steps=1, sampler="ddim", seed=0,
                                          batch_size=1, working_size=16)
    assert mm.loaded_models() == [held.patcher]  # sampling went through load_models_gpu
    assert loader.execute(model_name="tiny.safetensors", precision="auto").args[0] is held  # reused
    net = weakref.ref(held.model.net)
    mm.unload_all_models()
    del held
    gc.collect()
    assert net() is None, "the pack still holds the model after ComfyUI let it go"
    assert mm.loaded_models() == []


def test_model_loader_rejects_a_pickle(comfy, nodes):
    bad = Path(comfy.folder_paths.models_dir) / "hueshift" / "evil.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    with pytest.raises(errors().CheckpointError, match="pickled"):
        nodes["HueShiftModelLoader"].execute(model_name="evil.safetensors", precision="auto")


def test_fp16_only_on_a_gpu(comfy, monkeypatch):
    common = pack_module("nodes.common")
    mm = comfy.model_management
    assert common.device_and_dtype("fp16") == (torch.device("cpu"), torch.float32)
    monkeypatch.setattr(mm, "get_torch_device", lambda: torch.device("cuda", 0))
    monkeypatch.setattr(mm, "should_use_fp16", lambda device=None: True)
    assert common.device_and_dtype("auto") == (torch.device("cuda", 0), torch.float16)
    assert common.device_and_dtype("fp32")[1] == torch.float32
    monkeypatch.setattr(mm, "should_use_fp16", lambda device=None: False)
    monkeypatch.setattr(mm, "should_use_bf16", lambda device=None: True)
    assert common.device_and_dtype("auto")[1] == torch.bfloat16
    monkeypatch.setattr(mm, "should_use_bf16", lambda device=None: False)
    assert common.device_and_dtype("auto")[1] == torch.float32


def test_example_inputs_are_put_in_place_once(comfy, nodes):
    examples = pack_module("nodes.examples")
    inp = Path(comfy.folder_paths.get_input_directory())
    for name in examples.NAMES:  # shipped, small, and put in place when ComfyUI loads the pack (`nodes`)
        assert (examples.EXAMPLES / name).stat().st_size < 300_000
        assert (inp / name).read_bytes() == (examples.EXAMPLES / name).read_bytes()
        (inp / name).unlink()
    (inp / "hueshift_example.jpg").write_bytes(b"the user's own")
    assert examples.install_example_inputs() == ["hueshift_example.mp4"]
    assert (inp / "hueshift_example.jpg").read_bytes() == b"the user's own"  # never overwritten
    assert examples.install_example_inputs() == []
    assert "hueshift_example.mp4" in nodes["HueShiftLoadVideoFrames"].define_schema().inputs[0].options
    info = pack_module("hueshift_core.video").probe(str(inp / "hueshift_example.mp4"))
    assert (info.width, info.height, info.frame_count) == (320, 180, 16)


def test_no_comfyui_fakes_in_the_pack():
    """The pack imports the real ComfyUI: without one, importing the nodes fails instead of faking it."""
    assert not list((ROOT / "nodes").glob("*standin*"))
    assert "except ImportError" not in (ROOT / "nodes" / "comfy_compat.py").read_text()
    code = ("import importlib.util, sys; "
            f"s = importlib.util.spec_from_file_location('p', {str(ROOT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(ROOT)!r}]); m = importlib.util.module_from_spec(s); "
            "sys.modules['p'] = m; s.loader.exec_module(m); import p.nodes")
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run_.returncode != 0 and "ModuleNotFoundError: No module named" in run_.stderr


def test_a_comfyui_too_old_gets_one_line_at_load_time(tmp_path):
    """Inside a ComfyUI (folder_paths imported) without comfy_api.latest: one clear error line, nothing else."""
    (tmp_path / "folder_paths.py").write_text("")
    code = ("import folder_paths, importlib.util, logging, sys; "
            "logging.basicConfig(format='%(levelname)s %(message)s'); "
            f"s = importlib.util.spec_from_file_location('p', {str(ROOT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(ROOT)!r}]); m = importlib.util.module_from_spec(s); "
            "sys.modules['p'] = m; s.loader.exec_module(m)")
    run_ = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run_.returncode == 0, run_.stderr
    lines = run_.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR ComfyUI-HueShift needs ComfyUI >= 0.3.64"), lines
    assert "update ComfyUI" in lines[0]


# --- DDPM colorize and LAB upscale: one image colorized -------------------------------------------

def test_one_image_colorized(tiny_model, nodes, bars):
    img = images(1, 24, 40)
    (chroma,), note = run(nodes["HueShiftDDPMColorize"], images=img, model=tiny_model, steps=3, sampler="ddim",
                          seed=1, batch_size=4, working_size=16)
    assert note is None
    assert chroma.ab.shape == (1, 2, 16, 24) and chroma.frames == (0,) and chroma.complete
    assert bars[-1].current == 3  # one update per sampling step
    (out,), _ = run(nodes["HueShiftLABUpscale"], images=img, chroma=chroma, method="guided")
    assert out.shape == (1, 24, 40, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    color = pack_module("hueshift_core.model.lab")
    l_in = color.rgb_to_l(img.permute(0, 3, 1, 2))
    l_out = color.rgb_to_l(out.permute(0, 3, 1, 2))
    assert (l_in - l_out).abs().mean() < 4  # L kept, up to sRGB gamut clipping of a random model's colours


def test_colorize_is_seeded_and_batch_independent(tiny_model, nodes):
    img = images(3)
    kw = {"images": img, "model": tiny_model, "steps": 2, "sampler": "ddpm", "working_size": 16}
    a = nodes["HueShiftDDPMColorize"].execute(seed=5, batch_size=3, **kw).args[0].ab
    b = nodes["HueShiftDDPMColorize"].execute(seed=5, batch_size=3, **kw).args[0].ab
    c = nodes["HueShiftDDPMColorize"].execute(seed=6, batch_size=3, **kw).args[0].ab
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_colour_input_is_turned_grey_and_said(tiny_model, nodes, caplog):
    kw = {"model": tiny_model, "steps": 2, "sampler": "ddim", "seed": 0, "batch_size": 2, "working_size": 16}
    (grey_chroma,), note = run(nodes["HueShiftDDPMColorize"], images=images(2), **kw)
    assert note is None
    (colour_chroma,), note = run(nodes["HueShiftDDPMColorize"], images=images(2, colour=True), **kw)
    assert "turned them grey" in note.value and "turned them grey" in caplog.text
    assert colour_chroma.ab.shape == grey_chroma.ab.shape


KF = {"max_gap": 2, "cut_threshold": 0.35, "track_threshold": 0.3, "analysis_size": 32}
SAMPLE = {"steps": 2, "sampler": "ddim", "seed": 0, "batch_size": 8, "working_size": 16}


def test_ddpm_colorize_gives_frames_the_video_saturation_and_one_image_its_photo_colour(comfy, nodes):
    """More than one image is video: DDPM Colorize samples it at the shipped model's video saturation, as the
    pipeline does; one image is a photo, coloured as colorize-image colours it."""
    sampling, lab = pack_module("hueshift_core.model.sampling"), pack_module("hueshift_core.model.lab")
    held = nodes["HueShiftModelLoader"].execute(model_name="default (shipped)", precision="auto").args[0]
    lift = sampling.for_video(held.model, sampling.SampleOptions()).lift
    assert lift is not None and lift[1] > 1.0  # hueshift-v8 on
    img = 0.35 * images(2, 48, 80)  # dark: the prior colours it faintly, so the lift raises it
    kw = dict(model=held, steps=1, sampler="ddim", seed=0, batch_size=2, working_size=64)
    one = nodes["HueShiftDDPMColorize"].execute(images=img[:1], **kw).args[0].ab
    both = nodes["HueShiftDDPMColorize"].execute(images=img, **kw).args[0].ab
    gain = float(sampling.lift_gain(one[:1] / lab.AB_SCALE, *lift)[0])  # what the lift gives this frame
    ratio = float(both[0].abs().mean() / one[0].abs().mean())
    assert one[0].abs().mean() > 0.1 and gain > 1.0 and 0.9 * gain < ratio <= gain + 1e-4


def test_keyframe_mode_colours_only_keyframes(tiny_model, nodes):
    img = images(5)
    (kf, count), text = run(nodes["HueShiftKeyframeSelect"], images=img, **KF)
    assert count == len(kf.keyframes) == 3 and kf.keyframes == (0, 2, 4) and kf.shot_starts == (0,)
    assert "3 keyframes in 1 shot(s)" in text.value
    (chroma,), _ = run(nodes["HueShiftDDPMColorize"], images=img, model=tiny_model, keyframes=kf, **SAMPLE)
    assert chroma.frames == (0, 2, 4) and chroma.num_frames == 5 and not chroma.complete
    (keys,), _ = run(nodes["HueShiftLABUpscale"], images=img, chroma=chroma, method="guided")
    assert keys.shape == (3, 24, 40, 3)  # LAB Upscale of keyframe chroma: the keyframes only


def test_the_staged_pipeline(tiny_model, nodes, bars):
    img = images(6, 32, 48)
    kf = nodes["HueShiftKeyframeSelect"].execute(images=img, **KF).args[0]
    keys = nodes["HueShiftDDPMColorize"].execute(images=img, model=tiny_model, keyframes=kf, **SAMPLE).args[0]
    (chroma,), _ = run(nodes["HueShiftPropagate"], images=img, keyframes=kf, chroma=keys, deflicker=0.0)
    assert chroma.complete and chroma.ab.shape == (6, 2, *kf.sizes.prop)  # at the plan's analysis resolution
    assert torch.allclose(chroma.ab[0], torch.nn.functional.interpolate(
        keys.ab[:1], size=kf.sizes.prop, mode="bicubic", align_corners=False)[0], atol=1e-4)  # keyframes keep colour
    (steady,), _ = run(nodes["HueShiftPropagate"], images=img, keyframes=kf, chroma=keys, deflicker=0.5)
    assert torch.equal(steady.ab[0], chroma.ab[0]) and not torch.equal(steady.ab, chroma.ab)  # shot start unfiltered
    (colour,), _ = run(nodes["HueShiftLABUpscale"], images=img, chroma=steady, method="guided")
    assert colour.shape == (6, 32, 48, 3) and colour.dtype == torch.float32
    color = pack_module("hueshift_core.model.lab")
    l_in, l_out = (color.rgb_to_l(x.permute(0, 3, 1, 2)) for x in (img, colour))
    assert (l_in - l_out).abs().mean() < 4  # lightness kept, up to gamut clipping of a random model's colours
    assert [b.current for b in bars] == [6, 6, 6, 6, 6]  # per frame; DDPM Colorize per sampling step, filled


def test_deflicker_node_steadies_any_colour_clip(tiny_model, nodes, bars):
    img = images(6, 32, 48, colour=True)
    kf = nodes["HueShiftKeyframeSelect"].execute(images=img, **KF).args[0]
    (steady,), _ = run(nodes["HueShiftDeflicker"], images=img, strength=0.5, keyframes=kf)
    assert steady.shape == img.shape and steady.dtype == torch.float32
    assert torch.allclose(steady[0], img[0], atol=2 / 255)  # the first frame of a shot is not filtered
    color = pack_module("hueshift_core.model.lab")
    l_in, l_out = (color.rgb_to_l(x.permute(0, 3, 1, 2)) for x in (img, steady))
    assert (l_in - l_out).abs().mean() < 1.0  # lightness kept
    (same,), _ = run(nodes["HueShiftDeflicker"], images=img, strength=0.0)  # cuts found from the frames
    assert torch.allclose(same, img, atol=2 / 255)
    with pytest.raises(errors().InputError, match="plan is for a clip of 6 frames"):
        nodes["HueShiftDeflicker"].execute(images=img[:4], strength=0.5, keyframes=kf)


def test_staged_graph_gives_the_pipelines_colours_on_a_real_clip(tiny_model, nodes, fixed_threads):
    """Keyframe Select -> DDPM Colorize -> Propagate -> LAB Upscale with the node defaults gives the colours
    of the one-pass pipeline (HueShift Colorize Video File, ``hueshift colorize``) for the same clip and seed."""
    core = pack_module("hueshift_core.video.pipeline")
    clip = ROOT / "workflows" / "input" / "hueshift_example.mp4"  # a real grey clip, 16 frames 320x180
    frames = np.concatenate(list(pack_module("hueshift_core.video").read_frames(str(clip))))
    img = torch.from_numpy(frames).float() / 255.0
    sample = pack_module("hueshift_core.model.sampling").SampleOptions(steps=4, seed=7)  # the default sampler
    options = core.PipelineOptions(sample=sample,
                                   keyframes=pack_module("hueshift_core.video.keyframes").KeyframeOptions(max_gap=5))
    want = np.concatenate(list(core.VideoPipeline(tiny_model.model, options).run(iter([frames]))))
    plan = nodes["HueShiftKeyframeSelect"].execute(images=img, max_gap=5, cut_threshold=0.35, track_threshold=0.3,
                                                   analysis_size=128).args[0]
    assert len(plan.keyframes) >= 3  # warm starts and two-sided propagation are exercised
    keys = nodes["HueShiftDDPMColorize"].execute(images=img, model=tiny_model, steps=4, sampler=sample.sampler.value, seed=7,
                                                 batch_size=8, working_size=64, keyframes=plan).args[0]
    chroma = nodes["HueShiftPropagate"].execute(images=img, keyframes=plan, chroma=keys, deflicker=0.5).args[0]
    got = nodes["HueShiftLABUpscale"].execute(images=img, chroma=chroma, method="guided").args[0]
    color = pack_module("hueshift_core.model.lab")
    ab_want = color.rgb_to_lab(torch.from_numpy(want).permute(0, 3, 1, 2).float() / 255.0)[:, 1:]
    ab_got = color.rgb_to_lab(got.permute(0, 3, 1, 2))[:, 1:]
    assert float((ab_want - ab_got).abs().mean()) <= 0.5
    assert np.array_equal((got.numpy() * 255.0).round().astype(np.uint8), want)  # in fact bit for bit


def test_propagate_refuses_chroma_of_other_frames(tiny_model, nodes):
    img = images(5)
    kf = nodes["HueShiftKeyframeSelect"].execute(images=img, **KF).args[0]
    per_frame = nodes["HueShiftDDPMColorize"].execute(images=images(4), model=tiny_model, **SAMPLE).args[0]
    with pytest.raises(errors().InputError, match="connect the same images and keyframe plan"):
        nodes["HueShiftPropagate"].execute(images=img, keyframes=kf, chroma=per_frame, deflicker=0.5)


def test_lab_upscale_refuses_mismatched_inputs(tiny_model, nodes):
    img = images(2)
    (chroma,), _ = run(nodes["HueShiftDDPMColorize"], images=img, model=tiny_model, steps=1, sampler="ddim", seed=0,
                       batch_size=2, working_size=16)
    up = nodes["HueShiftLABUpscale"]
    with pytest.raises(errors().InputError, match="'images' has 3 frames but the chroma is for a clip of 2"):
        up.execute(images=images(3), chroma=chroma, method="guided")
    with pytest.raises(errors().InputError, match="aspect"):
        up.execute(images=images(2, 40, 24), chroma=chroma, method="bicubic")
    out = up.execute(images=images(2, 48, 80), chroma=chroma, method="bicubic").args[0]  # same clip, larger
    assert out.shape == (2, 48, 80, 3)
    with pytest.raises(errors().InputError, match="IMAGE batch"):
        up.execute(images=torch.zeros(2, 24, 40), chroma=chroma, method="guided")


def test_cancel_stops_sampling(tiny_model, nodes, comfy):
    comfy.model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            nodes["HueShiftDDPMColorize"].execute(images=images(2), model=tiny_model, steps=50, sampler="ddim",
                                                  seed=0, batch_size=1, working_size=16)
    finally:
        comfy.model_management.interrupt_current_processing(False)


# --- paths: inside ComfyUI's folders only ---------------------------------------------------------

def test_input_paths_stay_in_the_input_folder(comfy, tmp_path, nodes):
    common = pack_module("nodes.common")
    inp = Path(comfy.folder_paths.get_input_directory())
    (inp / "clips").mkdir()
    (inp / "clips" / "a.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    (inp / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    assert common.resolve_input_file("clips/a.mp4") == os.path.realpath(inp / "clips" / "a.mp4")
    assert common.resolve_input_file("clips/a.mp4 [input]").endswith("a.mp4")
    for bad in ("../secret.mp4", "clips/../../secret.mp4", str(tmp_path / "secret.mp4"), "link.mp4"):
        with pytest.raises(errors().InputError, match="outside ComfyUI's input folder"):
            common.resolve_input_file(bad)
    with pytest.raises(errors().VideoError, match="not found"):
        common.resolve_input_file("clips/b.mp4")
    with pytest.raises(errors().InputError, match="no video chosen"):
        common.resolve_input_file("  ")
    (inp / "notes.txt").write_text("x")
    assert common.list_input_videos() == ["hueshift_example.mp4", "link.mp4"]  # top level, video extensions only
    for node in ("HueShiftLoadVideoFrames", "HueShiftColorizeVideoFile"):
        msg = nodes[node].validate_inputs(video="a.mp4", path="../secret.mp4")
        assert "outside ComfyUI's input folder" in msg
        assert "not found" in nodes[node].validate_inputs(video="missing.mp4", path="")


def test_output_files_stay_in_the_output_folder(comfy):
    common = pack_module("nodes.common")
    out = Path(comfy.folder_paths.get_output_directory())
    path, file, sub = common.output_file("HueShift/run", ".mp4")
    assert (file, sub) == ("run_00001_.mp4", "HueShift") and Path(path).parent == out / "HueShift"
    Path(path).write_bytes(b"x")
    assert common.output_file("HueShift/run", ".mp4")[1] == "run_00002_.mp4"
    for bad in ("../run", "/tmp/run", "a/../../run"):
        with pytest.raises(errors().InputError, match="leaves ComfyUI's output folder"):
            common.output_file(bad, ".mp4")


# --- video files in and out -----------------------------------------------------------------------

@pytest.fixture
def clip(comfy):
    """A colourful 10-frame 64x48 clip at 12 fps in ComfyUI's input folder; its name."""
    video = pack_module("hueshift_core.video")
    frames = (images(10, 48, 64, colour=True).numpy() * 255).round().astype(np.uint8)
    with video.VideoWriter(Path(comfy.folder_paths.get_input_directory()) / "clip.mp4", 64, 48, 12) as w:
        w.write(frames)
    return "clip.mp4"


def test_load_video_frames(clip, nodes, bars):
    load = nodes["HueShiftLoadVideoFrames"]
    assert clip in load.define_schema().inputs[0].options
    assert load.validate_inputs(video=clip, path="") is True
    (img, fps, count), text = run(load, video=clip, path="", frame_cap=0, skip_first=0, every_nth=1, max_size=0,
                                  grey=False)
    assert img.shape == (10, 48, 64, 3) and img.dtype == torch.float32 and count == 10 and fps == 12.0
    assert pack_module("nodes.common").colour_note(img, "test") is not None and bars[-1].current == 10
    (grey, fps, count), text = run(load, video="ignored.mp4", path=clip, frame_cap=3, skip_first=2, every_nth=2,
                                max_size=32, grey=True)
    assert grey.shape == (3, 24, 32, 3) and count == 3 and fps == 6.0
    assert (grey.amax(-1) - grey.amin(-1)).max() < 2 / 255  # grey: equal channels
    ref = torch.nn.functional.interpolate(img[[2, 4, 6]].permute(0, 3, 1, 2), size=(24, 32), mode="area")
    ref_l = pack_module("hueshift_core.model.lab").rgb_to_l(ref)
    assert (pack_module("hueshift_core.model.lab").rgb_to_l(grey.permute(0, 3, 1, 2)) - ref_l).abs().mean() < 1.5
    assert "3 frames, 32x24" in text.value
    with pytest.raises(errors().VideoError, match="no frames after skipping"):
        load.execute(video=clip, path="", frame_cap=0, skip_first=50, every_nth=1, max_size=0, grey=True)


def test_not_a_video_is_refused_at_validation(comfy, nodes):
    (Path(comfy.folder_paths.get_input_directory()) / "notes.mp4").write_text("not a video")
    for node in ("HueShiftLoadVideoFrames", "HueShiftColorizeVideoFile"):
        msg = nodes[node].validate_inputs(video="notes.mp4", path="")
        assert isinstance(msg, str) and "not a readable video" in msg


def test_colorize_video_file(clip, tiny_model, nodes, comfy):
    node = nodes["HueShiftColorizeVideoFile"]
    kw = {"video": clip, "path": "", "mode": "keyframes", "steps": 2, "sampler": "ddim", "seed": 0,
          "working_size": 16, "max_gap": 4, "deflicker": 0.5, "upscale": "guided", "frame_cap": 8, "model": tiny_model}
    (video, path), ui_out = run(node, filename_prefix="HueShift/test", **kw)
    assert path == os.path.join(comfy.folder_paths.get_output_directory(), "HueShift", "test_00001_.mp4")
    assert video.get_stream_source() == path
    info = pack_module("hueshift_core.video").probe(path)
    assert (info.width, info.height, info.frame_count, info.fps) == (64, 48, 8, 12)
    assert ui_out["images"] == [{"filename": "test_00001_.mp4", "subfolder": "HueShift", "type": "output"}]
    assert "8 frames 64x48" in ui_out["text"][0] and "turned it grey" in ui_out["text"][0]
    with pytest.raises(errors().InputError, match="leaves ComfyUI's output folder"):
        node.execute(filename_prefix="../outside", **kw)


def test_a_video_too_big_for_memory_is_refused_before_decoding(clip, nodes, monkeypatch):
    monkeypatch.setattr(pack_module("nodes.video"), "free_memory", lambda: 100_000)
    with pytest.raises(errors().VideoError, match="more than half the free memory"):
        nodes["HueShiftLoadVideoFrames"].execute(video=clip, path="", frame_cap=0, skip_first=0, every_nth=1,
                                                 max_size=0, grey=True)


def test_node_defaults_are_the_libraries_defaults(nodes):
    """The nodes repeat hueshift_core's defaults (reading them would import PyAV/OpenCV at ComfyUI start-up)."""
    def defaults(node_id):
        return {i.id: i.default for i in nodes[node_id].define_schema().inputs}

    kf = pack_module("hueshift_core.video.keyframes").KeyframeOptions()
    pipe = pack_module("hueshift_core.video.pipeline").PipelineOptions()
    sample = pack_module("hueshift_core.model.sampling").SampleOptions()
    d = defaults("HueShiftKeyframeSelect")
    assert (d["max_gap"], d["cut_threshold"], d["track_threshold"]) == (kf.max_gap, kf.cut_threshold, kf.track_threshold)
    d = defaults("HueShiftColorizeVideoFile")
    assert (d["mode"], d["deflicker"], d["upscale"], d["max_gap"]) == (pipe.mode, pipe.deflicker, pipe.upscale.value,
                                                                       pipe.keyframes.max_gap)
    assert (d["steps"], d["sampler"], d["working_size"]) == (sample.steps, sample.sampler.value, sample.short_side)
    assert pack_module("nodes.video").MODES == pack_module("hueshift_core.video.pipeline").MODES
    assert defaults("HueShiftDeflicker")["strength"] == pipe.deflicker
    assert defaults("HueShiftPropagate")["deflicker"] == pipe.deflicker
    assert defaults("HueShiftKeyframeSelect")["analysis_size"] == sample.short_side * pipe.prop_scale
    d = defaults("HueShiftDDPMColorize")
    assert (d["steps"], d["batch_size"], d["working_size"]) == (sample.steps, sample.batch_size, sample.short_side)


def test_hint_nodes_make_keyframes_and_the_staged_graph_gives_the_pipelines_colours(comfy, nodes, fixed_threads):
    """Colour Hints + Reference Frames -> Keyframe Select -> DDPM Colorize -> Propagate -> LAB Upscale, with the
    shipped model (its colour prior follows hints), gives what the pipeline gives with the same user colours;
    the hinted frame becomes a keyframe, and bad hints are refused with one line."""
    core = pack_module("hueshift_core.video.pipeline")
    clip = ROOT / "workflows" / "input" / "hueshift_example.mp4"
    frames = np.concatenate(list(pack_module("hueshift_core.video").read_frames(str(clip))))
    img = torch.from_numpy(frames).float() / 255.0
    model = nodes["HueShiftModelLoader"].execute(model_name=SHIPPED[-1], precision="auto").args[0]
    ref = torch.zeros(1, *img.shape[1:])
    ref[..., 2] = 0.8  # a blue reference for frame 0
    hints = nodes["HueShiftReferenceFrames"].execute(images=ref, frames="0").args[0]
    hints = nodes["HueShiftColourHints"].execute(points='[{"x": 0.5, "y": 0.5, "color": "#c03020", "radius": 0.1}]',
                                                 frame=9, hints=hints).args[0]
    assert hints.frames() == [0, 9]
    plan = nodes["HueShiftKeyframeSelect"].execute(images=img, max_gap=48, cut_threshold=0.35, track_threshold=0.0,
                                                   analysis_size=128, hints=hints).args[0]
    assert 9 in plan.keyframes and 0 in plan.keyframes
    keys = nodes["HueShiftDDPMColorize"].execute(images=img, model=model, steps=8, sampler="dpmpp_2m", seed=0,
                                                 batch_size=8, working_size=64, keyframes=plan, hints=hints).args[0]
    chroma = nodes["HueShiftPropagate"].execute(images=img, keyframes=plan, chroma=keys, deflicker=0.5).args[0]
    got = nodes["HueShiftLABUpscale"].execute(images=img, chroma=chroma, method="guided").args[0]
    got_u8 = (got.numpy() * 255.0).round().astype(np.uint8)
    user = hints.resolve(*frames.shape[1:3], len(frames))
    options = core.PipelineOptions(keyframes=pack_module("hueshift_core.video.keyframes").KeyframeOptions(
        track_threshold=0.0))
    want = np.concatenate(list(core.VideoPipeline(model.model, options, user=user).run(iter([frames]))))
    assert np.array_equal(got_u8, want)
    lab = pack_module("hueshift_core.model.lab").rgb_to_lab(got[:3].permute(0, 3, 1, 2))
    assert float(lab[:, 2].mean()) < -10  # the blue reference, carried to the next frames
    with pytest.raises(errors().InputError, match="not a keyframe"):
        plain = nodes["HueShiftKeyframeSelect"].execute(images=img, max_gap=48, cut_threshold=0.35,
                                                        track_threshold=0.0, analysis_size=128).args[0]
        nodes["HueShiftDDPMColorize"].execute(images=img, model=model, steps=8, sampler="dpmpp_2m", seed=0,
                                              batch_size=8, working_size=64, keyframes=plain, hints=hints)
    for points, match in (('[{"x": 3, "y": 0.5, "color": "#fff"}]', "outside the frame"), ("{", "not valid JSON"),
                          ("", "no hints")):
        with pytest.raises(errors().InputError, match=match):
            nodes["HueShiftColourHints"].execute(points=points, frame=0)
    with pytest.raises(errors().InputError, match="past the end"):
        far = nodes["HueShiftColourHints"].execute(points='[{"x": 0.5, "y": 0.5, "color": "#fff"}]', frame=99).args[0]
        nodes["HueShiftKeyframeSelect"].execute(images=img, max_gap=48, cut_threshold=0.35, track_threshold=0.3,
                                                analysis_size=128, hints=far)
    with pytest.raises(errors().InputError, match="one index per image"):
        nodes["HueShiftReferenceFrames"].execute(images=ref, frames="0, 4")
    with pytest.raises(errors().InputError, match="grey"):
        grey_ref = nodes["HueShiftReferenceFrames"].execute(images=img[:1], frames="0").args[0]
        grey_ref.resolve(*frames.shape[1:3], len(frames))


def test_shot_consensus_widget_reaches_the_pipeline(comfy, nodes, fixed_threads):
    """DDPM Colorize's and Colorize Video File's ``shot_consensus`` is the pipeline's ``consensus``: off, the
    staged graph gives what the pipeline gives with ``consensus=False`` (bit for bit), and a shot's later
    keyframes differ from the default's while its first does not."""
    core = pack_module("hueshift_core.video.pipeline")
    kf_options = pack_module("hueshift_core.video.keyframes").KeyframeOptions(max_gap=5)
    clip = ROOT / "workflows" / "input" / "hueshift_example.mp4"
    frames = np.concatenate(list(pack_module("hueshift_core.video").read_frames(str(clip))))
    img = torch.from_numpy(frames).float() / 255.0
    model = nodes["HueShiftModelLoader"].execute(model_name=SHIPPED[-1], precision="auto").args[0]
    plan = nodes["HueShiftKeyframeSelect"].execute(images=img, max_gap=5, cut_threshold=0.35, track_threshold=0.3,
                                                   analysis_size=128).args[0]
    assert len(plan.keyframes) >= 3 and plan.shot_starts == (0,)
    keys = {}
    for on in (True, False):
        keys[on] = nodes["HueShiftDDPMColorize"].execute(images=img, model=model, steps=8, sampler="dpmpp_2m",
                                                         seed=0, batch_size=8, working_size=64, keyframes=plan,
                                                         shot_consensus=on).args[0]
    assert torch.equal(keys[True].ab[0], keys[False].ab[0])  # the shot's first keyframe: its own view either way
    assert float((keys[True].ab[1:] - keys[False].ab[1:]).abs().mean()) > 1e-3
    chroma = nodes["HueShiftPropagate"].execute(images=img, keyframes=plan, chroma=keys[False], deflicker=0.5).args[0]
    got = nodes["HueShiftLABUpscale"].execute(images=img, chroma=chroma, method="guided").args[0]
    options = core.PipelineOptions(keyframes=kf_options, consensus=False)
    want = np.concatenate(list(core.VideoPipeline(model.model, options).run(iter([frames]))))
    assert np.array_equal((got.numpy() * 255.0).round().astype(np.uint8), want)

    shutil.copy(clip, Path(comfy.folder_paths.get_input_directory()) / "consensus.mp4")
    node, out = nodes["HueShiftColorizeVideoFile"], {}
    for on in (True, False):
        kw = {"video": "consensus.mp4", "path": "", "mode": "keyframes", "steps": 8, "sampler": "dpmpp_2m",
              "seed": 0, "working_size": 64, "max_gap": 5, "deflicker": 0.5, "upscale": "guided", "frame_cap": 0,
              "model": model, "shot_consensus": on}
        path = node.execute(filename_prefix=f"HueShift/consensus_{on}", **kw).args[1]
        out[on] = np.concatenate(list(pack_module("hueshift_core.video").read_frames(path))).astype(np.float32)
    assert np.abs(out[True] - out[False])[5:].mean() > 0.1  # later keyframes and what they colour differ
    np.testing.assert_array_equal(out[True][0], out[False][0])
