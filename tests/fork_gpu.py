"""A stand-in for `spaces.GPU` (Hugging Face ZeroGPU) that forks as it does.

`spaces` 0.51.3 (zero/wrappers.py) runs a wrapped function in a process forked with
multiprocessing's 'fork' context: the arguments are pickled in, the result or the exception
pickled back (multiprocessing's ForkingPickler), and what the function leaves in memory stays
in that process. This module does the same with a fresh fork per call (stricter than
ZeroGPU, which may reuse a worker), so state that only lives in the worker is always lost.
It has `spaces.GPU`'s signature and calls a callable `duration` with the wrapped function's
arguments, as `spaces` does; `requests` records (function name, seconds asked) per call, in
the calling process.

Use it as `AppEngine(..., gpu=fork_gpu.GPU)`, or as the `spaces` module itself
(monkeypatch.setitem(sys.modules, "spaces", fork_gpu)).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
from multiprocessing.reduction import ForkingPickler
from typing import Any, Callable, Optional

_FORK = multiprocessing.get_context("fork")

requests: list[tuple[str, Any]] = []


def GPU(task: Optional[Callable] = None, *, duration: Any = None, size: Optional[str] = None) -> Callable:
    """Wrap `task` so that each call runs in a forked child (or, without `task`, a decorator)."""
    if task is None:
        return functools.partial(GPU, duration=duration, size=size)

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        requests.append((task.__name__, duration(*args, **kwargs) if callable(duration) else duration))
        payload = ForkingPickler.dumps((args, kwargs))  # as ZeroGPU's queues (multiprocessing.SimpleQueue) do
        receive, send = _FORK.Pipe(duplex=False)
        child = _FORK.Process(target=_child, args=(task, payload, send), daemon=True)
        child.start()
        send.close()
        try:
            status, value = pickle.loads(receive.recv_bytes())
        except EOFError:
            raise RuntimeError(f"GPU task aborted: the worker for {task.__name__} died") from None
        finally:
            receive.close()
            child.join()
        if status == "error":
            raise value
        return value

    return run


def _child(task: Callable, payload: bytes, send) -> None:
    args, kwargs = pickle.loads(payload)
    try:
        result = ("ok", task(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - every error goes back to the caller
        result = ("error", exc)
    try:
        data = ForkingPickler.dumps(result)
    except Exception as exc:  # noqa: BLE001
        data = ForkingPickler.dumps(("error", RuntimeError(f"unpicklable result from pid {os.getpid()}: {exc}")))
    send.send_bytes(data)
    send.close()
