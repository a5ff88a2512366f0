// Changing the display window by dragging (both pages; appended to canvas.js, see canvas.py):
// hold W and drag on the image. Right widens the window, left narrows it (x e^(dx/150)); down
// raises the level, up lowers it (by the width at the start per 200 px). While dragging, the
// shown copy is re-mapped in the browser (an approximation: grey levels already clipped stay
// clipped); on release the canvas sets its value's "window_request" {center, width} and fires
// "set_window", and the server reads the image again under that window and encodes it (see
// windows.py). W is no key of the canvas or the pages; the drag starts only with W held, so a
// click, Shift/Alt/Ctrl-click, right-click, a drag for a box, middle-drag and Space-drag keep
// their meaning. The window the value's image carries ({center, width, inverted, label}) is the
// one shown; an image without one (a photo, a colour DICOM, a VOI LUT) takes no drag.
const win = {held: false, drag: null, preview: null, previewFor: null, frame: 0};
const winLine = document.createElement('div');
winLine.className = 'bc-window-line';
statusLine.after(winLine);

function shownWindow() { const v = value(); return v && v.image && v.image.window; }
function winStatus() {
  const w = shownWindow();
  winLine.textContent = w ? `Window: ${win.drag ? `C ${fmt(win.drag.center)}, W ${fmt(win.drag.width)} (release to apply)`
    : w.label} · hold W and drag: right/left width, down/up level` : '';
  root.dataset.window = w ? `${fmt(w.center)}/${fmt(w.width)}` : '';
}
const fmt = x => Number(x).toPrecision(6).replace(/\.?0+$/, '');
const round4 = x => Number(Number(x).toPrecision(4));
hooks.drawn.push(winStatus);
hooks.picture.push(() => (win.preview && win.previewFor === st.display) ? win.preview : null);

function winKey(ev, down) {
  if (!root.isConnected) return;
  if (ev.key.toLowerCase() !== 'w' || ev.altKey || ev.metaKey || ev.ctrlKey) return;
  if (down && typing(ev)) {
    // typing: W is a letter, except in the window control itself (just used) with the pointer
    // over the image, where it can only mean the drag
    const control = ev.target.closest && ev.target.closest('#window-box');
    if (!control || !st.hover) return;
    ev.preventDefault(); ev.target.blur();
  }
  win.held = down && !!shownWindow();
  canvas.classList.toggle('bc-windowing', win.held);
}
document.addEventListener('keydown', ev => winKey(ev, true), true);
document.addEventListener('keyup', ev => winKey(ev, false), true);
window.addEventListener('blur', () => { win.held = false; canvas.classList.remove('bc-windowing'); });

// captured on the root, so neither the prompt gestures nor a page's brush see a window drag
root.addEventListener('pointerdown', ev => {
  const w = shownWindow();
  if (!win.held || !w || ev.button !== 0 || !st.display || ev.target !== canvas) return;
  ev.stopPropagation(); ev.preventDefault();
  canvas.setPointerCapture(ev.pointerId);
  const base = document.createElement('canvas');
  base.width = st.display.naturalWidth; base.height = st.display.naturalHeight;
  const bctx = base.getContext('2d', {willReadFrequently: true});
  bctx.drawImage(st.display, 0, 0);
  win.drag = {cx: ev.clientX, cy: ev.clientY, c0: w.center, w0: w.width, center: w.center, width: w.width,
              inverted: !!w.inverted, base, pixels: bctx.getImageData(0, 0, base.width, base.height)};
  win.preview = base; win.previewFor = st.display;
  draw();
}, true);
root.addEventListener('pointermove', ev => {
  const g = win.drag;
  if (!g) return;
  ev.stopPropagation();
  // four significant digits: what a reader would type
  g.width = Math.max(1, round4(g.w0 * Math.exp((ev.clientX - g.cx) / 150)));
  g.center = round4(g.c0 + (ev.clientY - g.cy) * g.w0 / 200);
  if (!win.frame) win.frame = requestAnimationFrame(() => { win.frame = 0; if (win.drag) remap(win.drag); });
}, true);
function remap(g) {
  // grey g in 0..1 under (c0, w0) shows the value x = (g - 0.5) w0 + c0; under (c, w) that value
  // shows (x - c) / w + 0.5 = a g + b. MONOCHROME1 shows 1 - g: then d' = a d + 1 - a - b.
  const a = g.w0 / g.width, b = 0.5 - 0.5 * a + (g.c0 - g.center) / g.width;
  const [slope, offset] = g.inverted ? [a, 1 - a - b] : [a, b];
  const lut = new Uint8ClampedArray(256);
  for (let i = 0; i < 256; i++) lut[i] = Math.round(255 * (slope * i / 255 + offset));
  const src = g.pixels.data, out = new ImageData(g.pixels.width, g.pixels.height), dst = out.data;
  for (let i = 0; i < src.length; i += 4) {
    dst[i] = lut[src[i]]; dst[i + 1] = lut[src[i + 1]]; dst[i + 2] = lut[src[i + 2]]; dst[i + 3] = 255;
  }
  g.base.getContext('2d').putImageData(out, 0, 0);
  draw();
}
function endWindowDrag(ev, cancelled) {
  const g = win.drag;
  if (!g) return;
  ev.stopPropagation();
  win.drag = null;
  const moved = Math.hypot(ev.clientX - g.cx, ev.clientY - g.cy) >= DRAG_MIN_PX;
  const v = value();
  if (cancelled || !moved || !v) { win.preview = null; draw(); return; }
  remap(g);  // the preview stays until the server's image under the new window has loaded
  props.value = {...v, window_request: {center: g.center, width: g.width}};
  trigger('set_window', {center: g.center, width: g.width});
}
root.addEventListener('pointerup', ev => endWindowDrag(ev, false), true);
root.addEventListener('pointercancel', ev => endWindowDrag(ev, true), true);
root.bc.window = {state: () => ({held: win.held, dragging: !!win.drag, previewing: !!win.preview && win.previewFor === st.display}),
                  hold: held => { win.held = held && !!shownWindow(); }};
