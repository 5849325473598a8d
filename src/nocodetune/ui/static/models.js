/* Models page: the models catalog (GET /api/models), registering a folder or GGUF file
   (POST /api/models), forgetting one (DELETE), an opt-in hub download, and from each model:
   train on it (the New-job form, preselected) or chat with it (a model server). */
"use strict";
(() => {
  const { api, h, $, replace, toast, errorBox, emptyState, table, fmtBytes } = NCT;
  const GROUP = { default: "Built in", registered: "Added by you", hub_cache: "Hugging Face cache", job: "Trained job", export: "Exported" };
  let hubOn = false;

  async function load() {
    const box = $("#models-list");
    let catalog;
    try { catalog = await api("GET", "/api/models"); } catch (err) { replace(box, errorBox(err)); return; }
    hubOn = catalog.hub_downloads;
    $("#hub-off").hidden = hubOn;
    $("#hub-form").hidden = !hubOn;
    replace($("#downloads"), (catalog.downloads || []).map((d) => h("p", { class: d.status === "failed" ? "field-error" : "muted" },
      `${d.repo_id}: ${d.status === "downloading" ? "downloading…" : d.status === "done" ? "downloaded." : `failed: ${d.error || ""}`}`)));
    const models = catalog.models || [];
    if (!models.length) { replace(box, emptyState("No models yet", "Add a model folder or a .gguf file below.")); return; }
    replace(box, table(["Model", "Kind", { label: "Size", cls: "num" }, "Actions"], models.map((m) => h("tr", { "data-model": m.id, "data-kind": m.kind },
      h("td", {}, h("strong", {}, m.name), m.path ? h("span", { class: "sub path", title: m.path }, m.path) : null),
      h("td", {}, GROUP[m.kind] || m.kind, m.detail ? h("span", { class: "sub" }, m.detail) : null),
      h("td", { class: "num" }, fmtBytes(m.size_bytes)),
      h("td", {}, h("div", { class: "actions" },
        h("a", { class: "btn small primary", href: m.kind === "job" ? `/ui/jobs/new?parent=${encodeURIComponent(m.job)}` : `/ui/jobs/new?model=${encodeURIComponent(m.source)}` },
          m.kind === "job" ? "Train further" : "Train"),
        h("button", { type: "button", class: "btn small", onclick: (e) => chat(m, e.target) }, "Chat"),
        m.kind === "registered" ? h("button", { type: "button", class: "btn small danger-outline", onclick: () => forget(m) }, "Remove") : null)))), { stack: true }));
  }

  async function chat(m, button) {
    button.disabled = true;
    button.textContent = "Starting… (loading the model)";
    try {
      const server = await api("POST", "/api/servers", m.kind === "job" ? { kind: "model", job: m.job } : { kind: "model", model: m.source });
      location.href = `/ui/playground?server=${encodeURIComponent(server.id)}`;
    } catch (err) {
      toast(NCT_LABELS.humanize(err.message), true);
      button.disabled = false;
      button.textContent = "Chat";
    }
  }

  async function forget(m) {
    if (!confirm(`Remove “${m.name}” from this list? Its files stay where they are.`)) return;
    try { await api("DELETE", `/api/models/${encodeURIComponent(m.id)}`); toast(`Removed ${m.name}.`); load(); } catch (err) { toast(err.message, true); }
  }

  function fieldError(field, err) {
    const slot = document.getElementById(`err-${field}`);
    if (!slot) return false;
    if (!err) { slot.hidden = true; slot.replaceChildren(); return true; }
    const text = NCT_LABELS.humanize(err.message);
    const guide = NCT.guidance(err);
    replace(slot, text.charAt(0).toUpperCase() + text.slice(1), guide ? h("span", { class: "guide" }, " ", guide) : null);
    slot.hidden = false;
    return true;
  }

  $("#register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    fieldError("path", null);
    replace($("#register-result"));
    const btn = $("#register-btn");
    btn.disabled = true;
    try {
      const m = await api("POST", "/api/models", { path: $("#model-path").value.trim(), name: $("#model-name").value.trim() || null });
      replace($("#register-result"), h("div", { class: "alert ok" }, `Added ${m.name}. `, h("a", { href: `/ui/jobs/new?model=${encodeURIComponent(m.source)}` }, "Train on it →")));
      $("#model-path").value = ""; $("#model-name").value = "";
      load();
    } catch (err) {
      if (!fieldError(err.field || "path", err)) replace($("#register-result"), errorBox(err));
      $("#model-path").setAttribute("aria-invalid", "true");
      $("#model-path").focus();
    } finally { btn.disabled = false; }
  });
  $("#model-path").addEventListener("input", () => { $("#model-path").removeAttribute("aria-invalid"); fieldError("path", null); });

  $("#hub-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    fieldError("repo_id", null);
    try {
      await api("POST", "/api/models/download", { repo_id: $("#hub-id").value.trim() });
      toast("Downloading; the model appears in the list when it is done.");
      load();
    } catch (err) { if (!fieldError("repo_id", err)) toast(err.message, true); }
  });
  $("#refresh-models").addEventListener("click", load);

  load();
  NCT.every(5000, async () => { if (!$("#downloads").textContent.includes("downloading")) return; await load(); });
})();
