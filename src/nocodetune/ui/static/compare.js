/* Compare runs: the selected jobs' loss and learning-rate curves overlaid (from each job's
   GET /api/jobs/{name}/metrics history), DPO preference accuracy when present, their final
   results side by side, and a diff of their settings. The selection lives in the URL. */
"use strict";
(() => {
  const { api, h, $, $$, replace, list, table, fmtNumber, jobUrl, badge } = NCT;
  const L = NCT_LABELS;
  const params = new URLSearchParams(location.search);
  const selected = (params.get("jobs") || "").split(",").map((s) => s.trim()).filter(Boolean);
  const cache = new Map();

  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
      else out[key] = v;
    }
    return out;
  }

  async function load(name) {
    if (!cache.has(name)) {
      cache.set(name, Promise.all([api("GET", `/api/jobs/${encodeURIComponent(name)}`), api("GET", `/api/jobs/${encodeURIComponent(name)}/metrics`)])
        .then(([detail, metrics]) => ({ name, detail, metrics })).catch(() => null));
    }
    return cache.get(name);
  }

  function curve(history, key, type) {
    const points = new Map();
    for (const e of history) if ((!type || e.type === type || (type === "log" && !("eval_loss" in e))) && typeof e[key] === "number") points.set(e.step, e[key]);
    return points;
  }

  async function render() {
    history.replaceState(null, "", `${location.pathname}?jobs=${selected.map(encodeURIComponent).join(",")}`);
    const jobs = (await Promise.all(selected.map(load))).filter(Boolean);
    const i = (name) => selected.indexOf(name);
    const loss = [];
    const lr = [];
    const pref = [];
    for (const j of jobs) {
      const hist = (j.metrics && j.metrics.history) || [];
      const train = curve(hist, "loss", "log");
      const evals = curve(hist.filter((e) => "eval_loss" in e), "eval_loss");
      if (train.size) loss.push(NCT_CHARTS.trace(train, `${j.name} (training)`, i(j.name)));
      if (evals.size) loss.push(NCT_CHARTS.trace(evals, `${j.name} (evaluation)`, i(j.name), { dash: "dot", size: 7 }));
      const rate = curve(hist, "learning_rate", "log");
      if (rate.size) lr.push(NCT_CHARTS.trace(rate, j.name, i(j.name)));
      const acc = curve(hist, "rewards_accuracies");
      if (acc.size) pref.push(NCT_CHARTS.trace(acc, j.name, i(j.name)));
    }
    $("#cmp-loss-empty").hidden = loss.length > 0 || !jobs.length;
    NCT_CHARTS.draw($("#cmp-loss"), loss, "loss");
    NCT_CHARTS.draw($("#cmp-lr"), lr, "learning rate");
    $("#cmp-pref-card").hidden = !pref.length;
    if (pref.length) NCT_CHARTS.draw($("#cmp-pref"), pref, "preferred ranked first");
    $("#cmp-loss").dataset.traces = String(loss.length);
    renderResults(jobs);
    renderDiff(jobs);
  }

  function renderResults(jobs) {
    const KEYS = [["status", "Status"], ["train_loss", "Training loss (final)"], ["eval_loss", "Evaluation loss"], ["perplexity", "Perplexity"],
      ["heldout_score_before", "Held-out score before"], ["heldout_score_after", "Held-out score after"], ["train_runtime_seconds", "Training time"]];
    const rows = KEYS.map(([k, label]) => {
      const cells = jobs.map((j) => {
        if (k === "status") return h("td", {}, badge(j.detail.status));
        const v = ((j.metrics && j.metrics.metrics) || {})[k];
        return h("td", { class: "num" }, v === undefined || v === null ? "–" : k.endsWith("_seconds") ? NCT.fmtDuration(v) : fmtNumber(v));
      });
      return cells.some((c) => c.textContent !== "–") ? h("tr", {}, h("th", { scope: "row" }, label), cells) : null;
    }).filter(Boolean);
    replace($("#cmp-results"), jobs.length ? table(["", ...jobs.map((j) => ({ label: j.name }))], rows) : h("p", { class: "muted" }, "Tick jobs above."));
  }

  function renderDiff(jobs) {
    const flat = jobs.map((j) => flatten(j.detail.config || {}, "", {}));
    const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].filter((k) => k !== "description");
    const differs = (k) => new Set(flat.map((f) => JSON.stringify(f[k] ?? null))).size > 1;
    const all = $("#cmp-all").checked;
    const shown = keys.filter((k) => all || differs(k));
    const show = (v) => (v === null || v === undefined ? "–" : Array.isArray(v) ? v.join(", ") || "–" : typeof v === "boolean" || /^[a-z_0-9]+$/.test(String(v)) ? L.choice(v) : String(v));
    if (jobs.length < 2) { replace($("#cmp-diff"), h("p", { class: "muted" }, "Tick at least two jobs.")); return; }
    replace($("#cmp-diff"), shown.length
      ? table(["Setting", ...jobs.map((j) => ({ label: j.name }))], shown.map((k) => h("tr", { "data-key": k, class: differs(k) ? "differs" : "" },
        h("th", { scope: "row", title: k }, L.field(k)), flat.map((f) => h("td", { class: "cell" }, show(f[k]))))))
      : h("p", { class: "muted" }, "These jobs use the same settings."));
  }

  async function picks() {
    let jobs = [];
    try { jobs = list(await api("GET", "/api/jobs?limit=200")); } catch (e) { /* none */ }
    replace($("#job-picks"), jobs.length ? jobs.map((j) => h("label", { class: "check pick" },
      h("input", { type: "checkbox", value: j.name, checked: selected.includes(j.name), onchange: (e) => {
        if (e.target.checked && !selected.includes(j.name)) selected.push(j.name);
        if (!e.target.checked) selected.splice(selected.indexOf(j.name), 1);
        render();
      } }), " ", h("a", { href: jobUrl(j.name) }, j.name), " ", badge(j.status))) : h("p", { class: "muted" }, "No jobs yet."));
  }

  $("#cmp-all").addEventListener("change", render);
  picks();
  render();
})();
