// colorbench leaderboard: sort any table by a header, filter methods, keep the view in the URL hash.
(function () {
  "use strict";
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const state = { filter: "", hide: false, sort: null }; // sort: {table, key, desc}

  function sortTable(table, key, desc) {
    const body = table.tBodies[0];
    const th = table.querySelector(`th[data-key="${CSS.escape(key)}"]`);
    if (!th) return;
    const index = Array.from(th.parentNode.children).indexOf(th);
    const rows = Array.from(body.rows);
    const value = (tr) => {
      if (key === "method") return tr.dataset.method;
      if (key === "n") return Number(tr.dataset.n);
      const v = tr.children[index].dataset.value;
      return v === "" || v === undefined ? null : Number(v);
    };
    rows.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === null && y === null) return 0;
      if (x === null) return 1;  // missing values last, whatever the direction
      if (y === null) return -1;
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return desc ? -c : c;
    });
    rows.forEach((r) => body.appendChild(r));
    $$("th.sortable", table).forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", desc ? "descending" : "ascending");
  }

  function applyFilter() {
    const q = state.filter.trim().toLowerCase();
    $$("table.board tbody tr").forEach((tr) => {
      const hit = !q || tr.dataset.method.toLowerCase().includes(q);
      const hidden = state.hide && tr.classList.contains("is-contaminated");
      tr.hidden = !hit || hidden;
    });
  }

  function writeHash() {
    const parts = [];
    if (state.filter) parts.push("filter=" + encodeURIComponent(state.filter));
    if (state.hide) parts.push("hide=contaminated");
    if (state.sort) parts.push("sort=" + [state.sort.table, state.sort.key, state.sort.desc ? "desc" : "asc"].map(encodeURIComponent).join(":"));
    history.replaceState(null, "", parts.length ? "#" + parts.join("&") : location.pathname + location.search);
  }

  function readHash() {
    const h = decodeURIComponent(location.hash.slice(1));
    if (!h.includes("=")) return; // an anchor (#table or #table--row): the browser scrolls to it
    for (const part of location.hash.slice(1).split("&")) {
      const [k, v] = part.split("=").map(decodeURIComponent);
      if (k === "filter") state.filter = v;
      if (k === "hide") state.hide = v === "contaminated";
      if (k === "sort") {
        const [table, key, dir] = v.split(":");
        state.sort = { table, key, desc: dir === "desc" };
      }
    }
  }

  readHash();
  const filter = document.getElementById("filter");
  const hide = document.getElementById("hide-contaminated");
  if (filter) {
    filter.value = state.filter;
    filter.addEventListener("input", () => { state.filter = filter.value; applyFilter(); writeHash(); });
  }
  if (hide) {
    hide.checked = state.hide;
    hide.addEventListener("change", () => { state.hide = hide.checked; applyFilter(); writeHash(); });
  }
  $$("table.board").forEach((table) => {
    $$("th.sortable", table).forEach((th) => th.addEventListener("click", () => {
      const same = state.sort && state.sort.table === table.dataset.table && state.sort.key === th.dataset.key;
      const desc = same ? !state.sort.desc : th.textContent.includes("↑");
      state.sort = { table: table.dataset.table, key: th.dataset.key, desc };
      sortTable(table, th.dataset.key, desc);
      writeHash();
    }));
  });
  if (state.sort) {
    const t = document.querySelector(`table.board[data-table="${CSS.escape(state.sort.table)}"]`);
    if (t) sortTable(t, state.sort.key, state.sort.desc);
  }
  applyFilter();
})();
