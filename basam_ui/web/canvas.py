"""PromptCanvas: an image you prompt with points and boxes, as a configured `gr.HTML`.

Value (a JSON dict, or None when no image is loaded):

    {
      "image": {"url": str, "width": int, "height": int},  # width/height: ORIGINAL pixels
      "points": [{"x": float, "y": float, "label": 1 | 0, "i": int}],  # original px; 1 positive
      "boxes": [{"x0": float, "y0": float, "x1": float, "y1": float, "i": int}],  # x0<x1, y0<y1
      "negative": bool,  # when true a plain click adds a negative point
    }

"i" numbers the prompts in the order they were drawn (across both lists), for undo.
Gestures: click = point (positive; negative with Shift/Alt/Ctrl-click, right-click, or when
"negative" is true); drag (>= 5 CSS px) = box. Coordinates are clamped to the image; a press
outside the image adds nothing. After each new prompt the component sets its own value (so
the prompt shows at once) and fires the custom event "prompt": listen with
`canvas.prompt(fn, inputs=[canvas, ...], trigger_mode="always_last")` and read the prompts
from the canvas INPUT value (a re-submitted always_last call carries stale EventData).
SAM takes one box per prediction: the canvas draws earlier boxes dashed and says that only
the last one is used.

The browser-sent value is display data: the server never opens a file it names.
"""

from __future__ import annotations

from typing import Any, Optional

import gradio as gr

# relative URLs ("gradio_api/file=...") are resolved against the app root, which Gradio knows
# also behind proxies and sub-path mounts; absolute and data: URLs pass through
HTML_TEMPLATE = """
${(resolve => value && value.image ? (() => {
  const boxes = value.boxes || [], points = value.points || [];
  const last = boxes.length ? Math.max(...boxes.map(b => b.i || 0)) : null;
  const r = Math.max(value.image.width, value.image.height) / 120;
  return `
<div class="pc-stage" data-w="${value.image.width}" data-h="${value.image.height}">
  <img class="pc-base" src="${resolve(value.image.url)}" draggable="false" alt="image to prompt"/>
  <svg class="pc-svg" viewBox="0 0 ${value.image.width} ${value.image.height}" preserveAspectRatio="none">
    ${boxes.map(b => `<rect x="${b.x0}" y="${b.y0}" width="${b.x1 - b.x0}" height="${b.y1 - b.y0}" class="${(b.i || 0) === last ? 'pc-box' : 'pc-box pc-unused'}"/>`).join('')}
    ${points.map(p => `<circle cx="${p.x}" cy="${p.y}" r="${r}" class="${p.label ? 'pc-pos' : 'pc-neg'}"/>`).join('')}
    <rect class="pc-draft" x="0" y="0" width="0" height="0" visibility="hidden"/>
  </svg>
</div>
<div class="pc-status">${points.filter(p => p.label).length} positive, ${points.filter(p => !p.label).length} negative points, ${boxes.length} ${boxes.length === 1 ? 'box' : 'boxes'}${boxes.length > 1 ? ' (SAM takes one box: only the last one, solid, is used)' : ''}${value.negative ? ' · clicks add negative points' : ''}</div>`;
})() : `<div class="pc-empty">Upload an image (or pick an example) to start</div>`
)(u => (u.includes(':') || u.startsWith('/')) ? u : ((window.gradio_config && window.gradio_config.root) || '.') + '/' + u)}
"""

CSS_TEMPLATE = """
.pc-stage { position: relative; display: inline-block; line-height: 0; user-select: none;
            touch-action: none; cursor: crosshair; }
.pc-base { display: block; max-width: 100%; max-height: 45vh; width: auto; height: auto; }
.pc-svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; pointer-events: none; overflow: visible; }
.pc-box, .pc-draft { fill: rgba(255, 200, 0, 0.08); stroke: #ffc800; stroke-width: 2px; vector-effect: non-scaling-stroke; }
.pc-unused { fill: none; stroke-dasharray: 3 5; opacity: 0.6; }
.pc-draft { stroke-dasharray: 6 4; }
.pc-pos { fill: #22c55e; stroke: white; stroke-width: 2px; vector-effect: non-scaling-stroke; }
.pc-neg { fill: #ef4444; stroke: white; stroke-width: 2px; vector-effect: non-scaling-stroke; }
.pc-status { font-size: 0.85em; opacity: 0.75; padding-top: 4px; line-height: 1.4; }
.pc-empty { padding: 4em 1em; text-align: center; opacity: 0.6; border: 1px dashed #999; border-radius: 6px; }
"""

JS_ON_LOAD = """
const DRAG_MIN_PX = 5;  // CSS px; a shorter movement is a click
let start = null;       // {x, y, cx, cy, negative}

function toImage(ev) {
  // client (CSS px) -> original image pixels, from the displayed <img> box and the
  // original size in the value (the displayed file is a downscaled copy)
  const img = element.querySelector('img.pc-base');
  const r = img.getBoundingClientRect();
  const W = props.value.image.width, H = props.value.image.height;
  const x = Math.min(Math.max((ev.clientX - r.left) / r.width * W, 0), W);
  const y = Math.min(Math.max((ev.clientY - r.top) / r.height * H, 0), H);
  return {x: Math.round(x * 100) / 100, y: Math.round(y * 100) / 100};
}

function commit(points, boxes) {
  props.value = {...props.value, points, boxes};  // re-renders the prompts at once
  trigger('prompt', {points, boxes, width: props.value.image.width, height: props.value.image.height});
}

element.addEventListener('contextmenu', ev => {
  if (ev.target.closest('.pc-stage')) ev.preventDefault();
});

element.addEventListener('pointerdown', ev => {
  const stage = ev.target.closest('.pc-stage');
  if (!stage || !props.value || !props.value.image) return;
  if (ev.button !== 0 && ev.button !== 2) return;
  ev.preventDefault();
  stage.setPointerCapture(ev.pointerId);
  const p = toImage(ev);
  start = {...p, cx: ev.clientX, cy: ev.clientY,
           negative: ev.button === 2 || ev.shiftKey || ev.altKey || ev.ctrlKey || !!props.value.negative};
});

element.addEventListener('pointermove', ev => {
  if (!start) return;
  const draft = element.querySelector('rect.pc-draft');
  if (!draft) return;
  if (Math.hypot(ev.clientX - start.cx, ev.clientY - start.cy) < DRAG_MIN_PX) {
    draft.setAttribute('visibility', 'hidden');
    return;
  }
  const p = toImage(ev);
  draft.setAttribute('x', Math.min(start.x, p.x)); draft.setAttribute('y', Math.min(start.y, p.y));
  draft.setAttribute('width', Math.abs(p.x - start.x)); draft.setAttribute('height', Math.abs(p.y - start.y));
  draft.setAttribute('visibility', 'visible');
});

function finish(ev, cancelled) {
  if (!start) return;
  const s = start; start = null;
  const draft = element.querySelector('rect.pc-draft');
  if (draft) draft.setAttribute('visibility', 'hidden');
  if (cancelled || !props.value || !props.value.image) return;
  const points = [...(props.value.points || [])];
  const boxes = [...(props.value.boxes || [])];
  // "i" orders prompts across both lists, so an undo can drop the most recent one
  const i = 1 + Math.max(0, ...points.map(q => q.i || 0), ...boxes.map(q => q.i || 0));
  if (Math.hypot(ev.clientX - s.cx, ev.clientY - s.cy) < DRAG_MIN_PX) {
    points.push({x: s.x, y: s.y, label: s.negative ? 0 : 1, i});
  } else {
    const p = toImage(ev);
    if (p.x === s.x || p.y === s.y) return;  // a drag along the image edge: no area, no box
    boxes.push({x0: Math.min(s.x, p.x), y0: Math.min(s.y, p.y), x1: Math.max(s.x, p.x), y1: Math.max(s.y, p.y), i});
  }
  commit(points, boxes);
}
element.addEventListener('pointerup', ev => finish(ev, false));
element.addEventListener('pointercancel', ev => finish(ev, true));
"""

# Client-side handler for the "Click adds" radio: flips the canvas's "negative" flag in the
# browser, so no server round trip can overwrite prompts added meanwhile.
SET_NEGATIVE_JS = "(mode, value) => (value && value.image) ? {...value, negative: mode === 'negative'} : value"


def PromptCanvas(value: Optional[dict[str, Any]] = None, **kwargs: Any) -> gr.HTML:
    """An image with point and box prompts (a configured gr.HTML); value format in the module
    docstring. Extra keyword arguments go to gr.HTML (elem_id, label, ...).

    A factory rather than a gr.HTML subclass: Gradio's ComponentMeta writes a .pyi stub next
    to the source file of every Component subclass at import time.
    """
    return gr.HTML(
        value=value,
        html_template=HTML_TEMPLATE,
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        apply_default_css=False,
        **kwargs,
    )
