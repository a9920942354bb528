// cnnlab demo, the error explorer (issue 20). Two panels:
//  1. the confusion matrix on MNIST's 10,000 test images (GET /api/explorer/confusion, computed
//     by the server on the first request and cached); a click on a cell lists its images, most
//     confident first (GET /api/explorer/cell); a click on an image loads it into the page
//     (window.cnnlabDemo.loadTestImage: its feature maps and probabilities above);
//  2. attributions for the image the page shows (POST /api/explorer/attributions): saliency,
//     Grad-CAM, occlusion drawn over it, and a "randomise weights" sanity check reporting
//     Spearman's rank correlation with the trained model's maps.
// app.js tells us what it rendered with the "cnnlab:rendered" event. No dependencies.
"use strict";

(() => {
  const root = document.getElementById("explorer-root");
  if (!root) return;
  const state = { matrix: null, cell: null, current: null, attributions: null,
                  cellUpdates: 0, attrUpdates: 0, error: null, busy: false };
  window.cnnlabExplorer = state;

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  }

  const computeButton = el("button", { id: "ex-compute", type: "button", class: "primary",
                                       text: "Compute the confusion matrix (10,000 MNIST test images)" });
  const matrixBox = el("div", { id: "ex-matrix", class: "ex-matrix" });
  const cellBox = el("div", { id: "ex-cell", class: "ex-cell" });
  const confusionPart = el("div", { id: "ex-confusion" },
    el("h3", { text: "1. The model's mistakes" }),
    el("p", { class: "hint", text: "Rows: the true digit; columns: the model's answer. Click a cell to see its images, most confident first; click an image to load it above (its feature maps and probabilities)." }),
    computeButton, matrixBox, cellBox);

  const classSelect = el("select", { id: "ex-class", "aria-label": "Class to explain" });
  const randomize = el("input", { id: "ex-randomize", type: "checkbox" });
  const explainButton = el("button", { id: "ex-explain", type: "button", text: "Explain this image" });
  const attrStatus = el("p", { id: "ex-attr-status", class: "hint", role: "status",
                               text: "Give the page an image (draw, choose a file, or click one in the matrix)." });
  const mapsBox = el("div", { id: "ex-maps", class: "ex-maps" });
  const attrPart = el("div", { id: "ex-attr" },
    el("h3", { text: "2. Why this answer? Attributions for the image above" }),
    el("div", { class: "ex-controls" },
      el("label", {}, "Class ", classSelect),
      el("label", { class: "ex-check" }, randomize, " randomise weights (sanity check: Adebayo et al., 2018)"),
      explainButton),
    attrStatus, mapsBox);

  root.append(el("h2", {}, "Error explorer ",
                 el("span", { class: "hint", text: "which images the model gets wrong, and which pixels its answer depends on" })),
              confusionPart, attrPart);

  let info = null;
  let attrGeneration = 0;

  function showError(where, text) {
    state.error = text;
    where.textContent = text;
    where.classList.add("error");
  }

  async function getJSON(url, options) {
    const res = await fetch(url, options);
    const body = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
    return body;
  }

  // ------------------------------------------------------------------ 1. confusion matrix
  async function loadMatrix() {
    computeButton.disabled = true;
    computeButton.textContent = "Predicting the 10,000 test images…";
    try {
      const m = await getJSON("/api/explorer/confusion");
      state.matrix = m;
      drawMatrix(m);
      computeButton.hidden = true;
      document.body.dataset.explorerMatrix = "1";
    } catch (err) {
      computeButton.disabled = false;
      computeButton.textContent = "Compute the confusion matrix (10,000 MNIST test images)";
      showError(cellBox, `Error: ${err.message}`);
    }
  }
  computeButton.addEventListener("click", loadMatrix);

  function drawMatrix(m) {
    const k = m.classes.length;
    const top = Math.log1p(Math.max(...m.matrix.flat()));
    const table = el("table", { class: "ex-table" });
    const head = el("tr", {}, el("th", { class: "corner", text: "true \\ predicted" }));
    for (let p = 0; p < k; p++) head.append(el("th", { scope: "col", text: m.classes[p] }));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (let t = 0; t < k; t++) {
      const row = el("tr", {}, el("th", { scope: "row", text: m.classes[t] }));
      for (let p = 0; p < k; p++) {
        const n = m.matrix[t][p];
        const button = el("button", {
          type: "button", class: "ex-count" + (t === p ? " diag" : n ? " wrong" : " zero"),
          "data-true": String(t), "data-predicted": String(p), "data-count": String(n),
          title: `true ${m.classes[t]}, predicted ${m.classes[p]}: ${n} images`, text: String(n),
        });
        const shade = n ? Math.log1p(n) / top : 0;
        button.style.setProperty("--shade", shade.toFixed(3));
        if (!n) button.disabled = true;
        row.append(el("td", {}, button));
      }
      body.append(row);
    }
    table.append(body);
    matrixBox.textContent = "";
    matrixBox.append(table, el("p", { class: "hint",
      text: `${m.source}: ${m.correct} right, ${m.total - m.correct} wrong (accuracy ${(100 * m.accuracy).toFixed(2)}%).` }));
  }

  matrixBox.addEventListener("click", (e) => {
    const button = e.target.closest("button.ex-count");
    if (!button || button.disabled) return;
    for (const b of matrixBox.querySelectorAll("button.selected")) b.classList.remove("selected");
    button.classList.add("selected");
    loadCell(Number(button.dataset.true), Number(button.dataset.predicted));
  });

  async function loadCell(t, p) {
    cellBox.classList.remove("error");
    cellBox.textContent = "Loading the images…";
    try {
      const c = await getJSON(`/api/explorer/cell?true=${t}&predicted=${p}&limit=60`);
      state.cell = c;
      const names = state.matrix ? state.matrix.classes : c.items.map((it) => String(it.label));
      const title = el("h4", { text: `True ${names[t]}, predicted ${names[p]}: ${c.count} image${c.count === 1 ? "" : "s"}` +
        (c.count > c.items.length ? ` (the ${c.items.length} most confident shown)` : "") });
      const list = el("div", { class: "ex-thumbs" });
      for (const it of c.items) {
        const img = el("img", { src: it.image, alt: `test image ${it.index}`, width: "56", height: "56" });
        list.append(el("button", { type: "button", class: "ex-thumb", "data-index": String(it.index),
                                   title: `test image #${it.index}: ${(100 * it.confidence).toFixed(1)}% sure of ${names[it.predicted]}` },
          img, el("span", { text: `#${it.index}` }), el("span", { text: `${(100 * it.confidence).toFixed(0)}%` })));
      }
      cellBox.textContent = "";
      cellBox.append(title, list);
      state.cellUpdates += 1;
      document.body.dataset.explorerCell = String(state.cellUpdates);
    } catch (err) {
      showError(cellBox, `Error: ${err.message}`);
    }
  }

  cellBox.addEventListener("click", async (e) => {
    const thumb = e.target.closest("button.ex-thumb");
    if (!thumb) return;
    for (const b of cellBox.querySelectorAll(".ex-thumb.selected")) b.classList.remove("selected");
    thumb.classList.add("selected");
    const demo = window.cnnlabDemo;
    if (demo && demo.loadTestImage) await demo.loadTestImage(Number(thumb.dataset.index));
  });

  // ------------------------------------------------------------------ 2. attributions
  function fillClasses(names) {
    classSelect.textContent = "";
    classSelect.append(el("option", { value: "", text: "the predicted one" }));
    names.forEach((n, k) => classSelect.append(el("option", { value: String(k), text: n })));
  }

  document.addEventListener("cnnlab:rendered", (e) => {
    const detail = e.detail || {};
    state.current = { result: detail.result, source: detail.source || null };
    const index = state.current.source && Number.isInteger(state.current.source.test_index)
      ? state.current.source.test_index : null;
    explainButton.disabled = false;
    if (index !== null) {
      explain();             // a test image: explain it at once
    } else {
      attrStatus.classList.remove("error");
      attrStatus.textContent = "A new picture: press “Explain this image” to compute its attributions.";
    }
  });

  explainButton.addEventListener("click", () => explain());
  randomize.addEventListener("change", () => { if (state.current) explain(); });
  classSelect.addEventListener("change", () => { if (state.current) explain(); });

  async function explain() {
    if (!state.current || !state.current.result) {
      attrStatus.textContent = "Give the page an image first.";
      return;
    }
    const { result, source } = state.current;
    const body = { randomize: randomize.checked };
    if (source && Number.isInteger(source.test_index)) body.index = source.test_index;
    else body.input_image = result.input_image;
    if (classSelect.value !== "") body.label = Number(classSelect.value);
    const gen = ++attrGeneration;
    state.busy = true;
    attrStatus.classList.remove("error");
    attrStatus.textContent = randomize.checked
      ? "Computing the maps on the trained and on a randomised model…" : "Computing the maps…";
    try {
      const a = await getJSON("/api/explorer/attributions", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (gen !== attrGeneration) return;
      drawMaps(a);
      state.attributions = a;
      state.attrUpdates += 1;
      document.body.dataset.explorerAttr = String(state.attrUpdates);
      const what = a.index !== null ? `test image #${a.index}` : "the picture";
      attrStatus.textContent = `Attributions of ${what} for class ${a.label_name} ` +
        `(${(100 * a.probabilities[a.label]).toFixed(1)}%; the model predicts ${a.classes[a.prediction]}).`;
    } catch (err) {
      if (gen === attrGeneration) showError(attrStatus, `Error: ${err.message}`);
    } finally {
      if (gen === attrGeneration) state.busy = false;
    }
  }

  function drawMaps(a) {
    mapsBox.textContent = "";
    const original = el("figure", { class: "ex-map" },
      el("img", { src: a.image, alt: "the model's input", class: "pix" }),
      el("figcaption", { text: "The model's input" }));
    mapsBox.append(original);
    for (const m of a.maps) {
      const fig = el("figure", { class: "ex-map", "data-method": m.method },
        el("img", { src: m.overlay, alt: `${m.title} over the image`, class: "pix" }),
        el("figcaption", {}, el("strong", { text: m.title }), el("br"),
           el("span", { class: "hint", text: m.note + (m.max > 0 ? "" : " (all zero here: nothing in this layer speaks for the class)") })));
      if (m.randomized) {
        const rho = m.randomized.spearman;
        fig.append(el("img", { src: m.randomized.overlay, alt: `${m.title} with random weights`, class: "pix random" }),
          el("figcaption", { class: "ex-rho", "data-rho": rho === null ? "" : String(rho),
            text: `random weights: Spearman ρ = ${rho === null ? "undefined (a flat map)" : rho.toFixed(2)}` }));
      }
      mapsBox.append(fig);
    }
    if (a.maps.some((m) => m.randomized)) {
      mapsBox.append(el("p", { class: "hint ex-note", text:
        "ρ near 1: the map hardly changes when the weights are random, so it shows the image more than what the model learned; near 0: it depends on the learned weights." }));
    }
  }

  // ------------------------------------------------------------------ start
  async function init() {
    try {
      info = await getJSON("/api/model");
      fillClasses(info.class_names);
      confusionPart.hidden = !info.test_images;
      document.body.dataset.explorerReady = "1";
    } catch (err) {
      showError(attrStatus, `Cannot reach the server (${err.message}).`);
    }
  }
  init();
})();
