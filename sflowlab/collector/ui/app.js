// The collector's status pages: plain JavaScript over the REST API, no build step.
// Every value from the network is set as text (never as HTML).
"use strict";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(fmt(child)));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return value.toLocaleString("en-US", { maximumFractionDigits: 3 });
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function cell(value) {
  return el("td", typeof value === "number" ? { class: "num" } : {}, value);
}

function fill(tbody, rows, columns) {
  const body = $(tbody);
  body.replaceChildren(...rows.map((row) => el("tr", row.attrs || {},
    ...row.cells.map(cell))));
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: String(columns), class: "empty" }, "none")));
  }
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    throw new Error(`${path}: ${response.status} ${body && body.error ? body.error : body}`);
  }
  return body;
}

function showError(error) {
  const box = $("error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

function keepOptions(select, names) {
  const chosen = select.value;
  const current = Array.from(select.options, (o) => o.value);
  if (current.join("\n") !== names.join("\n")) {
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  if (names.includes(chosen)) select.value = chosen;
}

// ------------------------------------------------------------------ sections

async function status() {
  const stats = await api("/analyzer/json");
  const rows = Object.keys(stats).sort().map((k) => ({ cells: [k, stats[k]] }));
  fill("status-rows", rows, 2);
}

async function agents() {
  const all = await api("/agents/json");
  fill("agent-rows", Object.keys(all).sort().map((a) => ({
    attrs: { "data-agent": a },
    cells: [a, all[a].sFlowDatagramsReceived, all[a].sFlowDatagramsLost,
      all[a].sFlowFlowSamples, all[a].sFlowCounterSamples, all[a].lastSeen],
  })), 6);
}

function filterQuery(text) {
  const params = new URLSearchParams();
  for (const part of text.split("&")) {
    const [key, ...value] = part.split("=");
    if (key.trim() && value.length) params.append(key.trim(), value.join("="));
  }
  const query = params.toString();
  return query ? `?${query}` : "";
}

async function metrics() {
  const select = $("metric-select");
  keepOptions(select, Object.keys(await api("/metrics/json")).sort());
  const metric = select.value;
  if (!metric) {
    fill("metric-rows", [], 4);
    return;
  }
  const agentList = encodeURIComponent($("metric-agents").value.trim() || "ALL");
  const query = filterQuery($("metric-filter").value);
  const name = encodeURIComponent(metric);
  const dump = await api(`/dump/${agentList}/${name}/json${query}`);
  fill("metric-rows", dump.map((d) => ({
    attrs: { "data-agent": d.agent, "data-source": d.dataSource },
    cells: [d.agent, d.dataSource, d.metricValue, d.lastUpdate],
  })), 4);
  const stats = await api(
    `/metric/${agentList}/${["min", "max", "avg", "sum"].map((a) => `${a}:${name}`).join(",")}/json${query}`);
  $("metric-summary").textContent = stats[0].metricN
    ? `${stats[0].metricN} data sources: ` + stats.map((s) => `${s.metricName.split(":")[0]} ${fmt(s.metricValue)}`).join(", ")
    : "no numeric values";
}

async function flows() {
  const definitions = await api("/flow/json");
  const select = $("flow-select");
  keepOptions(select, Object.keys(definitions).sort());
  const flow = select.value;
  $("flow-definition").textContent = flow ? JSON.stringify(definitions[flow]) : "no flows defined";
  if (!flow) {
    fill("flow-rows", [], 4);
    return;
  }
  const agentList = encodeURIComponent($("flow-agents").value.trim() || "ALL");
  const top = await api(`/activeflows/${agentList}/${encodeURIComponent(flow)}/json?maxFlows=20`);
  fill("flow-rows", top.map((f) => ({
    attrs: { "data-key": f.key },
    cells: [f.key, f.value, f.agent, f.dataSource],
  })), 4);
}

function objectTable(items) {
  const columns = Array.from(new Set(items.flatMap((item) => Object.keys(item))));
  return el("table", { class: "decisions" },
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, ...items.map((item) => el("tr", {}, ...columns.map((c) => cell(item[c]))))));
}

// Per controller: its handler statistics, its state (the answer of its default HTTP handler,
// /app/{name}/json, when it has one) and the decisions it published (newest first).
async function controllers() {
  const [all, scripts] = await Promise.all([api("/app/json"), api("/scripts/json")]);
  const names = Object.keys(all).sort();
  const blocks = await Promise.all(names.map(async (name) => {
    const { published, ...stats } = all[name];
    const state = scripts[name] && scripts[name].http
      ? await api(`/app/${encodeURIComponent(name)}/json`) : undefined;
    const block = el("div", { class: "controller", "data-controller": name },
      el("h3", {}, name),
      el("p", { class: "mono" }, `calls ${fmt(stats.calls)} errors ${fmt(stats.errors)}`
        + (stats.lastError ? ` last error: ${stats.lastError}` : "")));
    if (state !== undefined) block.append(el("pre", { class: "state" }, JSON.stringify(state, null, 2)));
    block.append(el("h3", {}, "Decisions"), published.length
      ? objectTable(published.slice().reverse()) : el("p", { class: "empty" }, "none yet"));
    return block;
  }));
  $("controller-list").replaceChildren(
    ...(blocks.length ? blocks : [el("p", { class: "empty" }, "no controllers loaded")]));
}

async function events() {
  const recent = await api("/events/json?maxEvents=50");
  fill("event-rows", recent.map((e) => ({
    cells: [e.eventID, new Date(e.timestamp).toISOString(), e.thresholdID, e.metric, e.value,
      e.threshold, e.agent, e.dataSource, e.flowKey],
  })), 9);
}

// ------------------------------------------------------------------ refresh loop

const SECTIONS = [status, agents, metrics, flows, controllers, events];

async function refresh() {
  const results = await Promise.allSettled(SECTIONS.map((section) => section()));
  const failed = results.find((r) => r.status === "rejected");
  showError(failed ? failed.reason : null);
  document.body.dataset.refreshed = String(Date.now());
}

async function start() {
  try {
    $("version").textContent = await (await fetch("/version")).text();
  } catch (error) {
    showError(error);
  }
  for (const id of ["metric-select", "metric-agents", "metric-filter"]) {
    $(id).addEventListener("change", () => metrics().catch(showError));
  }
  for (const id of ["flow-select", "flow-agents"]) {
    $(id).addEventListener("change", () => flows().catch(showError));
  }
  for (const form of ["metric-form", "flow-form"]) {
    $(form).addEventListener("submit", (event) => event.preventDefault());
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

start();
