"""The canvas in headless Chromium: zoom to the original's pixels, pan, prompts in original
coordinates, masks drawn on the image in each view, the swipe divider, and every key.

One app served in this process (random vit_t, S = 1024) and one page for the whole file: a
6000 x 4000 image of 1-px stripes made here is uploaded once, and the tests run in order on
it. Chromium missing: skipped, or failed under CI=true (tests/browser.py).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from browser import free_port, launch_chromium

W, H = 6000, 4000
TIMEOUT_MS = 180_000
ROOT = "document.querySelector('#canvas .bc-root')"


@pytest.fixture(scope="module")
def page(vit_t, tmp_path_factory):
    """The page with the stripes image uploaded and encoded."""
    import torch

    from basam_ui.web.compare.page import build_app
    from basam_ui.web.common.engine import AppEngine
    from basam_ui.web.compare.serve import launch_options

    folder = tmp_path_factory.mktemp("canvas")
    stripes = np.zeros((H, W, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-px vertical stripes: white on even columns, black on odd ones
    stripes[: H // 2, :, 2] //= 2  # the top half yellowish, so a wrong half shows
    Image.fromarray(stripes).save(folder / "stripes.png", compress_level=1)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = AppEngine({"vit_t": lambda: vit_t}, max_size=1024, random_weights=True, work_dir=folder / "work")
    demo = build_app(engine)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(engine))
    try:
        with launch_chromium() as chromium:
            tab = chromium.new_page(viewport={"width": 1300, "height": 1000})
            tab.goto(f"http://127.0.0.1:{port}")
            tab.wait_for_selector("#upload input[type=file]", state="attached", timeout=60_000)
            tab.set_input_files("#upload input[type=file]", str(folder / "stripes.png"))
            tab.wait_for_function(f"() => {ROOT} && {ROOT}.dataset.ready === '1' && {ROOT}.dataset.w === '{W}'", timeout=TIMEOUT_MS)
            tab.wait_for_function(
                "() => document.querySelector('#status').innerText.includes('click the image')", timeout=TIMEOUT_MS
            )
            tab.locator("#canvas canvas").scroll_into_view_if_needed()
            yield tab
    finally:
        demo.close()
        engine.close()
        torch.set_num_threads(threads)


def bc(page, script: str, arg=None):
    """Evaluate `script`, a function of the canvas's test hooks and `arg`, in the page."""
    return page.evaluate(f"a => ({script})({ROOT}.bc, a)", arg)


def state(page) -> dict:
    return bc(page, "b => b.state()")


def canvas_rect(page) -> dict:
    return page.eval_on_selector("#canvas canvas", "c => { const r = c.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height} }")


def grab(page, x: float, y: float, w: int, h: int) -> np.ndarray:
    """Screen pixels (RGB) of a viewport rectangle."""
    png = page.screenshot(clip={"x": x, "y": y, "width": w, "height": h})
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def centre_patch(page, size: int = 40) -> np.ndarray:
    r = canvas_rect(page)
    return grab(page, r["x"] + r["w"] / 2 - size / 2 + 30, r["y"] + r["h"] / 2 - size / 2 + 30, size, size)


def press(page, key: str) -> None:
    page.keyboard.press(key)


def wait_drawn(page, before: int) -> None:
    page.wait_for_function(f"b => {ROOT}.bc.state().drawn > b", arg=before, timeout=TIMEOUT_MS)


def prompts(page) -> dict:
    return bc(page, "b => { const v = b.value(); return {points: v.points, boxes: v.boxes, negative: v.negative} }")


def test_fit_averages_the_stripes_and_1_to_1_resolves_them(page):
    fit = state(page)
    assert fit["scale"] < 0.25 and fit["full"] == "none"  # fitted: the display copy is enough
    patch = centre_patch(page)
    assert patch[..., 0].std() < 12  # 1-px stripes average out to grey at this zoom

    press(page, "0")
    page.wait_for_function(f"() => {ROOT}.bc.state().full === 'ready'", timeout=TIMEOUT_MS)
    assert state(page)["scale"] == pytest.approx(1.0)
    patch = centre_patch(page)
    columns = patch[..., 0].mean(axis=0)
    assert np.all(np.abs(np.diff(columns)) > 200)  # each screen column one stripe: 0, 255, 0, ...
    assert np.all((patch[..., 0] < 10) | (patch[..., 0] > 245))  # no smoothing at 1:1

    press(page, "f")
    assert state(page)["scale"] == pytest.approx(fit["scale"])
    assert centre_patch(page)[..., 0].std() < 12


def test_a_click_at_1_to_1_after_panning_lands_on_the_pixel_under_the_pointer(page):
    press(page, "0")  # 1:1 around the canvas centre, which shows the image centre after F
    r = canvas_rect(page)
    cx, cy = r["x"] + r["w"] / 2, r["y"] + r["h"] / 2
    # pan: a middle-button drag, then a Space-drag with the left button
    page.mouse.move(cx, cy)
    page.mouse.down(button="middle")
    page.mouse.move(cx - 300, cy - 200, steps=5)
    page.mouse.up(button="middle")
    page.keyboard.down(" ")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 100, cy + 50, steps=5)
    page.mouse.up()
    page.keyboard.up(" ")
    assert prompts(page)["points"] == []  # panning adds no prompt
    before = grab(page, r["x"], r["y"], int(r["w"]), int(r["h"]))
    drawn = state(page)["drawn"]

    page.mouse.click(cx, cy)  # the image pixel under the canvas centre moved by the pan
    (point,) = prompts(page)["points"]
    assert point["label"] == 1
    assert point["x"] == pytest.approx(W / 2 + 200, abs=1) and point["y"] == pytest.approx(H / 2 + 150, abs=1)
    wait_drawn(page, drawn)

    # the masks are drawn on the canvas: at 1:1, exactly the pixels of the BA-SAM mask change
    after = grab(page, r["x"], r["y"], int(r["w"]), int(r["h"]))
    png = base64.b64decode(bc(page, "b => b.masks()").split(",", 1)[1])
    values = np.asarray(Image.open(io.BytesIO(png)))
    s = state(page)
    x0, y0 = round(-s["tx"]), round(-s["ty"])  # image pixel at the canvas's top-left corner
    inside = (values[y0 : y0 + before.shape[0], x0 : x0 + before.shape[1]] & 2) > 0
    changed = np.any(after != before, axis=2)
    yy, xx = np.mgrid[: before.shape[0], : before.shape[1]]
    away = np.hypot(xx - r["w"] / 2, yy - r["h"] / 2) > 12  # leave out the point's marker
    assert inside[away].any()
    assert np.array_equal(changed[away], inside[away])  # pixel-exact against the mask
    press(page, "f")


def synthetic_masks(page) -> dict:
    """A `masks` value with an only-SAM rectangle (left), an only-BA-SAM one (right) and one
    in both (middle, wide), packed as the server packs them."""
    from basam_ui.web.common import render

    sam = np.zeros((H, W), bool)
    basam = np.zeros((H, W), bool)
    sam[1500:2500, 300:1300] = True
    basam[1500:2500, 4700:5700] = True
    sam[1500:2500, 1800:4200] = basam[1500:2500, 1800:4200] = True
    url = bc(page, "b => b.value().image.url")
    return {"url": url, "rev": -1, "png": render.data_url(render.pack_masks(sam, basam)), "width": W, "height": H}


def colour_at(page, x: float, y: float) -> np.ndarray:
    p = bc(page, "(b, p) => b.toClient(p[0], p[1])", [x, y])
    return grab(page, p["x"] - 3, p["y"] - 3, 6, 6).reshape(-1, 3).mean(axis=0)


def test_each_view_shows_its_masks_and_the_swipe_divider_moves(page):
    press(page, "f")
    drawn = state(page)["drawn"]
    bc(page, "(b, m) => b.setMasks(m)", synthetic_masks(page))
    wait_drawn(page, drawn)
    spots = {"only_sam": (800, 2300), "only_basam": (5200, 2300), "both_left": (2200, 2300), "both_right": (3800, 2300), "none": (3000, 3500)}
    seen = {}
    for view in ("basam", "sam", "diff", "swipe"):
        while state(page)["view"] != view:
            press(page, "v")
        page.wait_for_function(f"() => {ROOT}.bc.state().layers", timeout=10_000)  # its colours decoded
        seen[view] = {name: colour_at(page, *xy) for name, xy in spots.items()}
    orange = lambda c: c[0] - c[2] > 60  # noqa: E731
    blue = lambda c: c[2] - c[0] > 50  # noqa: E731
    grey = lambda c: abs(c[0] - c[2]) < 15  # noqa: E731
    b, s, d, w = seen["basam"], seen["sam"], seen["diff"], seen["swipe"]
    assert orange(b["only_basam"]) and orange(b["both_left"]) and grey(b["only_sam"]) and grey(b["none"])
    assert blue(s["only_sam"]) and blue(s["both_left"]) and grey(s["only_basam"]) and grey(s["none"])
    assert blue(d["only_sam"]) and orange(d["only_basam"]) and d["both_left"].min() > 140 and d["none"].max() < 90
    # swipe: SAM left of the divider (at the middle), BA-SAM right of it
    assert blue(w["both_left"]) and orange(w["both_right"]) and blue(w["only_sam"]) and orange(w["only_basam"])

    r = canvas_rect(page)
    page.mouse.move(r["x"] + r["w"] / 2, r["y"] + r["h"] / 2)
    page.mouse.down()
    page.mouse.move(r["x"] + r["w"] * 0.9, r["y"] + r["h"] / 2, steps=6)
    page.mouse.up()
    assert state(page)["swipe"] == pytest.approx(0.9, abs=0.01)
    assert blue(colour_at(page, *spots["both_right"]))  # now left of the divider: SAM
    assert prompts(page)["points"] and len(prompts(page)["points"]) == 1  # dragging the divider adds nothing
    while state(page)["view"] != "basam":
        press(page, "v")


def test_the_masks_last_sent_win_even_when_an_earlier_answer_decodes_later(page):
    """Answers can arrive back to back (a click's masks, then a commit's "no masks"): the
    first one's PNG decodes after the second is already set, and must not bring it back."""
    masks = synthetic_masks(page)
    bc(page, "async (b, m) => { const first = b.setMasks(m); const second = b.setMasks(null); await Promise.all([first, second]); }", masks)
    assert state(page)["masks"] is None
    bc(page, "async (b, m) => { await Promise.all([b.setMasks(null), b.setMasks(m)]); }", masks)
    assert state(page)["masks"] == {"rev": -1, "width": W, "height": H}


def test_every_key_works_and_none_while_typing(page):
    press(page, "f")
    fit = state(page)["scale"]
    for key, expected in (("0", 1.0), ("+", 1.25), ("-", 1.0), ("f", fit)):
        press(page, key)
        assert state(page)["scale"] == pytest.approx(expected, rel=1e-6), key
    # wheel zooms around the pointer: the image pixel under it stays under it
    r = canvas_rect(page)
    px, py = r["x"] + r["w"] * 0.3, r["y"] + r["h"] * 0.4
    under = lambda: bc(page, "(b, p) => { const s = b.state(), q = b.toClient(0, 0); return [(p[0] - q.x) / s.scale, (p[1] - q.y) / s.scale] }", [px, py])  # noqa: E731
    before = under()
    page.mouse.move(px, py)
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"s => {ROOT}.bc.state().scale > s * 1.5", arg=fit, timeout=10_000)
    # (within 2 screen px: the view snaps to whole screen pixels at each wheel step)
    assert under() == pytest.approx(before, abs=2 / state(page)["scale"])
    press(page, "f")

    assert len(prompts(page)["points"]) == 1  # from the 1:1 click
    assert not prompts(page)["negative"]
    press(page, "n")  # negative clicks: through the page's "Click adds" control
    assert prompts(page)["negative"] and page.is_checked("#click-mode input[value=negative]")
    drawn = state(page)["drawn"]
    page.mouse.click(*[bc(page, "(b, p) => b.toClient(p[0], p[1])", [1000, 1000])[k] for k in ("x", "y")])
    assert prompts(page)["points"][-1]["label"] == 0
    wait_drawn(page, drawn)
    press(page, "n")
    assert not prompts(page)["negative"]

    # typing in a text field: no key acts on the canvas
    snapshot = (state(page), prompts(page))
    page.click("#size input")
    for key in ("n", "z", "Control+z", "v", "f", "0", "+", "-", "Escape"):
        page.keyboard.press(key)
    page.evaluate("() => document.activeElement.blur()")
    assert (state(page), prompts(page)) == snapshot

    drawn = state(page)["drawn"]
    press(page, "z")  # undo: the negative point
    assert [p["label"] for p in prompts(page)["points"]] == [1]
    wait_drawn(page, drawn)
    page.mouse.click(*[bc(page, "(b, p) => b.toClient(p[0], p[1])", [2000, 1000])[k] for k in ("x", "y")])
    press(page, "Control+z")
    assert len(prompts(page)["points"]) == 1
    press(page, "Escape")  # clear
    assert prompts(page)["points"] == [] and prompts(page)["boxes"] == []
    # the last answer (for no prompts) leaves nothing to draw
    page.wait_for_function(f"() => {ROOT}.bc.state().masks === null", timeout=TIMEOUT_MS)
    view = state(page)["view"]
    press(page, "v")
    assert state(page)["view"] != view
    help_line = page.inner_text("#canvas .bc-help")
    for key in ("N ", "Z or Ctrl+Z", "Esc", "V ", "F ", "0 ", "+ / −", "wheel", "Space-drag", "middle-drag"):
        assert key in help_line
