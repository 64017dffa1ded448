"use strict";
// The dashboard: the node's own API, reached with relative URLs under <base> (the
// ingress path). Status and lists are polled every 2 s; the chat streams.
const $ = id => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) },
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((body && body.error && body.error.message) || `HTTP ${response.status}`);
  }
  return body;
}

let chatModel = null;

async function refreshStatus() {
  const status = await api("api/status");
  $("node-name").textContent = `${status.name} · ${status.hardware}`;
  const heat = status.heat || {};
  const room = status.temperatures && status.temperatures.room_c;
  $("now").textContent = [
    `power ${status.power_w ?? "–"} W`,
    `heat target ${heat.wanted ? heat.target_w : 0} W`,
    room !== null && room !== undefined ? `room ${room} °C` : null,
    `${status.energy_kwh} kWh`,
  ].filter(Boolean).join(" · ");
  renderModels(status.models || []);
  renderServices(status);
}

function renderModels(rows) {
  const list = $("model-list");
  list.replaceChildren(...rows.map(row => {
    const state = row.kind === "download" ? row.state : row.state || "available";
    const item = el("li", { className: "model", id: `model-${row.id}` },
      el("span", { className: "id", textContent: row.id }),
      el("span", { className: "kind", textContent: row.kind }),
      el("span", { className: `state ${state}`, textContent: state }));
    if (row.kind === "download") {
      const bar = el("progress", { max: 1, value: row.fraction ?? 0, className: "download" });
      bar.dataset.bytes = String(row.bytes_done);
      item.append(bar);
    }
    return item;
  }));
  if (!rows.some(row => row.kind === "download") && $("download-message").textContent === "Downloading…") {
    $("download-message").textContent = "Downloaded.";
  }
  const chat = rows.find(row => row.kind === "chat" && row.state !== "failed");
  chatModel = chat ? chat.id : null;
}

function renderServices(status) {
  const parts = [];
  // Each engine's or bridge's own figures, as the node's status gives them.
  // A model table ({name: [{version, state, ...}]}) reads as "name: state" lines.
  const models = value => Object.entries(value).map(([name, versions]) =>
    `${name}: ${versions.map(v => v.state.toLowerCase()).join(", ")}`).join("\n");
  const isModels = value => Object.values(value).every(v => Array.isArray(v) && v.every(x => x && x.state));
  const show = value => value === null ? "–"
    : typeof value !== "object" ? String(value)
    : !Object.keys(value).length ? "none"
    : isModels(value) ? models(value)
    : JSON.stringify(value);
  for (const key of ["onnx", "mcp"]) {
    if (status[key]) {
      const rows = Object.entries(status[key]).map(([name, value]) =>
        el("tr", {}, el("th", { textContent: name.replaceAll("_", " ") }),
          el("td", { textContent: show(value) })));
      parts.push(el("h3", { textContent: key.toUpperCase() }),
        el("table", { className: `service ${key}` }, el("tbody", {}, ...rows)));
    }
  }
  if (parts.length) $("services-body").replaceChildren(...parts);
}

async function refreshJobs() {
  const jobs = (await api("api/jobs?limit=20")).data;
  const rows = jobs.map(job => {
    const done = job.progress.done + job.progress.failed;
    const bar = el("progress", { max: job.progress.total, value: done });
    bar.dataset.done = String(done);
    const cancel = el("button", { className: "secondary", textContent: "Cancel" });
    cancel.onclick = () => api(`api/jobs/${job.id}`, { method: "DELETE" }).then(refreshJobs);
    const active = ["queued", "running", "paused"].includes(job.state);
    return el("tr", { id: `job-${job.id}` },
      el("td", { textContent: `${job.kind} ${job.id.slice(-6)}` }),
      el("td", {}, el("span", { className: `state ${job.state}`, textContent: job.state })),
      el("td", {}, bar, ` ${done}/${job.progress.total}`),
      el("td", {}, active ? cancel : ""));
  });
  if (rows.length) $("job-rows").replaceChildren(...rows);
}

async function refreshChart() {
  drawChart($("chart"), (await api("api/history")).data);
}

$("download-form").onsubmit = async event => {
  event.preventDefault();
  try {
    await api("api/models/download", {
      method: "POST",
      body: JSON.stringify({ url: $("download-url").value, name: $("download-name").value }),
    });
    $("download-message").textContent = "Downloading…";
    refreshStatus();
  } catch (err) {
    $("download-message").textContent = err.message;
  }
};

$("chat-form").onsubmit = async event => {
  event.preventDefault();
  const text = $("chat-input").value;
  $("chat-input").value = "";
  $("chat-log").append(el("div", { className: "msg user", textContent: text }));
  const answer = el("div", { className: "msg assistant", textContent: "" });
  $("chat-log").append(answer);
  if (!chatModel) { answer.textContent = "No chat model on this node."; return; }
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: chatModel, stream: true, max_tokens: 128,
      messages: [{ role: "user", content: text }] }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    answer.textContent = (body.error && body.error.message) || `HTTP ${response.status}`;
    return;
  }
  // Server-sent events: "data: {chunk}" lines, "data: [DONE]" at the end.
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  answer.dataset.chunks = "0";
  answer.dataset.reads = "0";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    answer.dataset.reads = String(Number(answer.dataset.reads) + 1);
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "data: [DONE]") { answer.dataset.done = "true"; return; }
      if (!line.startsWith("data: ")) continue;
      const delta = JSON.parse(line.slice(6)).choices[0].delta || {};
      if (delta.content) {
        answer.textContent += delta.content;
        answer.dataset.chunks = String(Number(answer.dataset.chunks) + 1);
      }
    }
  }
  answer.dataset.done = "true";
};

function every(ms, fn) {
  const run = () => fn().catch(err => console.warn(err));
  run();
  setInterval(run, ms);
}
every(2000, refreshStatus);
every(2000, refreshJobs);
every(5000, refreshChart);
