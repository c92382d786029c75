// What every dashboard page shares: the token (this tab's sessionStorage only), calls to
// the API with it as a bearer token, polling, and small DOM and formatting helpers.
// Data from the API is only ever inserted as text (textContent), never as HTML.

const TOKEN_KEY = "taskfleet.token";
const data = document.body.dataset;

export const config = {
  api: data.api,
  pollMs: Number(data.pollMs) || 3000,
  home: data.home,
  fleetUrl: data.fleetUrl,
  tasksUrl: data.tasksUrl,
};

export const FINAL = new Set(["COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"]);
export const RETRYABLE = new Set(["FAILED", "TIMEOUT"]);

// --- the token -------------------------------------------------------------------------

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// The token's claims, read without checking the signature: for what the page shows and
// offers only. The API checks the token on every call and decides what the caller may do.
export function claims(value = token()) {
  try {
    const part = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="));
    const parsed = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    return parsed && typeof parsed === "object" ? parsed : null;
  } catch {
    return null;
  }
}

export function rolesOf(tokenClaims) {
  const roles = tokenClaims && tokenClaims.roles;
  return Array.isArray(roles) ? roles.filter((r) => typeof r === "string") : [];
}

export function landingFor(tokenClaims) {
  return rolesOf(tokenClaims).includes("admin") ? config.fleetUrl : config.tasksUrl;
}

// --- the API ---------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// Raised when the API could not be reached at all (no answer, not an error answer).
export class Unreachable extends Error {}

export async function api(path, { method = "GET", body, bearer = token() } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${bearer}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(config.api + path, init);
  } catch (error) {
    throw new Unreachable(error.message);
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, answer);
  }
  return answer;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// --- signing in and out ----------------------------------------------------------------

export function signInUrl(reason) {
  const next = location.pathname + location.search;
  return config.home + query({ next, reason });
}

// The signed-in caller, or null when the page cannot be used: no token (sent to sign in),
// or an admin page opened with a client token (told so). Shows the admin-only parts of the
// page to admins and wires the sign-out button.
export function requireSignIn({ admin = false } = {}) {
  const tokenClaims = token() && claims();
  if (!tokenClaims) {
    clearToken();
    location.replace(signInUrl());
    return null;
  }
  const roles = rolesOf(tokenClaims);
  const isAdmin = roles.includes("admin");
  const who = document.getElementById("who");
  if (who) who.textContent = `${tokenClaims.sub ?? "?"} (${roles.join(", ") || "no role"})`;
  for (const node of document.querySelectorAll("[data-admin-only]")) node.hidden = !isAdmin;
  document.getElementById("sign-out")?.addEventListener("click", () => {
    clearToken();
    location.assign(config.home);
  });
  if (admin && !isAdmin) {
    banner("This page needs a token with the admin role.");
    setUpdated("—");
    return null;
  }
  return { subject: String(tokenClaims.sub), isAdmin };
}

// --- polling ---------------------------------------------------------------------------

// Runs ``refresh`` now and again ``config.pollMs`` after each run ends; ``now()`` runs it
// at once (after an action). Runs never overlap, and a hidden tab does not poll.
export function poll(refresh) {
  let timer = null;
  let running = false;
  let again = false;

  async function tick() {
    if (running) {
      again = true;
      return;
    }
    clearTimeout(timer);
    if (document.hidden) return;
    running = true;
    try {
      await refresh();
      banner(null);
      setUpdated(`updated ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      report(error);
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      tick();
      return;
    }
    timer = setTimeout(tick, config.pollMs);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) tick();
  });
  tick();
  return { now: tick };
}

// What went wrong, on the page: a refused token sends the caller back to sign in.
export function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    clearToken();
    location.replace(signInUrl("expired"));
    return;
  }
  if (error instanceof ApiError) {
    banner(`${error.status}: ${error.message}`);
  } else if (error instanceof Unreachable) {
    banner(`The API did not answer (${error.message}); trying again.`);
  } else {
    banner(`This page failed: ${error.message}`);
    console.error(error);
  }
}

// Runs an action (a button's), then refreshes; reports a refusal (e.g. 409) on the page.
export async function act(action, poller) {
  try {
    await action();
  } catch (error) {
    report(error);
    return;
  }
  poller.now();
}

export function banner(message) {
  const node = document.getElementById("banner");
  if (!node) return;
  node.hidden = !message;
  node.textContent = message || "";
}

function setUpdated(text) {
  const node = document.getElementById("updated");
  if (node) node.textContent = text;
}

// --- DOM -------------------------------------------------------------------------------

// el("a", {href, class: "x", onclick: f}, "text", child, ...): attributes are set as
// attributes, children appended as nodes or text.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

// Keeps a table body in step with a list of items: a row is rebuilt only when its item
// changed, so rows (and the buttons in them) stay put between polls.
export function keyedRows(tbody, keyOf, render) {
  const rows = new Map();
  return function update(items) {
    const seen = new Set();
    const ordered = items.map((item) => {
      const key = keyOf(item);
      const json = JSON.stringify(item);
      seen.add(key);
      let row = rows.get(key);
      if (!row || row.json !== json) {
        const tr = render(item);
        tr.dataset.key = key;
        if (row) row.tr.replaceWith(tr);
        row = { json, tr };
        rows.set(key, row);
      }
      return row.tr;
    });
    for (const key of [...rows.keys()]) {
      if (!seen.has(key)) {
        rows.get(key).tr.remove();
        rows.delete(key);
      }
    }
    ordered.forEach((tr, index) => {
      if (tbody.children[index] !== tr) tbody.insertBefore(tr, tbody.children[index] || null);
    });
  };
}

export function simpleRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

export function details(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value ?? "—")]));
}

export function badge(text, kind = String(text).toLowerCase()) {
  return el("span", { class: `badge badge-${kind.replace(/[^a-z0-9-]/g, "-")}` }, text);
}

export function cards(container, items) {
  container.replaceChildren(
    ...items.map(([label, value, kind]) =>
      el("div", { class: `stat${kind ? ` stat-${kind}` : ""}` }, el("span", { class: "value" }, value), el("span", { class: "label" }, label)),
    ),
  );
}

export function taskUrl(id) {
  return `${config.tasksUrl}/${encodeURIComponent(id)}`;
}

// --- numbers and times -----------------------------------------------------------------

export function time(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const today = new Date().toDateString() === at.toDateString();
  return today ? at.toLocaleTimeString() : at.toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return minutes < 60 ? `${minutes} min ${Math.round((ms % 60_000) / 1000)} s` : `${(minutes / 60).toFixed(1)} h`;
}

export function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate >= 0.999 || rate === 0 ? 0 : 1)} %`;
}

export function count(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString();
}
