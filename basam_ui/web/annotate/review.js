// The review mode's keys and marks (appended after annotate.js, in the same scope: it uses
// `ann`, `hooks`, `ctx`, `toCanvas`, `typing`, `press`, `root`). While the page's mode is
// Review: Y accepts the selected object, Shift+Y accepts the rest of the image, R puts the
// cursor in the reason box (type why, Enter rejects). Each object's tag on the canvas shows
// the decision on it: ✓ accepted, ✗ rejected.
const reviewing = () => {
  const checked = document.querySelector('#ann-mode input[type=radio]:checked');
  return !!checked && checked.value === 'Review';
};
hooks.layers.push(drawDecisions);
function drawDecisions() {
  const layer = ann.layer;
  if (!layer || layer.url !== st.key) return;
  ctx.save(); ctx.font = 'bold 13px sans-serif'; ctx.textBaseline = 'bottom';
  for (const item of layer.items || []) {
    if (!item.review) continue;
    const p = toCanvas(item.bbox[0], item.bbox[1]), text = `${item.n} ${item.label}`;
    ctx.font = 'bold 12px sans-serif';
    const x = p.x + ctx.measureText(text).width + 8;
    ctx.font = 'bold 13px sans-serif';
    ctx.fillStyle = item.review === 'accepted' ? '#16a34a' : '#dc2626';
    ctx.fillRect(x, p.y - 16, 16, 16);
    ctx.fillStyle = 'white'; ctx.fillText(item.review === 'accepted' ? '✓' : '✗', x + 3, p.y - 1);
  }
  ctx.restore();
}
function reviewKey(ev) {
  if (!root.isConnected) { window.removeEventListener('keydown', reviewKey, true); return; }
  if (!reviewing() || typing(ev) || ev.altKey || ev.metaKey || ev.ctrlKey) return;
  const name = ev.key.toLowerCase();
  let act = null;
  if (name === 'y') act = () => press(ev.shiftKey ? 'rev-accept-rest' : 'rev-accept');
  else if (name === 'r') act = () => document.querySelector('#rev-reason textarea, #rev-reason input')?.focus();
  if (!act || ev.repeat) return;
  ev.preventDefault(); ev.stopImmediatePropagation();
  act();
}
window.addEventListener('keydown', reviewKey, true);
root.bc.review = {reviewing};
