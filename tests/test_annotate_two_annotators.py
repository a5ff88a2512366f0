"""Two annotators on one `basam-ui annotate` server (two browser contexts, a 4-image project):
"next to do" hands them different images, both sets of objects persist, each with its
annotator, and each browser remembers its annotator's name."""

from __future__ import annotations

import re

from annotate_browser import AnnotatePage, project_server_fixtures
from basam_ui.project import Project
from browser import launch_chromium

project_dir, server = project_server_fixtures(4)


def open_image(ann: AnnotatePage) -> str:
    """The path of the image the page has open (named first in the status line)."""
    ann.wait_status(".png")
    return re.search(r"img\d+\.png", ann.page.inner_text("#status")).group(0)


def test_two_annotators_get_different_images(server, project_dir):
    with launch_chromium() as chromium:
        tabs = {}
        for name in ("alice", "bob"):
            page = chromium.new_context(viewport={"width": 1400, "height": 950}).new_page()
            tabs[name] = ann = AnnotatePage(page, server.url)
            page.fill("#ann-name textarea, #ann-name input", name)
            page.locator("#ann-name textarea, #ann-name input").press("Tab")
        first = {name: open_image(ann) for name, ann in tabs.items()}
        assert first["alice"] != first["bob"]
        for name, ann in tabs.items():
            ann.click(200, 240)
            ann.wait_masks()
            ann.page.keyboard.press("Enter")
            ann.wait_objects(1)
        for name, ann in tabs.items():  # next to do: other images again
            ann.page.click("#ann-todo")
            ann.page.wait_for_function(
                "before => !document.querySelector('#status').innerText.includes(before)", arg=first[name])
            ann.wait_ready()
        second = {name: open_image(ann) for name, ann in tabs.items()}
        assert second["alice"] != second["bob"] and not set(second.values()) & set(first.values())
        tabs["alice"].page.reload()
        tabs["alice"].wait_ready()
        tabs["alice"].page.wait_for_function(
            "() => document.querySelector('#ann-name textarea, #ann-name input').value === 'alice'")

    with Project.open(project_dir, readonly=True, create=False, scan=False) as project:
        objects = {project.image(o.image_id).path: o.provenance.annotator for o in project.all_objects()}
    assert objects == {first["alice"]: "alice", first["bob"]: "bob"}
