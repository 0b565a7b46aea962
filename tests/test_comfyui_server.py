"""The real-ComfyUI tier: start a ComfyUI server with this pack, run every bundled workflow, check outputs.

Skipped unless ``HUESHIFT_COMFYUI`` names a ComfyUI checkout (the folder with ``main.py``).
``HUESHIFT_COMFYUI_PYTHON`` is the Python that runs it (default: ``<checkout>/../venv/bin/python``
if present, else this one); that environment needs ComfyUI's requirements and this pack's
``requirements.txt``. The server runs with ``--cpu`` and ``--base-directory`` in a temporary
folder whose custom_nodes/ holds only a link to this repository, so the checkout's own folders
are left alone. The clip is the first of ``../shared/data/clips/*.mp4`` when present, else a
synthetic one; it is copied to the input folder as ``hueshift_example.mp4``. Each workflow is
turned from the UI format into the API format with the server's ``/object_info`` (below), posted
to ``/prompt`` and awaited in ``/history``. Run with ``-s`` to see what the server did.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = os.environ.get("HUESHIFT_COMFYUI", "")
pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not CHECKOUT or not Path(CHECKOUT, "main.py").is_file(),
                                 reason="set HUESHIFT_COMFYUI to a ComfyUI checkout to run the real-server tier")]
CLIP, IMAGE = "hueshift_example.mp4", "hueshift_example.png"
WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
NODE_IDS = {"HueShiftLoadVideoFrames", "HueShiftKeyframeSelect", "HueShiftModelLoader", "HueShiftDDPMColorize",
            "HueShiftPropagate", "HueShiftLABUpscale", "HueShiftDeflicker", "HueShiftColorizeVideoFile"}
RUN_TIMEOUT = float(os.environ.get("HUESHIFT_COMFYUI_TIMEOUT", "900"))


# --- UI format -> API format, from /object_info --------------------------------------------------

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """A UI-format graph -> ``{id: {"class_type", "inputs"}}``, as the frontend's "queue" does.

    Widget values are taken in the order of ``input_order``; a seed with control_after_generate
    and an upload combo each hold one extra value; a linked widget keeps its value slot. Muted and
    bypassed nodes (mode 2, 4) are left out. No subgraphs, reroutes or primitive nodes.
    """
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):
            continue
        info = object_info[node["type"]]
        linked = {i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]]
                  for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for category in ("required", "optional"):
            for name in info["input_order"].get(category, []):
                kind, opts = (info["input"][category][name] + [{}])[:2]
                is_widget = isinstance(kind, list) or kind in WIDGET_TYPES
                if name in linked:
                    inputs[name] = linked[name]
                if not is_widget or opts.get("forceInput"):
                    continue
                value = values.pop(0) if values else None
                if name not in linked and value is not None:
                    inputs[name] = value
                if opts.get("control_after_generate") or any(
                        opts.get(k) for k in ("image_upload", "video_upload", "audio_upload")):
                    values.pop(0) if values else None
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


# --- the server ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.load(r)


def post_prompt(base: str, prompt: dict) -> tuple[int, dict]:
    req = urllib.request.Request(base + "/prompt", data=json.dumps({"prompt": prompt, "client_id": "hueshift-test"})
                                 .encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as err:  # 400: validation failed, node_errors says why
        return err.code, json.load(err)


def wait(base: str, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        h = _get(base, f"/history/{prompt_id}")
        if prompt_id in h and h[prompt_id]["status"].get("completed") is not None and (
                h[prompt_id]["status"]["completed"] or h[prompt_id]["status"]["status_str"] == "error"):
            return h[prompt_id]
        time.sleep(0.5)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s")


def _write_clip(dst: Path) -> None:
    """A colourful 854x480-style clip: a real development clip if present, else a synthetic one."""
    real = sorted((ROOT.parent / "shared" / "data" / "clips").glob("*.mp4"))
    if real:
        shutil.copy(real[0], dst)
        return
    import av
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=Fraction(24))
        s.width, s.height, s.pix_fmt = 320, 192, "yuv420p"
        y, x = np.mgrid[0:192, 0:320]
        for i in range(30):
            img = np.stack([(x + 4 * i) % 256, y * 255 // 191, np.full_like(x, 128)], -1).astype(np.uint8)
            img[60:120, 40 + 5 * i:100 + 5 * i] = (220, 40, 30)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _write_image(clip: Path, dst: Path) -> None:
    import av
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
    frame.to_image().save(dst)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base_dir = tmp_path_factory.mktemp("comfyui")
    for sub in ("custom_nodes", "input", "output", "models/hueshift", "user", "temp"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    (base_dir / "custom_nodes" / "ComfyUI-HueShift").symlink_to(ROOT, target_is_directory=True)
    _write_clip(base_dir / "input" / CLIP)
    _write_image(base_dir / "input" / CLIP, base_dir / "input" / IMAGE)
    python = os.environ.get("HUESHIFT_COMFYUI_PYTHON") or next(
        (str(p) for p in [Path(CHECKOUT).resolve().parent / "venv" / "bin" / "python"] if p.is_file()),
        sys.executable)
    port = _free_port()
    log = open(base_dir / "server.log", "w")  # noqa: SIM115 - open for the server's whole life
    proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                             "--base-directory", str(base_dir), "--database-url", "sqlite:///:memory:",
                             "--disable-auto-launch"], cwd=CHECKOUT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(360):
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited with {proc.returncode}:\n{(base_dir / 'server.log').read_text()[-3000:]}")
            try:
                object_info = _get(base, "/object_info")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        else:
            pytest.fail("ComfyUI did not answer within 180 s")
        yield {"base": base, "dir": base_dir, "object_info": object_info, "log": base_dir / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- tests ---------------------------------------------------------------------------------------

def test_pack_loads_every_node(server):
    text = server["log"].read_text()
    ours = [line for line in text.splitlines() if "HueShift" in line]
    assert not [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line], text[-3000:]
    assert any("ComfyUI-HueShift" in line for line in ours), "the pack was not loaded:\n" + text[-3000:]
    assert NODE_IDS <= set(server["object_info"]), sorted(NODE_IDS - set(server["object_info"]))
    for node_id in NODE_IDS:
        info = server["object_info"][node_id]
        assert info["category"] == "HueShift"
        for category in ("required", "optional"):
            for name, spec in info["input"].get(category, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    templates = _get(server["base"], "/api/workflow_templates")
    ours = next(v for k, v in templates.items() if "HueShift" in k)
    assert set(ours) == {p.stem for p in WORKFLOWS}  # listed from example_workflows/ (and again from workflows/)
    print(f"\n[comfyui] {len(NODE_IDS)} HueShift nodes registered; /api/workflow_templates: {ours}")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_bundled_workflow_runs(server, path):
    prompt = ui_to_api(json.loads(path.read_text()), server["object_info"])
    t0 = time.time()
    status, reply = post_prompt(server["base"], prompt)
    assert status == 200, json.dumps(reply)[:3000]
    history = wait(server["base"], reply["prompt_id"])
    errors = [m[1] for m in history["status"]["messages"] if m[0] == "execution_error"]
    assert history["status"]["status_str"] == "success", json.dumps(errors)[:3000]
    files = [f for out in history["outputs"].values() for key in ("images", "gifs", "video")
             for f in out.get(key, []) if isinstance(f, dict) and "filename" in f]
    assert files, f"no output files: {history['outputs']}"
    for f in files:
        p = server["dir"] / f["type"] / f["subfolder"] / f["filename"]
        assert p.is_file() and p.stat().st_size > 0, p
    print(f"\n[comfyui] {path.name}: success in {time.time() - t0:.1f} s -> "
          + ", ".join(f"{f['subfolder']}/{f['filename']} ({(server['dir'] / f['type'] / f['subfolder'] / f['filename']).stat().st_size} B)"
                      for f in files))


def _prompt(server, path: str, changes: dict | None = None) -> dict:
    prompt = ui_to_api(json.loads((ROOT / "example_workflows" / path).read_text()), server["object_info"])
    for (node_type, name), value in (changes or {}).items():
        node = next(n for n in prompt.values() if n["class_type"] == node_type)
        node["inputs"][name] = value
    return prompt


def _validation_error(server, prompt) -> str:
    status, reply = post_prompt(server["base"], prompt)
    assert status == 400, reply
    return json.dumps(reply["node_errors"])


def test_bad_input_is_refused_at_validation(server):
    (server["dir"] / "input" / "notes.mp4").write_text("this is not a video")
    (server["dir"] / "input" / "escape.mp4").symlink_to("/etc/hostname")
    long = "hueshift_long_video.json"
    cases = {
        "missing file": ({("HueShiftColorizeVideoFile", "video"): "nope.mp4"}, "not found in ComfyUI's input folder"),
        "not a video": ({("HueShiftColorizeVideoFile", "video"): "notes.mp4"}, "notes.mp4"),
        "path escape": ({("HueShiftColorizeVideoFile", "path"): "../../etc/passwd"}, "outside ComfyUI's input folder"),
        "symlink escape": ({("HueShiftColorizeVideoFile", "video"): "escape.mp4"}, "outside ComfyUI's input folder"),
    }
    for what, (changes, expected) in cases.items():
        msg = _validation_error(server, _prompt(server, long, changes))
        assert expected in msg, (what, msg)
        print(f"\n[comfyui] {what}: HTTP 400, {msg[:200]}")
    msg = _validation_error(server, _prompt(server, "hueshift_one_image.json",
                                            {("HueShiftModelLoader", "model_name"): "nope.safetensors"}))
    assert "not in the HueShift model folder" in msg
    print(f"[comfyui] unknown model: HTTP 400, {msg[:200]}")


def test_bad_graphs_fail_with_a_clear_message(server):
    # LAB Upscale given chroma of the image but frames of the video: an execution error in HueShift's words.
    prompt = _prompt(server, "hueshift_one_image.json")
    prompt["90"] = {"class_type": "HueShiftLoadVideoFrames",
                    "inputs": {"video": CLIP, "path": "", "frame_cap": 3, "skip_first": 0, "every_nth": 1,
                               "max_size": 128, "grey": True}}
    up = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftLABUpscale")
    prompt[up]["inputs"]["images"] = ["90", 0]
    status, reply = post_prompt(server["base"], prompt)
    assert status == 200, reply
    history = wait(server["base"], reply["prompt_id"])
    err = next(m[1] for m in history["status"]["messages"] if m[0] == "execution_error")
    assert err["exception_type"].endswith("InputError") and "3 frames" in err["exception_message"], err
    print(f"\n[comfyui] mismatched LAB Upscale inputs: {err['exception_type']}: {err['exception_message']}")
    # Colour frames where grey was expected: it runs, and the node says what it did.
    prompt = _prompt(server, "hueshift_one_image.json", {("HueShiftDDPMColorize", "seed"): 1})  # not cached
    status, reply = post_prompt(server["base"], prompt)
    history = wait(server["base"], reply["prompt_id"])
    col = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftDDPMColorize")
    note = history["outputs"].get(col, {}).get("text", [""])[0]
    assert history["status"]["status_str"] == "success" and "turned them grey" in note, history["outputs"]
    print(f"[comfyui] colour input: {note}")


def test_cancel_stops_sampling_promptly(server):
    """1000 sampling steps take minutes on a CPU; Cancel (POST /interrupt) must end the run within seconds."""
    prompt = _prompt(server, "hueshift_one_image.json", {("HueShiftDDPMColorize", "steps"): 1000,
                                                         ("HueShiftDDPMColorize", "seed"): 2})
    status, reply = post_prompt(server["base"], prompt)
    assert status == 200, reply
    col = next(k for k, n in prompt.items() if n["class_type"] == "HueShiftDDPMColorize")
    t0 = time.time()
    while time.time() - t0 < 120:  # wait until the sampler is running
        queue = _get(server["base"], "/queue")
        if queue["queue_running"]:
            break
        time.sleep(0.2)
    time.sleep(3.0)
    t_cancel = time.time()
    urllib.request.urlopen(urllib.request.Request(server["base"] + "/interrupt", data=b"{}", method="POST"), timeout=30)
    history = wait(server["base"], reply["prompt_id"], timeout=120)
    stopped = time.time() - t_cancel
    kinds = [m[0] for m in history["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    interrupted = next(m[1] for m in history["status"]["messages"] if m[0] == "execution_interrupted")
    assert interrupted["node_id"] == col and stopped < 10, (interrupted, stopped)
    print(f"\n[comfyui] Cancel during 1000-step sampling: stopped in {stopped:.2f} s at node {col} (DDPM Colorize)")
