/*
 * The team dashboard's charts (Chart.js, vendored in static/vendor/chartjs) and the filter
 * bar's custom dates. Everything a chart shows is also in a table on the page, so the page
 * reads the same without JavaScript; this file only draws.
 */
(function () {
  "use strict";

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function money(value) {
    var amount = Number(value) || 0;
    if (amount > 0 && amount < 0.005) return "<$0.01";
    return "$" + amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function shortMoney(value) {
    var amount = Number(value) || 0;
    if (amount >= 1000) return "$" + (amount / 1000).toFixed(amount >= 10000 ? 0 : 1) + "k";
    if (amount >= 10 || amount === 0) return "$" + amount.toFixed(0);
    return "$" + amount.toFixed(2);
  }

  // Keys as the series selector writes them: 2026-03-01 (a day, or the Monday of a week),
  // 2026-03-01T14:00 (an hour, local to the organization), or an ISO time (a session's turns).
  function keyLabel(key, unit) {
    var match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(String(key));
    if (!match) return String(key);
    var day = Number(match[3]) + " " + MONTHS[Number(match[2]) - 1];
    if (unit === "hour") return match[4] === "00" ? day : match[4] + ":00";
    if (unit === "turn") return match[4] + ":" + match[5];
    return day;
  }

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function baseOptions(unit, labels) {
    var text = cssVar("--muted", "#5a6372");
    var grid = cssVar("--border", "#dde2e8");
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion() ? false : { duration: 250 },
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: function (items) {
              return items.length ? String(labels[items[0].dataIndex]).replace("T", " ") : "";
            },
          },
        },
      },
      scales: {
        x: {
          ticks: {
            color: text,
            autoSkip: true,
            maxRotation: 0,
            callback: function (value) { return keyLabel(labels[value], unit); },
          },
          grid: { display: false },
        },
        y: {
          beginAtZero: true,
          ticks: { color: text, callback: shortMoney, maxTicksLimit: 6 },
          grid: { color: grid },
        },
      },
    };
  }

  function seriesChart(canvas, data) {
    var unit = canvas.getAttribute("data-unit") || "day";
    var options = baseOptions(unit, data.labels);
    options.plugins.tooltip.callbacks.label = function (item) {
      var turns = data.turns[item.dataIndex];
      return money(item.raw) + " · " + turns.toLocaleString("en-US") + (turns === 1 ? " turn" : " turns");
    };
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Cost",
          data: data.cost,
          backgroundColor: cssVar("--primary", "#0e7c66"),
          borderRadius: 3,
          maxBarThickness: 42,
        }],
      },
      options: options,
    });
  }

  function sessionChart(canvas, data) {
    var running = [];
    var total = 0;
    data.cost.forEach(function (cost) { total += Number(cost) || 0; running.push(total); });
    var options = baseOptions("turn", data.labels);
    options.scales.total = {
      position: "right",
      beginAtZero: true,
      ticks: { color: cssVar("--muted", "#5a6372"), callback: shortMoney, maxTicksLimit: 6 },
      grid: { display: false },
    };
    options.plugins.legend = { display: true, labels: { color: cssVar("--text", "#15181e"), boxWidth: 12 } };
    options.plugins.tooltip.callbacks.label = function (item) {
      return item.dataset.label + ": " + money(item.raw);
    };
    return new window.Chart(canvas, {
      data: {
        labels: data.labels,
        datasets: [
          { type: "bar", label: "Turn cost", data: data.cost, backgroundColor: cssVar("--primary", "#0e7c66"), maxBarThickness: 24 },
          { type: "line", label: "Running total", data: running, yAxisID: "total", borderColor: cssVar("--accent", "#e8590c"), backgroundColor: cssVar("--accent", "#e8590c"), pointRadius: 0, borderWidth: 2, tension: 0.2 },
        ],
      },
      options: options,
    });
  }

  function drawCharts() {
    if (!window.Chart) return;
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-chart-source"));
      if (!source) return;
      var data = JSON.parse(source.textContent);
      var kind = canvas.getAttribute("data-chart");
      var chart = kind === "session" ? sessionChart(canvas, data) : seriesChart(canvas, data);
      canvas.setAttribute("data-chart-ready", "true");
      canvas.chart = chart;
    });
  }

  function customDates() {
    var form = document.querySelector("[data-filter-form]");
    if (!form) return;
    var select = form.querySelector("[data-range-select]");
    var dates = form.querySelectorAll("[data-custom-date]");
    dates.forEach(function (input) {
      input.addEventListener("change", function () { if (input.value) select.value = "custom"; });
    });
    select.addEventListener("change", function () {
      if (select.value !== "custom") dates.forEach(function (input) { input.value = ""; });
    });
  }

  function start() {
    customDates();
    drawCharts();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
