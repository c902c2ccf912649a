// The A/B tests of a running shoprec: GET /v1/experiments and each one's report, with two plots per
// test: the primary metric per variant, and each treatment's difference with its always-valid interval,
// look by look (one a day). The API key stays in this page's session storage.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

async function api(path) {
  const r = await fetch(path, { headers: { "X-API-Key": sessionStorage.getItem("shoprecKey") || "" } });
  const body = await r.json();
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== "svg") e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// a line plot: series = [{name, colour, points: [[x, y], …], band: [[x, lo, hi], …]}]
function plot(title, series, yLabel) {
  const W = 460, H = 240, L = 60, R = 10, T = 24, B = 34;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).concat((s.band || []).flatMap((b) => [b[1], b[2]])))
    .filter((y) => Number.isFinite(y));
  const svg = el("svg", { width: W, height: H, role: "img", "aria-label": title });
  svg.appendChild(el("text", { svg: 1, x: L, y: 15, "font-size": 13 }, title));
  if (!xs.length || !ys.length) { svg.appendChild(el("text", { svg: 1, x: L, y: H / 2 }, "no looks yet")); return svg; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1e-9), y0 = Math.min(...ys, 0), y1 = Math.max(...ys, y0 + 1e-9);
  const X = (x) => L + (x - x0) / (x1 - x0 || 1) * (W - L - R), Y = (y) => H - B - (y - y0) / (y1 - y0 || 1) * (H - T - B);
  svg.appendChild(el("line", { svg: 1, x1: L, x2: W - R, y1: Y(0), y2: Y(0), stroke: "#999" }));
  for (const v of [y0, (y0 + y1) / 2, y1]) svg.appendChild(el("text", { svg: 1, x: 2, y: Y(v) + 4, "font-size": 10 }, v.toPrecision(3)));
  svg.appendChild(el("text", { svg: 1, x: W / 2, y: H - 6, "font-size": 11 }, "day of the test"));
  svg.appendChild(el("text", { svg: 1, x: L, y: H - B + 14, "font-size": 10 }, x0.toFixed(0)));
  svg.appendChild(el("text", { svg: 1, x: W - R - 20, y: H - B + 14, "font-size": 10 }, x1.toFixed(1)));
  series.forEach((s, i) => {
    if (s.band && s.band.length) {
      const up = s.band.map((b) => `${X(b[0])},${Y(b[2])}`), down = s.band.slice().reverse().map((b) => `${X(b[0])},${Y(b[1])}`);
      svg.appendChild(el("polygon", { svg: 1, points: up.concat(down).join(" "), fill: s.colour, "fill-opacity": 0.15 }));
    }
    svg.appendChild(el("polyline", { svg: 1, points: s.points.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "),
      fill: "none", stroke: s.colour, "stroke-width": 2 }));
    for (const p of s.points) svg.appendChild(el("circle", { svg: 1, cx: X(p[0]), cy: Y(p[1]), r: 3, fill: s.colour }));
    svg.appendChild(el("text", { svg: 1, x: W - R - 110, y: T + 12 + 13 * i, fill: s.colour, "font-size": 11 }, s.name));
  });
  return svg;
}

function num(x, inf) { return x === null || x === undefined ? inf : x.toPrecision(3); }

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(2) + "%"; }

function render(rep) {
  const exp = rep.experiment, box = el("section", { "data-testid": "experiment-" + exp.id });
  box.appendChild(el("h2", {}, `${exp.id}: page ${exp.page}, ${exp.primary_metric} (${rep.running ? "running" : "stopped"})`));
  const t = el("table");
  const head = el("tr");
  ["variant", "scenario", "visitors", "impressions", "CTR", "cart rate", "conversion", "revenue / impr.", "empty", "errors", "p99 ms"]
    .forEach((h) => head.appendChild(el("th", {}, h)));
  t.appendChild(head);
  for (const v of rep.variants) {
    const tr = el("tr", v.guardrail_breaches && v.guardrail_breaches.length ? { class: "breach" } : {});
    const scen = v.weights ? `${v.scenario} (${Object.entries(v.weights).map(([k, w]) => k + " = " + w).join(", ")})` : v.scenario;
    [v.name, scen, v.visitors, v.impressions, pct(v.ctr), pct(v.cart_rate), pct(v.conversion),
      v.revenue_per_impression.toFixed(3), pct(v.empty_answers), pct(v.error_rate || 0), v.latency_p99_ms === null ? "–" : v.latency_p99_ms.toFixed(1)]
      .forEach((c) => tr.appendChild(el("td", {}, String(c))));
    t.appendChild(tr);
  }
  box.appendChild(t);
  for (const s of rep.tests) {
    const line = s.decision === "waiting" ? `${s.variant} vs ${s.against}: waiting (${s.why})`
      : `${s.variant} vs ${s.against}: ${s.difference >= 0 ? "+" : ""}${s.difference.toPrecision(3)} `
        + `(${s.relative === null ? "" : (100 * s.relative).toFixed(1) + "%"}), interval [${num(s.low, "−∞")}, `
        + `${num(s.high, "∞")}], p = ${s.p_value.toFixed(4)}: ${s.decision}`;
    box.appendChild(el("p", { "data-testid": "test-" + s.variant }, line));
  }
  for (const v of rep.variants) for (const b of v.guardrail_breaches || []) box.appendChild(el("p", { class: "breach" }, `${v.name}: ${b}`));
  const names = rep.variants.map((v) => v.name), plots = el("div", { class: "plots" });
  plots.appendChild(plot(`${exp.primary_metric} per variant`, names.map((n, i) => ({
    name: n, colour: COLOURS[i % COLOURS.length],
    points: rep.looks.filter((lk) => lk.metric[n] !== null).map((lk) => [lk.day, lk.metric[n]]) }))));
  plots.appendChild(plot("difference vs control (always-valid interval)", names.slice(1).map((n, i) => {
    const looks = rep.looks.filter((lk) => lk.tests[n] && lk.tests[n].low !== null);
    return { name: n, colour: COLOURS[(i + 1) % COLOURS.length], points: looks.map((lk) => [lk.day, lk.tests[n].difference]),
      band: looks.map((lk) => [lk.day, lk.tests[n].low, lk.tests[n].high]) };
  })));
  box.appendChild(plots);
  return box;
}

async function show() {
  const out = $("experiments");
  out.textContent = "";
  $("status").textContent = "loading…";
  try {
    const { experiments } = await api("/v1/experiments");
    $("status").textContent = experiments.length ? `${experiments.length} experiment(s)` : "no experiments yet";
    for (const e of experiments.slice().reverse()) out.appendChild(render(await api(`/v1/experiments/${encodeURIComponent(e.id)}`)));
  } catch (err) {
    $("status").textContent = "cannot load the experiments: " + err.message;
  }
}

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("shoprecKey", $("api-key").value);
  show();
});
if (sessionStorage.getItem("shoprecKey")) show();
