"""The HTTP routes a page decodes clicks with (browser_decode.py), added to Gradio's app when it
starts (`lifespan`, which `serve.launch_options` passes to `demo.launch`), behind Gradio's own
login check when the server has logins:

    GET /basam/vendor/<name>          ONNX Runtime Web's files (vendored, fixed names)
    GET /basam/static/<name>          decoder.js and decode-worker.js (fixed names)
    GET /basam/decoder/<token>.onnx   a model's decoder exported at one S (when ready)
    GET /basam/decoder/<token>/state  that export's state, {"state", "why"} (JSON)
    GET /basam/embedding/<token>      one side's embedding as onnx_decoder.embedding_payload

Files are served from fixed tables and tokens this server made (`BrowserDecoding`), so nothing
a request says reaches the file system. Each response has its length (the page shows
progress) and its type (`.wasm` as application/wasm, which WebAssembly's streaming compiler
requires).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .auth import gradio_login_check
from .browser_decode import ROUTE

if TYPE_CHECKING:
    from .engine import AppEngine

WEB = Path(__file__).resolve().parents[1]
VENDOR = WEB / "vendor" / "onnxruntime-web"
VENDOR_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
STATIC_FILES = ("decoder.js", "decode-worker.js")
MEDIA_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
               ".onnx": "application/octet-stream"}  # fmt: skip
VENDOR_CACHE = "private, max-age=86400"  # pinned files; a new ORT version has its own files
OWN_CACHE = "no-cache"  # our scripts: revalidated, so a new version is picked up at once
MODEL_CACHE = "private, max-age=86400"  # a token names one model at one S and export version


class EmbeddingGone(LookupError):
    """The embedding a token names is no longer in the cache."""


def lifespan(engine: "AppEngine") -> Callable[[Any], contextlib.AbstractAsyncContextManager]:
    """A FastAPI lifespan (demo.launch(app_kwargs={"lifespan": ...})) that adds the routes."""

    @contextlib.asynccontextmanager
    async def install(app):
        add_routes(app, engine)
        yield

    return install


def add_routes(app, engine: "AppEngine") -> None:
    """Add the routes to Gradio's `app` (a FastAPI app), each behind its login check."""
    from fastapi import APIRouter, Depends, HTTPException
    from fastapi.responses import FileResponse, JSONResponse, Response

    router = APIRouter(prefix=f"/{ROUTE}", dependencies=[Depends(gradio_login_check(app))])

    def file(path: Path, cache: str) -> FileResponse:
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": cache})

    @router.get("/vendor/{name}")
    def vendor(name: str):
        if name not in VENDOR_FILES:
            raise HTTPException(404, "no such file")
        return file(VENDOR / name, VENDOR_CACHE)

    @router.get("/static/{name}")
    def static(name: str):
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        return file(WEB / name, OWN_CACHE)

    def export_of(token: str):
        named = engine.browser.named(token)
        if not named or named[0] != "model":
            raise HTTPException(404, "no such decoder")
        return engine.browser.export(named[1], named[2])

    @router.get("/decoder/{token}/state")
    def decoder_state(token: str):
        export = export_of(token)
        return JSONResponse({"state": export.state, "why": engine.browser.export_reason(export)},
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    @router.get("/decoder/{token}.onnx")
    def decoder_model(token: str):
        export = export_of(token)
        if not export.ready:
            raise HTTPException(409, engine.browser.export_reason(export))
        return file(export.path, MODEL_CACHE)

    @router.get("/embedding/{token}")
    def embedding(token: str):
        from ...onnx_decoder import embedding_payload

        named = engine.browser.named(token)
        if not named or named[0] != "embedding":
            raise HTTPException(404, "no such embedding")
        try:
            tensor, _ = engine.cache.get(named[1], _gone)
        except EmbeddingGone:
            raise HTTPException(410, "the embedding is no longer cached: the server decodes this image's clicks") from None
        return Response(embedding_payload(tensor), media_type="application/octet-stream",
                        headers={"Cache-Control": "private, no-cache"})  # fmt: skip

    app.include_router(router)


def _gone():
    raise EmbeddingGone()
