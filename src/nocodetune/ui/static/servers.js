/* Servers page: running AI servers with health, start a model server, stop, logs. */
"use strict";
(() => {
  const { api, h, $, replace, toast, errorBox, emptyState, table, every, list, fmtTime } = NCT;
  const state = { servers: [], logsFor: null };

  async function loadJobs() {
    const sel = $("#server-job");
    try {
      const jobs = list(await api("GET", "/api/jobs?status=succeeded&limit=500"));
      replace(sel, h("option", { value: "" }, jobs.length ? "(choose a trained job)" : "No trained jobs yet"),
        jobs.map((j) => h("option", { value: j.name }, j.name)));
      const want = new URLSearchParams(location.search).get("job");
      if (want) sel.value = want;
    } catch (err) {
      replace(sel, h("option", { value: "" }, "Could not load jobs"));
    }
  }

  async function loadModels() {
    const sel = $("#server-model");
    try {
      const models = ((await api("GET", "/api/models")).models || []).filter((m) => m.source);
      replace(sel, h("option", { value: "" }, models.length ? "(or choose a model)" : "No models found"), models.map((m) => h("option", { value: m.source }, m.name)));
    } catch (err) {
      replace(sel, h("option", { value: "" }, "Could not load models"));
    }
  }

  const health = NCT.serverHealth;
  const urlOf = (s) => s.url || (s.port ? `http://${s.host || "127.0.0.1"}:${s.port}` : "");

  async function load() {
    const box = $("#servers-list");
    try {
      state.servers = list(await api("GET", "/api/servers"));
    } catch (err) {
      replace(box, errorBox(err));
      return;
    }
    if (!state.servers.length) {
      replace(box, emptyState("No servers running", "Start a chat server above for a trained job or a model, then talk to it in the Playground."));
      return;
    }
    replace(box, table(["Serves", "Health", "Address", { label: "Started", cls: "hide-narrow" }, "Actions"], state.servers.map((s) => {
      const hl = health(s);
      const isModel = (s.kind || "model") === "model";
      const title = s.job ? `job ${s.job}` : isModel ? (s.serves || `model ${s.model || ""}`) : s.serves || s.kind;
      return h("tr", { "data-server": s.id },
        h("td", {}, s.job ? h("a", { href: NCT.jobUrl(s.job) }, h("strong", {}, title)) : h("strong", {}, title), h("span", { class: "sub" }, isModel ? "chat server" : `${s.kind} server`)),
        h("td", {}, NCT.badge(hl), s.error ? h("span", { class: "sub" }, s.error) : null),
        h("td", { class: "cell path" }, urlOf(s) ? h("code", {}, urlOf(s)) : "–"),
        h("td", { class: "hide-narrow" }, fmtTime(s.started_at || s.created_at)),
        h("td", {}, h("div", { class: "actions" },
          isModel ? h("a", { class: "btn small", href: `/ui/playground?server=${encodeURIComponent(s.id)}` }, "Chat") : null,
          h("button", { type: "button", class: "btn small ghost", onclick: () => showLogs(s.id) }, "Log"),
          h("button", { type: "button", class: "btn small danger-outline", onclick: () => stop(s.id) }, "Stop"))));
    }), { stack: true }));
  }

  async function showLogs(id) {
    state.logsFor = id;
    $("#server-logs-card").hidden = false;
    const s = state.servers.find((x) => x.id === id) || {};
    $("#server-logs-title").textContent = `Server log · ${s.job ? `job ${s.job}` : s.serves || id}`;
    await refreshLogs();
    $("#server-logs-card").scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  async function refreshLogs() {
    if (!state.logsFor) return;
    try {
      const resp = await NCT.authFetch(`/api/servers/${encodeURIComponent(state.logsFor)}/logs?tail=200`);
      const type = resp.headers.get("content-type") || "";
      let text;
      if (type.includes("json")) {
        const data = await resp.json();
        text = !resp.ok ? data.message || "" : Array.isArray(data) ? data.join("\n") : Array.isArray(data.lines) ? data.lines.join("\n") : data.text || data.log || "";
      } else text = await resp.text();
      const pre = $("#server-logs");
      pre.textContent = text || "The log is empty.";
      pre.scrollTop = pre.scrollHeight;
    } catch (e) { /* keep the last text */ }
  }

  async function stop(id) {
    if (!confirm(`Stop server ${id}?`)) return;
    try {
      await api("DELETE", `/api/servers/${encodeURIComponent(id)}`);
      toast(`Stopped ${id}.`);
      load();
    } catch (err) { toast(err.message, true); }
  }

  function fieldError(field, msg) {
    const slot = document.getElementById(`err-${field}`);
    if (!slot) return false;
    slot.textContent = msg; slot.hidden = !msg;
    return true;
  }

  $("#server-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    ["job", "model", "port"].forEach((f) => fieldError(f, ""));
    NCT.showAlert($("#server-form-error"), null);
    const body = { kind: "model" };
    const job = $("#server-job").value;
    const model = $("#server-model").value;
    const port = $("#server-port").value.trim();
    if (!job && !model) { fieldError("job", "Choose a trained job or a model."); $("#server-job").focus(); return; }
    if (job) body.job = job; else body.model = model;
    if (port) body.port = Number(port);
    const btn = $("#start-server");
    btn.disabled = true;
    btn.textContent = "Starting… (loading the model)";
    try {
      const s = await api("POST", "/api/servers", body);
      toast(`Server ${s.id || ""} is up.`);
      load();
    } catch (err) {
      const f = (err.field || "").replace(/^body\./, "");
      if (!fieldError(f, NCT_LABELS.humanize(err.message))) NCT.showAlert($("#server-form-error"), err);
    } finally { btn.disabled = false; btn.textContent = "Start"; }
  });
  $("#refresh-servers").addEventListener("click", load);

  loadJobs();
  loadModels();
  load();
  every(3000, async () => { await load(); if (state.logsFor) await refreshLogs(); });
})();
