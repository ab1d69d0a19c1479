// colorbench report: dataset views, leaderboard sorting, image browser with zoom and rankings.
// Plain ES2017, no dependencies, no network: data files are JavaScript next to index.html, loaded with <script>
// (fetch() is not allowed from file://), and only the chunks that the current page of the browser needs.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("cb-data").textContent);
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const el = (tag, attrs, children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v; else if (k === "style") Object.assign(e.style, v); else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  };

  // ---- data files (JSONP: each file calls CB.chunk / CB.rank) ----------------------------------------------
  const store = { chunk: {}, rank: {} };
  const pending = {};
  window.CB = {
    chunk(slug, c, data) { store.chunk[slug + "/" + c] = data; },
    rank(slug, id, data) { store.rank[slug + "/" + id] = data; },
  };
  function loadScript(src, key, kind) {
    if (store[kind][key]) return Promise.resolve(store[kind][key]);
    if (!pending[src]) {
      pending[src] = new Promise((resolve, reject) => {
        const s = el("script", { src: src });
        s.onload = () => { s.remove(); store[kind][key] ? resolve(store[kind][key]) : reject(new Error(src)); };
        s.onerror = () => { s.remove(); delete pending[src]; reject(new Error("cannot load " + src)); };
        document.head.append(s);
      });
    }
    return pending[src];
  }
  const pad = (c) => String(c).padStart(5, "0");

  // ---- dataset views ----------------------------------------------------------------------------------------
  let dataset = DATA.datasets[0];
  function showDataset(ds) {
    dataset = ds;
    $$(".dataset-tab").forEach((b) => b.classList.toggle("active", b.dataset.dataset === ds));
    $$("#leaderboard tbody tr, #leaderboard-seeds tbody tr, .failed-list li, #naturalness tbody tr").forEach((r) => {
      if (r.dataset.dataset === ds || DATA.datasets.length < 2) r.removeAttribute("data-hidden");
      else r.setAttribute("data-hidden", "");
    });
    const failed = $("#failed-runs"); // shown only when this dataset has failed rows
    if (failed) failed.hidden = !$$(".failed-list li", failed).some((li) => !li.hasAttribute("data-hidden"));
    $$(".current-dataset").forEach((s) => { s.textContent = DATA.datasets.length > 1 ? "— " + ds : ""; });
    browser.setDataset(DATA.browser.find((b) => b.dataset === ds) || null);
  }

  // ---- leaderboard sorting ----------------------------------------------------------------------------------
  // the leaderboard (one row per method, or per (dataset, method) over seeds) and, in a multi-seed run, the
  // per-seed table under it: each sorts on its own
  function sortBy(table, th) {
    const key = th.dataset.key;
    const text = key === "method";
    const bestFirstDescending = !text && th.dataset.hib === "1";
    const state = table._sortState || { key: null, descending: false };
    const descending = state.key === key ? !state.descending : bestFirstDescending;
    table._sortState = { key, descending };
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const value = (row) => {
      const cell = row.querySelector(`td[data-key="${CSS.escape(key)}"]`);
      const raw = cell ? cell.dataset.value : "";
      if (raw === "" || raw === undefined) return null;
      return text ? raw : Number(raw);
    };
    rows.sort((a, b) => {
      const va = value(a), vb = value(b);
      if (va === null && vb === null) return 0;
      if (va === null) return 1; // missing values always last
      if (vb === null) return -1;
      const cmp = text ? va.localeCompare(vb) : va - vb;
      return descending ? -cmp : cmp;
    });
    rows.forEach((r) => body.append(r));
    $$("th.sortable", table).forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  $$("#leaderboard, #leaderboard-seeds").forEach((table) =>
    $$("th.sortable", table).forEach((th) => th.addEventListener("click", () => sortBy(table, th))));

  // ---- image browser ----------------------------------------------------------------------------------------
  const browser = (function () {
    const head = $("#browser thead"), body = $("#browser tbody");
    const mode = $("#browser-mode"), nInput = $("#browser-n"), methodSel = $("#browser-method");
    const metricSel = $("#browser-metric"), sizeSel = $("#browser-page-size");
    const pageLabel = $("#browser-page"), note = $("#browser-note");
    let desc = null, page = 0, list = null, token = 0;

    const scaleFor = (target) => {
      const side = Math.max(desc.thumb[0], desc.thumb[1]);
      return side <= target ? Math.max(1, Math.floor(target / side)) : target / side;
    };
    function thumb(col, index, scale, label) {
      const [th, tw] = desc.thumb;
      const c = Math.floor(index / desc.chunk), row = index % desc.chunk;
      const box = el("div", { class: "thumb", title: label,
        style: { width: tw * scale + "px", height: th * scale + "px" } });
      const rows = Math.min(desc.chunk, desc.n - c * desc.chunk); // images in this strip
      const img = el("img", { src: `${desc.base}/thumbs/${col}/${pad(c)}.png`, alt: label, loading: "lazy",
        style: { top: -row * th * scale + "px", width: tw * scale + "px", height: rows * th * scale + "px" } });
      box.append(img);
      return box;
    }
    function missing(scale, why) {
      const [th, tw] = desc.thumb;
      return el("div", { class: "thumb none", title: why, text: "—",
        style: { width: tw * scale + "px", height: th * scale + "px" } });
    }
    // the columns shown: grey, real (next to the grey input, so it stays on screen with many methods), each
    // method with images or values
    function columns() {
      const cols = [];
      if (desc.has_grey) cols.push({ id: "grey", label: "grey input" });
      if (desc.has_real) cols.push({ id: "real", label: "real" });
      desc.columns.forEach((c, i) => {
        if (c.images || c.metrics.length) cols.push({ id: "m" + i, label: c.label, meta: c });
      });
      return cols;
    }
    function fmt(v) {
      if (v === null || v === undefined) return "—";
      const a = Math.abs(v);
      return a !== 0 && (a >= 1e4 || a < 1e-3) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
    }
    function setDataset(d) {
      desc = d;
      page = 0;
      methodSel.innerHTML = "";
      metricSel.innerHTML = "";
      if (!desc) {
        head.innerHTML = ""; body.innerHTML = "";
        pageLabel.textContent = ""; note.textContent = "This run directory holds no test images for this dataset.";
        return;
      }
      desc.columns.forEach((c, i) => {
        if (c.metrics.some((k) => desc.ranks["m" + i + "." + k])) methodSel.append(el("option", { value: "m" + i, text: c.label }));
      });
      const ranked = methodSel.options.length > 0;
      $$("option[value=worst], option[value=best]", mode).forEach((o) => { o.disabled = !ranked; });
      if (!ranked) mode.value = "all";
      fillMetrics();
      const scopes = {
        "test split": `${desc.n} test images.`,
        "sample images": `${desc.n} images: the run directory holds the grey and real versions of the sample images only.`,
        "colorizations only": `${desc.n} images: the run directory holds no grey or real versions of them.`,
      };
      note.textContent = (scopes[desc.scope] || `${desc.n} images.`) +
        (ranked ? "" : " No per-image metric values were saved, so there are no rankings.") +
        " Click an image to zoom into its row.";
      run(update(true));
    }
    function fillMetrics() {
      const prev = metricSel.value;
      metricSel.innerHTML = "";
      const col = desc.columns[Number(methodSel.value.slice(1))];
      if (!col) return;
      col.metrics.filter((k) => desc.ranks[methodSel.value + "." + k]).forEach((k) => {
        const info = DATA.columns.find((c) => c.key === k);
        metricSel.append(el("option", { value: k, text: (info ? info.name : k) + (desc.directions[k] ? " ↑" : " ↓") }));
      });
      if ([...metricSel.options].some((o) => o.value === prev)) metricSel.value = prev;
    }
    async function currentList() {
      if (mode.value === "all") return null; // every image, in test order
      const id = methodSel.value + "." + metricSel.value;
      const rank = await loadScript(desc.ranks[id], desc.slug + "/" + id, "rank");
      const n = Math.max(1, Math.min(Number(nInput.value) || 20, rank[mode.value].length));
      return rank[mode.value].slice(0, n);
    }
    let listKey = null; // what the current list was made from: an unchanged control does not re-render
    async function update(force) {
      if (!desc) return;
      const key = [desc.slug, mode.value, methodSel.value, metricSel.value, nInput.value].join("|");
      if (key === listKey && force !== true) return;
      listKey = key;
      const my = ++token;
      $("#rank-controls").hidden = mode.value === "all";
      list = await currentList();
      if (my !== token) return;
      page = 0;
      await render();
    }
    async function render() {
      const my = ++token;
      const size = Number(sizeSel.value);
      const total = list ? list.length : desc.n;
      const pages = Math.max(1, Math.ceil(total / size));
      page = Math.min(Math.max(page, 0), pages - 1);
      const indices = [];
      for (let k = page * size; k < Math.min(total, (page + 1) * size); k++) indices.push(list ? list[k] : k);
      const chunks = [...new Set(indices.map((i) => Math.floor(i / desc.chunk)))];
      await Promise.all(chunks.map((c) => loadScript(`${desc.base}/chunks/${pad(c)}.js`, desc.slug + "/" + c, "chunk")));
      if (my !== token) return;
      const cols = columns(), scale = scaleFor(96);
      const hilite = mode.value === "all" ? null : { col: methodSel.value, key: metricSel.value };
      head.innerHTML = "";
      head.append(el("tr", {}, [el("th", { text: list ? "rank · id" : "id" }), ...cols.map((c) => el("th", { text: c.label }))]));
      body.innerHTML = "";
      indices.forEach((index, k) => {
        const chunk = store.chunk[desc.slug + "/" + Math.floor(index / desc.chunk)];
        const at = index % desc.chunk;
        const id = chunk.ids[at];
        const rank = list ? `#${page * size + k + 1} · ` : "";
        const tr = el("tr", { "data-image": id, "data-index": String(index) }, [el("td", { class: "id", text: rank + id })]);
        for (const c of cols) {
          const has = chunk.has[c.id] && chunk.has[c.id][at];
          const td = el("td", {}, [has ? thumb(c.id, index, scale, `${c.label}: ${id}`) :
            missing(scale, `${c.label}: no image of ${id} in the run directory`)]);
          const vals = chunk.v[c.id];
          if (vals) {
            const lines = Object.keys(vals).map((key) => {
              const info = DATA.columns.find((x) => x.key === key);
              const line = el("div", { text: `${info ? info.name : key} ${fmt(vals[key][at])}` });
              if (hilite && hilite.col === c.id && hilite.key === key) line.className = "hit";
              return line;
            });
            td.append(el("div", { class: "vals", "data-col": c.id }, lines));
          }
          tr.append(td);
        }
        body.append(tr);
      });
      pageLabel.textContent = `page ${page + 1} / ${pages}`;
      pageLabel.dataset.page = String(page + 1);
      pageLabel.dataset.pages = String(pages);
      $("#browser-prev").disabled = page === 0;
      $("#browser-next").disabled = page >= pages - 1;
    }
    function zoom(tr) {
      const index = Number(tr.dataset.index);
      const chunk = store.chunk[desc.slug + "/" + Math.floor(index / desc.chunk)];
      const at = index % desc.chunk, scale = scaleFor(320);
      const zb = $("#zoom-body");
      zb.innerHTML = "";
      for (const c of columns()) {
        const has = chunk.has[c.id] && chunk.has[c.id][at];
        zb.append(el("figure", {}, [has ? thumb(c.id, index, scale, c.label) : missing(scale, "no image"),
          el("figcaption", { text: c.label })]));
      }
      zb.prepend(el("div", { style: { flexBasis: "100%" }, text: chunk.ids[at] }));
      $$("#zoom-body img").forEach((i) => i.setAttribute("loading", "eager"));
      $("#zoom").hidden = false;
    }
    body.addEventListener("click", (ev) => {
      const t = ev.target.closest(".thumb:not(.none)");
      if (t) zoom(t.closest("tr"));
    });
    $("#zoom").addEventListener("click", (ev) => { if (ev.target.id === "zoom" || ev.target.id === "zoom-close") $("#zoom").hidden = true; });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") $("#zoom").hidden = true;
      if (!$("#zoom").hidden || ["INPUT", "SELECT"].includes(document.activeElement.tagName)) return;
      if (ev.key === "ArrowRight") { page++; run(render()); }
      if (ev.key === "ArrowLeft") { page--; run(render()); }
    });
    // a data file that cannot be loaded (a report copied without its html/ folder) is said on the page
    const run = (promise) => promise.catch((err) => { note.textContent = "Could not load the image data: " + err.message; });
    $("#browser-prev").addEventListener("click", () => { page--; run(render()); });
    $("#browser-next").addEventListener("click", () => { page++; run(render()); });
    sizeSel.addEventListener("change", () => { page = 0; run(render()); });
    mode.addEventListener("change", () => run(update()));
    nInput.addEventListener("change", () => run(update()));
    methodSel.addEventListener("change", () => { fillMetrics(); run(update()); });
    metricSel.addEventListener("change", () => run(update()));
    return { setDataset };
  })();

  $$(".dataset-tab").forEach((b) => b.addEventListener("click", () => showDataset(b.dataset.dataset)));
  showDataset(dataset);
})();
