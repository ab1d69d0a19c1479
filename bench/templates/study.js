// The 2AFC study page: one session from the server, one trial at a time, each answer POSTed before the next.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const buttons = Array.from(document.querySelectorAll("button[data-choice]"));
  let session = null, index = 0, answered = 0, shownAt = 0, hideTimer = null, busy = false;

  async function post(url, body) {
    const res = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}) });
    const data = await res.json().catch(() => ({ ok: false, error: "bad reply (" + res.status + ")" }));
    if (!res.ok) throw new Error(data.error || ("HTTP " + res.status));
    return data;
  }
  function setProgress() { $("progress").textContent = answered + " / " + session.trials.length; }
  function show() {
    const trial = session.trials[index];
    buttons.forEach((b) => { b.disabled = true; });
    ["left", "right"].forEach((s) => $("frame-" + s).classList.remove("hidden"));
    let loaded = 0;
    const ready = () => {
      if (++loaded < 2) return;
      shownAt = performance.now();
      buttons.forEach((b) => { b.disabled = false; });
      if (session.seconds) {
        hideTimer = setTimeout(() => ["left", "right"].forEach((s) => $("frame-" + s).classList.add("hidden")),
          session.seconds * 1000);
      }
    };
    for (const side of ["left", "right"]) {
      const img = $("img-" + side), url = "/images/" + trial[side];
      img.onerror = () => { $("error").textContent = "An image did not load; reload the page."; };
      if (img.getAttribute("src") === url && img.complete) { img.onload = null; ready(); } // same image again
      else { img.onload = ready; img.src = url; }
    }
  }
  async function choose(choice) {
    if (busy || !session || buttons[0].disabled) return;
    busy = true;
    clearTimeout(hideTimer);
    const trial = session.trials[index];
    const rt = Math.round(performance.now() - shownAt);
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const ack = await post("/api/response", { participant: session.participant, trial: trial.trial,
        image: trial.image, choice: choice, rt_ms: rt });
      answered = ack.answered;
      $("error").textContent = "";
      setProgress();
      index++;
      if (index >= session.trials.length) { $("task").hidden = true; $("done").hidden = false; }
      else show();
    } catch (err) {
      $("error").textContent = "Your answer was not saved: " + err.message;
      buttons.forEach((b) => { b.disabled = false; });
    } finally { busy = false; }
  }
  buttons.forEach((b) => b.addEventListener("click", () => choose(b.dataset.choice)));
  document.querySelectorAll("img[data-choice-img]").forEach((img) =>
    img.addEventListener("click", () => choose(img.dataset.choiceImg)));
  $("start").addEventListener("click", async () => {
    $("start").disabled = true;
    try {
      session = await post("/api/session", {});
      $("intro").hidden = true;
      $("task").hidden = false;
      setProgress();
      show();
    } catch (err) {
      $("start").disabled = false;
      $("intro").append(Object.assign(document.createElement("p"), { id: "error", textContent: err.message }));
    }
  });
})();
