// cnnlab's static demo (written by `cnnlab export MODEL --web DIR`): the model runs in this page
// with onnxruntime-web (its files in ./ort/, nothing fetched from any other origin). A drawing
// (or a chosen picture) is prepared here as `cnnlab predict` prepares it in Python
// (cnnlab.preprocess.prepare_array for a digit model, step by step: see prepareDigit), then
// model.onnx gives the class probabilities and every layer's output (the feature maps).
import * as ort from "./ort/ort.wasm.min.mjs";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const inputCanvas = $("input");
const statusEl = $("status");
const predictionEl = $("prediction");
const confidenceEl = $("confidence");
const barsEl = $("bars");
const mapsEl = $("maps");
const inputHint = $("input-hint");
const drawArea = $("draw-area");
const dropZone = $("drop-zone");
const photo = $("photo");
const dropHint = $("drop-hint");
const overlay = $("drop-overlay");

const STROKE = 20;              // px on the 280 px canvas: MNIST-like thickness
const ROWS_LAYOUT_CLASSES = 12; // more classes than this: one bar per row

// State visible to tests: the prepared input (H*W*C numbers, row-major, channels last),
// the probabilities, the number of results shown, whether work is pending, the last error.
const demo = { updates: 0, input: null, probabilities: null, prediction: null,
               busy: false, error: null, model: null, ready: false };
window.cnnlabDemo = demo;

let spec = null;          // model.json
let session = null;       // ort.InferenceSession
let bars = [];
let layerViews = new Map();
let hasInk = false;
let generation = 0;
let running = false, dirty = false;

// ---------------------------------------------------------------- the preparation (Python's)
// Python's round(): halves go to the even neighbour.
function roundHalfEven(v) {
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function median(values) {      // numpy.median: the mean of the two middle values
  const s = Float64Array.from(values).sort();
  const n = s.length, m = n >> 1;
  return n % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// RGBA bytes -> one grayscale picture in [0, 1] (float64), or two (on white, on black) when
// some pixels are transparent: preprocess._to_gray.
function toGray(rgba, w, h) {
  const n = w * h, u = 1 / 255;
  const gray = new Float64Array(n), alpha = new Float64Array(n);
  let minAlpha = 1;
  for (let i = 0; i < n; i++) {
    const r = rgba[4 * i] * u, g = rgba[4 * i + 1] * u, b = rgba[4 * i + 2] * u;
    gray[i] = r * 0.299 + g * 0.587 + b * 0.114;
    alpha[i] = rgba[4 * i + 3] * u;
    if (alpha[i] < minAlpha) minAlpha = alpha[i];
  }
  if (minAlpha >= 1) return [gray];
  const onWhite = new Float64Array(n), onBlack = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const visible = alpha[i] * gray[i];
    onWhite[i] = visible + (1 - alpha[i]);
    onBlack[i] = visible;
  }
  return [onWhite, onBlack];
}

// Polarity, background and noise removal: preprocess._ink. Returns {ink, threshold} or null.
function inkOf(gray, w, h) {
  const border = [];
  for (let x = 0; x < w; x++) border.push(gray[x]);
  for (let x = 0; x < w; x++) border.push(gray[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) border.push(gray[y * w]);
  for (let y = 0; y < h; y++) border.push(gray[y * w + w - 1]);
  let level = median(border);
  const med = level;
  const invert = level > 0.5;
  if (invert) level = 1 - level;
  const noise = 1.4826 * median(border.map((v) => Math.abs(v - med)));
  const ink = new Float64Array(w * h);
  let peak = 0;
  for (let i = 0; i < ink.length; i++) {
    const v = invert ? 1 - gray[i] : gray[i];
    const c = Math.max(v - level - 3 * noise, 0);
    ink[i] = c;
    if (c > peak) peak = c;
  }
  if (peak < 0.1) return null;
  let total = 0;
  for (let i = 0; i < ink.length; i++) { ink[i] /= peak; total += ink[i]; }
  return { ink, total, threshold: Math.max(0.05, 3 * noise / peak) };
}

// Pillow's Lanczos (a = 3) resampling coefficients: libImaging/Resample.c, precompute_coeffs.
function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}
function lanczos(x) { return (-3 <= x && x < 3) ? sinc(x) * sinc(x / 3) : 0; }

function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 3 * filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(xmax, 0));
    let ww = 0;
    for (let x = 0; x < xmax; x++) { k[x] = lanczos((x + xmin - center + 0.5) * ss); ww += k[x]; }
    if (ww !== 0) for (let x = 0; x < xmax; x++) k[x] /= ww;
    out.push({ xmin, k });
  }
  return out;
}

// A float32 ("F" mode) image resized as Pillow does: a horizontal pass (if the width changes),
// then a vertical one (if the height changes), each sum in float64 stored in float32.
function resizeLanczos(src, w, h, newW, newH) {
  let cur = Float32Array.from(src), cw = w;
  if (newW !== w) {
    const co = coefficients(w, newW);
    const tmp = new Float32Array(newW * h);
    for (let y = 0; y < h; y++) {
      for (let xx = 0; xx < newW; xx++) {
        const { xmin, k } = co[xx];
        let s = 0;
        for (let x = 0; x < k.length; x++) s += cur[y * cw + x + xmin] * k[x];
        tmp[y * newW + xx] = s;
      }
    }
    cur = tmp; cw = newW;
  }
  if (newH !== h) {
    const co = coefficients(h, newH);
    const tmp = new Float32Array(cw * newH);
    for (let yy = 0; yy < newH; yy++) {
      const { xmin: ymin, k } = co[yy];
      for (let x = 0; x < cw; x++) {
        let s = 0;
        for (let y = 0; y < k.length; y++) s += cur[(y + ymin) * cw + x] * k[y];
        tmp[yy * cw + x] = s;
      }
    }
    cur = tmp;
  }
  return cur;
}

// An RGBA picture -> the 28x28 float32 input, white digit on black, as cnnlab.preprocess
// prepares one (its module docstring lists the steps). null: no digit.
function prepareDigit(rgba, w, h) {
  const found = toGray(rgba, w, h).map((g) => inkOf(g, w, h)).filter((c) => c !== null);
  if (found.length === 0) return null;
  let best = found[0];
  for (const c of found.slice(1)) if (c.total < best.total) best = c;
  const { ink, threshold } = best;
  let r0 = h, r1 = -1, c0 = w, c1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (ink[y * w + x] > threshold) {
        if (y < r0) r0 = y;
        if (y > r1) r1 = y;
        if (x < c0) c0 = x;
        if (x > c1) c1 = x;
      }
    }
  }
  const ch = r1 - r0 + 1, cw = c1 - c0 + 1;
  const crop = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = ink[(y + r0) * w + x + c0];
  const scale = 20 / Math.max(ch, cw);
  const newW = Math.max(1, roundHalfEven(cw * scale)), newH = Math.max(1, roundHalfEven(ch * scale));
  const fitted = resizeLanczos(crop, cw, ch, newW, newH);
  const digit = new Float64Array(fitted.length);
  let total = 0, rowMoment = 0, colMoment = 0;
  for (let i = 0; i < digit.length; i++) digit[i] = Math.min(Math.max(fitted[i], 0), 1);
  for (let y = 0; y < newH; y++) {
    for (let x = 0; x < newW; x++) {
      const v = digit[y * newW + x];
      total += v; rowMoment += v * y; colMoment += v * x;
    }
  }
  if (total <= 0) return null;
  const top = roundHalfEven(14 - rowMoment / total), left = roundHalfEven(14 - colMoment / total);
  const out = new Float32Array(28 * 28);
  for (let y = Math.max(top, 0); y < Math.min(top + newH, 28); y++) {
    for (let x = Math.max(left, 0); x < Math.min(left + newW, 28); x++) {
      out[y * 28 + x] = digit[(y - top) * newW + (x - left)];
    }
  }
  return out;
}

// A picture for a "resize" model: the browser scales it to H x W (its own smoothing, close to
// but not exactly Pillow's bilinear), then pixels * float32(1/255), as cnnlab scales 8-bit ones.
function prepareResized(source) {
  const [h, w, c] = spec.input_shape;
  const cv = document.createElement("canvas");
  cv.width = w; cv.height = h;
  const cx = cv.getContext("2d", { willReadFrequently: true });
  cx.imageSmoothingEnabled = true;
  cx.imageSmoothingQuality = "high";
  cx.drawImage(source, 0, 0, w, h);
  const px = cx.getImageData(0, 0, w, h).data;
  const u = Math.fround(1 / 255);
  const out = new Float32Array(h * w * c);
  for (let i = 0; i < h * w; i++) {
    if (c === 3) {
      for (let k = 0; k < 3; k++) out[3 * i + k] = Math.fround(px[4 * i + k] * u);
    } else {  // ITU-R 601-2 luma, as Pillow's convert("L")
      const l = Math.round((px[4 * i] * 299 + px[4 * i + 1] * 587 + px[4 * i + 2] * 114) / 1000);
      out[i] = Math.fround(l * u);
    }
  }
  return out;
}

// ---------------------------------------------------------------- inference and display
async function classify(input) {
  const [h, w, c] = spec.input_shape;
  const feeds = { input: new ort.Tensor("float32", input, [1, h, w, c]) };
  const mapLayers = spec.layers.filter((l) => l.feature_maps);
  const results = await session.run(feeds, ["output", ...mapLayers.map((l) => l.output)]);
  const probs = Array.from(results.output.data);
  const maps = mapLayers.map((l) => ({ layer: l, data: results[l.output].data }));
  return { probs, maps };
}

function render(input, probs, maps) {
  let best = 0;
  for (let k = 1; k < probs.length; k++) if (probs[k] > probs[best]) best = k;
  probs.forEach((p, k) => {
    const b = bars[k];
    b.fill.style[b.rows ? "width" : "height"] = `${(100 * p).toFixed(1)}%`;
    b.pct.textContent = p >= 0.995 ? "100%" : p >= 0.001 ? `${(100 * p).toFixed(1)}%` : "";
    b.root.classList.toggle("top", k === best);
    b.root.dataset.prob = String(p);
  });
  const name = spec.class_names[best];
  predictionEl.textContent = name;
  predictionEl.title = name;
  predictionEl.dataset.prediction = String(best);
  predictionEl.dataset.name = name;
  predictionEl.classList.toggle("long", name.length > 3);
  confidenceEl.textContent = `${(100 * probs[best]).toFixed(1)}% sure`;
  drawInput(input);
  for (const { layer, data } of maps) drawMaps(layer, data);
  demo.input = Array.from(input);
  demo.probabilities = probs;
  demo.prediction = best;
  demo.error = null;
  demo.updates += 1;
  document.body.dataset.updates = String(demo.updates);
}

function drawInput(input) {
  const [h, w, c] = spec.input_shape;
  const img = inputCanvas.getContext("2d").createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    for (let k = 0; k < 3; k++) img.data[4 * i + k] = Math.round(255 * input[c === 3 ? 3 * i + k : i]);
    img.data[4 * i + 3] = 255;
  }
  inputCanvas.getContext("2d").putImageData(img, 0, 0);
}

// One layer's (1, H, W, C) output: map c scaled from black = min(0, its minimum) to white = its
// maximum, as cnnlab serve draws them.
function drawMaps(layer, data) {
  const view = layerViews.get(layer.name);
  if (!view) return;
  const { canvases, h, w } = view;
  const c = canvases.length;
  for (let m = 0; m < c; m++) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < h * w; i++) {
      const v = data[i * c + m];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const base = Math.min(lo, 0), span = hi - base;
    const s = span > 0 ? 255 / span : 0;
    const cx = canvases[m].getContext("2d");
    const img = cx.createImageData(w, h);
    for (let i = 0; i < h * w; i++) {
      const v = Math.min(Math.max((data[i * c + m] - base) * s, 0), 255);
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    cx.putImageData(img, 0, 0);
  }
}

function setStatus(text) { statusEl.textContent = text; statusEl.classList.remove("error"); }
function showError(text) { statusEl.textContent = text; statusEl.classList.add("error"); demo.error = text; }

// Run the model on what is on the pad now; while it runs, later strokes wait for one more run.
async function update() {
  if (!session || !hasInk) return;
  if (running) { dirty = true; return; }
  running = true;
  demo.busy = true;
  const gen = generation;
  try {
    do {
      dirty = false;
      const px = ctx.getImageData(0, 0, pad.width, pad.height).data;
      const input = prepareDigit(px, pad.width, pad.height);
      if (gen !== generation) return;
      if (input === null) { showError("No digit found: draw a bit more."); continue; }
      const { probs, maps } = await classify(input);
      if (gen !== generation) return;
      render(input, probs, maps);
      setStatus("Keep drawing, or clear and try another digit.");
    } while (dirty && gen === generation);
  } catch (err) {
    showError(`The model failed: ${err.message}`);
  } finally {
    running = false;
    demo.busy = false;
  }
}

async function classifyFile(file) {
  if (!file || !session) return;
  generation += 1;
  const gen = generation;
  demo.busy = true;
  try {
    const url = URL.createObjectURL(file);
    const img = await new Promise((resolve, reject) => {
      const im = new Image();
      im.onload = () => resolve(im);
      im.onerror = () => reject(new Error(`${file.name || "the file"} is not an image the browser reads`));
      im.src = url;
    });
    let input;
    if (spec.drawing) {
      const cv = document.createElement("canvas");
      cv.width = img.naturalWidth; cv.height = img.naturalHeight;
      const cx = cv.getContext("2d", { willReadFrequently: true });
      cx.drawImage(img, 0, 0);
      input = prepareDigit(cx.getImageData(0, 0, cv.width, cv.height).data, cv.width, cv.height);
      if (input === null) { showError(`${file.name}: no digit found in the picture.`); return; }
    } else {
      input = prepareResized(img);
    }
    showPhoto(url);
    const { probs, maps } = await classify(input);
    if (gen !== generation) return;
    render(input, probs, maps);
    setStatus(`${file.name}. Choose or drop another image${spec.drawing ? ", or clear and draw" : ""}.`);
  } catch (err) {
    showError(err.message);
  } finally {
    if (gen === generation) demo.busy = false;
  }
}

// ---------------------------------------------------------------- drawing and files
function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

let drawing = false, last = null;
function strokeTo(p) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = STROKE;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
}

pad.addEventListener("pointerdown", (e) => {
  if (e.button !== undefined && e.button > 0) return;
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  drawing = true;
  last = point(e);
  ctx.fillStyle = "#fff";
  ctx.beginPath();
  ctx.arc(last[0], last[1], STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
  hasInk = true;
  update();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) strokeTo(point(ev));
  update();
});
const stop = (e) => {
  if (!drawing) return;
  drawing = false;
  if (pad.hasPointerCapture(e.pointerId)) pad.releasePointerCapture(e.pointerId);
  update();
};
pad.addEventListener("pointerup", stop);
pad.addEventListener("pointercancel", stop);

function showPad() {
  drawArea.hidden = false;
  dropZone.hidden = true;
  photo.hidden = true;
}

function showPhoto(url) {
  hasInk = false;
  drawArea.hidden = true;
  dropZone.hidden = false;
  photo.src = url;
  photo.hidden = false;
  dropHint.hidden = true;
}

function showEmptyStage() {
  if (spec.drawing) { showPad(); clearPad(); return; }
  drawArea.hidden = true;
  dropZone.hidden = false;
  photo.hidden = true;
  dropHint.hidden = false;
}

$("file").addEventListener("change", () => {
  const input = $("file");
  const file = input.files && input.files[0];
  input.value = "";
  classifyFile(file);
});
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
let dragDepth = 0;
document.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault(); dragDepth += 1; overlay.hidden = false;
});
document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
document.addEventListener("dragleave", (e) => {
  if (!hasFiles(e)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) overlay.hidden = true;
});
document.addEventListener("drop", (e) => {
  if (!e.dataTransfer) return;
  e.preventDefault(); dragDepth = 0; overlay.hidden = true;
  const files = Array.from(e.dataTransfer.files || []);
  if (files.length) classifyFile(files[0]);
});
dropZone.addEventListener("click", () => $("file").click());

$("clear").addEventListener("click", () => {
  generation += 1;
  dirty = false;
  showEmptyStage();
  for (const b of bars) {
    b.fill.style[b.rows ? "width" : "height"] = "0";
    b.pct.textContent = "";
    b.root.classList.remove("top");
  }
  predictionEl.textContent = "–";
  predictionEl.dataset.prediction = "";
  confidenceEl.textContent = "";
  inputCanvas.getContext("2d").clearRect(0, 0, inputCanvas.width, inputCanvas.height);
  for (const view of layerViews.values()) {
    for (const cv of view.canvases) cv.getContext("2d").clearRect(0, 0, cv.width, cv.height);
  }
  setStatus(idleText());
});

// ---------------------------------------------------------------- building the page
function buildBars(names) {
  const n = names.length;
  const longest = Math.max(...names.map((s) => s.length));
  const rows = n > ROWS_LAYOUT_CLASSES || longest * n > 72;
  barsEl.classList.toggle("rows", rows);
  barsEl.style.setProperty("--classes", n);
  barsEl.textContent = "";
  bars = [];
  for (let k = 0; k < n; k++) {
    const root = document.createElement("div");
    root.className = "bar";
    root.dataset.class = String(k);
    root.dataset.name = names[k];
    const pct = document.createElement("span");
    pct.className = "pct";
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    track.appendChild(fill);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = names[k];
    label.title = names[k];
    if (rows) root.append(label, track, pct); else root.append(pct, track, label);
    barsEl.appendChild(root);
    bars.push({ root, fill, pct, rows });
  }
}

function tileSize(h) { return Math.min(h <= 8 ? h * 5 : h <= 16 ? h * 3 : h * 2, 120); }

function buildMaps(layers) {
  mapsEl.textContent = "";
  layerViews = new Map();
  for (const layer of layers.filter((l) => l.feature_maps)) {
    const [h, w, c] = layer.output_shape;
    const section = document.createElement("div");
    section.className = "layer";
    section.dataset.layer = layer.name;
    const title = document.createElement("h3");
    title.textContent = layer.name;
    const small = document.createElement("small");
    small.textContent = `${layer.type} · ${c} maps of ${h}×${w}`;
    title.appendChild(small);
    const tiles = document.createElement("div");
    tiles.className = "tiles";
    const canvases = [];
    const size = tileSize(h);
    for (let i = 0; i < c; i++) {
      const cv = document.createElement("canvas");
      cv.width = w; cv.height = h;
      cv.style.width = `${Math.round(size * w / h)}px`;
      cv.style.height = `${size}px`;
      cv.title = `${layer.name}, map ${i}`;
      tiles.appendChild(cv);
      canvases.push(cv);
    }
    section.append(title, tiles);
    mapsEl.appendChild(section);
    layerViews.set(layer.name, { canvases, h, w });
  }
}

function idleText() {
  return spec.drawing ? "Draw a digit (0–9) in the black square, or choose or drop a picture of one."
    : "Choose an image file, or drop one on the page.";
}

async function init() {
  clearPad();
  try {
    const res = await fetch("model.json");
    if (!res.ok) throw new Error(`model.json: HTTP ${res.status}`);
    spec = await res.json();
    demo.model = spec;
    ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
    ort.env.wasm.numThreads = 1;   // static hosts rarely send the headers threads need
    const bytes = new Uint8Array(await (await fetch("model.onnx")).arrayBuffer());
    session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
    const [h, w, c] = spec.input_shape;
    inputCanvas.width = w; inputCanvas.height = h;
    buildBars(spec.class_names);
    buildMaps(spec.layers);
    $("model-name").textContent = `model “${spec.name}”: ${h}×${w} ${c === 3 ? "RGB" : "grayscale"} ` +
      `input, ${spec.num_classes} classes, ${spec.layers.length} layers, ` +
      `${spec.params.toLocaleString("en")} parameters`;
    $("ort-version").textContent = `onnxruntime-web ${ort.env.versions?.web || spec.onnxruntime_web}`;
    inputHint.textContent = spec.drawing
      ? "Your drawing cropped, fitted in 20×20 and centred in 28×28, as MNIST's digits were."
      : `Your picture resized to ${h}×${w} by the browser.`;
    if (spec.drawing) {
      $("subtitle").textContent = "draw a digit, watch the network (in your browser)";
      document.title = "cnnlab — draw a digit";
    }
    showEmptyStage();
    setStatus(idleText());
    demo.ready = true;
    document.body.dataset.ready = "1";
  } catch (err) {
    showError(`Cannot load the model (${err.message}). Open this page through a web server ` +
              "(e.g. python -m http.server), not as a file.");
  }
}
init();
