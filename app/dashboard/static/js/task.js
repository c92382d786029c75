// One task: its state, attempts on a timeline and every transition, polled until it
// changes; cancel and retry.
import { FINAL, RETRYABLE, act, api, badge, details, duration, el, poll, requireSignIn, simpleRows, time } from "./core.js";
import { attemptsTimeline, meter } from "./charts.js";

const id = document.body.dataset.taskId;
const path = `/task/${encodeURIComponent(id)}`;

const session = requireSignIn();
if (session) {
  const cancel = document.getElementById("cancel");
  const retry = document.getElementById("retry");
  let poller = null;
  cancel.addEventListener("click", () => act(() => api(`${path}/cancel`, { method: "POST" }), poller));
  retry.addEventListener("click", () => act(() => api(`${path}/retry`, { method: "POST" }), poller));
  poller = poll(async () => {
    const [task, history] = await Promise.all([api(path), api(`${path}/transitions`)]);
    render(task, history);
    cancel.disabled = FINAL.has(task.status);
    retry.disabled = !RETRYABLE.has(task.status);
  });
}

function json(value) {
  return value === null || value === undefined ? "—" : JSON.stringify(value, null, 2);
}

function render(task, history) {
  const status = document.getElementById("task-status");
  status.textContent = task.status;
  status.className = `badge badge-${task.status.toLowerCase()}`;
  document.title = `Task ${task.id.slice(0, 8)} ${task.status} · taskfleet`;
  document.getElementById("progress").replaceChildren(meter(task.progress, 100, { width: 300, label: `${task.progress}% done`, tone: "progress" }));
  details(document.getElementById("details"), [
    ["Type", task.type],
    ["Owner", task.owner],
    ["Mode", task.mode],
    ["Priority", task.priority],
    ["Capabilities", task.capabilities.join(", ") || "any"],
    ["Server", task.serverId],
    ["Attempts", task.attempts],
    ["Max retries", `${task.maxRetries} (a manual retry starts a fresh budget)`],
    ["Timeout", `${task.timeout} s`],
    ["Created", time(task.createdAt)],
    ["Started", time(task.startedAt)],
    ["Finished", time(task.finishedAt)],
  ]);
  attemptsTimeline(document.getElementById("timeline"), history.attempts, task.createdAt, Date.now());
  simpleRows(
    document.querySelector("#attempts tbody"),
    history.attempts.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, a.attempt),
        el("td", {}, a.serverId),
        el("td", {}, time(a.startedAt)),
        el("td", {}, a.endedAt ? duration(Date.parse(a.endedAt) - Date.parse(a.startedAt)) : "running"),
        el("td", {}, a.outcome ? badge(a.outcome) : badge("RUNNING", "processing")),
        el("td", { class: "message" }, a.error || ""),
      ),
    ),
  );
  const created = Date.parse(task.createdAt);
  simpleRows(
    document.querySelector("#transitions tbody"),
    history.transitions.map((t) =>
      el(
        "tr",
        {},
        el("td", {}, t.version),
        el("td", {}, t.fromStatus ? badge(t.fromStatus) : "—"),
        el("td", {}, badge(t.toStatus)),
        el("td", {}, t.attempt),
        el("td", {}, time(t.at)),
        el("td", {}, `+${duration(Date.parse(t.at) - created)}`),
      ),
    ),
  );
  document.getElementById("payload").textContent = json(task.payload);
  document.getElementById("result").textContent = json(task.result);
  const error = document.getElementById("error");
  error.hidden = !task.error;
  error.textContent = task.error || "";
}
