// Tiled images (appended to canvas.js, in its scope): an image whose value carries
// `image.tiles` (a slide, or a photo too large for one full-resolution copy; see tiles.py) is
// drawn from Deep Zoom tiles at the level that fits the zoom, down to one image pixel per
// screen pixel, over the display copy (which shows until the tiles arrive). Drawn through
// `hooks.image`, in image space: the masks, the extensions' layers and the prompts go over it
// exactly as over an ordinary image, and the canvas stays one readable 2-D canvas.
// Tiles are fetched at most TILE_REQUESTS at a time, the ones in view only, and kept (decoded)
// in an LRU of TILE_KEEP; the browser's HTTP cache keeps their bytes too.
const TILE_KEEP = 384, TILE_REQUESTS = 6, TILE_FALLBACK_LEVELS = 6;
const tl = {url: null, images: new Map(), queue: [], inflight: 0, latency: [], frame: 0, pending: 0, level: null};

hooks.image.push(drawTiles);
hooks.drawn.push(tileStatus);

function tileKey(level, col, row) { return `${level}/${col}_${row}`; }
function tileLevel(t) {  // the coarsest level whose pixels are no larger than a screen pixel
  const top = t.levels.length - 1, perPixel = 1 / (st.scale * dpr());
  return Math.max(0, top - Math.max(0, Math.floor(Math.log2(perPixel) + 1e-9)));
}
function visibleTiles(t, level) {  // [col, row] of the level's tiles the canvas shows
  const top = t.levels.length - 1, ds = 2 ** (top - level), span = t.size * ds;
  const [cw, ch] = size(), [lw, lh] = t.levels[level];
  const x0 = Math.max(0, -st.tx / st.scale), y0 = Math.max(0, -st.ty / st.scale);
  const x1 = Math.min(st.W, (cw - st.tx) / st.scale), y1 = Math.min(st.H, (ch - st.ty) / st.scale);
  if (x1 <= x0 || y1 <= y0) return [];
  const c0 = Math.floor(x0 / span), r0 = Math.floor(y0 / span);
  const c1 = Math.min(Math.ceil(lw / t.size) - 1, Math.floor((x1 - 1e-6) / span));
  const r1 = Math.min(Math.ceil(lh / t.size) - 1, Math.floor((y1 - 1e-6) / span));
  const out = [];
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) out.push([c, r]);
  // the centre first: it is what the annotator looks at
  const mc = (c0 + c1) / 2, mr = (r0 + r1) / 2;
  return out.sort((a, b) => Math.hypot(a[0] - mc, a[1] - mr) - Math.hypot(b[0] - mc, b[1] - mr));
}
function tileImage(t, level, col, row) {  // the decoded tile, or null (fetched when wanted)
  const key = tileKey(level, col, row), found = tl.images.get(key);
  if (found) { tl.images.delete(key); tl.images.set(key, found); }  // most recently used
  return found && found.ready ? found.img : null;
}
function request(t, level, col, row) {
  const key = tileKey(level, col, row);
  if (tl.images.has(key) || tl.queue.some(q => q.key === key)) return;
  tl.queue.push({key, url: resolve(`${t.url}/${level}/${col}_${row}.${t.format}`)});
}
function pump() {
  while (tl.inflight < TILE_REQUESTS && tl.queue.length) {
    const {key, url} = tl.queue.shift(), img = new Image(), entry = {img, ready: false}, t0 = performance.now();
    const owner = tl.url;
    tl.images.set(key, entry); tl.inflight++;
    img.onload = () => {
      tl.inflight--;
      if (tl.url !== owner) return;
      entry.ready = true; tl.latency.push(performance.now() - t0); redraw(); pump();
    };
    img.onerror = () => { tl.inflight--; if (tl.url === owner) tl.images.delete(key); pump(); };
    img.src = url;
  }
  while (tl.images.size > TILE_KEEP) {  // drop the least recently used (loaded) tiles
    const oldest = [...tl.images.keys()].find(k => tl.images.get(k).ready);
    if (oldest === undefined) break;
    tl.images.delete(oldest);
  }
}
function redraw() {  // one draw per frame however many tiles arrive
  if (tl.frame) return;
  tl.frame = requestAnimationFrame(() => { tl.frame = 0; draw(); });
}
function placeTile(t, level, col, row, img) {  // draw a tile (its overlap included) in image pixels
  const top = t.levels.length - 1, ds = 2 ** (top - level);
  const x = (col * t.size - (col > 0 ? t.overlap : 0)) * ds, y = (row * t.size - (row > 0 ? t.overlap : 0)) * ds;
  ctx.drawImage(img, x, y, img.naturalWidth * ds, img.naturalHeight * ds);
}
function drawTiles(v) {
  const t = v.image.tiles;
  if (!t) return;
  if (tl.url !== t.url) { tl.url = t.url; tl.images = new Map(); tl.queue = []; tl.latency = []; }
  const level = tileLevel(t), wanted = visibleTiles(t, level);
  tl.level = level;
  const keys = new Set(wanted.map(([c, r]) => tileKey(level, c, r)));
  tl.queue = tl.queue.filter(q => keys.has(q.key));  // tiles no longer in view are not fetched
  const missing = [], fallbacks = new Map();
  for (const [c, r] of wanted) {
    if (tileImage(t, level, c, r)) continue;
    missing.push([c, r]);
    request(t, level, c, r);
    for (let up = 1; up <= TILE_FALLBACK_LEVELS && level - up >= 0; up++) {  // a coarser tile meanwhile
      const fc = c >> up, fr = r >> up, img = tileImage(t, level - up, fc, fr);
      if (img) { fallbacks.set(tileKey(level - up, fc, fr), [level - up, fc, fr, img]); break; }
    }
  }
  for (const [l, c, r, img] of [...fallbacks.values()].sort((a, b) => a[0] - b[0])) placeTile(t, l, c, r, img);
  for (const [c, r] of wanted) { const img = tileImage(t, level, c, r); if (img) placeTile(t, level, c, r, img); }
  tl.pending = missing.length;
  root.dataset.tilesPending = String(missing.length);
  root.dataset.tileLevel = String(level);
  pump();
}
function tileStatus(v) {
  const t = v && v.image.tiles;
  if (!t) return;
  const top = t.levels.length - 1;
  statusLine.textContent += ` · tiles at 1:${2 ** (top - tl.level)}${tl.pending ? ` (loading ${tl.pending})` : ''}`;
}
// for tests and the benchmark: per-tile latencies (request to decoded, ms) and what is pending
root.bc.tiles = () => ({level: tl.level, pending: tl.pending, latency: tl.latency.slice(), kept: tl.images.size});
