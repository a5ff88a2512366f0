"""Helpers for the annotate page's browser tests: a project folder of small generated images,
the `basam-ui annotate` server, and the page's gestures and waits."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from PIL import Image

from browser import serve

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 120_000  # an encode on a busy 2-core CPU
SERVER_ENV = {"OMP_NUM_THREADS": "1"}  # see test_app_browser.py


def make_project(root: Path, count: int) -> Path:
    """`count` 640x480 images with a disc and a rectangle (img0.png, img1.png, ...)."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        image = np.full((480, 640, 3), 200, np.uint8)
        cv2.circle(image, (200 + 40 * k, 240), 90, (40, 80, 160), -1)
        cv2.rectangle(image, (420, 100), (560, 300), (160, 40, 40), -1)
        Image.fromarray(image).save(root / f"img{k}.png")
    return root


# by default no proposals computed in the background (tests/test_proposals_browser.py has
# them), so the CPU goes to what a test waits for, and the server's decoding (the browser's:
# tests/test_decode_page_browser.py)
QUIET = ("--no-background-proposals", "--decode", "server")


def serve_project(folder: Path, log_dir: Path, labels: Optional[str] = "lesion,vessel", max_size: int = 1024,
                  options: Sequence[str] = QUIET):  # fmt: skip
    """`basam-ui annotate FOLDER` with random vit_t weights (a context manager yielding the
    running server), with `--labels labels` (None: the project's own), `--max-size` and
    `options`."""
    labelled = ["--labels", labels] if labels else []
    command = [sys.executable, "-m", "basam_ui", "annotate", str(folder), *labelled, "--random-weights", "--model",
               "vit_t", "--device", "cpu", "--max-size", str(max_size), *options, "--port", "{port}"]  # fmt: skip
    return serve(command, log_dir=log_dir, cwd=REPO, timeout=180, env=SERVER_ENV)


def project_server_fixtures(count: int, **options):
    """Module-scoped fixtures `project_dir` (a project of `count` images) and `server`
    (`basam-ui annotate` serving it: `serve_project` with `options`): assign both names in the
    test module."""

    @pytest.fixture(scope="module")
    def project_dir(tmp_path_factory):
        return make_project(tmp_path_factory.mktemp("project") / "images", count)

    @pytest.fixture(scope="module")
    def server(project_dir, tmp_path_factory):
        with serve_project(project_dir, tmp_path_factory.mktemp("server"), **options) as running:
            yield running

    return project_dir, server


class AnnotatePage:
    """One browser tab on the annotate page."""

    def __init__(self, page, url: str, name: str = "tester"):
        """Open the page and, with `name`, type it as the annotator's (commits need one)."""
        self.page = page
        page.goto(url)
        self.wait_ready()
        if name:
            field = page.locator("#ann-name textarea, #ann-name input")
            field.fill(name)
            field.press("Tab")

    def js(self, expression: str):
        return self.page.evaluate(f"() => {{ const root = document.querySelector('#canvas .bc-root'); return {expression}; }}")

    def wait_ready(self) -> None:
        """The canvas shows an image and its embeddings are there (the status line says so)."""
        self.page.wait_for_function(
            "() => document.querySelector('#canvas .bc-root')?.dataset.ready === '1'", timeout=TIMEOUT_MS)
        self.wait_status("click the image")

    def wait_status(self, *texts: str) -> str:
        self.page.wait_for_function(
            "ts => { const s = document.querySelector('#status'); return s && ts.every(t => s.innerText.includes(t)) }",
            arg=list(texts), timeout=TIMEOUT_MS,
        )
        return self.page.inner_text("#status")

    def wait_objects(self, count: int) -> None:
        """The canvas draws `count` committed objects (on a timeout, the page's state says why)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(
                "n => document.querySelector('#canvas .bc-root')?.dataset.objects === String(n)", arg=count,
                timeout=TIMEOUT_MS)
        except PlaywrightTimeout:
            raise AssertionError(f"the canvas did not draw {count} objects: {self.describe()}") from None

    def describe(self) -> dict:
        """What the page shows now: the canvas's objects, prompts, masks and view, the status
        line and any message or error toast (for failure messages)."""
        return self.js(
            "(() => { const s = root.bc.state(), text = q => [...document.querySelectorAll(q)].map(e => e.innerText);"
            " return {objects: root.dataset.objects, prompts: JSON.stringify(s.prompts ?? null), masks: !!s.masks,"
            " view: s.view, status: text('#status'), messages: text('#message, .toast-body')}; })()")

    def client(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of original pixel (x, y)."""
        point = self.js(f"root.bc.toClient({x}, {y})")
        return point["x"], point["y"]

    def click(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.client(x, y))

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        mouse = self.page.mouse
        mouse.move(*self.client(*start))
        mouse.down()
        mouse.move(*self.client(*end), steps=steps)
        mouse.up()

    def wait_masks(self) -> None:
        self.page.wait_for_function(
            "() => !!document.querySelector('#canvas .bc-root').bc.state().masks", timeout=TIMEOUT_MS)

    def image_rows(self) -> list[list[str]]:
        """The image list's rows as text cells (once it has rows)."""
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('#ann-images [role=row]')].some(r => r.innerText.includes('.png'))",
            timeout=TIMEOUT_MS)
        return self.page.evaluate(
            "() => [...document.querySelectorAll('#ann-images [role=row]')].slice(1)"
            ".map(r => r.innerText.split('\\n').map(c => c.trim()).filter(c => c))")

    def pixel(self, x: int, y: int) -> list[int]:
        """The canvas's RGB at the centre of original pixel (x, y)."""
        return self.js(
            f"(() => {{ const s = root.bc.state(), c = root.querySelector('canvas'), d = window.devicePixelRatio || 1;"
            f" const px = Math.floor(s.tx * d + ({x} + 0.5) * s.scale), py = Math.floor(s.ty * d + ({y} + 0.5) * s.scale);"
            f" return [...c.getContext('2d').getImageData(px, py, 1, 1).data.slice(0, 3)]; }})()")
