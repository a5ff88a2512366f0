"""The window control both pages show for an image with display windows (monochrome DICOM): the
file's windows, auto and full range, a typed level and width, and the drag help (Gradio
components; what they do is `windows.py`). Hidden for images without windows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from . import windows
from .session import Session


@dataclass
class WindowControl:
    """The components: `box` (shown only for images with windows), `choice` (the window:
    `windows.control_choices`), `level` and `width` (typed; Enter or `apply`), `help`."""

    box: Any
    choice: Any
    level: Any
    width: Any
    apply: Any
    help: Any

    @property
    def outputs(self) -> list:
        return [self.box, self.choice, self.level, self.width]

    def updates(self, session: Session) -> dict:
        """The components showing `session`'s window (hidden without one)."""
        record = session.window or {}
        shown = bool(session.windows)
        return {
            self.box: gr.update(visible=shown),
            self.choice: gr.update(choices=windows.control_choices(session), value=windows.control_value(session)),
            self.level: gr.update(value=record.get("center")),
            self.width: gr.update(value=record.get("width")),
        }


def window_control() -> WindowControl:
    """Build the control where the caller's layout is (inside gr.Blocks)."""
    with gr.Group(visible=False, elem_id="window-box") as box:
        choice = gr.Dropdown([], value=None, label="Window", elem_id="window", interactive=True)
        with gr.Row():
            level = gr.Number(None, label="Level (centre)", elem_id="window-level", min_width=90)
            width = gr.Number(None, label="Width", elem_id="window-width", min_width=90)
        apply = gr.Button("Apply level / width", elem_id="window-apply", size="sm")
        help_text = gr.Markdown(windows.DRAG_HELP, elem_id="window-help")
    return WindowControl(box, choice, level, width, apply, help_text)
