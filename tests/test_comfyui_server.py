"""The real-server tier: ComfyUI 0.3.64 with this pack, every bundled workflow run through ``/prompt``.

Needs a ComfyUI checkout and its Python (see ``comfyui_harness``: ``../shared/comfyui`` and the venv
``.ci/comfyui_venv.sh`` builds); skipped with a message where they are absent. The server is fresh:
the templates' example inputs are the ones the pack puts in place at load time. Each workflow runs as
shipped, then on a real development clip and photo (``../shared/data/clips``) when present. Run with
``-s`` to see timings and what the server said.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from comfyui_harness import (
    NODE_IDS,
    ROOT,
    WORKFLOWS,
    get,
    output_files,
    post,
    post_prompt,
    require_comfyui,
    server,
    ui_to_api,
    wait,
)

pytestmark = pytest.mark.comfyui
CLIP, IMAGE = "hueshift_example.mp4", "hueshift_example.jpg"  # what the templates read, put in place by the pack
DEV_CLIPS = sorted((ROOT.parent / "shared" / "data" / "clips").glob("*.mp4"))


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    def prepare(base: Path) -> None:  # a real development clip and a frame of it, beside the pack's examples
        if DEV_CLIPS:
            shutil.copy(DEV_CLIPS[0], base / "input" / "dev_clip.mp4")

    with server(tmp_path_factory.mktemp("comfyui"), prepare) as s:
        if DEV_CLIPS:
            import av
            with av.open(str(s["dir"] / "input" / "dev_clip.mp4")) as c:
                next(c.decode(video=0)).to_image().save(s["dir"] / "input" / "dev_image.png")
        yield s


def _prompt(comfy, name: str, changes: dict | None = None) -> dict:
    prompt = ui_to_api(json.loads((ROOT / "workflows" / name).read_text()), comfy["object_info"])
    for (node_type, input_name), value in (changes or {}).items():
        node = next(n for n in prompt.values() if n["class_type"] == node_type)
        node["inputs"][input_name] = value
    return prompt


def _run(comfy, prompt: dict) -> tuple[dict, float]:
    t0 = time.time()
    status, reply = post_prompt(comfy["base"], prompt)
    assert status == 200, json.dumps(reply)[:3000]
    history = wait(comfy["base"], reply["prompt_id"])
    errors = [m[1] for m in history["status"]["messages"] if m[0] == "execution_error"]
    assert history["status"]["status_str"] == "success", json.dumps(errors)[:3000]
    return history, time.time() - t0


# --- the pack as ComfyUI loads it ------------------------------------------------------------------

def test_pack_loads_every_node_and_lists_each_template_once(comfy):
    text = comfy["log"].read_text()
    ours = [line for line in text.splitlines() if "HueShift" in line]
    assert not [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line], text[-3000:]
    assert any("ComfyUI-HueShift" in line for line in ours), "the pack was not loaded:\n" + text[-3000:]
    assert NODE_IDS <= set(comfy["object_info"]), sorted(NODE_IDS - set(comfy["object_info"]))
    for node_id in NODE_IDS:
        info = comfy["object_info"][node_id]
        assert info["category"] == "HueShift"
        for category in ("required", "optional"):
            for name, spec in info["input"].get(category, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    templates = get(comfy["base"], "/api/workflow_templates")
    ours = templates["ComfyUI-HueShift"]
    assert sorted(ours) == [p.stem for p in WORKFLOWS], ours  # each once
    for p in WORKFLOWS:  # served as the template browser fetches them, with their thumbnails
        for suffix in (".json", ".jpg"):
            with urllib.request.urlopen(f"{comfy['base']}/api/workflow_templates/ComfyUI-HueShift/{p.stem}{suffix}",
                                        timeout=30) as r:
                assert r.read() == p.with_suffix(suffix).read_bytes()
    print(f"\n[comfyui] {len(NODE_IDS)} HueShift nodes registered; /api/workflow_templates: {ours}")


def test_the_templates_inputs_are_in_place(comfy):
    for name in (CLIP, IMAGE):
        assert (comfy["dir"] / "input" / name).read_bytes() == (ROOT / "workflows" / "input" / name).read_bytes()
    assert CLIP in comfy["object_info"]["HueShiftLoadVideoFrames"]["input"]["required"]["video"][1]["options"]
    assert IMAGE in comfy["object_info"]["LoadImage"]["input"]["required"]["image"][0]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_bundled_workflow_runs_as_shipped(comfy, path):
    history, seconds = _run(comfy, _prompt(comfy, path.name))
    files = output_files(history)
    assert files, f"no output files: {history['outputs']}"
    for f in files:
        p = comfy["dir"] / f["type"] / f["subfolder"] / f["filename"]
        assert p.is_file() and p.stat().st_size > 0, p
    print(f"\n[comfyui] {path.name} as shipped: success in {seconds:.1f} s -> "
          + ", ".join(f"{f['subfolder']}/{f['filename']}" for f in files))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_bundled_workflow_runs_on_a_real_clip(comfy, path):
    if not DEV_CLIPS:
        pytest.skip("no development clips (../shared/data/clips); the shipped example clip was run above")
    changes = {("HueShiftLoadVideoFrames", "video"): "dev_clip.mp4", ("HueShiftColorizeVideoFile", "video"):
               "dev_clip.mp4", ("LoadImage", "image"): "dev_image.png"}
    prompt = _prompt(comfy, path.name)
    types = {n["class_type"] for n in prompt.values()}
    history, seconds = _run(comfy, _prompt(comfy, path.name, {k: v for k, v in changes.items() if k[0] in types}))
    files = output_files(history)
    assert files and all((comfy["dir"] / f["type"] / f["subfolder"] / f["filename"]).stat().st_size for f in files)
    if "HueShiftColorizeVideoFile" in types or "HueShiftLoadVideoFrames" in types:
        import av
        video = next(f for f in files if f["filename"].endswith(".mp4"))
        with av.open(str(comfy["dir"] / video["type"] / video["subfolder"] / video["filename"])) as c:
            s = c.streams.video[0]
            size = (480, 270) if "HueShiftLoadVideoFrames" in types else (854, 480)  # max_size 480 in the staged one
            assert (s.width, s.height) == size and sum(1 for _ in c.decode(video=0)) == 24
    print(f"\n[comfyui] {path.name} on {DEV_CLIPS[0].name} (854x480): success in {seconds:.1f} s")


# --- bad input ------------------------------------------------------------------------------------

def _validation_error(comfy, prompt) -> str:
    status, reply = post_prompt(comfy["base"], prompt)
    assert status == 400, reply
    return json.dumps(reply["node_errors"])


def test_bad_input_is_refused_at_validation(comfy):
    (comfy["dir"] / "input" / "notes.mp4").write_text("this is not a video")
    (comfy["dir"] / "input" / "escape.mp4").symlink_to("/etc/hostname")
    long = "hueshift_long_video.json"
    cases = {
        "missing file": ({("HueShiftColorizeVideoFile", "video"): "nope.mp4"}, "not found in ComfyUI's input folder"),
        "not a video": ({("HueShiftColorizeVideoFile", "video"): "notes.mp4"}, "notes.mp4"),
        "path escape": ({("HueShiftColorizeVideoFile", "path"): "../../etc/passwd"}, "outside ComfyUI's input folder"),
        "symlink escape": ({("HueShiftColorizeVideoFile", "video"): "escape.mp4"}, "outside ComfyUI's input folder"),
    }
    for what, (changes, expected) in cases.items():
        msg = _validation_error(comfy, _prompt(comfy, long, changes))
        assert expected in msg, (what, msg)
        print(f"\n[comfyui] {what}: HTTP 400, {msg[:200]}")
    msg = _validation_error(comfy, _prompt(comfy, "hueshift_one_image.json",
                                           {("HueShiftModelLoader", "model_name"): "nope.safetensors"}))
    assert "not in the HueShift model folder" in msg
    print(f"[comfyui] unknown model: HTTP 400, {msg[:200]}")


def test_bad_graphs_fail_with_a_clear_message(comfy):
    # LAB Upscale given chroma of the image but frames of the video: an execution error in HueShift's words.
    prompt = _prompt(comfy, "hueshift_one_image.json")
    prompt["90"] = {"class_type": "HueShiftLoadVideoFrames",
                    "inputs": {"video": CLIP, "path": "", "frame_cap": 3, "skip_first": 0, "every_nth": 1,
                               "max_size": 128, "grey": True}}
    up = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftLABUpscale")
    prompt[up]["inputs"]["images"] = ["90", 0]
    status, reply = post_prompt(comfy["base"], prompt)
    assert status == 200, reply
    history = wait(comfy["base"], reply["prompt_id"])
    err = next(m[1] for m in history["status"]["messages"] if m[0] == "execution_error")
    assert err["exception_type"].endswith("InputError") and "3 frames" in err["exception_message"], err
    print(f"\n[comfyui] mismatched LAB Upscale inputs: {err['exception_type']}: {err['exception_message']}")
    # Colour frames where grey was expected: it runs, and the node says what it did.
    prompt = _prompt(comfy, "hueshift_one_image.json", {("HueShiftDDPMColorize", "seed"): 1,
                                                        ("LoadImage", "image"): "colour.png"})
    import numpy as np
    from PIL import Image
    Image.fromarray(np.tile(np.array([[[200, 40, 30]]], np.uint8), (48, 64, 1))).save(comfy["dir"] / "input" / "colour.png")
    status, reply = post_prompt(comfy["base"], prompt)
    assert status == 200, reply
    history = wait(comfy["base"], reply["prompt_id"])
    col = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftDDPMColorize")
    note = history["outputs"].get(col, {}).get("text", [""])[0]
    assert history["status"]["status_str"] == "success" and "turned them grey" in note, history["outputs"]
    print(f"[comfyui] colour input: {note}")


def test_cancel_stops_sampling_promptly(comfy):
    """1000 sampling steps (variety 1: diffusion from the prior's colour re-noised all the way) take minutes on a
    CPU; Cancel (POST /interrupt) must end the run within seconds."""
    prompt = _prompt(comfy, "hueshift_one_image.json", {("HueShiftDDPMColorize", "steps"): 1000,
                                                        ("HueShiftDDPMColorize", "variety"): 1.0,
                                                        ("HueShiftDDPMColorize", "seed"): 2})
    status, reply = post_prompt(comfy["base"], prompt)
    assert status == 200, reply
    col = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftDDPMColorize")
    t0 = time.time()
    while time.time() - t0 < 120:  # wait until the sampler is running
        if get(comfy["base"], "/queue")["queue_running"]:
            break
        time.sleep(0.2)
    time.sleep(3.0)
    t_cancel = time.time()
    post(comfy["base"], "/interrupt", {})
    history = wait(comfy["base"], reply["prompt_id"], timeout=120)
    stopped = time.time() - t_cancel
    kinds = [m[0] for m in history["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    interrupted = next(m[1] for m in history["status"]["messages"] if m[0] == "execution_interrupted")
    assert interrupted["node_id"] == col and stopped < 10, (interrupted, stopped)
    print(f"\n[comfyui] Cancel during 1000-step sampling: stopped in {stopped:.2f} s at node {col} (DDPM Colorize)")


# --- memory: ComfyUI's model management ------------------------------------------------------------

def test_the_server_loads_the_model_once_and_unloads_it(comfy):
    """Through model_management: loaded once for two runs; after "Unload models" (/free) loaded again."""
    def loads() -> int:
        return comfy["log"].read_text().count("Requested to load ColorUNet")

    def free() -> None:
        assert post(comfy["base"], "/free", {"unload_models": True, "free_memory": True})[0] == 200
        # The prompt worker reads the /free flags after a prompt (or when idle): run a model-free prompt, after
        # which they have been handled before the next prompt is taken.
        _run(comfy, {"1": {"class_type": "LoadImage", "inputs": {"image": IMAGE}},
                     "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})

    free()
    before = loads()
    _run(comfy, _prompt(comfy, "hueshift_one_image.json", {("HueShiftDDPMColorize", "seed"): 11}))
    _run(comfy, _prompt(comfy, "hueshift_one_image.json", {("HueShiftDDPMColorize", "seed"): 12}))
    assert loads() - before == 1, comfy["log"].read_text()[-2000:]  # the second run reused the loaded model
    free()
    _run(comfy, _prompt(comfy, "hueshift_one_image.json", {("HueShiftDDPMColorize", "seed"): 13}))
    assert loads() - before == 2, comfy["log"].read_text()[-2000:]  # ComfyUI had let it go: loaded again
    print("\n[comfyui] 'Requested to load ColorUNet' once for two runs, and again after /free (unload models)")


MEMORY_SCRIPT = textwrap.dedent('''
    import asyncio, gc, importlib.util, json, sys, weakref
    sys.path.insert(0, sys.argv[1])
    from comfy.cli_args import args
    args.cpu = True
    import folder_paths, torch
    import comfy.model_management as mm
    folder_paths.set_input_directory(sys.argv[3])
    spec = importlib.util.spec_from_file_location("hueshift_pack", sys.argv[2] + "/__init__.py",
                                                  submodule_search_locations=[sys.argv[2]])
    pack = importlib.util.module_from_spec(spec); sys.modules["hueshift_pack"] = pack; spec.loader.exec_module(pack)
    nodes = {c.define_schema().node_id: c for c in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())}
    loader = nodes["HueShiftModelLoader"]
    a = loader.execute(model_name="default (shipped)", precision="auto").args[0]
    b = loader.execute(model_name="default (shipped)", precision="auto").args[0]
    out = {"reused": a is b, "offload": str(next(a.model.net.parameters()).device),
           "offload_device": str(a.patcher.offload_device), "load_device": str(a.patcher.load_device),
           "managed_before": any(m is a.patcher for m in mm.loaded_models())}
    nodes["HueShiftDDPMColorize"].execute(images=torch.rand(1, 48, 64, 3), model=a, steps=2, sampler="ddim",
                                          seed=0, batch_size=1, working_size=16)
    out["managed_after_sampling"] = any(m is a.patcher for m in mm.loaded_models())
    net = weakref.ref(a.model.net)
    mm.unload_all_models()
    out["managed_after_unload"] = any(m is a.patcher for m in mm.loaded_models())
    del a, b
    gc.collect()
    out["freed"] = net() is None
    print("RESULT " + json.dumps(out))
''')


def test_model_memory_is_managed_by_comfyui_modules(tmp_path):
    """With ComfyUI's own model_management and ModelPatcher imported (ComfyUI's Python): reuse, load, unload, free."""
    where, python = require_comfyui()
    run = subprocess.run([python, "-c", MEMORY_SCRIPT, str(where), str(ROOT), str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, run.stdout[-2000:] + run.stderr[-3000:]
    out = json.loads(line[len("RESULT "):])
    assert out == {"reused": True, "offload": "cpu", "offload_device": "cpu", "load_device": "cpu",
                   "managed_before": False, "managed_after_sampling": True, "managed_after_unload": False,
                   "freed": True}, out
    print(f"\n[comfyui] model management: {out}")
