"""Test helpers for end-to-end browser tests: headless Chromium via Playwright, and a
subprocess HTTP server on a free port.

Chromium or Playwright missing: the test is skipped, except under CI (``CI=true``), where
it fails, so a CI machine without a browser can't pass by skipping every browser test.

    from browser import launch_chromium, serve

    def test_app(tmp_path):
        with serve([sys.executable, "app.py", "--port", "{port}"], log_dir=tmp_path) as server:
            with launch_chromium() as chromium:
                page = chromium.new_page()
                page.goto(server.url)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
# Debian's chromium in a container: no sandbox (runs as root), no GPU, and nothing that
# phones home (component updates, sync, QUIC probes) so runs don't wait on the network.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, as CI runners set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the calling test, or fail it under CI=true, with `reason`."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """Path of a Chromium executable ($CHROMIUM_PATH first, then the usual names), or None."""
    override = os.environ.get("CHROMIUM_PATH")
    for candidate in ((override,) if override else ()) + CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def require_chromium() -> str:
    """Path of Chromium; skips the test if it (or Playwright) is missing, fails under CI=true."""
    path = find_chromium()
    if path is None:
        skip_or_fail("Chromium not found (looked at $CHROMIUM_PATH, " + ", ".join(CHROMIUM_CANDIDATES) + ")")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("the playwright Python package is not installed")
    return path


@contextmanager
def launch_chromium(headless: bool = True, extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """Headless Chromium (Playwright Browser) with CHROMIUM_ARGS; closed on exit."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=headless, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def launched(demo, **options) -> Iterator[str]:
    """`demo` (a Gradio Blocks) served by this process on a free local port with Gradio's
    launch `options`: yields its URL, closes it after."""
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


@contextmanager
def compare_page(engine, logins=()) -> Iterator[str]:
    """The compare page of `engine` (an AppEngine) served by this process, with `logins`:
    yields its URL; closes the page and the engine after."""
    from basam_ui.web.compare.page import build_app
    from basam_ui.web.compare.serve import launch_options

    try:
        with launched(build_app(engine), **launch_options(engine, logins)) as url:
            yield url
    finally:
        engine.close()


@dataclass
class ServerProcess:
    """A server started by `start_server`: its process, base URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    log_path: Path

    def logs(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_server(
    command: Sequence[str],
    *,
    log_dir: Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    ready_path: str = "/",
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ServerProcess:
    """Start `command` as a server and wait until http://host:port/ready_path answers.

    "{port}" and "{host}" in the command's arguments are replaced by the chosen values (the
    port is free_port() unless given); PORT, HOST and GRADIO_SERVER_PORT/GRADIO_SERVER_NAME
    are also set in its environment. Output goes to log_dir/server-<port>.log. Any HTTP
    answer (even 404) counts as ready. Raises RuntimeError with the log if the process exits
    or `timeout` seconds pass first; the process is stopped in that case.
    """
    port = free_port(host) if port is None else port
    args = [str(arg).replace("{port}", str(port)).replace("{host}", host) for arg in command]
    full_env = {**os.environ, **(env or {})}
    full_env.update(
        PORT=str(port), HOST=host, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME=host,
        GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1",
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with open(log_path, "wb") as log:
        # own process group, so stop_server can end the server and anything it started
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=full_env, cwd=cwd, start_new_session=True,
        )
    server = ServerProcess(process=process, url=f"http://{host}:{port}", port=port, log_path=log_path)
    ready_url = server.url + "/" + ready_path.lstrip("/")
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {process.returncode} before answering {ready_url}\n"
                f"command: {args}\n--- log ---\n{server.logs()}"
            )
        if _answers(ready_url):
            return server
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(
                f"server did not answer {ready_url} within {timeout:.0f} s\n"
                f"command: {args}\n--- log ---\n{server.logs()}"
            )
        time.sleep(0.2)


def _answers(url: str) -> bool:
    """True if an HTTP request to `url` gets any HTTP response."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def stop_server(server: ServerProcess, grace: float = 10.0) -> int | None:
    """Stop the server's process group: SIGTERM, then SIGKILL after `grace` s. Returns the exit code."""
    process = server.process
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=grace)
    return process.returncode


@contextmanager
def serve(command: Sequence[str], *, log_dir: Path, **kwargs) -> Iterator[ServerProcess]:
    """Context manager around start_server/stop_server (same arguments)."""
    server = start_server(command, log_dir=log_dir, **kwargs)
    try:
        yield server
    finally:
        stop_server(server)
