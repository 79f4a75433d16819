// orderhook admin page: read-only views over /admin/api/. Every value is
// inserted as text, never as HTML.
"use strict";

const api = "/admin/api/";

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
    cells.forEach((c) => tr.append(typeof c === "object" ? el("td", c.text, c.cls) : el("td", c)));
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
  const res = await fetch(api + path, { headers: { Authorization: "Bearer " + sessionStorage.getItem("orderhook-token") } });
  const body = await res.json();
  if (res.status === 401) {
    sessionStorage.removeItem("orderhook-token");
    throw new Error("unauthorized");
  }
  if (!res.ok) throw new Error(body.title + ": " + body.detail);
  return body;
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
    fill(document.getElementById("dead"), header, eventRows(dead.events));
    fill(document.getElementById("recent"), header, eventRows(recent.events));
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e.message === "unauthorized") return start();
    error.textContent = e.message;
    error.hidden = false;
  }
}

function start() {
  const login = document.getElementById("login");
  const main = document.getElementById("main");
  if (!sessionStorage.getItem("orderhook-token")) {
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
    sessionStorage.setItem("orderhook-token", document.getElementById("token").value);
    start();
  });
  setInterval(() => { if (sessionStorage.getItem("orderhook-token")) refresh(); }, 10000);
  start();
});
