/* Datasets page: drag-and-drop upload with progress, list, paginated preview. */
"use strict";
(() => {
  const { api, h, $, replace, fmtBytes, fmtNumber, fmtTime, toast, emptyState, table, errorBox, list } = NCT;
  const PAGE = 20;
  const state = { file: null, datasets: [], preview: { name: null, version: null, offset: 0, total: 0 } };

  const input = $("#file-input");
  const zone = $("#dropzone");
  const nameInput = $("#ds-name");
  const uploadBtn = $("#upload-btn");

  function chooseFile(file) {
    state.file = file || null;
    $("#file-chosen").textContent = file ? `${file.name} · ${fmtBytes(file.size)}` : "";
    if (file && !nameInput.dataset.touched) {
      nameInput.value = file.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "").slice(0, 100);
    }
    uploadBtn.disabled = !file;
    if (file) replace($("#upload-result"));
  }

  input.addEventListener("change", () => chooseFile(input.files[0]));
  nameInput.addEventListener("input", () => { nameInput.dataset.touched = "1"; });
  ["dragenter", "dragover"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.add("dragover"); }));
  ["dragleave", "drop"].forEach((ev) => zone.addEventListener(ev, (e) => { e.preventDefault(); zone.classList.remove("dragover"); }));
  zone.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]); });
  // A file dropped outside the zone must not make the browser navigate away.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  /** XMLHttpRequest, not fetch: only XHR reports upload progress. */
  function upload(file, name, tags) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      form.append("file", file);
      form.append("name", name);
      if (tags) form.append("tags", tags);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/files");
      xhr.setRequestHeader("Accept", "application/json");
      for (const [k, v] of Object.entries(NCT.authHeaders())) xhr.setRequestHeader(k, v);
      const bar = $("#upload-progress");
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const p = Math.round((e.loaded / e.total) * 100);
        bar.value = p;
        $("#upload-pct").textContent = p < 100 ? `${p}%` : "Processing…";
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = { message: xhr.responseText || `HTTP ${xhr.status}` }; }
        if (xhr.status >= 200 && xhr.status < 300) resolve({ status: xhr.status, body });
        else {
          if (body && !body.message && body.detail) body.message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
          reject(new NCT.ApiError(xhr.status, body));
        }
      });
      xhr.addEventListener("error", () => reject(new NCT.ApiError(0, { message: "The upload was interrupted. Is the server still running?" })));
      xhr.send(form);
    });
  }

  $("#upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!state.file) { input.click(); return; }
    const name = nameInput.value.trim();
    const result = $("#upload-result");
    if (!name) {
      replace(result, errorBox(new NCT.ApiError(400, { message: "Give the dataset a name.", field: "name" })));
      nameInput.focus();
      return;
    }
    uploadBtn.disabled = true;
    $("#upload-progress-wrap").hidden = false;
    $("#upload-progress").value = 0;
    try {
      const { status, body: raw } = await upload(state.file, name, $("#ds-tags").value.trim());
      const body = { ...(raw.meta || raw), created: raw.created };
      const v = body.version !== undefined ? body.version : "?";
      const msg = status === 201 || body.created
        ? `Uploaded ${name} as version ${v}${body.rows !== undefined && body.rows !== null ? ` · ${fmtNumber(body.rows)} rows` : ""}.`
        : `${name} version ${v} already holds exactly this file; nothing changed.`;
      replace(result, h("div", { class: "alert ok" }, msg, " ",
        h("a", { id: "train-new", href: `/ui/jobs/new?dataset=${encodeURIComponent(`${body.name || name}@${v}`)}` }, "Train a model on it →")));
      toast(msg);
      chooseFile(null);
      input.value = "";
      delete nameInput.dataset.touched;
      nameInput.value = "";
      await loadList();
      openPreview(body.name || name, body.version);
    } catch (err) {
      replace(result, errorBox(err));
      uploadBtn.disabled = false;
    } finally {
      $("#upload-progress-wrap").hidden = true;
    }
  });

  const latestMeta = (ds) => {
    const versions = ds.versions || [];
    return versions.find((v) => v.version === ds.latest) || versions[versions.length - 1] || {};
  };
  const sizeOf = (m) => m.size ?? m.size_bytes ?? m.bytes ?? null;
  const tagsOf = (m) => (Array.isArray(m.tags) ? m.tags : m.tags ? String(m.tags).split(",") : []);

  async function loadList() {
    const box = $("#datasets-list");
    try {
      state.datasets = list(await api("GET", "/api/files"));
    } catch (err) {
      replace(box, errorBox(err));
      return;
    }
    if (!state.datasets.length) {
      replace(box, emptyState("No datasets yet", "Drop a CSV, JSON, JSONL, Parquet, Excel, text or PDF file above to add your first one.",
        h("button", { type: "button", class: "btn primary", onclick: () => input.click() }, "Choose a file")));
      return;
    }
    const rows = state.datasets.map((ds) => {
      const m = latestMeta(ds);
      const versions = (ds.versions || []).map((v) => v.version);
      return h("tr", { "data-dataset": ds.name },
        h("td", {}, h("strong", {}, ds.name), h("span", { class: "sub" }, m.original_filename || m.file || "")),
        h("td", {}, `v${ds.latest ?? m.version ?? "?"}`, h("span", { class: "sub" }, `${versions.length} version${versions.length === 1 ? "" : "s"}`)),
        h("td", { class: "num" }, fmtBytes(sizeOf(m))),
        h("td", { class: "num" }, fmtNumber(m.rows)),
        h("td", {}, m.format || "–"),
        h("td", {}, tagsOf(m).map((t) => h("span", { class: "tag" }, t.trim()))),
        h("td", { class: "hide-narrow" }, fmtTime(m.created_at || m.created)),
        h("td", {}, h("div", { class: "actions" },
          h("a", { class: "btn small primary", href: `/ui/jobs/new?dataset=${encodeURIComponent(`${ds.name}@${ds.latest ?? m.version}`)}` }, "Train on this"),
          h("button", { type: "button", class: "btn small", onclick: () => openPreview(ds.name, ds.latest ?? m.version) }, "Preview"),
          h("a", { class: "btn small ghost", href: `/api/files/${encodeURIComponent(ds.name)}/versions/${ds.latest ?? m.version}/download`, download: "" }, "Download"),
          h("button", { type: "button", class: "btn small danger-outline", onclick: () => deleteDataset(ds.name) }, "Delete"))));
    });
    replace(box, table(["Name", "Version", { label: "Size", cls: "num" }, { label: "Rows", cls: "num" }, "Format", "Tags", { label: "Added", cls: "hide-narrow" }, "Actions"], rows, { stack: true }));
  }

  async function deleteDataset(name, force) {
    if (!force && !confirm(`Delete dataset "${name}" and all its versions?`)) return;
    try {
      await api("DELETE", `/api/files/${encodeURIComponent(name)}${force ? "?force=true" : ""}`);
      toast(`Deleted ${name}.`);
      if (state.preview.name === name) $("#preview-card").hidden = true;
      loadList();
    } catch (err) {
      if (err.status === 409 && !force) {
        if (confirm(`${err.message}\n\nDelete it anyway? The jobs keep their own copy of the data.`)) deleteDataset(name, true);
      } else toast(err.message, true);
    }
  }

  async function openPreview(name, version) {
    const ds = state.datasets.find((d) => d.name === name);
    state.preview = { name, version: version ?? (ds && ds.latest), offset: 0, total: 0 };
    const sel = $("#preview-version");
    replace(sel, ((ds && ds.versions) || [{ version: state.preview.version }]).map((v) =>
      h("option", { value: v.version, selected: v.version === state.preview.version }, `v${v.version}`)));
    $("#preview-card").hidden = false;
    $("#preview-title").textContent = `Preview · ${name}`;
    await loadPreview();
    $("#preview-card").scrollIntoView({ behavior: "smooth", block: "start" });
  }

  async function loadPreview() {
    const { name, version, offset } = state.preview;
    const box = $("#preview-table");
    const metaBox = $("#preview-meta");
    const base = `/api/files/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
    try {
      const [meta, page] = await Promise.all([api("GET", base), api("GET", `${base}/preview?offset=${offset}&limit=${PAGE}`)]);
      const items = [["Format", meta.format], ["Rows", fmtNumber(meta.rows ?? page.total)], ["Size", fmtBytes(sizeOf(meta))],
        ["Columns", (meta.columns || page.columns || []).join(", ") || "–"], ["Encoding", meta.encoding], ["Original file", meta.original_filename],
        ["SHA-256", meta.sha256 ? String(meta.sha256).slice(0, 12) : null], ["Tags", tagsOf(meta).join(", ")], ["Notes", (meta.notes || []).join("; ")]];
      replace(metaBox, items.filter(([, v]) => v !== undefined && v !== null && v !== "").map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
      state.preview.total = page.total ?? 0;
      const cols = page.columns || [];
      const rows = (page.rows || []).map((r, i) => h("tr", {},
        h("td", { class: "num muted" }, offset + i + 1),
        cols.map((c, j) => {
          const v = Array.isArray(r) ? r[j] : r[c];
          return h("td", { class: "cell" }, v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
        })));
      replace(box, rows.length ? table([{ label: "#", cls: "num" }, ...cols], rows) : emptyState("This version has no rows", "Upload a file with at least one row of data."));
      const last = Math.min(offset + PAGE, state.preview.total);
      $("#page-info").textContent = state.preview.total ? `Rows ${offset + 1}–${last} of ${fmtNumber(state.preview.total)}` : "";
      $("#prev-page").disabled = offset <= 0;
      $("#next-page").disabled = last >= state.preview.total;
    } catch (err) {
      replace(metaBox);
      replace(box, errorBox(err));
    }
  }

  $("#preview-version").addEventListener("change", (e) => { state.preview.version = Number(e.target.value); state.preview.offset = 0; loadPreview(); });
  $("#prev-page").addEventListener("click", () => { state.preview.offset = Math.max(0, state.preview.offset - PAGE); loadPreview(); });
  $("#next-page").addEventListener("click", () => { state.preview.offset += PAGE; loadPreview(); });
  $("#refresh-datasets").addEventListener("click", loadList);
  $("#delete-version").addEventListener("click", async () => {
    const { name, version } = state.preview;
    if (!confirm(`Delete version ${version} of "${name}"?`)) return;
    const url = `/api/files/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
    try {
      try { await api("DELETE", url); } catch (err) {
        if (err.status !== 409 || !confirm(`${err.message}\n\nDelete it anyway? The jobs keep their own copy of the data.`)) throw err;
        await api("DELETE", `${url}?force=true`);
      }
      toast(`Deleted ${name} v${version}.`);
      $("#preview-card").hidden = true;
      await loadList();
    } catch (err) { toast(err.message, true); }
  });

  loadList().then(() => {
    const query = new URLSearchParams(location.search);
    const want = query.get("dataset");
    if (!want) return;
    if (state.datasets.some((d) => d.name === want)) {
      const v = Number(query.get("version"));
      const ds = state.datasets.find((d) => d.name === want);
      openPreview(want, (ds.versions || []).some((x) => x.version === v) ? v : undefined);
    } else {
      // A link from a job whose dataset was deleted since: say so instead of showing nothing.
      replace($("#upload-result"), h("div", { class: "alert warn", id: "deleted-notice", role: "status" },
        `The dataset “${want}” was deleted. Jobs that used it keep their own copy of the data; upload it again to train new jobs on it.`));
    }
  });
})();
