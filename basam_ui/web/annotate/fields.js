// Fields on a slide (the annotate page; appended to canvas.js and tiles.js, in their scope).
// The model encodes a field: the part of the slide in view when the field was asked for,
// read so that its long side is at most S (see web/common/fields.py). The browser asks for a
// field by giving the value a new `field_rev` and the view's rectangle `field_view` (level-0
// pixels): with the first prompt, with `G` (the current view, keeping the prompts inside
// it), and with a prompt outside the current field (a new field at the current view, with
// that prompt alone: the earlier ones belonged to the old field). The field is outlined:
// dashed until the server has made and encoded it, then solid with its resolution.
const fld = {take: false, focused: null};

hooks.commit.push(fieldFor);
hooks.layers.push(drawField);
hooks.drawn.push(focusOn);

function slideShown(v) { return !!(v && v.image && v.image.fields); }
function viewRect() {  // the level-0 rectangle in view
  const [cw, ch] = size();
  const x0 = clamp(-st.tx / st.scale, 0, st.W), y0 = clamp(-st.ty / st.scale, 0, st.H);
  const x1 = clamp((cw - st.tx) / st.scale, 0, st.W), y1 = clamp((ch - st.ty) / st.scale, 0, st.H);
  return {x: round2(x0), y: round2(y0), width: round2(Math.max(x1 - x0, 1)), height: round2(Math.max(y1 - y0, 1))};
}
function fieldRect(v) {  // the field a value asks for, in whole level-0 pixels (as the server makes it)
  const f = v && v.field_view;
  if (!f) return null;
  const x0 = Math.max(0, Math.floor(f.x)), y0 = Math.max(0, Math.floor(f.y));
  const x1 = Math.min(st.W, Math.ceil(f.x + f.width)), y1 = Math.min(st.H, Math.ceil(f.y + f.height));
  return {x: x0, y: y0, width: x1 - x0, height: y1 - y0};
}
function inside(r, p) { return r && p.x >= r.x && p.y >= r.y && p.x <= r.x + r.width && p.y <= r.y + r.height; }
function corners(b) { return [{x: b.x0, y: b.y0}, {x: b.x1, y: b.y1}]; }
function fieldFor(next, previous) {
  if (!slideShown(next)) return next;
  const known = Math.max(0, ...(previous.points || []).map(q => q.i || 0), ...(previous.boxes || []).map(q => q.i || 0));
  const added = [...(next.points || []).filter(q => (q.i || 0) > known).map(q => [q]),
                 ...(next.boxes || []).filter(q => (q.i || 0) > known).map(q => corners(q))];
  const field = fieldRect(next), take = fld.take;
  fld.take = false;
  if (!take && field && added.every(ps => ps.every(p => inside(field, p)))) return next;
  if (!take && !added.length) return next;  // an undo or a clear: the field stays
  const view = viewRect(), rev = (next.field_rev || 0) + 1;
  if (take) {  // G: the view is the field; the prompts inside it stay
    const r = fieldRect({field_view: view});
    return {...next, field_rev: rev, field_view: view, points: (next.points || []).filter(p => inside(r, p)),
            boxes: (next.boxes || []).filter(b => corners(b).every(p => inside(r, p)))};
  }
  const newest = (next.points || []).concat(next.boxes || []).filter(q => (q.i || 0) > known);
  return {...next, field_rev: rev, field_view: view, points: newest.filter(q => 'label' in q),
          boxes: newest.filter(q => 'x0' in q)};
}
function takeView(ev) {  // G
  const v = value();
  if (!slideShown(v)) return;
  fld.take = true;
  commit(v.points || [], v.boxes || [], ev ? ev.timeStamp : performance.now());
}
function drawField(v) {
  if (!slideShown(v)) return;
  const r = fieldRect(v);
  if (!r) return;
  const made = st.field, ready = made && made.x === r.x && made.y === r.y
    && made.width === r.width && made.height === r.height;
  const p = toCanvas(r.x, r.y), q = toCanvas(r.x + r.width, r.y + r.height);
  ctx.save();
  ctx.lineWidth = 2; ctx.strokeStyle = '#22d3ee'; ctx.setLineDash(ready ? [] : [8, 6]);
  ctx.strokeRect(p.x, p.y, q.x - p.x, q.y - p.y);
  ctx.setLineDash([]); ctx.font = '12px sans-serif'; ctx.textBaseline = 'top'; ctx.fillStyle = '#22d3ee';
  ctx.fillText(ready ? `field 1:${Number(made.downsample.toPrecision(3))}` : 'field (not encoded yet)', p.x + 4, p.y + 4);
  ctx.restore();
  root.dataset.field = ready ? `${made.x},${made.y},${made.width},${made.height},${made.downsample}` : '';
}
function focusOn(v) {  // a value that names a rectangle to show (a reopened object's field): zoom to it
  const f = v && v.focus;
  if (!f || f === fld.focused || !st.W) return;
  fld.focused = f;
  const [cw, ch] = size(), scale = Math.min(cw / f.width, ch / f.height) * 0.9;
  st.scale = clamp(scale, Math.min(fitScale(), 1 / dpr()) / 4, MAX_SCALE);
  st.tx = cw / 2 - (f.x + f.width / 2) * st.scale; st.ty = ch / 2 - (f.y + f.height / 2) * st.scale;
  snap(); st.fitted = false; draw();
}
KEYS.g = ev => takeView(ev);
root.bc.fields = {view: viewRect, take: () => takeView(null)};
