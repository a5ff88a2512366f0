"""Whole-slide images through the image-source interface (basam_ui/sources/slide.py): which files
are slides, level-0 size and pixel size, region reads at 1:1 and at scales from the coarser
levels, the pixel limit, the fingerprint, multi-file slides in a folder listing, and that the
associated images (label, macro, thumbnail) never come out."""

from __future__ import annotations

import io
import json
import shutil
import time

import numpy as np
import openslide
import pytest
from PIL import Image

from basam_ui.checkpoints import sha256_file
from basam_ui.project.scan import scan_folder
from basam_ui.sources import (
    ImageReadError, ImageTooLargeError, Region, companion_names, identity, image_size, kind_of, looks_like_image,
    open_source,
)  # fmt: skip
from basam_ui.sources import pyramid
from basam_ui.sources.photo import PhotoSource
from basam_ui.sources.slide import SlideSource
from slides import BIG, LABEL_RGB, PATIENT, SMALL, pattern, write_test_slides


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    return write_test_slides(tmp_path_factory.mktemp("slides"))


@pytest.fixture
def big(slides):
    with open_source(slides["big"]) as source:
        yield source


def spy_reads(monkeypatch, source: SlideSource) -> list[tuple]:
    """Record (location, level, size) of every OpenSlide read_region of `source`."""
    calls: list[tuple] = []
    real = source.openslide.read_region

    def read_region(location, level, size):
        calls.append((tuple(location), level, tuple(size)))
        return real(location, level, size)

    monkeypatch.setattr(source.openslide, "read_region", read_region)
    return calls


# -- which files are slides ---------------------------------------------------------------


def test_pyramidal_tiff_is_a_slide_and_a_one_level_tiled_tiff_a_photo(slides, tmp_path):
    assert kind_of(slides["big"]).name == "slide"
    assert kind_of(slides["small"]).name == "slide"  # .tiff too
    assert kind_of(slides["aperio"]).name == "slide"
    assert kind_of(slides["plain"]).name == "photo"
    with open_source(slides["big"]) as source:
        assert isinstance(source, SlideSource) and source.vendor == "generic-tiff"
    with open_source(slides["aperio"]) as source:
        assert isinstance(source, SlideSource) and source.vendor == "aperio"
    with open_source(slides["plain"]) as photo:
        assert isinstance(photo, PhotoSource)
        assert np.array_equal(photo.read(), pattern(0, 0, 1000, 700))  # Pillow reads the tiled TIFF
    # without an extension, the TIFF header decides
    shutil.copy(slides["big"], tmp_path / "scan-0001")
    shutil.copy(slides["plain"], tmp_path / "scan-0002")
    assert kind_of(tmp_path / "scan-0001").name == "slide"
    assert kind_of(tmp_path / "scan-0002").name == "photo"
    # an ordinary (strip) TIFF written by Pillow stays a photo
    Image.fromarray(pattern(0, 0, 64, 48)).save(tmp_path / "strip.tif")
    assert kind_of(tmp_path / "strip.tif").name == "photo"


def test_vendor_extensions_are_images_and_a_damaged_slide_says_so(tmp_path):
    for name in ("a.svs", "b.ndpi", "c.mrxs", "d.scn", "e.vms", "f.vmu", "g.bif", "h.svslide", "i.SVS"):
        assert looks_like_image(tmp_path / name, name), name
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"II*\x00" + b"\x00" * 200)
    assert kind_of(broken).name == "slide"
    with pytest.raises(ImageReadError, match="broken.svs"):
        open_source(broken)
    with pytest.raises(ImageReadError, match="from its file"):
        SlideSource(b"II*\x00")


def test_size_levels_and_pixel_size(slides):
    assert image_size(slides["big"]) == BIG
    with open_source(slides["big"]) as source:
        assert source.size == BIG
        assert source.mpp == pytest.approx((0.25, 0.25))
        info = source.provenance()
    assert info["kind"] == "slide" and info["vendor"] == "generic-tiff"
    assert (info["width"], info["height"], info["levels"]) == (*BIG, 4)
    assert info["level_dimensions"] == [[20000, 16000], [10000, 8000], [5000, 4000], [2500, 2000]]
    assert info["level_downsamples"] == [1.0, 2.0, 4.0, 8.0]
    assert info["mpp"] == pytest.approx([0.25, 0.25])
    json.dumps(info)  # storable as it is
    with open_source(slides["small"]) as source:
        assert source.size == SMALL and source.mpp is None and source.provenance()["mpp"] is None
    with open_source(slides["aperio"]) as source:
        assert source.provenance()["mpp"] == pytest.approx([0.5, 0.5])
        assert source.provenance()["objective_power"] == 20


# -- reading ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "region",
    [Region(0, 0, 300, 200), Region(1001, 2003, 517, 389), Region(255, 255, 2, 2), Region(19700, 15750, 300, 250)],
    ids=["origin", "inside", "block corner", "bottom-right corner"],
)
def test_read_at_one_to_one_is_the_pattern(big, monkeypatch, region):
    calls = spy_reads(monkeypatch, big)
    pixels = big.read(region)
    assert pixels.dtype == np.uint8 and pixels.shape == (region.height, region.width, 3)
    assert np.array_equal(pixels, pattern(region.x, region.y, region.width, region.height))
    assert {level for _, level, _ in calls} == {0}


def test_a_region_past_the_edge_is_clipped_and_one_outside_refused(big):
    pixels = big.read(Region(19990, 15990, 50, 50))
    assert np.array_equal(pixels, pattern(19990, 15990, 10, 10))
    with pytest.raises(ValueError, match="outside"):
        big.read(Region(20000, 0, 10, 10))
    with pytest.raises(ValueError, match="scale"):
        big.read(Region(0, 0, 10, 10), scale=0)


def test_chunked_reads_join_without_seams(big, monkeypatch):
    region = Region(777, 1333, 1500, 1100)
    whole = {scale: big.read(region, scale) for scale in (1.0, 0.37, 0.125)}
    monkeypatch.setattr(pyramid, "CHUNK_LEVEL_PIXELS", 200)  # many small chunks per read
    for scale, expected in whole.items():
        assert np.array_equal(big.read(region, scale), expected), scale


@pytest.mark.parametrize("level", [1, 2, 3])
def test_reads_at_level_scales_come_from_that_level(big, monkeypatch, level):
    calls = spy_reads(monkeypatch, big)
    n = 1 << level
    region = Region(1024, 2048, 640 * n, 480 * n)
    pixels = big.read(region, 1 / n)
    assert pixels.shape == (480, 640, 3)
    assert np.array_equal(pixels, pattern(1024 // n, 2048 // n, 640, 480, level, BIG))
    assert {lv for _, lv, _ in calls} == {level}
    # the level pixels read: the region and a margin of a few pixels, nothing like level 0
    assert sum(w * h for _, _, (w, h) in calls) < 1.1 * 640 * 480


def test_reads_below_the_last_level_average_it(big, monkeypatch):
    calls = spy_reads(monkeypatch, big)
    region = Region(0, 0, 16384, 12288)
    pixels = big.read(region, 1 / 16)
    assert pixels.shape == (768, 1024, 3)
    assert {lv for _, lv, _ in calls} == {3}
    level3 = pattern(0, 0, 2048, 1536, 3, BIG).astype(np.float64)
    expected = level3.reshape(768, 2, 1024, 2, 3).mean(axis=(1, 3))
    assert np.abs(pixels - expected).max() <= 1


def test_reads_at_other_scales_have_the_right_size_and_place(big, monkeypatch):
    calls = spy_reads(monkeypatch, big)
    region = Region(2560, 5120, 5120, 2560)  # 20 x 10 blocks of 256 px
    scale = 0.3
    pixels = big.read(region, scale)
    assert pixels.shape == (round(2560 * scale), round(5120 * scale), 3)
    assert {lv for _, lv, _ in calls} == {1}  # 3.3 level-0 px per output px: level 1 (2x)
    red = pixels[..., 0].astype(int)
    step = 256 * scale
    for by in range(10):
        for bx in range(20):  # each block's inside has its red (block edges blend)
            inside = red[round(by * step) + 3 : round((by + 1) * step) - 3, round(bx * step) + 3 : round((bx + 1) * step) - 3]
            expected = 30 + 10 * ((10 + bx + 3 * (20 + by)) % 20)
            assert np.all(inside == expected), (bx, by)
    # stripes at level 1 alternate every pixel: resampled they average out to ~130
    assert abs(pixels[..., 1].mean() - 130) < 3 and abs(pixels[..., 2].mean() - 130) < 3


def test_whole_slide_at_a_small_scale_reads_the_last_level(big, monkeypatch):
    calls = spy_reads(monkeypatch, big)
    pixels = big.read(None, 0.01)
    assert pixels.shape == (160, 200, 3)
    assert {lv for _, lv, _ in calls} == {3}
    # block (bx, by) spans 2.56 output pixels: sample block centres
    for bx, by in [(0, 0), (5, 3), (77, 61)]:
        centre = pixels[int((by + 0.5) * 2.56), int((bx + 0.5) * 2.56), 0]
        assert abs(int(centre) - (30 + 10 * ((bx + 3 * by) % 20))) <= 10


def test_odd_sized_pyramid_reads_the_next_level(slides):
    with open_source(slides["odd"]) as source:
        assert source.size == (3001, 2003)
        assert source.level_downsamples[1] != 2.0  # 3001/1501 and 2003/1002, averaged
        assert source.best_level(2.0) == 1 and source.best_level(1.9) == 0
        pixels = source.read(Region(512, 512, 1024, 768), 0.5)
        assert pixels.shape == (384, 512, 3)
        expected = pattern(256, 256, 512, 384, 1, (3001, 2003))
        red = pixels[..., 0].astype(int) - expected[..., 0]
        assert (red == 0).mean() > 0.95  # the same blocks, up to edge blending


def test_outputs_over_the_pixel_limit_are_refused_before_reading(slides, monkeypatch):
    with open_source(slides["big"]) as source:
        calls = spy_reads(monkeypatch, source)
        with pytest.raises(ImageTooLargeError, match=r"over the limit of 150,000,000 pixels"):
            source.read()  # level 0 whole: 320 MP
        assert calls == []
    with SlideSource(slides["big"], max_pixels=10_000) as source:
        assert source.read(Region(0, 0, 100, 100)).shape == (100, 100, 3)
        assert source.read(Region(0, 0, 20000, 16000), 0.005).shape == (80, 100, 3)
        with pytest.raises(ImageTooLargeError):
            source.read(Region(0, 0, 101, 100))
    with pytest.raises(ValueError, match="max_pixels"):
        SlideSource(slides["big"], max_pixels=0)


# -- identity ------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_tells_slides_apart(slides, tmp_path):
    with open_source(slides["big"]) as a, open_source(slides["big"]) as b:
        first = a.fingerprint()
        assert first == b.fingerprint() and len(first) == 64 and int(first, 16) >= 0
    assert identity(slides["big"]) == (first, BIG)
    moved = tmp_path / "renamed.tif"
    shutil.copy(slides["big"], moved)
    with open_source(moved) as source:
        assert source.fingerprint() == first  # the name is not part of it
    others = set()
    for name in ("small", "odd", "aperio"):
        with open_source(slides[name]) as source:
            others.add(source.fingerprint())
    assert first not in others and len(others) == 3
    with open(moved, "ab") as f:  # trailing bytes: OpenSlide reads the same slide
        f.write(b"\x00" * 1000)
    with open_source(moved) as source:
        assert source.size == BIG and source.fingerprint() != first


def test_fingerprint_reads_little_of_a_large_file(slides, tmp_path):
    large = tmp_path / "large.tif"
    shutil.copy(slides["big"], large)
    with open(large, "r+b") as f:  # a sparse tail: 4 GiB that hashing would take seconds to read
        f.truncate(4 << 30)
    with open_source(large) as source:
        start = time.perf_counter()
        fingerprint = source.fingerprint()
        elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"fingerprint took {elapsed:.2f} s"
    with open_source(slides["big"]) as source:
        assert fingerprint != source.fingerprint()
    with open_source(slides["plain"]) as photo:  # photos keep the file's SHA-256
        assert photo.fingerprint() == sha256_file(slides["plain"]) == identity(slides["plain"])[0]


# -- multi-file slides in a folder ---------------------------------------------------------


def test_multi_file_slides_are_listed_once(tmp_path, slides):
    (tmp_path / "case1.mrxs").write_text("[GENERAL]\n")
    (tmp_path / "case1").mkdir()
    (tmp_path / "case1" / "Slidedat.ini").write_text("[GENERAL]\n")
    (tmp_path / "case1" / "Data0000.dat").write_bytes(b"\x00" * 10)
    (tmp_path / "case1" / "preview.jpg").write_bytes(b"\xff\xd8\xff")
    index = "[Virtual Microscope Specimen]\nImageFile=case2.jpg\nImageFile(1,0)=case2_1.jpg\nMapFile=case2_map.jpg\n"
    (tmp_path / "case2.vms").write_text(index + "MacroImage=case2_macro.jpg\nNoLayers=1\n")
    for name in ("case2.jpg", "case2_1.jpg", "case2_map.jpg", "case2_macro.jpg", "photo.jpg"):
        (tmp_path / name).write_bytes(b"\xff\xd8\xff")
    shutil.copy(slides["small"], tmp_path / "pyramid.tif")
    assert companion_names(tmp_path / "case1.mrxs") == ["case1"]
    assert companion_names(tmp_path / "case2.vms") == ["case2.jpg", "case2_1.jpg", "case2_macro.jpg", "case2_map.jpg"]
    assert companion_names(tmp_path / "photo.jpg") == [] and companion_names(tmp_path / "pyramid.tif") == []
    scan = scan_folder(tmp_path)
    assert scan.images == ["case1.mrxs", "case2.vms", "photo.jpg", "pyramid.tif"]
    assert scan.skipped == []  # the MIRAX folder and the VMS parts (the macro too) are the slides'


# -- associated images ---------------------------------------------------------------------


def test_associated_images_never_come_out(slides, monkeypatch):
    from basam_ui.sources.fields import field_for_view, read_field
    from basam_ui.sources.tiles import TileMaker

    with openslide.OpenSlide(str(slides["aperio"])) as raw:  # the file does hold them
        assert set(raw.associated_images) == {"label", "macro", "thumbnail"}

    def refuse(*args, **kwargs):
        raise AssertionError("an associated image was read")

    for name in ("read_associated_image", "get_associated_image_names", "get_associated_image_dimensions"):
        monkeypatch.setattr(openslide.lowlevel, name, refuse)
    produced: list[np.ndarray] = []
    texts: list[str] = []
    with open_source(slides["aperio"]) as source:
        texts += [json.dumps(source.provenance()), source.fingerprint(), repr(source.size)]
        produced += [source.read(), source.read(None, 0.1), source.read(Region(100, 100, 300, 200), 0.5)]
        produced.append(read_field(source, field_for_view(Region(0, 0, 1024, 768), 256)))
        tiles = TileMaker(source, format="png")
        texts.append(tiles.dzi_xml())
        for level, (cols, rows) in enumerate(tiles.level_tiles):
            for col in range(cols):
                for row in range(rows):
                    produced.append(np.asarray(Image.open(io.BytesIO(tiles.tile(level, col, row)))))
        tiles.close()
    assert not any(PATIENT in text or "DOE" in text for text in texts)
    for pixels in produced:
        assert not np.any(np.all(pixels[..., :3] == LABEL_RGB, axis=-1)), "a label pixel came out"
    assert np.array_equal(produced[0], pattern(0, 0, 1024, 768))
