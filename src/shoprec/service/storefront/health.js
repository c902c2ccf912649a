// The marketplace-health view of a running shoprec: the items whose current price is abnormal
// (GET /v1/health/prices), the visits the live guard recognised as bots (GET /v1/health/bots), consumer
// protection (GET /v1/health/protection) and how exposure is shared among sellers (GET /v1/health/exposure).
// The API key stays in this page's session storage.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path) {
  const r = await fetch(path, { headers: { "X-API-Key": sessionStorage.getItem("shoprecKey") || "" } });
  const body = await r.json();
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}

function table(head, rows) {
  const t = document.createElement("table");
  const tr = document.createElement("tr");
  for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
  t.appendChild(tr);
  for (const r of rows) {
    const row = document.createElement("tr");
    for (const c of r) { const td = document.createElement("td"); td.textContent = String(c); row.appendChild(td); }
    t.appendChild(row);
  }
  return t;
}

function note(box, text) { const p = document.createElement("p"); p.className = "muted"; p.textContent = text; box.appendChild(p); }

async function show() {
  const prices = $("prices"), bots = $("bots");
  prices.textContent = ""; bots.textContent = "";
  $("status").textContent = "loading…";
  try {
    const p = await api("/v1/health/prices");
    note(prices, `${p.flags.length} flagged item(s), scenario ${p.scenario}`);
    if (p.flags.length) prices.appendChild(table(["item", "kind", "price", "usual", "reason"],
      p.flags.map((f) => [f.item_id, f.kind, f.price.toFixed(2), f.usual === null ? "–" : f.usual.toFixed(2), f.reason])));
  } catch (err) { note(prices, "no price flags: " + err.message); }
  try {
    const b = await api("/v1/health/bots");
    note(bots, `${b.counts.visits_flagged} visit(s) flagged, ${b.counts.events_held} of ${b.counts.events_seen} events held back`);
    if (b.flagged.length) bots.appendChild(table(["visit", "kind", "events", "views", "carts", "held"],
      b.flagged.map((v) => [v.visit, v.kind, v.events, v.views, v.carts, v.events_held])));
  } catch (err) { note(bots, "no bot guard: " + err.message); }
  const prot = $("protection");
  prot.textContent = "";
  try {
    const c = await api("/v1/health/protection");
    note(prot, `${c.flags.length} flagged item(s), scenario ${c.scenario}`);
    if (c.flags.length) prot.appendChild(table(["item", "flags", "returned", "1–2 stars", "late", "reason"],
      c.flags.slice(0, 200).map((f) => [f.item_id, f.kinds.join(", "), pct(f.return_rate), pct(f.poor_review_rate),
        pct(f.late_rate), f.reason])));
  } catch (err) { note(prot, "no consumer protection: " + err.message); }
  const exp = $("exposure");
  exp.textContent = "";
  try {
    const e = await api("/v1/health/exposure");
    const pages = Object.entries(e.scenarios);
    if (!e.group_by) note(exp, "the catalogue has no seller, brand or category to group by");
    else if (!pages.length) note(exp, `grouped by ${e.group_by} (${e.groups} groups); no answers served yet`);
    else {
      note(exp, `grouped by ${e.group_by} (${e.groups} groups), from the answers served (position-weighted)`);
      exp.appendChild(table(["page", "answers", "Gini", "groups shown", "small groups' share", "largest groups"],
        pages.map(([s, r]) => [s, r.answers, r.gini.toFixed(3), r.groups_shown, pct(r.small_groups_share),
          r.top.map((t) => `${t.group} ${pct(t.share)}`).join(", ")])));
    }
  } catch (err) { note(exp, "no exposure audit: " + err.message); }
  $("status").textContent = "";
}

function pct(x) { return (100 * x).toFixed(0) + " %"; }

$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("shoprecKey", $("api-key").value);
  show();
});
if (sessionStorage.getItem("shoprecKey")) show();
