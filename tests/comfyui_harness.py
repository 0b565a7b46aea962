"""A real ComfyUI server with this pack, for the real-server and browser tiers (test equipment, not tests).

Where ComfyUI is: ``HUESHIFT_COMFYUI`` (a checkout: the folder with ``main.py``), else
``../shared/comfyui/ComfyUI`` beside this repository. Its Python: ``HUESHIFT_COMFYUI_PYTHON``, else
the venv ``.ci/comfyui_venv.sh`` builds (``~/.cache/hueshift-ci/comfyui-venv-*``). Without them
the tiers skip with a message saying so; with ``HUESHIFT_REQUIRE_COMFYUI=1`` (CI) they fail instead.
Each server runs with ``--cpu`` and ``--base-directory`` in a fresh temporary folder whose
custom_nodes/ holds only a link to this repository: a fresh ComfyUI, as a new user has it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
NODE_IDS = {"HueShiftLoadVideoFrames", "HueShiftKeyframeSelect", "HueShiftModelLoader", "HueShiftDDPMColorize",
            "HueShiftPropagate", "HueShiftLABUpscale", "HueShiftDeflicker", "HueShiftColorizeVideoFile",
            "HueShiftColourHints", "HueShiftReferenceFrames"}
RUN_TIMEOUT = float(os.environ.get("HUESHIFT_COMFYUI_TIMEOUT", "900"))
REQUIRED = os.environ.get("HUESHIFT_REQUIRE_COMFYUI") == "1"


def checkout() -> Path | None:
    env = os.environ.get("HUESHIFT_COMFYUI")
    path = Path(env) if env else ROOT.parent / "shared" / "comfyui" / "ComfyUI"
    return path if (path / "main.py").is_file() else None


def comfy_python() -> str | None:
    env = os.environ.get("HUESHIFT_COMFYUI_PYTHON")
    if env:
        return env
    cache = Path(os.environ.get("HUESHIFT_CI_CACHE", Path.home() / ".cache" / "hueshift-ci"))
    built = sorted(cache.glob("comfyui-venv-*/.complete"), key=lambda p: p.stat().st_mtime)
    return str(built[-1].parent / "bin" / "python") if built else None


def skip_or_fail(reason: str) -> None:
    """Skip (a user's clone without ComfyUI), or fail where CI requires the tier to run."""
    if REQUIRED:
        pytest.fail(f"HUESHIFT_REQUIRE_COMFYUI=1 but {reason}")
    pytest.skip(reason)


def require_comfyui() -> tuple[Path, str]:
    where = checkout()
    if where is None:
        skip_or_fail("no ComfyUI: ../shared/comfyui/ComfyUI is absent and HUESHIFT_COMFYUI is not set "
                     "(the real-ComfyUI tiers need a ComfyUI checkout)")
    python = comfy_python()
    if python is None or not Path(python).is_file():
        skip_or_fail(f"ComfyUI is at {where} but has no Python: run `bash .ci/comfyui_venv.sh` "
                     "or set HUESHIFT_COMFYUI_PYTHON")
    return where, python


# --- HTTP -------------------------------------------------------------------------------------------

def get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.load(r)


def post(base: str, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as err:  # 400: validation failed, node_errors says why
        return err.code, json.load(err)


def post_prompt(base: str, prompt: dict) -> tuple[int, dict]:
    return post(base, "/prompt", {"prompt": prompt, "client_id": "hueshift-test"})


def wait(base: str, prompt_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    """The history entry of a prompt once it has finished (successfully, with an error, or interrupted)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        h = get(base, f"/history/{prompt_id}")
        if prompt_id in h and h[prompt_id]["status"].get("completed") is not None and (
                h[prompt_id]["status"]["completed"] or h[prompt_id]["status"]["status_str"] == "error"):
            return h[prompt_id]
        time.sleep(0.5)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s")


def output_files(history: dict) -> list[dict]:
    return [f for out in history["outputs"].values() for key in ("images", "gifs", "video")
            for f in out.get(key, []) if isinstance(f, dict) and "filename" in f]


# --- UI format -> API format, as ComfyUI's page does it -----------------------------------------------

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOADS = ("image_upload", "video_upload", "audio_upload")
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # canvas-only nodes: never sent to the server


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """A UI-format graph -> ``{id: {"class_type", "inputs"}}``, as the page's ``app.graphToPrompt()``.

    ``widgets_values`` hold, in input order, one value per widget input (a linked widget keeps its
    slot), a seed's ``control_after_generate`` value right after it, and an upload combo's button
    value ("image") LAST, after all the others: the page adds that button after the node's widgets.
    Muted and bypassed nodes (mode 2, 4) and canvas-only notes are left out. No subgraphs, reroutes
    or primitive nodes. The browser tier checks this against the page itself.
    """
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4) or node["type"] in FRONTEND_ONLY:
            continue
        info = object_info[node["type"]]
        linked = {i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]]
                  for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs, uploads = {}, 0
        for category in ("required", "optional"):
            for name in info["input_order"].get(category, []):
                kind, opts = (info["input"][category][name] + [{}])[:2]
                if name in linked:
                    inputs[name] = linked[name]
                if not (isinstance(kind, list) or kind in WIDGET_TYPES) or opts.get("forceInput"):
                    continue
                value = values.pop(0) if values else None
                if name not in linked and value is not None:
                    inputs[name] = value
                if opts.get("control_after_generate"):
                    values.pop(0) if values else None
                uploads += any(opts.get(k) for k in UPLOADS)
        assert len(values) == uploads, f"node {node['id']} ({node['type']}): {len(values)} widget values left over, " \
                                       f"expected {uploads} upload button value(s) at the end: {values}"
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


# --- the server ---------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(base_dir: Path, prepare=None):
    """Start ComfyUI with this pack in ``base_dir`` (made fresh); yield a dict: base URL, dir, object_info, log."""
    where, python = require_comfyui()
    for sub in ("custom_nodes", "input", "output", "models/hueshift", "user", "temp"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    (base_dir / "custom_nodes" / "ComfyUI-HueShift").symlink_to(ROOT, target_is_directory=True)
    if prepare is not None:
        prepare(base_dir)
    port = _free_port()
    log_path = base_dir / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
                                 "--base-directory", str(base_dir), "--database-url", "sqlite:///:memory:",
                                 "--disable-auto-launch"], cwd=where, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                if proc.poll() is not None:
                    pytest.fail(f"ComfyUI exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    object_info = get(base, "/object_info")
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
            else:
                pytest.fail(f"ComfyUI did not answer within 300 s:\n{log_path.read_text()[-3000:]}")
            print(f"\n[comfyui] server up in {time.time() - t0:.1f} s ({where}, {python})")
            yield {"base": base, "dir": base_dir, "object_info": object_info, "log": log_path}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
