// Tasks: filtered by status and type (and owner, for admins), newest first, a page at a
// time, with cancel and retry.
import { FINAL, RETRYABLE, act, api, badge, el, keyedRows, poll, query, requireSignIn, taskUrl, time } from "./core.js";

const PAGE_SIZE = 25;

const session = requireSignIn();
if (session) {
  const form = document.getElementById("filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["status", "type", "owner"]) form.elements[name].value = params.get(name) || "";
  // Cursors of the pages before the one shown: "Newer" goes back one.
  const previous = [];
  let cursor = null;
  let nextCursor = null;
  let poller = null;

  const filters = () => ({
    status: form.elements.status.value,
    type: form.elements.type.value.trim(),
    owner: session.isAdmin ? form.elements.owner.value.trim() : "",
  });
  const update = keyedRows(document.querySelector("#tasks tbody"), (t) => t.id, (t) => taskRow(t, session, () => poller));
  const restart = () => {
    previous.length = 0;
    cursor = null;
    history.replaceState(null, "", location.pathname + query(filters()));
    poller.now();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    restart();
  });
  form.addEventListener("reset", () => setTimeout(restart));
  document.getElementById("older").addEventListener("click", () => {
    previous.push(cursor);
    cursor = nextCursor;
    poller.now();
  });
  document.getElementById("newer").addEventListener("click", () => {
    cursor = previous.pop() ?? null;
    poller.now();
  });

  poller = poll(async () => {
    const page = await api(`/tasks${query({ ...filters(), limit: PAGE_SIZE, cursor })}`);
    nextCursor = page.nextCursor;
    update(page.items);
    document.getElementById("tasks-empty").hidden = page.items.length > 0;
    document.getElementById("older").disabled = !nextCursor;
    document.getElementById("newer").disabled = previous.length === 0;
  });
}

function taskRow(task, session, poller) {
  const cancel = () => act(() => api(`/task/${encodeURIComponent(task.id)}/cancel`, { method: "POST" }), poller());
  const retry = () => act(() => api(`/task/${encodeURIComponent(task.id)}/retry`, { method: "POST" }), poller());
  const status = task.status === "PROCESSING" && task.progress ? [badge(task.status), ` ${task.progress}%`] : badge(task.status);
  return el(
    "tr",
    { "data-testid": `task-${task.id}` },
    el("td", {}, el("a", { href: taskUrl(task.id), class: "mono" }, task.id.slice(0, 8))),
    el("td", {}, task.type),
    el("td", {}, status),
    session.isAdmin ? el("td", {}, task.owner) : null,
    el("td", {}, task.serverId || "—"),
    el("td", {}, task.attempts),
    el("td", {}, time(task.createdAt)),
    el("td", {}, time(task.updatedAt)),
    el(
      "td",
      { class: "row-actions" },
      FINAL.has(task.status) ? null : el("button", { type: "button", class: "small", onclick: cancel }, "Cancel"),
      RETRYABLE.has(task.status) ? el("button", { type: "button", class: "small", onclick: retry }, "Retry") : null,
    ),
  );
}
