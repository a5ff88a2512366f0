// The annotate page's additions to the prompt canvas: appended to canvas.js in the same
// js_on_load (so it sees the canvas's `st`, `ctx`, `draw`, `value`, `setView`, ...) and drawn
// through its `hooks`; loaded only by the annotate page. Adds: the committed objects layer (the `objects` prop, see
// annotate_view.objects_layer) with each object's class; brush (B) and eraser (E) strokes in
// original pixels kept in the value's "strokes" until Enter commits them; and the page's
// keys, which click the page's own controls (#ann-...).
const ann = {tool: 'prompt', size: 8, stroke: null, layer: null, pieces: [], side: 'basam'};
const annLine = document.createElement('div');
annLine.className = 'bc-ann-line';
statusLine.after(annLine);

// objects and strokes go over the masks, under the prompts; the tool line follows each draw
hooks.layers.push(v => { drawObjects(); drawStrokes(v); });
hooks.drawn.push(annStatus);
function drawObjects() {
  const layer = ann.layer;
  if (!layer || layer.url !== st.key) return;
  const d = dpr();
  if (ann.pieces.length) {  // each piece on its rectangle: the image, or a slide's field
    ctx.save(); imageSpace(); ctx.imageSmoothingEnabled = st.scale * d < 1;
    for (const p of ann.pieces) ctx.drawImage(p.bitmap, p.x, p.y, p.width, p.height);
    ctx.restore();
  }
  ctx.font = 'bold 12px sans-serif'; ctx.textBaseline = 'bottom';
  for (const item of layer.items || []) {
    const [x, y, w, h] = item.bbox, p = toCanvas(x, y), text = `${item.n} ${item.label}`;
    if (item.selected) {
      ctx.setLineDash([5, 3]); ctx.strokeStyle = 'white'; ctx.lineWidth = 2;
      ctx.strokeRect(p.x - 2, p.y - 2, w * st.scale + 4, h * st.scale + 4); ctx.setLineDash([]);
    }
    const tw = ctx.measureText(text).width + 6;
    ctx.fillStyle = item.colour; ctx.fillRect(p.x, p.y - 16, tw, 16);
    ctx.fillStyle = 'white'; ctx.fillText(text, p.x + 3, p.y - 2);
  }
}
function drawStrokes(v) {
  const all = [...((v && v.strokes) || []), ...(ann.stroke ? [ann.stroke] : [])];
  if (!all.length) return;
  ctx.save(); imageSpace(); ctx.lineCap = 'round'; ctx.lineJoin = 'round';
  for (const s of all) {
    ctx.strokeStyle = ctx.fillStyle = s.mode === 'brush' ? 'rgba(34, 197, 94, 0.75)' : 'rgba(239, 68, 68, 0.75)';
    ctx.lineWidth = s.size;
    const [x0, y0] = s.points[0];
    if (s.points.length === 1) {  // a dot: the pixels the server paints
      ctx.beginPath(); ctx.arc(Math.floor(x0) + 0.5, Math.floor(y0) + 0.5, s.size / 2, 0, 2 * Math.PI); ctx.fill();
      continue;
    }
    ctx.beginPath(); ctx.moveTo(Math.floor(x0) + 0.5, Math.floor(y0) + 0.5);
    for (const [x, y] of s.points.slice(1)) ctx.lineTo(Math.floor(x) + 0.5, Math.floor(y) + 0.5);
    ctx.stroke();
  }
  ctx.restore();
}
function annStatus(v) {
  const n = ((v && v.strokes) || []).length;
  annLine.textContent = `Tool: ${ann.tool === 'prompt' ? 'prompts' : ann.tool} (B brush · E eraser · again: back to prompts)`
    + ` · brush size ${ann.size} px ([ / ])${n ? ` · ${n} stroke${n > 1 ? 's' : ''} to apply on Enter` : ''}`;
  root.dataset.tool = ann.tool; root.dataset.strokes = n;
}
async function setObjects(layer) {
  ann.layer = layer || null; ann.pieces = [];
  if (layer && (layer.pieces || []).length) {
    const pieces = await Promise.all(layer.pieces.map(async p => (
      {...p, bitmap: await createImageBitmap(await (await fetch(p.png)).blob())})));
    // a newer layer arrived while this one decoded (answers can overtake each other): it wins
    if (ann.layer !== layer) return;
    ann.pieces = pieces;
  }
  root.dataset.objects = layer ? (layer.items || []).length : 0;
  draw();
}
watch('objects', () => setObjects(props.objects));

// -- brush and eraser: strokes in original pixels, captured before the canvas's own handlers
function setTool(tool) { ann.tool = ann.tool === tool ? 'prompt' : tool; canvas.style.cursor = ann.tool === 'prompt' ? '' : 'cell'; draw(); }
stage.addEventListener('pointerdown', () => {  // the canvas takes no focus: leave the text field, so keys act
  const active = document.activeElement;
  if (active && active !== document.body && typing({target: active})) active.blur();
}, true);
stage.addEventListener('pointerdown', ev => {
  if (ann.tool === 'prompt' || ev.button !== 0 || st.space || !value() || !st.display) return;
  ev.stopPropagation(); ev.preventDefault();
  canvas.setPointerCapture(ev.pointerId);
  const p = toImage(ev);
  ann.stroke = {mode: ann.tool === 'brush' ? 'brush' : 'erase', size: ann.size, points: [[round2(p.x), round2(p.y)]]};
  draw();
}, true);
stage.addEventListener('pointermove', ev => {
  if (!ann.stroke) return;
  ev.stopPropagation();
  const p = toImage(ev);
  ann.stroke.points.push([round2(clamp(p.x, 0, st.W - 0.01)), round2(clamp(p.y, 0, st.H - 0.01))]);
  draw();
}, true);
function endStroke(ev) {
  if (!ann.stroke) return;
  ev.stopPropagation();
  const v = value(), stroke = ann.stroke;
  ann.stroke = null;
  if (v) props.value = {...v, strokes: [...(v.strokes || []), stroke]};
  draw();
}
stage.addEventListener('pointerup', endStroke, true);
stage.addEventListener('pointercancel', endStroke, true);

// -- the page's keys: they click the page's controls, so a key and a click do the same
function press(id) { const b = document.querySelector(`#${id}`); if (b) b.click(); }
function pickRadio(id, k) {  // the k-th (0-based) choice of a radio group
  const inputs = document.querySelectorAll(`#${id} input[type=radio]`);
  if (inputs[k]) inputs[k].click();
}
function showSide(side) { if (side !== ann.side) { ann.side = side; setView(side); } }
function toggleSide() {  // the radio's own change (see annotate_page.SIDE_VIEW_JS) comes later: show it now
  const inputs = [...document.querySelectorAll('#ann-side input[type=radio]')];
  const other = inputs.find(i => !i.checked);
  if (other) other.click();
  showSide(ann.side === 'basam' ? 'sam' : 'basam');
}
// the "Enter commits" radio changed (by the annotator, or by the server after a commit or a
// reopen): the canvas shows that side's mask
root.addEventListener('bc-side', ev => showSide(ev.detail));
function annKey(ev) {
  if (!root.isConnected) { document.removeEventListener('keydown', annKey, true); return; }
  if (typing(ev) || ev.altKey || ev.metaKey || ev.ctrlKey) return;
  const k = ev.key, name = k.toLowerCase();
  let act = null;
  if (/^[1-9]$/.test(k)) act = () => pickRadio('ann-class', Number(k) - 1);
  else if (k === 'Enter') act = () => press(ev.shiftKey ? 'ann-done' : 'ann-commit');
  else if (k === 'Delete') act = () => press('ann-delete');
  else if (k === 'ArrowRight' || name === 'd') act = () => press('ann-next');
  else if (k === 'ArrowLeft' || name === 'a') act = () => press('ann-prev');
  else if (name === 's') act = () => toggleSide();
  else if (name === 'b') act = () => setTool('brush');
  else if (name === 'e') act = () => setTool('erase');
  else if (name === 'c') act = () => press('ann-cancel');
  else if (k === '[') act = () => { ann.size = Math.max(1, Math.round(ann.size / 1.5)); draw(); };
  else if (k === ']') act = () => { ann.size = Math.min(500, Math.round(ann.size * 1.5) + (ann.size < 2 ? 1 : 0)); draw(); };
  if (!act || ev.repeat && k === 'Enter') return;
  ev.preventDefault(); ev.stopPropagation();
  act();
}
document.addEventListener('keydown', annKey, true);
root.bc.annotate = {state: () => ({tool: ann.tool, size: ann.size, side: ann.side, objects: ann.layer}), setTool};
setObjects(props.objects);
