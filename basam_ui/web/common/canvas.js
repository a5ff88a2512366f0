// The prompt canvas (js_on_load of a gr.HTML; `element`, `props`, `trigger`, `watch` are
// given by Gradio). The template is a fixed shell, so Gradio never rebuilds the <canvas>;
// everything inside is drawn here. See canvas.py for the value and `masks` formats.
//
// Page extensions (scripts appended to this one, see canvas.py) add to it through `hooks`,
// not by replacing its functions:
//   hooks.layers: fn(v) drawn after the image and the masks, under the prompts (the context
//     is in screen space, CSS px; `imageSpace()` switches to image pixels);
//   hooks.drawn: fn(v) after each draw (e.g. a status line of the extension's own);
//   hooks.picture: fn(v) -> an image (or canvas) to draw instead of the loaded one, or null
//     (e.g. a preview of the image under another display window);
//   hooks.image: fn(v) drawn over the image, in image space, under the masks (tiles.js draws
//     a tiled image's tiles there, over the display copy);
//   hooks.commit: fn(next, previous) -> the value to send, before each prompt change is sent
//     (e.g. fields.js starts a new field for a prompt outside the current one);
//   hooks.prompt: fn(v, t0) when the prompts changed (v: the new value, t0: the gesture's
//     time), before the "prompt" event is sent: returning true takes the change over (the
//     extension triggers "prompt" itself later; decode.js decodes the click first);
//   hooks.masks: fn(m) when a `masks` value arrives: returning true means it is handled (or
//     stale) and the canvas leaves its masks as they are.
// They may read `st`, `ctx`, `value()`, `toCanvas`, `toImage` and call `draw()`, `setView()`.
const root = element.querySelector('.bc-root');
const stage = root.querySelector('.bc-stage');
const canvas = root.querySelector('canvas.bc-canvas');
const ctx = canvas.getContext('2d');
const statusLine = root.querySelector('.bc-status');
const VIEWS = ['basam', 'sam', 'diff', 'swipe'];
const SAM = [30, 136, 229], BASAM = [255, 143, 0], BOTH = [245, 245, 245];
const DRAG_MIN_PX = 5, POINT_R = 6, SWIPE_GRAB_PX = 10, MAX_SCALE = 32;
const st = {
  view: 'basam', scale: 1, tx: 0, ty: 0, fitted: false, key: null, W: 0, H: 0,
  display: null, full: null, fullState: 'none', fullTries: 0,
  masks: null, field: null, layers: new Map(), swipe: 0.5,
  drag: null, space: false, hover: false, pending: new Map(), latency: [], drawn: 0, maskTicket: 0,
};

const hooks = {layers: [], drawn: [], picture: [], image: [], commit: [], prompt: [], masks: []};

const resolve = u => (u.includes(':') || u.startsWith('/')) ? u
  : ((window.gradio_config && window.gradio_config.root) || '.') + '/' + u;
const value = () => (props.value && props.value.image) ? props.value : null;
const dpr = () => window.devicePixelRatio || 1;
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

// -- view transform: screen (CSS px in the canvas) = image px * scale + (tx, ty) ----------
function size() { return [canvas.clientWidth, canvas.clientHeight]; }
function fitScale() { const [cw, ch] = size(); return Math.min(cw / st.W, ch / st.H); }
function snap() {  // whole device pixels, so 1:1 shows each image pixel on one screen pixel
  const d = dpr(); st.tx = Math.round(st.tx * d) / d; st.ty = Math.round(st.ty * d) / d;
}
function fit() {
  if (!st.W) return;
  const [cw, ch] = size();
  st.scale = fitScale(); st.tx = (cw - st.W * st.scale) / 2; st.ty = (ch - st.H * st.scale) / 2;
  snap(); st.fitted = true; draw();
}
function zoomTo(scale, sx, sy) {  // keep the image point under (sx, sy) where it is
  if (!st.W) return;
  const next = clamp(scale, Math.min(fitScale(), 1 / dpr()) / 4, MAX_SCALE);
  st.tx = sx - (sx - st.tx) * next / st.scale; st.ty = sy - (sy - st.ty) * next / st.scale;
  st.scale = next; snap(); st.fitted = false; draw();
}
function zoomCentre(factor) { const [cw, ch] = size(); zoomTo(st.scale * factor, cw / 2, ch / 2); }
function toImage(ev) {
  const r = canvas.getBoundingClientRect();
  return {x: (ev.clientX - r.left - st.tx) / st.scale, y: (ev.clientY - r.top - st.ty) / st.scale};
}
function toClient(x, y) {
  const r = canvas.getBoundingClientRect();
  return {x: r.left + st.tx + x * st.scale, y: r.top + st.ty + y * st.scale};
}

// -- images: the display copy at once, the full-resolution copy when the zoom needs it ----
function loadImage(v) {
  // the same picture under another display window (keep_view): keep the zoom, and show the old
  // copy until the new one has loaded
  const keep = !!v.image.keep_view && !!st.display && st.W === v.image.width && st.H === v.image.height;
  st.key = v.image.url; st.W = v.image.width; st.H = v.image.height;
  if (!keep) { st.display = null; st.fitted = false; }
  st.full = null; st.fullState = 'none'; st.fullTries = 0;
  st.masks = null; st.field = null; dropLayers(); st.pending.clear();
  const img = new Image();
  img.onload = () => {
    if (st.key !== v.image.url) return;
    st.display = img; if (keep) draw(); else fit(); root.dataset.ready = '1';
  };
  img.src = resolve(v.image.url);
  root.dataset.ready = '0'; root.dataset.w = st.W; root.dataset.h = st.H;
}
function needsFull() {  // a tiled image has no full-resolution copy: its tiles are drawn instead
  const v = value();
  return !!(v && v.image.full) && st.display && st.scale * dpr() > st.display.naturalWidth / st.W * 1.001;
}
function loadFull() {
  const v = value();
  if (!v || !v.image.full || st.fullState === 'loading' || st.fullState === 'ready') return;
  const key = st.key, img = new Image();
  st.fullState = 'loading';
  img.onload = () => { if (st.key === key) { st.full = img; st.fullState = 'ready'; draw(); } };
  img.onerror = () => {  // written in the background after the upload: try again shortly
    if (st.key !== key) return;
    st.fullState = ++st.fullTries < 60 ? 'none' : 'failed';
    setTimeout(draw, 500);
  };
  img.src = resolve(v.image.full);
}

// -- masks: one 4-bit palette PNG at the original size; pixel value v = sam | basam << 1 |
// sam edge << 2 | basam edge << 3. Each view recolours its palette (a new PLTE + tRNS chunk)
// and lets the browser decode it: no per-pixel work in JavaScript.
const CRC = (() => { const t = new Uint32Array(256); for (let n = 0; n < 256; n++) { let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1; t[n] = c >>> 0; } return t; })();
function chunk(type, data) {
  const out = new Uint8Array(12 + data.length), dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  let c = 0xFFFFFFFF;
  for (let i = 4; i < 8 + data.length; i++) c = CRC[(c ^ out[i]) & 0xFF] ^ (c >>> 8);
  dv.setUint32(8 + data.length, (c ^ 0xFFFFFFFF) >>> 0);
  return out;
}
function palette(kind) {  // 16 x RGBA for one view's overlay
  return Array.from({length: 16}, (_, v) => {
    if (kind === 'diff') {
      const c = v & 3;
      return c === 1 ? [...SAM, 210] : c === 2 ? [...BASAM, 210] : c === 3 ? [...BOTH, 150] : [0, 0, 0, 0];
    }
    const [inside, edge, rgb] = kind === 'sam' ? [1, 4, SAM] : [2, 8, BASAM];
    return v & edge ? [...rgb, 255] : v & inside ? [...rgb, 102] : [0, 0, 0, 0];
  });
}
function recolor(png, kind) {  // the PNG bytes with `kind`'s palette and transparency
  const colors = palette(kind), dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const parts = [png.subarray(0, 8)];
  for (let pos = 8; pos < png.length;) {
    const len = dv.getUint32(pos), type = String.fromCharCode(...png.subarray(pos + 4, pos + 8));
    if (type === 'PLTE') {
      parts.push(chunk('PLTE', Uint8Array.from(colors.flatMap(c => c.slice(0, 3)))),
                 chunk('tRNS', Uint8Array.from(colors.map(c => c[3]))));
    } else if (type !== 'tRNS') parts.push(png.subarray(pos, pos + 12 + len));
    pos += 12 + len;
  }
  return createImageBitmap(new Blob(parts, {type: 'image/png'}));
}
const kindsFor = view => view === 'swipe' ? ['sam', 'basam'] : [view];
function ensureLayers(kinds) {  // start decoding the layers a view needs; true when all are there
  const m = st.masks;
  if (!m) return true;
  let ready = true;
  for (const kind of kinds) {
    if (st.layers.has(kind)) { if (!(st.layers.get(kind) instanceof ImageBitmap)) ready = false; continue; }
    ready = false;
    st.layers.set(kind, recolor(m.bytes, kind).then(bitmap => {
      if (st.masks === m) { st.layers.set(kind, bitmap); draw(); } else bitmap.close();
    }));
  }
  return ready;
}
function dropLayers() {  // free the decoded layers of the masks being replaced
  for (const layer of st.layers.values()) if (layer instanceof ImageBitmap) layer.close();
  st.layers = new Map();
}
async function setMasks(m) {
  // the masks prop last set wins, even when an earlier one finishes decoding after it
  const ticket = ++st.maskTicket;  // (an earlier answer still decoding is dropped either way)
  if (m && m.url === st.key) st.field = m.field || null;  // a slide's field, as the server made it
  if (hooks.masks.some(take => take(m))) return;
  if (!m || !m.png) {
    st.masks = null; dropLayers(); draw(); st.drawn++; root.dataset.drawn = st.drawn; return;
  }
  if (m.url !== st.key) return;  // for an image no longer shown
  const received = performance.now();
  const binary = atob(m.png.slice(m.png.indexOf(',') + 1)), bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const next = {...m, bytes}, kinds = kindsFor(st.view);
  const bitmaps = await Promise.all(kinds.map(kind => recolor(bytes, kind)));
  if (m.url !== st.key || ticket !== st.maskTicket) return;
  dropLayers();
  st.masks = next; st.layers = new Map(kinds.map((kind, k) => [kind, bitmaps[k]]));
  draw();
  const pending = st.pending.get(m.rev);
  if (pending) {
    st.pending.delete(m.rev);
    const done = performance.now(), origin = performance.timeOrigin, t = m.timings || {};
    st.latency.push({
      rev: m.rev, total: done - pending.t0,
      to_server: t.start - (origin + pending.t0), server: t.end - t.start,
      decode_sam: t.decode_sam_ms, decode_basam: t.decode_basam_ms, prepare: t.prepare_ms,
      transfer: (origin + received) - t.end, drawing: done - received,
    });
  }
  st.drawn++; root.dataset.drawn = st.drawn;
}

// -- drawing ----------------------------------------------------------------------------
function draw() {
  const d = dpr(), cw = canvas.clientWidth, ch = canvas.clientHeight;
  if (canvas.width !== Math.round(cw * d) || canvas.height !== Math.round(ch * d)) {
    canvas.width = Math.round(cw * d); canvas.height = Math.round(ch * d);
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const v = value();
  root.classList.toggle('bc-has-image', !!v);
  if (!v || !st.display) { statusLine.textContent = ''; return; }
  const full = needsFull();
  if (full) loadFull();
  const source = hooks.picture.map(f => f(v)).find(Boolean) || (full && st.full ? st.full : st.display);
  ctx.imageSmoothingEnabled = st.scale * d < 1;
  ctx.setTransform(d * st.scale, 0, 0, d * st.scale, d * st.tx, d * st.ty);
  ctx.drawImage(source, 0, 0, st.W, st.H);
  for (const over of hooks.image) over(v);
  const [mx, my, mw, mh] = maskRect();
  if (st.masks && ensureLayers(kindsFor(st.view))) {
    const L = st.layers;
    if (st.view === 'diff') {
      ctx.fillStyle = 'rgba(0, 0, 0, 0.6)'; ctx.fillRect(0, 0, st.W, st.H);
      ctx.drawImage(L.get('diff'), mx, my, mw, mh);
    } else if (st.view === 'swipe') {
      const split = (cw * st.swipe - st.tx) / st.scale;  // image x of the divider
      for (const [kind, x0, x1] of [['sam', 0, split], ['basam', split, st.W]]) {
        ctx.save(); ctx.beginPath(); ctx.rect(x0, 0, Math.max(0, x1 - x0), st.H); ctx.clip();
        ctx.drawImage(L.get(kind), mx, my, mw, mh); ctx.restore();
      }
    } else {
      ctx.drawImage(L.get(st.view), mx, my, mw, mh);
    }
  }
  ctx.setTransform(d, 0, 0, d, 0, 0);  // extensions' layers, prompts and the divider: constant screen size
  for (const layer of hooks.layers) layer(v);
  drawPrompts(v);
  if (st.view === 'swipe') drawDivider(cw * st.swipe, ch);
  const kept = v.points || [], boxes = v.boxes || [];
  const pos = kept.filter(p => p.label).length;
  statusLine.textContent = `${pos} positive, ${kept.length - pos} negative points, ${boxes.length} `
    + `${boxes.length === 1 ? 'box' : 'boxes'}${boxes.length > 1 ? ' (SAM takes one box: only the last one, solid, is used)' : ''}`
    + `${v.negative ? ' · clicks add negative points' : ''} · view: ${root.querySelector(`[data-view=${st.view}]`).textContent}`
    + ` · zoom ${(st.scale * d * 100).toPrecision(3)}%${full ? (st.full ? ' (original pixels)' : ' (loading original pixels…)') : ''}`;
  root.querySelectorAll('[data-view]').forEach(b => b.classList.toggle('bc-on', b.dataset.view === st.view));
  for (const after of hooks.drawn) after(v);
}
function maskRect() {  // where the masks lie in image pixels: their field (a slide's), else the image
  const f = st.masks && st.masks.field;
  return f ? [f.x, f.y, f.width, f.height] : [0, 0, st.W, st.H];
}
function imageSpace() { const d = dpr(); ctx.setTransform(d * st.scale, 0, 0, d * st.scale, d * st.tx, d * st.ty); }
function drawPrompts(v) {
  const boxes = v.boxes || [], last = boxes.length ? Math.max(...boxes.map(b => b.i || 0)) : null;
  ctx.lineWidth = 2;
  for (const b of boxes) {
    const p = toCanvas(b.x0, b.y0), q = toCanvas(b.x1, b.y1);
    ctx.setLineDash((b.i || 0) === last ? [] : [3, 5]);
    ctx.strokeStyle = (b.i || 0) === last ? '#ffc800' : 'rgba(255, 200, 0, 0.6)';
    ctx.strokeRect(p.x, p.y, q.x - p.x, q.y - p.y);
  }
  ctx.setLineDash([]);
  for (const p of v.points || []) {
    const c = toCanvas(p.x, p.y);
    ctx.beginPath(); ctx.arc(c.x, c.y, POINT_R, 0, 2 * Math.PI);
    ctx.fillStyle = p.label ? '#22c55e' : '#ef4444'; ctx.fill();
    ctx.strokeStyle = 'white'; ctx.stroke();
  }
  if (st.drag && st.drag.kind === 'prompt' && st.drag.box) {
    const b = st.drag.box, p = toCanvas(b.x0, b.y0), q = toCanvas(b.x1, b.y1);
    ctx.setLineDash([6, 4]); ctx.strokeStyle = '#ffc800'; ctx.strokeRect(p.x, p.y, q.x - p.x, q.y - p.y); ctx.setLineDash([]);
  }
}
function drawDivider(x, ch) {
  ctx.fillStyle = 'white'; ctx.fillRect(x - 1, 0, 2, ch);
  ctx.beginPath(); ctx.arc(x, ch / 2, 9, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = '#333'; ctx.font = '10px sans-serif'; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
  ctx.fillText('⇔', x, ch / 2);
  ctx.textAlign = 'left'; ctx.fillStyle = 'white'; ctx.font = '12px sans-serif';
  ctx.fillText('SAM', Math.max(4, x - 40), 14); ctx.fillText('BA-SAM', x + 6, 14);
}
const toCanvas = (x, y) => ({x: st.tx + x * st.scale, y: st.ty + y * st.scale});

// -- prompts: the browser owns them; each change is sent with a new revision --------------
function commit(points, boxes, t0) {
  const v = value();
  let next = {...v, points, boxes, rev: (v.rev || 0) + 1};
  for (const hook of hooks.commit) next = hook(next, v) || next;
  const rev = next.rev;
  props.value = next;
  st.pending.set(rev, {t0});
  draw();
  if (hooks.prompt.some(take => take(props.value, t0))) return;
  trigger('prompt', {rev});
}
function undo(t0) {
  const v = value();
  if (!v) return;
  const entries = [...(v.points || []).map(p => ['points', p]), ...(v.boxes || []).map(b => ['boxes', b])];
  if (!entries.length) return;
  const [kind, lastOne] = entries.reduce((a, b) => ((b[1].i || 0) > (a[1].i || 0) ? b : a));
  const next = {points: v.points || [], boxes: v.boxes || []};
  next[kind] = next[kind].filter(q => q !== lastOne);
  commit(next.points, next.boxes, t0);
}
function clearPrompts(t0) {
  const v = value();
  if (v && ((v.points || []).length || (v.boxes || []).length)) commit([], [], t0);
}
function setView(name) { st.view = name; root.dataset.view = name; draw(); }
function toggleNegative() {  // through the page's "Click adds" control when there is one
  const mode = document.querySelector('#click-mode');
  const v = value();
  const other = mode && [...mode.querySelectorAll('input[type=radio]')].find(i => !i.checked);
  if (other) other.click();
  else if (v) { props.value = {...v, negative: !v.negative}; draw(); }
}

// -- pointer ----------------------------------------------------------------------------
canvas.addEventListener('contextmenu', ev => ev.preventDefault());
canvas.addEventListener('pointerenter', () => { st.hover = true; });
canvas.addEventListener('pointerleave', () => { st.hover = false; });
canvas.addEventListener('pointerdown', ev => {
  if (!value() || !st.display) return;
  const r = canvas.getBoundingClientRect(), sx = ev.clientX - r.left;
  ev.preventDefault();  // (no text selection, no focus change)...
  if (typing({target: document.activeElement})) document.activeElement.blur();  // ...but a click here ends typing
  canvas.setPointerCapture(ev.pointerId);
  if (ev.button === 1 || (ev.button === 0 && st.space)) {
    st.drag = {kind: 'pan', cx: ev.clientX, cy: ev.clientY, tx: st.tx, ty: st.ty};
  } else if (ev.button === 0 && st.view === 'swipe' && st.masks && Math.abs(sx - canvas.clientWidth * st.swipe) <= SWIPE_GRAB_PX) {
    st.drag = {kind: 'swipe'};
  } else if (ev.button === 0 || ev.button === 2) {
    const p = toImage(ev);
    if (p.x < 0 || p.y < 0 || p.x > st.W || p.y > st.H) return;  // outside the image: nothing
    st.drag = {kind: 'prompt', x: p.x, y: p.y, cx: ev.clientX, cy: ev.clientY, t0: ev.timeStamp,
               negative: ev.button === 2 || ev.shiftKey || ev.altKey || ev.ctrlKey || !!value().negative};
  }
});
canvas.addEventListener('pointermove', ev => {
  const g = st.drag;
  if (!g) return;
  if (g.kind === 'pan') {
    st.tx = g.tx + ev.clientX - g.cx; st.ty = g.ty + ev.clientY - g.cy; snap(); st.fitted = false; draw();
  } else if (g.kind === 'swipe') {
    const r = canvas.getBoundingClientRect();
    st.swipe = clamp((ev.clientX - r.left) / r.width, 0, 1); root.dataset.swipe = st.swipe.toFixed(4); draw();
  } else if (Math.hypot(ev.clientX - g.cx, ev.clientY - g.cy) >= DRAG_MIN_PX) {
    const p = toImage(ev), x = clamp(p.x, 0, st.W), y = clamp(p.y, 0, st.H);
    g.box = {x0: Math.min(g.x, x), y0: Math.min(g.y, y), x1: Math.max(g.x, x), y1: Math.max(g.y, y)};
    draw();
  } else if (g.box) { g.box = null; draw(); }
});
const round2 = v => Math.round(v * 100) / 100;
function finish(ev, cancelled) {
  const g = st.drag;
  st.drag = null;
  if (!g || g.kind !== 'prompt' || cancelled || !value()) { draw(); return; }
  const v = value(), points = [...(v.points || [])], boxes = [...(v.boxes || [])];
  // "i" orders prompts across both lists, so an undo can drop the most recent one
  const i = 1 + Math.max(0, ...points.map(q => q.i || 0), ...boxes.map(q => q.i || 0));
  if (Math.hypot(ev.clientX - g.cx, ev.clientY - g.cy) < DRAG_MIN_PX) {
    points.push({x: round2(g.x), y: round2(g.y), label: g.negative ? 0 : 1, i});
  } else {
    const b = g.box;
    if (!b || b.x0 === b.x1 || b.y0 === b.y1) { draw(); return; }  // no area, no box
    boxes.push({x0: round2(b.x0), y0: round2(b.y0), x1: round2(b.x1), y1: round2(b.y1), i});
  }
  commit(points, boxes, g.t0);
}
canvas.addEventListener('pointerup', ev => finish(ev, false));
canvas.addEventListener('pointercancel', ev => finish(ev, true));
canvas.addEventListener('auxclick', ev => ev.preventDefault());
canvas.addEventListener('wheel', ev => {
  if (!value() || !st.display) return;
  ev.preventDefault();
  const r = canvas.getBoundingClientRect();
  const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;  // lines -> px
  zoomTo(st.scale * Math.exp(-delta * 0.002), ev.clientX - r.left, ev.clientY - r.top);
}, {passive: false});

// -- keys (page-wide, not while typing) and the toolbar ----------------------------------
function typing(ev) {
  const t = ev.target;
  return t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName)
    && !['radio', 'checkbox', 'button', 'range', 'file'].includes((t.type || '').toLowerCase()));
}
const KEYS = {
  n: () => toggleNegative(), z: ev => undo(ev.timeStamp), escape: ev => clearPrompts(ev.timeStamp),
  v: () => setView(VIEWS[(VIEWS.indexOf(st.view) + 1) % VIEWS.length]), f: () => fit(),
  '0': () => zoomTo(1 / dpr(), ...size().map(s => s / 2)), '+': () => zoomCentre(1.25),
  '=': () => zoomCentre(1.25), '-': () => zoomCentre(0.8), _: () => zoomCentre(0.8),
};
function onKey(ev) {
  if (!root.isConnected) { document.removeEventListener('keydown', onKey, true); return; }
  if (typing(ev) || ev.altKey || ev.metaKey || !value()) return;
  if (ev.key === ' ') {
    if (!st.hover && !st.space) return;  // Space pans only with the pointer over the canvas
    if (!ev.repeat) { st.space = true; canvas.classList.add('bc-panning'); } ev.preventDefault(); return; }
  const name = ev.key.toLowerCase();
  if (ev.ctrlKey && name !== 'z') return;
  const act = KEYS[name];
  if (!act) return;
  ev.preventDefault();
  act(ev);
}
document.addEventListener('keydown', onKey, true);
document.addEventListener('keyup', ev => { if (ev.key === ' ') { st.space = false; canvas.classList.remove('bc-panning'); } }, true);
root.querySelectorAll('[data-view]').forEach(b => b.addEventListener('click', () => setView(b.dataset.view)));
const ACTIONS = {fit: () => fit(), one: () => KEYS['0'](), in: () => zoomCentre(1.25), out: () => zoomCentre(0.8)};
root.querySelectorAll('[data-act]').forEach(b => b.addEventListener('click', () => ACTIONS[b.dataset.act]()));
root.addEventListener('bc-undo', () => undo(performance.now()));
root.addEventListener('bc-clear', () => clearPrompts(performance.now()));
new ResizeObserver(() => { if (st.fitted) fit(); else draw(); }).observe(canvas);

// -- state from the server ---------------------------------------------------------------
function onValue() {
  const v = value();
  if (!v) { st.key = null; st.display = null; st.masks = null; root.dataset.ready = '0'; draw(); return; }
  if (v.image.url !== st.key) loadImage(v); else draw();
}
watch('value', onValue);
watch('masks', () => setMasks(props.masks));
// for tests and the click benchmark: the view state, coordinate mapping and latencies
root.bc = {
  state: () => ({view: st.view, scale: st.scale * dpr(), tx: st.tx, ty: st.ty, swipe: st.swipe, drawn: st.drawn,
                 full: st.fullState, layers: kindsFor(st.view).every(k => st.layers.get(k) instanceof ImageBitmap), masks: st.masks ? {rev: st.masks.rev, width: st.masks.width, height: st.masks.height} : null}),
  toClient, latency: () => st.latency, value: () => props.value, masks: () => st.masks && st.masks.png,
  setMasks,  // draw a `masks` value as if the server had sent it
};
onValue();
