"""The compare page: its layout and the wiring of its events to `events.py` and the shared
`common/events.py` (what the events do) and `api.py` (the /segment endpoint). The engine is
captured by the event functions; each browser session's state is a `Session` in gr.State.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from ...vocabulary import DEFAULT_BETA, DEFAULT_SIDE, MAX_BETA, SIDE_LABELS, SIDES
from ..common import events as common
from ..common import window_events, windows
from ..common.canvas import CLEAR_JS, SET_NEGATIVE_JS, UNDO_JS, PromptCanvas
from ..common.engine import AppEngine
from ..common.page import BASE_CSS, RANDOM_WEIGHTS_WARNING, concurrency_limit, failure_message
from ..common.page import progress_reporter
from ..common.page import listen as attach
from ..common.page import stamp_timings
from ..common.session import USER_ERRORS, Progress, Session, Settings
from ..common.window_control import window_control
from . import api, events
from .events import EXPORT_CHOICES

ASSETS = Path(__file__).resolve().parents[3] / "assets"  # present in a clone or a Space
EXAMPLES = (("camouflage.jpg", "camouflage_mask.png"), ("lesion.jpg", "lesion_mask.png"))
IMAGE_FILE_TYPES = ["image", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"]
# the image upload takes any file: a DICOM file may have no extension (it is recognised by its
# "DICM" preamble), and what is not an image is refused by the reader with a sentence
UPLOAD_FILE_TYPES = None
PROMPT_HELP = (
    "Click: positive point · Shift-click or right-click: negative point · drag: box. "
    "SAM takes one box per prediction: the last box drawn is used, together with all points."
)
# the browser saves the file the Download button made (a link with the download attribute)
SAVE_FILE_JS = (
    "(f) => { if (f && f.url) { const a = document.createElement('a'); a.href = f.url; "
    "a.download = f.orig_name || ''; document.body.appendChild(a); a.click(); a.remove(); } }"
)
VIEW_LEGEND = (
    "Views (V, or the buttons above the image): BA-SAM (orange) · SAM (blue) · Difference: only in SAM blue, "
    "only in BA-SAM orange, in both light · Swipe: SAM left of the divider, BA-SAM right (drag it)."
)

CSS = BASE_CSS + """
#prompt-help p { font-size: 0.85em; opacity: 0.8; }
"""


def build_app(engine: AppEngine) -> gr.Blocks:
    """The page for `engine`, queued. Launch it with `demo.launch(**launch_options(engine))`."""
    with gr.Blocks(title="basam-ui: SAM vs BA-SAM", analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        state = gr.State(Session(), delete_callback=engine.forget)
        gr.Markdown(
            "## basam-ui — Segment Anything at native resolution: SAM next to BA-SAM\n"
            "Upload an image, prompt it, and compare vanilla SAM with BA-SAM (NSF + BM-AM) at the "
            "inference size you choose."
        )
        gr.Markdown(RANDOM_WEIGHTS_WARNING, elem_id="weights-warning", visible=engine.random_weights)
        message = gr.Markdown("", elem_id="message")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload = gr.File(label="Image (photo, or DICOM with or without .dcm)", file_types=UPLOAD_FILE_TYPES,
                                 type="filepath", elem_id="upload", height=110)
                frame = gr.Dropdown([], label="Frame (multi-frame DICOM)", elem_id="frame", visible=False)
                windowing = window_control()
                gt_upload = gr.File(
                    label="Ground-truth mask (optional)", file_types=IMAGE_FILE_TYPES, type="filepath",
                    elem_id="gt-upload", height=110,
                )
                click_mode = gr.Radio(["positive", "negative"], value="positive", label="Click adds", elem_id="click-mode")
                with gr.Row():
                    undo = gr.Button("Undo last prompt", elem_id="undo", size="sm")
                    clear = gr.Button("Clear all", elem_id="clear", size="sm")
                model = gr.Dropdown(
                    engine.model_types, value=engine.default_model, label="Model", elem_id="model",
                    interactive=len(engine.model_types) > 1,
                )
                size = gr.Dropdown(
                    engine.size_choices(), value=engine.default_size, label="Inference size S", elem_id="size",
                    info=f"'native': the image's long side (at most {engine.max_size})",
                )
                with gr.Row():
                    nsf = gr.Checkbox(True, label="NSF", info="new scaling factor", elem_id="nsf")
                    bmam = gr.Checkbox(True, label="BM-AM", info="bias-mode attention mask", elem_id="bmam")
                beta = gr.Slider(0, MAX_BETA, value=DEFAULT_BETA, step=0.05, label="β (BM-AM slope)", elem_id="beta")
                multimask = gr.Checkbox(False, label="Multimask (3 candidates per side)", elem_id="multimask")
            with gr.Column(scale=4):
                canvas = PromptCanvas(None, extensions=[windows.DRAG_SCRIPT], elem_id="canvas")
                gr.Markdown(PROMPT_HELP + "  \n" + VIEW_LEGEND, elem_id="prompt-help")
                status = gr.Markdown("Upload an image to start.", elem_id="status")
                with gr.Row(equal_height=False):
                    sam_candidates = gr.Radio([], label="SAM candidates", elem_id="sam-candidates", visible=False)
                    basam_candidates = gr.Radio([], label="BA-SAM candidates", elem_id="basam-candidates", visible=False)
        with gr.Row():
            export_side = gr.Radio([SIDE_LABELS[k] for k in SIDES], value=SIDE_LABELS[DEFAULT_SIDE], label="Export the mask of",
                                   elem_id="export-side")
            export_format = gr.Radio(list(EXPORT_CHOICES), value=next(iter(EXPORT_CHOICES)), label="as", elem_id="export-format")
            # made when pressed (the server decodes the prompts at full resolution if the browser
            # drew the masks), then saved by the browser from a hidden file component
            download = gr.Button("Download mask (full resolution)", elem_id="download", interactive=False)
            download_file = gr.File(visible="hidden", elem_id="download-file")
        examples = _examples(upload, gt_upload)
        api_inputs, api_outputs, api_trigger = _api_components(engine)

        settings_inputs = [model, size, nsf, bmam, beta, multimask]
        page_outputs = [state, canvas, sam_candidates, basam_candidates, status, message]
        common_inputs = {state, *settings_inputs, export_side, export_format}

        def settings_of(data: dict) -> Settings:
            return Settings(data[model], data[size], data[nsf], data[bmam], data[beta], data[multimask])

        def page(session: Session, data: dict) -> dict:
            """Component updates showing `session`."""
            shown = events.view(session)
            return {
                state: session,
                canvas: gr.update(masks=shown.masks, decoder=engine.browser.offer(session)),
                sam_candidates: gr.update(choices=shown.sam_candidates, value=shown.sam_choice, visible=bool(shown.sam_candidates)),
                basam_candidates: gr.update(choices=shown.basam_candidates, value=shown.basam_choice, visible=bool(shown.basam_candidates)),
                status: shown.status,
                message: "",
            }

        def guarded(
            event: Callable[[dict, Progress], tuple[Session, dict]],
            keep_message: bool = False,
            on_error: Optional[dict] = None,
        ):
            """An event function for Gradio: runs `event`, shows the page for the session it
            returns; on a user error shows the message (plus the `on_error` updates) and keeps the
            state as it was. With `keep_message` a success leaves the message line alone (a
            follow-up step must not wipe the error of the step before it)."""

            def run(data: dict, progress=gr.Progress()) -> dict:
                started = time.time()
                try:
                    session, extra = event(data, progress_reporter(progress))
                except Exception as exc:  # a user error or a bug: said in the page, the old state kept
                    text = failure_message(exc, "compare page event", toast=True)
                    return {**((on_error or {}) if isinstance(exc, USER_ERRORS) else {}), message: text}
                shown = {**page(session, data), **extra}
                stamp_timings(shown[canvas], started)
                if keep_message:
                    del shown[message]
                return shown

            return run

        def item_updates(session: Session) -> dict:
            """The frame selector and the window control for the session's image."""
            choices = [(f"frame {k + 1} of {session.frames}", k) for k in range(session.frames)]
            return {**windowing.updates(session),
                    frame: gr.update(choices=choices, value=session.frame, visible=session.frames > 1)}

        def on_upload(data, report):
            session = common.upload_image(engine, data[upload])
            engine.forget(data[state])  # the previous image's files
            negative = data[click_mode] == "negative"
            return session, {canvas: gr.update(value=common.canvas_value(session.canvas_image, negative), masks=common.masks_for_canvas(session)), gt_upload: None,
                             **item_updates(session)}

        def on_example(data, report):
            session = events.set_ground_truth(engine, common.upload_image(engine, data[upload]), data[gt_upload])
            engine.forget(data[state])
            return session, {canvas: gr.update(value=common.canvas_value(session.canvas_image, data[click_mode] == "negative"), masks=common.masks_for_canvas(session)),
                             **item_updates(session)}

        def on_reset(data, report):
            engine.forget(data[state])
            return Session(), {canvas: gr.update(value=None, masks={"url": None, "png": None}), gt_upload: None,
                               **item_updates(Session())}

        def reread(data, **where) -> tuple[Session, dict]:
            """The image read again under another window or at another frame (encoded next)."""
            old = data[state]
            if "window" in where and old.window and where["window"] == old.window["key"]:
                return old, {}  # the window it has (a dropdown reports a pick twice)
            session = window_events.reread(engine, old, **where)
            value = window_events.canvas_value_for(session, data[click_mode] == "negative")
            extra = {canvas: gr.update(value=value, masks=common.masks_for_canvas(session)), **item_updates(session)}
            return session, ({**extra, gt_upload: None} if "frame" in where else extra)

        def on_window(data, report):
            return reread(data, window=windows.requested_window(data[windowing.choice], data[windowing.level],
                                                               data[windowing.width]))

        def on_typed_window(data, report):
            return reread(data, window=windows.requested_window(windows.CUSTOM, data[windowing.level],
                                                               data[windowing.width]))

        def on_dragged_window(data, report):
            return reread(data, window=windows.dragged_window(data[canvas]))

        def on_frame(data, report):
            if data[frame] is None or int(data[frame]) == data[state].frame:
                return data[state], {}
            return reread(data, frame=int(data[frame]))

        def on_prompt(data, report):
            return common.set_prompts(engine, data[state], data[canvas], settings_of(data), report), {}

        def on_settings(data, report):  # also the encoding step after an upload
            return common.compute(engine, data[state], settings_of(data), report), {}

        def on_pick(side: str, radio: gr.Radio):
            def run(data, report):
                return events.pick_candidate(data[state], side, data[radio]), {}

            return run

        def on_gt(data, report):
            session = events.set_ground_truth(engine, data[state], data[gt_upload])
            return common.compute(engine, session, settings_of(data), report), {}

        def on_download(data: dict) -> dict:
            """The chosen side's mask as a file, decoded here at full resolution when the browser
            drew it (a click never makes the server decode; a download does)."""
            try:
                session, shown = data[state], data[canvas]
                if shown and session.image is not None and common.canvas_prompts(shown) != session.prompts:
                    # the page's newest prompts (the browser's record of them may still be on its way)
                    value = {key: item for key, item in shown.items() if key != "decoded"}
                    session = common.set_prompts(engine, session, value, settings_of(data))
                session = common.server_masks(engine, session, why="the download")
                exported = events.export_mask_file(engine, session, data[export_side], data[export_format])
            except Exception as exc:  # never Gradio's error badge: the message line says it
                return {download_file: None, message: failure_message(exc, "mask export")}
            if exported is None:
                return {download_file: None, message: "⚠️ click the image (or draw a box) first: there is no mask yet"}
            return {download_file: str(exported), message: ""}

        def refresh_download(data: dict) -> dict:
            """The Download button is on once there are masks (made by the server or drawn by
            the browser)."""
            session = data[state]
            ready = session.settings is not None and not session.prompts.empty and (
                session.decoded_in_browser or all(session.side(key) is not None and session.side(key).masks is not None
                                                  for key in SIDES)
            )  # fmt: skip
            return {download: gr.update(interactive=ready)}

        def listen(trigger, fn, inputs, **kwargs):
            """A page event (progress on the status line, not over the canvas)."""
            return _listen(trigger, fn, inputs, outputs=page_outputs, concurrency_id="models", show_progress_on=[status], **kwargs)

        # the Download button follows the session (cheap: the file is made when it is pressed)
        state.change(
            refresh_download, common_inputs, [download], trigger_mode="always_last", concurrency_id="export",
            show_progress="hidden", api_visibility="private",
        )

        # an upload shows the image at once, then encodes it (with progress) in a second step;
        # a file that is no image is taken off the upload control, so another can be picked
        encode = guarded(on_settings, keep_message=True)
        item_outputs = [frame, *windowing.outputs]
        uploaded = listen(
            upload.upload, guarded(on_upload, on_error={upload: None}), {*common_inputs, upload, click_mode},
            extra=[canvas, gt_upload, upload, *item_outputs], api_name="upload",
        )
        listen(uploaded.then, encode, common_inputs, api_name="encode_upload")
        listen(upload.clear, guarded(on_reset), common_inputs, extra=[canvas, gt_upload, *item_outputs], api_name="clear_image")
        # a new window or frame: the image is read again (the old one stays until then), then encoded
        window_inputs = {*common_inputs, click_mode, windowing.choice, windowing.level, windowing.width}
        for trigger, handler, inputs, name in (
            (windowing.choice.input, on_window, window_inputs, "window"),
            ([windowing.apply.click, windowing.level.submit, windowing.width.submit], on_typed_window, window_inputs,
             "typed_window"),
            (canvas.set_window, on_dragged_window, {*common_inputs, click_mode, canvas}, "dragged_window"),
            (frame.input, on_frame, {*common_inputs, click_mode, frame}, "frame"),
        ):
            changed = listen(trigger, guarded(handler), inputs, extra=[canvas, gt_upload, *item_outputs], api_name=name,
                             trigger_mode="always_last")
            listen(changed.then, encode, common_inputs, api_name=f"encode_{name}")
        listen(
            gt_upload.upload, guarded(on_gt, on_error={gt_upload: None}), {*common_inputs, gt_upload},
            extra=[gt_upload], api_name="ground_truth",
        )
        listen(gt_upload.clear, guarded(on_gt), {*common_inputs, gt_upload}, api_name="clear_ground_truth")
        if examples is not None:
            loaded = listen(
                examples.load_input_event.then, guarded(on_example), {*common_inputs, upload, gt_upload, click_mode},
                extra=[canvas, *item_outputs], api_name="example",
            )
            listen(loaded.then, encode, common_inputs, api_name="encode_example")
        # prompts: read from the canvas INPUT value; the prompt handler never writes the canvas
        listen(canvas.prompt, guarded(on_prompt), {*common_inputs, canvas}, trigger_mode="always_last", api_name="prompt",
               show_progress="hidden")  # a decode is quick: no progress bar over the status per click
        # undo / clear act on the prompts in the browser, which then fires "prompt"
        undo.click(None, js=UNDO_JS, queue=False, api_visibility="private")
        clear.click(None, js=CLEAR_JS, queue=False, api_visibility="private")
        click_mode.change(None, [click_mode, canvas], canvas, js=SET_NEGATIVE_JS, queue=False, api_visibility="private")
        # settings: checkboxes on user input, dropdowns on change (their input event fires
        # twice per pick), beta on release (not per drag step)
        settings_triggers = [model.change, size.change, nsf.input, bmam.input, multimask.input, beta.release]
        listen(settings_triggers, guarded(on_settings), common_inputs, trigger_mode="always_last", api_name="settings")
        listen(sam_candidates.input, guarded(on_pick("sam", sam_candidates)), {*common_inputs, sam_candidates}, api_name="pick_sam")
        listen(
            basam_candidates.input, guarded(on_pick("basam", basam_candidates)), {*common_inputs, basam_candidates},
            api_name="pick_basam",
        )
        saved = download.click(on_download, {*common_inputs, canvas}, [download_file, message], concurrency_id="export",
                               show_progress="minimal", api_visibility="private")
        saved.then(None, [download_file], None, js=SAVE_FILE_JS, queue=False, api_visibility="private")

        api_trigger.click(
            _segment_endpoint(engine), api_inputs, api_outputs, api_name="segment", concurrency_id="models",
            api_description="Segment an image with vanilla SAM and BA-SAM: both masks as PNG files and an info dict.",
        )
    demo.queue(default_concurrency_limit=concurrency_limit(engine.device))
    return demo


def _listen(trigger, fn, inputs, *, outputs, extra=(), **kwargs):
    """Attach a page event to one trigger or several (kept out of the API docs; gradio_client
    can still call it by its api_name)."""
    return attach(trigger, fn, inputs, [*outputs, *extra], api_visibility="undocumented", **kwargs)


def _examples(upload: gr.File, gt_upload: gr.File) -> Optional[gr.Examples]:
    """The example images with their ground-truth masks, when the assets folder is there."""
    rows = [[str(ASSETS / image), str(ASSETS / mask)] for image, mask in EXAMPLES if (ASSETS / image).is_file() and (ASSETS / mask).is_file()]
    if not rows:
        return None
    return gr.Examples(rows, inputs=[upload, gt_upload], label="Examples (image + ground-truth mask)", example_labels=["camouflage", "lesion"][: len(rows)])


def _api_components(engine: AppEngine) -> tuple[list, list, gr.Button]:
    """Hidden inputs/outputs of the "segment" API endpoint (their labels name its parameters)."""
    with gr.Column(visible=False):
        inputs = [
            gr.File(label="image", type="filepath"),
            gr.Textbox(label="points", value="", info="JSON [[x, y, label], ...], label 1 positive, 0 negative"),
            gr.Textbox(label="box", value="", info="JSON [x0, y0, x1, y1] or empty"),
            gr.Textbox(label="size", value=engine.default_size),
            gr.Checkbox(True, label="nsf"),
            gr.Checkbox(True, label="bmam"),
            gr.Number(DEFAULT_BETA, label="beta"),
            gr.Checkbox(False, label="multimask"),
            gr.Textbox(label="model", value=engine.default_model),
            gr.Textbox(label="window", value="", info="DICOM: 'linear:CENTRE:WIDTH', 'auto', 'full' or empty"),
            gr.Number(1, label="frame", precision=0, info="DICOM: the frame number of a multi-frame file"),
        ]
        outputs = [gr.File(label="sam_mask"), gr.File(label="basam_mask"), gr.JSON(label="info")]
        trigger = gr.Button("segment")
    return inputs, outputs, trigger


def _segment_endpoint(engine: AppEngine) -> Callable:
    """The "segment" API function (its parameter names are the API's)."""

    def segment(
        image: str, points: str = "", box: str = "", size: str = "1024", nsf: bool = True, bmam: bool = True,
        beta: float = DEFAULT_BETA, multimask: bool = False, model: str = "", window: str = "", frame: int = 1,
        progress=gr.Progress(),
    ) -> tuple[str, str, dict]:
        try:
            sam_mask, basam_mask, info = api.segment(
                engine, image, points, box, size, nsf, bmam, beta, multimask, model or None,
                lambda fraction, text: progress(fraction, desc=text), window=window, frame=frame,
            )
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        return str(sam_mask), str(basam_mask), info

    return segment
