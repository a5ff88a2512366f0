// SAM's prompt encoder + mask decoder in the browser, with ONNX Runtime Web (WASM).
//
// The server exports the model's decoder at S (basam_ui/onnx_decoder.py) and sends each
// image embedding once as a float16 payload (`embedding_payload`); a click then decodes here
// and draws the chosen candidate for the visible region at screen resolution.
//
// A classic script (no `export`), so a page may load it with <script src> or inline it; it
// defines globalThis.basamDecoder:
//
//   const decoder = await basamDecoder.BrowserDecoder.create({
//     ortUrl: "/vendor/onnxruntime-web/ort.wasm.min.js", modelUrl, embedding: url-or-ArrayBuffer,
//     size: S, inputSize: [h, w], originalSize: [H, W],
//     onProgress: (what, loaded, total) => ...});     // what: "model" or "embedding"
//   const out = await decoder.decode({points: [[x, y]], labels: [1], box: null, multimask: true});
//   decoder.drawMask(canvas, out, out.best, {x, y, width, height}, canvas.width, canvas.height);
//
// The model's session is made once per model URL (loading and one warm-up run take about a
// second) and shared by every image and both sides; its runs are queued, one at a time.
//
// Threads: ORT's WASM build uses worker threads only with SharedArrayBuffer, i.e. when the
// page is cross-origin isolated (COOP: same-origin + COEP: require-corp). The default is one
// thread everywhere; pass numThreads > 1 to use more where the page is isolated.
(function () {
  "use strict";

  const MAGIC = "BASAMF16";
  let ortLoading = null;

  // ONNX Runtime Web from its script URL: a .mjs by import(), else the UMD build by <script>
  // (in a Web Worker, which has no document, by importScripts).
  function loadOrt(ortUrl, numThreads = 1) {
    if (!ortLoading) {
      ortLoading = (async () => {
        const inPage = typeof document !== "undefined";
        const url = new URL(ortUrl, inPage ? document.baseURI : globalThis.location.href);
        let ort = globalThis.ort;
        if (!ort && url.pathname.endsWith(".mjs")) {
          ort = await import(url.href);
        } else if (!ort && !inPage) {
          importScripts(url.href);
          ort = globalThis.ort;
        } else if (!ort) {
          await new Promise((resolve, reject) => {
            const script = document.createElement("script");
            script.src = url.href;
            script.onload = resolve;
            script.onerror = () => reject(new Error(`could not load ONNX Runtime Web from ${url.href}`));
            document.head.appendChild(script);
          });
          ort = globalThis.ort;
        }
        if (!ort) throw new Error(`${url.href} did not define ONNX Runtime Web (globalThis.ort)`);
        ort.env.wasm.wasmPaths = new URL(".", url).href; // the .wasm/.mjs next to the script
        ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? Math.max(1, numThreads) : 1;
        return ort;
      })();
      ortLoading.catch(() => { ortLoading = null; });
    }
    return ortLoading;
  }

  // fp16 bits -> fp32, through a table of all 65536 values (built once).
  let halfTable = null;
  function halfToFloatTable() {
    if (halfTable) return halfTable;
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >> 10) & 0x1f;
      const fraction = h & 0x3ff;
      let value;
      if (exponent === 0) value = fraction * 2 ** -24; // subnormal
      else if (exponent === 31) value = fraction ? NaN : Infinity;
      else value = (1 + fraction / 1024) * 2 ** (exponent - 15);
      halfTable[h] = sign * value;
    }
    return halfTable;
  }

  // An embedding payload (ArrayBuffer) -> {dims, data: Float32Array}.
  function decodeEmbedding(buffer) {
    const view = new DataView(buffer);
    const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 8));
    if (magic !== MAGIC) throw new Error("not an embedding payload (it does not start with BASAMF16)");
    const ndim = view.getUint32(8, true);
    const dims = [];
    for (let i = 0; i < ndim; i++) dims.push(view.getUint32(12 + 4 * i, true));
    const count = dims.reduce((a, b) => a * b, 1);
    const offset = 12 + 4 * ndim;
    if (buffer.byteLength !== offset + 2 * count) throw new Error("embedding payload has the wrong length");
    const table = halfToFloatTable();
    const data = new Float32Array(count);
    if (offset % 2 === 0 && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) {
      const half = new Uint16Array(buffer, offset, count); // little-endian host: read in place
      for (let i = 0; i < count; i++) data[i] = table[half[i]];
    } else {
      for (let i = 0; i < count; i++) data[i] = table[view.getUint16(offset + 2 * i, true)];
    }
    return { dims, data };
  }

  // GET `url` as an ArrayBuffer, reporting (loaded, total) bytes as they arrive.
  async function fetchBytes(url, onProgress = null) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`could not load ${url}: HTTP ${response.status}`);
    const total = Number(response.headers.get("Content-Length")) || 0;
    if (!onProgress || !response.body) return response.arrayBuffer();
    const reader = response.body.getReader();
    const chunks = [];
    let loaded = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      onProgress(loaded, total);
    }
    const bytes = new Uint8Array(loaded);
    let at = 0;
    for (const chunk of chunks) { bytes.set(chunk, at); at += chunk.length; }
    return bytes.buffer;
  }

  // One ONNX Runtime session per model URL: {ort, session, run(feeds)}, runs one at a time.
  const models = new Map();
  // modelBytes: the model file when the caller has fetched it already (else it is fetched here).
  function loadModel({ ortUrl, modelUrl, size, numThreads = 1, onProgress = null, modelBytes = null }) {
    if (!models.has(modelUrl)) {
      const loading = (async () => {
        const ort = await loadOrt(ortUrl, numThreads);
        const bytes = modelBytes
          || await fetchBytes(modelUrl, onProgress && ((loaded, total) => onProgress("model", loaded, total)));
        const session = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
        let queue = Promise.resolve();
        const run = (feeds) => {
          const result = queue.then(() => session.run(feeds));
          queue = result.catch(() => {});
          return result;
        };
        // the first run of a session takes several times longer than the next ones
        const grid = size / 16, side = size / 4;
        await run({
          image_embeddings: new ort.Tensor("float32", new Float32Array(256 * grid * grid), [1, 256, grid, grid]),
          point_coords: new ort.Tensor("float32", new Float32Array([0, 0, 0, 0]), [1, 2, 2]),
          point_labels: new ort.Tensor("float32", new Float32Array([1, -1]), [1, 2]),
          mask_input: new ort.Tensor("float32", new Float32Array(side * side), [1, 1, side, side]),
          has_mask_input: new ort.Tensor("float32", new Float32Array([0]), [1]),
        });
        return { ort, session, run };
      })();
      models.set(modelUrl, loading);
      loading.catch(() => models.delete(modelUrl));
    }
    return models.get(modelUrl);
  }

  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  class BrowserDecoder {
    // options: ortUrl, modelUrl, embedding (URL or ArrayBuffer of an embedding payload),
    // size (S), inputSize [h, w], originalSize [H, W]; optional numThreads, modelBytes (the
    // model file, fetched already), and onProgress(what, loaded, total) with what "model" or
    // "embedding".
    static async create(options) {
      const { embedding, onProgress } = options;
      const bytes = typeof embedding === "string"
        ? fetchBytes(embedding, onProgress && ((loaded, total) => onProgress("embedding", loaded, total)))
        : Promise.resolve(embedding);
      const [model, buffer] = await Promise.all([loadModel(options), bytes]);
      return new BrowserDecoder(model, decodeEmbedding(buffer), options);
    }

    constructor(model, embedding, { size, inputSize, originalSize }) {
      const grid = size / 16;
      const want = [1, 256, grid, grid];
      if (embedding.dims.join() !== want.join()) {
        throw new Error(`the embedding is ${embedding.dims.join("x")}, expected ${want.join("x")} at S=${size}`);
      }
      const ort = model.ort;
      this.ort = ort;
      this.model = model;
      this.size = size;
      this.side = size / 4; // low-res logits are side x side
      this.inputSize = inputSize; // [h, w]
      this.originalSize = originalSize; // [H, W]
      this.embedding = new ort.Tensor("float32", embedding.data, want);
      this.noMask = new ort.Tensor("float32", new Float32Array(this.side * this.side), [1, 1, this.side, this.side]);
    }

    // The model's point_coords/point_labels for prompts in original pixels, as
    // Segmenter.predict_with: points clipped to the image's last pixel, the box to its
    // border, both scaled by (w / W, h / H) into the S frame (the model adds SAM's +0.5);
    // then the box's corners (labels 2, 3), or one padding point (-1) when there is no box.
    prompts({ points = [], labels = [], box = null }) {
      const [h, w] = this.inputSize;
      const [H, W] = this.originalSize;
      const sx = w / W, sy = h / H;
      if (points.length !== labels.length) throw new Error(`got ${points.length} points but ${labels.length} labels`);
      const coords = [], kinds = [];
      points.forEach(([x, y], i) => {
        if (labels[i] !== 0 && labels[i] !== 1) throw new Error(`point labels must be 1 or 0, got ${labels[i]}`);
        coords.push(clamp(x, 0, W - 1) * sx, clamp(y, 0, H - 1) * sy);
        kinds.push(labels[i]);
      });
      if (box) {
        const [x0, y0, x1, y1] = [clamp(box[0], 0, W), clamp(box[1], 0, H), clamp(box[2], 0, W), clamp(box[3], 0, H)];
        if (!(x1 > x0 && y1 > y0)) throw new Error(`box must have x1 > x0 and y1 > y0 inside the image, got ${box}`);
        coords.push(x0 * sx, y0 * sy, x1 * sx, y1 * sy);
        kinds.push(2, 3);
      } else if (points.length) {
        coords.push(0, 0);
        kinds.push(-1);
      }
      const n = kinds.length;
      return {
        point_coords: new this.ort.Tensor("float32", new Float32Array(coords), [1, n, 2]),
        point_labels: new this.ort.Tensor("float32", new Float32Array(kinds), [1, n]),
      };
    }

    // One click's prompts -> {lowRes: Float32Array (count x side x side), scores, count, side,
    // best (index of the highest score), ms}. maskInput: low-res logits (side x side) of an
    // earlier candidate, or null. multimask: three candidates, else one.
    async decode({ points = [], labels = [], box = null, maskInput = null, multimask = true } = {}) {
      if (!points.length && !box && !maskInput) throw new Error("no prompt: give at least one point, a box or a mask input");
      const started = performance.now();
      const area = this.side * this.side;
      let mask = this.noMask;
      if (maskInput) {
        if (maskInput.length !== area) throw new Error(`mask input must be ${this.side}x${this.side} low-res logits`);
        mask = new this.ort.Tensor("float32", Float32Array.from(maskInput), [1, 1, this.side, this.side]);
      }
      const feeds = {
        image_embeddings: this.embedding,
        ...this.prompts({ points, labels, box }),
        mask_input: mask,
        has_mask_input: new this.ort.Tensor("float32", new Float32Array([maskInput ? 1 : 0]), [1]),
      };
      const out = await this.model.run(feeds);
      const all = out.low_res_masks.data, allScores = out.iou_predictions.data;
      const first = multimask ? 1 : 0, count = multimask ? 3 : 1;
      const lowRes = all.slice(first * area, (first + count) * area);
      const scores = allScores.slice(first, first + count);
      let best = 0;
      for (let i = 1; i < count; i++) if (scores[i] > scores[best]) best = i;
      return { lowRes, scores, count, side: this.side, best, ms: performance.now() - started };
    }

    // Candidate `index` of `decoded` as an ImageData of outWidth x outHeight covering `region`
    // ({x, y, width, height} in original pixels; default the whole image): bilinear from the
    // low-res logits with decoder.logits_to_image's map (output pixel j of a 1:1 view at x is
    // low-res (x + j + 0.5) * w / (4 W) - 0.5, clamped as PyTorch's interpolate clamps, in
    // float32 as PyTorch computes it), logits > 0 drawn in `color` [r, g, b, a], the rest clear.
    maskImage(decoded, index, region = null, outWidth = null, outHeight = null, color = [30, 144, 255, 255]) {
      const [h, w] = this.inputSize;
      const [H, W] = this.originalSize;
      const r = region || { x: 0, y: 0, width: W, height: H };
      outWidth = outWidth || Math.round(r.width);
      outHeight = outHeight || Math.round(r.height);
      const bits = this.maskBits(decoded, index, r, outWidth, outHeight);
      const image = new ImageData(outWidth, outHeight);
      const px = image.data;
      for (let p = 0; p < bits.length; p++) {
        if (bits[p]) {
          const at = 4 * p;
          px[at] = color[0]; px[at + 1] = color[1]; px[at + 2] = color[2]; px[at + 3] = color[3];
        }
      }
      return image;
    }

    // Candidate `index` of `decoded` as outWidth x outHeight bytes, 1 inside the mask (logits
    // > 0) and 0 outside, for `region` (original pixels; default the whole image): maskImage's
    // pixels without the colours.
    maskBits(decoded, index, region = null, outWidth = null, outHeight = null) {
      const [h, w] = this.inputSize;
      const [H, W] = this.originalSize;
      const r = region || { x: 0, y: 0, width: W, height: H };
      outWidth = outWidth || Math.round(r.width);
      outHeight = outHeight || Math.round(r.height);
      const side = decoded.side;
      const logits = decoded.lowRes.subarray(index * side * side, (index + 1) * side * side);
      // logits_to_image crops ceil(h / 4) + 1 low-res rows (and columns) before resizing
      const rows = this._taps(r.y, r.height / outHeight, (4 * H) / h, outHeight, Math.min(Math.ceil(h / 4) + 1, side));
      const cols = this._taps(r.x, r.width / outWidth, (4 * W) / w, outWidth, Math.min(Math.ceil(w / 4) + 1, side));
      const bits = new Uint8Array(outWidth * outHeight);
      for (let j = 0; j < outHeight; j++) {
        const top = rows.i0[j] * side, bottom = rows.i1[j] * side, ly1 = rows.l1[j], ly0 = 1 - ly1, row = j * outWidth;
        for (let i = 0; i < outWidth; i++) {
          const a = cols.i0[i], b = cols.i1[i], lx1 = cols.l1[i], lx0 = 1 - lx1;
          const value = ly0 * (lx0 * logits[top + a] + lx1 * logits[top + b])
            + ly1 * (lx0 * logits[bottom + a] + lx1 * logits[bottom + b]);
          if (value > 0) bits[row + i] = 1;
        }
      }
      return bits;
    }

    // maskImage drawn into `canvas` (its 2-D context) at (0, 0); returns the ImageData.
    drawMask(canvas, decoded, index, region = null, outWidth = null, outHeight = null, color = undefined) {
      const image = this.maskImage(decoded, index, region, outWidth || canvas.width, outHeight || canvas.height, color);
      canvas.getContext("2d").putImageData(image, 0, 0);
      return image;
    }

    // Per output pixel along one axis: the two low-res taps and the weight of the second,
    // as PyTorch's upsample_bilinear2d (align_corners=False) computes them in float32.
    // start: the region's first original pixel; step: original pixels per output pixel;
    // scale: logits_to_image's scale factor 4 H / h; count: output pixels; size: low-res
    // pixels available.
    _taps(start, step, scale, count, size) {
      const f = Math.fround;
      const ratio = f(step / scale); // low-res pixels per output pixel; at 1:1 PyTorch's 1 / scale
      const offset = start / step; // the region's start in output pixels
      const i0 = new Int32Array(count), i1 = new Int32Array(count), l1 = new Float32Array(count);
      for (let j = 0; j < count; j++) {
        const source = Math.max(f(f(ratio * f(offset + j + 0.5)) - 0.5), 0);
        const index = Math.min(Math.floor(source), size - 1);
        i0[j] = index;
        i1[j] = index < size - 1 ? index + 1 : index;
        l1[j] = clamp(source - index, 0, 1);
      }
      return { i0, i1, l1 };
    }
  }

  globalThis.basamDecoder = { BrowserDecoder, loadOrt, loadModel, decodeEmbedding, fetchBytes };
})();
