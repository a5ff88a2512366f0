"""The downloader against a local HTTP server: hash check, atomic rename, clear failures."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from basam_ui import cli
from basam_ui.checkpoints import DownloadError, checkpoint_dir, download

PAYLOAD = b"not really a checkpoint\n" * 4096


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 at a free port; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "mobile_sam.pt").write_bytes(PAYLOAD)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/cut"):  # promise a megabyte, send a little, hang up
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                self.wfile.write(PAYLOAD[:1000])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_good_file_is_saved_under_its_name(server, tmp_path):
    target_dir = tmp_path / "ckpt"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = download("vit_t", target_dir, url=f"{server}/mobile_sam.pt", sha256=sha, progress=None)
    assert path == target_dir / "mobile_sam.pt"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target_dir.iterdir()) == ["mobile_sam.pt"]


def test_wrong_hash_leaves_nothing(server, tmp_path):
    target_dir = tmp_path / "ckpt"
    with pytest.raises(DownloadError) as err:
        download("vit_t", target_dir, url=f"{server}/mobile_sam.pt", sha256="0" * 64, progress=None)
    message = str(err.value)
    assert hashlib.sha256(PAYLOAD).hexdigest() in message and "0" * 64 in message
    assert list(target_dir.iterdir()) == [], "a rejected file (or its temporary) was left behind"


def test_http_error_gives_manual_instructions(server, tmp_path):
    target_dir = tmp_path / "ckpt"
    with pytest.raises(DownloadError) as err:
        download("vit_t", target_dir, url=f"{server}/missing.pt", progress=None)
    message = str(err.value)
    assert "HTTP 404" in message
    assert f"{server}/missing.pt" in message
    assert str(target_dir / "mobile_sam.pt") in message
    assert "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f" in message
    assert list(target_dir.iterdir()) == []


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    target_dir = tmp_path / "ckpt"
    with pytest.raises(DownloadError, match="Fetch it by hand"):
        download("vit_t", target_dir, url=f"{server}/cut/mobile_sam.pt", progress=None)
    assert list(target_dir.iterdir()) == []


def test_cli_network_error_exits_nonzero_without_traceback(tmp_path, capsys, monkeypatch):
    # the registry URL is unreachable here; point it at a closed local port to be sure
    from basam_ui import checkpoints

    entry = checkpoints.REGISTRY["vit_b"]
    closed = f"http://127.0.0.1:{_free_port()}/sam_vit_b_01ec64.pth"
    monkeypatch.setitem(
        checkpoints.REGISTRY, "vit_b", checkpoints.CheckpointInfo(**{**entry.__dict__, "url": closed})
    )
    code = cli.main(["download", "vit_b", "--checkpoint-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    assert closed in err and entry.sha256 in err and str(tmp_path / entry.filename) in err
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASAM_UI_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert checkpoint_dir() == tmp_path / "cache" / "basam-ui" / "checkpoints"
    (tmp_path / "checkpoints").mkdir()
    assert checkpoint_dir() == tmp_path / "checkpoints"
    monkeypatch.setenv("BASAM_UI_CHECKPOINT_DIR", str(tmp_path / "env"))
    assert checkpoint_dir() == tmp_path / "env"
    assert checkpoint_dir(tmp_path / "flag") == tmp_path / "flag"
