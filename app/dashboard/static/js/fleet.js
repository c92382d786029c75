// Fleet (admins): every server with its live metrics, and the maintenance switch.
import { act, api, badge, cards, count, duration, el, keyedRows, percent, poll, requireSignIn } from "./core.js";
import { meter, trendChart } from "./charts.js";

//: Samples of the fleet's load kept for the trend (one per poll: ten minutes at 3 s).
const SAMPLES = 200;

const session = requireSignIn({ admin: true });
if (session) {
  const samples = [];
  let poller = null;
  const toggle = (server, enabled) =>
    act(() => api(`/servers/${encodeURIComponent(server.id)}/maintenance`, { method: "PUT", body: { enabled } }), poller);
  const update = keyedRows(document.querySelector("#servers tbody"), (s) => s.id, (s) => serverRow(s, toggle));
  poller = poll(async () => {
    const { items } = await api("/servers?metrics=true");
    const taking = items.filter((s) => s.status !== "draining" && s.status !== "offline" && !s.metrics.maintenance);
    const inFlight = items.reduce((n, s) => n + s.metrics.inFlight, 0);
    const capacity = taking.reduce((n, s) => n + s.maxConcurrent, 0);
    cards(document.getElementById("fleet-summary"), [
      ["servers", count(items.length)],
      ["taking tasks", count(taking.length), taking.length < items.length ? "warn" : null],
      ["in flight / open capacity", `${count(inFlight)} / ${count(capacity)}`],
      ["in maintenance", count(items.filter((s) => s.metrics.maintenance).length)],
      ["circuits open", count(items.filter((s) => s.metrics.circuitState !== "closed").length), items.some((s) => s.metrics.circuitState === "open") ? "bad" : null],
    ]);
    samples.push({ at: Date.now(), value: inFlight, limit: capacity });
    if (samples.length > SAMPLES) samples.shift();
    trendChart(document.getElementById("fleet-trend"), samples);
    update(items);
    document.getElementById("servers-empty").hidden = items.length > 0;
  });
}

function serverRow(server, toggle) {
  const m = server.metrics;
  const on = m.maintenance;
  const rate = m.successRate;
  return el(
    "tr",
    { "data-testid": `server-${server.id}` },
    el("td", {}, el("strong", {}, server.name), el("div", { class: "sub" }, server.id, server.region ? ` · ${server.region}` : "")),
    el("td", {}, badge(server.status)),
    el("td", {}, meter(m.healthScore, 100, { width: 80, label: String(m.healthScore), tone: "score" })),
    el("td", {}, badge(m.circuitState, `circuit-${m.circuitState}`)),
    el("td", {}, meter(m.inFlight, server.maxConcurrent)),
    el("td", { class: rate !== null && rate < 0.9 ? "warn" : null }, percent(rate), el("div", { class: "sub" }, `${count(m.tasksProcessed)} done`)),
    el("td", {}, duration(m.averageResponseTime)),
    el("td", {}, server.capabilities.map((c) => el("span", { class: "chip" }, c))),
    el(
      "td",
      {},
      el(
        "button",
        {
          type: "button",
          role: "switch",
          class: `switch${on ? " on" : ""}`,
          "aria-checked": on ? "true" : "false",
          "aria-label": `Maintenance of ${server.id}`,
          "data-testid": `maintenance-${server.id}`,
          onclick: () => toggle(server, !on),
        },
        on ? "on" : "off",
      ),
    ),
  );
}
