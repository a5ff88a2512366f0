"""The review panel of the annotate page (Gradio), shown when the project has reviewers: the
mode (annotate / review), the reason box, Accept (Y), Reject (R, a reason, Enter), Accept the
rest (Shift+Y) and Next to review; `review.js` gives the keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from . import review as events
from .review import MODE_LABELS


@dataclass
class ReviewControls:
    mode: Any
    line: Any
    reason: Any
    accept: Any
    reject: Any
    accept_rest: Any
    next_image: Any


def panel(project) -> ReviewControls:
    """The controls, made where the page places them (the right column); hidden without reviewers."""
    with gr.Accordion("Review", open=True, visible=bool(project.reviewers()), elem_id="rev-panel"):
        mode = gr.Radio(list(MODE_LABELS.values()), value=MODE_LABELS["annotate"], label="Mode (reviewers only)",
                        elem_id="ann-mode")  # fmt: skip
        line = gr.Markdown("", elem_id="rev-line")
        reason = gr.Textbox(placeholder="why it is rejected (R, type, Enter)", show_label=False, elem_id="rev-reason",
                            max_length=500)  # fmt: skip
        with gr.Row():
            accept = gr.Button("Accept (Y)", elem_id="rev-accept", size="sm", variant="primary")
            reject = gr.Button("Reject (R)", elem_id="rev-reject", size="sm", variant="stop")
        with gr.Row():
            accept_rest = gr.Button("Accept the rest (Shift+Y)", elem_id="rev-accept-rest", size="sm")
            next_image = gr.Button("Next to review", elem_id="rev-next", size="sm")
    return ReviewControls(mode, line, reason, accept, reject, accept_rest, next_image)


def wire(c: ReviewControls, *, engine, project, chain: Callable, moved: Callable, everything: list) -> None:
    """Attach the panel's events (through the page's `chain`: the event, then the encode of
    whatever image it opened)."""

    def line(st) -> dict:
        return {c.line: events.review_line(project, st) or "", c.mode: MODE_LABELS[st.mode]}

    def step(change: Callable) -> Callable:
        def event(st, data, report):
            st, extra = moved(lambda s, d: change(s, d))(st, data, report)
            return st, {**extra, **line(st)}

        return event

    outputs = [*everything, c.line, c.mode]
    chain(c.mode.input, step(lambda s, d: events.set_mode(engine, project, s, d[c.mode])), [c.mode], outputs)
    chain(c.accept.click, step(lambda s, d: events.decide(engine, project, s, "accepted")), [], outputs)
    chain(c.accept_rest.click, step(lambda s, d: events.accept_rest(engine, project, s)), [], outputs)
    chain(c.next_image.click, step(lambda s, d: events.next_image(engine, project, s)), [], outputs)

    def rejected(st, data, report):
        st, extra = step(lambda s, d: events.decide(engine, project, s, "rejected", d[c.reason]))(st, data, report)
        return st, {**extra, c.reason: ""}

    for trigger in (c.reject.click, c.reason.submit):
        chain(trigger, rejected, [c.reason], [*outputs, c.reason])
