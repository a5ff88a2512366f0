"""The annotate page: its layout and the wiring of its events to `events.py` and `editing.py`
(what the events do) and `view.py` (what is shown). The engine, the project and the prefetcher are
captured by the event functions; each browser session's state is an `AnnotateState` in
gr.State, whose delete callback gives up the session's claim."""

import time
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from ...vocabulary import (
    DATASET_FORMAT_LABELS, DATASET_FORMATS, DEFAULT_BETA, DEFAULT_SIDE, MAX_BETA, SIDE_LABELS, SIDES,
)  # fmt: skip
from ..common import events as common
from ..common import windows
from ..common.auth import login_name
from ..common.canvas import PromptCanvas
from ..common.engine import AppEngine
from ..common.page import (
    BASE_CSS, RANDOM_WEIGHTS_WARNING, concurrency_limit, failure_message, progress_reporter, stamp_timings,
    listen as attach,
)  # fmt: skip
from ..common.session import USER_ERRORS, Settings
from ..common.window_control import window_control
from . import editing, proposals_ui, review_ui
from . import events as annotate
from . import view as annotate_view
from .events import AnnotateState
from .prefetch import Prefetcher
from .proposals import ProposalService
from .review import visible_objects

HERE = Path(__file__).resolve().parent
NAME_KEY = "basam-ui-annotator"  # the browser's localStorage entry for the annotator's name
# the "Enter commits" radio -> the canvas shows that side (annotate.js listens for "bc-side")
SIDE_VIEW_JS = ("(side) => { document.querySelector('#canvas .bc-root')?.dispatchEvent("
                f"new CustomEvent('bc-side', {{detail: side === '{SIDE_LABELS['sam']}' ? 'sam' : 'basam'}})); }}")
EXPORT_CHOICES = {DATASET_FORMAT_LABELS[fmt]: fmt for fmt in DATASET_FORMATS}  # the export radio: label -> format
KEYS_HELP = (
    "**Keys:** 1–9 class · Enter commit the mask as an object · S commit SAM's mask instead of BA-SAM's "
    "(the view follows) · Delete delete the selected object · D / → next image · A / ← previous · "
    "Shift+Enter mark done and open the next to do · B brush · E eraser (press again: back to prompts) · "
    "[ / ] brush size · C cancel an encode · G (a slide) take the current view as the field · "
    "P show/hide proposals (click one, then a digit or Enter accepts it, X rejects it) · "
    "in review mode: Y accept · Shift+Y accept the rest · R reject (type why, Enter) · "
    "plus the canvas keys: N negative clicks · Z undo prompt · Esc clear prompts · "
    "V view · F fit · 0 1:1 · + / − zoom. Keys do nothing while you type in a text field."
)
CSS = BASE_CSS + """
#ann-keys p { font-size: 0.85em; opacity: 0.8; }
.bc-ann-line { font-size: 0.85em; opacity: 0.8; }
#ann-images { max-height: 60vh; overflow: auto; }
"""


def build_annotate_app(engine: AppEngine, project, prefetcher: Optional[Prefetcher] = None,
                       proposals: Optional[ProposalService] = None) -> gr.Blocks:  # fmt: skip
    """The annotate page for `project` (a basam_ui.project.Project), queued; `proposals` computes
    proposals in the prefetcher's idle time (made and added to it when not given)."""
    prefetcher = prefetcher or Prefetcher(engine)
    if proposals is None:
        proposals = ProposalService(engine, project, wake=prefetcher.wake)
        prefetcher.add_task(proposals)
    labels = project.labels()
    with gr.Blocks(title=f"basam-ui: annotate {project.root.name}", analytics_enabled=False,
                   delete_cache=(1800, 3600)) as demo:
        state = gr.State(AnnotateState(), delete_callback=lambda st: annotate.close(engine, project, st))
        gr.Markdown(f"## basam-ui — annotating `{project.root}`\nDatabase: `{project.db_path}` (saved as you go)")
        gr.Markdown(RANDOM_WEIGHTS_WARNING, elem_id="weights-warning", visible=engine.random_weights)
        message = gr.Markdown("", elem_id="message")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                name = gr.Textbox(label="Annotator", placeholder="your name (kept by this browser)", elem_id="ann-name")
                progress = gr.Markdown("", elem_id="ann-progress")
                with gr.Row():
                    prev_btn = gr.Button("← Prev (A)", elem_id="ann-prev", size="sm")
                    next_btn = gr.Button("Next (D) →", elem_id="ann-next", size="sm")
                todo_btn = gr.Button("Next to do", elem_id="ann-todo", size="sm")
                with gr.Row():
                    done_btn = gr.Button("Done ✓ (Shift+Enter)", elem_id="ann-done", size="sm", variant="primary")
                    skip_btn = gr.Button("Skip", elem_id="ann-skip", size="sm")
                images = gr.Dataframe(
                    headers=["image", "status", "objects"], datatype=["str", "str", "number"],
                    interactive=False, elem_id="ann-images", label="Images (click one to open it; the 200 around the open one)", wrap=True,
                    column_widths=["52%", "34%", "14%"],
                )
            with gr.Column(scale=3):
                canvas = PromptCanvas(None, extensions=[HERE / "annotate.js", HERE / "fields.js", windows.DRAG_SCRIPT,
                                                        HERE / "proposals.js", HERE / "review.js"],
                                      objects=None, proposals=None, elem_id="canvas",
                                      empty="No image to show: the line under the canvas says why")
                gr.Markdown(KEYS_HELP, elem_id="ann-keys")
                status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=1, min_width=260):
                review_controls = review_ui.panel(project)
                label = gr.Radio(annotate_view.class_choices(labels), value=annotate_view.class_choice(labels, labels[0]),
                                 label="Class (1–9)", elem_id="ann-class")
                with gr.Row():
                    new_label = gr.Textbox(placeholder="new class", show_label=False, elem_id="ann-new-class", scale=3)
                    add_label = gr.Button("Add", elem_id="ann-add-class", size="sm", scale=1)
                side_order = [DEFAULT_SIDE, *(k for k in SIDES if k != DEFAULT_SIDE)]
                side = gr.Radio([SIDE_LABELS[k] for k in side_order], value=SIDE_LABELS[DEFAULT_SIDE],
                                label="Enter commits the mask of (S)", elem_id="ann-side")
                with gr.Row():
                    commit_btn = gr.Button("Commit (Enter)", elem_id="ann-commit", variant="primary", size="sm")
                    undo_btn = gr.Button("Undo last commit", elem_id="ann-undo", size="sm")
                windowing = window_control()  # shown for images with display windows (monochrome DICOM)
                cancel_btn = gr.Button("Cancel encode (C)", elem_id="ann-cancel", size="sm")
                objects = gr.Radio([], label="Objects (select one)", elem_id="ann-objects")
                with gr.Row():
                    relabel_btn = gr.Button("Set class", elem_id="ann-relabel", size="sm")
                    reopen_btn = gr.Button("Reopen", elem_id="ann-reopen", size="sm")
                    delete_btn = gr.Button("Delete (Del)", elem_id="ann-delete", size="sm", variant="stop")
                with gr.Row():
                    keep_btn = gr.Button("Changed file: keep objects", elem_id="ann-keep", size="sm")
                    drop_btn = gr.Button("drop them", elem_id="ann-drop", size="sm")
                proposal_controls = proposals_ui.panel(proposals)
                with gr.Accordion("Model settings", open=False):
                    model = gr.Dropdown(engine.model_types, value=engine.default_model, label="Model", elem_id="model",
                                        interactive=len(engine.model_types) > 1)
                    size = gr.Dropdown(engine.size_choices(), value=engine.default_size, label="Inference size S", elem_id="size")
                    with gr.Row():
                        nsf = gr.Checkbox(True, label="NSF", elem_id="nsf")
                        bmam = gr.Checkbox(True, label="BM-AM", elem_id="bmam")
                    beta = gr.Slider(0, MAX_BETA, value=DEFAULT_BETA, step=0.05, label="β (BM-AM slope)", elem_id="beta")
        with gr.Accordion("Report", open=False):
            report = gr.Markdown("", elem_id="ann-report")
            report_btn = gr.Button("Refresh the report", elem_id="ann-report-refresh", size="sm")
        with gr.Row():
            export_format = gr.Radio(list(EXPORT_CHOICES), value=next(iter(EXPORT_CHOICES)), label="Export as",
                                     elem_id="ann-export-format")
            polygons = gr.Checkbox(False, label="COCO polygons instead of RLE", elem_id="ann-polygons")
            all_images = gr.Checkbox(False, label="every image with objects (not only done ones)", elem_id="ann-all")
            export_btn = gr.Button("Export (zip)", elem_id="ann-export")
            export_file = gr.File(label="Download", elem_id="ann-export-file", interactive=False)

        settings_inputs = [model, size, nsf, bmam, beta]
        light = [state, canvas, status, message]
        full = light + [images, progress, objects, side, *windowing.outputs]

        def settings_of(data: dict) -> Settings:
            return Settings(data[model], data[size], data[nsf], data[bmam], data[beta], False)

        def shown(st: AnnotateState, everything: bool) -> dict:
            """Component updates showing `st` (the list, progress and objects too with `everything`)."""
            records = visible_objects(project, st)
            masks = common.masks_for_canvas(st.session)
            out = {state: st, canvas: gr.update(masks=masks, objects=annotate_view.objects_layer(st, records),
                                                decoder=engine.browser.offer(st.session)),
                   status: annotate_view.status_text(project, st), message: ""}
            if everything:
                out.update({
                    images: annotate_view.image_rows(project, st), progress: annotate_view.progress_text(project),
                    objects: gr.update(choices=annotate_view.object_choices(records), value=st.selected),
                    side: SIDE_LABELS[st.side], **windowing.updates(st.session),
                })
            return out

        def guarded(event: Callable[..., tuple[AnnotateState, dict]], everything: bool = True, prefetch: bool = False,
                    keep_message: bool = False):
            """An event function for Gradio: runs `event(st, data, report)` marked busy for the
            prefetcher, shows the state it returns; a failure becomes the page's message. With
            `keep_message` a success leaves the message line alone (the encode that follows a
            move must not wipe the move's "this is the last image")."""

            def run(data: dict, request: gr.Request, progress_bar=gr.Progress()) -> dict:
                started = time.time()
                with prefetcher.busy():
                    # the name as the page shows it now: what was typed wins over any restored one
                    st = annotate.start(data[state], login_name(request) or data.get(name))
                    try:
                        st, extra = event(st, data, progress_reporter(progress_bar))
                    except Exception as exc:  # a user error or a bug: said in the page, the state kept
                        return {message: failure_message(exc, "annotate page event")}
                    annotate.touch(project, st)
                    out = with_extra(shown(st, everything), extra)
                stamp_timings(out[canvas], started)
                if keep_message:
                    del out[message]
                if prefetch:
                    schedule_prefetch(st, settings_of(data))
                return out

            return run

        def schedule_prefetch(st: AnnotateState, settings: Settings) -> None:
            """Encode the image "next to do" would hand this session, when the server is idle."""
            if st.image_id is None:
                return
            following = project.next_todo(st.holder, st.annotator, after=st.image_id, claim=False)
            if following is None or following.id == st.image_id:
                return
            try:
                resolution, configs = annotate.settings_for(engine, settings)
            except USER_ERRORS:
                return
            prefetcher.request(settings.model, str(project.file_path(following)), resolution, configs,
                               frame=following.frame)

        def with_extra(base: dict, extra: dict) -> dict:
            """`base` updated by an event's own updates (the canvas's merged, prop by prop)."""
            out = {**base, **extra}
            if canvas in extra:
                out[canvas] = {**base[canvas], **extra[canvas]}
            return out

        def fresh_canvas(st: AnnotateState) -> dict:
            return {canvas: gr.update(value=editing.fresh_value(st))}

        def field_size(st: AnnotateState, data: dict) -> dict:
            """A slide opened with the page's S untouched: S for fields on this device (a GPU's)."""
            if st.session.fields is not None and data.get(size) == engine.default_size != engine.default_field_size:
                return {size: engine.default_field_size}
            return {}

        def moved(move: Callable[[AnnotateState, dict], AnnotateState]):
            def event(st, data, report):
                st = move(st, data)
                return st, {**fresh_canvas(st), **field_size(st, data)}

            return event

        def cancellable(model_work: Callable):
            """An event whose encode the Cancel button (C) stops: run with this session's cancel flag."""
            def event(st, data, report):
                with engine.encoding(st.holder) as flag:
                    return model_work(st, data, report, flag)

            return event

        def on_load(data, request: gr.Request):
            login = login_name(request)
            st = annotate.start(AnnotateState(), login or data[name] or "")  # the name restored or typed
            try:
                with prefetcher.busy():
                    st = annotate.first_image(engine, project, st)
                # a fresh page's size is the default: a slide opened first gets the fields' own
                out = with_extra(shown(st, True), {**fresh_canvas(st), **field_size(st, {size: engine.default_size})})
                out[report] = report_text()
            except Exception as exc:  # one bad file or a database error: said in the page, never a red badge
                return {state: st, message: failure_message(exc, "page load")}
            # the name field is the browser's (restored from its storage when the page appears,
            # then what is typed); the server sets it only to the login name
            out[name] = gr.update(value=login, interactive=False) if login else gr.update()
            return out

        @cancellable
        def encode_event(st, data, report, flag):
            return annotate.encode(engine, st, settings_of(data), report, flag), {}

        def report_text() -> str:
            from ...project.report import project_figures, report_markdown

            return report_markdown(project_figures(project), "Project report").replace("# Project report\n", "", 1)

        def on_image_select(data, evt: gr.SelectData, request: gr.Request):
            path = str((evt.row_value or [""])[0]).removeprefix(annotate_view.OPEN_MARK)

            def event(st, _data, report):
                image = annotate.image_named(project, path)
                return moved(lambda s, d: annotate.open_image(engine, project, s, image.id))(st, _data, report)

            return guarded(event)(data, request)

        def on_export(data: dict) -> dict:
            from ...project.export import export_zip

            fmt = EXPORT_CHOICES.get(data[export_format], DATASET_FORMATS[0])
            folder = engine.new_folder("export")
            try:
                path, result = export_zip(project, folder / f"{project.root.name or 'project'}-{fmt}.zip", fmt,
                                          polygons=bool(data[polygons]), all_images=bool(data[all_images]))
            except Exception as exc:  # a full disk, a damaged database: said in the page
                return {message: failure_message(exc, "export")}
            note = "" if result.objects else "⚠️ the export holds no objects: mark images done, or tick 'every image with objects'"
            return {export_file: str(path), message: note}

        def on_add_label(data: dict) -> dict:
            try:
                names = editing.add_label(project, data[new_label])
            except Exception as exc:
                return {message: failure_message(exc, "adding a class")}
            choice = annotate_view.class_choice(names, data[new_label].strip())
            return {label: gr.update(choices=annotate_view.class_choices(names), value=choice), new_label: "", message: ""}

        def listen(trigger, fn, inputs, outputs, **kwargs):
            """A page event (one trigger or several) on the model queue, kept out of the API docs."""
            options = {"concurrency_id": "models", "show_progress": "minimal", "api_visibility": "private", **kwargs}
            return attach(trigger, fn, {state, name, *settings_inputs, *inputs}, outputs, **options)

        everything = full + [canvas, size]
        # the remembered name goes into the field in the browser, at once; the server never
        # writes it back (a name typed before the load's answer arrives would be wiped)
        restore = f"(n) => n || localStorage.getItem('{NAME_KEY}') || ''"
        demo.load(None, [name], [name], js=restore, api_visibility="private")
        loaded = demo.load(on_load, {name}, full + [name, report, size], js=restore)
        encode = guarded(encode_event, everything=False, prefetch=True, keep_message=True)
        model_events = [loaded.then(encode, {state, *settings_inputs}, light, concurrency_id="models",
                                    show_progress="minimal")]  # fmt: skip

        def chain(trigger, event_fn, inputs=(), outputs=everything):  # the event, then the encode of its image
            event = listen(trigger, guarded(event_fn), inputs, outputs)
            model_events.append(event.then(encode, {state, *settings_inputs}, light, concurrency_id="models",
                                           show_progress="minimal"))  # fmt: skip

        chain(next_btn.click, moved(lambda s, d: annotate.go(engine, project, s, "next")))
        chain(prev_btn.click, moved(lambda s, d: annotate.go(engine, project, s, "prev")))
        chain(todo_btn.click, moved(lambda s, d: annotate.go(engine, project, s, "todo")))
        chain(done_btn.click, moved(lambda s, d: annotate.mark(engine, project, s, "done")))
        chain(keep_btn.click, moved(lambda s, d: annotate.resolve_changed(engine, project, s, True)))
        chain(drop_btn.click, moved(lambda s, d: annotate.resolve_changed(engine, project, s, False)))
        chain(skip_btn.click, moved(lambda s, d: annotate.mark(engine, project, s, "skipped")))
        select = images.select(on_image_select, {state, name, *settings_inputs}, everything, concurrency_id="models",
                               show_progress="minimal", api_visibility="private")
        model_events.append(select.then(encode, {state, *settings_inputs}, light, concurrency_id="models",
                                        show_progress="minimal"))  # fmt: skip

        model_events.append(listen(canvas.prompt, guarded(cancellable(
            lambda st, d, r, flag: (editing.set_prompts(engine, st, d[canvas], settings_of(d), r, flag), {})),
            everything=False), [canvas], light, trigger_mode="always_last"))
        # the side as the page shows it when Enter is pressed: a quick S + Enter sends two events
        # that can reach the queue in either order
        def on_commit(st, d, r):  # the next object starts with no prompts, no strokes
            st = editing.commit(engine, project, editing.switch_side(st, d[side]) if d[side] else st, d[canvas],
                                d[label], settings_of(d), r)  # fmt: skip
            return st, fresh_canvas(st)

        listen(commit_btn.click, guarded(on_commit), [canvas, label, side], everything)
        # the side lives in the page until Enter (the commit reads it); the canvas follows it
        side.change(None, [side], None, js=SIDE_VIEW_JS, queue=False, api_visibility="private")
        listen(undo_btn.click, guarded(lambda st, d, r: (editing.undo(project, st), {})), [], full)
        listen(objects.input, guarded(lambda st, d, r: (editing.select_object(st, d[objects]), {})), [objects], full)
        listen(relabel_btn.click, guarded(lambda st, d, r: (editing.relabel(project, st, d[label]), {})), [label], full)
        listen(delete_btn.click, guarded(lambda st, d, r: (editing.delete_selected(project, st), {})), [], full)

        def on_reopen(st, d, r):
            st, value = editing.reopen_selected(engine, project, st, settings_of(d), r)
            names = project.labels()  # its class is selected, so Enter keeps it
            chosen = annotate_view.class_choice(names, project.object(st.reopened).label)
            return st, {canvas: gr.update(value=value), label: gr.update(choices=annotate_view.class_choices(names), value=chosen)}

        listen(reopen_btn.click, guarded(on_reopen), [], everything + [label])

        def window_event(requested: Callable[[dict], str]):
            """A new display window for the open image: read again (prompts kept), then encoded."""
            def event(st, d, r):
                st, value = annotate.set_window(engine, st, requested(d))
                return st, ({canvas: gr.update(value=value), **windowing.updates(st.session)} if value is not None else {})

            return guarded(event, everything=False)

        window_outputs = light + windowing.outputs
        for trigger, requested, inputs in (
            (windowing.choice.input, lambda d: windows.requested_window(
                d[windowing.choice], d[windowing.level], d[windowing.width]), windowing.outputs[1:]),
            ([windowing.apply.click, windowing.level.submit, windowing.width.submit], lambda d: windows.requested_window(
                windows.CUSTOM, d[windowing.level], d[windowing.width]), windowing.outputs[1:]),
            (canvas.set_window, lambda d: windows.dragged_window(d[canvas]), [canvas]),
        ):
            changed = listen(trigger, window_event(requested), inputs, window_outputs, trigger_mode="always_last")
            changed.then(encode, {state, *settings_inputs}, light, concurrency_id="models", show_progress="minimal")
        proposals_ui.wire(proposal_controls, engine=engine, project=project, service=proposals, state=state, canvas=canvas,
                          label=label, settings_inputs=settings_inputs, settings_of=settings_of, guarded=guarded,
                          listen=listen, everything=everything, light=light)
        review_ui.wire(review_controls, engine=engine, project=project, chain=chain, moved=moved, everything=everything)
        settings_triggers = [model.change, size.change, nsf.input, bmam.input, beta.release]
        model_events.append(listen(settings_triggers, guarded(encode_event, everything=False, prefetch=True), [], light,
                                   trigger_mode="always_last"))  # fmt: skip

        def on_cancel(data: dict) -> dict:
            st = data[state]
            running = bool(st is not None and st.holder and engine.cancel(st.holder))
            return {message: "Encode cancelled: it stops at its next block and nothing of it is kept." if running
                    else "No encode is running."}  # fmt: skip

        # its own queue, so it runs while an encode holds the models' one; `cancels` drops the
        # model events still waiting, the flag stops the running one
        cancel_btn.click(on_cancel, {state}, [message], concurrency_id="cancel", api_visibility="private",
                         cancels=model_events)  # fmt: skip
        listen(name.change, guarded(lambda st, d, r: (annotate.set_annotator(project, st, d[name]), {}), everything=False),
               [name], light)
        name.change(None, [name], None, js=f"(n) => {{ localStorage.setItem('{NAME_KEY}', n || ''); }}",
                    queue=False, api_visibility="private")
        attach([add_label.click, new_label.submit], on_add_label, {new_label}, [label, new_label, message],
               api_visibility="private")
        def on_report() -> dict:
            try:
                return {report: report_text(), message: ""}
            except Exception as exc:
                return {message: failure_message(exc, "report")}

        report_btn.click(on_report, None, [report, message], api_visibility="private")
        export_btn.click(on_export, {export_format, polygons, all_images}, [export_file, message],
                         concurrency_id="export", api_visibility="private")
    demo.queue(default_concurrency_limit=concurrency_limit(engine.device))
    return demo

