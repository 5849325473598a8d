/* Plotly charts of training curves, shared by the job page and the compare page.
   Plotly.react redraws only data it sees as new, so every draw hands it fresh arrays
   (and a new datarevision): pushing to the arrays it already holds would draw nothing. */
"use strict";

const NCT_CHARTS = (() => {
  const COLORS = ["#4f46e5", "#f97316", "#0f766e", "#be185d", "#65a30d", "#0369a1", "#a16207", "#7c3aed"];
  let revision = 0;

  function layout(yTitle, extra) {
    return { margin: { l: 56, r: 12, t: 8, b: 40 }, xaxis: { title: { text: "step" }, rangemode: "tozero", automargin: true },
      yaxis: { title: { text: yTitle }, automargin: true, exponentformat: "power" },
      legend: { orientation: "h", y: -0.25, x: 0 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11 },
      datarevision: ++revision, ...(extra || {}) };
  }
  const CONFIG = { responsive: true, displaylogo: false, displayModeBar: false };

  /** {step: value} points as a trace with its own (new) arrays, sorted by step. */
  function trace(points, name, i, opts) {
    const steps = [...points.keys()].sort((a, b) => a - b);
    return { x: steps, y: steps.map((s) => points.get(s)), name, mode: "lines+markers", type: "scatter",
      line: { color: COLORS[i % COLORS.length], width: 2, dash: (opts && opts.dash) || "solid" }, marker: { size: (opts && opts.size) || 5 } };
  }

  function draw(el, traces, yTitle, extra) {
    if (!window.Plotly || !el) return false;
    Plotly.react(el, traces, layout(yTitle, extra), CONFIG);
    return true;
  }

  return { COLORS, trace, draw };
})();
