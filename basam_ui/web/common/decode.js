// Clicks decoded in the browser (both pages): appended to canvas.js in the same js_on_load, so
// it sees the canvas's `st`, `ctx`, `draw`, `value`, `palette`, `hooks`, `trigger`, `props`,
// `watch`, ... and adds to it through `hooks` (browser_decode.py is the server's side).
//
// The server offers, in the `decoder` prop, its exported decoder and each side's embedding.
// Two Web Workers (../decode-worker.js), one per side, load them; a click then decodes both
// sides at once there, and the masks are drawn for the visible part of the image at the
// canvas's own resolution (at 1:1, the original's pixels; zoomed out, never more pixels than
// the canvas has). After drawing, the prompts go to the server with a record of the decode
// (value.decoded), which stores them without decoding. When the browser cannot decode (no
// WebAssembly, the decoder still exporting or loading, the server's own reasons) the click
// goes to the server as before, with the reason in value.decoded.why.
const DECODE_SIDES = ['sam', 'basam'];
const IOU_GRID = 1024;  // long side of the grid the IoU between the two sides is measured on
const RERENDER_MS = 80;  // after a pan or zoom, the masks are drawn again at the new resolution
const RETRY_MS = 15000;  // a decoder that failed to load is tried again after this long
const dec = {
  offer: null,  // props.decoder (browser_decode.BrowserDecoding.offer)
  supported: typeof WebAssembly === 'object' && typeof Worker === 'function',
  workers: null, have: {sam: new Set(), basam: new Set()},  // embedding URLs each worker holds
  loading: null,  // {key, model: [loaded, total], sam: [...], basam: [...]}
  models: new Map(),  // model URL -> Promise of its bytes (fetched once, for both workers)
  failed: '', failedAt: 0, polling: false, seq: 0, replies: new Map(),
  busy: false, next: null,  // a click being decoded; the one waiting for it (decodeLatest)
  shown: null,  // the masks drawn from the browser: {rev, url, ids, choice, count, view, values, layers}
  rerender: null,
};
const decLine = document.createElement('div');
decLine.className = 'bc-decoder-line';
statusLine.after(decLine);
const absolute = u => new URL(resolve(u), document.baseURI).href;

// -- the workers ---------------------------------------------------------------------------
function worker(side) {
  dec.workers = dec.workers || {};
  if (!dec.workers[side]) {
    const w = new Worker(absolute(dec.offer.worker));
    w.onmessage = ev => reply(side, ev.data);
    w.onerror = ev => {
      dec.failed = `the decoder's worker failed (${ev.message || 'error'})`;
      dec.failedAt = performance.now();
      w.terminate(); delete dec.workers[side]; dec.have[side].clear();  // a fresh one on the next try
      for (const [key, waiting] of dec.replies) if (key.startsWith(side + ':')) { dec.replies.delete(key); waiting.fail(new Error(dec.failed)); }
      showLine();
    };
    dec.workers[side] = w;
  }
  return dec.workers[side];
}
// post `message` to a side's worker; one promise per answer type in `expect`
function send(side, message, expect, transfer = []) {
  const id = ++dec.seq, out = {id};
  for (const type of expect) out[type] = new Promise((ok, fail) => dec.replies.set(`${side}:${id}:${type}`, {ok, fail}));
  worker(side).postMessage({...message, id}, transfer);
  return out;
}
function reply(side, m) {
  if (m.type === 'progress') { if (dec.loading) { dec.loading[side] = [m.loaded, m.total]; showLine(); } return; }
  if (m.type === 'error') {
    for (const [key, waiting] of dec.replies) if (key.startsWith(`${side}:${m.id}:`)) { dec.replies.delete(key); waiting.fail(new Error(m.message)); }
    return;
  }
  const key = `${side}:${m.id}:${m.type}`, waiting = dec.replies.get(key);
  if (waiting) { dec.replies.delete(key); waiting.ok({...m, at: performance.now()}); }
}

// -- what the server offers: poll the export, then load the model and both embeddings -----------
function onOffer() {
  const o = props.decoder || null;
  const before = dec.offer;
  dec.offer = o;
  // after a failure, try again with other embeddings, or with the same ones a while later (an
  // embedding evicted from the server's cache is there again once the server re-encoded it)
  const other = o && before && o.sides && before.sides && DECODE_SIDES.some(s => o.sides[s].url !== before.sides[s].url);
  if (dec.failed && (other || performance.now() - dec.failedAt > RETRY_MS)) dec.failed = '';
  if (o && o.mode === 'browser' && !o.why && dec.supported) {
    if (o.state === 'exporting') poll(o);
    else if (o.state === 'ready') load(o);
  }
  showLine();
}
async function poll(o) {
  if (dec.polling) return;
  dec.polling = true;
  try {
    while (dec.offer && dec.offer.stateUrl === o.stateUrl && dec.offer.state === 'exporting') {
      await new Promise(done => setTimeout(done, 1500));
      const answer = await fetch(absolute(o.stateUrl), {credentials: 'same-origin', cache: 'no-store'});
      if (!answer.ok) break;
      const s = await answer.json();
      if (dec.offer && dec.offer.stateUrl === o.stateUrl) dec.offer = {...dec.offer, state: s.state, exportWhy: s.why};
      showLine();
    }
  } catch (error) { /* the server decodes meanwhile; the next offer polls again */ }
  dec.polling = false;
  if (dec.offer && dec.offer.state === 'ready' && !dec.offer.why) load(dec.offer);
}
function modelBytes(url) {
  if (!dec.models.has(url)) {
    const loading = basamFetch(url, (loaded, total) => { if (dec.loading) { dec.loading.model = [loaded, total]; showLine(); } });
    dec.models.set(url, loading);
    loading.catch(() => dec.models.delete(url));
  }
  return dec.models.get(url);
}
async function basamFetch(url, onProgress) {  // bytes with progress (decoder.js's fetchBytes, here without it)
  const answer = await fetch(url, {credentials: 'same-origin'});
  if (!answer.ok) throw new Error(`could not load the decoder: HTTP ${answer.status}`);
  const total = Number(answer.headers.get('Content-Length')) || 0, reader = answer.body.getReader(), chunks = [];
  let loaded = 0;
  for (;;) {
    const {done, value: chunk} = await reader.read();
    if (done) break;
    chunks.push(chunk); loaded += chunk.length; onProgress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) { bytes.set(chunk, at); at += chunk.length; }
  return bytes.buffer;
}
async function load(o) {
  const urls = Object.fromEntries(DECODE_SIDES.map(side => [side, absolute(o.sides[side].url)]));
  const key = DECODE_SIDES.map(side => urls[side]).join(' ');
  if (DECODE_SIDES.every(side => dec.have[side].has(urls[side])) || (dec.loading && dec.loading.key === key)) return;
  dec.loading = {key, model: [0, 0], sam: [0, o.sides.sam.bytes], basam: [0, o.sides.basam.bytes]};
  showLine();
  try {
    const model = absolute(o.model), bytes = await modelBytes(model);
    await Promise.all(DECODE_SIDES.map(side => send(side, {
      type: 'load', decoderJs: absolute(o.decoderJs), ortUrl: absolute(o.ort), modelUrl: model, modelBytes: bytes,
      embeddingUrl: urls[side], size: o.size, inputSize: o.input, originalSize: o.original,
    }, ['loaded']).loaded.then(() => dec.have[side].add(urls[side]))));
  } catch (error) {
    dec.failed = `the browser could not load the decoder (${error.message})`;
    dec.failedAt = performance.now();
  }
  if (dec.loading && dec.loading.key === key) dec.loading = null;
  showLine();
}

// -- whether a click decodes here, and why not -------------------------------------------------
function decodesHere(v) {
  const o = dec.offer;
  if (!o || o.mode !== 'browser' || o.why || o.state !== 'ready' || !dec.supported || dec.failed) return false;
  if (!v || !v.image || v.image.url !== o.url) return false;
  return DECODE_SIDES.every(side => dec.have[side].has(absolute(o.sides[side].url)));
}
function serverWhy() {
  const o = dec.offer;
  if (!o) return '';
  if (o.mode !== 'browser' || o.why) return o.why || '';
  if (!dec.supported) return 'this browser has no WebAssembly or Web Workers';
  if (dec.failed) return dec.failed;
  if (o.state !== 'ready') return o.exportWhy || `the decoder is ${o.state}`;
  if (dec.loading) {
    const parts = ['model', ...DECODE_SIDES].map(k => dec.loading[k]);
    const loaded = parts.reduce((a, p) => a + p[0], 0), total = parts.reduce((a, p) => a + Math.max(p[0], p[1]), 0);
    return `the browser is loading the decoder (${total ? Math.floor(100 * loaded / total) : 0}%)`;
  }
  return 'the browser has not loaded the decoder';
}
function showLine() {
  const o = dec.offer, v = value();
  let text = '';
  // (an offer made for another image says nothing of this one: Gradio may keep a prop it was
  // sent as null)
  if (o && v && v.image && v.image.url === o.url) {
    text = decodesHere(v) ? 'Clicks decode in this browser.' : `Clicks decode on the server: ${serverWhy() || 'no image'}.`;
  }
  decLine.textContent = text;
  root.dataset.decoder = o && v && decodesHere(v) ? 'browser' : 'server';
}

// -- a click ----------------------------------------------------------------------------
hooks.prompt.push((v, t0) => {
  const some = (v.points || []).length || (v.boxes || []).length;
  if (some && decodesHere(v)) {
    // an event sent before this click's own (a queue's "always last" one reads the value late)
    // finds these prompts marked: the server leaves them to the record that follows
    props.value = {...v, decoded: {by: 'browser', rev: v.rev, pending: true}};
    decodeLatest(v, t0);
    return true;
  }
  props.value = {...v, decoded: {by: 'server', rev: v.rev, why: some ? serverWhy() : ''}};
  return false;
});
// One click decodes at a time; a click made meanwhile waits, and a newer one replaces it (as
// the server's "always last" queue does): its masks, drawn later, are the superseded clicks'
// masks too, and their latency is counted until then.
function decodeLatest(v, t0) {
  if (dec.busy) {
    const superseded = dec.next ? [...dec.next.superseded, {rev: dec.next.v.rev, t0: dec.next.t0}] : [];
    dec.next = {v, t0, superseded};
    return;
  }
  dec.busy = true;
  decodeClick(v, t0, []).finally(function more() {
    const next = dec.next;
    dec.next = null;
    if (!next) { dec.busy = false; return; }
    if (decodesHere(next.v)) decodeClick(next.v, next.t0, next.superseded).finally(more);
    else { fallBack(next.v, serverWhy()); more(); }
  });
}
function promptOf(v, multimask) {  // as Prompts.from_canvas reads them: drawing order, the last box
  const items = [...(v.points || []).map(p => ({i: p.i || 0, p})), ...(v.boxes || []).map(b => ({i: b.i || 0, b}))];
  items.sort((a, b) => a.i - b.i);
  const points = [], labels = [];
  let box = null;
  for (const {p, b} of items) {
    if (p) { points.push([p.x, p.y]); labels.push(p.label ? 1 : 0); }
    else box = [Math.min(b.x0, b.x1), Math.min(b.y0, b.y1), Math.max(b.x0, b.x1), Math.max(b.y0, b.y1)];
  }
  return {points, labels, box, multimask: !!multimask};
}
function viewNow() {  // the visible part of the image, in the canvas's device pixels
  const d = dpr(), k = d * st.scale, X0 = d * st.tx, Y0 = d * st.ty;
  const x0 = Math.max(0, Math.floor(X0 + 1e-6)), y0 = Math.max(0, Math.floor(Y0 + 1e-6));
  const x1 = Math.min(canvas.width, Math.ceil(X0 + st.W * k - 1e-6)), y1 = Math.min(canvas.height, Math.ceil(Y0 + st.H * k - 1e-6));
  if (!st.W || !(x1 > x0 && y1 > y0)) return null;
  return {x: x0, y: y0, k, ask: {region: {x: (x0 - X0) / k, y: (y0 - Y0) / k, width: (x1 - x0) / k, height: (y1 - y0) / k},
                                 width: x1 - x0, height: y1 - y0}};
}
function gridFor([H, W]) {
  const s = Math.min(1, IOU_GRID / Math.max(H, W));
  return {width: Math.max(1, Math.round(W * s)), height: Math.max(1, Math.round(H * s))};
}
function fallBack(v, why) {  // this click to the server after all
  const now = value();
  if (!now || now.rev !== v.rev || now.image.url !== v.image.url) return;
  props.value = {...now, decoded: {by: 'server', rev: v.rev, why}};
  trigger('prompt', {rev: v.rev});
}
async function decodeClick(v, t0, superseded) {
  const o = dec.offer, rev = v.rev, url = v.image.url, view = viewNow(), grid = gridFor(o.original);
  const prompt = promptOf(v, o.multimask);
  const asked = DECODE_SIDES.map(side => send(side, {type: 'decode', embeddingUrl: absolute(o.sides[side].url), prompt,
                                                      view: view && view.ask, grid}, ['decoded', 'grid']));
  for (const a of asked) a.grid.catch(() => {});  // awaited below, unless the decode fails
  let sam, basam;
  try {
    [sam, basam] = await Promise.all(asked.map(a => a.decoded));
  } catch (error) {
    fallBack(v, `the browser could not decode this click (${error.message})`);
    return;
  }
  const now = value();
  if (!now || now.image.url !== url) return;
  let total = null;
  if (!dec.shown || dec.shown.url !== url || rev > dec.shown.rev || (now.rev || 0) < dec.shown.rev) {
    const arrived = Math.max(sam.at, basam.at);
    st.masks = null; dropLayers(); ++st.maskTicket;  // the server's masks (older) go
    dec.shown = {rev, url, ids: {sam: sam.id, basam: basam.id}, choice: {sam: sam.best, basam: basam.best}, count: sam.count,
                 view, values: view && pack(sam.bits, basam.bits, view.ask.width, view.ask.height), layers: new Map()};
    draw();
    const drawn = performance.now();
    total = drawn - t0;
    st.drawn++; root.dataset.drawn = st.drawn;
    for (const click of [...superseded, {rev, t0}]) {
      st.pending.delete(click.rev);
      st.latency.push({rev: click.rev, decoder: 'browser', total: drawn - click.t0, decode_sam: sam.ms, decode_basam: basam.ms,
                       render_sam: sam.renderMs, render_basam: basam.renderMs, drawing: drawn - arrived,
                       superseded: click.rev !== rev});
    }
  }
  let iou = null, measured = null;
  try {
    const [a, b] = await Promise.all(asked.map(x => x.grid));
    if (a.bits && b.bits) { iou = iouOf(a.bits, b.bits); measured = [grid.width, grid.height]; }
  } catch (error) { /* the status line then has no IoU */ }
  const latest = value();
  if (!latest || latest.rev !== rev || latest.image.url !== url) return;  // newer prompts send their own
  props.value = {...latest, decoded: {
    by: 'browser', rev, keys: {sam: o.sides.sam.key, basam: o.sides.basam.key}, iou, grid: measured,
    ms: {sam: sam.ms, basam: basam.ms, total: total === null ? Math.max(sam.ms, basam.ms) : total},
    scores: {sam: sam.scores, basam: basam.scores}, best: {sam: sam.best, basam: basam.best},
  }};
  trigger('prompt', {rev});
}
function iouOf(a, b) {  // as metrics.iou: both empty is 1
  let inter = 0, union = 0;
  for (let p = 0; p < a.length; p++) { inter += a[p] & b[p]; union += a[p] | b[p]; }
  return union ? inter / union : 1;
}

// -- drawing: one palette value per pixel, as the server's packed masks (canvas.py) -----------
function pack(a, b, w, h) {  // sam | basam << 1 | sam edge << 2 | basam edge << 3; edge: a 4-neighbour outside
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = y * w, up = (y > 0 ? y - 1 : y) * w, down = (y < h - 1 ? y + 1 : y) * w;
    for (let x = 0; x < w; x++) {
      const p = row + x, l = x > 0 ? p - 1 : p, r = x < w - 1 ? p + 1 : p;
      let v = 0;
      if (a[p]) v = (a[l] && a[r] && a[up + x] && a[down + x]) ? 1 : 5;
      if (b[p]) v |= (b[l] && b[r] && b[up + x] && b[down + x]) ? 2 : 10;
      out[p] = v;
    }
  }
  return out;
}
function layerOf(shown, kind) {  // the masks in one view's colours, as a canvas of the view's size
  if (!shown.layers.has(kind)) {
    const {width, height} = shown.view.ask, lut = new Uint32Array(16), bytes = new Uint8Array(lut.buffer);
    palette(kind).forEach((c, v) => bytes.set(c, 4 * v));
    const image = new ImageData(width, height), px = new Uint32Array(image.data.buffer);
    for (let p = 0; p < px.length; p++) px[p] = lut[shown.values[p]];
    const layer = document.createElement('canvas');
    layer.width = width; layer.height = height;
    layer.getContext('2d').putImageData(image, 0, 0);
    shown.layers.set(kind, layer);
  }
  return shown.layers.get(kind);
}
hooks.layers.push(v => {
  const s = dec.shown;
  if (!s) return;
  if (!v || v.image.url !== s.url || (v.rev || 0) < s.rev) { dec.shown = null; return; }  // another image, or prompts reset
  if (!s.view) { rerenderSoon(); return; }
  const d = dpr(), k = d * st.scale, X0 = d * st.tx, Y0 = d * st.ty, r = s.view.ask.region;
  // where the drawn region lies now (it follows pans and zooms until drawn again)
  const dx = X0 + r.x * k, dy = Y0 + r.y * k, dw = r.width * k, dh = r.height * k;
  ctx.save();
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.imageSmoothingEnabled = false;
  if (st.view === 'diff') { ctx.fillStyle = 'rgba(0, 0, 0, 0.6)'; ctx.fillRect(X0, Y0, st.W * k, st.H * k); }
  if (st.view === 'swipe') {
    const split = d * canvas.clientWidth * st.swipe;
    for (const [kind, a, b] of [['sam', 0, split], ['basam', split, canvas.width]]) {
      ctx.save(); ctx.beginPath(); ctx.rect(a, 0, Math.max(0, b - a), canvas.height); ctx.clip();
      ctx.drawImage(layerOf(s, kind), dx, dy, dw, dh); ctx.restore();
    }
  } else {
    ctx.drawImage(layerOf(s, st.view), dx, dy, dw, dh);
  }
  ctx.restore();
  const now = viewNow();
  if (now && (now.x !== s.view.x || now.y !== s.view.y || now.ask.width !== s.view.ask.width
              || now.ask.height !== s.view.ask.height || Math.abs(now.k - s.view.k) > 1e-9 * now.k)) rerenderSoon();
});
function rerenderSoon() {
  clearTimeout(dec.rerender);
  dec.rerender = setTimeout(rerender, RERENDER_MS);
}
async function rerender() {  // the shown candidates again, for the view as it is now
  const s = dec.shown, view = viewNow();
  if (!s || !view) return;
  try {
    const [a, b] = await Promise.all(DECODE_SIDES.map(side => send(side, {type: 'render', of: s.ids[side], index: s.choice[side],
                                                                        view: view.ask}, ['rendered']).rendered));
    if (dec.shown !== s) return;
    dec.shown = {...s, view, values: pack(a.bits, b.bits, view.ask.width, view.ask.height), layers: new Map()};
    draw();
  } catch (error) { /* kept as drawn; the next click draws afresh */ }
}
hooks.drawn.push(() => showLine());

// -- what the server sends back -------------------------------------------------------------
hooks.masks.push(m => {
  const s = dec.shown;
  if (m && m.browser) {  // the server stored a click the browser drew: which candidates it shows
    if (s && m.url === s.url && m.rev === s.rev && DECODE_SIDES.some(side => m.browser[side] !== s.choice[side])) {
      s.choice = {...m.browser};
      rerender();
    }
    return true;
  }
  const v = value();
  if (s && m && m.url === s.url && typeof m.rev === 'number' && m.rev < s.rev && v && (v.rev || 0) >= s.rev) {
    return true;  // an answer for prompts older than the ones the browser drew
  }
  dec.shown = null;  // the server's masks (or none) are the newest
  return false;
});
watch('decoder', onOffer);
root.bc.decoder = () => ({here: decodesHere(value()), why: serverWhy(), offer: dec.offer, loading: dec.loading,
                          shown: dec.shown && {rev: dec.shown.rev, choice: dec.shown.choice,
                                               view: dec.shown.view && [dec.shown.view.ask.width, dec.shown.view.ask.height]}});
onOffer();
