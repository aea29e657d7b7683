// gradeflow ops dashboard: confirmations, actions without leaving the page, live
// regions and the overview's charts. Plain DOM, no library; data is always inserted
// as text, never as markup, except the server-rendered (escaped) fragments.
"use strict";

(function () {
  const REFRESH = Number(document.body.dataset.refresh) || 3000;
  const SVG = "http://www.w3.org/2000/svg";

  // -- talking to the server ---------------------------------------------------------------

  async function call(url, options) {
    const response = await fetch(url, {
      credentials: "same-origin",
      ...options,
      headers: { "X-Requested-With": "gradeflow-dashboard", ...((options || {}).headers || {}) },
    });
    if (response.status === 401) {
      const here = window.location.pathname + window.location.search;
      window.location.assign("/ops/login?next=" + encodeURIComponent(here));
      throw new Error("logged out");
    }
    return response;
  }

  function notify(message, ok) {
    const box = document.getElementById("notice");
    if (!box) return;
    box.textContent = message;
    box.classList.toggle("bad", !ok);
    box.hidden = false;
    clearTimeout(notify.timer);
    notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // -- actions: confirm, post, show the answer, refresh ---------------------------------------

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    event.preventDefault();
    if (!window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await call(form.action, { method: "POST", body: new FormData(form) });
      const answer = await response.json().catch(() => ({ ok: false, message: "unexpected answer " + response.status }));
      notify(answer.message, Boolean(answer.ok));
    } catch (error) {
      notify("The request failed: " + error.message, false);
    } finally {
      if (button) button.disabled = false;
      refreshAll();
    }
  });

  // -- live regions: server-rendered fragments swapped in when they change ---------------------

  async function refreshRegion(region) {
    const response = await call(region.dataset.live);
    if (!response.ok) return;
    const html = await response.text();
    if (html === region.dataset.last) return;
    const open = new Set([...region.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
    const closed = new Set([...region.querySelectorAll("details[data-key]:not([open])")].map((d) => d.dataset.key));
    region.innerHTML = html;
    region.dataset.last = html;
    region.querySelectorAll("details[data-key]").forEach((d) => {
      if (open.has(d.dataset.key)) d.open = true;
      if (closed.has(d.dataset.key)) d.open = false;
    });
  }

  // -- the overview --------------------------------------------------------------------------

  const overview = document.getElementById("overview");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderTotals(totals) {
    const box = document.getElementById("totals");
    box.replaceChildren(
      ...[
        ["Queued", totals.queued, false],
        ["Running", totals.running, false],
        ["Dead", totals.dead, totals.dead > 0],
        ["Oldest queued", duration(totals.oldest_queued_s), false],
        ["Succeeded (1 h)", totals.throughput_1h, false],
        ["Failure rate (1 h)", percent(totals.failure_rate_1h), (totals.failure_rate_1h || 0) > 0.1],
      ].map(([label, value, alert]) => {
        const card = el("div", { class: "kpi" + (alert ? " alert" : ""), "data-kpi": label });
        card.append(el("div", { class: "value" }, String(value)), el("div", { class: "label" }, label));
        return card;
      })
    );
  }

  function renderRows(rows) {
    const body = document.querySelector("#loads tbody");
    if (!rows.length) {
      const row = el("tr");
      row.append(el("td", { colspan: "9", class: "muted" }, "No jobs queued, running, dead or finished in the last hour."));
      body.replaceChildren(row);
      return;
    }
    body.replaceChildren(
      ...rows.map((r) => {
        const tr = el("tr", { "data-queue": r.queue, "data-type": r.job_type });
        const dead = el("td", { class: "num" });
        if (r.dead > 0) {
          const link = el("a", { href: "/ops/jobs?status=dead&job_type=" + encodeURIComponent(r.job_type) }, String(r.dead));
          dead.append(link);
        } else dead.textContent = "0";
        tr.append(
          el("td", {}, r.queue),
          el("td", {}, r.job_type),
          el("td", { class: "num" }, String(r.queued)),
          el("td", { class: "num" }, String(r.running)),
          dead,
          el("td", { class: "num" }, duration(r.oldest_queued_s)),
          el("td", { class: "num" }, String(r.throughput_1h)),
          el("td", { class: "num" }, String(r.failed_1h)),
          el("td", { class: "num" }, percent(r.failure_rate_1h))
        );
        return tr;
      })
    );
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function clock(ms) {
    const d = new Date(ms);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function renderChart(chart, endMs, minutes) {
    const W = 600, H = 180, L = 46, R = 10, T = 10, B = 22;
    const startMs = endMs - minutes * 60000;
    const box = el("div", { class: "chart", "data-chart": chart.key });
    box.append(el("h3", {}, chart.title + " (" + chart.unit + ")"));
    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": chart.title });
    const all = chart.lines.flatMap((line) => line.points.map((p) => p[1]));
    const top = niceMax(Math.max(0, ...all));
    const x = (ms) => L + ((ms - startMs) / (endMs - startMs)) * (W - L - R);
    const y = (v) => H - B - (v / top) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const value = (top * i) / 4;
      plot.append(svg("line", { class: "grid-line", x1: L, x2: W - R, y1: y(value), y2: y(value) }));
      plot.append(svg("text", { x: L - 6, y: y(value) + 3, "text-anchor": "end" }, Number(value.toFixed(2)).toString()));
    }
    for (let i = 0; i <= 4; i++) {
      const ms = startMs + ((endMs - startMs) * i) / 4;
      plot.append(svg("text", { x: x(ms), y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, clock(ms)));
    }
    plot.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    chart.lines.forEach((line, index) => {
      const points = line.points.filter((p) => p[0] >= startMs).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      if (points.length === 1) points.push(points[0].replace(/^[^,]+/, (v) => String(Number(v) + 2)));
      plot.append(svg("polyline", { class: "line swatch-" + (index % 6), points: points.join(" "), "data-queue": line.queue }));
    });
    if (!chart.lines.length) {
      plot.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "No snapshots in this window yet"));
    }
    box.append(plot);
    const legend = el("div", { class: "legend" });
    chart.lines.forEach((line, index) => {
      const item = el("span");
      item.append(el("i", { class: "swatch-" + (index % 6) }), document.createTextNode(line.queue));
      legend.append(item);
    });
    box.append(legend);
    return box;
  }

  function renderOverview(data) {
    renderTotals(data.totals);
    renderRows(data.rows);
    const end = Date.parse(data.generated_at);
    document.getElementById("charts").replaceChildren(...data.charts.map((c) => renderChart(c, end, data.minutes)));
    document.getElementById("generated").textContent = new Date(end).toLocaleTimeString();
  }

  async function refreshOverview() {
    const url = overview.dataset.source + "?minutes=" + encodeURIComponent(overview.dataset.minutes);
    const response = await call(url);
    if (response.ok) renderOverview(await response.json());
  }

  if (overview) {
    renderOverview(JSON.parse(document.getElementById("overview-data").textContent));
    overview.querySelectorAll("button.window").forEach((button) => {
      button.addEventListener("click", () => {
        overview.dataset.minutes = button.dataset.minutes;
        overview.querySelectorAll("button.window").forEach((b) => b.classList.toggle("on", b === button));
        refreshOverview().catch(() => {});
      });
    });
  }

  // -- polling -------------------------------------------------------------------------------

  async function refreshAll() {
    const work = [...document.querySelectorAll("[data-live]")].map((region) => refreshRegion(region));
    if (overview) work.push(refreshOverview());
    await Promise.allSettled(work);
  }

  async function loop() {
    if (!document.hidden) await refreshAll().catch(() => {});
    setTimeout(loop, REFRESH);
  }
  setTimeout(loop, REFRESH);
})();
