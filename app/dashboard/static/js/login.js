// Sign-in: the pasted token is checked against the API, then kept in this tab's
// sessionStorage (gone when the tab closes) and the caller sent on.
import { ApiError, api, claims, clearToken, config, landingFor, rolesOf, setToken, token } from "./core.js";

const params = new URLSearchParams(location.search);
const form = document.getElementById("login");
const error = document.getElementById("login-error");

// Only a path of this dashboard: never another site.
function next(tokenClaims) {
  const wanted = params.get("next") || "";
  const inside = wanted.startsWith(`${config.home}/`) && !wanted.startsWith("//");
  return inside ? wanted : landingFor(tokenClaims);
}

function fail(message) {
  error.textContent = message;
  error.hidden = false;
}

if (params.get("reason") === "expired") {
  clearToken();
  fail("The API refused your token (expired or invalid): sign in again.");
} else if (token() && claims()) {
  location.replace(next(claims()));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const value = form.elements.token.value.trim().replace(/^Bearer\s+/i, "");
  const tokenClaims = claims(value);
  if (!tokenClaims) {
    fail("That is not a JWT (three base64url parts separated by dots).");
    return;
  }
  const roles = rolesOf(tokenClaims);
  if (!roles.includes("admin") && !roles.includes("client")) {
    fail(`This token's roles (${roles.join(", ") || "none"}) include neither admin nor client.`);
    return;
  }
  try {
    await api("/tasks?limit=1", { bearer: value });
  } catch (failure) {
    fail(failure instanceof ApiError ? `The API refused this token: ${failure.message}` : `The API did not answer (${failure.message}).`);
    return;
  }
  setToken(value);
  location.assign(next(tokenClaims));
});
