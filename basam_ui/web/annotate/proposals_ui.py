"""The proposals panel of the annotate page (Gradio): its controls (the three generator settings,
"compute in the background", "accept all above a score", the proposals line), a timer that
asks the background service for the open and next images' proposals and sends the open
image's outlines to the canvas when they change, and the canvas's "proposal" events (a digit
or Enter accepts the selected proposal, X rejects it; `proposals.js`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from ..common.page import failure_message
from ..common.session import USER_ERRORS, AppError
from . import proposals as events
from .proposals import PageProposalSettings, ProposalService

TICK_S = 2.0  # how often a page asks for its proposals' state (a cheap event: nothing is computed in it)


@dataclass
class ProposalControls:
    status: Any
    background: Any
    points: Any
    iou: Any
    stability: Any
    min_score: Any
    accept_all: Any
    timer: Any

    @property
    def settings_inputs(self) -> list:
        return [self.background, self.points, self.iou, self.stability]


def panel(service: ProposalService) -> ProposalControls:
    """The controls, made where the page places them (the right column)."""
    defaults = PageProposalSettings()
    status = gr.Markdown("Proposals: open an image.", elem_id="prop-status")
    with gr.Accordion("Proposals (P)", open=False, elem_id="prop-panel"):
        background = gr.Checkbox(service.enabled, label="compute in the background (open and next image, while idle)",
                                 elem_id="prop-background")  # fmt: skip
        points = gr.Slider(2, 64, value=defaults.points_per_side, step=1, label="points per side", elem_id="prop-points")
        iou = gr.Slider(0, 1, value=defaults.pred_iou_thresh, step=0.01, label="predicted IoU threshold",
                        elem_id="prop-iou")  # fmt: skip
        stability = gr.Slider(0, 1, value=defaults.stability_score_thresh, step=0.01,
                              label="stability score threshold", elem_id="prop-stability")  # fmt: skip
        with gr.Row():
            min_score = gr.Number(0.95, minimum=0, maximum=1, step=0.01, label="accept all with predicted IoU ≥",
                                  elem_id="prop-min-score", scale=2)  # fmt: skip
            accept_all = gr.Button("Accept all above", elem_id="prop-accept-all", size="sm", scale=1)
    return ProposalControls(status, background, points, iou, stability, min_score, accept_all, gr.Timer(TICK_S))


def wire(c: ProposalControls, *, engine, project, service: ProposalService, state, canvas, label, settings_inputs: list,
         settings_of: Callable, guarded: Callable, listen: Callable, everything: list, light: list) -> None:  # fmt: skip
    """Attach the panel's events to the page (the page's own `guarded` and `listen`)."""
    sent: dict[str, tuple] = {}  # holder -> the outlines last sent to its canvas
    layers: dict = {}  # outlines made, by (set, pending proposals)

    def proposal_settings(data: dict) -> PageProposalSettings:
        return PageProposalSettings(data[c.points], data[c.iou], data[c.stability])

    def wish(st, data: dict):
        return events.open_wish(engine, project, st, settings_of(data), proposal_settings(data))

    def with_layer(st, data: dict, out: dict) -> dict:
        """`out` with the open image's outlines (and the proposals line), remembered as sent."""
        found = wish(st, data)
        shown = events.layer(project, st, found, layers)
        sent[st.holder] = _signature(shown)
        out[canvas] = gr.update(proposals=shown)
        out[c.status] = events.status_text(service, found, shown, bool(data[c.background]))
        return out

    def on_tick(data: dict) -> dict:
        st = data[state]
        if st is None or not st.holder:  # a tick before the page's load event started the session
            return {c.status: gr.skip()}  # (an empty dict would be read as one output value)
        try:
            found = wish(st, data)
            if data[c.background] and st.mode != "review":
                service.request(st.holder, [found, following(st, data)])
            else:
                service.request(st.holder, [])
            shown = events.layer(project, st, found, layers)
        except USER_ERRORS as exc:
            return {c.status: f"Proposals: {exc}"}
        except Exception as exc:  # a damaged database, a bug: said in the line, the traceback logged
            return {c.status: failure_message(exc, "proposals tick")}
        out = {c.status: events.status_text(service, found, shown, bool(data[c.background]))}
        signature = _signature(shown)
        if sent.get(st.holder) != signature:
            sent[st.holder] = signature
            out[canvas] = gr.update(proposals=shown)
        return out

    def following(st, data: dict):
        """The wish of the image "next to do" would hand this session (its size and hash read
        now if it was never opened)."""
        if st.image_id is None:
            return None
        found = project.next_todo(st.holder, st.annotator, after=st.image_id, claim=False)
        if found is None or found.id == st.image_id:
            return None
        if found.sha256 is None:
            project.open_image(found.id)
        return events.wish_for(engine, project, found.id, settings_of(data), proposal_settings(data))

    inputs = {state, *settings_inputs, *c.settings_inputs}
    c.timer.tick(on_tick, inputs, [canvas, c.status], concurrency_id="proposals", concurrency_limit=None,
                 show_progress="hidden", api_visibility="private")  # fmt: skip

    def on_proposal(data: dict, evt: gr.EventData, request: gr.Request):
        payload = getattr(evt, "_data", None) or {}

        def event(st, d, report):
            action, proposal_id = payload.get("action"), payload.get("id")
            if action == "accept":
                klass = payload.get("klass")
                names = project.labels()
                k = klass if isinstance(klass, int) and not isinstance(klass, bool) else 0
                chosen = names[k - 1] if 0 < k <= len(names) else d[label]  # a digit's class, else the selected one
                ms = payload.get("ms")
                seconds = float(ms) / 1000 if isinstance(ms, (int, float)) and ms >= 0 else None
                st = events.accept(project, st, proposal_id, chosen, seconds)
            elif action == "reject":
                st = events.reject(project, st, proposal_id)
            else:
                raise AppError(f"unknown proposal action {action!r}")
            return st, with_layer(st, d, {})

        return guarded(event)(data, request)

    listen(canvas.proposal, on_proposal, [label, *c.settings_inputs], [*everything, c.status])

    def accept_all(st, d, report):
        st = events.accept_above(project, st, wish(st, d), d[c.min_score], d[label])
        return st, with_layer(st, d, {})

    listen(c.accept_all.click, guarded(accept_all), [label, c.min_score, *c.settings_inputs], [*everything, c.status])

    def settings_changed(st, d, report):
        return st, with_layer(st, d, {})

    listen([c.points.release, c.iou.release, c.stability.release, c.background.input], guarded(settings_changed, everything=False),
           c.settings_inputs, [*light, c.status], trigger_mode="always_last")  # fmt: skip


def _signature(shown) -> tuple:
    return (None,) if shown is None else (shown["url"], shown["set"], tuple(item["id"] for item in shown["items"]))
