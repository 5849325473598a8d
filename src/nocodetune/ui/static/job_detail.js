/* Job page: live progress from the job's event stream (SSE) with an ETA that counts down
   between events and a sign of life from heartbeats, every logged point on the loss and
   learning-rate charts, a log in plain words (raw log one click away), results, outputs,
   samples, lineage, data and settings, and the actions the status allows. */
"use strict";
(() => {
  const { api, h, $, $$, replace, badge, pct, fmtBytes, fmtDuration, fmtNumber, fmtTime, toast, emptyState, table, every, ACTIVE, list, jobUrl } = NCT;
  const L = NCT_LABELS;
  const name = $("#job-root").dataset.job;
  const enc = encodeURIComponent(name);
  const PREF = ["rewards_chosen", "rewards_rejected", "rewards_margins", "rewards_accuracies"];
  const fresh = () => ({ loss: new Map(), evalLoss: new Map(), lr: new Map(), pref: Object.fromEntries(PREF.map((k) => [k, new Map()])) });
  const state = {
    detail: null, status: null, curves: fresh(), seen: new Set(), stream: null, lastId: null, dirty: true,
    // what the latest events said: progress, ETA (with the time it was said), stage, last sign of life
    live: { step: null, total: null, fraction: null, eta: null, etaAt: null, loss: null, tps: null, stage: null, beat: null, lastEventAt: null },
    checkpointStep: null, lines: [], loaded: { outputs: false }, datasetsExisting: null,
  };

  // ---- detail -------------------------------------------------------------------------------
  const configOf = (d) => d.config || {};
  const lineageOf = (d) => d.lineage || {};

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
    const p = d.progress || {};
    // The registry's figures are a floor; newer events (below) take over when they arrive.
    for (const [k, v] of [["step", p.step], ["total", p.total_steps], ["fraction", p.progress], ["loss", p.loss], ["tps", p.tokens_per_second]]) {
      if (v !== null && v !== undefined && (state.live[k] === null || k === "total")) state.live[k] = v;
    }
    if (state.live.eta === null && p.eta_seconds !== null && p.eta_seconds !== undefined) { state.live.eta = p.eta_seconds; state.live.etaAt = Date.now() / 1000; }
    renderHeader(d);
    renderProgress();
    renderWorkers();
    if (state.exporter) state.exporter.setStatus(state.status);
    if (!state.configRendered) { renderConfig(); renderDatasets(d); state.configRendered = true; }
    renderLineage(d);
    if (prev !== state.status || !state.loaded.outputs) loadResults();
    // A run can start and end between two polls: read what it wrote even if it was never seen active.
    if (!state.stream && (ACTIVE.has(state.status) || (prev && prev !== state.status))) openStream();
    if (state.status === "queued") explainQueue();
    return d;
  }

  function renderHeader(d) {
    const status = state.status;
    replace($("#job-status"), badge(status));
    $("#job-status").className = "";
    $("#job-desc").textContent = configOf(d).description || d.description || "";
    // One way to start again, named for what it does: the trainer continues from the last checkpoint when there is one.
    const again = ["failed", "cancelled", "paused"].includes(status);
    const resumable = again && state.checkpointStep !== null;
    const enable = { run: status === "created" || (again && !resumable), resume: resumable, cancel: ACTIVE.has(status), serve: status === "succeeded", delete: !ACTIVE.has(status) };
    for (const b of $$("#job-actions [data-action]")) {
      const on = enable[b.dataset.action];
      b.disabled = !on;
      b.hidden = !on && b.dataset.action !== "delete";
    }
    $('#job-actions [data-action="run"]').textContent = status === "created" ? "Run" : "Run again from the start";
    $('#job-actions [data-action="resume"]').textContent = resumable ? `Resume from step ${state.checkpointStep}` : "Resume";
    $('#job-actions [data-action="cancel"]').textContent = status === "queued" ? "Take off the queue" : "Stop";
    $("#action-help").textContent = {
      created: "Run starts training; you can follow it here.",
      queued: "Waiting for a free training slot…",
      running: "Stop saves a checkpoint of the steps done so far, so you can resume later.",
      succeeded: "Chat with it starts a model server and opens the Playground. Clone makes a new job with these settings to try something else.",
      failed: resumable ? `Resume continues from the checkpoint saved at step ${state.checkpointStep}. Fix the problem first (Clone lets you change settings).` : "No checkpoint was saved, so running again starts from the beginning. Clone lets you change settings first.",
      cancelled: resumable ? `Resume continues from the checkpoint saved at step ${state.checkpointStep}.` : "It stopped before saving a checkpoint, so running again starts from the beginning.",
      paused: resumable ? `Resume continues from the checkpoint saved at step ${state.checkpointStep}.` : "Running again starts from the beginning.",
    }[status] || "";
    const errBox = $("#job-error");
    if (status === "failed" && (d.error || d.error_kind)) {
      NCT.showAlert(errBox, { message: `Training failed: ${d.error || "see the log"}`, hint: state.failHint });
    } else if (errBox.dataset.kind !== "action") errBox.hidden = true;
  }

  /** What a queued job waits for: the jobs training now (they hold the slots). */
  async function explainQueue() {
    try {
      const running = list(await api("GET", "/api/jobs?status=running&limit=20")).map((j) => j.name).filter((n) => n !== name);
      if (state.status !== "queued") return;
      replace($("#action-help"), running.length
        ? ["Waiting for a free training slot: ", ...running.flatMap((n, i) => [i ? ", " : "", h("a", { href: jobUrl(n) }, n)]), running.length === 1 ? " is training now. It starts when that one ends." : " are training now."]
        : "Waiting for a free training slot; it starts in a moment.");
    } catch (e) { /* keep the short text */ }
  }

  /** What the trainer is doing, in words: its own text (written for people) with any count it sent. */
  function stageText(ev) {
    const STAGES = { samples_before: "Answering sample prompts before training", samples_after: "Answering sample prompts after training",
      starting: "Starting", "loading model": "Loading the model", tokenizing: "Preparing the examples", "reading data": "Reading the data",
      train: "Training", training: "Training", saving: "Saving the model", evaluating: "Evaluating" };
    const done = ev.done ?? ev.current ?? null;
    const total = ev.total ?? null;
    const count = done !== null && total ? ` (${done} of ${total})` : "";
    const text = ev.text ? L.humanize(ev.text) : "";
    if (text) return `${text.charAt(0).toUpperCase()}${text.slice(1)}${count}`;
    return `${ev.stage ? STAGES[ev.stage] || L.words(ev.stage) : "Working"}${count}`;
  }

  /** The ETA, counted down from when it was said; null when unknown. */
  function etaNow() {
    const { eta, etaAt } = state.live;
    if (eta === null || etaAt === null) return null;
    return Math.max(0, eta - (Date.now() / 1000 - Math.min(etaAt, Date.now() / 1000)));
  }

  function renderProgress() {
    const live = state.live;
    const active = ACTIVE.has(state.status);
    const fraction = live.fraction ?? (live.step !== null && live.total ? live.step / live.total : 0);
    const p = pct(fraction, state.status);
    const bar = $("#job-progress");
    bar.value = p;
    bar.className = state.status === "succeeded" ? "done" : state.status === "failed" ? "failed" : "";
    bar.setAttribute("aria-valuetext", `${p}%`);
    $("#job-progress-text").textContent = `${p}%`;
    const eta = etaNow();
    const lastLoss = live.loss ?? null;
    const facts = [
      ["Step", live.step !== null ? `${live.step}${live.total ? ` of ${live.total}` : ""}` : live.total ? `0 of ${live.total}` : "–", "step"],
      ["Time left", active ? (eta === null ? "estimating…" : eta < 1 ? "any moment now" : `about ${fmtDuration(eta)}`) : "–", "eta"],
      ["Loss", fmtNumber(lastLoss), "loss"],
      ["Speed", live.tps !== null ? `${fmtNumber(live.tps, 0)} tokens/s` : "–", "speed"],
      ["Method", L.choice(configOf(state.detail || {}).method), "method"],
      ["Started", fmtTime(state.detail && state.detail.started_at), "started"],
      ["Finished", fmtTime(state.detail && state.detail.finished_at), "finished"],
    ];
    replace($("#job-stats"), facts.map(([k, v, key]) => h("div", {}, h("dt", {}, k), h("dd", { "data-stat": key }, v))));
    // The stage line: what the trainer does right now, and that it is alive.
    let stage = "";
    if (state.status === "queued") stage = "Queued.";
    else if (active) {
      const beat = live.beat;
      if (beat && beat.at >= (live.stageAt || 0) && beat.at >= (live.stepAt || 0)) {
        const now = Date.now() / 1000;
        const training = ["train", "training"].includes(beat.stage);
        if (training && live.stepAt) {
          stage = `Training step ${(beat.step ?? live.step ?? 0) + 1}${live.total ? ` of ${live.total}` : ""} — still working, ${fmtDuration(now - live.stepAt)} into this step.`;
        } else {
          const what = live.stage && !training ? live.stage : stageText({ stage: beat.stage });
          stage = `${what} — still working, ${fmtDuration(beat.elapsed + (now - beat.at))} so far.`;
        }
      } else if (live.stage && (live.stageAt || 0) > (live.stepAt || 0)) stage = `${live.stage}…`;
      else if (live.step !== null) stage = `Training: step ${live.step}${live.total ? ` of ${live.total}` : ""} done.`;
      else stage = "Starting…";
    } else if (state.status === "succeeded") stage = "Finished.";
    else if (state.status === "cancelled") stage = "Stopped.";
    else if (state.status === "paused") stage = "Paused.";
    else if (state.status === "failed") stage = "Failed.";
    $("#job-stage").textContent = stage;
    $("#job-alive").textContent = active && live.lastEventAt ? `last update ${fmtDuration(Math.max(0, Date.now() / 1000 - live.lastEventAt))} ago` : "";
  }

  /** Where the job runs: the executor, how many processes, and the hosts of its workers when there are several. */
  function renderWorkers() {
    const d = state.detail || {};
    const el = $("#job-workers");
    const world = (state.run && state.run.world_size) || d.world_size || 1;
    const workers = (d.workers && d.workers.length ? d.workers : state.run && state.run.workers) || [];
    const status = state.status;
    const verb = ["created", "queued"].includes(status) ? "Will run on" : ACTIVE.has(status) ? "Running on" : "Ran on";
    const where = d.executor === "ray" ? "a Ray cluster" : "this machine";
    if (!d.executor && !state.run) { el.hidden = true; return; }
    const parts = [world > 1 ? `${verb} ${world} processes on ${where}` : `${verb} ${where}, in one process`];
    el.dataset.worldSize = String(world);
    if (world > 1 && workers.length) {
      const byHost = new Map();
      for (const w of workers) {
        const host = w.host || w.node || "unknown host";
        byHost.set(host, [...(byHost.get(host) || []), w.rank]);
      }
      parts.push(`workers: ${[...byHost].map(([host, ranks]) => `${host} (process${ranks.length > 1 ? "es" : ""} ${ranks.sort((a, b) => a - b).join(", ")})`).join("; ")}`);
    }
    el.textContent = `${parts.join(" — ")}.`;
    el.hidden = false;
  }

  // ---- live events ------------------------------------------------------------------------------
  function addLine(ev, text, cls) {
    state.lines.push({ time: ev.time, text, cls: cls || ev.type });
    const ol = $("#log-readable");
    const t = ev.time ? new Date(ev.time * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
    ol.append(h("li", { class: `line line-${cls || ev.type}`, "data-type": ev.type }, h("time", {}, t), " ", text));
    if ($("#log-follow").checked) ol.scrollTop = ol.scrollHeight;
  }

  function onEvent(ev) {
    const key = `${ev.run}:${ev.type}:${ev.step}:${ev.time}`;
    if (state.seen.has(key)) return; // a reconnect may replay events
    state.seen.add(key);
    const live = state.live;
    if (ev.time) live.lastEventAt = Math.max(live.lastEventAt || 0, ev.time);
    const step = typeof ev.step === "number" ? ev.step : null;
    if (["started", "progress", "log", "heartbeat", "message"].includes(ev.type) && ["queued", "created"].includes(state.status) && state.stream) {
      state.status = "running"; // the registry catches up within a poll; the events are first
      if (state.detail) renderHeader(state.detail);
    }
    switch (ev.type) {
      case "started": {
        if (!ev.resumed_from) state.curves = fresh(); // a fresh run draws a fresh curve
        if (typeof ev.world_size === "number") { state.run = { world_size: ev.world_size, workers: Array.isArray(ev.workers) ? ev.workers : [] }; renderWorkers(); }
        Object.assign(live, { step: ev.resumed_from ? live.step : 0, total: ev.total_steps ?? live.total, fraction: ev.resumed_from ? live.fraction : 0, eta: null, etaAt: null, stage: null, beat: null });
        state.dirty = true;
        const what = [ev.total_steps ? `${ev.total_steps} steps` : null, ev.num_train_examples ? `${ev.num_train_examples} training examples` : null,
          ev.num_eval_examples ? `${ev.num_eval_examples} for evaluation` : null].filter(Boolean).join(", ");
        addLine(ev, ev.resumed_from ? `Run ${ev.run ?? ""} resumed from the last checkpoint${what ? ` (${what})` : ""}.` : `Run ${ev.run ?? ""} started${what ? `: ${what}` : ""}${ev.method ? `, ${L.choice(ev.method)}` : ""}.`);
        break;
      }
      case "message":
        live.stage = stageText(ev); live.stageAt = ev.time || Date.now() / 1000;
        addLine(ev, `${live.stage}.`);
        break;
      case "heartbeat":
        live.beat = { stage: ev.stage, step: ev.step ?? null, elapsed: Number(ev.elapsed_seconds) || 0, at: ev.time || Date.now() / 1000 };
        break;
      case "progress":
      case "log":
        if (step !== null) { live.step = step; live.stepAt = ev.time || Date.now() / 1000; }
        if (ev.total_steps) live.total = ev.total_steps;
        if (typeof ev.progress === "number") live.fraction = ev.progress;
        else if (step !== null && live.total) live.fraction = step / live.total;
        if (typeof ev.eta_seconds === "number") { live.eta = ev.eta_seconds; live.etaAt = ev.time || Date.now() / 1000; }
        if (typeof ev.tokens_per_second === "number") live.tps = ev.tokens_per_second;
        if (ev.type === "log") {
          if (typeof ev.loss === "number") { live.loss = ev.loss; state.curves.loss.set(step, ev.loss); }
          if (typeof ev.learning_rate === "number") state.curves.lr.set(step, ev.learning_rate);
          for (const k of PREF) if (typeof ev[k] === "number") state.curves.pref[k].set(step, ev[k]);
          state.dirty = true;
          const parts = [`Step ${step}${ev.total_steps ? `/${ev.total_steps}` : ""}`, typeof ev.loss === "number" ? `loss ${fmtNumber(ev.loss, 4)}` : null,
            typeof ev.learning_rate === "number" ? `learning rate ${fmtNumber(ev.learning_rate)}` : null,
            typeof ev.tokens_per_second === "number" ? `${fmtNumber(ev.tokens_per_second, 0)} tokens/s` : null,
            typeof ev.rewards_accuracies === "number" ? `preferred answer ranked first ${Math.round(ev.rewards_accuracies * 100)}%` : null];
          addLine(ev, parts.filter(Boolean).join(" · "));
        }
        break;
      case "eval":
        if (typeof ev.eval_loss === "number") { state.curves.evalLoss.set(step, ev.eval_loss); state.dirty = true; }
        addLine(ev, `Evaluation at step ${step}: loss ${fmtNumber(ev.eval_loss, 4)}${typeof ev.perplexity === "number" ? `, perplexity ${fmtNumber(ev.perplexity, 2)}` : ""}.`);
        break;
      case "checkpoint":
        state.checkpointStep = step;
        addLine(ev, `Checkpoint saved at step ${step}.`);
        break;
      case "sample":
        break;
      case "finished":
        live.fraction = 1; live.eta = 0; live.etaAt = ev.time;
        addLine(ev, "Finished: the trained model is saved.", "finished");
        break;
      case "failed":
        state.failHint = ev.hint;
        addLine(ev, `Failed: ${L.humanize(ev.error || "see the raw log")}`, "failed");
        break;
      case "cancelled":
      case "paused":
        if (ev.checkpoint && step) state.checkpointStep = step;
        addLine(ev, `${ev.type === "paused" ? "Paused" : "Stopped"} at step ${step ?? 0}${ev.checkpoint && step ? "; a checkpoint was saved" : ""}.`, "cancelled");
        break;
      default:
        break;
    }
    if (["finished", "failed", "cancelled", "paused"].includes(ev.type)) {
      closeStream();
      setTimeout(loadDetail, 300); // the registry may lag the event by a moment
    }
  }

  /** Follow the event stream; reconnect from the last id while the job is active. */
  async function openStream() {
    if (state.stream) return;
    const abort = new AbortController();
    state.stream = abort;
    try {
      while (state.stream === abort) {
        const url = `/api/jobs/${enc}/events${state.lastId ? `?after=${encodeURIComponent(state.lastId)}` : ""}`;
        try { await NCT.readSSE(url, onMessage, abort.signal); } catch (e) { if (abort.signal.aborted) return; }
        if (!ACTIVE.has(state.status)) break; // the server ends the stream once the job is no longer active
        await new Promise((r) => setTimeout(r, 2000));
      }
    } finally {
      if (state.stream === abort) state.stream = null;
    }
  }

  function onMessage(msg) {
    if (msg.id) state.lastId = msg.id;
    let ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    onEvent(ev);
  }

  function closeStream() {
    if (state.stream) { state.stream.abort(); state.stream = null; }
  }

  /** Past events of a job that is not running (the stream replays them and ends). */
  async function loadHistory() {
    if (state.status === "created") return;
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 15000); // a run that died without a final event may never end its stream
    try { await NCT.readSSE(`/api/jobs/${enc}/events`, onMessage, abort.signal); } catch (e) { /* the chart stays empty */ }
    renderHeader(state.detail);
  }

  // ---- charts ----------------------------------------------------------------------------------------
  function drawCharts() {
    if (!state.dirty || !window.Plotly) return;
    state.dirty = false;
    const c = state.curves;
    const has = c.loss.size || c.evalLoss.size;
    $("#loss-empty").hidden = Boolean(has);
    $("#loss-chart").hidden = !has;
    if (has) {
      NCT_CHARTS.draw($("#loss-chart"), [NCT_CHARTS.trace(c.loss, "training loss", 0), NCT_CHARTS.trace(c.evalLoss, "evaluation loss", 1, { dash: "dot", size: 8 })], "loss");
      $("#loss-chart").dataset.points = String(c.loss.size);
    }
    if (c.lr.size && $("#more-charts").open) NCT_CHARTS.draw($("#lr-chart"), [NCT_CHARTS.trace(c.lr, "learning rate", 2)], "learning rate", { showlegend: false });
    const margins = c.pref.rewards_margins;
    $("#margin-block").hidden = !margins.size;
    if (margins.size) {
      NCT_CHARTS.draw($("#margin-chart"), [NCT_CHARTS.trace(margins, "reward margin (chosen − rejected)", 3)], "reward margin", { showlegend: false });
      $("#margin-chart").dataset.points = String(margins.size);
    }
    const prefs = PREF.filter((k) => c.pref[k].size);
    $("#pref-summary").hidden = !prefs.length;
    $("#pref-chart").hidden = !prefs.length;
    if (prefs.length && $("#more-charts").open) {
      NCT_CHARTS.draw($("#pref-chart"), prefs.map((k, i) => NCT_CHARTS.trace(c.pref[k], k.replace("rewards_", "reward: ").replace("_", " "), i + 3)), "preference");
    }
  }
  $("#more-charts").addEventListener("toggle", () => { state.dirty = true; drawCharts(); });

  // ---- raw log ----------------------------------------------------------------------------------------
  async function loadRawLog() {
    if ($("#log-raw").hidden) return;
    let text = "";
    try {
      const data = await api("GET", `/api/jobs/${enc}/logs?tail=300`);
      text = (data.lines || []).join("\n");
    } catch (e) { return; }
    const pre = $("#log-raw");
    if (pre.textContent === text) return;
    pre.textContent = text || "No log yet.";
    if ($("#log-follow").checked) pre.scrollTop = pre.scrollHeight;
  }
  $("#raw-toggle").addEventListener("click", () => {
    const raw = $("#log-raw").hidden;
    $("#log-raw").hidden = !raw;
    $("#log-readable").hidden = raw;
    $("#raw-toggle").setAttribute("aria-pressed", String(raw));
    $("#raw-toggle").textContent = raw ? "Show in plain words" : "Show raw log";
    loadRawLog();
  });

  // ---- results -------------------------------------------------------------------------------------------
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

  const METRIC_LABELS = { train_loss: "Training loss (final)", eval_loss: "Evaluation loss", perplexity: "Perplexity", heldout_score_before: "Held-out score before",
    heldout_score_after: "Held-out score after", global_step: "Steps trained", epochs: "Epochs", tokens_per_second: "Speed (tokens/s)",
    train_runtime_seconds: "Training time", num_train_examples: "Training examples", num_eval_examples: "Evaluation examples",
    heldout_preference_accuracy_before: "Chosen answer preferred, before", heldout_preference_accuracy_after: "Chosen answer preferred, after",
    heldout_preference_margin_before: "Preference margin before", heldout_preference_margin_after: "Preference margin after" };

  /** Held-out preference accuracy before and after training, as a sentence (dpo/orpo jobs). */
  function preferenceSentence(m) {
    const before = m.heldout_preference_accuracy_before;
    const after = m.heldout_preference_accuracy_after;
    if (typeof before !== "number" && typeof after !== "number") return null;
    const share = (v) => (typeof v === "number" ? `${Math.round(v * 100)}%` : "–");
    const pairs = typeof m.heldout_preference_pairs === "number" ? `${m.heldout_preference_pairs} held-out pairs` : "the held-out pairs";
    const mb = m.heldout_preference_margin_before;
    const ma = m.heldout_preference_margin_after;
    const margin = typeof mb === "number" && typeof ma === "number" ? ` The average margin went from ${fmtNumber(mb, 3)} to ${fmtNumber(ma, 3)}.` : "";
    const change = typeof before === "number" && typeof after === "number" ? (after > before ? " Training helped." : after < before ? " It did worse after training." : " No change.") : "";
    return h("p", { id: "pref-result", class: "result-sentence" },
      `On ${pairs}, the model ranked the chosen answer above the rejected one ${share(before)} of the time before training and ${share(after)} after.${margin}${change}`);
  }

  async function loadMetrics() {
    let m;
    try { m = await api("GET", `/api/jobs/${enc}/metrics`); } catch (e) { return; }
    const rows = flatten((m && m.metrics) || {}, "", []).filter(([, v]) => !(Array.isArray(v) && v.some((x) => x && typeof x === "object")));
    if (!rows.length) return;
    const show = (k, v) => (v === null || v === undefined ? "–" : k.endsWith("_seconds") && typeof v === "number" ? fmtDuration(v) : typeof v === "number" ? fmtNumber(v) : Array.isArray(v) ? v.join(", ") || "–" : String(v));
    const row = ([k, v]) => {
      const text = show(k, v);
      return h("tr", { "data-metric": k }, h("td", { title: k }, METRIC_LABELS[k] || L.words(k)), h("td", { class: "cell tabular", title: text.length > 48 ? text : null }, text.length > 48 ? `${text.slice(0, 45)}…` : text));
    };
    const key = Object.keys(METRIC_LABELS).map((k) => rows.find(([n]) => n === k)).filter((r) => r && r[1] !== null && r[1] !== undefined);
    const rest = rows.filter((r) => !key.includes(r));
    replace($("#metrics"), preferenceSentence((m && m.metrics) || {}), key.length ? table(["Result", "Value"], key.map(row)) : null,
      rest.length ? h("details", { class: "advanced" }, h("summary", {}, `All figures (${rest.length} more)`), table(["Figure", "Value"], rest.map(row))) : null);
  }

  async function loadOutputs() {
    let files;
    try { files = list(await api("GET", `/api/jobs/${enc}/outputs`)); } catch (e) { return; }
    if (!files.length) return;
    const href = (p) => `/api/jobs/${enc}/outputs/${String(p).split("/").map(encodeURIComponent).join("/")}`;
    const rows = (fs) => fs.map((f) => h("tr", {}, h("td", { class: "cell path" }, h("a", { href: href(f.path), download: "" }, f.path)), h("td", { class: "num" }, fmtBytes(f.size))));
    // Checkpoints are for resuming; keep them out of the way of the model and the reports.
    const isCkpt = (f) => String(f.path).startsWith("checkpoints/");
    const main = files.filter((f) => !isCkpt(f));
    const ckpts = files.filter(isCkpt);
    replace($("#outputs"), main.length ? table(["File", { label: "Size", cls: "num" }], rows(main)) : null,
      ckpts.length ? h("details", { class: "advanced" }, h("summary", {}, `Checkpoints (${ckpts.length} files)`), table(["File", { label: "Size", cls: "num" }], rows(ckpts))) : null);
  }

  async function loadSamples() {
    let items;
    try { items = list(await api("GET", `/api/jobs/${enc}/samples`)); } catch (e) { return; }
    if (!items.length) return;
    const byPrompt = new Map();
    for (const s of items) {
      const key = s.prompt ?? JSON.stringify(s.messages || "");
      const row = byPrompt.get(key) || { prompt: key, expected: null, before: null, after: null };
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

  // ---- static sections ------------------------------------------------------------------------------------
  function sourceText(src) {
    if (!src || src === "schema") return "default";
    if (src === "job") return "this job";
    const [kind, who] = src.split(":");
    return kind === "base" ? `base ${who}` : kind === "parent" ? `parent ${who}` : src;
  }

  function renderConfig() {
    const d = state.detail;
    const sources = d.sources || {};
    const rows = flatten(configOf(d), "", []);
    const onlyChanged = $("#config-changed-only").checked;
    const shown = rows.filter(([k]) => !onlyChanged || (sources[k] && sources[k] !== "schema"));
    if (!rows.length) { replace($("#config"), h("p", { class: "muted" }, "No settings recorded.")); return; }
    replace($("#config"), table(["Setting", "Value", "From"], shown.map(([k, v]) => {
      const src = sources[k] || "schema";
      const value = v === null || v === undefined ? "–" : typeof v === "object" ? (Array.isArray(v) ? v.join(", ") || "–" : JSON.stringify(v)) : typeof v === "boolean" || /^[a-z_0-9]+$/.test(String(v)) ? L.choice(v) : String(v);
      return h("tr", { "data-key": k }, h("td", { title: k }, L.field(k)),
        h("td", { class: "cell" }, value),
        h("td", {}, h("span", { class: `source ${src.split(":")[0]}`, "data-source": src }, sourceText(src))));
    })));
  }

  function jobLink(n) { return h("a", { href: jobUrl(n) }, n); }

  function renderLineage(d) {
    const lin = lineageOf(d);
    const children = lin.children || [];
    const baseChain = lin.base_chain && lin.base_chain.length ? lin.base_chain : lin.base ? [lin.base] : [];
    const parents = lin.parent_chain && lin.parent_chain.length ? lin.parent_chain : lin.parent ? [lin.parent] : [];
    replace($("#lineage"), h("ul", { class: "lineage-list" },
      h("li", {}, h("span", { class: "label" }, "Recipe"), baseChain.length ? baseChain.join(" → ") : "–"),
      h("li", {}, h("span", { class: "label" }, "Trained from"), parents.length ? parents.flatMap((p, i) => (i ? [" → ", jobLink(p)] : [jobLink(p)])) : "the model itself"),
      h("li", {}, h("span", { class: "label" }, "Continued by"), children.length ? children.flatMap((c, i) => (i ? [", ", jobLink(c)] : [jobLink(c)])) : "no job yet"),
      h("li", {}, h("a", { href: `/ui/jobs/new?parent=${enc}` }, "Continue training from this job →"))));
  }

  async function renderDatasets(d) {
    const ds = d.datasets || [];
    if (!ds.length) { replace($("#datasets"), h("p", { class: "muted" }, "This job has no dataset.")); return; }
    let existing = null;
    try { existing = new Set(list(await api("GET", "/api/files")).map((x) => x.name)); } catch (e) { /* links stay plain */ }
    replace($("#datasets"), table(["Dataset", { label: "Rows", cls: "num" }, "Columns"], ds.map((s) => {
      const gone = existing && !existing.has(s.name);
      return h("tr", { "data-dataset": s.name },
        h("td", {}, gone ? h("span", {}, `${s.name} v${s.version}`, h("span", { class: "sub" }, "Deleted from Datasets; this job keeps its own copy."))
          : h("a", { href: `/ui/datasets?dataset=${encodeURIComponent(s.name)}&version=${s.version}` }, `${s.name} v${s.version}`)),
        h("td", { class: "num" }, fmtNumber(s.rows)), h("td", { class: "cell" }, (s.columns || []).join(", ")));
    })));
  }

  // ---- actions -----------------------------------------------------------------------------------------------
  async function act(action, button) {
    button.disabled = true;
    try {
      if (action === "delete") {
        if (!confirm(`Delete job "${name}" with its outputs and logs? This cannot be undone.`)) { button.disabled = false; return; }
        await api("DELETE", `/api/jobs/${enc}`);
        toast(`Deleted ${name}.`);
        location.href = "/ui/jobs";
        return;
      }
      if (action === "serve") {
        button.textContent = "Starting a chat server… (loading the model)";
        const server = await api("POST", "/api/servers", { kind: "model", job: name });
        location.href = `/ui/playground?server=${encodeURIComponent(server.id)}`;
        return;
      }
      if (action === "cancel") {
        const step = state.live.step || 0;
        const text = state.status === "queued" ? `Take ${name} off the queue? It has not started, so nothing is lost.`
          : step > 0 ? `Stop ${name}? It saves a checkpoint of the ${step} steps done, so you can resume later.`
            : `Stop ${name}? It has not finished a training step yet, so there is nothing to save; running it again starts from the beginning.`;
        if (!confirm(text)) { button.disabled = false; return; }
      }
      await api("POST", `/api/jobs/${enc}/${action}`);
      toast(action === "cancel" ? (state.status === "queued" ? "Taken off the queue." : "Stopping…") : action === "resume" ? "Resuming…" : "Starting…");
      if (action !== "cancel") {
        if (action === "run") { state.curves = fresh(); state.dirty = true; }
        state.seen.clear(); state.lastId = null; replace($("#log-readable"));
        Object.assign(state.live, { eta: null, etaAt: null, beat: null, stage: null });
      }
      $("#job-error").dataset.kind = "";
      closeStream();
      await loadDetail();
      if (ACTIVE.has(state.status) && !state.stream) openStream();
    } catch (err) {
      $("#job-error").dataset.kind = "action";
      NCT.showAlert($("#job-error"), err);
      button.disabled = false;
    }
  }

  for (const b of $$("#job-actions [data-action]")) b.addEventListener("click", () => act(b.dataset.action, b));
  $("#config-changed-only").addEventListener("change", renderConfig);

  // Export (export.js): it shows itself once the server answers the exports listing, and only for a succeeded job.
  function offerExport() {
    if (!window.NCT_EXPORT || state.exporter) return;
    state.exporter = window.NCT_EXPORT.mount($("#export-slot"), name);
    if (state.exporter && state.status) state.exporter.setStatus(state.status);
  }

  let stops = [];
  function stopPolling() { stops.forEach((s) => s()); stops = []; }

  (async () => {
    try {
      const d = await loadDetail();
      if (!d) return;
      if (!ACTIVE.has(state.status)) await loadHistory();
      drawCharts();
    } catch (err) {
      NCT.showAlert($("#job-error"), err);
    }
    offerExport();
    stops.push(every(400, async () => drawCharts()));
    stops.push(every(1000, async () => { if (ACTIVE.has(state.status)) renderProgress(); }));
    stops.push(every(2000, async () => { if (ACTIVE.has(state.status)) await loadRawLog(); }));
    stops.push(every(3000, async () => { await loadDetail(); }));
  })();
})();
