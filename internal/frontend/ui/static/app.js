// cairn console: plain JavaScript against the node's HTTP API. Every call
// carries the login token; a 401 brings back the login form.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cairn-token") || "";
let current = null; // {table, key, version}

// X-Requested-With keeps the API from answering 401 with a Basic
// challenge, which would make the browser prompt on its own.
const xrw = { "X-Requested-With": "cairn-console" };

async function api(path, opts = {}) {
  opts.headers = Object.assign({}, xrw, opts.headers || {});
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, opts);
  if (r.status === 401) {
    showLogin("");
    throw new Error("unauthenticated");
  }
  return r;
}

// Versions are 64-bit: past 2^53 a JavaScript number would round them,
// so large integers are kept as their source text.
async function readJSON(r) {
  return JSON.parse(await r.text(), (k, v, ctx) =>
    typeof v === "number" && !Number.isSafeInteger(v) && ctx && ctx.source ? ctx.source : v);
}

async function apiJSON(path, opts) {
  const r = await api(path, opts);
  if (!r.ok) throw new Error(await errorText(r));
  return readJSON(r);
}

async function errorText(r) {
  try {
    const e = await r.json();
    return e.error.code + ": " + e.error.message;
  } catch (_) {
    return r.status + " " + r.statusText;
  }
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

const svgNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function showLogin(msg) {
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg;
}

async function login(ev) {
  ev.preventDefault();
  const basic = "Basic " + btoa($("login-user").value + ":" + $("login-pass").value);
  const r = await fetch("/v1/auth/login", { method: "POST", headers: Object.assign({ Authorization: basic }, xrw), body: "{}" });
  if (!r.ok) {
    $("login-error").textContent = await errorText(r);
    return;
  }
  token = (await r.json()).token;
  sessionStorage.setItem("cairn-token", token);
  $("whoami").textContent = $("login-user").value;
  $("login-pass").value = "";
  start();
}

function logout() {
  token = "";
  sessionStorage.removeItem("cairn-token");
  $("whoami").textContent = "";
  showLogin("");
}

// The cluster map: ranges as rows, nodes as columns.
async function refreshCluster() {
  const st = await apiJSON("/v1/cluster");
  const nodes = st.nodes || [];
  const ranges = (st.ranges || []).slice().sort((a, b) => a.table.localeCompare(b.table) || a.start.localeCompare(b.start));
  const list = $("nodes");
  list.replaceChildren(...nodes.map((n) => el("li", { "data-node": n.name, class: n.alive ? "up" : "down" },
    `${n.name} (${n.address}) ${n.alive ? "up" : "DOWN"}` + (n.state && n.state !== "active" ? ` [${n.state}]` : "") +
    `: ${n.ranges} ranges, ${n.leaders} leaders`)));
  // The coordinator's recent decisions, newest first.
  const ds = (st.decisions || []).slice().reverse().slice(0, 20);
  const nodeName = (id) => (nodes.find((n) => n.id === id) || { name: "node " + id }).name;
  $("decisions").replaceChildren(...ds.map((d) => el("tr", { class: d.outcome === "done" ? "" : "failed" },
    el("td", {}, new Date(d.at_unix_ms).toLocaleTimeString()),
    el("td", {}, d.op), el("td", {}, d.range ? "range " + d.range : ""), el("td", {}, nodeName(d.node)),
    el("td", {}, d.reason), el("td", {}, d.outcome))));
  $("decisions-note").textContent = st.coordinator ? `coordinator: ${nodeName(st.coordinator)}` +
    (ds.length ? "" : " (no decisions yet: the cluster is balanced)") : "coordinator not reachable";
  const sizes = ranges.map((r) => r.size_bytes || 0);
  const mean = sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length);
  const cw = 70, rh = 22, lw = 260, top = 20;
  const g = svg("svg", { width: lw + cw * nodes.length + 120, height: top + rh * ranges.length + 10, id: "map-svg" });
  nodes.forEach((n, j) => g.append(svg("text", { x: lw + j * cw + 10, y: 14 }, n.name)));
  ranges.forEach((r, i) => {
    const y = top + i * rh;
    const span = `${r.table} [${r.start || "-inf"}, ${r.end || "+inf"})`;
    g.append(svg("text", { x: 0, y: y + 15 }, span.length > 40 ? span.slice(0, 39) + "…" : span));
    const lag = (r.commit_index || 0) - (r.applied_index || 0);
    const hot = mean > 0 && (r.size_bytes || 0) > 2 * mean;
    nodes.forEach((n, j) => {
      const has = (r.replicas || []).includes(n.id);
      const learner = (r.learners || []).includes(n.id);
      const x = lw + j * cw;
      g.append(svg("rect", { x: x + 4, y: y + 3, width: cw - 8, height: rh - 6, rx: 3,
        class: has ? (hot ? "hot" : "replica") : learner ? "learner" : "empty", "data-range": r.id, "data-node": n.name }));
      if (r.leader === n.id) g.append(svg("circle", { cx: x + cw / 2, cy: y + rh / 2, r: 6, class: "leader" }));
    });
    const note = `${(r.size_bytes || 0)} B` + (lag > 0 ? `, lag ${lag}` : "") + (hot ? ", large" : "");
    g.append(svg("text", { x: lw + nodes.length * cw + 8, y: y + 15 }, note));
  });
  $("map").replaceChildren(g);
}

async function refreshTables() {
  const ts = await apiJSON("/v1/tables");
  const sel = $("table-select");
  const was = sel.value;
  sel.replaceChildren(...(ts.tables || []).map((t) => el("option", { value: t.name }, t.name)));
  if (was) sel.value = was;
}

function b64decode(s) {
  const bin = atob(s || "");
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

function kvPath(table, key) {
  return "/v1/kv/" + encodeURIComponent(table) + "/" + encodeURIComponent(key);
}

async function listKeys(ev) {
  if (ev) ev.preventDefault();
  const table = $("table-select").value;
  const q = new URLSearchParams({ prefix: $("prefix").value, limit: "200" });
  const out = await apiJSON("/v1/kv/" + encodeURIComponent(table) + "?" + q);
  $("keys").replaceChildren(...(out.items || []).map((it) => {
    const li = el("li", { "data-key": it.key }, `${it.key}  (v${it.version})`);
    li.addEventListener("click", () => openKey(table, it.key));
    return li;
  }));
}

async function openKey(table, key) {
  $("detail").hidden = false;
  $("key-name").textContent = key;
  $("status").textContent = "";
  const r = await api(kvPath(table, key));
  if (r.status === 404) {
    current = { table, key, version: "" };
    $("key-version").textContent = "(new)";
    $("value").value = "";
  } else if (r.ok) {
    const version = r.headers.get("Cairn-Version");
    current = { table, key, version };
    $("key-version").textContent = version;
    $("value").value = await r.text();
  } else {
    $("status").textContent = await errorText(r);
    $("status").className = "bad";
    return;
  }
  const h = await api(kvPath(table, key) + "?history");
  if (h.ok) {
    const hist = await readJSON(h);
    $("history").replaceChildren(...(hist.versions || []).map((c) =>
      el("li", { "data-version": c.version }, `v${c.version} ${c.type}` + (c.type === "put" ? `: ${b64decode(c.value)}` : ""))));
  } else {
    $("history").replaceChildren(el("li", {}, await errorText(h)));
  }
}

async function save() {
  if (!current) return;
  const headers = current.version ? { "If-Match": `"${current.version}"` } : { "If-None-Match": "*" };
  const r = await api(kvPath(current.table, current.key), { method: "PUT", headers, body: $("value").value });
  if (!r.ok) {
    $("status").textContent = "not saved: " + (await errorText(r));
    $("status").className = "bad";
    return;
  }
  const v = (await readJSON(r)).version;
  await openKey(current.table, current.key);
  $("status").textContent = "saved as version " + v;
  $("status").className = "ok";
  listKeys();
}

function newKey(ev) {
  ev.preventDefault();
  const key = $("new-name").value;
  $("new-name").value = "";
  openKey($("table-select").value, key);
}

// clusterView refreshes the map, or says why it cannot (seeing the
// cluster needs admin on "*"; keys need only grants on them).
async function clusterView() {
  try {
    await refreshCluster();
    $("cluster-error").textContent = "";
  } catch (e) {
    if (e.message === "unauthenticated") throw e;
    $("cluster-error").textContent = "cluster map: " + e.message;
  }
}

let timer = null;
async function start() {
  try {
    await clusterView();
    await refreshTables();
  } catch (e) {
    if (e.message !== "unauthenticated") showLogin(String(e));
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = !token;
  await listKeys().catch((e) => { $("status").textContent = String(e); });
  if (timer) clearInterval(timer);
  timer = setInterval(() => clusterView().catch(() => {}), 2000);
}

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("browse").addEventListener("submit", listKeys);
$("new-key").addEventListener("submit", newKey);
$("save").addEventListener("click", save);
start();
