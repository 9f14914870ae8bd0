// ClawTrace local page: reads the JSON API of `clawtrace serve` on this machine and nothing else.
// Data from logs (project paths, model names) is always inserted with textContent, never as HTML.
"use strict";

const state = { range: "7d", by: "day", chart: null, lastSeen: null, loading: false, again: false, filters: {} };

// Query string of the active filters (project, model, agent), plus extra parameters.
function query(extra) {
  const params = new URLSearchParams(extra || {});
  for (const [k, v] of Object.entries(state.filters)) params.set(k, v);
  const text = params.toString();
  return text ? "?" + text : "";
}

function renderFilters() {
  const bar = document.getElementById("filters");
  bar.replaceChildren();
  const entries = Object.entries(state.filters);
  bar.hidden = entries.length === 0;
  for (const [k, v] of entries) {
    const chip = el("button", { type: "button", class: "chip", title: "remove this filter" }, `${k}: ${k === "project" ? shortPath(v) : v} ×`);
    chip.addEventListener("click", () => setFilter(k, null));
    bar.append(chip);
  }
}

function setFilter(key, value) {
  if (value === null || state.filters[key] === value) delete state.filters[key];
  else state.filters[key] = value;
  renderFilters();
  refreshAll();
}

const fmtMoney = (v) => {
  const n = Number(v || 0);
  const digits = n !== 0 && Math.abs(n) < 1 ? 3 : 2;
  return "$" + n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
};
const fmtInt = (v) => Number(v || 0).toLocaleString("en-US");
const fmtTokens = (v) => {
  const n = Number(v || 0);
  if (n >= 1e9) return (n / 1e9).toFixed(2) + "B";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(n);
};
const fmtWhen = (iso) => {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
};
const shortPath = (p) => {
  if (!p) return "–";
  const parts = String(p).split("/").filter(Boolean);
  return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : String(p);
};
const totalTokens = (t) =>
  (t.input_tokens || 0) + (t.output_tokens || 0) + (t.cache_read_tokens || 0) + (t.cache_write_tokens || 0);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "title") node.title = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function unpricedNote(t) {
  return t.unpriced_tokens ? ` · ${fmtTokens(t.unpriced_tokens)} tokens unpriced` : "";
}

async function loadSummary() {
  const s = await api("/api/summary" + query());
  setText("today-cost", fmtMoney(s.today.cost_usd));
  setText("today-sub", `${fmtInt(s.today.turns)} turns · ${fmtTokens(totalTokens(s.today))} tokens · ${s.today.sessions} sessions${unpricedNote(s.today)}`);
  setText("month-cost", fmtMoney(s.month.cost_usd));
  setText("month-sub", `${fmtInt(s.month.turns)} turns · ${fmtTokens(totalTokens(s.month))} tokens · ${s.month.sessions} sessions${unpricedNote(s.month)}`);
  setText("footer-tz", `Days are ${s.timezone} days.`);
}

async function loadForecast() {
  const f = await api("/api/forecast" + query());
  setText("forecast-expected", fmtMoney(f.expected_usd));
  let sub = `likely ${fmtMoney(f.low_usd)} – ${fmtMoney(f.high_usd)} by month end`;
  if (f.budget_usd) sub += ` · budget ${fmtMoney(f.budget_usd)}`;
  setText("forecast-range", sub);
}

async function loadBlock() {
  const b = await api("/api/blocks" + query());
  const cur = b.current;
  if (!cur) {
    setText("block-cost", fmtMoney(0));
    setText("block-sub", "no active block");
    return;
  }
  setText("block-cost", fmtMoney(cur.cost_usd));
  setText(
    "block-sub",
    `${fmtMoney(cur.burn_rate.cost_usd_per_hour)}/h · projected ${fmtMoney(cur.projection.cost_usd)} · ` +
      `${Math.round(cur.projection.remaining_minutes)} min left`
  );
}

async function loadCosts() {
  const c = await api("/api/costs" + query({ range: state.range, by: state.by }));
  const labels = c.points.map((p) => (c.by === "hour" ? p.t.slice(11, 16) : p.t.slice(5)));
  const data = c.points.map((p) => p.cost_usd);
  setText("costs-total", `${fmtMoney(c.totals.cost_usd)} over ${c.points.length} ${c.by === "hour" ? "hours" : "days"} · ${fmtInt(c.totals.turns)} turns${unpricedNote(c.totals)}`);
  const canvas = document.getElementById("cost-chart");
  canvas.dataset.points = String(c.points.length);
  canvas.dataset.range = c.range;
  if (!window.Chart) return;
  if (state.chart) {
    state.chart.data.labels = labels;
    state.chart.data.datasets[0].data = data;
    state.chart.update();
    return;
  }
  state.chart = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label: "Cost (USD)", data, backgroundColor: "#d9480f", borderRadius: 3 }] },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => fmtMoney(ctx.parsed.y) } } },
      scales: { y: { beginAtZero: true, ticks: { callback: (v) => "$" + v } }, x: { grid: { display: false } } },
    },
  });
}

function fillRows(tableId, rows, nameOf, titleOf, filterKey) {
  const table = document.getElementById(tableId);
  table.replaceChildren();
  if (!rows.length) {
    table.append(el("tr", {}, el("td", { class: "empty" }, "nothing in this range")));
    return;
  }
  const max = Math.max(...rows.map((r) => r.cost_usd), 1e-9);
  for (const r of rows.slice(0, 8)) {
    const bar = el("div", { class: "bar" }, el("span", {}));
    bar.firstChild.style.width = `${Math.max(2, (100 * r.cost_usd) / max)}%`;
    const row = el("tr", filterKey ? { class: "pick" } : {},
        el("td", { class: "name", title: titleOf(r) }, nameOf(r)),
        el("td", {}, bar),
        el("td", { class: "num" }, fmtMoney(r.cost_usd))
    );
    if (filterKey) row.addEventListener("click", () => setFilter(filterKey, r[filterKey]));
    table.append(row);
  }
}

async function loadBreakdowns() {
  const q = query({ range: state.range });
  const [models, projects, agents, tools] = await Promise.all([
    api("/api/models" + q), api("/api/projects" + q), api("/api/agents" + q), api("/api/tools" + q),
  ]);
  fillRows("by-model", models.rows, (r) => r.model, (r) => `${r.model}: ${fmtInt(r.turns)} turns (click to filter)`, "model");
  fillRows("by-project", projects.rows, (r) => shortPath(r.project), (r) => `${r.project} (click to filter)`, "project");
  fillRows("by-agent", agents.rows, (r) => r.agent, (r) => `${r.agent}: ${fmtInt(r.turns)} turns (click to filter)`, "agent");
  fillRows("by-tool", tools.rows, (r) => r.tool, (r) => `${r.tool}: ${fmtInt(r.calls)} calls`);
}

async function loadSessions() {
  const s = await api("/api/sessions" + query({ n: 8, range: state.range }));
  setText("sessions-range", `(${s.range})`);
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren();
  if (!s.rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: "7" }, "no sessions in this range")));
  for (const r of s.rows) {
    body.append(
      el("tr", {},
        el("td", { class: "mono", title: r.session }, r.session.slice(0, 12)),
        el("td", { title: r.project }, shortPath(r.project)),
        el("td", {}, r.agent),
        el("td", {}, r.models.join(", ")),
        el("td", {}, fmtWhen(r.ended_at)),
        el("td", { class: "num" }, fmtInt(r.turns)),
        el("td", { class: "num" }, fmtMoney(r.cost_usd))
      )
    );
  }
}

async function loadEvents() {
  const [a, al] = await Promise.all([api("/api/anomalies" + query({ range: "7d" })), api("/api/alerts?n=20")]);
  const list = document.getElementById("anomalies");
  list.replaceChildren();
  for (const s of a.sessions) {
    list.append(el("li", {}, el("span", { class: "tag critical" }, s.kind === "repeat" ? "loop" : "runaway"),
      `Session ${s.session_id.slice(0, 12)} (${shortPath(s.project)}): ${s.detail}`,
      el("span", { class: "when" }, fmtWhen(s.detected_at))));
  }
  for (const h of a.hours.slice(0, 10)) {
    list.append(el("li", {}, el("span", { class: "tag" }, "unusual hour"),
      `${fmtMoney(h.cost_usd)} spent; ` +
        (h.expected_usd > 0.005 ? `you usually spend about ${fmtMoney(h.expected_usd)} at this hour` : "you usually spend nothing at this hour"),
      el("span", { class: "when" }, h.hour.replace("T", " "))));
  }
  if (!list.children.length) {
    list.append(el("li", { class: "empty" }, a.baseline.ready ? "nothing unusual" : "learning your usual spend (needs two weeks of history)"));
  }
  const alerts = document.getElementById("alerts");
  alerts.replaceChildren();
  for (const item of al.items) {
    alerts.append(el("li", { title: item.message }, el("span", { class: `tag ${item.severity}` }, item.rule.replace(/_/g, " ")),
      item.title, el("span", { class: "when" }, fmtWhen(item.fired_at))));
  }
  if (!al.items.length) {
    const r = al.rules;
    alerts.append(el("li", { class: "empty" },
      `none fired · watching: ${fmtMoney(r.daily_budget_usd)}/day, ${fmtMoney(r.session_spike_usd)}/session, ${fmtMoney(r.hourly_burn_usd)}/hour`));
  }
}

// One refresh at a time; a refresh asked for meanwhile (a filter set or removed, new data) runs
// again when it ends, so the panels always end on the latest filters.
async function refreshAll() {
  if (state.loading) {
    state.again = true;
    return;
  }
  state.loading = true;
  try {
    do {
      state.again = false;
      await Promise.all([loadSummary(), loadForecast(), loadBlock(), loadCosts(), loadBreakdowns(), loadSessions(), loadEvents()]);
    } while (state.again);
    document.body.dataset.loaded = "true";
  } catch (err) {
    setText("status-text", "error: " + err.message);
    document.getElementById("status-dot").className = "dot bad";
  } finally {
    state.loading = false;
  }
}

// A cheap health poll every second; the page reloads its data as soon as the store changes,
// so a new turn shows up within about a second of `clawtrace serve` ingesting it.
async function poll() {
  try {
    const h = await api("/api/health");
    const seen = `${h.turns}|${h.last_scan_at}`;
    const mode = h.scanning ? "importing logs…" : h.watching ? "live" : "not watching";
    const problem = h.scan_error
      ? ` · scan error: ${h.scan_error}`
      : h.scan_stalled_seconds
        ? ` · the scan has made no progress for ${fmtInt(h.scan_stalled_seconds)} s (a log directory that does not answer?)`
        : h.last_scan_unfinished
          ? " · the last scan stopped before its end: figures may lag until the next one"
          : "";
    setText("status-text", `${fmtInt(h.turns)} turns · ${mode} · last scan ${fmtWhen(h.last_scan_at)}${problem}`);
    document.getElementById("status-dot").className =
      h.scan_error || h.scan_stalled_seconds ? "dot bad" : h.last_scan_unfinished ? "dot warn" : "dot ok";
    if (seen !== state.lastSeen) {
      state.lastSeen = seen;
      await refreshAll();
    }
  } catch (err) {
    document.getElementById("status-dot").className = "dot bad";
    setText("status-text", "cannot reach clawtrace serve");
  }
}

document.querySelectorAll("[data-range]").forEach((button) => {
  button.addEventListener("click", async () => {
    document.querySelectorAll("[data-range]").forEach((b) => b.classList.remove("active"));
    button.classList.add("active");
    state.range = button.dataset.range;
    state.by = button.dataset.by;
    await Promise.all([loadCosts(), loadBreakdowns(), loadSessions()]);
  });
});

poll();
setInterval(poll, 1000);
setInterval(refreshAll, 60000);
