// cnnlab demo, "see the math" (issue 17). Three panels under the feature maps:
//  1. Click any pixel of a convolution or pooling map: its window on the layer's input (padding
//     cells marked), the kernel, the products, their sum, the bias, the pre-activation, the
//     activation, and the server's float64 recomputation with the slides' reference formula.
//  2. Backprop step by step for a convolution layer and the true label: dL/dO, dL/dZ,
//     dL/dF = correlate(X, dL/dZ), dL/dX = full convolution of the rotated filter with dL/dZ;
//     click any entry to see its terms; "Check" asks the server for a float64 finite
//     difference; "One step" trains this tab's copy of the model.
//  3. Live training (recipe and seed from the URL's query string), streamed from the server.
// Every number shown comes from the server (POST /api/explain, /api/backprop, /api/gradcheck,
// /api/step, GET /api/live/stream). app.js tells us what it rendered ("cnnlab:rendered").
"use strict";

(() => {
  const root = document.getElementById("explain-root");
  if (!root) return;
  const state = { source: null, result: null, model: null, pixel: null, grads: null,
                  live: { losses: [], accuracies: [], steps: [], events: 0, ended: null,
                          state: "idle", snapshot: null, recipe: null } };
  window.cnnlabExplain = state;

  const tab = (() => {
    let id = sessionStorage.getItem("cnnlab-tab");
    if (!id) {
      id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2))
        .replace(/[^A-Za-z0-9_-]/g, "").slice(0, 32);
      sessionStorage.setItem("cnnlab-tab", id);
    }
    return id;
  })();

  // ------------------------------------------------------------------ helpers
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  };
  const fmt = (v, p = 5) => (v === null || v === undefined) ? "pad"
    : (v === 0 ? "0" : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5 ? Number(v.toPrecision(p)).toString()
      : v.toExponential(p - 1));
  async function post(url, body) {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify(body) });
    const data = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(data.detail || `HTTP ${res.status}`);
    return data;
  }
  // A grid of numbers: rows x cols, cell(a, b) -> {v, cls, title}
  function grid(rows, cols, cell, onclick) {
    const t = el("table", { class: "xp-grid" });
    for (let a = 0; a < rows; a++) {
      const tr = el("tr");
      for (let b = 0; b < cols; b++) {
        const c = cell(a, b);
        const td = el("td", { class: c.cls || "", title: c.title || "" }, c.text ?? fmt(c.v, 4));
        td.dataset.a = a; td.dataset.b = b;
        if (c.v !== undefined && c.v !== null) td.dataset.value = String(c.v);
        if (onclick) td.addEventListener("click", () => onclick(a, b, td));
        tr.append(td);
      }
      t.append(tr);
    }
    return t;
  }
  // A map as a canvas: diverging colours (blue < 0 < red), scaled by the largest |value|.
  function heat(map, size, onclick) {
    const h = map.length, w = map[0].length;
    const cv = el("canvas", { class: "xp-heat" });
    cv.width = w; cv.height = h;
    const scale = Math.max(size / Math.max(h, w), 1);
    cv.style.width = `${Math.round(w * scale)}px`;
    cv.style.height = `${Math.round(h * scale)}px`;
    const m = Math.max(1e-300, ...map.flat().map(Math.abs));
    const img = cv.getContext("2d").createImageData(w, h);
    for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
      const v = map[i][j] / m, k = 4 * (i * w + j);
      img.data[k] = v > 0 ? 255 : Math.round(255 * (1 + v));
      img.data[k + 1] = Math.round(255 * (1 - Math.abs(v)));
      img.data[k + 2] = v < 0 ? 255 : Math.round(255 * (1 - v));
      img.data[k + 3] = 255;
    }
    cv.getContext("2d").putImageData(img, 0, 0);
    if (onclick) {
      cv.addEventListener("click", (e) => {
        const r = cv.getBoundingClientRect();
        onclick(Math.min(h - 1, Math.floor((e.clientY - r.top) * h / r.height)),
                Math.min(w - 1, Math.floor((e.clientX - r.left) * w / r.width)));
      });
    }
    cv.title = `max |value| ${fmt(m, 3)}; blue < 0 < red; click a pixel to open it`;
    return cv;
  }
  const figure = (caption, ...body) => el("figure", { class: "xp-fig" }, ...body,
                                          el("figcaption", { text: caption }));

  // ------------------------------------------------------------------ layout
  const pixelBox = el("div", { id: "xp-pixel", class: "xp-box" },
    el("p", { class: "hint", text: "Click any pixel of a convolution or pooling map above to see how it was computed." }));
  const gradBox = el("div", { id: "xp-grads", class: "xp-box" });
  const liveBox = el("div", { id: "xp-live", class: "xp-box" });
  root.append(
    el("h2", {}, "See the math ", el("span", { class: "hint", text: "every number recomputed on the server in float64 with the slides' formulas" })),
    el("h3", { text: "1. One pixel of a feature map" }), pixelBox,
    el("h3", { text: "2. Backpropagation, step by step" }), gradBox,
    el("h3", { text: "3. Live training" }), liveBox);

  // ------------------------------------------------------------------ 1. explain a pixel
  document.addEventListener("cnnlab:rendered", (e) => {
    state.source = e.detail.source || null;
    state.result = e.detail.result;
    if (state.pixel && state.source) openPixel(state.pixel.layer, state.pixel.y, state.pixel.x, state.pixel.channel);
  });

  document.getElementById("maps").addEventListener("click", (e) => {
    const cv = e.target.closest("canvas");
    const section = e.target.closest(".layer");
    if (!cv || !section) return;
    const canvases = Array.from(section.querySelectorAll(".tiles canvas"));
    const channel = canvases.indexOf(cv);
    const r = cv.getBoundingClientRect();
    const y = Math.min(cv.height - 1, Math.floor((e.clientY - r.top) * cv.height / r.height));
    const x = Math.min(cv.width - 1, Math.floor((e.clientX - r.left) * cv.width / r.width));
    openPixel(section.dataset.layer, y, x, channel);
  });

  async function openPixel(layer, y, x, channel) {
    state.pixel = { layer, y, x, channel };
    if (!state.source) {
      pixelBox.replaceChildren(el("p", { class: "hint", text: "Give the model a picture first." }));
      return;
    }
    pixelBox.dataset.busy = "1";
    try {
      const e = await post("/api/explain", { ...state.source, layer, y, x, channel });
      state.explanation = e;
      renderPixel(e);
    } catch (err) {
      pixelBox.replaceChildren(el("p", { class: "status error", text: `Error: ${err.message}` }));
    } finally {
      delete pixelBox.dataset.busy;
      pixelBox.dataset.updates = String(Number(pixelBox.dataset.updates || 0) + 1);
    }
  }

  // The layer's input (the model's input, or the previous layer's map ci as the page shows
  // it), its padding drawn around it, and the window outlined.
  function inputView(e, ci) {
    const layers = state.model ? state.model.layers : [];
    const k = layers.findIndex((l) => l.name === e.layer);
    let src = null;
    if (k === 0) src = document.getElementById("input");
    else if (k > 0) {
      const tiles = document.querySelectorAll(`.layer[data-layer="${layers[k - 1].name}"] .tiles canvas`);
      src = tiles[ci] || null;
    }
    if (!src) return null;
    const [H, W] = e.input_shape, [[t, b], [l, r]] = e.pads;
    const Hp = H + t + b, Wp = W + l + r, z = Math.max(2, Math.floor(160 / Math.max(Hp, Wp)));
    const cv = el("canvas", { class: "xp-input", id: "xp-input-view" });
    cv.width = Wp * z; cv.height = Hp * z;
    const c = cv.getContext("2d");
    c.fillStyle = "#d9dde5"; c.fillRect(0, 0, cv.width, cv.height);
    c.imageSmoothingEnabled = false;
    c.drawImage(src, l * z, t * z, W * z, H * z);
    c.strokeStyle = "#ff3b30"; c.lineWidth = 2;
    c.strokeRect((e.cols[0] + l) * z + 1, (e.rows[0] + t) * z + 1, e.kernel_size[1] * z - 2, e.kernel_size[0] * z - 2);
    return figure(k === 0 ? "the model's input (grey: padding), the window in red"
      : `${layers[k - 1].name} map ${ci}, this layer's input (grey: padding), the window in red`, cv);
  }

  const numSpan = (id, v) => { const s = el("span", { id, class: "xp-num", text: fmt(v, 7) }); s.dataset.value = String(v); return s; };

  function renderPixel(e) {
    const head = el("p", { class: "xp-head" },
      el("b", { text: `${e.layer}` }), ` (${e.type}), map ${e.channel}, output pixel (row ${e.y}, column ${e.x}) — `,
      `a ${e.kernel_size[0]}×${e.kernel_size[1]} window, stride ${e.strides.join("×")}, padding “${e.padding}” `,
      `(${e.pads[0][0]} top, ${e.pads[0][1]} bottom, ${e.pads[1][0]} left, ${e.pads[1][1]} right), input rows ${e.rows[0]}…${e.rows[e.rows.length - 1]}, columns ${e.cols[0]}…${e.cols[e.cols.length - 1]}.`);
    const parts = [head];
    const [kh, kw] = [e.padded.length, e.padded[0].length];
    const padCell = (a, b) => e.padded[a][b];
    if (e.type === "Conv2D") {
      const cin = e.window[0][0].length;
      let best = 0;
      e.channel_sums.forEach((s, i) => { if (Math.abs(s) > Math.abs(e.channel_sums[best])) best = i; });
      const sel = el("select", { id: "xp-ci", "aria-label": "input channel" });
      for (let i = 0; i < cin; i++) sel.append(el("option", { value: String(i), text: `input channel ${i} (sum ${fmt(e.channel_sums[i], 4)})` }));
      sel.value = String(best);
      const tables = el("div", { class: "xp-row" });
      const draw = () => {
        const ci = Number(sel.value);
        tables.replaceChildren(
          inputView(e, ci) || "",
          figure("window X (hatched: padding, reads 0)", grid(kh, kw, (a, b) => ({
            v: e.window[a][b][ci], cls: padCell(a, b) ? "pad" : "",
            title: padCell(a, b) ? `padding: input row ${e.rows[a]}, column ${e.cols[b]} is outside the map` : `input row ${e.rows[a]}, column ${e.cols[b]}` }))),
          el("span", { class: "xp-op", text: "⊙" }),
          figure(`kernel F[:, :, ${ci}, ${e.channel}]`, grid(kh, kw, (a, b) => ({ v: e.kernel[a][b][ci] }))),
          el("span", { class: "xp-op", text: "=" }),
          figure(`products (sum ${fmt(e.channel_sums[ci], 6)})`, grid(kh, kw, (a, b) => ({ v: e.products[a][b][ci], cls: padCell(a, b) ? "pad" : "" }))));
      };
      sel.addEventListener("change", draw);
      draw();
      parts.push(cin > 1 ? el("p", {}, `${cin} input channels; showing `, sel) : el("span"), tables);
      if (cin > 1) {
        parts.push(el("p", { class: "xp-sums" }, "Sum per input channel: ",
          e.channel_sums.map((s, i) => `${i}: ${fmt(s, 4)}`).join(", ")));
      }
      parts.push(el("p", { class: "xp-eq" },
        "Σ products = ", numSpan("xp-sum", e.sum), "; + bias ", numSpan("xp-bias", e.bias),
        " = pre-activation ", numSpan("xp-pre", e.preactivation), "; ",
        `${e.activation}(pre-activation) = `, numSpan("xp-value", e.reference.value)));
    } else {
      const win = (a, b) => e.window[a][b][0];
      const am = e.argmax;
      parts.push(el("div", { class: "xp-row" }, inputView(e, e.channel) || "", figure(`window of map ${e.channel} on the input (hatched: padding, never counted)`,
        grid(kh, kw, (a, b) => ({ v: win(a, b), cls: (padCell(a, b) ? "pad" : "") + (am && am.window[0] === a && am.window[1] === b ? " win" : "") })))));
      if (am) {
        parts.push(el("p", { class: "xp-eq" }, "max = ", numSpan("xp-value", e.reference.value),
          ` at window (${am.window.join(", ")}), input (${am.input.join(", ")})` +
          (am.ties > 1 ? `; ${am.ties} cells tie` : "") + `. Tie rule: ${am.rule}.`));
      } else {
        parts.push(el("p", { class: "xp-eq" }, `mean = ${fmt(e.sum, 7)} / ${e.count} real pixels = `, numSpan("xp-value", e.reference.value)));
      }
    }
    const ref = e.reference;
    parts.push(el("p", { class: "xp-ref", id: "xp-ref" },
      "Recomputed on the server in float64 with the slides' reference formula: ", numSpan("xp-refvalue", ref.value),
      `; the model (${ref.model_dtype || "float32"}) computed `, numSpan("xp-model", ref.model_value),
      "; difference ", numSpan("xp-diff", ref.difference), "."));
    pixelBox.replaceChildren(...parts);
  }

  // ------------------------------------------------------------------ 2. backprop
  const gLayer = el("select", { id: "xp-g-layer", "aria-label": "convolution layer" });
  const gLabel = el("select", { id: "xp-g-label", "aria-label": "true label" });
  const gCo = el("input", { id: "xp-g-co", type: "number", min: "0", value: "0", "aria-label": "filter" });
  const gCi = el("input", { id: "xp-g-ci", type: "number", min: "0", value: "0", "aria-label": "input channel" });
  const gLr = el("input", { id: "xp-g-lr", type: "number", min: "0.0001", step: "0.01", value: "0.05", "aria-label": "learning rate" });
  const gOut = el("div", { id: "xp-g-out" });
  const gTerms = el("div", { id: "xp-g-terms", class: "xp-terms" });
  const gStep = el("div", { id: "xp-g-step" });
  gradBox.append(
    el("div", { class: "xp-controls" },
      el("label", {}, "layer ", gLayer), el("label", {}, "true label ", gLabel),
      el("label", {}, "filter ", gCo), el("label", {}, "input channel ", gCi),
      el("button", { type: "button", id: "xp-g-show", class: "primary", onclick: () => showGrads() }, "Show gradients"),
      el("label", {}, "learning rate ", gLr),
      el("button", { type: "button", id: "xp-g-onestep", onclick: () => oneStep(false) }, "One step"),
      el("button", { type: "button", id: "xp-g-reset", onclick: () => oneStep(true) }, "Reset copy")),
    gOut, gTerms, gStep);

  // the true label when the picture is a test image (its answer carries it), else the prediction
  document.addEventListener("cnnlab:rendered", (e) => {
    const r = e.detail.result;
    gLabel.value = String(Number.isInteger(r.label) ? r.label : r.prediction);
  });

  async function showGrads() {
    if (!state.source) { gOut.replaceChildren(el("p", { class: "hint", text: "Give the model a picture first." })); return; }
    gOut.dataset.busy = "1";
    try {
      const g = await post("/api/backprop", { ...state.source, layer: gLayer.value, label: Number(gLabel.value),
                                              channel: Number(gCo.value), in_channel: Number(gCi.value) });
      state.grads = g;
      renderGrads(g);
    } catch (err) {
      gOut.replaceChildren(el("p", { class: "status error", text: `Error: ${err.message}` }));
    } finally {
      delete gOut.dataset.busy;
      gOut.dataset.updates = String(Number(gOut.dataset.updates || 0) + 1);
    }
  }

  function renderGrads(g) {
    const [kh, kw] = g.kernel_size, [sh, sw] = g.strides, co = g.channel, ci = g.in_channel;
    const chk = g.check;
    const size = 150;
    gOut.replaceChildren(
      el("p", {}, `Loss L = −ln p[${g.label}] = ${fmt(g.loss, 6)}. Layer ${g.layer}: ${g.channels[0]} input channels, ${g.channels[1]} filters, ${kh}×${kw}, stride ${sh}×${sw}, activation ${g.activation}.`),
      el("div", { class: "xp-row" },
        figure(`dL/dO, filter ${co} (from the layers above)`, heat(g.dO, size)),
        figure(`dL/dZ = dL/dO ⊙ ${g.activation}'(Z)`, heat(g.dZ, size, (i, j) => openDz(i, j))),
        figure(`X, input channel ${ci} (padded)`, heat(g.X, size)),
        figure(`dL/dX[:, :, ${ci}] (all filters)`, heat(g.dX, size, (p, q) => openDx(p, q)))),
      el("div", { class: "xp-row" },
        figure(`F[:, :, ${ci}, ${co}]`, grid(kh, kw, (a, b) => ({ v: g.kernel[a][b] }))),
        figure("rot180(F): turned by 180°", grid(kh, kw, (a, b) => ({ v: g.rotated[a][b] }))),
        figure(`dL/dF[:, :, ${ci}, ${co}] = correlate(X, dL/dZ) — click an entry`, grid(kh, kw, (a, b) => ({ v: g.dF[a][b] }), (a, b) => openDf(a, b))),
        figure(`dL/db[${co}] = Σ dL/dZ`, el("div", { class: "xp-num", id: "xp-g-db", text: fmt(g.db, 6) }))),
      el("p", { class: "xp-ref", id: "xp-g-check" },
        `The float64 reference formulas against the library's backward pass (cnnlab.explain.backprop, float32), whole layer: ` +
        `dL/dF max |difference| ${fmt(chk.dF.max_abs_difference, 3)} (of values up to ${fmt(chk.dF.max_abs_value, 3)}), ` +
        `dL/dX ${fmt(chk.dX.max_abs_difference, 3)} (up to ${fmt(chk.dX.max_abs_value, 3)})` +
        (chk.db ? `, dL/db ${fmt(chk.db.max_abs_difference, 3)}.` : ".")),
      el("p", { class: "hint" }, `dL/dF = correlate(X, dL/dZ): ${g.formulas.dF}. dL/dX: ${g.formulas.dX}.` +
        (sh * sw > 1 ? " With a stride, dL/dZ is first dilated (s − 1 zeros between its pixels)." : "")));
  }

  function terms(title, rows, total, server, check) {
    const shown = rows.slice(0, 40);
    gTerms.replaceChildren(
      el("p", { class: "xp-head" }, el("b", { text: title })),
      el("p", { class: "xp-sums", text: shown.map((r) => r).join("  +  ") + (rows.length > shown.length ? `  + … (${rows.length - shown.length} more non-zero terms)` : "") }),
      el("p", { class: "xp-eq" }, `Σ of the ${rows.length} non-zero terms = ${fmt(total, 8)}; the server's float64 value: `,
        numSpan("xp-g-entry", server)),
      check ? el("button", { type: "button", id: "xp-g-check-btn", onclick: () => runCheck(check) }, "Check against a finite difference") : "",
      el("div", { id: "xp-g-fd" }));
  }

  function openDf(a, b) {
    const g = state.grads, [sh, sw] = g.strides, rows = [];
    let total = 0;
    g.dZ.forEach((row, i) => row.forEach((dz, j) => {
      const x = g.X[i * sh + a][j * sw + b];
      if (dz !== 0 && x !== 0) { rows.push(`${fmt(x, 3)}·${fmt(dz, 3)}`); total += x * dz; }
    }));
    terms(`dL/dF[${a}, ${b}, ${g.in_channel}, ${g.channel}] = Σ_ij Xp[i·s+${a}, j·s+${b}] · dL/dZ[i, j]`, rows, total, g.dF[a][b],
          { param: "kernel", index: [a, b, g.in_channel, g.channel] });
  }

  function openDx(p, q) {
    // this filter's share: dXp[P, Q] = Σ_ab F[a, b] · dZd[P − a, Q − b] (padded coordinates)
    const g = state.grads, [kh, kw] = g.kernel_size, d = g.dZ_dilated;
    const P = p + g.pads[0][0], Q = q + g.pads[1][0], rows = [];
    let total = 0;
    for (let a = 0; a < kh; a++) for (let b = 0; b < kw; b++) {
      const i = P - a, j = Q - b;
      if (i < 0 || j < 0 || i >= d.length || j >= d[0].length) continue;
      const v = g.kernel[a][b] * d[i][j];
      if (v !== 0) { rows.push(`${fmt(g.kernel[a][b], 3)}·${fmt(d[i][j], 3)}`); total += v; }
    }
    terms(`dL/dX[${p}, ${q}, ${g.in_channel}], filter ${g.channel}'s share: full convolution of rot180(F) with dL/dZ ` +
          `(all ${g.channels[1]} filters together: ${fmt(g.dX[p][q], 6)})`, rows, total, g.dX_filter[p][q],
          { param: "input", index: [p, q, g.in_channel] });
  }

  function openDz(i, j) {
    const g = state.grads;
    terms(`dL/dZ[${i}, ${j}, ${g.channel}] = dL/dO · ${g.activation}'(Z), Z = ${fmt(g.Z[i][j], 5)}`,
          [`${fmt(g.dO[i][j], 4)}·${g.activation}'(${fmt(g.Z[i][j], 3)})`], g.dZ[i][j], g.dZ[i][j], null);
  }

  async function runCheck(check) {
    const box = document.getElementById("xp-g-fd");
    box.textContent = "Computing a central difference in float64 on the server…";
    try {
      const c = await post("/api/gradcheck", { ...state.source, layer: state.grads.layer, label: state.grads.label, ...check });
      box.replaceChildren(el("p", { class: "xp-ref" },
        `${c.param}[${c.index.join(", ")}] (whole loss, all filters): analytic `, numSpan("xp-fd-analytic", c.analytic),
        `, central difference (L(t+ε) − L(t−ε)) / 2ε with ε = ${c.eps}: `, numSpan("xp-fd-numeric", c.numeric),
        "; difference ", numSpan("xp-fd-diff", c.difference), " (every number float64)."));
    } catch (err) {
      box.textContent = `Error: ${err.message}`;
    }
  }

  async function oneStep(reset) {
    if (!state.source) { gStep.textContent = "Give the model a picture first."; return; }
    try {
      const s = await post("/api/step", { ...state.source, session: tab, label: Number(gLabel.value),
                                          learning_rate: Number(gLr.value) || 0.05, reset });
      const names = (state.model && state.model.class_names) || s.probabilities.map((_, k) => String(k));
      const bars = el("div", { class: "xp-probs" });
      s.probabilities.forEach((p, k) => {
        const b = s.probabilities_before[k];
        bars.append(el("div", { class: "xp-prob" + (k === s.label ? " label" : "") },
          el("span", { text: names[k] }),
          el("span", { class: "xp-track" }, el("span", { class: "before", style: `width:${(100 * b).toFixed(1)}%` }),
             el("span", { class: "after", style: `width:${(100 * p).toFixed(1)}%` })),
          el("span", { text: `${(100 * b).toFixed(1)}% → ${(100 * p).toFixed(1)}%` })));
      });
      gStep.replaceChildren(el("p", {}, `This tab's copy of the model, after ${s.steps} SGD step${s.steps === 1 ? "" : "s"} (learning rate ${s.learning_rate}) on this picture labelled ${names[s.label]}: ` +
        `loss ${fmt(s.loss_before, 5)} → ${fmt(s.loss_after, 5)}. The served model is unchanged.`), bars);
      gStep.dataset.steps = String(s.steps);
    } catch (err) {
      gStep.textContent = `Error: ${err.message}`;
    }
  }

  // ------------------------------------------------------------------ 3. live training
  const params = new URLSearchParams(location.search);
  const RECIPE_KEYS = ["seed", "n", "batch", "epochs", "optimizer", "lr", "filters", "every", "probe"];
  const recipe = {};
  for (const k of RECIPE_KEYS) if (params.has(k)) recipe[k] = params.get(k);
  const recipeText = el("span", { id: "xp-live-recipe" });
  const liveStatus = el("span", { id: "xp-live-status", class: "hint", text: "not started" });
  const curve = el("canvas", { id: "xp-live-curve", width: "520", height: "180" });
  const filtersRow = el("div", { id: "xp-live-filters", class: "xp-row" });
  const mapsRow = el("div", { id: "xp-live-maps", class: "xp-row" });
  let source = null;

  liveBox.append(
    el("p", {}, "A small CNN learns MNIST on the server while you watch. Recipe (from this page's URL, so everyone with the link sees the same curve): ", recipeText, "."),
    el("div", { class: "xp-controls" },
      el("button", { type: "button", id: "xp-live-start", class: "primary", onclick: () => liveStart() }, "Start"),
      el("button", { type: "button", id: "xp-live-pause", onclick: () => liveControl("pause") }, "Pause"),
      el("button", { type: "button", id: "xp-live-step", onclick: () => liveStep() }, "Step"),
      el("button", { type: "button", id: "xp-live-stop", onclick: () => liveStop() }, "Stop"), liveStatus),
    figure("loss (black) and accuracy (green) reported by fit() after each step: the epoch's running mean", curve),
    el("p", { class: "hint", text: "First-layer filters, and their maps of a fixed probe digit:" }), filtersRow, mapsRow);

  function describeRecipe(r) {
    recipeText.textContent = Object.entries(r).map(([k, v]) => `${k}=${v}`).join(" ");
  }
  describeRecipe(Object.keys(recipe).length ? recipe : { note: "the defaults (add ?seed=1&n=512… to the URL)" });

  function openStream(paused) {
    if (source) source.close();
    const live = state.live;
    Object.assign(live, { losses: [], accuracies: [], steps: [], events: 0, ended: null, state: "starting" });
    const qs = new URLSearchParams({ ...recipe, tab, paused: paused ? "1" : "0" });
    const es = new EventSource(`/api/live/stream?${qs}`);
    source = es;
    return new Promise((resolve) => {
      es.addEventListener("start", (ev) => {
        const d = JSON.parse(ev.data);
        live.recipe = d.recipe; live.total = d.steps; live.state = d.state; live.events += 1;
        describeRecipe(d.recipe);
        drawSnapshot(d);
        liveStatus.textContent = `${d.state}: 0 / ${d.steps} steps`;
        resolve(true);
      });
      es.addEventListener("step", (ev) => {
        const d = JSON.parse(ev.data);
        live.steps.push(d.step); live.losses.push(d.loss); live.accuracies.push(d.accuracy); live.events += 1;
        liveStatus.textContent = `${live.state}: step ${d.step} / ${live.total}, loss ${fmt(d.loss, 5)}, accuracy ${(100 * d.accuracy).toFixed(1)}%`;
        liveStatus.dataset.loss = String(d.loss);
        drawCurve();
      });
      es.addEventListener("snapshot", (ev) => { drawSnapshot(JSON.parse(ev.data)); live.events += 1; });
      es.addEventListener("state", (ev) => { live.state = JSON.parse(ev.data).state; live.events += 1; });
      es.addEventListener("end", (ev) => {
        const d = JSON.parse(ev.data);
        live.ended = d.reason; live.state = "ended"; live.events += 1;
        liveStatus.textContent = `ended (${d.reason}${d.detail ? ": " + d.detail : ""}) after ${d.step} steps`;
        es.close();
        if (source === es) source = null;
        resolve(false);
      });
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) { liveStatus.textContent = "the stream closed"; resolve(false); }
        else es.close();  // no automatic reconnection: a new connection would start a new run
        if (source === es) source = null;
      };
    });
  }

  async function liveStart() {
    if (source && state.live.state !== "ended") return liveControl("resume");
    await openStream(false);
  }
  async function liveStep() {
    if (!source) { const ok = await openStream(true); if (!ok) return; }
    return liveControl("step");
  }
  async function liveControl(action) {
    if (!source) return;
    try {
      const s = await post("/api/live/control", { tab, action });
      state.live.state = s.state === "stopped" ? "ended" : s.state;
    } catch (err) {
      liveStatus.textContent = `Error: ${err.message}`;
    }
  }
  function liveStop() {
    if (source) { liveControl("stop"); source.close(); source = null; }
    liveStatus.textContent = "stopped";
  }
  window.addEventListener("pagehide", () => { if (source) source.close(); });

  function drawCurve() {
    const c = curve.getContext("2d"), W = curve.width, H = curve.height, live = state.live;
    c.clearRect(0, 0, W, H);
    const n = Math.max(live.total || 1, live.losses.length);
    const maxLoss = Math.max(2.5, ...live.losses);
    c.strokeStyle = "#ccc"; c.strokeRect(0.5, 0.5, W - 1, H - 1);
    const line = (vals, top, colour) => {
      c.strokeStyle = colour; c.beginPath();
      vals.forEach((v, i) => { const x = (i + 1) / n * (W - 10) + 5, y = H - 5 - v / top * (H - 10); if (i) c.lineTo(x, y); else c.moveTo(x, y); });
      c.stroke();
    };
    line(live.losses, maxLoss, "#1d2330");
    line(live.accuracies, 1, "#1e7a34");
    c.fillStyle = "#6a7385"; c.font = "11px sans-serif";
    c.fillText(`loss (0…${maxLoss.toFixed(1)})`, 8, 14); c.fillText("accuracy (0…1)", 8, 28);
  }

  function smallMap(map, px, signed) {
    const h = map.length, w = map[0].length;
    const cv = el("canvas", { class: "xp-small" });
    cv.width = w; cv.height = h; cv.style.width = `${px}px`; cv.style.height = `${Math.round(px * h / w)}px`;
    const flat = map.flat();
    const lo = signed ? -Math.max(...flat.map(Math.abs)) : Math.min(0, ...flat);
    const hi = signed ? -lo : Math.max(...flat);
    const img = cv.getContext("2d").createImageData(w, h);
    flat.forEach((v, k) => {
      const g = hi > lo ? Math.round(255 * (v - lo) / (hi - lo)) : 0;
      img.data.set([g, g, g, 255], 4 * k);
    });
    cv.getContext("2d").putImageData(img, 0, 0);
    return cv;
  }

  function drawSnapshot(d) {
    state.live.snapshot = d;
    filtersRow.replaceChildren(...d.filters.map((f) => smallMap(f, 36, true)));
    mapsRow.replaceChildren(...d.maps.map((m) => smallMap(m, 60, false)),
      el("span", { class: "hint", text: `probe: p = ${d.probabilities.map((p) => p.toFixed(2)).join(" ")}` }));
  }

  // ------------------------------------------------------------------ start
  fetch("/api/model").then((r) => r.json()).then((m) => {
    state.model = m;
    for (const la of m.layers.filter((l) => l.type === "Conv2D")) gLayer.append(el("option", { value: la.name, text: la.name }));
    for (let k = 0; k < m.num_classes; k++) gLabel.append(el("option", { value: String(k), text: m.class_names[k] }));
    root.dataset.ready = "1";
  }).catch(() => {});
})();
