"""The browser tier: ComfyUI's own web page, in headless Chromium, loads and runs each bundled workflow.

As a user does it: a fresh ComfyUI (the pack's example inputs only), a fresh browser profile, the
template browser (Workflow -> Browse Templates, search "hueshift", click the card). Then: every node
of the graph is a known node type and none is marked red; the page's own ``app.graphToPrompt()``
gives the inputs the workflow means (and agrees with the tests' converter); Run is clicked; the run
finishes with no error toast or dialog and its output appears on the page. Screenshots of each loaded
graph and of its result go to a temporary folder, or to docs/comfyui/ with
``HUESHIFT_SCREENSHOTS=docs`` (how the README's pictures are made).

Needs ComfyUI (see ``comfyui_harness``), Chromium at ``/usr/bin/chromium`` (Debian package
``chromium``) and playwright (PyPI; it drives the system browser, it downloads none); skipped with a
message where one is missing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from comfyui_harness import ROOT, WORKFLOWS, get, output_files, server, skip_or_fail, ui_to_api, wait

pytestmark = [pytest.mark.comfyui, pytest.mark.browser]
CHROMIUM = os.environ.get("HUESHIFT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 900}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("HUESHIFT_SCREENSHOTS") == "docs":
        return ROOT / "docs" / "comfyui"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        skip_or_fail(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("playwright is not installed (pip install playwright; it uses the system Chromium)")
    with server(tmp_path_factory.mktemp("comfyui-browser")) as s:
        yield s


@pytest.fixture(scope="module")
def page(comfy, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir: a first visit
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport=VIEWPORT)
        pg = ctx.pages[0] if ctx.pages else ctx.new_page()
        pg.console_errors = []
        pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.console_errors.append(f"page error: {e}\n{e.stack}"))
        t0 = time.time()
        pg.goto(comfy["base"] + "/", wait_until="domcontentloaded")
        pg.wait_for_function("window.app && window.app.graph && window.app.canvas && window.app.extensionManager",
                             timeout=120_000)
        print(f"\n[browser] ComfyUI page ready in {time.time() - t0:.1f} s")
        pg.wait_for_timeout(2000)
        pg.startup_errors, pg.console_errors = pg.console_errors, []  # the frontend's own first-visit set-up
        try:
            yield pg
        finally:
            ctx.close()


def _open_template(page, name: str, types: list[str]) -> None:
    """Workflow -> Browse Templates, search, click the template's card; wait until its graph is on the canvas.

    The dialog is opened afresh up to three times: on a loaded machine its search field can be taken
    while the previous dialog is still closing, and then the card never shows.
    """
    for attempt in range(3):
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
        try:
            page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
            search = page.get_by_placeholder("Search templates...").last
            search.wait_for(timeout=45_000)
            search.fill(name)
            card = page.get_by_text(name, exact=True)
            card.first.wait_for(timeout=20_000)
            break
        except Exception:  # playwright's TimeoutError: the dialog or its card did not show; open it again
            if attempt == 2:
                raise
    page.wait_for_timeout(500)  # the search filters as one types
    assert card.count() == 1, f"template {name} listed {card.count()} times"
    card.first.click()
    page.wait_for_function("(want) => JSON.stringify(window.app.graph.nodes.map(n => n.type).sort()) === want",
                           arg=json.dumps(sorted(types), separators=(",", ":")), timeout=60_000)
    page.wait_for_timeout(1000)


def _graph_state(page) -> list[dict]:
    return page.evaluate("""() => window.app.graph.nodes.map(n => ({
        id: n.id, type: n.type, known: !!LiteGraph.registered_node_types[n.type],
        has_errors: !!n.has_errors, color: n.color || null, bgcolor: n.bgcolor || null,
        widgets: (n.widgets || []).map(w => [w.name, w.value])}))""")


def _visible_errors(page) -> list[str]:
    """Error toasts and dialogs the page shows (missing nodes, validation or execution errors)."""
    texts = page.evaluate("""() => [...document.querySelectorAll(
        '.p-toast-message-error, .p-toast-message-warn, .p-dialog, .comfy-modal[style*="block"]')]
        .filter(e => e.offsetParent !== null || getComputedStyle(e).display !== 'none')
        .map(e => e.innerText.trim()).filter(t => t)""")
    return [t for t in texts if "Templates" not in t[:200]]


def _fit_and_shoot(page, path: Path) -> None:
    page.evaluate("""() => { const c = window.app.canvas; c.deselectAll && c.deselectAll();
        if (window.app.extensionManager.setting) window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false);
        }""")
    page.mouse.move(VIEWPORT["width"] - 300, VIEWPORT["height"] // 2)  # over empty canvas: no tooltip
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_template_loads_and_runs_in_the_page(comfy, page, shots, path):
    name = path.stem
    t0 = time.time()
    wf = json.loads(path.read_text())
    _open_template(page, name, [n["type"] for n in wf["nodes"]])
    nodes = _graph_state(page)
    assert sorted(n["type"] for n in nodes) == sorted(n["type"] for n in wf["nodes"]), nodes
    assert all(n["known"] for n in nodes), [n["type"] for n in nodes if not n["known"]]  # no missing node
    assert not [n for n in nodes if n["has_errors"]], nodes
    assert not _visible_errors(page), _visible_errors(page)
    # The page's own prompt is what the workflow means, and what the tests' converter says.
    page_prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    ours = ui_to_api(wf, comfy["object_info"])
    declared = {k: {i for c in ("required", "optional") for i in comfy["object_info"][v["class_type"]]["input"]
                    .get(c, {})} for k, v in ours.items()}
    seen = {k: {"class_type": v["class_type"], "inputs": {i: x for i, x in v["inputs"].items() if i in declared[k]}}
            for k, v in page_prompt.items()}
    assert seen == ours, json.dumps({"page": seen, "ours": ours})[:4000]
    _fit_and_shoot(page, shots / f"graph_{name.removeprefix('hueshift_')}.png")
    # Run, as a user does.
    before = set(get(comfy["base"], "/history"))
    page.get_by_role("button", name="Run", exact=True).first.click()
    t_run = time.time()
    prompt_id = None
    while time.time() - t_run < 60 and prompt_id is None:
        new = set(get(comfy["base"], "/history")) - before
        queue = get(comfy["base"], "/queue")
        running = [q[1] for q in queue["queue_running"] + queue["queue_pending"]]
        prompt_id = next(iter(new), None) or next(iter(running), None)
        time.sleep(0.3)
    assert prompt_id, f"Run did not queue a prompt; the page shows: {_visible_errors(page)}"
    history = wait(comfy["base"], prompt_id)
    errors = [m[1] for m in history["status"]["messages"] if m[0] == "execution_error"]
    assert history["status"]["status_str"] == "success", errors
    files = output_files(history)
    assert files, history["outputs"]
    # The result is shown on the page: the save node's preview loads from /view.
    want = files[0]["filename"]
    page.wait_for_function("""(f) => [...document.querySelectorAll('img, video, source')]
        .some(e => (e.src || e.currentSrc || '').includes(encodeURIComponent(f)) || (e.src || '').includes(f))
        || window.app.graph.nodes.some(n => (n.imgs || []).some(i => (i.src || '').includes(f)))""",
                           arg=want, timeout=60_000)
    page.wait_for_timeout(1500)  # let the preview draw
    assert not [n for n in _graph_state(page) if n["has_errors"]]
    assert not _visible_errors(page), _visible_errors(page)
    _fit_and_shoot(page, shots / f"result_{name.removeprefix('hueshift_')}.png")
    print(f"\n[browser] {name}: loaded from the template browser, queued with Run, {want} shown; "
          f"{time.time() - t0:.1f} s (run {time.time() - t_run:.1f} s); screenshots in {shots}")


FRONTEND_NOISE = ("Failed to load resource", "ERR_NAME_NOT_RESOLVED",  # its probes of absent files and hosts
                  "Attempted to cleanup event listeners for graph that was never set up")  # on switching tabs


def test_no_page_errors(page):
    """Run last: loading and running the templates made the page log no error."""
    errors = [e for e in page.console_errors if not any(n in e for n in FRONTEND_NOISE)]
    assert not errors, errors
    print(f"\n[browser] console errors during start-up (the frontend's own, not checked): {page.startup_errors}")
