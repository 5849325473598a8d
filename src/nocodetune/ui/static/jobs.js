/* Jobs page: filterable table with live status, progress and ETA (polled). */
"use strict";
(() => {
  const { api, h, $, replace, badge, progressBar, pct, fmtDuration, fmtTime, emptyState, table, errorBox, qs, every, list, jobUrl, ACTIVE } = NCT;
  const filters = { q: $("#filter-q"), status: $("#filter-status"), base: $("#filter-base") };
  const params = new URLSearchParams(location.search);
  for (const k of Object.keys(filters)) if (params.get(k)) filters[k].value = params.get(k);

  async function loadBases() {
    try {
      const bases = list(await api("GET", "/api/bases"));
      for (const b of bases) filters.base.append(h("option", { value: b.name, selected: params.get("base") === b.name }, NCT_LABELS.base(b.name).split(":")[0]));
    } catch (e) { /* the filter stays "Any" */ }
  }


  async function load() {
    const box = $("#jobs-table");
    const q = { q: filters.q.value.trim(), status: filters.status.value, base: filters.base.value, limit: 200 };
    history.replaceState(null, "", location.pathname + qs({ q: q.q, status: q.status, base: q.base }));
    let data;
    try {
      data = await api("GET", `/api/jobs${qs(q)}`);
    } catch (err) {
      replace(box, errorBox(err));
      return;
    }
    const items = list(data);
    if (!items.length) {
      const filtered = q.q || q.status || q.base;
      replace(box, filtered
        ? emptyState("No jobs match these filters", "Clear the search or pick another status.")
        : emptyState("No jobs yet", "Upload a dataset, then create a job from a base like lora_train.",
          h("a", { class: "btn primary", href: "/ui/jobs/new" }, "Create your first job")));
      return;
    }
    const rows = items.map((j) => {
      const status = j.status || "created";
      const pick = h("input", { type: "checkbox", class: "pick", value: j.name, "aria-label": `Compare ${j.name}`, checked: selected.has(j.name),
        onchange: (e) => { if (e.target.checked) selected.add(j.name); else selected.delete(j.name); updateCompare(); } });
      const info = NCT.progressInfo(j);
      const p = info.fraction;
      const eta = info.eta;
      return h("tr", { "data-job": j.name, "data-status": status },
        h("td", { class: "no-label pick-cell" }, pick),
        h("td", { class: "job-cell" }, h("a", { href: jobUrl(j.name) }, h("strong", {}, j.name)), j.description ? h("span", { class: "sub desc" }, j.description) : null),
        h("td", {}, badge(status)),
        h("td", { class: "progress-cell" }, progressBar(p, status, `${j.name} progress`),
          h("span", { class: "sub" }, `${pct(p, status)}%${info.step !== null && info.total ? ` · step ${info.step}/${info.total}` : ""}`)),
        h("td", { class: "num" }, ACTIVE.has(status) && eta !== undefined && eta !== null ? fmtDuration(eta) : "–"),
        h("td", {}, j.base ? NCT_LABELS.base(j.base).split(":")[0] : "–", j.parent ? h("span", { class: "sub" }, `continues ${j.parent}`) : null),
        h("td", { class: "num hide-narrow" }, NCT.fmtNumber(info.loss)),
        h("td", { class: "hide-narrow" }, fmtTime(j.created_at)));
    });
    const total = data && data.total !== undefined ? data.total : items.length;
    replace(box,
      table([{ label: "", cls: "pick-cell" }, "Job", "Status", "Progress", { label: "Time left", cls: "num" }, "Recipe", { label: "Loss", cls: "num hide-narrow" }, { label: "Created", cls: "hide-narrow" }], rows, { stack: true }),
      total > items.length ? h("p", { class: "muted small" }, `Showing ${items.length} of ${total}. Narrow the search to see others.`) : null);
  }

  const selected = new Set();
  function updateCompare() {
    const btn = $("#compare-btn");
    const names = [...selected];
    btn.href = `/ui/compare?jobs=${names.map(encodeURIComponent).join(",")}`;
    btn.setAttribute("aria-disabled", String(names.length < 2));
    btn.classList.toggle("disabled", names.length < 2);
    $("#compare-count").textContent = names.length ? `${names.length} selected${names.length < 2 ? ": tick one more to compare" : ""}.` : "Tick jobs to compare their loss curves and settings.";
  }
  $("#compare-btn").addEventListener("click", (e) => { if (selected.size < 2) e.preventDefault(); });

  /** Getting started: shown until the user has data of their own. */
  async function gettingStarted() {
    try {
      const own = list(await api("GET", "/api/files")).filter((d) => d.name !== "demo");
      $("#getting-started").hidden = own.length > 0;
    } catch (e) { /* stays hidden */ }
  }

  let debounce = null;
  filters.q.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(load, 250); });
  filters.status.addEventListener("change", () => load());
  filters.base.addEventListener("change", () => load());
  $("#job-filters").addEventListener("submit", (e) => { e.preventDefault(); load(); });

  // Every 2 s while something runs; every 10 s otherwise (jobs started elsewhere still show up).
  let lastLoad = 0;
  const anyActive = () => NCT.$$("#jobs-table tr[data-status]").some((tr) => ACTIVE.has(tr.dataset.status));
  const tracked = async () => { lastLoad = Date.now(); await load(); };

  loadBases();
  gettingStarted();
  tracked();
  every(2000, async () => { if (anyActive() || Date.now() - lastLoad > 10000) await tracked(); });
})();
