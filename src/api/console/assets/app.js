// The instance-ledger console: a client of the native API (/v1) and nothing else. It
// renders what the API answers and decides nothing itself: which actions are offered comes
// from /v1/instances/{id}/operations, refusals are the server's problem+json shown as is.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  token: sessionStorage.getItem("ledger-token"),
  // null: live. Otherwise {position} or {time} (ISO string): every view reads as of it.
  point: null,
  head: 0,
  firstAt: null,
  fleetCursors: [null],
  auditAfter: 0,
  route: null,
  instanceId: null,
  feed: null,
  refreshTimer: null,
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch (_) {
      parsed = { detail: text };
    }
  }
  if (!r.ok) throw new ApiError(r.status, parsed);
  return parsed;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function badge(s) {
  return el("span", { class: `badge state-${s}` }, s);
}

function fmtTime(t) {
  if (!t) return "-";
  const d = new Date(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function showError(node, e) {
  if (!e) {
    node.textContent = "";
    return;
  }
  const b = e.body || {};
  const code = b.code ? ` (${b.code})` : "";
  node.textContent = `${e.status || ""} ${b.title || "Error"}${code}: ${b.detail || e.message}`;
}

// ---- the point in time every view reads at ----

function pointQuery() {
  if (!state.point) return "";
  if (state.point.position !== undefined) return `at_position=${state.point.position}`;
  return `as_of=${encodeURIComponent(state.point.time)}`;
}

function withPoint(path) {
  const q = pointQuery();
  if (!q) return path;
  return path + (path.includes("?") ? "&" : "?") + q;
}

function describePoint() {
  const label = $("#asof-label");
  if (!state.point) label.textContent = `live (head at position ${state.head})`;
  else if (state.point.position !== undefined)
    label.textContent = `as of position ${state.point.position} of ${state.head}`;
  else label.textContent = `as of ${fmtTime(state.point.time)}`;
  document.body.classList.toggle("as-of", !!state.point);
}

function setPoint(point) {
  state.point = point;
  const slider = $("#asof-slider");
  if (!point) {
    slider.value = String(state.head);
    $("#asof-date").value = "";
  } else if (point.position !== undefined) {
    $("#asof-date").value = "";
  }
  describePoint();
  render();
}

function setHead(position) {
  if (position <= state.head && state.head !== 0) return;
  state.head = position;
  const slider = $("#asof-slider");
  slider.max = String(position);
  if (!state.point) slider.value = String(position);
  describePoint();
}

async function loadHead() {
  try {
    const h = await api("GET", "/v1/ledger/head");
    setHead(h.position);
  } catch (_) {
    // Without the head the slider grows with the feed.
  }
}

// ---- live updates: the SSE feed, read with fetch so the token travels in a header ----

async function follow() {
  if (state.feed) return;
  const controller = new AbortController();
  state.feed = controller;
  let last = null;
  while (state.feed === controller) {
    try {
      const headers = { Authorization: `Bearer ${state.token}` };
      if (last !== null) headers["Last-Event-ID"] = String(last);
      const r = await fetch(`/v1/events/stream?after=${state.head}`, {
        headers,
        signal: controller.signal,
      });
      if (!r.ok) throw new Error(`feed: HTTP ${r.status}`);
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const message = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(message);
          const data = /^data: (.*)$/m.exec(message);
          if (id && data) {
            last = Number(id[1]);
            onEvent(JSON.parse(data[1]));
          }
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

function onEvent(event) {
  setHead(event.position);
  if (state.point) return; // an as-of view does not move
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => {
    if (state.route === "fleet") renderFleet(false);
    if (state.route === "instance" && event.stream_id === state.instanceId) renderInstance();
  }, 150);
}

// ---- views ----

function show(id) {
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== id;
}

async function renderFleet(reset) {
  show("view-fleet");
  if (reset) state.fleetCursors = [null];
  const params = new URLSearchParams();
  const v = (id) => $(id).value.trim();
  if (v("#f-state")) params.set("state", v("#f-state"));
  if (v("#f-project")) params.set("project_id", v("#f-project"));
  if (v("#f-name")) params.set("name", v("#f-name"));
  if (v("#f-tag")) params.set("tag", v("#f-tag"));
  params.set("limit", v("#f-limit"));
  const cursor = state.fleetCursors[state.fleetCursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  const tbody = $("#fleet-table tbody");
  try {
    const page = await api("GET", withPoint(`/v1/instances?${params}`));
    tbody.replaceChildren(
      ...page.items.map((i) =>
        el(
          "tr",
          { "data-id": i.id },
          el("td", {}, el("a", { href: `#/instances/${i.id}` }, i.name)),
          el("td", {}, i.short_id),
          el("td", {}, badge(i.state)),
          el("td", {}, i.power_state),
          el("td", {}, `${i.vcpus} vCPU, ${i.memory_mb} MB, ${i.disk_gb} GB`),
          el("td", { class: "mono" }, i.project_id.slice(0, 8)),
          el("td", {}, fmtTime(i.updated_at)),
        ),
      ),
    );
    $("#fleet-total").textContent = `(${page.total} match${state.point ? ", as of the chosen point" : ""})`;
    $("#fleet-next").disabled = !page.next_cursor;
    $("#fleet-next").dataset.cursor = page.next_cursor || "";
    $("#fleet-first").disabled = state.fleetCursors.length === 1;
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "error" }, e.message)));
  }
}

async function fillCreateForm() {
  const fill = async (sel, path, label) => {
    try {
      const list = await api("GET", path);
      $(sel).replaceChildren(...list.items.map((r) => el("option", { value: r.id }, label(r))));
    } catch (_) {
      $(sel).replaceChildren();
    }
  };
  await Promise.all([
    fill("#c-project", "/v1/projects?limit=100", (r) => r.name),
    fill("#c-flavor", "/v1/flavors?limit=100", (r) => `${r.name} (${r.vcpus} vCPU, ${r.memory_mb} MB)`),
    fill("#c-image", "/v1/images?limit=100", (r) => r.name),
  ]);
}

const ACTIONS = {
  start: ["Start", "POST", "start", {}],
  stop: ["Stop", "POST", "stop", {}],
  force_stop: ["Force stop", "POST", "stop", { force: true }],
  reboot: ["Reboot", "POST", "reboot", {}],
  destroy: ["Destroy", "DELETE", "", undefined],
  recover: ["Recover", "POST", "recover", {}],
  purge: ["Purge", "POST", "purge", {}],
  lock: ["Lock", "POST", "lock", {}],
  unlock: ["Unlock", "POST", "unlock", {}],
};

async function act(id, op) {
  const [, method, path, body] = ACTIONS[op];
  try {
    await api(method, `/v1/instances/${id}${path ? "/" + path : ""}`, body);
    showError($("#inst-error"), null);
  } catch (e) {
    showError($("#inst-error"), e);
  }
  renderInstance();
}

async function renderInstance() {
  show("view-instance");
  const id = state.instanceId;
  const actions = $("#inst-actions");
  let inst;
  try {
    inst = await api("GET", withPoint(`/v1/instances/${id}`));
  } catch (e) {
    $("#inst-title").textContent = id;
    $("#inst-view tbody").replaceChildren(
      el("tr", {}, el("td", { class: "error" }, e.status === 404 && state.point ? "did not exist yet at this point" : e.message)),
    );
    actions.replaceChildren();
    await renderTimeline(id);
    return;
  }
  $("#inst-title").replaceChildren(`${inst.name} `, badge(inst.state));
  $("#inst-point").textContent = state.point ? "(as of the chosen point)" : "(now)";
  $("#inst-view tbody").replaceChildren(
    ...Object.entries(inst).map(([k, v]) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, k),
        el("td", { "data-field": k }, v === null ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v)),
      ),
    ),
  );
  if (state.point) {
    actions.replaceChildren(el("span", { class: "muted" }, "Actions are offered on the live view."));
  } else {
    try {
      const ops = await api("GET", `/v1/instances/${id}/operations`);
      actions.replaceChildren(
        ...ops.operations
          .filter((op) => ACTIONS[op])
          .map((op) =>
            el("button", { type: "button", id: `act-${op}`, onclick: () => act(id, op) }, ACTIONS[op][0]),
          ),
      );
    } catch (e) {
      actions.replaceChildren();
    }
  }
  await renderTimeline(id);
}

async function renderTimeline(id) {
  const tbody = $("#timeline tbody");
  try {
    const list = await api("GET", `/v1/instances/${id}/events`);
    const cut = state.point && state.point.position !== undefined ? state.point.position : null;
    const until = state.point && state.point.time ? new Date(state.point.time) : null;
    tbody.replaceChildren(
      ...list.items.map((e) => {
        const later = (cut !== null && e.position > cut) || (until && new Date(e.at) > until);
        return el(
          "tr",
          { class: later ? "later" : "", "data-type": e.type },
          el("td", {}, e.position),
          el("td", {}, fmtTime(e.at)),
          el("td", {}, e.type),
          el("td", { class: "mono" }, e.actor),
          el("td", {}, e.origin),
          el("td", { class: "mono" }, e.request_id.slice(0, 13)),
          el(
            "td",
            {},
            el("details", {}, el("summary", {}, "data"), el("pre", {}, JSON.stringify(e.data, null, 2))),
          ),
        );
      }),
    );
  } catch (e) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "error" }, e.message)));
  }
}

function pointParam(raw) {
  const v = raw.trim();
  if (/^\d+$/.test(v)) return v;
  const d = new Date(v);
  return isNaN(d) ? v : d.toISOString();
}

async function renderDiff() {
  const out = $("#diff-out");
  const params = new URLSearchParams({ from: pointParam($("#diff-from").value) });
  if ($("#diff-to").value.trim()) params.set("to", pointParam($("#diff-to").value));
  try {
    const d = await api("GET", `/v1/instances/${state.instanceId}/diff?${params}`);
    const before = d.from || {};
    const after = d.to || {};
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    const rows = keys
      .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
      .map((k) =>
        el("tr", { "data-field": k }, el("th", { scope: "row" }, k), el("td", {}, JSON.stringify(before[k] ?? null)), el("td", {}, JSON.stringify(after[k] ?? null))),
      );
    out.replaceChildren(
      el("p", {}, `From position ${d.from_position} to ${d.to_position}: ${d.events.length} events (${d.events.map((e) => e.type).join(", ") || "none"}).`),
      el(
        "table",
        { id: "diff-table" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Field"), el("th", { scope: "col" }, "From"), el("th", { scope: "col" }, "To"))),
        el("tbody", {}, ...rows),
      ),
    );
  } catch (e) {
    out.replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
  }
}

const CHART_STATES = ["provisioning", "running", "stopped", "error", "destroyed"];

async function renderChart() {
  show("view-chart");
  const to = $("#chart-to").value ? new Date($("#chart-to").value) : new Date();
  const from = $("#chart-from").value
    ? new Date($("#chart-from").value)
    : state.firstAt
      ? new Date(state.firstAt)
      : new Date(to - 3600e3);
  const n = Number($("#chart-points").value);
  const times = Array.from({ length: n }, (_, i) => new Date(from.getTime() + ((to - from) * i) / (n - 1)));
  const chart = $("#chart");
  chart.replaceChildren(el("p", { class: "muted" }, "Counting..."));
  try {
    // One as-of total per state and point: each is a count, never a page of the fleet.
    const series = await Promise.all(
      CHART_STATES.map(async (s) =>
        Promise.all(
          times.map(async (t) => {
            const r = await api("GET", `/v1/instances?state=${s}&limit=1&as_of=${encodeURIComponent(t.toISOString())}`);
            return r.total;
          }),
        ),
      ),
    );
    drawChart(chart, times, series);
  } catch (e) {
    chart.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function drawChart(node, times, series) {
  const W = 760, H = 260, P = 40;
  const max = Math.max(1, ...series.flat());
  const x = (i) => P + ((W - 2 * P) * i) / Math.max(1, times.length - 1);
  const y = (v) => H - P - ((H - 2 * P) * v) / max;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Instances by state over time");
  const line = (x1, y1, x2, y2, cls) => {
    const l = document.createElementNS(ns, "line");
    Object.entries({ x1, y1, x2, y2 }).forEach(([k, v]) => l.setAttribute(k, v));
    l.setAttribute("class", cls);
    svg.append(l);
  };
  line(P, H - P, W - P, H - P, "axis");
  line(P, P, P, H - P, "axis");
  const label = (tx, ty, text, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", tx);
    t.setAttribute("y", ty);
    t.setAttribute("text-anchor", anchor || "middle");
    t.textContent = text;
    svg.append(t);
  };
  label(P - 6, y(max) + 4, String(max), "end");
  label(P - 6, y(0) + 4, "0", "end");
  label(x(0), H - P + 16, fmtTime(times[0]).slice(11, 19));
  label(x(times.length - 1), H - P + 16, fmtTime(times[times.length - 1]).slice(11, 19));
  series.forEach((values, si) => {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("points", values.map((v, i) => `${x(i)},${y(v)}`).join(" "));
    p.setAttribute("class", `series state-${CHART_STATES[si]}`);
    svg.append(p);
  });
  const legend = el("ul", { class: "legend" }, ...CHART_STATES.map((s) => el("li", {}, badge(s))));
  const table = el(
    "table",
    { class: "chart-data" },
    el("caption", {}, "The same figures"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Time"), ...CHART_STATES.map((s) => el("th", { scope: "col" }, s)))),
    el("tbody", {}, ...times.map((t, i) => el("tr", {}, el("td", {}, fmtTime(t)), ...series.map((v) => el("td", {}, v[i]))))),
  );
  node.replaceChildren(svg, legend, table);
}

async function renderAudit(more) {
  show("view-audit");
  const tbody = $("#audit-table tbody");
  if (!more) {
    state.auditAfter = 0;
    tbody.replaceChildren();
  }
  const params = new URLSearchParams({ limit: "50", after: String(state.auditAfter) });
  const v = (id) => $(id).value.trim();
  if (v("#a-actor")) params.set("actor", v("#a-actor"));
  if (v("#a-type")) params.set("type", v("#a-type"));
  if (v("#a-project")) params.set("project_id", v("#a-project"));
  if (v("#a-since")) params.set("since", new Date(v("#a-since")).toISOString());
  if (v("#a-until")) params.set("until", new Date(v("#a-until")).toISOString());
  try {
    const feed = await api("GET", `/v1/events?${params}`);
    state.auditAfter = feed.next_after;
    tbody.append(
      ...feed.items.map((e) =>
        el(
          "tr",
          {},
          el("td", {}, e.position),
          el("td", {}, fmtTime(e.at)),
          el("td", {}, e.type),
          el("td", {}, e.stream_kind === "instance" ? el("a", { href: `#/instances/${e.stream_id}` }, e.stream_id.slice(0, 8)) : e.stream_kind),
          el("td", { class: "mono" }, e.actor),
          el("td", {}, e.origin),
          el("td", {}, el("details", {}, el("summary", {}, "data"), el("pre", {}, JSON.stringify(e.data, null, 2)))),
        ),
      ),
    );
    $("#audit-more").disabled = feed.items.length === 0;
  } catch (e) {
    tbody.append(el("tr", {}, el("td", { colspan: "7", class: "error" }, e.message)));
  }
}

// ---- routing and start-up ----

function render() {
  const hash = location.hash || "#/fleet";
  const m = /^#\/instances\/([^/]+)$/.exec(hash);
  if (m) {
    state.route = "instance";
    if (state.instanceId !== m[1]) $("#diff-out").replaceChildren();
    state.instanceId = m[1];
    renderInstance();
  } else if (hash === "#/chart") {
    state.route = "chart";
    renderChart();
  } else if (hash === "#/audit") {
    state.route = "audit";
    renderAudit(false);
  } else {
    state.route = "fleet";
    renderFleet(false);
  }
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === hash);
  }
}

async function signedIn() {
  let me;
  try {
    me = await api("GET", "/v1/me");
  } catch (e) {
    sessionStorage.removeItem("ledger-token");
    state.token = null;
    show("view-signin");
    showError($("#signin-error"), e);
    return;
  }
  $("#who").textContent = `Signed in as ${me.username || me.id}${me.is_staff ? " (staff)" : ""}`;
  for (const id of ["#nav", "#sign-out", "#timebar"]) $(id).hidden = false;
  // The head is staff's to read; others learn positions from the feed as events arrive.
  if (me.is_staff) await loadHead();
  try {
    const first = await api("GET", "/v1/events?limit=1");
    if (first.items.length) state.firstAt = first.items[0].at;
  } catch (_) {}
  fillCreateForm();
  follow();
  render();
}

function wire() {
  $("#signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("ledger-token", state.token);
    $("#token").value = "";
    signedIn();
  });
  $("#sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("ledger-token");
    location.hash = "";
    location.reload();
  });
  $("#fleet-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    renderFleet(true);
  });
  $("#fleet-next").addEventListener("click", (ev) => {
    state.fleetCursors.push(ev.target.dataset.cursor);
    renderFleet(false);
  });
  $("#fleet-first").addEventListener("click", () => renderFleet(true));
  $("#create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const inst = await api("POST", "/v1/instances", {
        name: $("#c-name").value.trim(),
        project_id: $("#c-project").value,
        flavor_id: $("#c-flavor").value,
        image_id: $("#c-image").value,
      });
      showError($("#create-error"), null);
      location.hash = `#/instances/${inst.id}`;
    } catch (e) {
      showError($("#create-error"), e);
    }
  });
  $("#diff-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    renderDiff();
  });
  $("#chart-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    renderChart();
  });
  $("#audit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    renderAudit(false);
  });
  $("#audit-more").addEventListener("click", () => renderAudit(true));
  const slider = $("#asof-slider");
  slider.addEventListener("input", () => {
    const p = Number(slider.value);
    describePoint();
    clearTimeout(state.sliderTimer);
    state.sliderTimer = setTimeout(() => setPoint(p >= state.head ? null : { position: p }), 120);
  });
  $("#asof-date").addEventListener("change", (ev) => {
    const v = ev.target.value;
    if (!v) return setPoint(null);
    setPoint({ time: new Date(v).toISOString() });
  });
  $("#asof-now").addEventListener("click", () => setPoint(null));
  window.addEventListener("hashchange", render);
}

wire();
if (state.token) signedIn();
else show("view-signin");
