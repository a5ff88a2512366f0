"""Precompute and eval on a real local Ray cluster (`ray.init(num_cpus=2)`, one per module):
every item cached once, a Segmenter on that cache does no encoder pass, embeddings match a
local run's, a worker killed mid-run costs nothing, and `eval --ray` gives a local run's rows."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from basam_ui import cli
from basam_ui.cache import EmbeddingCache
from basam_ui.jobs.distributed import run_on_ray
from basam_ui.image_io import load_image
from basam_ui.models import ModelSpec
from basam_ui.jobs.precompute import list_images, make_jobs, run_jobs, settings_for
from basam_ui.segmenter import Segmenter

import ray  # noqa: E402  (the test extra installs it: CI runs these tests)

SPEC = ModelSpec(model="vit_t", random_weights=True, device="cpu")  # the same weights as the vit_t fixture
SIZES = (256, 512)
SETTINGS = settings_for(["vanilla", "basam"], beta=0.1)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_folder(folder: Path, count: int) -> list[Path]:
    from test_precompute import make_folder as make

    shapes = [(64 + 17 * i, 200 - 23 * i) for i in range(count)]
    return make(folder, shapes)


def cached(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def test_ray_precompute_caches_each_item_once_and_matches_a_local_run(tmp_path, vit_t):
    images = make_folder(tmp_path / "photos", 3)
    jobs = make_jobs(list_images([tmp_path / "photos"]), SIZES, SETTINGS)
    cache_dir = tmp_path / "shared-cache"
    with run_on_ray(SPEC, cache_dir, None, workers=2) as pool:
        assert len(pool.actors) == 2 and pool.model == "vit_t:random-0"
        summary = run_jobs(jobs, outcomes=pool.map(jobs))
    items = len(images) * len(SIZES) * len(SETTINGS)
    assert (summary.encoded, summary.cached, summary.skipped, summary.failed) == (items, 0, 1, 0)
    assert len(cached(cache_dir)) == items and not list(cache_dir.glob("*.tmp"))

    reader = Segmenter(vit_t, cache_dir=cache_dir)
    local = Segmenter(vit_t)  # fp32, no disk: the local run's embeddings
    for path in images:
        image = load_image(path)
        for size in SIZES:
            for _, config in SETTINGS:
                got = reader.embed(image, size, config)
                assert got.source == "disk"
                # float16 files: within half a unit in the last place of float16 (2^-11 relative)
                torch.testing.assert_close(got.embedding, local.embed(image, size, config).embedding,
                                           rtol=2**-10, atol=1e-4)  # fmt: skip
    assert reader.encoder_calls == 0


def test_a_killed_worker_s_images_run_again_elsewhere(tmp_path):
    images = make_folder(tmp_path / "photos", 6)
    jobs = make_jobs(images, SIZES, SETTINGS)
    cache_dir = tmp_path / "shared-cache"
    outcomes, killed = [], []
    with run_on_ray(SPEC, cache_dir, None, workers=2) as pool:
        for outcome in pool.map(jobs):
            outcomes.append(outcome)
            if not killed:  # after the first result: kill a worker that is in the middle of an image
                actor, job = next(iter(pool.busy.items()))
                host, pid = pool.places[actor]
                os.kill(pid, signal.SIGKILL)
                killed.append(job.path)
        assert pool.lost == 1 and len(pool.actors) == 1
    assert sorted(o.path for o in outcomes) == sorted(map(str, images))  # each image reported once
    assert sum(o.encoded + o.cached for o in outcomes) == len(images) * len(SIZES) * len(SETTINGS)
    assert not any(o.failed for o in outcomes)
    redone = next(o for o in outcomes if o.path == killed[0])
    assert redone.encoded + redone.cached == len(SIZES) * len(SETTINGS)
    files = cached(cache_dir)
    assert len(files) == len(images) * len(SIZES) * len(SETTINGS) and not list(cache_dir.glob("*.tmp"))
    cache = EmbeddingCache(0, cache_dir)
    for path in files:  # every file whole and readable
        _, tensor = cache._read_file(path)
        assert tensor.shape[:2] == (1, 256)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        del row["encode_s"], row["predict_s"]  # timings
    return sorted(rows, key=lambda r: (r["image"], r["method"], r["size"], r["prompt"]))


def test_eval_on_ray_gives_the_rows_of_a_local_eval(tmp_path, capsys):
    from test_evaluate import _save_case

    for i, name in enumerate(("a", "b", "c")):
        _save_case(tmp_path / "images" / f"{name}.png", tmp_path / "masks" / f"{name}.png", i + 1, size=(96 + 16 * i, 128))
    (tmp_path / "images" / "d.png").write_bytes(b"broken")
    _save_case(tmp_path / "unused.png", tmp_path / "masks" / "d.png", 5)
    common = ["eval", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--random-weights",
              "--model", "vit_t", "--device", "cpu", "--sizes", "256", "--prompt", "point", "box"]  # fmt: skip
    assert cli.main(common + ["--out", str(tmp_path / "local")]) == 0
    assert cli.main(common + ["--out", str(tmp_path / "ray"), "--ray"]) == 0
    local, remote = _rows(tmp_path / "local" / "results.csv"), _rows(tmp_path / "ray" / "results.csv")
    assert len(local) == 3 * 2 * 2 and remote == local
    for name in ("skipped.csv",):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert "d.png" in (tmp_path / "ray" / "skipped.csv").read_text()


def test_worker_options_fit_the_cluster():
    from basam_ui.jobs.distributed import RayUnavailable, worker_options

    assert worker_options(ray, None) == (1, {"num_cpus": 2}, 2)  # one node of 2 CPUs: one worker using both
    assert worker_options(ray, 2) == (2, {"num_cpus": 1}, 1)
    with pytest.raises(RayUnavailable, match="at most 2 workers"):
        worker_options(ray, 3)  # would wait forever for a CPU
