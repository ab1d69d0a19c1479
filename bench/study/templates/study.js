// The study page: a session from the server, then one trial at a time: the server reveals the next trial only
// once the current one is answered. The participant id lives in sessionStorage, so a reload goes on where it was.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const buttons = Array.from(document.querySelectorAll("button[data-choice]"));
  const KEY = "colorbench-study-participant";
  let state = null, shownAt = 0, hideTimer = null, busy = false, ready = false;

  async function post(url, body) {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}) });
    const data = await res.json().catch(() => ({ ok: false, error: "bad reply (" + res.status + ")" }));
    if (!res.ok) { const e = new Error(data.error || ("HTTP " + res.status)); e.status = res.status; throw e; }
    return data;
  }
  function enable(on) { ready = on; buttons.forEach((b) => { b.disabled = !on; }); }
  function setProgress() { $("progress").textContent = state.answered + " / " + state.trials; }
  function show() {
    setProgress();
    if (!state.current) {
      sessionStorage.removeItem(KEY);
      $("task").hidden = true; $("done").hidden = false; return;
    }
    enable(false);
    $("frame").classList.remove("hidden");
    const img = $("pair");
    img.onload = () => {
      shownAt = performance.now();
      enable(true);
      if (state.seconds) hideTimer = setTimeout(() => $("frame").classList.add("hidden"), state.seconds * 1000);
    };
    img.onerror = () => { $("error").textContent = "The image did not load; reload the page."; };
    img.src = state.current.image;
  }
  async function choose(choice) {
    if (busy || !state || !ready) return;
    busy = true;
    clearTimeout(hideTimer);
    const rt = Math.round(performance.now() - shownAt);
    enable(false);
    try {
      const token = state.current.image.split("/").pop().replace(".png", "");
      state = await post("/api/response", { participant: state.participant, trial: state.current.trial,
        token: token, choice: choice, rt_ms: rt });
      $("error").textContent = "";
      show();
    } catch (err) {
      $("error").textContent = "Your answer was not saved: " + err.message;
      if (err.status === 409) {  // answered already (another tab, a retried click): go on from where the server is
        try { state = await post("/api/next", { participant: state.participant }); show(); } catch (e) { /* shown */ }
      } else if (err.status !== 410) enable(true);
    } finally { busy = false; }
  }
  buttons.forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice)));
  document.querySelectorAll("[data-choice-half]").forEach((el) =>
    el.addEventListener("click", () => choose(el.dataset.choiceHalf)));
  $("start").addEventListener("click", async () => {
    $("start").disabled = true;
    try {
      const known = sessionStorage.getItem(KEY);
      state = null;
      if (known) state = await post("/api/next", { participant: known }).catch(() => null);
      if (!state) state = await post("/api/session", {});
      sessionStorage.setItem(KEY, state.participant);
      $("intro").hidden = true;
      $("task").hidden = false;
      show();
    } catch (err) {
      $("start").disabled = false;
      $("start-error").textContent = err.message;
    }
  });
})();
