/* New job page: a form generated from the JobConfig JSON schema (GET /api/schema), with
   defaults from the chosen base (GET /api/bases) and parent job. Only changed values are
   sent, as dotted keys in JobSpec.set, so the job keeps inheriting everything else. */
"use strict";
(() => {
  const { api, h, $, $$, replace, toast, errorBox, list, jobUrl } = NCT;

  // Shown up front; everything else goes under "Advanced".
  const COMMON = ["method", "training.learning_rate", "training.num_train_epochs", "training.max_steps",
    "training.per_device_train_batch_size", "training.gradient_accumulation_steps", "training.max_length", "lora.r", "lora.alpha"];
  const SEPARATE = new Set(["description", "dataset.ref", "model.source"]); // have their own inputs
  const LABELS = { per_device_train_batch_size: "Batch size (per device)", per_device_eval_batch_size: "Eval batch size (per device)",
    num_train_epochs: "Epochs", max_length: "Max length (tokens)", r: "LoRA rank (r)", alpha: "LoRA alpha", source: "Model" };

  const params = new URLSearchParams(location.search);
  const cloneOf = params.get("clone");
  const state = { schema: null, fields: [], bases: [], datasets: [], jobs: [], defaults: {}, cloneDetail: null };

  // ---- schema walking -----------------------------------------------------------------
  function deref(s) {
    let guard = 0;
    while (s && s.$ref && guard++ < 10) s = state.schema.$defs[s.$ref.split("/").pop()];
    if (s && s.allOf && s.allOf.length === 1) return { ...deref(s.allOf[0]), ...s, allOf: undefined };
    return s;
  }

  /** Flatten the schema into leaf fields {path, kind, options, optional, description, default}. */
  function walk(schema, prefix, out) {
    for (const [key, raw] of Object.entries(schema.properties || {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      const s = deref(raw);
      if (s.properties) { walk(s, path, out); continue; }
      out.push(describe(path, key, raw, s));
    }
    return out;
  }

  function describe(path, key, raw, s) {
    const variants = (s.anyOf || s.oneOf || [s]).map(deref);
    const optional = variants.some((v) => v.type === "null");
    const real = variants.filter((v) => v.type !== "null");
    const enums = [];
    let kind = "text";
    for (const v of real) {
      if (v.enum) enums.push(...v.enum);
      else if (v.const !== undefined) enums.push(v.const);
    }
    const types = new Set(real.map((v) => v.type));
    if (enums.length) {
      if (types.has("boolean")) enums.push(true, false);
      kind = "select";
    } else if (types.has("array")) kind = "list";
    else if (types.size === 1 && types.has("boolean")) kind = "bool";
    else if (types.has("integer") && !types.has("string")) kind = "int";
    else if (types.has("number") && !types.has("string")) kind = "number";
    const num = real.find((v) => v.type === "number" || v.type === "integer") || {};
    return { path, key, kind, optional, options: [...new Set(enums)], description: raw.description || s.description || "",
      title: LABELS[key] || (raw.title || s.title || key).replace(/_/g, " "), default: raw.default !== undefined ? raw.default : s.default,
      min: num.minimum ?? num.exclusiveMinimum, max: num.maximum ?? num.exclusiveMaximum, step: types.has("integer") ? 1 : "any" };
  }

  const get = (obj, path) => path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
  function setPath(obj, path, value) {
    const keys = path.split(".");
    let o = obj;
    for (const k of keys.slice(0, -1)) o = o[k] = o[k] && typeof o[k] === "object" ? o[k] : {};
    o[keys[keys.length - 1]] = value;
    return obj;
  }
  const idFor = (path) => `f-${path.replace(/\./g, "-")}`;
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

  // ---- rendering ----------------------------------------------------------------------
  function inputFor(f) {
    const id = idFor(f.path);
    const common = { id, name: f.path, "data-field": f.path, "aria-describedby": `help-${id} err-${id}` };
    if (f.kind === "select") {
      return h("select", common, f.optional ? h("option", { value: "" }, "(not set)") : null,
        f.options.map((o) => h("option", { value: JSON.stringify(o) }, String(o))));
    }
    if (f.kind === "bool") return h("input", { ...common, type: "checkbox" });
    if (f.kind === "int" || f.kind === "number") {
      return h("input", { ...common, type: "number", step: f.step, min: f.min, max: f.max, inputmode: f.kind === "int" ? "numeric" : "decimal",
        placeholder: f.optional ? "(not set)" : null });
    }
    return h("input", { ...common, type: "text", autocomplete: "off", placeholder: f.optional ? "(not set)" : null });
  }

  function fieldBlock(f) {
    const input = inputFor(f);
    const id = input.id;
    const label = f.kind === "bool"
      ? h("label", { class: "check", for: id }, input, " ", f.title, " ", h("span", { class: "key" }, f.path))
      : h("label", { for: id }, f.title, " ", h("span", { class: "key" }, f.path));
    return h("div", { class: "field", "data-field-block": f.path },
      label, f.kind === "bool" ? null : input,
      h("p", { class: "help", id: `help-${id}` }, f.description || ""),
      h("p", { class: "field-error", id: `err-${id}`, hidden: true }));
  }

  function renderForm() {
    const byPath = Object.fromEntries(state.fields.map((f) => [f.path, f]));
    replace($("#model-slot"), byPath["model.source"] ? fieldBlock(byPath["model.source"]) : null);
    replace($("#common-fields"), COMMON.filter((p) => byPath[p]).map((p) => fieldBlock(byPath[p])));
    const sections = {};
    for (const f of state.fields) {
      if (COMMON.includes(f.path) || SEPARATE.has(f.path)) continue;
      const sec = f.path.includes(".") ? f.path.split(".")[0] : "general";
      (sections[sec] = sections[sec] || []).push(f);
    }
    replace($("#advanced-fields"), Object.entries(sections).map(([sec, fs]) =>
      h("fieldset", {}, h("legend", {}, sec), h("div", { class: "fields-grid" }, fs.map(fieldBlock)))));
    $$("[data-field]").forEach((el) => el.addEventListener(el.type === "checkbox" || el.tagName === "SELECT" ? "change" : "input", () => markChanged(el)));
  }

  function writeValue(f, value) {
    const el = document.getElementById(idFor(f.path));
    if (!el) return;
    if (f.kind === "bool") el.checked = Boolean(value);
    else if (f.kind === "select") el.value = value === null || value === undefined ? "" : JSON.stringify(value);
    else if (f.kind === "list") el.value = Array.isArray(value) ? value.join(", ") : value ?? "";
    else el.value = value === null || value === undefined ? "" : String(value);
    markChanged(el);
  }

  /** The typed value of a field, or throws {field, message} for input that cannot be parsed. */
  function readValue(f) {
    const el = document.getElementById(idFor(f.path));
    if (!el) return f.default;
    if (f.kind === "bool") return el.checked;
    const raw = el.value.trim();
    if (raw === "") {
      if (f.optional) return null;
      if (f.kind === "text") return "";
      throw { field: f.path, message: "a value is required" };
    }
    if (f.kind === "select") return JSON.parse(raw);
    if (f.kind === "int") {
      if (!/^-?\d+$/.test(raw)) throw { field: f.path, message: `must be a whole number, got "${raw}"` };
      return parseInt(raw, 10);
    }
    if (f.kind === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw { field: f.path, message: `must be a number, got "${raw}"` };
      return n;
    }
    if (f.kind === "list") return raw.includes(",") ? raw.split(",").map((s) => s.trim()).filter(Boolean) : raw;
    return raw;
  }

  function markChanged(el) {
    const f = state.fields.find((x) => x.path === el.dataset.field);
    if (!f) return;
    let changed = false;
    try { changed = !same(readValue(f), get(state.defaults, f.path)); } catch (e) { changed = true; }
    el.closest(".field").classList.toggle("changed", changed);
    clearFieldError(f.path);
  }

  // ---- defaults: schema ← base ← parent (or the job being cloned) ------------------------
  const merge = (a, b) => {
    if (!b || typeof b !== "object" || Array.isArray(b)) return b === undefined ? a : b;
    const out = { ...(a && typeof a === "object" && !Array.isArray(a) ? a : {}) };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  };
  const configOf = (detail) => (detail && (detail.config || (detail.resolved && detail.resolved.config))) || {};

  async function applyDefaults() {
    let defaults = {};
    for (const f of state.fields) setPath(defaults, f.path, f.default);
    if (state.cloneDetail) {
      defaults = merge(defaults, configOf(state.cloneDetail));
    } else {
      const base = state.bases.find((b) => b.name === $("#job-base").value);
      $("#base-desc").textContent = base ? base.description || "" : "";
      if (base) defaults = merge(defaults, base.config || {});
      const parent = $("#job-parent").value;
      if (parent) {
        try { defaults = merge(defaults, configOf(await api("GET", `/api/jobs/${encodeURIComponent(parent)}`))); } catch (e) { /* keep base defaults */ }
      }
    }
    // Keep what the user already changed; move everything else to the new defaults.
    const edits = state.ready ? collectChanges(true) : {};
    state.defaults = defaults;
    state.ready = true;
    for (const f of state.fields) writeValue(f, f.path in edits ? edits[f.path] : get(defaults, f.path));
  }

  /** {dotted path: value} of every field that differs from the defaults. */
  function collectChanges(lenient) {
    const out = {};
    const errors = [];
    for (const f of state.fields) {
      if (SEPARATE.has(f.path) && f.path !== "model.source") continue;
      try {
        const v = readValue(f);
        if (!same(v, get(state.defaults, f.path))) out[f.path] = v;
      } catch (e) { errors.push(e); }
    }
    if (errors.length && !lenient) throw errors;
    return out;
  }

  // ---- errors next to fields ----------------------------------------------------------------
  const STATIC_ERR = { name: "err-name", base: "err-base", parent: "err-parent", dataset: "err-dataset", "dataset.ref": "err-dataset" };
  function errorSlot(field) {
    if (!field) return null;
    let f = String(field).replace(/^(body\.)?(spec\.)?(overrides|set|config)\./, "");
    if (STATIC_ERR[f]) return document.getElementById(STATIC_ERR[f]);
    // A dotted key inside "set" may arrive quoted or with extra parts; try the longest known prefix.
    const parts = f.split(".");
    for (let n = parts.length; n > 0; n--) {
      const slot = document.getElementById(`err-${idFor(parts.slice(0, n).join("."))}`);
      if (slot) return slot;
    }
    return null;
  }

  function clearFieldError(path) {
    const slot = errorSlot(path);
    if (slot) { slot.hidden = true; slot.textContent = ""; slot.classList.remove("warning"); }
    const input = document.getElementById(idFor(path));
    if (input) input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    $$(".field-error").forEach((e) => { e.hidden = true; e.textContent = ""; e.classList.remove("warning"); });
    $$("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    $("#form-error").hidden = true;
  }

  /** Put each {field, message} next to its input; the rest goes in the banner. Returns true if any landed. */
  function showErrors(errors) {
    const loose = [];
    let first = null;
    for (const e of errors) {
      const slot = errorSlot(e.field);
      if (!slot) { loose.push(e); continue; }
      slot.textContent = e.message + (e.hint ? ` — ${e.hint}` : "");
      slot.hidden = false;
      const block = slot.closest(".field");
      const input = block && block.querySelector("input, select");
      if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
      const adv = slot.closest("details");
      if (adv) adv.open = true;
    }
    if (loose.length) {
      NCT.showAlert($("#form-error"), loose.length === 1 && loose[0] instanceof NCT.ApiError ? loose[0]
        : { message: loose.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("\n"), hint: loose[0].hint });
    } else if (first) {
      NCT.showAlert($("#form-error"), { message: "Fix the highlighted field before going on." });
    }
    if (first) first.focus();
    return Boolean(first);
  }

  function errorsFromApi(err) {
    const list = [];
    if (err.details && err.details.length) for (const d of err.details) list.push({ field: d.field, message: d.message || d.msg });
    else list.push(err);
    return list;
  }

  // ---- spec ---------------------------------------------------------------------------------
  function buildSpec() {
    clearErrors();
    const errors = [];
    const name = $("#job-name").value.trim();
    if (!name) errors.push({ field: "name", message: "Give the job a name." });
    let set = {};
    try { set = collectChanges(false); } catch (errs) { errors.push(...errs); }
    if (errors.length) { showErrors(errors); return null; }
    const ds = $("#job-dataset").value;
    const version = $("#job-dataset-version").value;
    const spec = { name, overrides: {}, set };
    const desc = $("#job-description").value.trim();
    if (desc) spec.description = desc;
    if (state.cloneDetail) {
      const d = state.cloneDetail;
      if (d.base || (d.lineage && d.lineage.base)) spec.base = d.base || d.lineage.base;
      if (d.parent || (d.lineage && d.lineage.parent)) spec.parent = d.parent || d.lineage.parent;
      // The clone also keeps what the original set itself.
      const cfg = configOf(d);
      for (const [key, src] of Object.entries(d.sources || (d.resolved && d.resolved.sources) || {})) {
        if (src === "job" && !(key in set) && key !== "dataset.ref" && get(cfg, key) !== undefined) set[key] = get(cfg, key);
      }
    } else {
      if ($("#job-base").value) spec.base = $("#job-base").value;
      if ($("#job-parent").value) spec.parent = $("#job-parent").value;
    }
    if (ds) spec.dataset = version ? `${ds}@${version}` : ds;
    return spec;
  }

  function busy(on) { $$(".form-actions button").forEach((b) => { b.disabled = on; }); }

  async function validate() {
    const spec = buildSpec();
    if (!spec) return;
    busy(true);
    const card = $("#report-card");
    replace($("#report"), h("p", { class: "muted" }, "Checking the data, the model and the settings…"));
    try {
      const report = await api("POST", "/api/jobs/validate", spec);
      renderReport(report);
    } catch (err) {
      showErrors(errorsFromApi(err));
      card.hidden = true;
    } finally { busy(false); }
  }

  const showFact = (key, v) => {
    if (typeof v !== "number") return String(v);
    if (key.endsWith("_bytes")) return NCT.fmtBytes(v);
    if (key.endsWith("_gb")) return `${NCT.fmtNumber(v, 2)} GB`;
    return NCT.fmtNumber(v, 3);
  };
  const ISSUE_KEYS = ["errors", "warnings", "issues", "problems", "notes"];
  function renderReport(report) {
    const card = $("#report-card");
    const box = $("#report");
    card.hidden = false;
    const issues = [];
    for (const key of ISSUE_KEYS) {
      for (const it of report[key] || []) {
        const o = typeof it === "string" ? { message: it } : it;
        issues.push({ level: o.level || o.severity || (key === "errors" ? "error" : key === "warnings" ? "warning" : "info"), ...o });
      }
    }
    const errs = issues.filter((i) => i.level === "error");
    const ok = report.ok !== undefined ? report.ok : report.valid !== undefined ? report.valid : !errs.length;
    const facts = [];
    // Every scalar the report carries (stats.tokens.mean → "tokens · mean"), so new checks show up unasked.
    const flat = (obj, prefix, path) => {
      for (const [k, v] of Object.entries(obj || {})) {
        if (ISSUE_KEYS.includes(k) || k === "ok" || k === "valid") continue;
        const name = k === "stats" ? "" : k.replace(/_/g, " ");
        const label = [prefix, name].filter(Boolean).join(" · ");
        const key = [path, k === "stats" ? "" : k].filter(Boolean).join(".");
        if (v && typeof v === "object" && !Array.isArray(v)) flat(v, label, key);
        else if (Array.isArray(v)) facts.push([key, label, v.length <= 8 ? v.join(", ") : `${v.length} items`]);
        else if (v !== null && v !== undefined) facts.push([key, label, showFact(k, v)]);
      }
    };
    flat(report, "", "");
    replace(box,
      h("div", { class: `alert ${ok ? (issues.some((i) => i.level === "warning") ? "warn" : "ok") : "error"}`, "data-report-ok": String(ok) },
        ok ? "Ready to train: the pre-flight checks passed." : "The pre-flight checks found problems; fix them before running."),
      facts.length ? h("dl", { class: "meta-grid", id: "report-facts" }, facts.map(([key, label, v]) => h("div", { "data-fact": key }, h("dt", {}, label), h("dd", {}, v)))) : null,
      issues.length ? h("ul", { class: "report-list" }, issues.map((i) => h("li", { class: i.level === "error" ? "field-error" : "" },
        h("strong", {}, `${i.level}: `), i.field ? h("code", {}, i.field) : null, i.field ? " " : null, i.message || "", i.hint ? h("span", { class: "muted" }, ` — ${i.hint}`) : null))) : null);
    if (errs.length) showErrors(errs.filter((e) => e.field));
    // Warnings also sit next to their field, in a calmer colour, without blocking anything.
    for (const w of issues.filter((i) => i.level === "warning" && i.field)) {
      const slot = errorSlot(w.field);
      if (slot && slot.hidden) { slot.textContent = `Warning: ${w.message}`; slot.classList.add("warning"); slot.hidden = false; }
    }
    card.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  async function create(run) {
    const spec = buildSpec();
    if (!spec) return;
    busy(true);
    try {
      let job;
      if (state.cloneDetail) {
        const set = { ...spec.set };
        if (spec.dataset && spec.dataset !== datasetRefOf(state.cloneDetail)) set["dataset.ref"] = spec.dataset;
        job = await api("POST", `/api/jobs/${encodeURIComponent(cloneOf)}/clone`, { name: spec.name, set, description: spec.description, run });
      } else {
        job = await api("POST", "/api/jobs", { ...spec, run });
      }
      const name = (job && (job.name || (job.job && job.job.name))) || spec.name;
      toast(run ? `Created ${name}; it is starting.` : `Created ${name}.`);
      location.href = jobUrl(name);
    } catch (err) {
      showErrors(errorsFromApi(err));
      busy(false);
    }
  }

  // ---- selects ------------------------------------------------------------------------------
  const datasetRefOf = (d) => {
    const cfg = configOf(d);
    if (cfg.dataset && cfg.dataset.ref) return cfg.dataset.ref;
    const snap = (d.datasets || (d.resolved && d.resolved.datasets) || [])[0];
    return snap ? `${snap.name}@${snap.version}` : "";
  };

  function fillDatasets(selected) {
    const sel = $("#job-dataset");
    const [selName, selVersion] = (selected || "").split("@");
    replace(sel, h("option", { value: "" }, state.datasets.length ? "(choose a dataset)" : "No datasets yet"),
      state.datasets.map((d) => h("option", { value: d.name, selected: d.name === selName }, d.name)));
    if (!selName && state.datasets.length === 1) sel.value = state.datasets[0].name;
    fillVersions(selVersion);
    $("#dataset-hint").replaceChildren(...(state.datasets.length ? [] : ["Upload one on the ", h("a", { href: "/ui/datasets" }, "Datasets page"), " first."]));
  }

  function fillVersions(selVersion) {
    const ds = state.datasets.find((d) => d.name === $("#job-dataset").value);
    const versions = ds ? [...(ds.versions || [])].sort((a, b) => b.version - a.version) : [];
    replace($("#job-dataset-version"), versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(selVersion || ds.latest) },
      `v${v.version}${v.rows !== undefined && v.rows !== null ? ` · ${v.rows} rows` : ""}${v.version === ds.latest ? " (latest)" : ""}`)));
  }

  async function init() {
    let schema;
    try {
      [schema, state.bases, state.datasets, state.jobs] = await Promise.all([
        api("GET", "/api/schema"),
        api("GET", "/api/bases").then(list),
        api("GET", "/api/files").then(list).catch(() => []),
        api("GET", "/api/jobs?limit=500").then(list).catch(() => []),
      ]);
    } catch (err) {
      replace($("#common-fields"), errorBox(err));
      busy(true);
      return;
    }
    state.schema = schema;
    state.fields = walk(schema, "", []);
    renderForm();

    const baseSel = $("#job-base");
    replace(baseSel, state.bases.map((b) => h("option", { value: b.name }, b.name)));
    const wantedBase = params.get("base") || (state.bases.some((b) => b.name === "lora_train") ? "lora_train" : "");
    if (wantedBase) baseSel.value = wantedBase;
    const parentSel = $("#job-parent");
    for (const j of state.jobs) parentSel.append(h("option", { value: j.name }, `${j.name}${j.status ? ` (${j.status})` : ""}`));
    if (params.get("parent")) parentSel.value = params.get("parent");

    if (cloneOf) {
      try {
        state.cloneDetail = await api("GET", `/api/jobs/${encodeURIComponent(cloneOf)}`);
      } catch (err) {
        NCT.showAlert($("#form-error"), err);
        return;
      }
      const d = state.cloneDetail;
      $("#new-title").textContent = `Clone ${cloneOf}`;
      $("#new-intro").textContent = "A new job with the same base, parent and settings. Change what you want to try differently.";
      $("#create-btn").textContent = "Create clone";
      $("#create-run-btn").textContent = "Create clone and run";
      baseSel.value = d.base || (d.lineage && d.lineage.base) || "";
      parentSel.value = d.parent || (d.lineage && d.lineage.parent) || "";
      baseSel.disabled = true;
      parentSel.disabled = true;
      const taken = new Set(state.jobs.map((j) => j.name));
      let n = 2; while (taken.has(`${cloneOf}-${n}`)) n++;
      $("#job-name").value = `${cloneOf}-${n}`;
      $("#job-description").value = configOf(d).description || d.description || "";
      fillDatasets(datasetRefOf(d));
    } else {
      const ref = params.get("dataset");
      fillDatasets(ref || "");
    }
    await applyDefaults();

    baseSel.addEventListener("change", applyDefaults);
    parentSel.addEventListener("change", applyDefaults);
    $("#job-dataset").addEventListener("change", () => { fillVersions(); clearFieldError("dataset"); });
    $("#job-name").addEventListener("input", () => clearFieldError("name"));
    $("#validate-btn").addEventListener("click", validate);
    $("#create-btn").addEventListener("click", () => create(false));
    $("#create-run-btn").addEventListener("click", () => create(true));
    $("#job-form").addEventListener("submit", (e) => { e.preventDefault(); validate(); });
  }

  init();
})();
