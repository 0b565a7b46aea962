"""The bundled workflows (UI format) name only existing nodes, with widget values that fit their inputs.

HueShift's nodes are checked against their schemas; the few core ComfyUI nodes the workflows use
against the specs below (ComfyUI 0.3.64's /object_info, trimmed). ``widgets_values`` are read in the
order ComfyUI's page saves them: widgets in input order, a seed's control value right after it, an
upload button's value last. Whether a real server runs them is ``tests/test_comfyui_server.py``'s job;
whether ComfyUI's own page reads them so is ``tests/test_comfyui_browser.py``'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_nodes import node_classes

pytestmark = pytest.mark.usefixtures("comfy_standins")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
CLIP, IMAGE = "hueshift_example.mp4", "hueshift_example.jpg"  # the pack puts them in ComfyUI's input folder

# Core nodes: (sockets {name: type}, widgets [(name, type, spec)], outputs [type], output node?)
CORE = {
    "LoadImage": ({}, [("image", "COMBO", {"upload": True, "runtime": True})], ["IMAGE", "MASK"], False),
    "SaveImage": ({"images": "IMAGE"}, [("filename_prefix", "STRING", {})], [], True),
    "PreviewImage": ({"images": "IMAGE"}, [], [], True),
    "CreateVideo": ({"images": "IMAGE", "audio": "AUDIO"}, [("fps", "FLOAT", {"min": 1.0, "max": 120.0})],
                    ["VIDEO"], False),
    "SaveVideo": ({"video": "VIDEO"}, [("filename_prefix", "STRING", {}),
                                       ("format", "COMBO", {"options": ["auto", "mp4"]}),
                                       ("codec", "COMBO", {"options": ["auto", "h264"]})], [], True),
}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
RUNTIME_COMBOS = {"video": CLIP, "model_name": "default (shipped)", "image": IMAGE}  # options come from folders


def spec(node_type: str, nodes: dict):
    """Like ``CORE``'s entries, for any node the workflows may use."""
    if node_type in CORE:
        return CORE[node_type]
    if node_type not in nodes:
        pytest.fail(f"unknown node type {node_type!r}")
    schema = nodes[node_type].define_schema()
    sockets, widgets = {}, []
    for i in schema.inputs:
        t = i.io_type if isinstance(i.io_type, str) else "COMBO"
        if t in WIDGET_TYPES:
            widgets.append((i.id, t, {"min": getattr(i, "min", None), "max": getattr(i, "max", None),
                                      "options": getattr(i, "options", None),
                                      "control": bool(getattr(i, "control_after_generate", None)),
                                      "upload": getattr(i, "upload", None) is not None,
                                      "runtime": i.id in RUNTIME_COMBOS}))
        else:
            sockets[i.id] = t
    return sockets, widgets, [o.io_type for o in schema.outputs], schema.is_output_node


def check_value(where: str, t: str, extra: dict, name: str, value) -> None:
    if t == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {name}={value!r} is not an int"
    elif t == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {name}={value!r}"
    elif t == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {name}={value!r} is not a boolean"
    else:
        assert isinstance(value, str), f"{where}: {name}={value!r} is not a string"
    if extra.get("min") is not None:
        assert value >= extra["min"], f"{where}: {name}={value} < {extra['min']}"
    if extra.get("max") is not None:
        assert value <= extra["max"], f"{where}: {name}={value} > {extra['max']}"
    if t == "COMBO":
        if extra.get("runtime"):
            assert value == RUNTIME_COMBOS[name], f"{where}: {name} must be {RUNTIME_COMBOS[name]!r}, got {value!r}"
        else:
            assert value in extra["options"], f"{where}: {name}={value!r} not in {extra['options']}"


@pytest.fixture(scope="module")
def nodes():
    return node_classes()


def test_the_four_workflows_are_bundled_once():
    names = {p.stem for p in WORKFLOWS}
    assert names == {"hueshift_full_pipeline", "hueshift_hint_guided_video", "hueshift_long_video",
                     "hueshift_one_image"}
    # ComfyUI 0.3.64 lists every one of example_workflows/, example/, examples/, workflow/, workflows/: keep one
    assert not [d for d in ("example_workflows", "example", "examples", "workflow") if (ROOT / d).exists()]
    for wf in WORKFLOWS:  # the template browser's thumbnail
        thumb = wf.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb} is not a JPEG"
    for name in (CLIP, IMAGE):  # the inputs they read, shipped beside them
        assert (ROOT / "workflows" / "input" / name).is_file()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_has_a_note_on_loading_ones_own_input(path):
    notes = [n for n in json.loads(path.read_text())["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1 and "Your own" in notes[0]["widgets_values"][0], path.name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_fits_the_nodes(path, nodes):
    wf = json.loads(path.read_text())
    assert isinstance(wf.get("nodes"), list) and isinstance(wf.get("links"), list), "not a UI-format workflow"
    by_id = {n["id"]: n for n in wf["nodes"]}
    links = {link[0]: link for link in wf["links"]}
    outputs = 0
    for n in wf["nodes"]:
        if n["type"] == "Note":  # canvas-only text
            continue
        where = f"{path.name} node {n['id']} ({n['type']})"
        sockets, widgets, _, is_output = spec(n["type"], nodes)
        outputs += is_output
        values = list(n.get("widgets_values", []))
        expected = sum(1 + (w[2].get("control", False) or w[2].get("upload", False)) for w in widgets)
        assert len(values) == expected, f"{where}: {len(values)} widget values for {expected} slots"
        for name, t, extra in widgets:
            check_value(where, t, extra, name, values.pop(0))
            if extra.get("control"):
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize"), where
        uploads = sum(bool(w[2].get("upload")) for w in widgets)
        assert values == ["image"] * uploads, f"{where}: the upload button's value must come last, got {values}"
        linked = set()
        for slot, inp in enumerate(n.get("inputs", [])):
            if inp.get("link") is None:
                assert inp["name"] in sockets or "widget" in inp, f"{where}: unknown input {inp['name']}"
                continue
            widget_types = {w[0]: w[1] for w in widgets}
            assert inp["name"] in sockets or inp["name"] in widget_types, f"{where}: unknown input {inp['name']}"
            want = sockets.get(inp["name"]) or widget_types[inp["name"]]
            _, src, src_slot, dst, dst_slot, t = links[inp["link"]]
            assert (dst, dst_slot) == (n["id"], slot), f"{where}: link {inp['link']} does not end here"
            src_types = spec(by_id[src]["type"], nodes)[2]
            assert src_types[src_slot] == want == t, f"{where}: {inp['name']} wants {want}, gets {src_types[src_slot]}"
            linked.add(inp["name"])
        required = {i.id for i in nodes[n["type"]].define_schema().inputs if not i.optional
                    and (i.io_type if isinstance(i.io_type, str) else "COMBO") not in WIDGET_TYPES} \
            if n["type"] in nodes else {k for k in sockets if k != "audio"}
        assert required <= linked, f"{where}: unconnected inputs {sorted(required - linked)}"
        for slot, out in enumerate(n.get("outputs", [])):
            for lid in out.get("links") or []:
                assert links[lid][1:3] == [n["id"], slot], f"{where}: output link {lid} does not start here"
    assert outputs >= 1, f"{path.name} has no output node"
