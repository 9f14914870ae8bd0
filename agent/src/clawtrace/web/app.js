// ClawTrace local page: reads the JSON API of `clawtrace serve` on this machine and nothing else.
// Data from logs (project paths, model names) is always inserted with textContent, never as HTML.
"use strict";

const state = {
  range: "7d", by: "day", chart: null, lastSeen: null, loading: false, again: false, filters: {},
  // What the header shows: the last health answer, and the turns of the range on screen.
  health: null, rangeTurns: null, error: null,
};

// How the header and the panels name a range.
const RANGE_LABELS = { "1d": "today", "7d": "in the last 7 days", "30d": "in the last 30 days", "90d": "in the last 90 days", all: "in all" };
const rangeLabel = (r) => RANGE_LABELS[r] || `in ${r}`;
const UNITS = { hour: "hours", day: "days", week: "weeks", month: "months" };

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

// Chart labels: the hour, the day (with its year when the points cross one), the week's
// Monday, the month.
function pointLabels(c) {
  const ts = c.points.map((p) => p.t);
  if (c.by === "hour") return ts.map((t) => t.slice(11, 16));
  if (c.by === "month") return ts;
  const years = new Set(ts.map((t) => t.slice(0, 4)));
  return years.size > 1 ? ts : ts.map((t) => t.slice(5));
}

async function loadCosts() {
  const c = await api("/api/costs" + query({ range: state.range, by: state.by }));
  const labels = pointLabels(c);
  const data = c.points.map((p) => p.cost_usd);
  const unit = c.points.length === 1 ? UNITS[c.by].slice(0, -1) : UNITS[c.by];
  let total = `${fmtMoney(c.totals.cost_usd)} over ${c.points.length} ${unit} · ${fmtInt(c.totals.turns)} turns${unpricedNote(c.totals)}`;
  if (c.by !== "hour" && c.by !== "day") total += ` · each bar is a ${c.by}`;
  const stored = state.health ? state.health.turns : 0;
  if (!c.totals.turns && stored && c.range !== "all") total += " · older turns are under All";
  setText("costs-total", total);
  state.rangeTurns = { range: c.range, turns: c.totals.turns };
  renderStatus();
  const canvas = document.getElementById("cost-chart");
  canvas.dataset.points = String(c.points.length);
  canvas.dataset.range = c.range;
  canvas.dataset.by = c.by;
  if (!window.Chart) return;
  if (state.chart) {
    state.chart.data.labels = labels;
    state.chart.data.datasets[0].data = data;
    state.chart.update();
    return;
  }
  // Colours from app.css, so that axis labels and grid lines read in the dark scheme too
  // (Chart.js' default grey is faint on a dark panel).
  const css = getComputedStyle(document.documentElement);
  const cssVar = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  Chart.defaults.color = cssVar("--muted", "#6b7385");
  Chart.defaults.borderColor = cssVar("--line", "#e3e6ec");
  state.chart = new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ label: "Cost (USD)", data, backgroundColor: cssVar("--accent", "#c2410c"), borderRadius: 3 }] },
    options: {
      maintainAspectRatio: false,
      animation: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (ctx) => fmtMoney(ctx.parsed.y) } } },
      scales: {
        y: { beginAtZero: true, ticks: { callback: (v) => "$" + v } },
        // Level labels, thinned out by Chart.js: rotated ones were cut at the canvas' left edge.
        x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
      },
    },
  });
}

// A breakdown table: the name with its bar under it, then the cost. The columns have fixed
// widths (app.css), so a long name is cut with an ellipsis inside its card; its cell's title
// holds it whole.
function fillRows(tableId, rows, nameOf, fullName, detailOf, filterKey) {
  const table = document.getElementById(tableId);
  table.replaceChildren(el("colgroup", {}, el("col", { class: "c-name" }), el("col", { class: "c-cost" })));
  if (!rows.length) {
    table.append(el("tr", {}, el("td", { class: "empty", colspan: "2" }, "nothing in this range")));
    return;
  }
  const max = Math.max(...rows.map((r) => r.cost_usd), 1e-9);
  for (const r of rows.slice(0, 8)) {
    const bar = el("div", { class: "bar" }, el("span", {}));
    bar.firstChild.style.width = `${Math.max(2, (100 * r.cost_usd) / max)}%`;
    const detail = detailOf(r) + (filterKey ? " · click to filter" : "");
    const row = el("tr", filterKey ? { class: "pick", title: detail } : { title: detail },
        el("td", { class: "name", title: String(fullName(r)) }, el("span", { class: "label" }, nameOf(r)), bar),
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
  const turns = (r) => `${fmtInt(r.turns)} turns`;
  fillRows("by-model", models.rows, (r) => r.model, (r) => r.model, turns, "model");
  fillRows("by-project", projects.rows, (r) => shortPath(r.project), (r) => r.project, turns, "project");
  fillRows("by-agent", agents.rows, (r) => r.agent, (r) => r.agent, turns, "agent");
  fillRows("by-tool", tools.rows, (r) => r.tool, (r) => r.tool, (r) => `${fmtInt(r.calls)} calls`);
}

async function loadSessions() {
  const s = await api("/api/sessions" + query({ n: 8, range: state.range }));
  setText("sessions-range", s.range === "all" ? "of all time" : rangeLabel(s.range));
  const body = document.querySelector("#sessions tbody");
  body.replaceChildren();
  if (!s.rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: "7" }, "no sessions in this range")));
  // data-label names each cell where the table becomes a stack of cards (narrow screens).
  const cell = (label, attrs, text) => el("td", { ...attrs, "data-label": label }, text);
  for (const r of s.rows) {
    const models = r.models.join(", ");
    body.append(
      el("tr", {},
        cell("Session", { class: "mono", title: r.session }, r.session.slice(0, 12)),
        cell("Project", { title: r.project }, shortPath(r.project)),
        cell("Agent", { title: r.agent }, r.agent),
        cell("Models", { title: models }, models),
        cell("Last turn", {}, fmtWhen(r.ended_at)),
        cell("Turns", { class: "num" }, fmtInt(r.turns)),
        cell("Cost", { class: "num" }, fmtMoney(r.cost_usd))
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
      el("span", { class: "what" }, `Session ${s.session_id.slice(0, 12)} (${shortPath(s.project)}): ${s.detail}`),
      el("span", { class: "when" }, fmtWhen(s.detected_at))));
  }
  for (const h of a.hours.slice(0, 10)) {
    list.append(el("li", {}, el("span", { class: "tag" }, "unusual hour"),
      el("span", { class: "what" }, `${fmtMoney(h.cost_usd)} spent; ` +
        (h.expected_usd > 0.005 ? `you usually spend about ${fmtMoney(h.expected_usd)} at this hour` : "you usually spend nothing at this hour")),
      el("span", { class: "when" }, h.hour.replace("T", " "))));
  }
  if (!list.children.length) {
    list.append(el("li", { class: "empty" }, a.baseline.ready ? "nothing unusual" : "learning your usual spend (needs two weeks of history)"));
  }
  const alerts = document.getElementById("alerts");
  alerts.replaceChildren();
  for (const item of al.items) {
    alerts.append(el("li", { title: item.message }, el("span", { class: `tag ${item.severity}` }, item.rule.replace(/_/g, " ")),
      el("span", { class: "what" }, item.title), el("span", { class: "when" }, fmtWhen(item.fired_at))));
  }
  if (!al.items.length) {
    const r = al.rules;
    alerts.append(el("li", { class: "empty" },
      `none fired · watching: ${fmtMoney(r.daily_budget_usd)}/day, ${fmtMoney(r.session_spike_usd)}/session, ${fmtMoney(r.hourly_burn_usd)}/hour`));
  }
}

// One refresh at a time; a refresh asked for meanwhile (a range chosen, a filter set or removed,
// new data) runs again when it ends, so the panels always end on the latest range and filters.
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
    state.error = null;
    document.body.dataset.loaded = "true";
  } catch (err) {
    // Kept in the header (the health poll redraws it each second) until a refresh succeeds.
    state.error = err.message;
    renderStatus();
  } finally {
    state.loading = false;
  }
}

// Linked to a server (clawtrace login): where serve syncs to, and whether it is behind. Nothing
// when the machine is not linked: sync is opt-in and the page does not nag.
function syncLabel(s) {
  if (!s || !s.linked) return "";
  if (s.enabled === false) return " · sync off (sync.auto = false)";
  let host = s.server || "the server";
  try {
    host = new URL(s.server).host;
  } catch (_) {}
  const waiting = s.pending ? `, ${fmtInt(s.pending)} waiting` : "";
  if (s.last_error) return ` · sync to ${host} failing: ${s.last_error}${waiting}`;
  if (s.syncing) return ` · syncing to ${host}…`;
  if (s.last_sync_at) return ` · synced to ${host} ${fmtWhen(s.last_sync_at)}${waiting}`;
  return ` · sync to ${host} starting`;
}

// The header: turns in the range on screen (under the filters, as the panels count them) out of
// all the stored ones, then the watcher's state. A store whose turns are all older than the
// range says "0 of 9 turns in the last 7 days", not "9 turns" above empty panels.
function renderStatus() {
  const h = state.health;
  if (!h) {
    if (state.error) setText("status-text", "error: " + state.error);
    return;
  }
  const mode = h.scanning ? "importing logs…" : h.watching ? "live" : "not watching";
  let problem = "";
  if (state.error) problem = ` · error: ${state.error}`;
  else if (h.scan_error) problem = ` · scan error: ${h.scan_error}`;
  else if (h.scan_stalled_seconds)
    problem = ` · the scan has made no progress for ${fmtInt(h.scan_stalled_seconds)} s (a log directory that does not answer?)`;
  else if (h.last_scan_unfinished) problem = " · the last scan stopped before its end: figures may lag until the next one";
  let turns = `${fmtInt(h.turns)} turns`;
  const inRange = state.rangeTurns;
  if (inRange) {
    const shown = inRange.turns === h.turns ? turns : `${fmtInt(inRange.turns)} of ${turns}`;
    turns = `${shown} ${rangeLabel(inRange.range)}`;
  }
  const sync = syncLabel(h.sync);
  setText("status-text", `${turns} · ${mode} · last scan ${fmtWhen(h.last_scan_at)}${problem}${sync}`);
  const syncFailing = Boolean(h.sync && h.sync.linked && h.sync.last_error);
  document.getElementById("status-dot").className =
    state.error || h.scan_error || h.scan_stalled_seconds
      ? "dot bad"
      : h.last_scan_unfinished || syncFailing
        ? "dot warn"
        : "dot ok";
}

// A cheap health poll every second; the page reloads its data as soon as the store changes,
// so a new turn shows up within about a second of `clawtrace serve` ingesting it.
async function poll() {
  try {
    const h = await api("/api/health");
    const seen = `${h.turns}|${h.last_scan_at}`;
    state.health = h;
    renderStatus();
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
    // Through refreshAll, so that answers for a range clicked away from cannot land last; it
    // sets data-loaded back to "true" once every panel shows the new range.
    document.body.dataset.loaded = "false";
    await refreshAll();
  });
});

poll();
setInterval(poll, 1000);
setInterval(refreshAll, 60000);
