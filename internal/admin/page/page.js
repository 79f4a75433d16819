// orderhook admin page: views over /admin/api/, and the replay and discard
// of selected dead events. Every value is inserted as text, never as HTML.
"use strict";

const api = "/admin/api/";

// The dead events selected for an action; kept across refreshes.
const selected = new Set();

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fill(table, header, rows) {
  table.replaceChildren();
  const head = el("tr");
  header.forEach((h) => head.append(el("th", h)));
  table.append(head);
  if (rows.length === 0) {
    const tr = el("tr");
    const td = el("td", "none");
    td.colSpan = header.length;
    tr.append(td);
    table.append(tr);
    return;
  }
  rows.forEach((cells) => {
    const tr = el("tr");
    cells.forEach((c) => {
      if (c instanceof Node) {
        const td = el("td");
        td.append(c);
        tr.append(td);
      } else {
        tr.append(typeof c === "object" ? el("td", c.text, c.cls) : el("td", c));
      }
    });
    table.append(tr);
  });
}

function age(from, now) {
  const s = Math.max(0, Math.floor((new Date(now) - new Date(from)) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + String(Math.floor(s / 3600) % 24).padStart(2, "0") + "h";
}

async function get(path) {
  return call("GET", path);
}

async function call(method, path, payload) {
  const token = sessionStorage.getItem("orderhook-token");
  const headers = { Authorization: "Bearer " + token };
  const init = { method, headers };
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  const res = await fetch(api + path, init);
  if (res.status === 401) {
    // A refresh sent with a token given up since says nothing of the new one.
    if (sessionStorage.getItem("orderhook-token") === token) {
      sessionStorage.removeItem("orderhook-token");
      sessionStorage.setItem("orderhook-refused", "1");
    }
    throw new Error("unauthorized");
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.title + ": " + body.detail);
  return body;
}

// checkbox selects a dead event for an action.
function checkbox(id) {
  const box = el("input");
  box.type = "checkbox";
  box.value = id;
  box.checked = selected.has(id);
  box.setAttribute("aria-label", "select " + id);
  box.addEventListener("change", () => (box.checked ? selected.add(id) : selected.delete(id)));
  return box;
}

function eventRows(events) {
  return events.map((e) => [
    { text: e.event_id, cls: "id" }, e.type, e.customer_id || "-",
    { text: e.status, cls: e.status === "dead" ? "dead" : "" }, { text: e.attempts, cls: "num" },
    e.received_at, e.status === "deferred" ? "waiting for " + e.waiting_for : e.last_error || "-",
  ]);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [s, dead, recent] = await Promise.all([get("status"), get("dead?limit=100"), get("events?limit=50")]);
    error.hidden = true;
    fill(document.getElementById("counts"), ["status", "events"],
      Object.entries(s.counts).map(([k, v]) => [{ text: k, cls: k === "dead" && v > 0 ? "dead" : "" }, { text: v, cls: "num" }]));
    const oldest = [["pending", s.oldest_pending], ["deferred", s.oldest_deferred]]
      .map(([k, o]) => "oldest " + k + ": " + (o ? o.event_id + " (" + age(o.received_at, s.now) + " ago)" : "none"));
    document.getElementById("oldest").textContent = oldest.join(" · ") + " · being processed now: " + s.leased;
    fill(document.getElementById("waiting"), ["waiting for", "events", "oldest"],
      s.waiting.map((g) => [g.waiting_for, { text: g.events, cls: "num" }, age(g.oldest_received_at, s.now) + " ago"]));
    fill(document.getElementById("secrets"), ["secret", "events", "last received"],
      s.secrets_24h.map((u) => ["#" + u.index, { text: u.events, cls: "num" }, age(u.last_received_at, s.now) + " ago"]));
    const header = ["event", "type", "customer", "status", "attempts", "received", "waiting for / last error"];
    const ids = new Set(dead.events.map((e) => e.event_id));
    selected.forEach((id) => { if (!ids.has(id)) selected.delete(id); });
    fill(document.getElementById("dead"), [""].concat(header),
      eventRows(dead.events).map((cells, i) => [checkbox(dead.events[i].event_id)].concat(cells)));
    const more = document.getElementById("dead-more");
    more.hidden = s.counts.dead <= dead.events.length;
    more.textContent = "Showing the newest " + dead.events.length + " of " + s.counts.dead +
      " dead events: orderhook dead list and dead replay --all reach the others.";
    fill(document.getElementById("recent"), header, eventRows(recent.events));
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message === "unauthorized") return start();
    error.textContent = e.message;
    error.hidden = false;
  }
}

// refusals says which named events an action left alone, and why.
function refusals(refused) {
  return (refused || []).map((r) => " · " + r.event_id + " not changed: " + r.reason).join("");
}

// act runs the action of the button that submitted the form on the
// selected dead events, and says what it did.
async function act(action) {
  const result = document.getElementById("result");
  const ids = Array.from(selected);
  const reason = document.getElementById("reason").value.trim();
  if (ids.length === 0) {
    result.textContent = "Select dead events first.";
    return;
  }
  if (reason === "") {
    result.textContent = "Give a reason: it is kept in each event's history.";
    return;
  }
  const verb = action === "discard" ? "Discard" : "Replay";
  if (action !== "dry-run" && !confirm(verb + " " + ids.length + " dead event(s)? " + ids.join(", "))) return;
  try {
    let text;
    if (action === "discard") {
      const r = await call("POST", "dead/discard", { ids, reason });
      text = "discarded " + r.discarded.length + refusals(r.refused);
    } else {
      const r = await call("POST", "dead/replay", { ids, reason, dry_run: action === "dry-run" });
      text = (r.dry_run ? "dry run: would replay " + r.eligible : "replayed " + r.replayed) + " of " + ids.length + refusals(r.refused);
    }
    result.textContent = text;
    if (action !== "dry-run") selected.clear();
    refresh();
  } catch (e) {
    if (e.message === "unauthorized") return start();
    result.textContent = e.message;
  }
}

function start() {
  const login = document.getElementById("login");
  const main = document.getElementById("main");
  if (!sessionStorage.getItem("orderhook-token")) {
    document.getElementById("refused").hidden = !sessionStorage.getItem("orderhook-refused");
    login.hidden = false;
    main.hidden = true;
    return;
  }
  login.hidden = true;
  main.hidden = false;
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = document.getElementById("token").value.trim();
    // No token holds another character (serve refuses them), and fetch
    // could not send one in a header.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      document.getElementById("refused").hidden = false;
      return;
    }
    sessionStorage.setItem("orderhook-token", token);
    sessionStorage.removeItem("orderhook-refused");
    start();
  });
  document.getElementById("act").addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(ev.submitter.dataset.action);
  });
  setInterval(() => { if (sessionStorage.getItem("orderhook-token")) refresh(); }, 10000);
  start();
});
