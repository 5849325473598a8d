/* Playground: chat with one or two model servers side by side, streaming replies.
   Requests go through /ui/proxy/{server}/v1/... so the browser talks to one origin only. */
"use strict";
(() => {
  const { api, h, $, $$, replace, toast, list } = NCT;
  const params = new URLSearchParams(location.search);
  const panes = { a: { server: null, model: null, history: [] }, b: { server: null, model: null, history: [] } };
  let servers = [];
  let sending = false;

  const health = NCT.serverHealth;
  const label = (s) => `${s.job ? s.job : s.model || s.id} · ${s.id}`;

  async function loadServers() {
    try {
      servers = list(await api("GET", "/api/servers")).filter((s) => (s.kind || "model") === "model");
    } catch (err) { servers = []; }
    for (const side of ["a", "b"]) {
      const sel = $(`#server-${side}`);
      const current = sel.value || panes[side].server || (side === "a" ? params.get("server") : params.get("compare")) || "";
      replace(sel, h("option", { value: "" }, servers.length ? (side === "a" ? "(choose a server)" : "(none)") : "No model servers running"),
        servers.map((s) => h("option", { value: s.id }, label(s))));
      if (current && servers.some((s) => s.id === current)) sel.value = current;
      else if (side === "a" && !current && servers.length === 1) sel.value = servers[0].id;
      panes[side].server = sel.value || null;
      renderTools(side);
    }
  }

  function renderTools(side) {
    const s = servers.find((x) => x.id === panes[side].server);
    const tools = $(`#tools-${side}`);
    const items = [];
    if (s) items.push(NCT.badge(health(s)), s.job ? h("a", { href: NCT.jobUrl(s.job) }, `job ${s.job}`) : h("span", { class: "muted" }, s.model || ""));
    else if (!servers.length) items.push(h("span", { class: "muted" }, "Start a model server for a trained job on the "), h("a", { href: "/ui/servers" }, "Servers page"), ".");
    if (side === "b" && !s) {
      const a = servers.find((x) => x.id === panes.a.server);
      if (a && a.job) items.push(h("button", { type: "button", class: "btn small", id: "start-base", onclick: () => startBase(a.job) }, "Start its base model"));
    }
    replace(tools, items);
  }

  /** Serve the model the job was trained from, to compare before/after side by side. */
  async function startBase(job) {
    const btn = $("#start-base");
    if (btn) btn.disabled = true;
    try {
      const d = await api("GET", `/api/jobs/${encodeURIComponent(job)}`);
      const cfg = d.config || (d.resolved && d.resolved.config) || {};
      const source = (cfg.model && cfg.model.source) || "default";
      if (btn) btn.textContent = "Starting… (loading the model)";
      const s = await api("POST", "/api/servers", { kind: "model", model: source });
      panes.b.server = s.id || (s.server && s.server.id);
      toast("The base model server is up.");
      await loadServers();
      $("#server-b").value = panes.b.server || "";
    } catch (err) {
      toast(err.message, true);
      if (btn) btn.disabled = false;
    }
  }

  function bubble(side, role, text) {
    const el = h("div", { class: `msg ${role}`, "data-role": role }, text);
    const chat = $(`#chat-${side}`);
    chat.append(el);
    chat.scrollTop = chat.scrollHeight;
    return el;
  }

  async function modelId(side) {
    const pane = panes[side];
    if (pane.model && pane.model.server === pane.server) return pane.model.id;
    const data = await proxyJson(pane.server, "models");
    const id = data && data.data && data.data[0] && data.data[0].id;
    pane.model = { server: pane.server, id: id || "default" };
    return pane.model.id;
  }

  async function proxyJson(server, path) {
    const resp = await NCT.authFetch(`/ui/proxy/${encodeURIComponent(server)}/v1/${path}`);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(messageOf(data, resp.status));
    return data;
  }

  const messageOf = (data, status) => (data && ((data.error && (data.error.message || data.error)) || data.message || data.detail)) || `HTTP ${status}`;

  /** POST a streaming chat completion and append deltas to `el` as they arrive. */
  async function streamChat(side, el) {
    const pane = panes[side];
    const system = $("#system-prompt").value.trim();
    const messages = [...(system ? [{ role: "system", content: system }] : []), ...pane.history];
    const body = { model: await modelId(side), messages, stream: true,
      max_tokens: Number($("#max-tokens").value) || 64, temperature: Number($("#temperature").value) || 0 };
    const resp = await NCT.authFetch(`/ui/proxy/${encodeURIComponent(pane.server)}/v1/chat/completions`, {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "text/event-stream" }, body: JSON.stringify(body) });
    if (!resp.ok || !resp.body) {
      const data = await resp.json().catch(() => ({}));
      throw new Error(messageOf(data, resp.status));
    }
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = ""; let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
        if (!line.startsWith("data:")) continue;
        const payload = line.slice(5).trim();
        if (payload === "[DONE]") continue;
        let chunk;
        try { chunk = JSON.parse(payload); } catch (e) { continue; }
        if (chunk.error) throw new Error(messageOf(chunk, 500));
        const delta = chunk.choices && chunk.choices[0] && (chunk.choices[0].delta || {}).content;
        if (delta) { text += delta; el.textContent = text; $(`#chat-${side}`).scrollTop = 1e9; }
      }
    }
    return text;
  }

  async function send(side, prompt) {
    const pane = panes[side];
    if (!pane.server) return;
    pane.history.push({ role: "user", content: prompt });
    bubble(side, "user", prompt);
    const el = bubble(side, "assistant pending", "");
    try {
      const text = await streamChat(side, el);
      el.classList.remove("pending");
      el.dataset.chars = String(text.length);
      if (!text.trim()) { el.textContent = text ? `(a reply of ${text.length} whitespace characters)` : "(empty reply)"; el.classList.add("blank"); }
      pane.history.push({ role: "assistant", content: text });
    } catch (err) {
      el.remove();
      pane.history.pop();
      bubble(side, "error", `Could not get a reply: ${err.message}`);
    }
  }

  $("#chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const prompt = $("#prompt").value.trim();
    if (!prompt || sending) return;
    if (!panes.a.server && !panes.b.server) { NCT.showAlert($("#playground-error"), { message: "Choose a model server first." }); return; }
    NCT.showAlert($("#playground-error"), null);
    sending = true;
    $("#send").disabled = true;
    $("#prompt").value = "";
    await Promise.all(["a", "b"].map((side) => send(side, prompt)));
    sending = false;
    $("#send").disabled = false;
    $("#prompt").focus();
  });
  $("#prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-form").requestSubmit(); }
  });
  $("#clear-chat").addEventListener("click", () => {
    for (const side of ["a", "b"]) { panes[side].history = []; replace($(`#chat-${side}`)); }
  });
  for (const side of ["a", "b"]) {
    $(`#server-${side}`).addEventListener("change", (e) => {
      panes[side].server = e.target.value || null;
      panes[side].history = [];
      replace($(`#chat-${side}`));
      renderTools(side);
      if (side === "a") renderTools("b");
    });
  }

  loadServers();
  NCT.every(4000, loadServers);
})();
