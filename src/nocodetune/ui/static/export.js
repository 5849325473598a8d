/* Export on the job page: choose a format, start it (POST /api/jobs/{name}/export), follow
   its own event stream (GET .../exports/{id}/events), and list past exports with where
   their files are, their size and how they ended. job_detail.js mounts it in #export-slot;
   the slot is shown only when the server answers the exports listing (a server without
   export routes shows no button) and the job succeeded (only a succeeded job exports).
   Hub uploads are left out: the API does not say whether this server allows them. */
"use strict";

const NCT_EXPORT = (() => {
  const { api, h, replace, fmtBytes, fmtTime, badge, toast, showAlert, readSSE } = NCT;
  const L = NCT_LABELS;

  const FORMATS = [
    { id: "merged", label: "Merged model (one Hugging Face folder)", help: "The model with this job's training built in: loads anywhere transformers does." },
    { id: "adapter", label: "LoRA adapter only", help: "Just the small adapter; whoever uses it needs the same base model." },
    { id: "gguf", label: "GGUF file (llama.cpp, LM Studio)", help: "One file for llama.cpp and the apps built on it." },
    { id: "ollama", label: "Ollama (GGUF and a Modelfile)", help: "A GGUF file with the Modelfile Ollama imports it from." },
  ];
  const QUANTS = [
    { id: "q8_0", label: "q8_0: 8-bit, near lossless (recommended)" },
    { id: "f16", label: "f16: 16-bit, same answers" },
    { id: "bf16", label: "bf16: 16-bit (bfloat16)" },
    { id: "f32", label: "f32: full precision, largest" },
    { id: "q4_0", label: "q4_0: 4-bit, smallest, answers change most" },
  ];
  const WITH_QUANT = new Set(["gguf", "ollama"]);
  const formatLabel = (id) => (FORMATS.find((f) => f.id === id) || { label: id }).label;
  const ACTIVE = new Set(["queued", "running"]);

  /** The server's refusal in UI words: `--format merged` becomes the format's name, `--quant` its setting. */
  function inUiWords(err) {
    const fix = (t) => (t ? String(t).replace(/--format\s+(\w+)/g, (m, f) => `the “${formatLabel(f)}” format`).replace(/--quant\s+/g, "weight type ") : t);
    const copy = Object.assign(Object.create(Object.getPrototypeOf(err)), err);
    copy.message = fix(err.message);
    copy.hint = fix(err.hint);
    copy.body = { ...(err.body || {}), message: fix(err.body && err.body.message), hint: fix(err.body && err.body.hint) };
    return copy;
  }

  function mount(slot, job) {
    const enc = encodeURIComponent(job);
    const state = { available: false, status: null, following: new Set(), records: [] };
    const id = (s) => `export-${s}`;

    const format = h("select", { id: id("format"), "aria-describedby": `${id("format-help")} ${id("error")}` },
      FORMATS.map((f) => h("option", { value: f.id }, f.label)));
    const quant = h("select", { id: id("quant"), "aria-describedby": id("quant-help") }, QUANTS.map((q) => h("option", { value: q.id }, q.label)));
    const formatHelp = h("p", { class: "help", id: id("format-help") });
    const quantField = h("div", { class: "field" }, h("label", { for: id("quant") }, "Weight type"), quant,
      h("p", { class: "help", id: id("quant-help") }, "Smaller files answer a little differently from the trained model."));
    const start = h("button", { type: "button", class: "btn primary", id: id("start") }, "Export");
    const error = h("div", { class: "alert error", id: id("error"), role: "alert", hidden: true });
    const progress = h("div", { id: id("progress"), class: "export-progress", "aria-live": "polite", hidden: true });
    const listing = h("div", { id: id("list") });

    replace(slot, h("h3", { id: id("title") }, "Export"),
      h("p", { class: "help" }, "Take the trained model where it will be used. Each export is kept below with its files."),
      h("div", { class: "form-row" },
        h("div", { class: "field" }, h("label", { for: id("format") }, "Format"), format, formatHelp),
        quantField),
      h("div", { class: "actions" }, start), error, progress, listing);

    function syncFormat() {
      const f = FORMATS.find((x) => x.id === format.value);
      formatHelp.textContent = f ? f.help : "";
      quantField.hidden = !WITH_QUANT.has(format.value);
      showAlert(error, null);
    }
    format.addEventListener("change", syncFormat);
    quant.addEventListener("change", () => showAlert(error, null));
    syncFormat();

    function show() { slot.hidden = !(state.available && state.status === "succeeded"); }

    function sizeOf(r) { return (r.files || []).reduce((n, f) => n + (Number(f.size) || 0), 0); }
    const fileHref = (r, path) => `/api/jobs/${enc}/outputs/exports/${encodeURIComponent(r.id)}/${String(path).split("/").map(encodeURIComponent).join("/")}`;

    function what(r) {
      const q = r.request && r.request.quant ? `, ${r.request.quant}` : WITH_QUANT.has(r.request && r.request.format) ? ", q8_0" : "";
      return `${formatLabel(r.request && r.request.format)}${q}`;
    }

    function where(r) {
      if (r.status === "failed") {
        return h("span", { class: "export-failed" }, `Failed: ${L.humanize(inUiWords({ message: r.error || "see its log" }).message) || "see its log"}`);
      }
      if (r.status !== "succeeded") return h("span", { class: "muted" }, "Not finished yet.");
      const files = r.files || [];
      return h("div", {},
        h("p", { class: "export-where" }, "Saved in ", h("code", { class: "path" }, r.folder)),
        h("details", { class: "export-files" }, h("summary", {}, `${files.length} ${files.length === 1 ? "file" : "files"}`),
          h("ul", { class: "plain" }, files.map((f) => h("li", {}, h("a", { href: fileHref(r, f.path), download: "" }, f.path), ` (${fmtBytes(f.size)})`)))),
        (r.warnings || []).map((w) => h("p", { class: "help" }, L.humanize(w))));
    }

    function renderList() {
      const recs = [...state.records].reverse(); // newest first
      if (!recs.length) { replace(listing, h("p", { class: "muted", id: id("none") }, "No exports yet.")); return; }
      replace(listing, h("h4", {}, "Past exports"), h("ul", { class: "export-items" }, recs.map((r) =>
        h("li", { "data-export": r.id },
          h("div", { class: "export-head" }, h("strong", {}, what(r)), " ", badge(r.status),
            h("span", { class: "muted small" }, ` ${r.status === "succeeded" ? `${fmtBytes(sizeOf(r))} · ` : ""}${fmtTime(r.finished_at || r.created_at)} · ${r.id}`)),
          where(r)))));
    }

    async function refresh() {
      const recs = await api("GET", `/api/jobs/${enc}/exports`);
      state.records = Array.isArray(recs) ? recs : [];
      renderList();
      for (const r of state.records) if (ACTIVE.has(r.status)) follow(r);
      return state.records;
    }

    function setProgress(r, fraction, text) {
      progress.hidden = false;
      const pct = Math.round(Math.max(0, Math.min(1, Number(fraction) || 0)) * 100);
      replace(progress, h("p", { class: "stage" }, `${what(r)}: ${text}`),
        h("div", { class: "progress-big" },
          h("progress", { max: 100, value: pct, "aria-label": "Export progress", "aria-valuetext": `${pct}%` }),
          h("span", { class: "progress-text" }, `${pct}%`)));
      progress.dataset.export = r.id;
    }

    /** Follow one export's events until it ends, then list it with its files. */
    async function follow(r) {
      if (state.following.has(r.id)) return;
      state.following.add(r.id);
      start.disabled = true;
      let fraction = 0;
      let ended = null;
      setProgress(r, 0, "waiting to start…");
      const onMessage = (msg) => {
        let ev;
        try { ev = JSON.parse(msg.data); } catch (e) { return; }
        if (typeof ev.progress === "number") fraction = ev.progress;
        const text = ev.text ? L.humanize(ev.text) : "";
        if (ev.type === "started") setProgress(r, fraction, "started…");
        else if (ev.type === "progress" || ev.type === "message") setProgress(r, fraction, `${text || L.words(ev.stage || "working")}…`);
        else if (ev.type === "finished") { ended = "succeeded"; setProgress(r, 1, "finished."); }
        else if (ev.type === "failed") { ended = "failed"; setProgress(r, fraction, "failed."); showAlert(error, inUiWords({ message: `The export failed: ${ev.error || "see its log"}`, body: {} })); }
      };
      try {
        await readSSE(`/api/jobs/${enc}/exports/${encodeURIComponent(r.id)}/events`, onMessage);
      } catch (e) { /* the listing below says how it stands */ }
      state.following.delete(r.id);
      start.disabled = state.following.size > 0;
      if (ended === "succeeded") toast(`Export ${r.id} finished.`);
      if (!state.following.size) progress.hidden = ended !== "failed";
      try { await refresh(); } catch (e) { /* keep the last listing */ }
    }

    start.addEventListener("click", async () => {
      showAlert(error, null);
      const body = { format: format.value };
      if (WITH_QUANT.has(format.value)) body.quant = quant.value;
      start.disabled = true;
      let record;
      try {
        record = await api("POST", `/api/jobs/${enc}/export`, body);
      } catch (err) {
        start.disabled = state.following.size > 0;
        showAlert(error, inUiWords(err));
        return;
      }
      state.records.push(record);
      renderList();
      follow(record);
    });

    (async () => {
      try {
        await refresh();
        state.available = true;
      } catch (e) { state.available = false; } // no export routes on this server: no button
      show();
    })();

    return { setStatus(status) { state.status = status; show(); } };
  }

  return { mount };
})();
window.NCT_EXPORT = NCT_EXPORT;
