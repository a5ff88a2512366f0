"""Run jobs on a Ray cluster: one model per worker (a Ray actor), jobs spread over the
workers, results handed back as they finish.

A job is a picklable callable `job(segmenter) -> result` with a `lost(reason) -> result`
method (the result to report when the job cannot run); `precompute.ImageJob` and
`evaluate.PairJob` are the two kinds. Each worker loads its own model (`ModelSpec`) and an
`EmbeddingCache` on the shared cache folder, which it must be able to reach: every worker
checks, at start, that it sees a file the driver just wrote there and can write there
itself. Cache files are written atomically (temporary name, then rename), so a worker
killed mid-write leaves only a temporary file, which the driver removes. A job whose
worker died is queued again for the others (at most `MAX_ATTEMPTS` times in all); the dead
worker is not replaced.

`ray.init(address=...)`: None honours RAY_ADDRESS, then a cluster started with `ray start`
on this machine, and otherwise starts a local cluster; an already initialised Ray is used as it is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar

from ..models import ModelSpec

INSTALL_HINT = 'Ray is not installed: pip install "basam-ui[ray]" (or pip install "ray>=2.9")'
T = TypeVar("T")
MAX_ATTEMPTS = 3  # runs of one job on workers that died under it before it is reported failed


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot run the workers."""


def import_ray() -> Any:
    """The `ray` module, or RayUnavailable saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


class Worker:
    """The actor: one model and one cache connection, running jobs one at a time."""

    def __init__(self, spec: ModelSpec, cache_dir: Optional[str], disk_bytes: Optional[int], threads: int) -> None:
        self.spec, self.cache_dir, self.disk_bytes, self.threads = spec, cache_dir, disk_bytes, threads
        self.segmenter = None

    def where(self) -> tuple[str, int]:
        """(host name, process id) of this worker."""
        return socket.gethostname(), os.getpid()

    def check_cache_dir(self, token: str, expected: str) -> Optional[str]:
        """None when the driver's `token` file reads `expected` here and the folder is
        writable; otherwise what is wrong."""
        host = socket.gethostname()
        try:
            if Path(token).read_text() != expected:
                raise FileNotFoundError(token)
            probe = Path(token).with_name(f"{Path(token).name}.{host}.{os.getpid()}")
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return f"worker on {host} cannot use the cache folder {self.cache_dir} ({exc.__class__.__name__}: {exc})"
        return None

    def run(self, job: Any) -> Any:
        return job(self._segmenter())

    def _segmenter(self) -> Any:
        if self.segmenter is None:
            import torch

            from ..cache import EmbeddingCache
            from ..segmenter import Segmenter

            if self.threads:
                torch.set_num_threads(self.threads)
            self.segmenter = Segmenter.from_spec(self.spec, EmbeddingCache(0, self.cache_dir, disk_bytes=self.disk_bytes))
        return self.segmenter


class WorkerPool:
    """Ray actors running `Worker`, fed jobs by `map`. Made by `run_on_ray`."""

    def __init__(self, ray: Any, actors: list, cache_dir: Optional[Path]) -> None:
        self.ray = ray
        self.actors = list(actors)
        self.cache_dir = cache_dir
        self.places = dict(zip(self.actors, ray.get([a.where.remote() for a in self.actors])))
        self.busy: dict[Any, Any] = {}  # actor -> the job it runs now
        self.lost = 0  # workers that died during this pool's runs
        self.model = ""  # the model identity, once the workers have loaded it

    def same_on_each(self, fn: Callable[[Any], T]) -> T:
        """`fn(segmenter)` on every worker (loading its model), which must give one answer:
        e.g. the model identity. Raises RayUnavailable when the workers disagree."""
        answers = self.ray.get([a.run.remote(fn) for a in self.actors])
        if any(answer != answers[0] for answer in answers):
            raise RayUnavailable(f"the workers' models differ: {answers}")
        return answers[0]

    def map(self, jobs: Sequence[Any]) -> Iterator[Any]:
        """Results of `jobs` as they finish (in any order). A job whose worker dies is queued
        again; after MAX_ATTEMPTS it yields `job.lost(reason)`."""
        from ray.exceptions import RayActorError, RayTaskError

        queue = deque(jobs)
        attempts: dict[int, int] = {}
        running: dict[Any, tuple[Any, Any]] = {}  # object ref -> (actor, job)
        idle = list(self.actors)
        while queue or running:
            while idle and queue:
                actor, job = idle.pop(0), queue.popleft()
                running[actor.run.remote(job)] = (actor, job)
                self.busy[actor] = job
            if not running:
                raise RayUnavailable(f"every worker died; {len(queue)} jobs were not run")
            (ref,), _ = self.ray.wait(list(running), num_returns=1)
            actor, job = running.pop(ref)
            self.busy.pop(actor, None)
            try:
                result = self.ray.get(ref)
            except RayActorError:
                self._forget(actor)
                attempts[id(job)] = attempts.get(id(job), 0) + 1
                if attempts[id(job)] < MAX_ATTEMPTS:
                    queue.appendleft(job)
                else:
                    yield job.lost(f"its worker died {MAX_ATTEMPTS} times")
                continue
            except RayTaskError as exc:  # the job raised: report it, go on with the others
                result = job.lost(f"error on a worker: {exc.cause if exc.cause is not None else exc}")
            idle.append(actor)
            yield result

    def _forget(self, actor: Any) -> None:
        """Drop a dead worker and remove the temporary files it left in the cache folder."""
        from ..cache import remove_temp_files

        self.actors.remove(actor)
        self.lost += 1
        host, pid = self.places.pop(actor)
        if self.cache_dir is not None:
            remove_temp_files(self.cache_dir, host, pid)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []


def model_identity(segmenter: Any) -> str:
    return segmenter.model.identity


def worker_options(ray: Any, workers: Optional[int]) -> tuple[int, dict[str, Any], int]:
    """(number of workers, actor options, torch threads per worker) for the cluster:
    one GPU each when it has GPUs (one worker per GPU by default), else CPU workers (one
    per node by default, sharing the node's CPUs)."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if workers is not None and workers < 1:
        raise RayUnavailable(f"--workers must be >= 1, got {workers}")
    if gpus:
        count = workers or gpus
        if count > gpus:
            raise RayUnavailable(f"the cluster has {gpus} GPUs: at most {gpus} GPU workers fit, not {count}")
        return count, {"num_gpus": 1, "num_cpus": 1}, 0
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = min((int(n["Resources"].get("CPU", 0)) for n in nodes), default=cpus) or 1
    count = workers or max(1, len(nodes))
    if count > cpus:
        raise RayUnavailable(f"the cluster has {cpus} CPUs and no GPU: at most {cpus} workers fit, not {count}")
    per_worker = max(1, min(node_cpus, cpus // count))
    return count, {"num_cpus": per_worker}, per_worker


@contextlib.contextmanager
def run_on_ray(
    spec: ModelSpec,
    cache_dir: Optional[str | os.PathLike],
    disk_bytes: Optional[int],
    *,
    address: Optional[str] = None,
    workers: Optional[int] = None,
) -> Iterator[WorkerPool]:
    """A pool of workers on the Ray cluster at `address` (see the module notes), with the
    shared cache folder checked from every worker. Stops the workers on exit, and the
    cluster if this call started it. Raises RayUnavailable with what to do."""
    ray = import_ray()
    from ray.exceptions import RayTaskError

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    pool = None
    try:
        count, options, threads = worker_options(ray, workers)
        remote = ray.remote(max_restarts=0, max_task_retries=0, **options)(Worker)
        folder = Path(cache_dir).resolve() if cache_dir is not None else None
        actors = [remote.remote(spec, str(folder) if folder else None, disk_bytes, threads) for _ in range(count)]
        pool = WorkerPool(ray, actors, folder)
        if folder is not None:
            _check_cache_dir(ray, pool, folder)
        try:
            pool.model = pool.same_on_each(model_identity)  # every worker loads its model now: a bad checkpoint fails here
        except RayTaskError as exc:
            raise RayUnavailable(f"a worker could not load the model: {exc.cause or exc}") from None
        yield pool
    finally:
        if pool is not None:
            pool.close()
        if started:
            ray.shutdown()


def _check_cache_dir(ray: Any, pool: WorkerPool, folder: Path) -> None:
    """Every worker must see a file written here in `folder`, and write there."""
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / f".basam-ui-probe-{uuid.uuid4().hex}"
    expected = uuid.uuid4().hex
    token.write_text(expected)
    try:
        problems = [p for p in ray.get([a.check_cache_dir.remote(str(token), expected) for a in pool.actors]) if p]
    finally:
        token.unlink(missing_ok=True)
    if problems:
        raise RayUnavailable(
            "; ".join(problems) + ". The cache folder must be one path that every worker reaches "
            "(shared storage such as NFS mounted at the same path on every machine)."
        )
