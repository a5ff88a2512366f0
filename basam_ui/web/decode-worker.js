// One side's mask decoder in a Web Worker: the page (common/decode.js) makes one per side, so
// that the two sides of a click decode at the same time on two cores, each with its own ONNX
// Runtime instance (decoder.js; one thread each, so no cross-origin isolation is needed).
//
// Messages in, answered one at a time in the order they came (each carries an `id`):
//   {type: "load", decoderJs, ortUrl, modelUrl, modelBytes, embeddingUrl, size, inputSize, originalSize}
//       -> {type: "progress", what: "embedding", loaded, total}..., then {type: "loaded", ms}
//   {type: "decode", embeddingUrl, prompt: {points, labels, box, multimask}, view, grid}
//       -> {type: "decoded", scores, best, count, ms, renderMs, bits}: `bits` is the best
//          candidate for `view` ({region, width, height}: maskBits' arguments), or null;
//          then {type: "grid", bits}: the same candidate on the whole image at grid.width x
//          grid.height (the page measures the IoU between the sides on it)
//   {type: "render", of: an earlier decode's id, index, view} -> {type: "rendered", bits}
// A failure answers {type: "error", message}. Bits are Uint8Arrays (1 inside), transferred.
"use strict";

const KEEP = 4;  // embeddings kept per worker (a setting toggled back decodes at once)
const decoders = new Map();  // embedding URL -> BrowserDecoder, least recently used first
const decodes = new Map();  // decode id -> {decoder, decoded}, the last few (re-drawn on zoom or a pick)
let queue = Promise.resolve();
let warmups = 0;

self.onmessage = (event) => {
  const message = event.data;
  queue = queue.then(() => handle(message)).catch((error) => {
    self.postMessage({ type: "error", id: message.id, message: String((error && error.message) || error) });
  });
};

async function handle(message) {
  const { id } = message;
  if (message.type === "load") {
    const started = performance.now();
    if (!self.basamDecoder) importScripts(message.decoderJs);
    if (!decoders.has(message.embeddingUrl)) {
      const decoder = await self.basamDecoder.BrowserDecoder.create({
        ortUrl: message.ortUrl, modelUrl: message.modelUrl, modelBytes: message.modelBytes,
        embedding: message.embeddingUrl, size: message.size, inputSize: message.inputSize,
        originalSize: message.originalSize,
        onProgress: (what, loaded, total) => self.postMessage({ type: "progress", id, what, loaded, total }),
      });
      // WebAssembly is compiled in tiers: the optimised code arrives after a few runs, so
      // run a couple here (once per worker) rather than on the first clicks
      for (; warmups < 2; warmups++) await decoder.decode({ points: [[0, 0]], labels: [1] });
      decoders.set(message.embeddingUrl, decoder);
      while (decoders.size > KEEP) decoders.delete(decoders.keys().next().value);
    }
    self.postMessage({ type: "loaded", id, ms: performance.now() - started });
  } else if (message.type === "decode") {
    const decoder = decoders.get(message.embeddingUrl);
    if (!decoder) throw new Error("this embedding is not loaded");
    decoders.delete(message.embeddingUrl);
    decoders.set(message.embeddingUrl, decoder);
    const decoded = await decoder.decode(message.prompt);
    decodes.set(id, { decoder, decoded });
    while (decodes.size > 2) decodes.delete(decodes.keys().next().value);
    const started = performance.now();
    const bits = bitsFor(decoder, decoded, decoded.best, message.view);
    const renderMs = performance.now() - started;
    self.postMessage({ type: "decoded", id, scores: Array.from(decoded.scores), best: decoded.best, count: decoded.count,
                       ms: decoded.ms, renderMs, bits }, bits ? [bits.buffer] : []);
    const grid = message.grid && decoder.maskBits(decoded, decoded.best, null, message.grid.width, message.grid.height);
    self.postMessage({ type: "grid", id, bits: grid }, grid ? [grid.buffer] : []);
  } else if (message.type === "render") {
    const found = decodes.get(message.of);
    if (!found) throw new Error("that decode is no longer kept");
    const bits = bitsFor(found.decoder, found.decoded, message.index, message.view);
    self.postMessage({ type: "rendered", id, bits }, bits ? [bits.buffer] : []);
  } else {
    throw new Error(`unknown message ${message.type}`);
  }
}

function bitsFor(decoder, decoded, index, view) {
  if (!view) return null;
  if (!(index >= 0 && index < decoded.count)) throw new Error(`no candidate ${index}`);
  return decoder.maskBits(decoded, index, view.region, view.width, view.height);
}
