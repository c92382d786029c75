// Statistics (admins): totals, the last 24 hours, top servers, what runs now, recent
// errors and the alerts firing. Everything comes from the durable records through the
// API, so it is all there again after a restart.
import { api, cards, count, details, duration, el, percent, poll, requireSignIn, simpleRows, time } from "./core.js";
import { hourlyChart } from "./charts.js";

const ERRORS_SHOWN = 10;

const session = requireSignIn({ admin: true });
if (session) {
  poll(async () => {
    const [stats, hourly, errors, alerts, status] = await Promise.all([
      api("/stats"),
      api("/stats/hourly"),
      api(`/errors?limit=${ERRORS_SHOWN}`),
      api("/alerts"),
      api("/status"),
    ]);
    renderAlerts(alerts.alerts);
    cards(document.getElementById("totals"), [
      ["submitted", count(stats.totalTasks)],
      ["completed", count(stats.successfulTasks), "good"],
      ["failed", count(stats.failedTasks), stats.failedTasks ? "bad" : null],
      ["timed out", count(stats.timedOutTasks)],
      ["cancelled", count(stats.cancelledTasks)],
      ["retried", count(stats.retriedTasks)],
      ["pending", count(stats.pendingTasks)],
      ["processing", count(stats.processingTasks)],
      ["avg processing", duration(stats.averageProcessingTime)],
      ["servers", count(stats.serverCount)],
    ]);
    hourlyChart(document.getElementById("hourly"), hourly.hours);
    simpleRows(
      document.querySelector("#top-servers tbody"),
      stats.topServers.map((s) =>
        el(
          "tr",
          {},
          el("td", {}, s.serverId),
          el("td", {}, count(s.tasksProcessed)),
          el("td", {}, percent(s.successRate)),
          el("td", {}, duration(s.averageResponseTime)),
          el("td", {}, time(s.lastActiveTime)),
        ),
      ),
    );
    document.getElementById("top-servers-empty").hidden = stats.topServers.length > 0;
    details(document.getElementById("status"), [
      ["Redis", status.redis],
      ["Database", status.database],
      ["Workers", status.workers.join(", ") || "none alive"],
      ["Queued jobs", Object.entries(status.queues).map(([q, n]) => `${q} ${n}`).join(", ")],
      ["Waiting for a slot", count(status.waitingForSlot)],
      ["Retries scheduled", count(status.scheduledRetries)],
      ["Slots in use", `${count(status.slotsInUse)} / ${count(status.slotCapacity)}`],
      ["Finished, last minute", `${count(status.finishedLastMinute)} (${status.processingRate}/s)`],
    ]);
    simpleRows(
      document.querySelector("#errors tbody"),
      errors.errors.map((e) =>
        el("tr", {}, el("td", {}, e.errorType), el("td", { class: "message" }, e.message), el("td", {}, count(e.count)), el("td", {}, time(e.lastSeen))),
      ),
    );
    document.getElementById("errors-empty").hidden = errors.errors.length > 0;
  });
}

function renderAlerts(alerts) {
  const box = document.getElementById("alerts");
  if (!alerts.length) {
    box.replaceChildren(el("p", { class: "alert alert-none" }, "No alert firing."));
    return;
  }
  box.replaceChildren(
    ...alerts.map((a) =>
      el("p", { class: "alert", "data-testid": `alert-${a.alert}` }, el("strong", {}, a.alert), ` since ${time(a.since)}: `, a.message),
    ),
  );
}
