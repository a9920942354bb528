// cnnlab demo page: draw on the canvas, send it to /api/predict, show the answer.
// No dependencies. The drawing goes to the server as a PNG, which prepares it with
// the same code as `cnnlab predict`.
"use strict";

(() => {
  const pad = document.getElementById("pad");
  const ctx = pad.getContext("2d");
  const inputCanvas = document.getElementById("input");
  const statusEl = document.getElementById("status");
  const predictionEl = document.getElementById("prediction");
  const confidenceEl = document.getElementById("confidence");
  const truthEl = document.getElementById("truth");
  const barsEl = document.getElementById("bars");
  const mapsEl = document.getElementById("maps");
  const inputHint = document.getElementById("input-hint");
  const DRAWN_HINT = inputHint.textContent;
  const MNIST_HINT = "The MNIST test image as it is: MNIST's digits are already prepared.";

  const STROKE = 20;           // px on the 280 px canvas: MNIST-like thickness
  const THROTTLE_MS = 100;     // at most one request per 100 ms while drawing

  // State visible to tests: number of results shown, the last one, the last error.
  const demo = { updates: 0, last: null, error: null, busy: false };
  window.cnnlabDemo = demo;

  let bars = [];               // [{root, fill, pct}]
  let layerViews = new Map();  // layer name -> {canvases, h, w}
  let hasInk = false;
  let generation = 0;          // bumped by Clear / Random: older answers are dropped
  let dirty = false, inflight = false, timer = null, lastSent = 0;

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
    inputHint.textContent = DRAWN_HINT;
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
      const res = await fetch("/api/predict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image: pad.toDataURL("image/png") }),
      });
      const body = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
      if (gen !== generation) return;
      if (!res.ok) {
        showError(res.status === 422 && /no digit/.test(body.detail || "")
          ? "No digit found: draw a bit more." : `Error: ${body.detail || res.status}`);
        return;
      }
      await render(body);
      setStatus("Keep drawing, or clear and try another digit.");
    } catch (err) {
      if (gen === generation) showError(`The server did not answer (${err.message}).`);
    } finally {
      inflight = false;
      demo.busy = timer !== null;
      if (dirty && hasInk) schedule();
    }
  }

  async function randomDigit() {
    const gen = ++generation;
    dirty = false;
    demo.busy = true;
    setStatus("Fetching a test image…");
    try {
      const res = await fetch("/api/random-test-image");
      const body = await res.json();
      if (gen !== generation) return;
      if (!res.ok) { showError(`Error: ${body.detail || res.status}`); return; }
      const img = await loadImage(body.image);
      clearPad();
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(img, 0, 0, pad.width, pad.height);
      hasInk = true;
      await render(body);
      const right = body.label === body.prediction;
      truthEl.textContent = `True label: ${body.label} — ${right ? "correct" : "wrong"}`;
      truthEl.className = "truth " + (right ? "right" : "wrong");
      truthEl.dataset.label = String(body.label);
      truthEl.hidden = false;
      inputHint.textContent = MNIST_HINT;
      setStatus(`MNIST test image #${body.index}. Draw on it, or clear.`);
    } catch (err) {
      if (gen === generation) showError(`The server did not answer (${err.message}).`);
    } finally {
      if (gen === generation) demo.busy = false;
    }
  }

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

  function buildBars(n) {
    barsEl.style.setProperty("--classes", n);
    barsEl.textContent = "";
    bars = [];
    for (let k = 0; k < n; k++) {
      const root = document.createElement("div");
      root.className = "bar";
      root.dataset.class = String(k);
      root.innerHTML = '<span class="pct"></span><div class="track"><div class="fill"></div></div>' +
        `<span class="digit">${k}</span>`;
      barsEl.appendChild(root);
      bars.push({ root, fill: root.querySelector(".fill"), pct: root.querySelector(".pct") });
    }
  }

  function tileSize(h) {
    return h <= 8 ? h * 5 : h <= 16 ? h * 3 : h * 2;
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
    confidenceEl.textContent = "";
    truthEl.hidden = true;
    inputHint.textContent = DRAWN_HINT;
    for (const b of bars) {
      b.fill.style.height = "0";
      b.pct.textContent = "";
      b.root.classList.remove("top");
    }
    inputCanvas.getContext("2d").clearRect(0, 0, 28, 28);
    for (const view of layerViews.values()) {
      for (const cv of view.canvases) cv.getContext("2d").clearRect(0, 0, cv.width, cv.height);
    }
  }

  function drawInput(rows) {
    const h = rows.length, w = rows[0].length;
    inputCanvas.width = w;
    inputCanvas.height = h;
    const c = inputCanvas.getContext("2d");
    const data = c.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = Math.round(255 * rows[y][x]);
        const i = 4 * (y * w + x);
        data.data[i] = data.data[i + 1] = data.data[i + 2] = v;
        data.data[i + 3] = 255;
      }
    }
    c.putImageData(data, 0, 0);
  }

  async function render(result) {
    const probs = result.probabilities;
    if (bars.length !== probs.length) buildBars(probs.length);
    probs.forEach((p, k) => {
      bars[k].fill.style.height = `${(100 * p).toFixed(1)}%`;
      bars[k].pct.textContent = p >= 0.995 ? "100%" : p >= 0.001 ? `${(100 * p).toFixed(1)}%` : "";
      bars[k].root.classList.toggle("top", k === result.prediction);
      bars[k].root.dataset.prob = String(p);
    });
    predictionEl.textContent = String(result.prediction);
    predictionEl.dataset.prediction = String(result.prediction);
    confidenceEl.textContent = `${(100 * probs[result.prediction]).toFixed(1)}% sure`;
    drawInput(result.input);
    const images = await Promise.all(result.feature_maps.map((fm) => loadImage(fm.image)));
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
  }

  // ------------------------------------------------------------------ start
  document.getElementById("clear").addEventListener("click", () => {
    generation += 1;
    dirty = false;
    if (timer !== null) { clearTimeout(timer); timer = null; }
    clearPad();
    resetDisplay();
    setStatus("Draw a digit (0–9) in the black square.");
  });
  document.getElementById("random").addEventListener("click", randomDigit);

  async function init() {
    clearPad();
    try {
      const res = await fetch("/api/model");
      const info = await res.json();
      const n = info.params.toLocaleString("en");
      document.getElementById("model-name").textContent =
        `model “${info.name}”: ${info.layers.length} layers, ${n} parameters`;
      buildBars(info.num_classes);
      buildMaps(info.layers);
      document.body.dataset.ready = "1";
    } catch (err) {
      showError(`Cannot reach the server (${err.message}).`);
    }
  }
  init();
})();
