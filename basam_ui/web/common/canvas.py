"""PromptCanvas: the image at native resolution, zoomable, prompted with points and boxes,
with the SAM and BA-SAM masks drawn on it. A configured `gr.HTML` whose drawing is done in
the browser (`canvas.js`, `canvas.css`).

Value (a JSON dict, or None when no image is loaded), owned by the browser:

    {
      "image": {"url": str, "full": str, "width": int, "height": int},  # display copy (<= 1600 px),
                               # full-resolution copy (loaded when the zoom needs it); ORIGINAL size
                               # (a tiled image has "tiles" (tiles.py) instead of "full"; a slide
                               # also "fields": true, and the value "field_rev", "field_view")
      "points": [{"x": float, "y": float, "label": 1 | 0, "i": int}],  # original px; 1 positive
      "boxes": [{"x0": float, "y0": float, "x1": float, "y1": float, "i": int}],  # x0<x1, y0<y1
      "negative": bool,  # when true a plain click adds a negative point
      "rev": int,        # bumped by every prompt change in the browser
    }

"i" numbers the prompts in the order they were drawn (across both lists), for undo.
Gestures: click = point (negative with Shift/Alt/Ctrl-click, right-click, or when "negative"
is true); drag (>= 5 CSS px) = box; wheel zooms around the pointer; middle-drag or
Space-drag pans. Keys in KEYS_HELP. After each prompt change the component sets its own
value and fires the custom event "prompt": listen with `canvas.prompt(fn, inputs=[canvas,
...], trigger_mode="always_last")`. The server never writes the prompts back: it sends the
masks in the `masks` prop (`gr.update(masks=...)`), so prompts added meanwhile are kept:

    {"url": the image url they belong to, "rev": the value's rev they were made for,
     "png": "data:image/png;base64,..." (2-bit palette PNG at the original size; pixel value
            sam | basam << 1, palette entry v = (85 v, 0, 0)), "width": int, "height": int,
     "timings": {"start", "end" (epoch ms), "decode_sam_ms", "decode_basam_ms", "prepare_ms"},
     "field": {"x", "y", "width", "height", "downsample"}}  # a slide's: the masks lie on this
                                                           # rectangle of the image, at its pixels

or, after a click the browser decoded and drew itself, {"url", "rev", "png": None, "browser":
{"sam": candidate shown, "basam": candidate shown}}. The `decoder` prop is what the browser
needs to decode clicks itself (browser_decode.BrowserDecoding.offer; decode.js, appended to
canvas.js, does it); a click it decoded reaches the server as the "prompt" event with the
value's "decoded" record (browser_decode.claim).

The browser-sent value is display data: the server never opens a file it names.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Optional, Sequence

from ...vocabulary import SIDE_LABELS

HERE = Path(__file__).resolve().parent
VIEW_LABELS = (("basam", SIDE_LABELS["basam"]), ("sam", SIDE_LABELS["sam"]), ("diff", "Difference"), ("swipe", "Swipe"))
KEYS_HELP = (
    "Keys: N negative clicks on/off · Z or Ctrl+Z undo · Esc clear prompts · V next view · F fit · "
    "0 one image pixel per screen pixel · + / − zoom · wheel: zoom at the pointer · Space-drag or "
    "middle-drag: pan · Shift-click or right-click: negative point · drag: box"
)

# a fixed shell: Gradio re-renders the template on every value change, and an unchanged
# template leaves the <canvas> (and its drawing) alone
EMPTY_TEXT = "Upload an image (or pick an example) to start"
HTML_TEMPLATE = (
    '<div class="bc-root"><div class="bc-toolbar"><span class="bc-group">View: '
    + "".join(f'<button type="button" data-view="{key}">{label}</button>' for key, label in VIEW_LABELS)
    + '</span><span class="bc-group">Zoom: <button type="button" data-act="fit">Fit (F)</button>'
    '<button type="button" data-act="one">1:1 (0)</button><button type="button" data-act="in">+</button>'
    '<button type="button" data-act="out">−</button></span></div>'
    '<div class="bc-stage"><canvas class="bc-canvas"></canvas>'
    '<div class="bc-empty">{empty}</div></div>'
    f'<div class="bc-status"></div><div class="bc-help">{KEYS_HELP}</div></div>'
)

# Client-side handlers of the page's own controls: the "Click adds" radio flips the
# canvas's "negative" flag in the browser, and Undo / Clear act on the browser's prompts
# (which then fire "prompt"), so no server round trip can overwrite prompts added meanwhile.
SET_NEGATIVE_JS = "(mode, value) => (value && value.image) ? {...value, negative: mode === 'negative'} : value"
UNDO_JS = "() => { document.querySelector('#canvas .bc-root')?.dispatchEvent(new CustomEvent('bc-undo')) }"
CLEAR_JS = "() => { document.querySelector('#canvas .bc-root')?.dispatchEvent(new CustomEvent('bc-clear')) }"


def PromptCanvas(
    value: Optional[dict[str, Any]] = None, extensions: Sequence[Path] = (), empty: str = EMPTY_TEXT, **kwargs: Any
):
    """An image with point and box prompts and the masks drawn on it (a configured gr.HTML);
    value and `masks` formats in the module docstring. `extensions`: more scripts appended to
    canvas.js in its scope, which add to it through its `hooks` (a page's own additions, e.g.
    the annotate page's annotate.js), after decode.js (clicks decoded in the browser, both
    pages). `empty`: what the canvas says while it shows no image.
    Extra keyword arguments go to gr.HTML (extra props among them).

    A factory rather than a gr.HTML subclass: Gradio's ComponentMeta writes a .pyi stub next
    to the source file of every Component subclass at import time.
    """
    import gradio as gr

    return gr.HTML(
        value=value,
        html_template=HTML_TEMPLATE.replace("{empty}", html.escape(empty)),
        css_template=(HERE / "canvas.css").read_text(),
        js_on_load="\n".join(
            Path(script).read_text() for script in (HERE / "canvas.js", HERE / "tiles.js", HERE / "decode.js", *extensions)
        ),
        apply_default_css=False,
        masks=None,
        decoder=None,
        **kwargs,
    )
