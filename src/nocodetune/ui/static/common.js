/* Shared helpers for every page: REST calls, safe DOM building, formatting.
   Everything user-supplied goes through textContent (h()), never innerHTML. */
"use strict";

const NCT = (() => {
  /** An error answered by the REST API: {error, message, field?, file?, row?, hint?}. */
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
      this.field = this.body.field || null;
      this.hint = this.body.hint || null;
      this.details = this.body.details || [];
    }
  }

  // With NOCODETUNE_API_TOKEN set, /api wants "Authorization: Bearer ..."; the UI asks once per tab.
  const TOKEN_KEY = "nocodetune-token";
  // The server sets a SameSite=Strict cookie on every page; echoing it proves the request comes from our own page (CSRF).
  function csrfToken() {
    const m = /(?:^|;\s*)nocodetune_csrf=([^;]+)/.exec(document.cookie);
    return m ? m[1] : null;
  }
  function authHeaders(extra) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const csrf = csrfToken();
    return { ...(extra || {}), ...(csrf ? { "X-CSRF-Token": csrf } : {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  }

  function askToken() {
    const token = window.prompt("This NoCodeTune server is protected by an API token. Enter the token it was started with:");
    if (token) sessionStorage.setItem(TOKEN_KEY, token.trim());
    return Boolean(token);
  }

  /** fetch() with the token; a 401 asks for the token once and retries. */
  async function authFetch(url, opts) {
    const o = { ...(opts || {}) };
    const sent = sessionStorage.getItem(TOKEN_KEY);
    let resp = await fetch(url, { ...o, headers: authHeaders(o.headers) });
    // Requests in flight together all fail; only the first asks, the others reuse its answer.
    if (resp.status === 401 && (sessionStorage.getItem(TOKEN_KEY) !== sent || askToken())) {
      resp = await fetch(url, { ...o, headers: authHeaders(o.headers) });
    }
    return resp;
  }

  /** Read a Server-Sent Events stream with fetch (EventSource cannot send the token). */
  async function readSSE(url, onMessage, signal) {
    const resp = await authFetch(url, { headers: { Accept: "text/event-stream" }, signal });
    if (!resp.ok || !resp.body) throw new ApiError(resp.status, { message: `event stream: HTTP ${resp.status}` });
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const msg = { id: null, event: "message", data: "" };
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(":");
          const val = rest.join(":").replace(/^ /, "");
          if (field === "data") msg.data += (msg.data ? "\n" : "") + val;
          else if (field === "id") msg.id = val;
          else if (field === "event") msg.event = val;
        }
        if (msg.data) onMessage(msg);
      }
    }
  }

  // A plain link cannot carry the token: with one set, downloads go through fetch and a blob.
  document.addEventListener("click", async (e) => {
    const a = e.target.closest && e.target.closest("a[download]");
    if (!a || !sessionStorage.getItem(TOKEN_KEY) || !a.getAttribute("href").startsWith("/api/")) return;
    e.preventDefault();
    const resp = await authFetch(a.getAttribute("href"));
    if (!resp.ok) { toast(`Download failed: HTTP ${resp.status}`, true); return; }
    const url = URL.createObjectURL(await resp.blob());
    const named = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(resp.headers.get("content-disposition") || "");
    const filename = named ? decodeURIComponent(named[1]) : a.getAttribute("href").split("/").pop();
    const tmp = Object.assign(document.createElement("a"), { href: url, download: filename });
    document.body.append(tmp); tmp.click(); tmp.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await authFetch(path, opts);
    } catch (e) {
      throw new ApiError(0, { message: "Cannot reach the NoCodeTune server. Is it still running?" });
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (!resp.ok) {
      // FastAPI's own 404/405 answer {"detail": "..."}; make it look like ours.
      if (data && !data.message && data.detail) {
        data.message = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail);
      }
      throw new ApiError(resp.status, data);
    }
    return data;
  }

  /** Build an element: h("a", {href, class}, "text", child...). Strings become text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function replace(el, ...children) {
    el.replaceChildren();
    return append(el, children);
  }

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function fmtBytes(n) {
    if (n === null || n === undefined || isNaN(n)) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0; let v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined || isNaN(s)) return "–";
    s = Math.max(0, Math.round(Number(s)));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${s % 60}s`;
    return `${Math.floor(m / 60)}h ${m % 60}m`;
  }

  function fmtNumber(v, digits) {
    if (v === null || v === undefined || v === "") return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return v.toLocaleString();
    if (Math.abs(v) > 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(2);
    const text = v.toFixed(digits === undefined ? 4 : digits);
    return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
  }

  function fmtTime(t) {
    if (!t) return "–";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    if (isNaN(d)) return String(t);
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function badge(status) {
    const s = String(status || "unknown");
    return h("span", { class: `badge ${s.replace(/[^a-z_-]/gi, "")}`, "data-status": s }, s);
  }

  /** Progress 0..1 (or 0..100) as a <progress> with a text label for screen readers. */
  function progressBar(p, status, label) {
    let pct = Number(p) || 0;
    if (pct <= 1) pct *= 100;
    if (status === "succeeded") pct = 100;
    pct = Math.max(0, Math.min(100, pct));
    const cls = status === "succeeded" ? "done" : status === "failed" ? "failed" : "";
    return h("progress", { max: 100, value: pct.toFixed(1), class: cls, "aria-label": label || `${Math.round(pct)}% done` });
  }

  function pct(p, status) {
    let v = Number(p) || 0;
    if (v <= 1) v *= 100;
    if (status === "succeeded") v = 100;
    return Math.round(Math.max(0, Math.min(100, v)));
  }

  // What to do in the UI about an error, by the field it names: pages add their own.
  // A hint from the API is shown only when it is not command-line advice.
  const GUIDE = {
    name: (e) => (e.status === 409 ? "Choose another name." : "Use letters, digits, '.', '_' or '-'."),
    dataset: () => ["Choose a dataset, or upload one on the ", h("a", { href: "/ui/datasets" }, "Datasets page"), "."],
    "dataset.ref": () => GUIDE.dataset(),
    "model.source": () => ["Choose a model in the list, or add one on the ", h("a", { href: "/ui/models" }, "Models page"), "."],
    model: () => GUIDE["model.source"](),
    server: () => ["Check it on the ", h("a", { href: "/ui/servers" }, "Servers page"), "."],
  };
  function guidance(err) {
    const body = (err && err.body) || err || {};
    const field = body.field || (err && err.field) || "";
    for (let f = field; f; f = f.includes(".") ? f.slice(0, f.lastIndexOf(".")) : "") {
      if (GUIDE[f]) return GUIDE[f](err || {});
    }
    const hint = (err && err.hint) || body.hint;
    return hint && !NCT_LABELS.isCli(hint) ? NCT_LABELS.humanize(hint) : null;
  }

  /** An alert box for an error: what went wrong in plain words, where, and what to do here. */
  function errorBox(err, extraClass) {
    const body = (err && err.body) || {};
    const where = [];
    if (body.file && !String(body.file).startsWith("/")) where.push(`file ${body.file}`);
    if (body.row !== undefined && body.row !== null) where.push(`row ${body.row}`);
    if (body.field && NCT_LABELS.FIELD[body.field]) where.push(NCT_LABELS.field(body.field));
    const raw = (err && err.message) || String(err);
    const msg = NCT_LABELS.humanize(raw) || "Something went wrong.";
    const guide = guidance(err);
    const text = msg.charAt(0).toUpperCase() + msg.slice(1);
    return h("div", { class: `alert error ${extraClass || ""}`, role: "alert" },
      h("strong", {}, text),
      where.length && !where.every((w) => text.includes(w.split(" ").slice(-1)[0])) ? h("span", { class: "hint" }, `About: ${where.join(", ")}`) : null,
      guide ? h("span", { class: "hint", "data-guide": "" }, guide) : null);
  }

  function showAlert(el, err) {
    if (!el) return;
    if (!err) { el.hidden = true; el.replaceChildren(); return; }
    replace(el, Array.from(errorBox(err).childNodes));
    el.hidden = false;
  }

  let toastTimer = null;
  function toast(text, isError) {
    const el = $("#toast");
    if (!el) return;
    el.textContent = text;
    el.className = `toast${isError ? " error" : ""}`;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, isError ? 7000 : 3500);
  }

  function emptyState(title, text, action) {
    return h("div", { class: "empty-state" }, h("strong", {}, title), text ? h("span", {}, text) : null, action ? h("div", {}, action) : null);
  }

  /** A table; with opts.stack it turns into one card per row on a phone (each cell labelled by its header). */
  function table(headers, rows, opts) {
    const labels = headers.map((c) => c.label || c);
    const thead = h("thead", {}, h("tr", {}, headers.map((c) => h("th", { scope: "col", class: c.cls || null }, c.label || c))));
    for (const tr of rows.flat()) {
      if (!(tr instanceof Element)) continue;
      Array.from(tr.children).forEach((td, i) => { if (labels[i] && !td.dataset.label) td.dataset.label = labels[i]; });
    }
    const tbody = h("tbody", {}, rows);
    const cls = [(opts && opts.cls) || "", opts && opts.stack ? "stack" : ""].join(" ").trim() || null;
    return h("div", { class: "table-wrap" }, h("table", { class: cls }, thead, tbody));
  }

  function qs(params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) u.set(k, v);
    const s = u.toString();
    return s ? `?${s}` : "";
  }

  /** Run fn every ms while the tab is visible; returns a stop function. */
  function every(ms, fn) {
    let stopped = false; let timer = null;
    const tick = async () => {
      if (stopped) return;
      if (!document.hidden) { try { await fn(); } catch (e) { /* next tick retries */ } }
      timer = setTimeout(tick, ms);
    };
    timer = setTimeout(tick, ms);
    return () => { stopped = true; clearTimeout(timer); };
  }

  const ACTIVE = new Set(["queued", "running"]);

  /** A server's health in one word: healthy, starting (young and silent) or "not responding". */
  function serverHealth(s) {
    if (s.healthy === true) return "healthy";
    if ((s.uptime_seconds ?? 0) < 120) return "starting";
    return "unhealthy";
  }

  /** Progress facts of a job summary, whether flat or nested under `progress`. */
  function progressInfo(j) {
    const p = j && j.progress && typeof j.progress === "object" ? j.progress : j || {};
    const step = p.step ?? null;
    const total = p.total_steps ?? null;
    let fraction = typeof p.progress === "number" ? p.progress : typeof j.progress === "number" ? j.progress : null;
    if (fraction === null && step !== null && total) fraction = step / total;
    return { fraction: fraction || 0, step, total, eta: p.eta_seconds ?? null, loss: p.loss ?? null, tps: p.tokens_per_second ?? null };
  }
  const list = (data) => (Array.isArray(data) ? data : (data && (data.items || data.servers || data.datasets || data.jobs)) || []);
  const jobUrl = (name) => `/ui/jobs/${encodeURIComponent(name)}`;

  return { api, ApiError, h, append, replace, $, $$, fmtBytes, fmtDuration, fmtNumber, fmtTime, badge, progressBar, pct,
           errorBox, showAlert, guidance, GUIDE, toast, emptyState, table, qs, every, ACTIVE, list, jobUrl, progressInfo, serverHealth, authFetch, authHeaders, readSSE };
})();
