"""Deep Zoom tiles (basam_ui/sources/tiles.py): the DZI descriptor, tile pixels of a slide and
of a photo at 1:1 and zoomed out, addresses outside the pyramid, the bounded LRU cache, and
tiles made from many threads at once."""

from __future__ import annotations

import io
import random
import threading
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from basam_ui.sources import open_source
from basam_ui.sources.tiles import PhotoPyramid, TileCache, TileMaker, TileNotFound
from slides import SMALL, pattern, write_slide

DZ = "{http://schemas.microsoft.com/deepzoom/2008}"


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = write_slide(tmp_path_factory.mktemp("tiles") / "slide.tif", SMALL, levels=3, mpp=0.5)
    with open_source(path) as source:
        yield source


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_dzi_describes_level_0(slide):
    tiles = TileMaker(slide)
    root = ET.fromstring(tiles.dzi_xml())
    assert root.tag == f"{DZ}Image"
    assert (root.get("TileSize"), root.get("Overlap"), root.get("Format")) == ("254", "1", "jpeg")
    size = root.find(f"{DZ}Size")
    assert (int(size.get("Width")), int(size.get("Height"))) == SMALL
    assert tiles.level_dimensions[-1] == SMALL and tiles.level_dimensions[0] == (1, 1)
    assert tiles.level_count == 12  # 2048 px: 2^11, plus the 1-px level
    assert tiles.media_type == "image/jpeg"
    assert ET.fromstring(TileMaker(slide, format="png").dzi_xml()).get("Format") == "png"


def test_tiles_at_one_to_one_and_zoomed_out_are_the_pattern(slide):
    tiles = TileMaker(slide, format="png")
    top = tiles.level_count - 1
    # an inner tile: 254 px and one px of overlap on each side
    assert np.array_equal(pixels(tiles.tile(top, 3, 2)), pattern(3 * 254 - 1, 2 * 254 - 1, 256, 256))
    # the first and the last tile: overlap only inwards, the last one cut at the edge
    assert np.array_equal(pixels(tiles.tile(top, 0, 0)), pattern(0, 0, 255, 255))
    cols, rows = tiles.level_tiles[top]
    last = pixels(tiles.tile(top, cols - 1, rows - 1))
    x0, y0 = (cols - 1) * 254 - 1, (rows - 1) * 254 - 1
    assert np.array_equal(last, pattern(x0, y0, SMALL[0] - x0, SMALL[1] - y0))
    # one and two levels down: the slide's levels 1 and 2, unchanged
    for down in (1, 2):
        width, height = SMALL[0] >> down, SMALL[1] >> down
        expected = pattern(253, 253, min(256, width - 253), min(256, height - 253), down, SMALL)
        assert np.array_equal(pixels(tiles.tile(top - down, 1, 1)), expected)
    # below the slide's last level: shrunk from it
    small = pixels(tiles.tile(top - 4, 0, 0))
    assert small.shape == (SMALL[1] // 16, SMALL[0] // 16, 3)


def test_jpeg_tiles_are_close_to_the_pixels(slide):
    tiles = TileMaker(slide)  # quality 80, no chroma subsampling: 2-px colour stripes survive
    data = tiles.tile(tiles.level_count - 1, 2, 2)
    assert data[:3] == b"\xff\xd8\xff"
    error = np.abs(pixels(data).astype(int) - pattern(2 * 254 - 1, 2 * 254 - 1, 256, 256)).mean()
    assert error < 4


@pytest.mark.parametrize(
    "address", [(-1, 0, 0), (12, 0, 0), (11, 9, 0), (11, 0, 7), (11, -1, 0), (True, 0, 0), ("11", 0, 0), (11.0, 0, 0)]
)
def test_addresses_outside_the_pyramid_are_not_found(slide, address):
    tiles = TileMaker(slide)
    with pytest.raises(TileNotFound):
        tiles.tile(*address)


def test_photo_tiles_come_from_its_own_pyramid(tmp_path):
    image = pattern(0, 0, 1500, 1000)
    cv2.imwrite(str(tmp_path / "photo.png"), image[..., ::-1])
    with open_source(tmp_path / "photo.png") as photo:
        tiles = TileMaker(photo, format="png")
    top = tiles.level_count - 1
    assert tiles.level_dimensions[-1] == (1500, 1000)
    assert np.array_equal(pixels(tiles.tile(top, 2, 1)), image[253:509, 507:763])
    pyramid = PhotoPyramid(image)
    assert pyramid.level_dimensions == ((1500, 1000), (750, 500), (375, 250), (188, 125))
    assert pyramid.level_downsamples == (1.0, 2.0, 4.0, 8.0)
    halved = cv2.resize(image, (750, 500), interpolation=cv2.INTER_AREA)
    assert np.array_equal(pixels(tiles.tile(top - 1, 1, 0)), halved[0:255, 253:509])
    assert pixels(tiles.tile(0, 0, 0)).shape == (1, 1, 3)


def test_cache_is_bounded_and_least_recently_used_goes_first():
    cache = TileCache(max_bytes=100)
    for i in range(5):
        cache.put(("a", i), bytes(30))
        assert cache.nbytes <= 100
    assert len(cache) == 3 and cache.get(("a", 0)) is None and cache.get(("a", 1)) is None
    assert cache.get(("a", 2)) is not None  # now the most recent
    cache.put(("a", 5), bytes(30))
    assert cache.get(("a", 3)) is None and cache.get(("a", 2)) is not None
    cache.put(("a", 6), bytes(101))  # larger than the whole cache: not kept
    assert cache.get(("a", 6)) is None and cache.nbytes <= 100
    cache.put(("b", 1), bytes(10))
    cache.discard("a")
    assert len(cache) == 1 and cache.nbytes == 10


def test_tile_makers_share_a_cache_within_its_bound(slide):
    cache = TileCache(max_bytes=200_000)
    one, two = TileMaker(slide, cache=cache), TileMaker(slide, cache=cache, format="png")
    top = one.level_count - 1
    first = one.tile(top, 0, 0)
    assert one.tile(top, 0, 0) is first and cache.hits == 1  # served from the cache
    assert two.tile(top, 0, 0) != first  # its own entries (PNG)
    cols, rows = one.level_tiles[top]
    for col in range(cols):
        for row in range(rows):
            one.tile(top, col, row)
            two.tile(top, col, row)
            assert cache.nbytes <= 200_000
    two.close()
    assert all(key[0] != two._owner for key in cache._items)


def test_many_threads_get_the_same_tiles(slide):
    cache = TileCache(max_bytes=150_000)  # small: tiles are dropped and made again meanwhile
    tiles = TileMaker(slide, format="png", cache=cache)
    serial = TileMaker(slide, format="png", cache=TileCache(0))
    addresses = [
        (level, col, row)
        for level in range(tiles.level_count - 3, tiles.level_count)
        for col in range(tiles.level_tiles[level][0])
        for row in range(tiles.level_tiles[level][1])
    ]
    requests = addresses * 2
    random.Random(0).shuffle(requests)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def fetch(address):
        try:
            return address, tiles.tile(*address)
        except BaseException as e:  # noqa: BLE001 - collected and reported below
            with lock:
                errors.append(e)
            raise

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fetch, requests))
    assert not errors
    for address, data in results:
        assert data == serial.tile(*address), address
    assert cache.nbytes <= 150_000
