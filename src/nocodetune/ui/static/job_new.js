/* New job page. The settings form is generated from the JobConfig JSON schema (GET
   /api/schema) with human labels and one-line help, defaults from the chosen recipe (GET
   /api/bases) and parent job; the data columns are dropdowns of the dataset's real columns;
   the model is picked from the models catalog (GET /api/models). Only changed values are
   sent, as dotted keys in JobSpec.set, so the job keeps inheriting everything else.
   Every error lands next to the control that fixes it, in UI words. */
"use strict";
(() => {
  const { api, h, $, $$, replace, toast, errorBox, list, jobUrl } = NCT;
  const L = NCT_LABELS;

  // Shown up front; everything else goes under "All settings".
  const COMMON = ["training.num_train_epochs", "training.max_steps", "training.learning_rate", "training.per_device_train_batch_size",
    "training.gradient_accumulation_steps", "training.max_length", "method", "lora.r", "lora.alpha"];
  // Fields with their own controls on this page (not generated from the schema).
  const CUSTOM = new Set(["description", "dataset.ref", "model.source", "dataset.format", ...["text", "prompt", "completion", "instruction", "input", "output", "messages", "chosen", "rejected"].map((r) => `dataset.columns.${r}`)]);
  // Roles each data layout needs (then may use), as the trainer reads them.
  const LAYOUT_ROLES = { prompt_completion: [["prompt", "completion"], []], alpaca: [["instruction", "output"], ["input"]], messages: [["messages"], []],
    text: [["text"], []], preference: [["prompt", "chosen", "rejected"], []] };
  // Schema fields shown in a card of their own rather than under "All settings": path -> slot.
  const PLACED = { objective: "#objective-slot" };
  const PRESETS = [
    { id: "quick", label: "Quick test", help: "20 steps: checks that everything works and measures this machine's speed.",
      values: { "training.max_steps": 20, "training.logging_steps": 1, "output.num_samples": 2 } },
    { id: "default", label: "Good default", help: "The recipe's settings: a few passes over your data.", values: {} },
    { id: "thorough", label: "Thorough", help: "More passes, a larger adapter, stops by itself when it stops improving.",
      values: { "training.max_steps": -1, "training.num_train_epochs": 5, "training.early_stopping_patience": 3, "lora.r": 32, "lora.alpha": 64, "output.num_samples": 8 } },
  ];
  const PRESET_KEYS = [...new Set(PRESETS.flatMap((p) => Object.keys(p.values)))];

  const params = new URLSearchParams(location.search);
  const cloneOf = params.get("clone");
  const state = { schema: null, fields: [], bases: [], datasets: [], jobs: [], models: [], defaults: {}, cloneDetail: null, columns: [], detected: null, lastReport: null };

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
    if (enums.length && real.some((v) => v.type === "integer" && v.enum === undefined && v.const === undefined)) {
      kind = "mixed"; // a number or a word such as "auto": typed, read as either
    } else if (enums.length) {
      if (types.has("boolean")) enums.push(true, false);
      kind = "select";
    } else if (types.has("array")) kind = "list";
    else if (types.size === 1 && types.has("boolean")) kind = "bool";
    else if (types.has("integer") && !types.has("string")) kind = "int";
    else if (types.has("number") && !types.has("string")) kind = "number";
    const num = real.find((v) => v.type === "number" || v.type === "integer") || {};
    return { path, key, kind, optional, options: [...new Set(enums)], description: raw.description || s.description || "",
      title: L.field(path), default: raw.default !== undefined ? raw.default : s.default,
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
      return h("select", common, f.optional ? h("option", { value: "" }, "Not set") : null,
        f.options.map((o) => h("option", { value: JSON.stringify(o) }, L.choice(o))));
    }
    if (f.kind === "bool") return h("input", { ...common, type: "checkbox" });
    if (f.kind === "int" || f.kind === "number") {
      return h("input", { ...common, type: "number", step: f.step, min: f.min, max: f.max, inputmode: f.kind === "int" ? "numeric" : "decimal",
        placeholder: f.optional ? "Not set" : null });
    }
    return h("input", { ...common, type: "text", autocomplete: "off", placeholder: f.optional ? "Not set" : null });
  }

  function fieldBlock(f) {
    const input = inputFor(f);
    const id = input.id;
    // The setting's key is there for people who read the docs or job.yaml: on hover, never in the way.
    const label = f.kind === "bool"
      ? h("label", { class: "check", for: id, title: f.path }, input, " ", f.title)
      : h("label", { for: id, title: f.path }, f.title);
    return h("div", { class: "field", "data-field-block": f.path },
      label, f.kind === "bool" ? null : input,
      h("p", { class: "help", id: `help-${id}` }, L.humanize(f.description) || ""),
      h("p", { class: "field-error", id: `err-${id}`, hidden: true }));
  }

  function renderForm() {
    const byPath = Object.fromEntries(state.fields.map((f) => [f.path, f]));
    replace($("#common-fields"), COMMON.filter((p) => byPath[p]).map((p) => fieldBlock(byPath[p])));
    for (const [path, slot] of Object.entries(PLACED)) replace($(slot), byPath[path] ? fieldBlock(byPath[path]) : null);
    const sections = {};
    for (const f of state.fields) {
      if (COMMON.includes(f.path) || CUSTOM.has(f.path) || PLACED[f.path]) continue;
      const sec = f.path.includes(".") ? f.path.split(".")[0] : "general";
      (sections[sec] = sections[sec] || []).push(f);
    }
    replace($("#advanced-fields"), Object.entries(sections).map(([sec, fs]) =>
      h("fieldset", {}, h("legend", {}, L.section(sec)), h("div", { class: "fields-grid" }, fs.map(fieldBlock)))));
    $$("[data-field]").forEach((el) => el.addEventListener(el.type === "checkbox" || el.tagName === "SELECT" ? "change" : "input", () => { markChanged(el); syncPreset(); }));
    const fmt = byPath["dataset.format"];
    replace($("#f-dataset-format"), (fmt ? fmt.options : ["auto"]).map((o) => h("option", { value: o }, o === "auto" ? "Automatic" : L.choice(o))));
    replace($("#presets"), PRESETS.map((p) => h("label", { class: "preset" },
      h("input", { type: "radio", name: "preset", value: p.id, "aria-describedby": `preset-help-${p.id}` }),
      h("span", { class: "preset-name" }, p.label), h("span", { class: "help", id: `preset-help-${p.id}` }, p.help))));
    $$('#presets input[name="preset"]').forEach((r) => r.addEventListener("change", () => applyPreset(r.value)));
  }

  function writeValue(f, value) {
    const el = document.getElementById(idFor(f.path));
    if (!el || !el.dataset.field) return;
    if (f.kind === "bool") el.checked = Boolean(value);
    else if (f.kind === "select") el.value = value === null || value === undefined ? "" : JSON.stringify(value);
    else if (f.kind === "list") el.value = Array.isArray(value) ? value.join(", ") : value ?? "";
    else el.value = value === null || value === undefined ? "" : String(value);
    markChanged(el);
  }

  /** The typed value of a field, or throws {field, message} for input that cannot be parsed. */
  function readValue(f) {
    const el = document.getElementById(idFor(f.path));
    if (!el || !el.dataset.field) return get(state.defaults, f.path);
    if (f.kind === "bool") return el.checked;
    const raw = el.value.trim();
    if (raw === "") {
      if (f.optional) return null;
      if (f.kind === "text") return "";
      if (f.kind === "list") return [];
      throw { field: f.path, message: "A value is needed here." };
    }
    if (f.kind === "select") return JSON.parse(raw);
    if (f.kind === "int") {
      if (!/^-?\d+$/.test(raw)) throw { field: f.path, message: `Use a whole number, not "${raw}".` };
      return parseInt(raw, 10);
    }
    if (f.kind === "number") {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw { field: f.path, message: `Use a number, not "${raw}".` };
      return n;
    }
    if (f.kind === "mixed") return /^-?\d+$/.test(raw) ? parseInt(raw, 10) : raw;
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

  // ---- presets ----------------------------------------------------------------------------
  function applyPreset(id) {
    const preset = PRESETS.find((p) => p.id === id);
    if (!preset) return;
    for (const key of PRESET_KEYS) {
      const f = state.fields.find((x) => x.path === key);
      if (f) writeValue(f, key in preset.values ? preset.values[key] : get(state.defaults, key));
    }
    syncPreset();
  }

  /** The preset whose values the form holds now (none when the user changed them by hand). */
  function syncPreset() {
    const values = {};
    for (const key of PRESET_KEYS) {
      const f = state.fields.find((x) => x.path === key);
      try { values[key] = f ? readValue(f) : undefined; } catch (e) { values[key] = undefined; }
    }
    const match = PRESETS.find((p) => PRESET_KEYS.every((k) => same(values[k], k in p.values ? p.values[k] : get(state.defaults, k))));
    $$('#presets input[name="preset"]').forEach((r) => { r.checked = Boolean(match) && r.value === match.id; r.closest(".preset").classList.toggle("on", r.checked); });
  }

  // ---- defaults: schema ← base ← parent (or the job being cloned) ------------------------
  const merge = (a, b) => {
    if (!b || typeof b !== "object" || Array.isArray(b)) return b === undefined ? a : b;
    const out = { ...(a && typeof a === "object" && !Array.isArray(a) ? a : {}) };
    for (const [k, v] of Object.entries(b)) out[k] = merge(out[k], v);
    return out;
  };
  const configOf = (detail) => (detail && detail.config) || {};

  async function applyDefaults() {
    let defaults = {};
    for (const f of state.fields) setPath(defaults, f.path, f.default);
    if (state.cloneDetail) {
      defaults = merge(defaults, configOf(state.cloneDetail));
    } else {
      const base = state.bases.find((b) => b.name === $("#job-base").value);
      $("#base-desc").textContent = base ? L.humanize(base.description || "") : "";
      if (base) defaults = merge(defaults, base.config || {});
      const parent = $("#job-parent").value;
      if (parent) {
        try { defaults = merge(defaults, configOf(await api("GET", `/api/jobs/${encodeURIComponent(parent)}`))); } catch (e) { /* keep base defaults */ }
      }
    }
    const edits = state.ready ? collectChanges(true) : {};
    state.defaults = defaults;
    state.ready = true;
    for (const f of state.fields) if (!CUSTOM.has(f.path)) writeValue(f, f.path in edits ? edits[f.path] : get(defaults, f.path));
    if (!state.columnsTouched) writeColumns(get(defaults, "dataset.format"), get(defaults, "dataset.columns") || {});
    syncPreset();
  }

  /** {dotted path: value} of every schema field that differs from the defaults. */
  function collectChanges(lenient) {
    const out = {};
    const errors = [];
    for (const f of state.fields) {
      if (CUSTOM.has(f.path)) continue;
      try {
        const v = readValue(f);
        if (!same(v, get(state.defaults, f.path))) out[f.path] = v;
      } catch (e) { errors.push(e); }
    }
    if (errors.length && !lenient) throw errors;
    return out;
  }

  // ---- data columns -------------------------------------------------------------------------
  const roleLabel = (role) => L.field(`dataset.columns.${role}`);

  /** The layout shown: the chosen one, else the one validation detected, else a guess for the dropdowns. */
  function shownLayout() {
    const chosen = $("#f-dataset-format").value;
    if (chosen && chosen !== "auto") return chosen;
    if (state.detected && state.detected.format) return state.detected.format;
    return "prompt_completion";
  }

  function renderRoles() {
    const layout = shownLayout();
    const [required, optional] = LAYOUT_ROLES[layout] || [[], []];
    const auto = $("#f-dataset-format").value === "auto";
    const current = state.roleValues || {};
    replace($("#column-roles"), [...required, ...optional].map((role) => {
      const id = idFor(`dataset.columns.${role}`);
      const detectedCol = state.detected && state.detected.columns ? state.detected.columns[role] : null;
      const sel = h("select", { id, "data-role": role, "aria-describedby": `err-${id}` },
        h("option", { value: "" }, detectedCol ? `Automatic (${detectedCol})` : auto ? "Automatic" : optional.includes(role) ? "None" : "Choose a column"),
        state.columns.map((c) => h("option", { value: c }, c)));
      sel.value = current[role] && state.columns.includes(current[role]) ? current[role] : "";
      sel.addEventListener("change", () => { state.roleValues = { ...(state.roleValues || {}), [role]: sel.value }; state.columnsTouched = true; clearFieldError("dataset.columns"); clearFieldError(`dataset.columns.${role}`); });
      return h("div", { class: "field" }, h("label", { for: id, title: `dataset.columns.${role}` }, roleLabel(role), optional.includes(role) ? h("span", { class: "muted" }, " (optional)") : null),
        sel, h("p", { class: "field-error", id: `err-${id}`, hidden: true }));
    }));
  }

  function writeColumns(format, columns) {
    const fmtSel = $("#f-dataset-format");
    fmtSel.value = format && [...fmtSel.options].some((o) => o.value === format) ? format : "auto";
    state.roleValues = { ...(columns || {}) };
    renderRoles();
  }

  /** The column choices as dotted settings (only what differs from the recipe). */
  function columnChanges() {
    const out = {};
    const fmt = $("#f-dataset-format").value || "auto";
    if (fmt !== (get(state.defaults, "dataset.format") || "auto")) out["dataset.format"] = fmt;
    for (const sel of $$("#column-roles select")) {
      const role = sel.dataset.role;
      const value = sel.value || null;
      if (!same(value, get(state.defaults, `dataset.columns.${role}`) ?? null)) out[`dataset.columns.${role}`] = value;
    }
    return out;
  }

  async function loadColumns() {
    const ds = $("#job-dataset").value;
    const version = $("#job-dataset-version").value;
    state.columns = [];
    state.detected = null;
    $("#example-preview").hidden = true;
    if (ds && version) {
      try { state.columns = (await api("GET", `/api/files/${encodeURIComponent(ds)}/versions/${encodeURIComponent(version)}`)).columns || []; } catch (e) { /* stays empty */ }
    }
    renderRoles();
    if (ds && state.ready) detect();
  }

  /** Ask validation (the trainer's own rules) what it makes of the data, quietly. */
  async function detect() {
    const spec = buildSpec(true);
    if (!spec || !spec.dataset) return;
    const mine = (state.detectSeq = (state.detectSeq || 0) + 1);
    try {
      const report = await validateOnce(spec, () => mine !== state.detectSeq);
      if (mine !== state.detectSeq || !report) return;
      useDetected(report);
      const colErr = (report.errors || []).find((e) => String(e.field || "").startsWith("dataset.columns") || e.field === "dataset.format");
      if (colErr) showErrors([colErr]);
    } catch (e) { /* the Check button reports it */ }
  }

  function useDetected(report) {
    const stats = report.stats || {};
    if (stats.format) state.detected = { format: stats.format, columns: stats.columns || {} };
    renderRoles();
    const chosen = $("#f-dataset-format").value !== "auto";
    $("#columns-help").textContent = stats.format
      ? `${chosen ? "Read as you chose" : "Found automatically"}: ${L.choice(stats.format)}. Change the columns below if they are wrong.`
      : "Choose the data layout and which column holds what.";
    renderExample(stats.example_preview);
    suggestObjective(stats.format);
  }

  /** Preference pairs suggest preference tuning (and other data plain SFT), until the user picks one. */
  function suggestObjective(format) {
    const f = state.fields.find((x) => x.path === "objective");
    const hint = $("#objective-hint");
    if (!f || !format || state.objectiveTouched) return;
    let current;
    try { current = readValue(f); } catch (e) { return; }
    if (format === "preference") {
      if (current === "sft") writeValue(f, "dpo");
      hint.textContent = `Your data has a chosen and a rejected answer for each prompt, so “${L.choice(readValue(f))}” is suggested.`;
    } else {
      if (current !== "sft") writeValue(f, "sft");
      hint.textContent = "";
    }
    syncPreset();
  }

  /** One example as the model sees it, the part it learns to write highlighted. */
  function renderExample(ex) {
    const box = $("#example-preview");
    if (!ex || (!ex.prompt && !ex.completion)) { box.hidden = true; return; }
    const tokens = (n) => (typeof n === "number" ? `${n} tokens` : "");
    replace(box, h("h3", {}, "One example as the model sees it"),
      h("pre", { class: "example", "aria-label": "The example, with the trained parts highlighted" },
        Array.isArray(ex.segments) && ex.segments.length
          ? ex.segments.map((p) => (p.trained ? h("mark", { class: "ex-completion", title: "learned" }, p.text) : h("span", { class: "ex-prompt" }, p.text)))
          : [h("span", { class: "ex-prompt" }, ex.prompt || ""), h("mark", { class: "ex-completion", title: "learned" }, ex.completion || "")]),
      h("p", { class: "help" }, h("span", { class: "swatch" }), ` Highlighted: what training teaches the model to write (${tokens(ex.completion_tokens)}). The rest is context (${tokens(ex.prompt_tokens)}).`));
    box.hidden = false;
  }

  // ---- errors next to the control that fixes them ---------------------------------------------
  const STATIC_ERR = { name: "err-name", base: "err-base", parent: "err-parent", dataset: "err-dataset", "dataset.ref": "err-dataset",
    "dataset.columns": "err-f-dataset-columns", "dataset.format": "err-f-dataset-format", "model.source": "err-f-model-source", "model.gguf_file": "err-f-model-source",
    "model": "err-f-model-source" };
  function errorSlot(field) {
    if (!field) return null;
    const f = String(field).replace(/^(body\.)?(spec\.)?(overrides|set|config)\./, "");
    if (STATIC_ERR[f]) return document.getElementById(STATIC_ERR[f]);
    const parts = f.split(".");
    for (let n = parts.length; n > 0; n--) {
      const key = parts.slice(0, n).join(".");
      const slot = document.getElementById(`err-${idFor(key)}`) || (STATIC_ERR[key] && document.getElementById(STATIC_ERR[key]));
      if (slot) return slot;
    }
    return null;
  }

  function clearFieldError(path) {
    const slot = errorSlot(path);
    if (slot) { slot.hidden = true; slot.replaceChildren(); slot.classList.remove("warning"); }
    const input = document.getElementById(idFor(path));
    if (input) input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    $$(".field-error").forEach((e) => { e.hidden = true; e.replaceChildren(); e.classList.remove("warning"); });
    $$("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    $("#form-error").hidden = true;
  }

  // What to do, in this page's words, for the fields only this page has controls for.
  const PAGE_GUIDE = {
    name: (e) => {
      if (e.status !== 409) return "Use letters, digits, '.', '_' or '-'.";
      const free = freeName($("#job-name").value.trim());
      return ["Choose another name, or use ", h("button", { type: "button", class: "btn small", onclick: () => { $("#job-name").value = free; clearFieldError("name"); } }, free), "."];
    },
    "dataset.columns": () => "Choose the data layout and the columns below: which column holds the prompt and which the answer.",
    "dataset.format": () => "Choose the layout that matches your data, or Automatic.",
    "model.source": () => ["Choose another model in the list, or add one on the ", h("a", { href: "/ui/models" }, "Models page"), "."],
    method: () => "Choose LoRA in the Training method list: it trains on any machine.",
  };
  function guideFor(e) {
    const field = String(e.field || (e.body && e.body.field) || "").replace(/^(body\.)?(set|overrides)\./, "");
    for (let f = field; f; f = f.includes(".") ? f.slice(0, f.lastIndexOf(".")) : "") if (PAGE_GUIDE[f]) return PAGE_GUIDE[f](e);
    return NCT.guidance(e);
  }

  function freeName(base) {
    const taken = new Set(state.jobs.map((j) => j.name));
    const stem = base.replace(/-\d+$/, "") || "job";
    let n = 2; while (taken.has(`${stem}-${n}`)) n++;
    return `${stem}-${n}`;
  }

  /** Put each error next to its control, in UI words, with what to do; the rest in the banner. */
  function showErrors(errors, asWarning) {
    const loose = [];
    let first = null;
    for (const e of errors) {
      const slot = errorSlot(e.field || (e.body && e.body.field));
      if (!slot) { loose.push(e); continue; }
      if (asWarning && !slot.hidden) continue;
      const text = L.humanize(e.message) || "This value does not work.";
      const guide = asWarning ? null : guideFor(e);
      replace(slot, asWarning ? "Note: " : null, text.charAt(0).toUpperCase() + text.slice(1), guide ? h("span", { class: "guide" }, " ", guide) : null);
      slot.classList.toggle("warning", Boolean(asWarning));
      slot.hidden = false;
      if (asWarning) continue;
      const block = slot.closest(".field, fieldset");
      const input = block && block.querySelector("input, select");
      if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
      const adv = slot.closest("details");
      if (adv) adv.open = true;
    }
    if (asWarning) return false;
    if (loose.length) {
      const e = loose[0];
      NCT.showAlert($("#form-error"), loose.length === 1 && e instanceof NCT.ApiError ? e
        : { message: loose.map((x) => L.humanize(x.message)).join(" "), body: { field: e.field }, field: e.field, hint: e.hint });
    } else if (first) {
      NCT.showAlert($("#form-error"), { message: "Fix the highlighted setting before going on." });
    }
    if (first) first.focus();
    return Boolean(first);
  }

  function errorsFromApi(err) {
    const out = [];
    if (err.details && err.details.length) for (const d of err.details) out.push({ field: d.field, message: d.message || d.msg, status: err.status });
    else out.push(err);
    return out;
  }

  // ---- spec ---------------------------------------------------------------------------------
  function buildSpec(quiet) {
    if (!quiet) clearErrors();
    const errors = [];
    const name = $("#job-name").value.trim() || (quiet ? "check" : "");
    if (!name) errors.push({ field: "name", message: "Give the job a name." });
    let set = {};
    try { set = collectChanges(Boolean(quiet)); } catch (errs) { errors.push(...errs); }
    Object.assign(set, columnChanges());
    const model = modelChoice();
    if (model.source !== undefined && !same(model.source, get(state.defaults, "model.source"))) set["model.source"] = model.source;
    if (errors.length) { if (!quiet) showErrors(errors); return null; }
    const ds = $("#job-dataset").value;
    const version = $("#job-dataset-version").value;
    const spec = { name, overrides: {}, set };
    const desc = $("#job-description").value.trim();
    if (desc) spec.description = desc;
    if (state.cloneDetail) {
      const d = state.cloneDetail;
      if (d.base) spec.base = d.base;
      if (d.parent) spec.parent = d.parent;
      const cfg = configOf(d);
      for (const [key, src] of Object.entries(d.sources || {})) {
        if (src === "job" && !(key in set) && key !== "dataset.ref" && get(cfg, key) !== undefined) set[key] = get(cfg, key);
      }
    } else {
      if ($("#job-base").value) spec.base = $("#job-base").value;
      if ($("#job-parent").value) spec.parent = $("#job-parent").value;
    }
    if (ds) spec.dataset = version ? `${ds}@${version}` : ds;
    return spec;
  }

  // ---- validate, with feedback while it works ---------------------------------------------------
  let busyTimer = null;
  function busy(text) {
    $$(".form-actions button").forEach((b) => { b.disabled = Boolean(text); });
    clearInterval(busyTimer);
    $("#busy").hidden = !text;
    if (!text) return;
    const started = Date.now();
    const tick = () => { $("#busy-text").textContent = `${typeof text === "function" ? text() : text} ${Math.floor((Date.now() - started) / 1000)} s`; };
    tick();
    busyTimer = setInterval(tick, 250);
  }

  /** POST /api/jobs/validate; while the API's checker warms up it says so, and we ask again. */
  async function validateOnce(spec, cancelled, onWarming) {
    const deadline = Date.now() + 120000;
    for (;;) {
      const report = await api("POST", "/api/jobs/validate", spec);
      const warming = report && report.stats && report.stats.warming_up === true;
      const answered = (report.errors || []).length || Object.keys(report.stats || {}).some((k) => k !== "warming_up");
      if (!warming || answered || Date.now() > deadline) return report;
      if (onWarming) onWarming();
      await new Promise((r) => setTimeout(r, 1000));
      if (cancelled && cancelled()) return null;
    }
  }

  async function validate() {
    const spec = buildSpec();
    if (!spec) return;
    let phase = "Checking the data, the model and the settings…";
    busy(() => phase);
    state.detectSeq = (state.detectSeq || 0) + 1; // a quiet check in flight must not overwrite this one
    try {
      const report = await validateOnce(spec, null, () => { phase = "Getting the checker ready (the first check takes longer)…"; });
      if (report.stats && report.stats.format) useDetected(report);
      await renderReport(report, spec);
    } catch (err) {
      showErrors(errorsFromApi(err));
      $("#report-card").hidden = true;
    } finally { busy(null); }
  }

  // ---- the report, in sentences ------------------------------------------------------------------
  const n = (v) => NCT.fmtNumber(v, 0);
  function plural(v, one, many) { return `${n(v)} ${v === 1 ? one : many || `${one}s`}`; }

  /** How long training takes here, from the speed a past run of the same model measured. */
  async function estimateTime(stats, spec) {
    const t = stats.tokens || {};
    if (!stats.total_steps || !t.mean) return null;
    const cfgSet = spec.set || {};
    const value = (k) => (k in cfgSet ? cfgSet[k] : get(state.defaults, k));
    const tokens = stats.total_steps * value("training.per_device_train_batch_size") * value("training.gradient_accumulation_steps") * t.mean;
    const model = value("model.source");
    const method = value("method");
    let jobs;
    try { jobs = list(await api("GET", "/api/jobs?status=succeeded&limit=30")); } catch (e) { return null; }
    for (const j of jobs.filter((x) => x.progress && x.progress.tokens_per_second).slice(0, 8)) {
      let d;
      try { d = await api("GET", `/api/jobs/${encodeURIComponent(j.name)}`); } catch (e) { continue; }
      const cfg = configOf(d);
      if (cfg.model && cfg.model.source === model && cfg.method === method) return { seconds: tokens / j.progress.tokens_per_second, job: j.name, tps: j.progress.tokens_per_second };
    }
    return { seconds: null };
  }

  async function renderReport(report, spec) {
    const card = $("#report-card");
    const box = $("#report");
    card.hidden = false;
    const stats = report.stats || {};
    const errs = (report.errors || []).map((e) => ({ ...e, level: "error" }));
    const warns = (report.warnings || []).map((e) => ({ ...e, level: "warning" }));
    const ok = report.ok !== false && !errs.length;
    const facts = [];
    const fact = (key, value, ...text) => facts.push(h("li", { "data-fact": key, "data-value": value === undefined ? null : String(value) }, ...text));
    if (stats.rows !== undefined) {
      const used = stats.used_rows ?? stats.rows;
      fact("rows", used, `${plural(used, "row")} of ${stats.dataset ? stats.dataset.replace("@", " v") : "data"}`,
        stats.train_rows !== undefined ? `: ${n(stats.train_rows)} to learn from, ${n(stats.eval_rows)} held back to check progress.` : ".");
    }
    if (stats.format) {
      const cols = Object.entries(stats.columns || {}).map(([role, col]) => `${roleLabel(role).replace(/ column$/, "").toLowerCase()} from “${col}”`).join(", ");
      fact("format", stats.format, `Read as ${L.choice(stats.format).toLowerCase()}${cols ? `: ${cols}` : ""}.`);
    }
    if (stats.total_steps !== undefined) {
      fact("total_steps", stats.total_steps, `Training takes ${plural(stats.total_steps, "step")}`,
        stats.steps_per_epoch ? ` (${plural(stats.steps_per_epoch, "step")} per pass over the data).` : ".");
    }
    if (stats.tokens) {
      const t = stats.tokens;
      fact("tokens.max", t.max, `Examples are about ${plural(Math.round(t.mean), "token")} long, the longest ${plural(t.max, "token")}; `,
        t.over_max_length ? h("strong", {}, `${plural(t.over_max_length, "example")} ${t.over_max_length === 1 ? "is" : "are"} longer than the limit of ${n(t.max_length)} and will be cut.`)
          : `all fit in the limit of ${n(t.max_length)}.`);
    }
    if (stats.model) fact("model", stats.model, `Model: ${stats.model}${stats.parameters ? `, ${NCT.fmtNumber(stats.parameters / 1e6, 0)} million parameters` : ""}.`);
    if (stats.memory && stats.memory.total_gb !== undefined) {
      fact("memory.total_gb", stats.memory.total_gb, `Memory needed at the peak: about ${NCT.fmtNumber(stats.memory.total_gb, 1)} GB`,
        stats.memory.ram_gb ? ` (this machine has ${NCT.fmtNumber(stats.memory.ram_gb, 0)} GB).` : ".");
    }
    const timeLi = h("li", { "data-fact": "time" }, "Estimating the training time…");
    replace(box,
      h("div", { class: `alert ${ok ? (warns.length ? "warn" : "ok") : "error"}`, "data-report-ok": String(ok) },
        ok ? (warns.length ? "Ready to train, with notes below." : "Ready to train: everything checks out.") : "Fix the problems below before training."),
      errs.length || warns.length ? h("ul", { class: "report-list issues" }, [...errs, ...warns].map((i) => h("li", { class: i.level, "data-level": i.level },
        h("strong", {}, i.level === "error" ? "Problem: " : "Note: "), L.humanize(i.message),
        i.field && L.FIELD[i.field] && !L.humanize(i.message).includes(L.field(i.field).replace(/\s*\(.*\)$/, "")) ? h("span", { class: "muted" }, ` (${L.field(i.field)})`) : null))) : null,
      facts.length ? h("ul", { class: "report-list facts", id: "report-facts" }, facts, ok ? timeLi : null) : null);
    if (errs.length) showErrors(errs.filter((e) => e.field));
    showErrors(warns.filter((w) => w.field), true);
    card.scrollIntoView({ behavior: "smooth", block: "nearest" });
    if (!ok) return;
    const est = await estimateTime(stats, spec);
    if (!est) timeLi.remove();
    else if (est.seconds === null) replace(timeLi, "Training time: not known yet for this model on this machine. The “Quick test” choice measures it in a few minutes.");
    else replace(timeLi, `Training time on this machine: about ${NCT.fmtDuration(Math.max(60, est.seconds))} (at the ${n(est.tps)} tokens/s that job `, h("a", { href: jobUrl(est.job) }, est.job), " measured).");
  }

  async function create(run) {
    const spec = buildSpec();
    if (!spec) return;
    busy(run ? "Creating the job…" : "Creating…");
    try {
      let job;
      if (state.cloneDetail) {
        const set = { ...spec.set };
        if (spec.dataset && spec.dataset !== datasetRefOf(state.cloneDetail)) set["dataset.ref"] = spec.dataset;
        job = await api("POST", `/api/jobs/${encodeURIComponent(cloneOf)}/clone`, { name: spec.name, set, description: spec.description, run });
      } else {
        job = await api("POST", "/api/jobs", { ...spec, run });
      }
      toast(run ? `Created ${job.name}; it is starting.` : `Created ${job.name}.`);
      location.href = jobUrl(job.name);
    } catch (err) {
      showErrors(errorsFromApi(err));
      busy(null);
    }
  }

  // ---- selects ------------------------------------------------------------------------------
  const datasetRefOf = (d) => {
    const cfg = configOf(d);
    if (cfg.dataset && cfg.dataset.ref) return cfg.dataset.ref;
    const snap = (d.datasets || [])[0];
    return snap ? `${snap.name}@${snap.version}` : "";
  };

  function fillDatasets(selected) {
    const sel = $("#job-dataset");
    let [selName, selVersion] = (selected || "").split("@");
    // Once people have their own data, the shipped demo is not what they mean: preselect their newest.
    if (!selName) {
      const own = state.datasets.filter((d) => d.name !== "demo");
      const newest = (ds) => ds.slice().sort((a, b) => String(latest(b).created_at).localeCompare(String(latest(a).created_at)))[0];
      selName = own.length ? newest(own).name : state.datasets.length === 1 ? state.datasets[0].name : "";
    }
    replace(sel, h("option", { value: "" }, state.datasets.length ? "Choose a dataset" : "No datasets yet"),
      state.datasets.map((d) => h("option", { value: d.name, selected: d.name === selName }, d.name === "demo" ? "demo (example data)" : d.name)));
    if (selName && !state.datasets.some((d) => d.name === selName)) {
      replace($("#dataset-hint"), `The dataset “${selName}” was deleted. Choose another, or upload it again on the `, h("a", { href: "/ui/datasets" }, "Datasets page"), ".");
    } else {
      $("#dataset-hint").replaceChildren(...(state.datasets.length ? [] : ["Upload one on the ", h("a", { href: "/ui/datasets" }, "Datasets page"), " first."]));
    }
    fillVersions(selVersion);
  }
  const latest = (ds) => (ds.versions || []).find((v) => v.version === ds.latest) || {};

  function fillVersions(selVersion) {
    const ds = state.datasets.find((d) => d.name === $("#job-dataset").value);
    const versions = ds ? [...(ds.versions || [])].sort((a, b) => b.version - a.version) : [];
    replace($("#job-dataset-version"), versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(selVersion || ds.latest) },
      `v${v.version} · ${n(v.rows)} rows${v.version === ds.latest && versions.length > 1 ? " (latest)" : ""}`)));
  }

  // ---- the model picker ----------------------------------------------------------------------------
  const GROUPS = [["default", "Built in"], ["registered", "Your models"], ["hub_cache", "Hugging Face cache"], ["export", "Exported models"], ["job", "Continue training a job"]];

  function fillModels(current) {
    const sel = $("#model-pick");
    const byKind = (k) => state.models.filter((m) => m.kind === k && (k !== "job" || m.job));
    const known = new Set(state.models.filter((m) => m.source).map((m) => m.source));
    replace(sel, GROUPS.filter(([k]) => byKind(k).length).map(([k, label]) => h("optgroup", { label },
      byKind(k).map((m) => h("option", { value: m.kind === "job" ? `job:${m.job}` : `source:${m.source}` }, m.name)))),
    current && !known.has(current) ? h("option", { value: `source:${current}` }, current) : null,
    h("option", { value: "other" }, "Another model (type its location)…"));
    setModelPick(current);
  }

  function setModelPick(source) {
    const parent = $("#job-parent").value;
    const sel = $("#model-pick");
    const want = parent ? `job:${parent}` : `source:${source}`;
    if ([...sel.options].some((o) => o.value === want)) sel.value = want;
    else if (parent) sel.append(h("option", { value: want, selected: true }, `${parent} (trained job)`));
    $("#model-other-field").hidden = sel.value !== "other";
  }

  /** {source} to set, {parent} to continue from, or {} when the form's value stands. */
  function modelChoice() {
    const v = $("#model-pick").value;
    if (v === "other") return { source: $("#model-other").value.trim() || undefined };
    if (v.startsWith("source:")) return { source: v.slice(7) };
    return {};
  }

  async function onModelPick() {
    const v = $("#model-pick").value;
    $("#model-other-field").hidden = v !== "other";
    clearFieldError("model.source");
    const parentSel = $("#job-parent");
    const parent = v.startsWith("job:") ? v.slice(4) : "";
    if (parentSel.value !== parent && !state.cloneDetail) {
      if (parent && ![...parentSel.options].some((o) => o.value === parent)) parentSel.append(h("option", { value: parent }, parent));
      parentSel.value = parent;
      parentSel.closest(".field").hidden = !parent;
      await applyDefaults();
    }
  }

  async function init() {
    let schema;
    try {
      [schema, state.bases, state.datasets, state.jobs, state.models] = await Promise.all([
        api("GET", "/api/schema"),
        api("GET", "/api/bases").then(list),
        api("GET", "/api/files").then(list).catch(() => []),
        api("GET", "/api/jobs?limit=500").then(list).catch(() => []),
        api("GET", "/api/models").then((c) => c.models || []).catch(() => []),
      ]);
    } catch (err) {
      replace($("#common-fields"), errorBox(err));
      busy("");
      return;
    }
    state.schema = schema;
    state.fields = walk(schema, "", []);
    renderForm();

    const baseSel = $("#job-base");
    replace(baseSel, state.bases.map((b) => h("option", { value: b.name }, L.base(b.name))));
    const wantedBase = params.get("base") || (state.bases.some((b) => b.name === "lora_train") ? "lora_train" : "");
    if (wantedBase) baseSel.value = wantedBase;
    const parentSel = $("#job-parent");
    for (const j of state.jobs) parentSel.append(h("option", { value: j.name }, `${j.name} (${j.status})`));
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
      $("#new-intro").textContent = "A new job with the same recipe, model and settings. Change what you want to try differently.";
      $("#create-btn").textContent = "Create clone";
      $("#create-run-btn").textContent = "Create clone and run";
      baseSel.value = d.base || "";
      parentSel.value = d.parent || "";
      baseSel.disabled = true;
      parentSel.disabled = true;
      $("#model-pick").disabled = Boolean(d.parent);
      $("#job-name").value = freeName(cloneOf);
      $("#job-description").value = configOf(d).description || "";
      fillDatasets(datasetRefOf(d));
    } else {
      fillDatasets(params.get("dataset") || "");
      const own = $("#job-dataset").value;
      const wanted = `${own || "my"}-job`;
      $("#job-name").value = state.jobs.some((j) => j.name === wanted) ? freeName(wanted) : wanted;
    }
    parentSel.closest(".field").hidden = !parentSel.value;
    await applyDefaults();
    fillModels(params.get("model") || get(state.defaults, "model.source"));
    await loadColumns();

    baseSel.addEventListener("change", applyDefaults);
    parentSel.addEventListener("change", applyDefaults);
    $("#model-pick").addEventListener("change", onModelPick);
    $("#model-other").addEventListener("input", () => clearFieldError("model.source"));
    $("#job-dataset").addEventListener("change", () => { fillVersions(); clearFieldError("dataset"); state.columnsTouched = false; state.roleValues = {}; loadColumns(); });
    $("#job-dataset-version").addEventListener("change", loadColumns);
    $("#f-dataset-format").addEventListener("change", () => { state.columnsTouched = true; clearFieldError("dataset.format"); clearFieldError("dataset.columns"); renderRoles(); });
    const objective = $("#f-objective");
    if (objective) objective.addEventListener("change", () => { state.objectiveTouched = true; $("#objective-hint").textContent = ""; });
    $("#job-name").addEventListener("input", () => clearFieldError("name"));
    $("#validate-btn").addEventListener("click", validate);
    $("#create-btn").addEventListener("click", () => create(false));
    $("#create-run-btn").addEventListener("click", () => create(true));
    $("#job-form").addEventListener("submit", (e) => { e.preventDefault(); validate(); });
    document.body.dataset.ready = "true";
  }

  init();
})();
