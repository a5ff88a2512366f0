"""Tiles for the canvas: Deep Zoom tiles of the items a page shows (slides from their own
pyramid, large photos from a pyramid made once), served on a route of the page's server.

A request names an item by the key its page gave it (the annotate page: the project's image
id) and a tile by three integers; `TileServer.resolve(key)` (the page's function) says which
file that key is, from the page's own records. No path from a request ever reaches the file
system, and a key the page does not know is answered 404. The routes sit behind the server's
login when it has logins (Gradio's own login check, `install_routes`). Encoded tiles are kept
in one bytes-bounded LRU (`sources.tiles.TileCache`), the open items in a small LRU.
No Gradio at import time.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

from ...sources.tiles import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, TileCache, TileMaker, TileNotFound
from .auth import gradio_login_check

ROUTE = "/basam-tiles"  # the tile routes' prefix (canvas urls are relative to the page's root)
TILE_CACHE_BYTES = 256 << 20  # encoded tiles kept by the server (the browser keeps its own)
MAX_OPEN = 4  # items whose tile makers stay open (a photo's holds its decoded pyramid)
BROWSER_CACHE = "private, max-age=86400"  # a url names a tile of one version of one item
KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION = re.compile(r"^[0-9a-f]{1,64}$")

Resolver = Callable[[str], Optional[Path]]  # an item's key -> its file (None: not an item)


class TileServer:
    """Deep Zoom tiles of the items a page names by key.

    Arguments:
      resolve: key -> the item's file, from the page's records (None: no such item, or one
        that can't be shown now); never a path taken from a request.
      cache_bytes: the bound on the encoded tiles kept (all items together).
      max_open: how many items stay open.
      max_pixels: the pixel limit for items decoded whole (photos), as the page reads them.
    """

    def __init__(self, resolve: Resolver, cache_bytes: int = TILE_CACHE_BYTES, max_open: int = MAX_OPEN,
                 max_pixels: Optional[int] = None):  # fmt: skip
        from ...sources import DEFAULT_MAX_PIXELS

        self.resolve = resolve
        self.cache = TileCache(cache_bytes)
        self.max_open = max_open
        self.max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        self._open: OrderedDict[tuple[str, str], tuple[Any, TileMaker]] = OrderedDict()
        self._lock = threading.Lock()
        self._opening: dict[tuple[str, str], threading.Lock] = {}

    def maker(self, key: str, version: str) -> TileMaker:
        """The open TileMaker of item `key` (opened on first use; one opening at a time per
        item). Raises TileNotFound for a key or version that is not an item's."""
        if not KEY.match(key or "") or not VERSION.match(version or ""):
            raise TileNotFound(f"no item {key!r}")
        slot = (key, version)
        with self._lock:
            found = self._open.get(slot)
            if found is not None:
                self._open.move_to_end(slot)
                return found[1]
            opening = self._opening.setdefault(slot, threading.Lock())
        with opening:  # a page asks for a dozen tiles at once: open the item once
            with self._lock:
                if slot in self._open:
                    return self._open[slot][1]
            made = self._make(key)
            with self._lock:
                self._open[slot] = made
                self._opening.pop(slot, None)
                while len(self._open) > self.max_open:
                    _, (source, maker) = self._open.popitem(last=False)
                    _close(source, maker)
        return made[1]

    def _make(self, key: str) -> tuple[Any, TileMaker]:
        from ...sources import open_source

        path = self.resolve(key)
        if path is None:
            raise TileNotFound(f"no item {key!r}")
        try:
            source = open_source(path, max_pixels=self.max_pixels)
        except (OSError, ValueError) as exc:  # gone, unreadable, over the limit since it was listed
            raise TileNotFound(f"item {key!r} can't be read: {exc}") from None
        try:
            return source, TileMaker(source, DEFAULT_TILE_SIZE, DEFAULT_OVERLAP, cache=self.cache)
        except Exception:
            source.close()
            raise

    def tile(self, key: str, version: str, level: int, col: int, row: int) -> tuple[bytes, str]:
        """(the encoded tile, its MIME type); TileNotFound for anything outside the items."""
        maker = self.maker(key, version)
        return maker.tile(level, col, row), maker.media_type

    def dzi(self, key: str, version: str) -> str:
        """The item's DZI descriptor."""
        return self.maker(key, version).dzi_xml()

    def close(self) -> None:
        """Close every open item."""
        with self._lock:
            for source, maker in self._open.values():
                _close(source, maker)
            self._open.clear()


def _close(source: Any, maker: TileMaker) -> None:
    maker.close()
    source.close()


def tiles_value(size: tuple[int, int], url: str) -> dict:
    """The canvas value's "tiles" entry for an item of level-0 (width, height) `size`: the url
    prefix and the Deep Zoom geometry the browser computes tile addresses from ({"url",
    "size", "overlap", "format", "levels": [[w, h], ...]}, halved and rounded up from the
    full-resolution pixels, the last level, down to 1 x 1, as DeepZoomGenerator makes them)."""
    width, height = size
    levels = [[width, height]]
    while width > 1 or height > 1:
        width, height = max(1, -(-width // 2)), max(1, -(-height // 2))
        levels.append([width, height])
    return {"url": url, "size": DEFAULT_TILE_SIZE, "overlap": DEFAULT_OVERLAP, "format": "jpeg",
            "levels": levels[::-1]}  # fmt: skip


def install_routes(app: Any, server: TileServer, prefix: str = ROUTE) -> None:
    """Add the tile routes to a running Gradio app (`demo.app`, after launch): GET
    `{prefix}/{key}/{version}/tiles.dzi` and `{prefix}/{key}/{version}/tiles_files/{level}/{col}_{row}.jpeg`
    (the Deep Zoom layout any DZI viewer reads). With logins on, they need one, exactly as the
    page's own files do (`auth.gradio_login_check`)."""
    from fastapi import Depends, HTTPException
    from fastapi.responses import Response

    dependencies = [Depends(gradio_login_check(app))]

    def dzi(key: str, version: str) -> Response:
        try:
            text = server.dzi(key, version)
        except TileNotFound:
            raise HTTPException(status_code=404, detail="no such item") from None
        return Response(text, media_type="application/xml", headers={"Cache-Control": BROWSER_CACHE})

    def tile(key: str, version: str, level: int, col: int, row: int, ext: str) -> Response:
        try:
            data, media_type = server.tile(key, version, level, col, row)
        except TileNotFound:
            raise HTTPException(status_code=404, detail="no such tile") from None
        if ext != media_type.split("/")[1]:
            raise HTTPException(status_code=404, detail="no such tile")
        return Response(data, media_type=media_type, headers={"Cache-Control": BROWSER_CACHE})

    app.add_api_route(prefix + "/{key}/{version}/tiles.dzi", dzi, methods=["GET"], dependencies=dependencies)
    app.add_api_route(prefix + "/{key}/{version}/tiles_files/{level:int}/{col:int}_{row:int}.{ext}", tile,
                      methods=["GET"], dependencies=dependencies)  # fmt: skip
