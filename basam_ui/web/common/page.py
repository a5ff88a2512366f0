"""What both pages' layouts share (Gradio): the random-weights warning, the base CSS, how many
model events run at once, how an event's failure reaches the page, and attaching an event to
one trigger or several."""

from __future__ import annotations

import html
import logging
import time

import gradio as gr

from .session import USER_ERRORS
from .text import literal

log = logging.getLogger("basam_ui.web")

RANDOM_WEIGHTS_WARNING = (
    "⚠️ **Random weights.** This server runs an untrained model (`--random-weights`): the masks "
    "are meaningless. Use it to try the interface only; run `basam-ui` without the option to "
    "use the real checkpoint."
)
BASE_CSS = """
#message p { color: #b91c1c; font-weight: 600; }
#weights-warning { background: #fff4d6; border-radius: 6px; padding: 6px 12px; }
#weights-warning p { color: #6b4a00; }
#window-help p { font-size: 0.8em; opacity: 0.8; }
"""


def concurrency_limit(device: str) -> int:
    """How many model events run at once. On CPU one: a second event would only split the
    same cores and make both slower. On a GPU two: a user's clicks (decode only) then need
    not queue behind another user's multi-second encode at a large S, while at most two
    encodes share the GPU's memory (the encoder's attention is chunked, so its memory stays
    bounded; more at once would risk running out at 4096)."""
    return 1 if str(device).startswith("cpu") else 2


def failure_text(exc: BaseException, what: str = "event") -> str:
    """The sentence for an event that failed: a user error's own (a bad file, a prompt outside
    the image, ...), or, for anything else (a bug, a full disk), a notice, with the traceback
    written to the server log."""
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.error("%s failed", what, exc_info=exc)
    return (f"Something went wrong on the server ({type(exc).__name__}: {exc}); the page keeps its state, and the "
            "details are in the server's log.")


def failure_message(exc: BaseException, what: str = "event", toast: bool = False) -> str:
    """`failure_text` as the page's message line (Markdown, the text shown as itself); with
    `toast`, in a Gradio Warning too (which renders HTML: escaped)."""
    text = failure_text(exc, what)
    if toast:
        gr.Warning(html.escape(text))
    return f"⚠️ {literal(text)}"


def stamp_timings(canvas_update: dict, started: float) -> None:
    """Mark the masks an event sends with when the server got the event and when it answered
    (epoch ms; the click benchmark splits a click's time with them)."""
    masks = canvas_update.get("masks")
    if masks and masks.get("png"):
        masks["timings"].update(start=started * 1000, end=time.time() * 1000)


def progress_reporter(progress: "gr.Progress"):
    """The events' `report(fraction, text)` for a Gradio progress bar."""
    return lambda fraction, text: progress(fraction, desc=text)


def listen(trigger, fn, inputs, outputs, **options):
    """Attach an event to one trigger or several (a list: gr.on)."""
    if isinstance(trigger, list):
        return gr.on(trigger, fn, inputs=inputs, outputs=outputs, **options)
    return trigger(fn, inputs=inputs, outputs=outputs, **options)
