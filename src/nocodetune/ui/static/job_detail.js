/* Job detail page: live progress and loss curves from the job's event stream (SSE),
   the log tail, effective config with sources, lineage, outputs, metrics, samples,
   and the actions run / cancel / resume / clone / delete / serve. */
"use strict";
(() => {
  const { api, h, $, $$, replace, badge, pct, fmtBytes, fmtDuration, fmtNumber, fmtTime, toast, errorBox, emptyState, table, every, ACTIVE, list, jobUrl } = NCT;
  const name = $("#job-root").dataset.job;
  const enc = encodeURIComponent(name);
  const RUNNABLE = new Set(["created", "failed", "cancelled"]);
  const RESUMABLE = new Set(["failed", "cancelled"]);
  const state = { detail: null, status: null, train: { x: [], y: [] }, evalc: { x: [], y: [] }, seen: new Set(), es: null, lastId: null,
    chartDirty: false, chartReady: false, stage: "", loaded: { metrics: false, outputs: false, samples: false } };

  // ---- detail ---------------------------------------------------------------------------
  const configOf = (d) => d.config || (d.resolved && d.resolved.config) || {};
  const sourcesOf = (d) => d.sources || (d.resolved && d.resolved.sources) || {};
  const lineageOf = (d) => d.lineage || (d.resolved && d.resolved.lineage) || {};
  const datasetsOf = (d) => d.datasets || (d.resolved && d.resolved.datasets) || [];

  async function loadDetail() {
    let d;
    try {
      d = await api("GET", `/api/jobs/${enc}`);
    } catch (err) {
      if (err.status === 404) {
        replace($("#job-root"), h("div", { class: "card" }, emptyState(`There is no job called "${name}"`, "It may have been deleted.",
          h("a", { class: "btn primary", href: "/ui/jobs" }, "Back to jobs"))));
        stopPolling();
        return null;
      }
      throw err;
    }
    const prev = state.status;
    state.detail = d;
    state.status = d.status || "created";
    renderHeader(d);
    renderProgress(d);
    if (!state.configRendered) { renderConfig(); renderLineage(d); renderDatasets(d); state.configRendered = true; }
    else renderLineage(d);
    // Outputs, metrics and samples change when a run ends: load them then (and once at start).
    if (prev !== state.status || !state.loaded.outputs) loadResults();
    if (ACTIVE.has(state.status) && !state.es) openStream();
    return d;
  }

  function renderHeader(d) {
    const status = state.status;
    replace($("#job-status"), badge(status));
    $("#job-status").className = "";
    $("#job-desc").textContent = configOf(d).description || d.description || "";
    const enable = { run: RUNNABLE.has(status), resume: RESUMABLE.has(status), cancel: ACTIVE.has(status),
      serve: status === "succeeded", delete: !ACTIVE.has(status) };
    for (const b of $$("#job-actions [data-action]")) {
      const on = enable[b.dataset.action];
      b.disabled = !on;
      b.hidden = !on && b.dataset.action !== "delete"; // show what the status allows; delete stays visible
    }
    const errBox = $("#job-error");
    if (status === "failed" && (d.error || d.error_kind)) {
      NCT.showAlert(errBox, { message: `Training failed${d.error_kind ? ` (${d.error_kind})` : ""}: ${d.error || "see the log"}`, hint: d.hint || d.error_hint });
    } else errBox.hidden = true;
  }

  function renderProgress(d) {
    const info = NCT.progressInfo(d);
    const p = pct(info.fraction, state.status);
    const bar = $("#job-progress");
    bar.value = p;
    bar.className = state.status === "succeeded" ? "done" : state.status === "failed" ? "failed" : "";
    bar.setAttribute("aria-valuetext", `${p}%`);
    $("#job-progress-text").textContent = `${p}%`;
    const lastLoss = info.loss ?? (state.train.y.length ? state.train.y[state.train.y.length - 1] : null);
    const facts = [
      ["Status", state.status],
      ["Step", info.step !== null ? `${info.step}${info.total ? ` / ${info.total}` : ""}` : info.total ? `0 / ${info.total}` : "–"],
      ["ETA", ACTIVE.has(state.status) ? fmtDuration(info.eta) : "–"],
      ["Loss", fmtNumber(lastLoss)],
      ["Tokens / s", info.tps !== null ? fmtNumber(info.tps, 0) : "–"],
      ["Base", d.base || lineageOf(d).base || "–"],
      ["Method", configOf(d).method || "–"],
      ["Created", fmtTime(d.created_at || (d.resolved && d.resolved.created_at))],
      ["Finished", fmtTime(d.finished_at)],
    ];
    replace($("#job-stats"), facts.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", { "data-stat": k.toLowerCase() }, v))));
  }

  // ---- live events ------------------------------------------------------------------------
  function onEvent(ev) {
    const key = `${ev.run}:${ev.type}:${ev.step}:${ev.time}`;
    if (state.seen.has(key)) return; // a reconnect may replay events
    state.seen.add(key);
    if (ev.type === "started") {
      if (state.train.x.length && (ev.resumed_from === undefined || ev.resumed_from === null)) {
        state.train = { x: [], y: [] }; state.evalc = { x: [], y: [] }; // a fresh run starts a fresh curve
      }
      state.stage = "started";
    } else if (ev.type === "log" && typeof ev.loss === "number") {
      state.train.x.push(ev.step); state.train.y.push(ev.loss); state.chartDirty = true;
      if (state.detail) {
        const d = state.detail;
        d.progress = { ...(typeof d.progress === "object" && d.progress ? d.progress : {}), step: ev.step, total_steps: ev.total_steps,
          loss: ev.loss, progress: ev.progress, eta_seconds: ev.eta_seconds, tokens_per_second: ev.tokens_per_second };
        if (ev.step && ev.total_steps && (ev.progress === undefined || ev.progress === null)) d.progress.progress = ev.step / ev.total_steps;
        if (state.status === "queued" || state.status === "created") state.status = "running";
        renderProgress(d);
      }
    } else if (ev.type === "eval" && typeof ev.eval_loss === "number") {
      state.evalc.x.push(ev.step); state.evalc.y.push(ev.eval_loss); state.chartDirty = true;
    } else if (ev.type === "message") {
      state.stage = ev.text || ev.stage || "";
    } else if (["finished", "failed", "cancelled"].includes(ev.type)) {
      state.stage = ev.type === "failed" ? `failed: ${ev.error || ""}` : ev.type;
      closeStream();
      setTimeout(loadDetail, 300); // the registry may lag the event by a moment
    }
    $("#job-stage").textContent = state.stage;
  }

  /** Follow the event stream; reconnect from the last id while the job is active. */
  async function openStream() {
    if (state.es) return;
    const abort = new AbortController();
    state.es = abort;
    try {
      while (state.es === abort) {
        const url = `/api/jobs/${enc}/events${state.lastId ? `?after=${encodeURIComponent(state.lastId)}` : ""}`;
        try {
          await NCT.readSSE(url, onMessage, abort.signal);
        } catch (e) {
          if (abort.signal.aborted) return;
        }
        // The server ends the stream once the job is no longer active.
        if (!ACTIVE.has(state.status)) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
    } finally {
      if (state.es === abort) state.es = null;
    }
  }

  function onMessage(msg) {
    if (msg.id) state.lastId = msg.id;
    try { onEvent(JSON.parse(msg.data)); } catch (e) { /* not an event */ }
  }

  function closeStream() {
    if (state.es) { state.es.abort(); state.es = null; }
  }

  /** Past events of a job that is not running (the stream replays them and ends). */
  async function loadHistory() {
    if (state.status === "created") return;
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 15000); // a run that died without a final event may never end its stream
    try { await NCT.readSSE(`/api/jobs/${enc}/events`, onMessage, abort.signal); } catch (e) { /* the chart stays empty */ }
  }

  // ---- chart ----------------------------------------------------------------------------------
  function drawChart() {
    if (!state.chartDirty || !window.Plotly) return;
    state.chartDirty = false;
    const has = state.train.x.length || state.evalc.x.length;
    $("#loss-empty").hidden = Boolean(has);
    if (!has) return;
    const traces = [
      { x: state.train.x, y: state.train.y, name: "train loss", mode: "lines+markers", line: { color: "#4f46e5", width: 2 }, marker: { size: 4 } },
      { x: state.evalc.x, y: state.evalc.y, name: "eval loss", mode: "lines+markers", line: { color: "#f97316", width: 2, dash: "dot" }, marker: { size: 7 } },
    ];
    const layout = { margin: { l: 48, r: 12, t: 8, b: 40 }, xaxis: { title: { text: "step" }, rangemode: "tozero" }, yaxis: { title: { text: "loss" } },
      legend: { orientation: "h", y: 1.12 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11 } };
    Plotly.react("loss-chart", traces, layout, { responsive: true, displaylogo: false, displayModeBar: false });
    state.chartReady = true;
  }

  // ---- log tail ---------------------------------------------------------------------------------
  async function loadLogs() {
    let text = "";
    try {
      const resp = await NCT.authFetch(`/api/jobs/${enc}/logs?tail=200`);
      if (!resp.ok) return;
      const type = resp.headers.get("content-type") || "";
      if (type.includes("json")) {
        const data = await resp.json();
        text = typeof data === "string" ? data : Array.isArray(data) ? data.join("\n") : Array.isArray(data.lines) ? data.lines.join("\n") : data.text || data.log || "";
      } else text = await resp.text();
    } catch (e) { return; }
    const pre = $("#log-tail");
    if (pre.textContent === text) return;
    pre.textContent = text || "No log yet.";
    if ($("#log-follow").checked) pre.scrollTop = pre.scrollHeight;
  }

  // ---- results ------------------------------------------------------------------------------------
  async function loadResults() {
    state.loaded.outputs = true;
    await Promise.all([loadMetrics(), loadOutputs(), loadSamples()]);
  }

  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
      else out.push([key, v]);
    }
    return out;
  }

  async function loadMetrics() {
    let m;
    try { m = await api("GET", `/api/jobs/${enc}/metrics`); } catch (e) { return; }
    // {metrics, history}: the history feeds the chart; the table shows the final metrics.
    const rows = flatten(m && "history" in m ? m.metrics || {} : m, "", []);
    if (!rows.length) return;
    const shown = rows.filter(([, v]) => !(Array.isArray(v) && v.some((x) => x && typeof x === "object"))); // per-step history is the chart
    const row = ([k, v]) => {
      const text = v === null || v === undefined ? "–" : typeof v === "number" ? fmtNumber(v) : Array.isArray(v) ? v.join(", ") || "–" : String(v);
      return h("tr", { "data-metric": k }, h("td", {}, k), h("td", { class: "cell tabular", title: text.length > 48 ? text : null }, text.length > 48 ? `${text.slice(0, 45)}…` : text));
    };
    // What people compare between runs first; everything else one click away.
    const KEY = ["train_loss", "eval_loss", "perplexity", "heldout_score_before", "heldout_score_after", "global_step", "epochs",
      "tokens_per_second", "train_runtime_seconds", "num_train_examples", "num_eval_examples"];
    const key = KEY.map((k) => shown.find(([n]) => n === k)).filter((r) => r && r[1] !== null && r[1] !== undefined);
    const rest = shown.filter((r) => !key.includes(r));
    replace($("#metrics"), table(["Metric", "Value"], key.map(row)),
      rest.length ? h("details", { class: "advanced" }, h("summary", {}, `All metrics (${rest.length} more)`), table(["Metric", "Value"], rest.map(row))) : null);
  }

  async function loadOutputs() {
    let data;
    try { data = await api("GET", `/api/jobs/${enc}/outputs`); } catch (e) { return; }
    const files = (Array.isArray(data) ? data : data.files || data.items || []).map((f) => (typeof f === "string" ? { path: f } : f))
      .filter((f) => !f.is_dir && f.type !== "dir");
    if (!files.length) return;
    const href = (p) => `/api/jobs/${enc}/outputs/${String(p).split("/").map(encodeURIComponent).join("/")}`;
    const rows = (fs) => fs.map((f) => h("tr", {}, h("td", { class: "cell" }, h("a", { href: href(f.path || f.name), download: "" }, f.path || f.name)),
      h("td", { class: "num" }, fmtBytes(f.size ?? f.size_bytes))));
    // Checkpoints are for resuming; keep them out of the way of the model and the reports.
    const isCkpt = (f) => String(f.path || f.name).startsWith("checkpoints/");
    const main = files.filter((f) => !isCkpt(f));
    const ckpts = files.filter(isCkpt);
    replace($("#outputs"), table(["File", { label: "Size", cls: "num" }], rows(main)),
      ckpts.length ? h("details", { class: "advanced" }, h("summary", {}, `Checkpoints (${ckpts.length} files)`), table(["File", { label: "Size", cls: "num" }], rows(ckpts))) : null);
  }

  async function loadSamples() {
    let data;
    try { data = await api("GET", `/api/jobs/${enc}/samples`); } catch (e) { return; }
    const items = list(data.samples ? data.samples : data);
    if (!items.length) return;
    // Samples come either as events per stage or as {prompt, before, after} rows; group by prompt.
    const byPrompt = new Map();
    for (const s of items) {
      const key = s.prompt ?? JSON.stringify(s.messages || "");
      const row = byPrompt.get(key) || { prompt: key, expected: s.expected ?? null, before: null, after: null };
      if (s.before !== undefined || s.after !== undefined) { row.before = s.before ?? row.before; row.after = s.after ?? row.after; }
      else if (s.stage === "before") row.before = s.output;
      else row.after = s.output;
      if (s.expected !== undefined && s.expected !== null) row.expected = s.expected;
      byPrompt.set(key, row);
    }
    replace($("#samples"), Array.from(byPrompt.values()).map((r) => h("div", { class: "sample" },
      h("h3", {}, "Prompt"), h("pre", {}, String(r.prompt)),
      h("div", { class: "cols" },
        h("div", {}, h("h3", {}, "Before training"), showText(r.before)),
        h("div", {}, h("h3", {}, "After training"), showText(r.after)),
        h("div", {}, h("h3", {}, "Expected"), h("pre", {}, r.expected ?? "–"))))));
  }

  /** Model output as typed; whitespace-only answers are named rather than shown as a blank box. */
  function showText(t) {
    if (t === null || t === undefined) return h("pre", {}, "–");
    if (!String(t).trim()) return h("pre", { class: "muted" }, t ? `(only whitespace: ${String(t).length} characters)` : "(empty)");
    return h("pre", {}, String(t));
  }

  // ---- static sections ----------------------------------------------------------------------------
  function renderConfig() {
    const d = state.detail;
    const sources = sourcesOf(d);
    const rows = flatten(configOf(d), "", []);
    const onlyChanged = $("#config-changed-only").checked;
    const shown = rows.filter(([k]) => !onlyChanged || (sources[k] && sources[k] !== "schema"));
    if (!rows.length) { replace($("#config"), h("p", { class: "muted" }, "No resolved config.")); return; }
    replace($("#config"), table(["Setting", "Value", "From"], shown.map(([k, v]) => {
      const src = sources[k] || "schema";
      return h("tr", { "data-key": k }, h("td", {}, h("code", {}, k)),
        h("td", { class: "cell" }, v === null || v === undefined ? "–" : typeof v === "object" ? JSON.stringify(v) : String(v)),
        h("td", {}, h("span", { class: `source ${src.split(":")[0]}` }, src)));
    })));
  }

  function jobLink(n) { return h("a", { href: jobUrl(n) }, n); }

  function renderLineage(d) {
    const lin = lineageOf(d);
    const children = d.children || lin.children || [];
    const baseChain = lin.base_chain && lin.base_chain.length ? lin.base_chain : lin.base || d.base ? [lin.base || d.base] : [];
    const parents = lin.parent_chain && lin.parent_chain.length ? lin.parent_chain : lin.parent || d.parent ? [lin.parent || d.parent] : [];
    replace($("#lineage"), h("ul", { class: "lineage-list" },
      h("li", {}, h("span", { class: "label" }, "Base"), baseChain.length ? baseChain.join(" → ") : "–"),
      h("li", {}, h("span", { class: "label" }, "Parents"), parents.length ? parents.flatMap((p, i) => (i ? [" → ", jobLink(p)] : [jobLink(p)])) : "none (starts from the model)"),
      h("li", {}, h("span", { class: "label" }, "Children"), children.length ? children.flatMap((c, i) => (i ? [", ", jobLink(typeof c === "string" ? c : c.name)] : [jobLink(typeof c === "string" ? c : c.name)])) : "none"),
      h("li", {}, h("a", { href: `/ui/jobs/new?parent=${enc}` }, "Continue training from this job (new child job) →"))));
  }

  function renderDatasets(d) {
    const ds = datasetsOf(d);
    replace($("#datasets"), ds.length
      ? table(["Dataset", "Format", { label: "Rows", cls: "num" }, "Columns"], ds.map((s) => h("tr", {},
        h("td", {}, h("a", { href: `/ui/datasets?dataset=${encodeURIComponent(s.name)}` }, `${s.name}@${s.version}`)),
        h("td", {}, s.format || "–"), h("td", { class: "num" }, fmtNumber(s.rows)), h("td", { class: "cell" }, (s.columns || []).join(", ")))))
      : h("p", { class: "muted" }, "This job has no dataset."));
  }

  // ---- actions --------------------------------------------------------------------------------------
  async function act(action, button) {
    button.disabled = true;
    try {
      if (action === "delete") {
        if (!confirm(`Delete job "${name}" and its folder (outputs and logs included)?`)) { button.disabled = false; return; }
        await api("DELETE", `/api/jobs/${enc}`);
        toast(`Deleted ${name}.`);
        location.href = "/ui/jobs";
        return;
      }
      if (action === "serve") {
        toast("Starting a model server for this job; loading the model can take a minute…");
        const server = await api("POST", "/api/servers", { kind: "model", job: name });
        const id = server.id || (server.server && server.server.id);
        location.href = `/ui/playground?server=${encodeURIComponent(id)}`;
        return;
      }
      if (action === "cancel" && !confirm(`Cancel ${name}? It saves a checkpoint so you can resume later.`)) { button.disabled = false; return; }
      await api("POST", `/api/jobs/${enc}/${action}`);
      toast(action === "cancel" ? "Cancelling…" : action === "resume" ? "Resuming…" : "Starting…");
      if (action !== "cancel") { state.train = { x: [], y: [] }; state.evalc = { x: [], y: [] }; state.seen.clear(); state.lastId = null; }
      closeStream();
      await loadDetail();
      if (ACTIVE.has(state.status) && !state.es) openStream();
    } catch (err) {
      NCT.showAlert($("#job-error"), err);
      button.disabled = false;
    }
  }

  for (const b of $$("#job-actions [data-action]")) b.addEventListener("click", () => act(b.dataset.action, b));
  $("#config-changed-only").addEventListener("change", renderConfig);

  let stops = [];
  function stopPolling() { stops.forEach((s) => s()); stops = []; }

  (async () => {
    try {
      const d = await loadDetail();
      if (!d) return;
      if (!ACTIVE.has(state.status)) loadHistory();
      state.chartDirty = true;
      drawChart();
      loadLogs();
    } catch (err) {
      NCT.showAlert($("#job-error"), err);
    }
    stops.push(every(500, async () => drawChart()));
    stops.push(every(2000, async () => { if (ACTIVE.has(state.status)) await loadLogs(); }));
    stops.push(every(3000, async () => {
      const before = state.status;
      await loadDetail();
      if (before !== state.status) loadLogs();
    }));
  })();
})();
