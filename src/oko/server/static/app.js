// oko central server dashboard: local times, live node table, counters, chart, live feed.
// No framework and no inline script (the CSP forbids it). Text from the server goes into
// the page with textContent, or as HTML fragments that the server rendered and escaped.
"use strict";

const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const COLORS = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#0a7ea4", "#bc4c00", "#57606a"];

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) { window.location = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

async function getHTML(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.text();
}

function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString();
  }
}

function every(ms, fn) {
  const run = () => fn().catch((e) => console.warn(e)).finally(() => setTimeout(run, ms));
  run();
}

// ------------------------------------------------------------------ overview
function localMidnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.getTime() / 1000;
}

function seriesName(c) {
  return `${c.node} / ${c.channel_id} / ${c.name}`;
}

async function refreshCounters() {
  const box = document.getElementById("counters");
  const data = await getJSON(`/api/v1/counts/totals?since=${localMidnight()}`);
  const groups = new Map();
  for (const t of data.totals) {
    const key = `${t.kind}\u0000${t.node}\u0000${t.channel_id}\u0000${t.name}`;
    if (!groups.has(key)) groups.set(key, { ...t, values: {} });
    groups.get(key).values[t.direction] = t.n;
  }
  box.replaceChildren();
  if (groups.size === 0) {
    box.append(el("p", { class: "muted" }, "No line crossings or zone events today."));
    return;
  }
  for (const g of groups.values()) {
    const card = el("div", { class: "counter", "data-counter": `${g.node}/${g.channel_id}/${g.name}` });
    card.append(el("div", { class: "what" }, `${g.kind} · ${g.node} / ${g.channel_id}`));
    card.append(el("div", { class: "name" }, g.name));
    const vals = el("div", { class: "vals" });
    const dirs = g.kind === "line" ? ["in", "out"] : ["enter", "exit"];
    for (const d of dirs) {
      const v = el("div", { class: "val", "data-direction": d });
      v.append(el("b", {}, String(g.values[d] || 0)), el("small", {}, d));
      vals.append(v);
    }
    card.append(vals);
    box.append(card);
  }
}

async function refreshChart() {
  const box = document.getElementById("chart");
  const now = Date.now() / 1000;
  const end = Math.floor(now / 3600) * 3600;
  const start = end - 23 * 3600;
  const data = await getJSON(`/api/v1/counts?since=${start}&until=${now}`);
  const series = new Map();
  for (const c of data.counts) {
    const key = `${seriesName(c)} ${c.direction}`;
    if (!series.has(key)) series.set(key, new Array(24).fill(0));
    const i = Math.round((c.time - start) / 3600);
    if (i >= 0 && i < 24) series.get(key)[i] += c.n;
  }
  box.replaceChildren();
  if (series.size === 0) {
    box.append(el("p", { class: "muted" }, "No counts in the last 24 hours."));
    return;
  }
  const top = [...series.entries()].sort((a, b) => b[1].reduce((s, v) => s + v, 0) - a[1].reduce((s, v) => s + v, 0)).slice(0, COLORS.length);
  const W = 1000, H = 280, L = 46, R = 12, T = 12, B = 30;
  const max = Math.max(1, ...top.flatMap(([, v]) => v));
  const x = (i) => L + (i * (W - L - R)) / 23;
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "counts per hour" });
  for (const f of [0, 0.5, 1]) {
    const v = Math.round(max * f);
    root.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#dde3ea" }));
    root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7785" }, String(v)));
  }
  for (let i = 0; i < 24; i += 3) {
    const label = new Date((start + i * 3600) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    root.append(svg("text", { x: x(i), y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#6b7785" }, label));
  }
  const legend = el("div", { class: "legend" });
  top.forEach(([name, values], k) => {
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points, fill: "none", stroke: COLORS[k], "stroke-width": 2, "data-series": name }));
    values.forEach((v, i) => { if (v) root.append(svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: COLORS[k] })); });
    const item = el("span");
    item.append(el("i"), document.createTextNode(name));
    item.firstChild.style.background = COLORS[k];
    legend.append(item);
  });
  box.append(root, legend);
}

function overview() {
  const nodes = document.getElementById("nodes");
  every(5000, async () => {
    nodes.innerHTML = await getHTML(nodes.dataset.refresh);
  });
  every(3000, refreshCounters);
  every(30000, refreshChart);
}

// ------------------------------------------------------------------ events
function liveFeed() {
  const body = document.getElementById("event-rows");
  if (!body || !body.dataset.live) return;
  let since = parseFloat(body.dataset.since) - 10;
  every(2000, async () => {
    const sep = body.dataset.live.includes("?") ? "&" : "?";
    const html = await getHTML(`${body.dataset.live}${sep}received_since=${since}`);
    const holder = document.createElement("tbody");
    holder.innerHTML = html;
    const rows = [...holder.querySelectorAll("tr[data-key]")].reverse();  // oldest first
    for (const row of rows) {
      since = Math.max(since, parseFloat(row.dataset.received) - 10);
      if (body.querySelector(`tr[data-key="${CSS.escape(row.dataset.key)}"]`)) continue;
      row.classList.add("fresh");
      localTimes(row);
      body.prepend(row);
      const none = document.getElementById("no-events");
      if (none) none.remove();
    }
    while (body.rows.length > 500) body.deleteRow(-1);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  for (const f of document.querySelectorAll(".tz-field")) if (!f.value) f.value = TZ;
  const page = document.body.dataset.page;
  if (page === "overview") overview();
  if (page === "events") liveFeed();
});
