// cnnlab demo page: give the model a picture (a file chosen or dropped on the page, or, for a
// digit model, a drawing), send it to /api/predict, show the answer. No dependencies. The
// picture goes to the server as it is (a PNG for a drawing), which prepares it with the same
// code as `cnnlab predict`: MNIST's preparation for a digit model, a resize for the others.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const drawArea = $("draw-area");
  const dropZone = $("drop-zone");
  const photo = $("photo");
  const dropHint = $("drop-hint");
  const fileInput = $("file");
  const overlay = $("drop-overlay");
  const inputCanvas = $("input");
  const statusEl = $("status");
  const predictionEl = $("prediction");
  const confidenceEl = $("confidence");
  const truthEl = $("truth");
  const barsEl = $("bars");
  const mapsEl = $("maps");
  const inputHint = $("input-hint");
  const randomButton = $("random");

  const STROKE = 20;            // px on the 280 px canvas: MNIST-like thickness
  const THROTTLE_MS = 100;      // at most one request per 100 ms while drawing
  const MAX_SIDE = 2000;        // the server's largest image side
  const MAX_URL_CHARS = 2000000; // a data URL this long still fits the server's 2 MB body
  const ROWS_LAYOUT_CLASSES = 12; // more classes than this: one bar per row

  // State visible to tests: number of results shown, the last one, the last error.
  const demo = { updates: 0, last: null, error: null, busy: false, model: null };
  window.cnnlabDemo = demo;

  let info = null;              // /api/model
  let bars = [];                // [{root, fill, pct}]
  let layerViews = new Map();   // layer name -> {canvases, h, w}
  let hasInk = false;
  let showingPhoto = false;
  let generation = 0;           // bumped by Clear / Random / a file: older answers are dropped
  let dirty = false, inflight = false, timer = null, lastSent = 0;
  let hints = { drawn: "", photo: "", mnist: "" };
  let idleText = "";

  const isDigitModel = () => info !== null && info.drawing;

  // ------------------------------------------------------------------ drawing
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
    ctx.fillStyle = "#fff";    // a dot for a tap
    ctx.beginPath();
    ctx.arc(last[0], last[1], STROKE / 2, 0, 2 * Math.PI);
    ctx.fill();
    hasInk = true;
    truthEl.hidden = true;     // the picture is now the user's
    inputHint.textContent = hints.drawn;
    schedule();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of (events.length ? events : [e])) strokeTo(point(ev));
    schedule();
  });
  const stop = (e) => {
    if (!drawing) return;
    drawing = false;
    if (pad.hasPointerCapture(e.pointerId)) pad.releasePointerCapture(e.pointerId);
    schedule(0);
  };
  pad.addEventListener("pointerup", stop);
  pad.addEventListener("pointercancel", stop);

  // ------------------------------------------------------------------ requests
  async function postPicture(image) {
    const res = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image, include_input: false }),
    });
    const body = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
    return { res, body };
  }

  function errorText(res, body) {
    if (res.status === 422 && /no digit/.test(body.detail || "")) {
      return showingPhoto ? "No digit found in the picture." : "No digit found: draw a bit more.";
    }
    return `Error: ${body.detail || res.status}`;
  }

  function schedule(delay) {
    if (!hasInk) return;
    dirty = true;
    if (inflight) return;      // sent again when the answer arrives
    const wait = delay === 0 ? 0 : Math.max(0, THROTTLE_MS - (performance.now() - lastSent));
    if (timer !== null) {
      if (delay !== 0) return;
      clearTimeout(timer);
    }
    timer = setTimeout(flush, wait);
  }

  async function flush() {
    timer = null;
    if (!dirty || inflight || !hasInk) return;
    dirty = false;
    inflight = true;
    demo.busy = true;
    lastSent = performance.now();
    const gen = generation;
    try {
      const url = pad.toDataURL("image/png");
      const { res, body } = await postPicture(url);
      if (gen !== generation) return;
      if (!res.ok) { showError(errorText(res, body)); return; }
      await render(body, { image: url });
      setStatus("Keep drawing, or clear and try another digit.");
    } catch (err) {
      if (gen === generation) showError(`The server did not answer (${err.message}).`);
    } finally {
      inflight = false;
      demo.busy = timer !== null;
      if (dirty && hasInk) schedule();
    }
  }

  function cancelDrawing() {
    generation += 1;
    dirty = false;
    if (timer !== null) { clearTimeout(timer); timer = null; }
  }

  // index: a test-set number (the error explorer loads an image by it); otherwise random
  async function randomDigit(index) {
    cancelDrawing();
    const gen = generation;
    demo.busy = true;
    setStatus("Fetching a test image…");
    try {
      const query = Number.isInteger(index) ? `?index=${index}` : "";
      const res = await fetch(`/api/random-test-image${query}`);
      const body = await res.json();
      if (gen !== generation) return;
      if (!res.ok) { showError(`Error: ${body.detail || res.status}`); return; }
      const img = await loadImage(body.image);
      showPad();
      clearPad();
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(img, 0, 0, pad.width, pad.height);
      hasInk = true;
      await render(body, { test_index: body.index });
      const right = body.label === body.prediction;
      truthEl.textContent = `True label: ${body.label} — ${right ? "correct" : "wrong"}`;
      truthEl.className = "truth " + (right ? "right" : "wrong");
      truthEl.dataset.label = String(body.label);
      truthEl.hidden = false;
      inputHint.textContent = hints.mnist;
      setStatus(`MNIST test image #${body.index}. Draw on it, or clear.`);
    } catch (err) {
      if (gen === generation) showError(`The server did not answer (${err.message}).`);
    } finally {
      if (gen === generation) demo.busy = false;
    }
  }

  // ------------------------------------------------------------------ image files
  function readDataURL(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`cannot read ${file.name || "the file"}`));
      reader.readAsDataURL(file);
    });
  }

  // The server takes bodies up to 2 MB and sides up to 2000 px: a larger picture is scaled
  // down here (a phone's photo), keeping its aspect ratio. Returns [dataURL, note].
  function shrink(img) {
    const w = img.naturalWidth, h = img.naturalHeight;
    let scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    const cv = document.createElement("canvas");
    for (let attempt = 0; attempt < 8; attempt++, scale *= 0.75) {
      cv.width = Math.max(1, Math.round(w * scale));
      cv.height = Math.max(1, Math.round(h * scale));
      const c = cv.getContext("2d");
      c.fillStyle = "#fff";
      c.fillRect(0, 0, cv.width, cv.height);
      c.drawImage(img, 0, 0, cv.width, cv.height);
      for (const url of [cv.toDataURL("image/png"), cv.toDataURL("image/jpeg", 0.92)]) {
        if (url.length <= MAX_URL_CHARS) {
          return [url, ` (scaled from ${w}×${h} to ${cv.width}×${cv.height} in the browser)`];
        }
      }
    }
    throw new Error("the picture is too large even when scaled down");
  }

  function isImageFile(file) {
    return !file.type || file.type.startsWith("image/");
  }

  async function sendFile(file) {
    if (!file) return;
    if (!info) { showError("The model is not loaded yet."); return; }
    cancelDrawing();
    const gen = generation;
    demo.busy = true;
    const name = file.name || "the picture";
    setStatus(`Reading ${name}…`);
    try {
      if (!isImageFile(file)) {
        throw new Error(`${name} is not an image (${file.type}): choose a PNG, JPEG, GIF, BMP or WebP`);
      }
      let url = await readDataURL(file);
      let note = "";
      let img = null;
      try { img = await loadImage(url); } catch (err) { img = null; }  // the server will say why
      if (img && (url.length > MAX_URL_CHARS ||
                  Math.max(img.naturalWidth, img.naturalHeight) > MAX_SIDE)) {
        [url, note] = shrink(img);
      }
      if (gen !== generation) return;
      showPhoto(img ? url : null, img !== null && Math.max(img.naturalWidth, img.naturalHeight) < 160);
      setStatus(`Classifying ${name}…`);
      const { res, body } = await postPicture(url);
      if (gen !== generation) return;
      if (!res.ok) { showError(`${name}: ${errorText(res, body)}`); return; }
      await render(body, { image: url });
      inputHint.textContent = hints.photo;
      setStatus(`${name}${note}. Choose or drop another image${isDigitModel() ? ", or clear and draw" : ""}.`);
    } catch (err) {
      if (gen === generation) showError(err.message);
    } finally {
      if (gen === generation) demo.busy = false;
    }
  }
  demo.sendFile = sendFile;

  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";      // choosing the same file again fires "change" again
    sendFile(file);
  });

  // Drag and drop anywhere on the page.
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
  let dragDepth = 0;
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    overlay.hidden = false;
  });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) overlay.hidden = true;
  });
  function onDrop(e) {
    if (!e.dataTransfer) return;
    e.preventDefault();        // otherwise the browser opens the file
    dragDepth = 0;
    overlay.hidden = true;
    const files = Array.from(e.dataTransfer.files || []);
    if (files.length === 0) { showError("Drop an image file (PNG, JPEG, GIF, BMP or WebP)."); return; }
    sendFile(files[0]);
  }
  document.addEventListener("drop", onDrop);
  dropZone.addEventListener("click", () => fileInput.click());

  // ------------------------------------------------------------------ display
  function setStatus(text) {
    statusEl.textContent = text;
    statusEl.classList.remove("error");
  }
  function showError(text) {
    statusEl.textContent = text;
    statusEl.classList.add("error");
    demo.error = text;
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("bad image"));
      img.src = src;
    });
  }

  function showPad() {
    showingPhoto = false;
    drawArea.hidden = false;
    dropZone.hidden = true;
    photo.hidden = true;
    photo.removeAttribute("src");
  }

  function showPhoto(url, small) {
    showingPhoto = true;
    hasInk = false;
    drawArea.hidden = true;
    dropZone.hidden = false;
    truthEl.hidden = true;
    if (url) {
      photo.src = url;
      photo.classList.toggle("small", Boolean(small));
      photo.hidden = false;
      dropHint.hidden = true;
    } else {                   // the browser cannot show it; the server may still read it
      photo.hidden = true;
      photo.removeAttribute("src");
      dropHint.hidden = false;
    }
  }

  function showEmptyStage() {
    if (isDigitModel()) { showPad(); clearPad(); return; }
    showingPhoto = false;
    drawArea.hidden = true;
    dropZone.hidden = false;
    photo.hidden = true;
    photo.removeAttribute("src");
    dropHint.hidden = false;
  }

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

  function tileSize(h) {
    return Math.min(h <= 8 ? h * 5 : h <= 16 ? h * 3 : h * 2, 120);
  }

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
        cv.width = w;
        cv.height = h;
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

  function resetDisplay() {
    predictionEl.textContent = "–";
    predictionEl.dataset.prediction = "";
    predictionEl.dataset.name = "";
    predictionEl.classList.remove("long");
    confidenceEl.textContent = "";
    truthEl.hidden = true;
    inputHint.textContent = isDigitModel() ? hints.drawn : hints.photo;
    for (const b of bars) {
      b.fill.style[b.rows ? "width" : "height"] = "0";
      b.pct.textContent = "";
      b.root.classList.remove("top");
    }
    inputCanvas.getContext("2d").clearRect(0, 0, inputCanvas.width, inputCanvas.height);
    for (const view of layerViews.values()) {
      for (const cv of view.canvases) cv.getContext("2d").clearRect(0, 0, cv.width, cv.height);
    }
  }

  function sizeInputCanvas(h, w) {
    inputCanvas.width = w;
    inputCanvas.height = h;
    const box = 84;
    const scale = box / Math.max(h, w);
    inputCanvas.style.width = `${Math.max(1, Math.round(w * scale))}px`;
    inputCanvas.style.height = `${Math.max(1, Math.round(h * scale))}px`;
  }

  async function drawInput(result) {
    const img = await loadImage(result.input_image);
    sizeInputCanvas(img.naturalHeight, img.naturalWidth);
    const c = inputCanvas.getContext("2d");
    c.clearRect(0, 0, inputCanvas.width, inputCanvas.height);
    c.drawImage(img, 0, 0);
  }

  // source: the picture as the server got it ({image} or {test_index}), for explain.js
  async function render(result, source) {
    const probs = result.probabilities;
    const names = result.classes || probs.map((_, k) => String(k));
    if (bars.length !== probs.length) buildBars(names);
    probs.forEach((p, k) => {
      bars[k].fill.style[bars[k].rows ? "width" : "height"] = `${(100 * p).toFixed(1)}%`;
      bars[k].pct.textContent = p >= 0.995 ? "100%" : p >= 0.001 ? `${(100 * p).toFixed(1)}%` : "";
      bars[k].root.classList.toggle("top", k === result.prediction);
      bars[k].root.dataset.prob = String(p);
    });
    const name = result.prediction_name !== undefined ? result.prediction_name : String(result.prediction);
    predictionEl.textContent = name;
    predictionEl.title = name;
    predictionEl.dataset.prediction = String(result.prediction);
    predictionEl.dataset.name = name;
    predictionEl.classList.toggle("long", name.length > 3);
    confidenceEl.textContent = `${(100 * probs[result.prediction]).toFixed(1)}% sure`;
    const [images] = await Promise.all([
      Promise.all(result.feature_maps.map((fm) => loadImage(fm.image))),
      drawInput(result),
    ]);
    result.feature_maps.forEach((fm, j) => {
      const view = layerViews.get(fm.layer);
      if (!view) return;
      const [h, w] = fm.shape;
      view.canvases.forEach((cv, i) => {
        const c = cv.getContext("2d");
        c.clearRect(0, 0, w, h);
        c.drawImage(images[j], 0, i * h, w, h, 0, 0, w, h);
      });
    });
    demo.last = result;
    demo.error = null;
    demo.updates += 1;
    document.body.dataset.updates = String(demo.updates);
    demo.source = source || null;
    document.dispatchEvent(new CustomEvent("cnnlab:rendered", { detail: { result, source } }));
  }

  // ------------------------------------------------------------------ start
  $("clear").addEventListener("click", () => {
    cancelDrawing();
    demo.busy = false;
    showEmptyStage();
    resetDisplay();
    setStatus(idleText);
  });
  randomButton.addEventListener("click", () => randomDigit());
  demo.loadTestImage = randomDigit;  // explorer.js: show test image N in the page

  function describe(m) {
    const [h, w, c] = m.input_shape.length === 3 ? m.input_shape : [...m.input_shape, 1];
    const colour = c === 3 ? "RGB" : "grayscale";
    const n = m.params.toLocaleString("en");
    return `model “${m.name}”: ${h}×${w} ${colour} input, ${m.num_classes} classes, ` +
      `${m.layers.length} layers, ${n} parameters`;
  }

  function configure(m) {
    info = m;
    demo.model = m;
    const [h, w] = m.preprocessing.size;
    const colour = m.preprocessing.color === "rgb" ? "RGB" : "grayscale";
    if (m.drawing) {
      hints = {
        drawn: "Your drawing cropped, fitted in 20×20 and centred in 28×28, as MNIST's digits were.",
        photo: "Your picture prepared as MNIST's digits were: white on black, cropped, fitted in 20×20, centred in 28×28.",
        mnist: "The MNIST test image as it is: MNIST's digits are already prepared.",
      };
      idleText = "Draw a digit (0–9) in the black square, or choose or drop a picture of one.";
      $("subtitle").textContent = "draw a digit or give a picture, watch the network";
      document.title = "cnnlab — draw a digit";
    } else {
      hints = {
        drawn: "",
        photo: `Your picture resized to ${h}×${w} (${colour}), as the model's training images were.`,
        mnist: "",
      };
      idleText = "Choose an image file, or drop one on the page.";
      $("subtitle").textContent = "give it a picture, watch the network";
    }
    randomButton.hidden = !m.test_images;
    $("model-name").textContent = describe(m);
    $("model-name").title = m.class_names.join(", ");
    showEmptyStage();
    resetDisplay();
    setStatus(idleText);
  }

  async function init() {
    clearPad();
    try {
      const res = await fetch("/api/model");
      const m = await res.json();
      buildBars(m.class_names);
      buildMaps(m.layers);
      configure(m);
      document.body.dataset.ready = "1";
    } catch (err) {
      showError(`Cannot reach the server (${err.message}).`);
    }
  }
  init();
})();
