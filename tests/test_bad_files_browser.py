"""A project folder with every kind of bad file (tests/bad_files.py), annotated in headless
Chromium: three fresh sessions each walk every image with A/D, commit an object on each one that
can be read, and never meet Gradio's red Error badge or run a script from a file name. And the
annotator's name: what is typed the moment the page appears is the name the next commit stores.
"""

from __future__ import annotations

import time

import pytest
from annotate_browser import TIMEOUT_MS, AnnotatePage, serve_project
from bad_files import HTML_NAME, NON_UTF8_NAME, READABLE, UNREADABLE, make_bad_folder
from browser import launch_chromium

from basam_ui.project import Project


# any red badge: a status tracker's "Error", or an error toast (warnings are fine)
ERRORS_JS = ("() => [...document.querySelectorAll('[data-testid=status-tracker] .error, .toast-body.error')]"
             ".filter(e => e.offsetParent !== null && e.innerText.trim()).map(e => e.innerText)")


@pytest.fixture(scope="module")
def bad_project(tmp_path_factory):
    return make_bad_folder(tmp_path_factory.mktemp("bad") / "scans")


@pytest.fixture(scope="module")
def server(bad_project, tmp_path_factory):
    # --max-size 512: S = the small images' own size ("native"), so each encode is quick
    with serve_project(bad_project, tmp_path_factory.mktemp("server"), labels=None, max_size=512) as running:
        yield running


# the status line's own text (not the progress timer Gradio lays over it while an event runs),
# and the name of the image it shows ("name (w×h) · to do · ..." or "name · to do" + the reason)
STATUS_JS = "(document.querySelector('#status .prose') || document.querySelector('#status'))?.innerText || ''"
NAME_JS = (f"(() => {{ const line = ({STATUS_JS}).split('\\n').find(l => l.includes(' · ')) || '';"
           " return line.split(' · ')[0].replace(/ \\(\\d+×\\d+\\)$/, '').trim(); })()")
READY_JS = f"(() => {{ const s = {STATUS_JS}; return s.includes('click the image') || s.includes(\"can't be read\"); }})()"


def _shown(page, other_than: str = "") -> tuple[str, str]:
    """Wait until the page shows an image (encoded) other than `other_than`, or says why it
    can't be read; returns (its name, the status text)."""
    page.wait_for_function(f"n => {READY_JS} && {NAME_JS} !== n", arg=other_than, timeout=TIMEOUT_MS)
    return page.evaluate(f"() => {NAME_JS}"), page.evaluate(f"() => {STATUS_JS}")


def _walk_and_commit(ann: AnnotatePage, alerts: list) -> set[str]:
    """Back to the first image with A, then every image with D, committing an object (a click,
    and a brush dot so that even a 1-pixel image has a mask) on each one that can be read."""
    page = ann.page
    name, _ = _shown(page)
    while True:  # back to the first image
        page.keyboard.press("a")
        page.wait_for_function(f"n => document.querySelector('#message').innerText.includes('first image') || "
                               f"({READY_JS} && {NAME_JS} !== n)", arg=name, timeout=TIMEOUT_MS)  # fmt: skip
        if "first image" in page.inner_text("#message"):
            break
        name, _ = _shown(page)
    seen = set()
    while True:
        name, status = _shown(page)
        assert name not in seen, f"{name} twice: {status}"
        seen.add(name)
        if "can't be read" not in status:
            objects = int(ann.js("root.dataset.objects || 0"))
            w, h = (int(v) for v in ann.js("[root.dataset.w, root.dataset.h]"))
            ann.click(w / 2, h / 2)
            ann.wait_masks()
            page.keyboard.press("b")
            ann.click(w / 2, h / 2)  # a brush dot
            page.keyboard.press("b")
            page.keyboard.press("Enter")
            ann.wait_objects(objects + 1)
        assert page.evaluate(ERRORS_JS) == [], ann.describe()
        page.keyboard.press("d")
        page.wait_for_function(f"n => document.querySelector('#message').innerText.includes('last image') || "
                               f"({READY_JS} && {NAME_JS} !== n)", arg=name, timeout=TIMEOUT_MS)  # fmt: skip
        if "last image" in page.inner_text("#message"):
            break
    assert not alerts, f"a script ran: {alerts}"
    return seen


def test_three_sessions_walk_a_folder_of_bad_files(server, bad_project):
    shown_names = {name.replace(NON_UTF8_NAME, "caf\N{REPLACEMENT CHARACTER}.png") for name in [*READABLE, *UNREADABLE]}
    with launch_chromium() as chromium:
        for k in range(3):  # fresh sessions, one after the other
            context = chromium.new_context(viewport={"width": 1500, "height": 1000})
            page = context.new_page()
            alerts = []
            page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
            page.goto(server.url)
            _, first = _shown(page)  # a fresh session opens a readable image, never a red badge
            assert "click the image" in first and page.evaluate(ERRORS_JS) == []
            ann = AnnotatePage.__new__(AnnotatePage)
            ann.page = page
            page.locator("#ann-name textarea, #ann-name input").fill(f"annotator {k}")
            page.locator("#ann-name textarea, #ann-name input").press("Tab")
            seen = _walk_and_commit(ann, alerts)
            assert seen == shown_names
            rows = page.inner_text("#ann-images")
            assert HTML_NAME in rows and "unreadable" in rows  # the HTML name shows as its characters
            context.close()
    with Project.open(bad_project, readonly=True, create=False, scan=False) as project:
        by_image = {}
        for obj in project.all_objects():
            by_image.setdefault(project.image(obj.image_id).path, set()).add(obj.provenance.annotator)
        assert set(by_image) == set(READABLE)
        assert all(names == {"annotator 0", "annotator 1", "annotator 2"} for names in by_image.values()), by_image
        assert {im.path for im in project.images() if im.unreadable} == set(UNREADABLE)


def test_a_name_typed_the_moment_the_page_appears_is_kept_and_stored(server, bad_project):
    with launch_chromium() as chromium:
        page = chromium.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        page.goto(server.url)
        field = page.locator("#ann-name textarea, #ann-name input")
        field.wait_for(timeout=TIMEOUT_MS)
        field.fill("early bird")  # before the page's load has answered
        time.sleep(5)
        _shown(page)
        assert field.input_value() == "early bird"
        ann = AnnotatePage.__new__(AnnotatePage)
        ann.page = page
        objects = int(ann.js("root.dataset.objects || 0"))
        w, h = (int(v) for v in ann.js("[root.dataset.w, root.dataset.h]"))
        ann.click(w / 2, h / 2)
        ann.wait_masks()
        page.keyboard.press("b")
        ann.click(w / 2, h / 2)
        page.keyboard.press("b")
        page.keyboard.press("Enter")
        ann.wait_objects(objects + 1)
        # the field is cleared: a commit asks for a name instead of storing ""
        field.fill("")
        field.press("Tab")
        ann.click(w / 3, h / 3)
        ann.wait_masks()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#message').innerText.includes('type your name')",
                               timeout=TIMEOUT_MS)  # fmt: skip
    with Project.open(bad_project, readonly=True, create=False, scan=False) as project:
        annotators = [o.provenance.annotator for o in project.all_objects()]
    assert "early bird" in annotators and "" not in annotators
