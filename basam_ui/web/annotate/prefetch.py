"""Encoding the next image ahead, while the server is otherwise idle: one background thread
per engine, through `AppEngine.embed` (so the embedding lands in the shared cache that the
page's next click reads). Page events mark themselves busy (`busy()`); the thread starts an
encode only when no event has run for `idle_s`, checks again between sides, and nothing on
the click path ever waits for it (a Next that needs the image being encoded joins that
encode in the cache rather than starting a second). When no encode is wanted, the same thread
runs the idle tasks added with `add_task` (the proposals), one short step at a time, each
only while idle. No Gradio here."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Protocol, Sequence

from ...basam.config import BASAMConfig
from ..common.engine import AppEngine

log = logging.getLogger(__name__)


class IdleTask(Protocol):
    """Work done in short steps while the server is idle (e.g. proposals)."""

    def pending(self) -> bool:
        """Whether a step is waiting."""

    def step(self) -> None:
        """One short step (about one batch: a click that arrives waits at most for it)."""


class Prefetcher:
    """The latest wish of what to encode next, and the thread that encodes it when idle."""

    def __init__(self, engine: AppEngine, idle_s: float = 0.5):
        self.engine = engine
        self.idle_s = float(idle_s)
        self.done: list[str] = []  # paths encoded ahead (for tests and the page's status)
        self._cond = threading.Condition()
        self._wanted: Optional[tuple] = None
        self._busy = 0
        self._last_event = time.monotonic()
        self._stopped = False
        self._tasks: list[IdleTask] = []
        self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
        self._thread.start()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Wrap every page event: while one runs (and for `idle_s` after) nothing is started."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._last_event = time.monotonic()
                self._cond.notify_all()

    def request(
        self, model: str, path: str, resolution: int | str, configs: Sequence[BASAMConfig], frame: int = 0
    ) -> None:
        """Encode the image at `path` (frame `frame` of a multi-frame file, under its default
        window, as the page opens it) with each of `configs` when idle (replaces an older wish)."""
        with self._cond:
            self._wanted = (model, str(path), resolution, tuple(configs), int(frame))
            self._cond.notify_all()

    def add_task(self, task: IdleTask) -> None:
        """Run `task`'s steps while idle and no encode is wanted (tasks added first go first)."""
        with self._cond:
            self._tasks.append(task)
            self._cond.notify_all()

    def wake(self) -> None:
        """A task has new work: look again."""
        with self._cond:
            self._cond.notify_all()

    def idle(self) -> bool:
        """No page event runs, and none has for `idle_s`."""
        with self._cond:
            return self._idle()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _idle(self) -> bool:
        return self._busy == 0 and time.monotonic() - self._last_event >= self.idle_s

    def _work(self) -> bool:
        return self._wanted is not None or any(_pending(task) for task in self._tasks)

    def _wait_idle(self) -> bool:
        """Wait until there is work and no event runs (False when stopped)."""
        with self._cond:
            while not self._stopped and (not self._work() or not self._idle()):
                self._cond.wait(timeout=self.idle_s if self._wanted is not None or self._tasks else None)
            return not self._stopped

    def _run(self) -> None:
        from ...sources import open_source

        while self._wait_idle():
            with self._cond:
                wanted, self._wanted = self._wanted, None
            if wanted is None:
                self._task_step()
                continue
            model, path, resolution, configs, frame = wanted
            try:
                with open_source(path, max_pixels=self.engine.max_pixels, frame=frame) as source:
                    if source.regions:  # a slide: its field is the view at the first click, not known yet
                        continue
                    image = source.read()
                for config in configs:
                    with self._cond:  # a click came in: let it have the cores, finish later
                        if not self._idle():
                            self._wanted = self._wanted or wanted
                            break
                    self.engine.embed(model, image, resolution, config)
                else:
                    self.done.append(path)
            except Exception:  # a bad file or settings: the page will say so when it opens
                log.info("prefetch of %s failed", path, exc_info=True)

    def _task_step(self) -> None:
        """One step of the first task with work (its failure is logged, the others go on)."""
        for task in list(self._tasks):
            if _pending(task):
                try:
                    task.step()
                except Exception:
                    log.warning("an idle task's step failed", exc_info=True)
                return


def _pending(task: IdleTask) -> bool:
    try:
        return bool(task.pending())
    except Exception:
        log.warning("an idle task could not say whether it has work", exc_info=True)
        return False
