"""Decoding clicks in the browser: what the server offers a page so that it can decode its
clicks itself, and what it takes back. No Gradio here (the routes are `decode_routes.py`).

The page gets, with every event, the canvas's `decoder` prop (`BrowserDecoding.offer`): the
URLs of the model's exported decoder (`onnx_decoder.DecoderExports`, one ONNX file per model
and S, exported in the background on an image's first encode) and of each side's embedding
(a float16 payload), the sizes that map masks to the image, and whether the browser may
decode now or why the server does. URLs name things by tokens this server made (an HMAC of
what they stand for, with a secret made at start-up), never by paths.

After a click it decoded, the page sends the prompts with a record of that decode
(`canvas value["decoded"]`: the revision, the embeddings it used, the scores, the times, the
IoU it measured); `claim` checks it against the session, and the server then stores the
prompts without decoding. Everything else (commit, export, the API, ground-truth metrics, a
changed setting, a page that could not decode) decodes on the server.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import numpy as np

from ...vocabulary import BROWSER_DECODE_MAX_SIZE, DECODE_MODES, SIDES, embedding_bytes
from .session import DecoderNote, Session, Settings

if TYPE_CHECKING:
    from torch import nn

    from ...cache import EmbeddingKey
    from ...onnx_decoder import DecoderExport

ROUTE = "basam"  # the routes' prefix (decode_routes.py); URLs in the offer are relative to the page
MAX_TOKENS = 10_000  # names kept for the routes, most recent first out of them
EMBEDDING_HEADER_BYTES = 28  # onnx_decoder.embedding_payload's header for 4 dimensions


@dataclass(frozen=True)
class BrowserRun:
    """A click the page decoded, as it reported it (checked by `claim`)."""

    ms: dict[str, float]  # per side, and "total" (click to both masks drawn)
    scores: dict[str, tuple[float, ...]]  # per side, the candidates' predicted IoUs
    best: dict[str, int]  # per side, the candidate shown
    iou: Optional[float]  # between the two sides' masks, on `grid`
    grid: Optional[tuple[int, int]]  # (w, h) the IoU was measured on


class BrowserDecoding:
    """The engine's part in decoding clicks in the browser: the mode (`--decode`), one
    `DecoderExports` per model (`sam_of(model_type)` gives the model; files in `folder`), and
    the tokens that name the model files and the embeddings in the routes. Thread-safe."""

    def __init__(self, mode: str, folder: str | Path, sam_of: Callable[[str], "nn.Module"]):
        if mode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {', '.join(DECODE_MODES)}, got {mode!r}")
        self.sam_of = sam_of
        self.mode = mode
        self.folder = Path(folder)
        self._exports: dict[str, Any] = {}  # model type -> DecoderExports
        self._secret = secrets.token_bytes(32)
        self._names: OrderedDict[str, tuple] = OrderedDict()  # token -> what it names
        self._lock = threading.Lock()

    @property
    def bound(self) -> Optional[int]:
        """The largest S decoded in the browser (None: any)."""
        return BROWSER_DECODE_MAX_SIZE if self.mode == "auto" else None

    # -- names for the routes ---------------------------------------------------------------

    def _token(self, *what: Any) -> str:
        token = hmac.new(self._secret, repr(what).encode(), hashlib.sha256).hexdigest()[:32]
        with self._lock:
            self._names[token] = what
            self._names.move_to_end(token)
            while len(self._names) > MAX_TOKENS:
                self._names.popitem(last=False)
        return token

    def named(self, token: str) -> Optional[tuple]:
        """What a token names: ("model", model_type, S) or ("embedding", EmbeddingKey), or None."""
        with self._lock:
            return self._names.get(token)

    def embedding_token(self, key: "EmbeddingKey") -> str:
        return self._token("embedding", key)

    def model_token(self, model_type: str, size: int) -> str:
        return self._token("model", model_type, int(size))

    # -- the exported decoders ----------------------------------------------------------------

    def export(self, model_type: str, size: int, start: bool = True) -> Optional["DecoderExport"]:
        """The export of `model_type`'s decoder at S = `size`, started (in the background) on
        first use; with `start` False, None when it was never started."""
        from ...onnx_decoder import DecoderExports

        with self._lock:
            exports = self._exports.get(model_type)
        if exports is None:
            if not start:
                return None
            sam = self.sam_of(model_type)  # (outside the lock: it may load the model)
            with self._lock:
                exports = self._exports.setdefault(model_type, DecoderExports(sam, self.folder))
        return exports.for_size(size) if start else exports.started(size)

    def server_reason(self, session: Session, start: bool = False) -> str:
        """Why the server, not the browser, decodes `session`'s clicks ("" when the browser
        may); with `start`, starts the decoder's export when the browser may use it (a page
        offers it), else an export never started is a reason too (the API starts none)."""
        why = self.session_reason(session)
        if why:
            return why
        export = self.export(session.settings.model, session.sam.size, start=start)
        return self.export_reason(export) if export is not None else "the decoder is not exported"

    def session_reason(self, session: Session) -> str:
        """`server_reason` before the export: the mode, the image, a ground truth, the bound."""
        settings, sam = session.settings, session.sam
        if self.mode == "server":
            return "this server decodes every click (--decode server)"
        if session.fields is not None:
            # a field's prompts map through its region and level, which decoder.js does not do
            return "a slide's fields are decoded on the server"
        if settings is None or sam is None or sam.key is None:
            return "the image is not encoded yet"
        if session.gt is not None:
            return "a ground truth is loaded: its metrics need the masks at full resolution"
        if self.bound is not None and sam.size > self.bound:
            mib = embedding_bytes(sam.size) / 2**20
            return (f"S={sam.size} is over the browser's bound of {self.bound} (its embedding would be {mib:.0f} MiB "
                    "per side)")
        return ""

    @staticmethod
    def export_reason(export: "DecoderExport") -> str:
        """Why the export does not serve the browser yet ("" when it does)."""
        if export.failed:
            return export.error or "the decoder could not be exported"
        if not export.ready:
            return f"the decoder for S={export.size} is being exported (once per model and S)"
        return ""

    # -- what the page gets ---------------------------------------------------------------------

    def offer(self, session: Session) -> Optional[dict]:
        """The canvas's `decoder` prop for `session`: None without an encoded image; for a slide
        {"mode": "server", "why", "state": "off", "url"}; else
        {"mode": "browser" | "server", "why": why the server decodes this session's clicks
        whatever the export ("" when the browser may), "state": the export's ("exporting",
        "ready", "failed"; "off" in server mode), "exportWhy" (`export_reason`), "stateUrl"
        (the export's state as {"state", "why"}, for the page to poll), "ort", "decoderJs",
        "worker", "model", "size" (S), "input" ([h, w] inside S), "original" ([H, W]), "url"
        (the image's canvas url), "multimask", "sides": {side: {"url", "key", "bytes"}}}.
        The page decodes when mode is "browser", why is "" and state is "ready"."""
        from ...basam.encoder import resized_size

        if session.fields is not None and session.canvas_image is not None:  # a slide: the server, and why
            url = session.canvas_image["url"]
            return {"mode": "server", "why": self.session_reason(session), "state": "off", "url": url}
        if session.image is None or session.canvas_image is None or session.settings is None:
            return None
        results = {side: session.side(side) for side in SIDES}
        if any(r is None or r.key is None for r in results.values()):
            return None
        why = self.session_reason(session)
        settings, size = session.settings, results["sam"].size
        original = [int(session.image.shape[0]), int(session.image.shape[1])]
        offer = {
            "mode": "server" if self.mode == "server" else "browser", "why": why, "state": "off",
            "size": size, "input": list(resized_size(tuple(original), size)), "original": original,
            "url": session.canvas_image["url"], "multimask": bool(settings.multimask),
        }  # fmt: skip
        if self.mode == "server" or (self.bound is not None and size > self.bound):
            return {**offer, "mode": "server"}
        model = self.model_token(settings.model, size)
        export = self.export(settings.model, size, start=True)
        offer.update(
            state=export.state, exportWhy=self.export_reason(export), stateUrl=f"{ROUTE}/decoder/{model}/state",
            model=f"{ROUTE}/decoder/{model}.onnx", ort=f"{ROUTE}/vendor/ort.wasm.min.js",
            decoderJs=f"{ROUTE}/static/decoder.js", worker=f"{ROUTE}/static/decode-worker.js",
            sides={side: self._side_offer(result.key) for side, result in results.items()},
        )  # fmt: skip
        return offer

    def _side_offer(self, key: "EmbeddingKey") -> dict:
        token = self.embedding_token(key)
        size = EMBEDDING_HEADER_BYTES + embedding_bytes(key.size)
        return {"url": f"{ROUTE}/embedding/{token}", "key": token, "bytes": size}

    # -- what the page sends back -----------------------------------------------------------------

    def claim(self, session: Session, canvas: Mapping[str, Any], settings: Settings) -> Optional[BrowserRun]:
        """The browser's record of decoding the prompts of `canvas` (its value), when it holds:
        this server lets the browser decode, the record is for this revision, for the session's
        settings (the page's `settings` are the ones the session was encoded with) and for the
        embeddings the session has; None otherwise (the server decodes them)."""
        record = canvas.get("decoded")
        if self.mode == "server" or not isinstance(record, Mapping) or record.get("by") != "browser" or record.get("pending"):
            return None
        rev = canvas.get("rev")
        if isinstance(rev, bool) or not isinstance(rev, int) or record.get("rev") != rev:
            return None
        if session.settings != settings or session.gt is not None or self.server_reason(session):
            return None
        keys = record.get("keys")
        if not isinstance(keys, Mapping):
            return None
        expected = {side: self.embedding_token(session.side(side).key) for side in SIDES}
        if {side: keys.get(side) for side in SIDES} != expected:
            return None
        return _parse_run(record, 3 if settings.multimask else 1)

    def pending(self, canvas: Mapping[str, Any]) -> bool:
        """Whether the page is decoding the prompts of `canvas` itself (its record, or the
        prompts for the server to decode, follow in a later event)."""
        record = canvas.get("decoded")
        return (self.mode != "server" and isinstance(record, Mapping) and record.get("by") == "browser"
                and record.get("pending") is True and record.get("rev") == canvas.get("rev"))  # fmt: skip

    def record(self, session: Session, run: BrowserRun) -> Session:
        """`session` (with the clicked prompts and revision) holding what the browser decoded:
        each side's scores and shown candidate, no masks (`events.server_masks` makes them
        when a commit or an export needs them)."""
        sides = {}
        for side in SIDES:
            previous = session.side(side)
            sides[side] = replace(
                previous, masks=None, scores=np.asarray(run.scores[side], dtype=np.float64), choice=run.best[side],
                decode_seconds=run.ms[side] / 1000, gt_mae=None, gt_iou=None, decoded_in="browser",
            )  # fmt: skip
        note = DecoderNote("browser", ms=run.ms["total"], iou=run.iou, grid=run.grid)
        return replace(session, decoder=note, **sides)

    def server_note(self, session: Session, canvas: Optional[Mapping[str, Any]] = None, why: str = "") -> DecoderNote:
        """The status line's note for masks the server decoded: the server's own reason, else
        the one the page gave with the prompts (it could not decode them: no WebAssembly,
        still loading, ...), else `why`."""
        record = (canvas or {}).get("decoded")
        said = record.get("why") if isinstance(record, Mapping) and record.get("by") == "server" else None
        said = " ".join(said.split())[:200] if isinstance(said, str) else ""
        return DecoderNote("server", why=self.server_reason(session) or said or why)


def _parse_run(record: Mapping[str, Any], candidates: int) -> Optional[BrowserRun]:
    """A BrowserRun from the page's record (JSON from the browser: checked field by field), or
    None when anything is missing or out of range."""
    try:
        ms = {name: float(record["ms"][name]) for name in (*SIDES, "total")}
        scores = {side: tuple(float(v) for v in record["scores"][side]) for side in SIDES}
        best = {side: record["best"][side] for side in SIDES}
        iou, grid = record.get("iou"), record.get("grid")
        iou = None if iou is None else float(iou)
        grid = None if grid is None else (int(grid[0]), int(grid[1]))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not all(math.isfinite(v) and 0 <= v < 1e7 for v in ms.values()):
        return None
    for side in SIDES:
        if len(scores[side]) != candidates or not all(math.isfinite(v) for v in scores[side]):
            return None
        if isinstance(best[side], bool) or not isinstance(best[side], int) or not 0 <= best[side] < candidates:
            return None
    if iou is not None and not 0.0 <= iou <= 1.0:
        return None
    if grid is not None and not all(0 < n <= 1 << 16 for n in grid):
        return None
    return BrowserRun(ms, scores, best, iou, grid)
