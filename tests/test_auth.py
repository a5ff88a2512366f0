"""Logins: the page, its files and the API of a served app refuse anonymous requests and a
wrong password, and work with the right login; the command refuses to serve beyond this
machine without a login unless told so; a login file others can read is refused."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import gradio as gr  # at module level: Gradio resolves the `gr.Request` annotation below from here
import pytest

from browser import compare_page, free_port, serve
from basam_ui.web.common import auth
from basam_ui.web.common import events as common
from basam_ui.web.common.auth import AuthError
from photos import CORGI

REPO = Path(__file__).resolve().parents[1]
PHOTO = CORGI
LOGINS = [("ana", "s3cret:with-colon"), ("ben", "hunter2")]


def http(url: str, data: bytes | None = None, cookie: str = "") -> tuple[int, str, str]:
    """(status, body, Set-Cookie) of a GET (or a form POST with `data`)."""
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace"), response.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), ""


def login(url: str, user: str, password: str) -> tuple[int, str]:
    """POST the login form: (status, the cookie to send back)."""
    status, _, set_cookie = http(f"{url}/login", urllib.parse.urlencode({"username": user, "password": password}).encode())
    return status, "; ".join(part.split(";")[0] for part in set_cookie.split(", ") if "access-token" in part)


@pytest.fixture(scope="module")
def served(vit_t, tmp_path_factory):
    """The app with two logins, served in this process; one uploaded image's display copy
    is a file the server hands out."""
    from basam_ui.web.common.engine import AppEngine

    engine = AppEngine({"vit_t": lambda: vit_t}, random_weights=True, work_dir=tmp_path_factory.mktemp("work"))
    display = common.upload_image(engine, str(PHOTO)).canvas_image["url"]
    with compare_page(engine, LOGINS) as url:
        yield url, display


def test_page_files_and_api_need_a_login(served):
    url, display = served
    status, page, _ = http(url + "/")
    assert status == 200 and '"auth_required":true' in page.replace(" ", "") and "canvas" not in page
    assert http(url + "/config")[0] == 401
    assert http(f"{url}/{display}")[0] == 401  # the uploaded image's copy
    assert http(f"{url}/gradio_api/info")[0] == 401
    status, _, _ = http(f"{url}/gradio_api/call/segment", data=b'{"data": []}')
    assert status == 401

    assert login(url, "ana", "wrong")[0] == 400
    assert login(url, "nobody", "hunter2")[0] == 400
    status, cookie = login(url, "ana", "s3cret:with-colon")
    assert status == 200 and cookie
    assert http(f"{url}/{display}", cookie=cookie)[0] == 200
    status, page, _ = http(url + "/", cookie=cookie)
    assert status == 200 and '"auth_required":true' not in page.replace(" ", "") and "canvas" in page


def test_gradio_client_needs_the_right_login(served):
    from gradio_client import Client, handle_file

    url, _ = served
    with pytest.raises(Exception):
        Client(url, verbose=False)
    with pytest.raises(Exception):
        Client(url, auth=("ben", "wrong"), verbose=False)
    client = Client(url, auth=("ben", "hunter2"), verbose=False)
    _, _, info = client.predict(image=handle_file(str(PHOTO)), points="[[1000, 700, 1]]", size="256", api_name="/segment")
    assert info["input_size"] == 256 and info["image_size"] == [2048, 1365]


def test_an_event_function_gets_the_login_name(tmp_path):
    """auth.login_name(request) in an event function: who is logged in (the annotator)."""
    from gradio_client import Client

    def who(request: gr.Request) -> str:
        return auth.login_name(request) or "anonymous"

    with gr.Blocks() as demo:
        button, out = gr.Button(), gr.Textbox()
        button.click(who, None, out, api_name="who")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, auth=LOGINS)
    try:
        assert Client(f"http://127.0.0.1:{port}", auth=LOGINS[1], verbose=False).predict(api_name="/who") == "ben"
    finally:
        demo.close()
    assert auth.login_name(None) is None


# -- where logins come from -------------------------------------------------------------------


def test_logins_from_options_files_and_the_secret(tmp_path):
    path = tmp_path / "logins"
    path.write_text("# lab members\nana:s3cret:with-colon\n\n  ben:hunter2  \n")
    path.chmod(0o600)
    assert auth.logins_from_options(["ana:s3cret:with-colon"], path) == LOGINS  # a repeat is merged
    assert auth.logins_from_env({auth.AUTH_ENV: "ana:s3cret:with-colon\nben:hunter2\n"}) == LOGINS
    assert auth.logins_from_env({}) == []
    for bad in ("ana", "ana:", ":pw", " ana:pw"):
        with pytest.raises(AuthError, match="--auth"):
            auth.logins_from_options([bad], None)
    with pytest.raises(AuthError) as err:
        auth.logins_from_options(["topsecret"], None)
    assert "topsecret" not in str(err.value)  # a mistyped option may be a password: not echoed
    with pytest.raises(AuthError, match="different passwords"):
        auth.logins_from_options(["ana:one", "ana:two"], None)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    empty.chmod(0o600)
    with pytest.raises(AuthError, match="no USER:PASSWORD"):
        auth.read_auth_file(empty)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_login_file_others_can_read_is_refused(tmp_path, mode):
    path = tmp_path / "logins"
    path.write_text("ana:pw\n")
    path.chmod(mode)
    with pytest.raises(AuthError, match="chmod 600"):
        auth.read_auth_file(path)


def test_exposure_needs_a_login_or_the_opt_out():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2", "[::1]"):
        auth.check_exposure(host, False, [], False)
    for host, share in (("0.0.0.0", False), ("192.168.1.20", False), ("::", False), ("lab.example.org", False), ("127.0.0.1", True)):
        with pytest.raises(AuthError, match="--auth USER:PASSWORD.*--allow-anonymous"):
            auth.check_exposure(host, share, [], False)
        auth.check_exposure(host, share, LOGINS, False)
        auth.check_exposure(host, share, [], True)


# -- the command and the Space ------------------------------------------------------------------


def test_command_refuses_a_public_host_without_a_login(tmp_path):
    command = [sys.executable, "-m", "basam_ui", "--random-weights", "--host", "0.0.0.0", "--port", str(free_port())]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode != 0
    assert "--auth" in out.stderr and "--allow-anonymous" in out.stderr and "Traceback" not in out.stderr

    readable = tmp_path / "logins"
    readable.write_text("ana:pw\n")
    readable.chmod(0o644)
    out = subprocess.run([*command, "--auth-file", str(readable)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode != 0 and "chmod 600" in out.stderr


def test_command_with_allow_anonymous_serves_on_all_addresses(tmp_path):
    command = [
        sys.executable, "-m", "basam_ui", "--random-weights", "--device", "cpu", "--host", "0.0.0.0", "--port", "{port}",
        "--allow-anonymous",
    ]
    with serve(command, log_dir=tmp_path, cwd=REPO, timeout=180, env={"OMP_NUM_THREADS": "1"}) as running:
        status, page, _ = http(running.url + "/")  # reached through the loopback address
        assert status == 200 and '"auth_required":true' not in page.replace(" ", "") and "canvas" in page
        assert "0.0.0.0" in running.logs()


def test_command_passes_its_logins_to_gradio(tmp_path, monkeypatch):
    """`basam-ui --host 0.0.0.0 --auth-file F --auth U:P`: launch gets both logins."""
    from basam_ui.cli import build_parser
    from basam_ui.web.compare import serve as server

    path = tmp_path / "logins"
    path.write_text("ana:s3cret:with-colon\n")
    path.chmod(0o600)
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.update(kwargs))
    args = build_parser().parse_args(
        ["--random-weights", "--device", "cpu", "--checkpoint-dir", str(tmp_path), "--host", "0.0.0.0",
         "--auth-file", str(path), "--auth", "ben:hunter2"]
    )
    assert server.main(args) == 0
    assert launched["server_name"] == "0.0.0.0" and sorted(launched["auth"]) == LOGINS


def test_space_reads_its_logins_from_the_secret(tmp_path, monkeypatch, capsys):
    import shutil

    from basam_ui.web.compare import serve as server

    monkeypatch.setenv("BASAM_UI_RANDOM_WEIGHTS", "1")
    monkeypatch.setenv("BASAM_UI_CHECKPOINT_DIR", str(tmp_path))
    for secret, expected in (("ana:s3cret:with-colon\nben:hunter2", LOGINS), ("", None)):
        monkeypatch.setenv(auth.AUTH_ENV, secret)
        _, options = server.space_app()
        shutil.rmtree(options["allowed_paths"][0], ignore_errors=True)
        assert options["auth"] == expected
    assert "anyone can use it" in capsys.readouterr().err  # said when the secret is missing
    monkeypatch.setenv(auth.AUTH_ENV, "no colon here")
    with pytest.raises(SystemExit, match=auth.AUTH_ENV):
        server.space_app()
