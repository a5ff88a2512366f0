// Proposals on the prompt canvas (appended after annotate.js, in the same scope: it uses `st`,
// `ctx`, `hooks`, `toCanvas`, `toImage`, `value`, `draw`, `typing`, `pickRadio`, `annLine`).
// The `proposals` prop (proposals.layer) holds the open image's pending proposals as outlines;
// P shows or hides them; a click inside one selects it (the smallest one under the pointer);
// then a digit accepts it as that class, Enter as the selected class, X rejects it, Esc lets
// it go. Accept and reject reach the server as the canvas's "proposal" event.
const prop = {shown: false, layer: null, selected: null, selectedAt: 0};
const propLine = document.createElement('div');
propLine.className = 'bc-ann-line';
annLine.after(propLine);

const propLayer = () => (prop.layer && prop.layer.url === st.key) ? prop.layer : null;
const propItem = id => { const l = propLayer(); return l ? l.items.find(i => i.id === id) : null; };
hooks.layers.push(drawProposals);
hooks.drawn.push(proposalStatus);

function ringPath(item) {
  ctx.beginPath();
  for (const ring of item.rings) {
    ring.forEach(([x, y], i) => { const p = toCanvas(x, y); if (i) ctx.lineTo(p.x, p.y); else ctx.moveTo(p.x, p.y); });
    ctx.closePath();
  }
}
function drawProposals() {
  const l = propLayer();
  if (!prop.shown || !l) return;
  ctx.save();
  for (const item of l.items) {
    if (item.id === prop.selected) continue;
    ringPath(item); ctx.strokeStyle = 'rgba(0, 229, 255, 0.85)'; ctx.lineWidth = 1.5; ctx.stroke();
  }
  const chosen = propItem(prop.selected);
  if (chosen) {
    ringPath(chosen);
    ctx.fillStyle = 'rgba(250, 204, 21, 0.3)'; ctx.fill('evenodd');
    ctx.strokeStyle = '#facc15'; ctx.lineWidth = 3; ctx.stroke();
    const p = toCanvas(chosen.bbox[0], chosen.bbox[1] + chosen.bbox[3]), text = `IoU ${chosen.iou} · stability ${chosen.stability}`;
    ctx.font = 'bold 12px sans-serif'; ctx.textBaseline = 'top';
    ctx.fillStyle = 'rgba(0, 0, 0, 0.7)'; ctx.fillRect(p.x, p.y + 2, ctx.measureText(text).width + 6, 16);
    ctx.fillStyle = '#facc15'; ctx.fillText(text, p.x + 3, p.y + 4);
  }
  ctx.restore();
}
function proposalStatus() {
  const l = propLayer();
  const count = l ? l.items.length : 0, chosen = propItem(prop.selected);
  propLine.textContent = !l ? 'Proposals (P): none for this image yet (see the proposals line on the right)'
    : `Proposals (P): ${prop.shown ? 'shown' : 'hidden'} · ${count} pending`
      + (chosen ? ` · selected: predicted IoU ${chosen.iou} — a digit or Enter accepts it, X rejects it, Esc lets go` : prop.shown ? ' · click one to select it' : '');
  root.dataset.proposals = prop.shown && l ? count : 0;
  root.dataset.proposal = chosen ? chosen.id : '';
}
function inside(item, x, y) {  // even-odd over all rings
  let hit = false;
  for (const ring of item.rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) hit = !hit;
    }
  }
  return hit;
}
function proposalAt(x, y) {
  const l = propLayer();
  if (!l) return null;
  const under = l.items.filter(i => x >= i.bbox[0] && y >= i.bbox[1] && x <= i.bbox[0] + i.bbox[2]
    && y <= i.bbox[1] + i.bbox[3] && inside(i, x, y));
  return under.length ? under.reduce((a, b) => (b.area < a.area ? b : a)) : null;
}
function selectProposal(id) { prop.selected = id; prop.selectedAt = performance.now(); draw(); }
stage.addEventListener('pointerdown', ev => {  // before the canvas's own handler: a click on a proposal selects it
  if (!prop.shown || ann.tool !== 'prompt' || ev.button !== 0 || st.space || !value() || !st.display) return;
  const p = toImage(ev), hit = proposalAt(p.x, p.y);
  if (!hit) { if (prop.selected !== null) selectProposal(null); return; }
  ev.stopPropagation(); ev.preventDefault();
  selectProposal(hit.id);
}, true);

function decideProposal(action, klass) {
  const chosen = propItem(prop.selected);
  if (!chosen) return;
  const ms = Math.round(performance.now() - prop.selectedAt);
  // gone from the outlines at once (the server's answer confirms it), so a second key can't decide it twice
  prop.layer = {...prop.layer, items: prop.layer.items.filter(i => i.id !== chosen.id)};
  prop.selected = null;
  draw();
  trigger('proposal', {action, id: chosen.id, klass: klass || null, ms});
}
function proposalKey(ev) {
  if (!root.isConnected) { window.removeEventListener('keydown', proposalKey, true); return; }
  if (typing(ev) || ev.altKey || ev.metaKey || ev.ctrlKey || !value()) return;
  const k = ev.key, name = k.toLowerCase();
  let act = null;
  if (name === 'p') act = () => { prop.shown = !prop.shown; if (!prop.shown) prop.selected = null; draw(); };
  else if (prop.shown && propItem(prop.selected)) {
    if (/^[1-9]$/.test(k)) act = () => { pickRadio('ann-class', Number(k) - 1); decideProposal('accept', Number(k)); };
    else if (k === 'Enter' && !ev.shiftKey) act = () => decideProposal('accept', null);
    else if (name === 'x') act = () => decideProposal('reject', null);
    else if (k === 'Escape') act = () => selectProposal(null);
  }
  if (!act || ev.repeat) return;
  // before the page's and the canvas's own keys (those listen on the document)
  ev.preventDefault(); ev.stopImmediatePropagation();
  act();
}
window.addEventListener('keydown', proposalKey, true);
watch('proposals', () => {
  const l = props.proposals || null;
  prop.layer = l;
  if (prop.selected !== null && !propItem(prop.selected)) prop.selected = null;
  draw();
});
root.bc.proposals = {state: () => ({shown: prop.shown, selected: prop.selected, layer: propLayer()}), select: selectProposal,
                     at: (x, y) => { const hit = proposalAt(x, y); return hit ? hit.id : null; }};
prop.layer = props.proposals || null;
