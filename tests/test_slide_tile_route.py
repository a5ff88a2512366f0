"""The tile routes as the annotate server adds them (`web/common/tiles.install_routes` with the
project's resolver `annotate.events.tile_file`), on a Gradio app with logins: no tile or
descriptor without a login; with one, tiles of the project's items by image id, and 404 for
any key that is not one (a path, a name, an id of a missing file, an address outside the
pyramid): nothing but the project's own files is ever opened."""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Iterator

import gradio as gr
import httpx
import numpy as np
import pytest
from PIL import Image

from basam_ui.project import Project
from basam_ui.sources.tiles import TileMaker
from basam_ui.web.annotate.events import tile_file
from basam_ui.web.common import tiles as web_tiles
from browser import free_port
from slides import pattern, write_slide

SIZE = (3000, 2000)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project (a slide, a photo, a file that goes missing) and a Gradio app with a login
    serving its tiles; yields (base url, project, the paths opened by the tile server)."""
    import basam_ui.sources as sources

    root = tmp_path_factory.mktemp("tiles")
    write_slide(root / "slide.tif", SIZE, levels=3, mpp=0.5)
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(root / "photo.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "gone.png")
    project = Project.open(root)
    (root / "gone.png").unlink()
    opened = []
    real_open = sources.open_source

    def recording(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    sources.open_source = recording
    server = web_tiles.TileServer(tile_file(project))
    with gr.Blocks() as demo:
        gr.Markdown("tiles")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, auth=[("ana", "secret")],
                quiet=True)
    try:
        web_tiles.install_routes(demo.app, server)
        yield f"http://127.0.0.1:{port}", project, opened
    finally:
        sources.open_source = real_open
        demo.close()
        server.close()
        project.close()


def url(base: str, key: str, tail: str = "0/tiles_files/12/0_0.jpeg") -> str:
    return f"{base}/basam-tiles/{key}/{tail}"


@contextmanager
def logged_in(base: str) -> Iterator[httpx.Client]:
    """A client with the login's cookie."""
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{base}/login", data={"username": "ana", "password": "secret"})
        assert answer.status_code == 200, answer.text
        yield client


def test_tiles_need_a_login(served):
    base, project, _ = served
    slide = project.image_by_path("slide.tif")
    for tail in ("0/tiles_files/12/0_0.jpeg", "0/tiles.dzi"):
        assert httpx.get(url(base, str(slide.id), tail), timeout=30).status_code == 401


def test_a_logged_in_page_gets_the_items_tiles(served):
    base, project, opened = served
    slide, photo = project.image_by_path("slide.tif"), project.image_by_path("photo.png")
    with logged_in(base) as client:
        dzi = client.get(url(base, str(slide.id), "0/tiles.dzi"))
        assert dzi.status_code == 200 and 'Width="3000"' in dzi.text and 'Height="2000"' in dzi.text
        # the top Deep Zoom level is level 0: tile (1, 1) holds level-0 pixels 253.. (overlap 1)
        levels = web_tiles.tiles_value(SIZE, "x")["levels"]
        top = len(levels) - 1
        answer = client.get(url(base, str(slide.id), f"0/tiles_files/{top}/1_1.jpeg"))
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert "max-age" in answer.headers["cache-control"]
        tile = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGB")).astype(int)
        assert tile.shape == (256, 256, 3)
        expected = pattern(253, 253, 256, 256, 0, SIZE).astype(int)
        assert np.abs(tile - expected).mean() < 6  # JPEG (quality 80, 4:4:4) of the pattern's 2-px stripes
        assert client.get(url(base, str(photo.id), "0/tiles_files/9/0_0.jpeg")).status_code == 200  # a photo: its pyramid
        # the geometry the page computes is the one DeepZoomGenerator serves
        from basam_ui.sources import open_source

        with open_source(project.file_path(slide)) as source:
            assert [tuple(level) for level in levels] == list(TileMaker(source).level_dimensions)
    assert set(opened) <= {str(project.file_path(slide)), str(project.file_path(photo))}


@pytest.mark.parametrize("key", ["999", "..", "slide.tif", "%2E%2E", "-1", "1e3", "a" * 65])
def test_anything_but_an_items_id_is_not_found(served, key):
    base, project, opened = served
    before = list(opened)
    with logged_in(base) as client:
        assert client.get(url(base, key)).status_code == 404
        # a path in the request is no item either (the route takes no '/' in a key)
        assert client.get(f"{base}/basam-tiles/..%2F..%2Fetc%2Fpasswd/0/tiles_files/12/0_0.jpeg").status_code == 404
    assert opened == before  # nothing was opened for it


def test_a_missing_file_and_an_address_outside_the_pyramid_are_not_found(served):
    base, project, _ = served
    gone, slide = project.image_by_path("gone.png"), project.image_by_path("slide.tif")
    project.open_image(gone.id)  # marks it missing
    with logged_in(base) as client:
        assert client.get(url(base, str(gone.id), "0/tiles_files/5/0_0.jpeg")).status_code == 404
        assert client.get(url(base, str(slide.id), "0/tiles_files/12/99_0.jpeg")).status_code == 404
        assert client.get(url(base, str(slide.id), "0/tiles_files/40/0_0.jpeg")).status_code == 404
        assert client.get(url(base, str(slide.id), "0/tiles_files/12/0_0.png")).status_code == 404
