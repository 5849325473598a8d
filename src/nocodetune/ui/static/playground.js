/* Playground: two panes side by side (on a phone too), each talking to a model server
   through /ui/proxy/{server}/v1/... so the browser talks to one origin only. Running
   servers are preselected (the trained job left, another model right); servers are named
   by what they serve. "Same prompt to both" starts both conversations afresh for every
   prompt, so both models answer exactly the same thing; "Two separate conversations"
   keeps a history per pane, each with its own message box. */
"use strict";
(() => {
  const { api, h, $, $$, replace, toast, list } = NCT;
  const params = new URLSearchParams(location.search);
  const panes = { a: { server: null, model: null, history: [], busy: false }, b: { server: null, model: null, history: [], busy: false } };
  let servers = [];
  let chosenByUser = { a: false, b: false };

  const health = NCT.serverHealth;
  const label = (s) => (s.job ? `Job ${s.job} (trained)` : (s.serves || `model ${s.model || ""}`).replace(/^model /, "Model "));
  const mode = () => ($('input[name="mode"]:checked') || {}).value || "same";

  async function loadServers() {
    try {
      servers = list(await api("GET", "/api/servers")).filter((s) => (s.kind || "model") === "model");
    } catch (err) { servers = []; }
    // Preselect: what the link asked for, else a trained job on the left and something else on the right.
    const wanted = { a: params.get("server"), b: params.get("compare") };
    const jobFirst = [...servers].sort((x, y) => Number(Boolean(y.job)) - Number(Boolean(x.job)));
    for (const side of ["a", "b"]) {
      const sel = $(`#server-${side}`);
      const other = panes[side === "a" ? "b" : "a"].server;
      let pick = panes[side].server || (wanted[side] && servers.some((s) => s.id === wanted[side]) ? wanted[side] : null);
      if (!pick && !chosenByUser[side]) {
        const free = jobFirst.filter((s) => s.id !== other && s.id !== wanted[side === "a" ? "b" : "a"]);
        pick = side === "a" ? (free[0] || {}).id : (free.find((s) => !s.job) || free[0] || {}).id;
      }
      if (pick && !servers.some((s) => s.id === pick)) pick = null;
      replace(sel, h("option", { value: "" }, servers.length ? "Choose a model server" : "No chat servers running"),
        servers.map((s) => h("option", { value: s.id }, label(s))));
      sel.value = pick || "";
      if ((pick || null) !== panes[side].server) { panes[side].server = pick || null; panes[side].history = []; replace($(`#chat-${side}`)); }
    }
    renderTools("a");
    renderTools("b");
  }

  function renderTools(side) {
    const s = servers.find((x) => x.id === panes[side].server);
    const items = [];
    if (s) items.push(NCT.badge(health(s)), s.job ? h("a", { href: NCT.jobUrl(s.job) }, "open the job") : null);
    else if (!servers.length && side === "a") items.push(h("span", { class: "muted" }, "Open a finished job and press “Chat with it”, or start a server on the "), h("a", { href: "/ui/servers" }, "Servers page"), ".");
    if (side === "b" && !s) {
      const a = servers.find((x) => x.id === panes.a.server);
      if (a && a.job) items.push(h("button", { type: "button", class: "btn small", id: "start-base", onclick: () => startBase(a.job) }, "Start the model it was trained from"));
    }
    replace($(`#tools-${side}`), items);
  }

  /** Serve the model the job was trained from, to compare before and after side by side. */
  async function startBase(job) {
    const btn = $("#start-base");
    if (btn) { btn.disabled = true; btn.textContent = "Starting… (loading the model)"; }
    try {
      const d = await api("GET", `/api/jobs/${encodeURIComponent(job)}`);
      const source = ((d.config || {}).model || {}).source || "default";
      const s = await api("POST", "/api/servers", { kind: "model", model: source });
      panes.b.server = s.id;
      toast("The model it was trained from is ready.");
      await loadServers();
    } catch (err) {
      toast(NCT_LABELS.humanize(err.message), true);
      if (btn) { btn.disabled = false; btn.textContent = "Start the model it was trained from"; }
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
    const resp = await NCT.authFetch(`/ui/proxy/${encodeURIComponent(pane.server)}/v1/models`);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(messageOf(data, resp.status));
    pane.model = { server: pane.server, id: (data.data && data.data[0] && data.data[0].id) || "default" };
    return pane.model.id;
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
    if (!pane.server || pane.busy) return;
    pane.busy = true;
    pane.history.push({ role: "user", content: prompt });
    bubble(side, "user", prompt);
    const el = bubble(side, "assistant pending", "");
    try {
      const text = await streamChat(side, el);
      el.classList.remove("pending");
      el.dataset.chars = String(text.length);
      if (!text.trim()) { el.textContent = text ? `(a reply of ${text.length} blank characters)` : "(empty reply)"; el.classList.add("blank"); }
      pane.history.push({ role: "assistant", content: text });
    } catch (err) {
      el.remove();
      pane.history.pop();
      bubble(side, "error", `Could not get a reply: ${NCT_LABELS.humanize(err.message)}`);
    } finally { pane.busy = false; }
  }

  function clear(side) { panes[side].history = []; replace($(`#chat-${side}`)); }

  $("#chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const prompt = $("#prompt").value.trim();
    if (!prompt || $("#send").disabled) return;
    if (!panes.a.server && !panes.b.server) { NCT.showAlert($("#playground-error"), { message: "Choose a model server first." }); return; }
    NCT.showAlert($("#playground-error"), null);
    $("#send").disabled = true;
    $("#prompt").value = "";
    clear("a"); clear("b"); // a fair comparison: both answer this prompt alone
    await Promise.all(["a", "b"].map((side) => send(side, prompt)));
    $("#send").disabled = false;
    $("#prompt").focus();
  });
  $("#prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-form").requestSubmit(); }
  });
  for (const form of $$(".pane-form")) {
    const side = form.dataset.side;
    const box = $(`#prompt-${side}`);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const prompt = box.value.trim();
      if (!prompt) return;
      box.value = "";
      await send(side, prompt);
      box.focus();
    });
    box.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
  }
  function applyMode() {
    const separate = mode() === "chat";
    $("#chat-form").hidden = separate;
    $$(".pane-form").forEach((f) => { f.hidden = !separate; });
  }
  $$('input[name="mode"]').forEach((r) => r.addEventListener("change", applyMode));
  $("#clear-chat").addEventListener("click", () => { clear("a"); clear("b"); });
  for (const side of ["a", "b"]) {
    $(`#server-${side}`).addEventListener("change", (e) => {
      chosenByUser[side] = true;
      panes[side].server = e.target.value || null;
      clear(side);
      renderTools(side);
      if (side === "a") renderTools("b");
    });
  }

  applyMode();
  loadServers();
  NCT.every(4000, loadServers);
})();
