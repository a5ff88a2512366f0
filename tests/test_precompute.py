"""`basam-ui precompute` run here (no Ray), and the disk cache under it: resume, unreadable
files, summary counts, metadata checks, the disk bound, 16-bit storage."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from basam_ui import cli
from basam_ui.basam.config import BASAMConfig
from basam_ui.cache import EmbeddingCache, EmbeddingKey, default_project_cache_dir, key_metadata
from basam_ui.jobs.precompute import ImageJob, list_images, make_jobs, run_jobs, settings_for
from basam_ui.segmenter import EncoderOutOfMemory, Segmenter

SIZES = (256, 512)


def make_folder(folder: Path, shapes=((64, 96), (120, 80), (200, 150))) -> list[Path]:
    """Small noisy images, a file that is not an image under an image name, and a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(shapes):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(paths[-1])
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("not an image either, and not listed")
    return paths


def cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def test_local_precompute_counts_resumes_and_feeds_a_segmenter(tmp_path, vit_t):
    images = make_folder(tmp_path / "photos")
    images += make_folder(tmp_path / "photos" / "sub", shapes=((70, 90),))[:1]  # sub-folders count, as in annotate
    make_folder(tmp_path / "photos" / ".hidden", shapes=((64, 64),))  # hidden folders (like .basam-ui) do not
    paths = list_images([tmp_path / "photos"])
    assert [p.relative_to(tmp_path / "photos").as_posix() for p in paths] == [
        "broken.jpg", "img0.png", "img1.png", "img2.png", "sub/broken.jpg", "sub/img0.png"
    ]
    settings = settings_for(["vanilla", "basam"], beta=0.1)
    jobs = make_jobs(paths, SIZES, settings)
    cache_dir = tmp_path / "cache"

    first = run_jobs(jobs, Segmenter(vit_t, cache=EmbeddingCache(0, cache_dir)))
    items = len(images) * len(SIZES) * len(settings)
    assert (first.images, first.encoded, first.cached, first.skipped, first.failed) == (6, items, 0, 2, 0)
    assert "broken.jpg" in first.problems[0] and "not a readable image" in first.problems[0]
    assert len(cache_files(cache_dir)) == items and not list(cache_dir.glob("*.tmp"))

    again = run_jobs(jobs, Segmenter(vit_t, cache=EmbeddingCache(0, cache_dir)))
    assert (again.encoded, again.cached, again.skipped) == (0, items, 2)

    cache_files(cache_dir)[0].unlink()  # an interrupted run: one item missing
    resumed = run_jobs(jobs, Segmenter(vit_t, cache=EmbeddingCache(0, cache_dir)))
    assert (resumed.encoded, resumed.cached) == (1, items - 1)
    assert f"{resumed.encoded} encoded, {resumed.cached} already cached, 2 skipped" in resumed.text()

    from basam_ui.image_io import load_image

    reader = Segmenter(vit_t, cache_dir=cache_dir)  # what the app and eval build
    for path in images:
        for size in SIZES:
            for _, config in settings:
                assert reader.embed(load_image(path), size, config).source == "disk"
    assert reader.encoder_calls == 0


def test_failed_items_are_reported_and_the_rest_done(tmp_path, vit_t):
    make_folder(tmp_path / "photos", shapes=((64, 64),))
    segmenter = Segmenter(vit_t, cache=EmbeddingCache(0, tmp_path / "cache"))
    encode = segmenter._encode

    def fails_at_512(image, size, config):
        if size == 512:
            raise segmenter._oom(size)
        return encode(image, size, config)

    segmenter._encode = fails_at_512
    jobs = make_jobs(list_images([tmp_path / "photos" / "img0.png"]), SIZES, settings_for(["vanilla"], 0.1))
    summary = run_jobs(jobs, segmenter)
    assert (summary.encoded, summary.failed) == (1, 1)
    assert "out of memory encoding at size 512" in summary.problems[0]
    assert isinstance(segmenter._oom(512), EncoderOutOfMemory)
    lost = ImageJob("x.png", SIZES, settings_for(["vanilla", "basam"], 0.1)).lost("gone")
    assert len(lost.failed) == 4  # a job that never ran fails every one of its items


def test_cli_precompute_fills_the_project_cache(tmp_path, capsys):
    make_folder(tmp_path / "project", shapes=((64, 80), (90, 70)))
    argv = ["precompute", str(tmp_path / "project"), "--random-weights", "--sizes", "256", "--settings", "vanilla"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "3 images: 2 encoded, 0 already cached, 1 skipped (unreadable), 0 failed" in err
    cache_dir = default_project_cache_dir(tmp_path / "project")
    assert cache_dir == tmp_path / "project" / ".basam-ui" / "cache"
    assert len(cache_files(cache_dir)) == 2
    assert cli.main(argv) == 0
    assert "0 encoded, 2 already cached" in capsys.readouterr().err
    assert cli.main(["precompute", str(tmp_path / "nothing-here"), "--random-weights"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_ray_option_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    make_folder(tmp_path / "p", shapes=((64, 64),))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert cli.main(["precompute", str(tmp_path / "p"), "--random-weights", "--sizes", "256", "--ray"]) == 1
    assert 'pip install "basam-ui[ray]"' in capsys.readouterr().err


def test_cli_constants_match_the_modules():
    from basam_ui import cache
    from basam_ui.jobs import precompute

    assert cli.DEFAULT_DISK_GB == cache.DEFAULT_DISK_GB
    assert cli.SETTING_NAMES == precompute.SETTING_NAMES


def test_worker_checks_it_reaches_the_cache_folder(tmp_path):
    from basam_ui.jobs.distributed import Worker
    from basam_ui.models import ModelSpec

    worker = Worker(ModelSpec(random_weights=True), str(tmp_path), None, 1)
    token = tmp_path / ".probe"
    token.write_text("abc")
    assert worker.check_cache_dir(str(token), "abc") is None
    problem = worker.check_cache_dir(str(tmp_path / "elsewhere" / ".probe"), "abc")
    assert problem is not None and "cannot use the cache folder" in problem


# ---------------------------------------------------------------- the disk cache


def key(name: str, size: int = 256) -> EmbeddingKey:
    return EmbeddingKey(name, "vit_t:random-0", size, BASAMConfig())


def value(fill: float) -> torch.Tensor:
    return torch.full((1, 256, 16, 16), fill)  # 128 KiB in fp16 on disk


def test_files_carry_what_made_them_and_a_mismatch_is_refused(tmp_path, caplog):
    from safetensors import safe_open

    cache = EmbeddingCache(0, tmp_path)
    cache.get(key("a"), lambda: value(1.0))
    with safe_open(str(cache.path(key("a"))), framework="pt") as f:
        meta = f.metadata()
        assert f.get_tensor("embedding").dtype == torch.float16
    assert {k: meta[k] for k in key_metadata(key("a"))} == key_metadata(key("a"))
    assert meta["size"] == "256" and meta["config"] == repr(BASAMConfig()) and meta["model"] == "vit_t:random-0"
    assert meta["precision"] == "fp32"  # every key field, including the one added with precisions
    assert meta["dtype"] == "float16" and meta["torch"] == torch.__version__ and "basam_ui" in meta

    # a file under b's name that was made for a: refused (a miss, logged), then recomputed
    os.replace(cache.path(key("a")), cache.path(key("b")))
    reader = EmbeddingCache(0, tmp_path)
    with caplog.at_level(logging.WARNING, logger="basam_ui.cache"):
        got, source = reader.get(key("b"), lambda: value(2.0))
    assert source == "computed" and got.unique().tolist() == [2.0]
    assert reader.refused == 1 and "image_hash='a'" in caplog.text
    assert EmbeddingCache(0, tmp_path).get(key("b"), lambda: value(3.0))[1] == "disk"


def _age(path: Path, seconds_ago: float) -> None:
    stamp = path.stat().st_mtime - seconds_ago
    os.utime(path, (stamp, stamp))


def test_disk_bound_evicts_the_least_recently_used(tmp_path):
    one = 256 * 16 * 16 * 2 + 4096  # a file: fp16 tensor plus header room
    cache = EmbeddingCache(0, tmp_path, disk_bytes=int(2.5 * one))
    cache.get(key("a"), lambda: value(1.0))
    cache.get(key("b"), lambda: value(2.0))
    _age(cache.path(key("a")), 20)
    _age(cache.path(key("b")), 10)
    assert cache.get(key("a"), lambda: value(9.0))[1] == "disk"  # reading a makes it the newest
    cache.get(key("c"), lambda: value(3.0))
    assert [p.exists() for p in map(cache.path, (key("a"), key("b"), key("c")))] == [True, False, True]
    assert cache.evicted == 1 and cache.disk_usage() <= cache.disk_bytes

    tiny = EmbeddingCache(0, tmp_path, disk_bytes=one // 2)  # below one file: only the one written stays
    tiny.get(key("d"), lambda: value(4.0))
    assert cache_files(tmp_path) == [tiny.path(key("d"))]


def test_disk_bound_never_evicts_the_file_being_read(tmp_path):
    one = 256 * 16 * 16 * 2 + 4096
    cache = EmbeddingCache(0, tmp_path, disk_bytes=int(1.5 * one))
    cache.get(key("old"), lambda: value(1.0))
    _age(cache.path(key("old")), 60)  # the least recently used file
    reading, release = threading.Event(), threading.Event()
    read = cache._read_file

    def slow_read(path):
        reading.set()
        release.wait(10)
        return read(path)

    cache._read_file = slow_read
    got = {}
    reader = threading.Thread(target=lambda: got.update(r=cache.get(key("old"), lambda: value(0.0))))
    reader.start()
    assert reading.wait(10)
    cache._read_file = read
    cache.get(key("new1"), lambda: value(2.0))  # past the bound while "old" is being read
    cache.get(key("new2"), lambda: value(3.0))
    assert cache.path(key("old")).exists() and not cache.path(key("new1")).exists()
    release.set()
    reader.join()
    assert got["r"][1] == "disk" and got["r"][0].unique().tolist() == [1.0]


def test_16bit_files_give_the_masks_of_fp32(vit_t, shared_images, tmp_path):
    """Masks decoded from the float16 file agree with the fp32 embedding's on >= 99.5% of pixels."""
    from basam_ui.image_io import load_image

    image = load_image(shared_images[0])
    h, w = image.shape[:2]
    exact = Segmenter(vit_t, precision="fp32").embed(image, 1024, BASAMConfig())  # (bf16 ones fit float16 exactly)
    Segmenter(vit_t, cache_dir=tmp_path, precision="fp32").embed(image, 1024, BASAMConfig())
    stored = Segmenter(vit_t, cache_dir=tmp_path, precision="fp32").embed(image, 1024, BASAMConfig())
    assert stored.source == "disk" and not torch.equal(stored.embedding, exact.embedding)
    seg = Segmenter(vit_t, precision="fp32")
    prompts = [
        dict(point_coords=np.array([[w * 0.5, h * 0.5]]), point_labels=np.array([1])),
        dict(point_coords=np.array([[w * 0.3, h * 0.6], [w * 0.7, h * 0.4]]), point_labels=np.array([1, 0])),
        dict(box=np.array([w * 0.2, h * 0.2, w * 0.8, h * 0.9])),
    ]
    for prompt in prompts:
        a, _, _ = seg.predict_with(exact, **prompt)
        b, _, _ = seg.predict_with(stored, **prompt)
        assert (a == b).mean() >= 0.995


@pytest.mark.parametrize("name", ["vanilla", "basam", "nsf", "bmam"])
def test_each_named_setting_is_the_one_the_page_makes(name):
    """precompute (and eval) make the settings the page asks for, so the page finds their
    embeddings in the cache: same config, hence the same cache key, whatever beta."""
    from basam_ui.vocabulary import PRESETS
    from basam_ui.web.common.session import Settings

    nsf, bmam = PRESETS[name]
    [(_, made)] = settings_for([name], beta=0.3)
    page = Settings("vit_t", 1024, nsf, bmam, 0.3, False).basam_config
    assert made == (page if nsf or bmam else BASAMConfig.vanilla())
