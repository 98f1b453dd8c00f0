// weft run monitor: workflows, their graph, live runs, node details, run history and a JSON
// editor. Plain ES module, no dependencies; everything it needs is served by weft itself.
//
// Live updates come from the websocket channels /ws/runs/{id} and /ws/workflows/{id}; when a
// socket cannot be opened the page polls the REST API instead (GET /runs/{id} and
// /runs/{id}/nodes every 500 ms until the run has finished).
//
// Runs link to each other: a run started by a workflow.run node links to its parent
// (parent_run_id), a re-run to the run it re-runs (rerun_of), and a run lists the child runs
// its workflow.run nodes started (GET /runs?parent_run_id=). A finished run can be re-run
// from a node, or from what failed (POST /runs/{id}/rerun); a re-run's nodes that were not
// run again (their outputs copied) are marked "copied".
//
// The open workflow's schedules (GET /workflows/{id}/schedules) show under its header, with
// their next fire times; they are read again when the workflow is selected again, every
// SCHEDULES_POLL_MS, and just after a schedule's next fire time. Runs a schedule started
// (trigger_type "schedule") carry a clock mark.

const POLL_MS = 500;
const HISTORY_POLL_MS = 5000;
const HISTORY_LIMIT = 30;
const SNAPSHOT_WAIT_MS = 5000;
const MAX_RECONNECTS = 5;
const LOG_PAGE = 5000;
const LOG_PAGES = 10;
const CHILDREN_LIMIT = 200;
const CHILDREN_POLL_MS = 2000;
const CHILD_LINKS = 10; // "open child run" links in a node's details, at most
const SCHEDULES_POLL_MS = 30000;
const SCHEDULE_FIRED_GRACE_MS = 1500; // after a next fire time, read the schedules again this much later

const FINISHED_RUN = new Set(["succeeded", "failed", "cancelled"]);
const FINAL_NODE = new Set(["succeeded", "failed", "skipped", "cancelled"]);

// Graph drawing geometry (SVG user units).
const NODE_W = 164;
const NODE_H = 56;
const GAP_X = 60;
const GAP_Y = 22;
const PAD = 18;
const SVG_NS = "http://www.w3.org/2000/svg";

// The graph view: fitted to show the whole graph (never enlarged past MAX_FIT), then panned
// by dragging and zoomed by the wheel, the zoom tools or the keyboard (+, -, 0, arrows).
const FIT_MARGIN = 12; // px kept free around a fitted drawing
const MAX_FIT = 1;
const MAX_ZOOM = 4;
const ZOOM_STEP = 1.25;
const DRAG_PX = 4; // a press that moves less than this is a click, not a pan
const KEEP_VISIBLE_PX = 48; // panning never pushes the drawing out of sight
const KEY_PAN_PX = 60;

// ---------------------------------------------------------------------------------------
// small helpers

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

function pretty(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

function clip(text, maxChars) {
  return text.length <= maxChars ? text : `${text.slice(0, Math.max(1, maxChars - 1))}…`;
}

/** Milliseconds as weft says them: "250 ms", "4.2 sec", "1 min 30 sec", "2 h 5 min". */
function humanDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return `${ms} ms`;
  if (ms < 59950) return `${(ms / 1000).toFixed(1).replace(/\.0$/, "")} sec`;
  const total = Math.floor(Math.max(ms, 60000) / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  return secs ? `${minutes} min ${secs} sec` : `${minutes} min`;
}

function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const now = new Date();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

function relativeTime(iso) {
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return "";
  const s = Math.round((Date.now() - then) / 1000);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** "in 12 min", "in 3 h", "in 2 d 5 h": how far ahead an instant is ("due now" when past). */
function relativeFuture(iso) {
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return "";
  const ms = then - Date.now();
  if (ms <= 0) return "due now";
  if (ms < 60000) return "in <1 min";
  if (ms < 3600000) return `in ${Math.round(ms / 60000)} min`;
  const hours = Math.round(ms / 3600000);
  if (hours < 24) return `in ${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `in ${days} d ${hours % 24} h` : `in ${days} d`;
}

/** A date and time in the browser's time zone: "Mon 7 Dec, 07:00" (with the year when not this one). */
function formatDateTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const options = { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  if (date.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
  return date.toLocaleString([], options);
}

/** The same instant in `timeZone` ("Mon 07:00 CET"), or "" for a zone this browser does not know. */
function formatInZone(iso, timeZone) {
  try {
    return new Date(iso).toLocaleString([], { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------
// the REST API

class ApiError extends Error {
  constructor(status, body, fallbackText) {
    const err = body && typeof body === "object" && body.error ? body.error : null;
    super(err?.message || fallbackText || `HTTP ${status}`);
    this.status = status;
    this.code = err?.code || (status ? `http_${status}` : "network_error");
    this.details = Array.isArray(err?.details) ? err.details : [];
  }
}

// With WEFT_API_TOKEN set, the API answers 401 until the page sends the token: ask for it
// once, keep it in this browser, and send it on every request (and as ?token= on sockets,
// which cannot carry headers).
const TOKEN_KEY = "weft.apiToken";

function apiToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function withToken(url) {
  const token = apiToken();
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

async function api(method, path, body, retried = false) {
  const init = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (apiToken()) init.headers.authorization = `Bearer ${apiToken()}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, null, `cannot reach weft (${exc.message})`);
  }
  if (response.status === 401 && !retried) {
    const token = window.prompt("This weft needs its API token (WEFT_API_TOKEN):", "");
    if (token) {
      localStorage.setItem(TOKEN_KEY, token.trim());
      return api(method, path, body, true);
    }
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, text.slice(0, 200));
  return data;
}

function describeProblem(detail) {
  const where = [];
  if (detail.node_id) where.push(`node ${detail.node_id}`);
  if (detail.edge_id) where.push(`edge ${detail.edge_id}`);
  if (detail.field && !detail.node_id && !detail.edge_id) where.push(detail.field);
  return { message: detail.message || detail.code || "problem", where: where.join(", ") };
}

// ---------------------------------------------------------------------------------------
// state

const state = {
  workflows: [],
  workflow: null, // the open workflow (GET /workflows/{id})
  run: null, // the shown run (GET /runs/{id} shape, kept current by events)
  runReceivedAt: 0, // performance.now() when run.duration_ms was last set
  nodes: new Map(), // node_id → node run (GET /runs/{id}/nodes item shape)
  selectedNode: null,
  history: [],
  editorDirty: false,
  saving: false,
  follower: null, // RunFollower of the shown run
  channel: null, // WorkflowChannel of the open workflow
  routeSeq: 0,
  detailsSeq: 0,
  detailsTimer: null,
  serverFiltersLogs: true,
  itemsFrame: 0, // a repaint for node.item events is scheduled
  linked: new Map(), // run id → {run} or {error}: the runs the shown run links to
  children: null, // {runId, items, error, unsupported, more}: the shown run's child runs
  childrenSeq: 0,
  childrenTimer: null,
  rerunning: false, // a POST /runs/{id}/rerun is on its way
  nodeRerunError: null, // {runId, nodeId, message}: the last "Re-run from this node" refused
  schedules: null, // {workflowId, items, error}: the open workflow's schedules (null: loading)
  schedulesSeq: 0,
  schedulesTimer: null,
};

function setMode(mode) {
  const badge = $("live-mode");
  badge.dataset.mode = mode;
  badge.textContent = { live: "live", polling: "polling", connecting: "connecting…", idle: "idle" }[mode] || mode;
}

function showNotice(message, { error = false, action = null } = {}) {
  const box = $("notice");
  box.replaceChildren(el("span", { text: message }));
  if (action) box.append(el("button", { type: "button", class: "btn", onclick: action.run, text: action.label }));
  box.classList.toggle("error", error);
  box.hidden = false;
}

function hideNotice() {
  $("notice").hidden = true;
}

// ---------------------------------------------------------------------------------------
// workflows list

async function loadWorkflows() {
  try {
    const data = await api("GET", "/workflows?limit=200");
    state.workflows = data.items;
  } catch (exc) {
    state.workflows = [];
    $("workflow-empty").textContent = `Could not load workflows: ${exc.message}`;
  }
  renderWorkflows();
}

function renderWorkflows() {
  const list = $("workflow-list");
  const current = state.workflow?.id;
  list.replaceChildren(
    ...state.workflows.map((wf) => {
      const nodes = Array.isArray(wf.graph?.nodes) ? wf.graph.nodes.length : 0;
      return el(
        "li",
        { "aria-current": wf.id === current ? "true" : "false" },
        el(
          "button",
          {
            type: "button",
            "data-testid": "workflow-item",
            "data-workflow-id": wf.id,
            title: wf.name,
            onclick: () => {
              if (wf.id === state.workflow?.id) loadSchedules(); // selected again: read them afresh
              navigate(`#/workflows/${wf.id}`);
            },
          },
          el("span", { class: "item-title", text: wf.name }),
          el(
            "span",
            { class: "item-sub" },
            el("span", { text: `${nodes} node${nodes === 1 ? "" : "s"}` }),
            el("span", { text: `updated ${relativeTime(wf.updated_at)}`, title: formatTime(wf.updated_at) }),
          ),
        ),
      );
    }),
  );
  $("workflow-empty").hidden = state.workflows.length > 0;
}

// ---------------------------------------------------------------------------------------
// routing: #/workflows/{id}, #/workflows/{id}/runs/{run_id}, and #/runs/{run_id} (a run by its
// id alone, as links to runs of other workflows use: it becomes the run's full route)

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  const seq = ++state.routeSeq;
  const bare = location.hash.match(/^#\/runs\/([^/]+)\/?$/);
  if (bare) {
    await resolveRunRoute(decodeURIComponent(bare[1]), seq);
    return;
  }
  const match = location.hash.match(/^#\/workflows\/([^/]+)(?:\/runs\/([^/]+))?\/?$/);
  if (!match) {
    closeWorkflow();
    return;
  }
  const [, workflowId, runId] = match.map((part) => (part ? decodeURIComponent(part) : part));
  if (state.workflow?.id !== workflowId) {
    await openWorkflow(workflowId, seq);
    if (seq !== state.routeSeq || !state.workflow) return;
  }
  if (runId && state.run?.id !== runId) await openRun(runId);
  else if (!runId && state.run) clearRun();
}

/** #/runs/{id}: asks the API for the run's workflow, then shows it at its full route. */
async function resolveRunRoute(runId, seq) {
  let run = state.linked.get(runId)?.run ?? state.children?.items?.find((r) => r.id === runId);
  if (!run) {
    try {
      run = await api("GET", `/runs/${encodeURIComponent(runId)}`);
    } catch (exc) {
      if (seq !== state.routeSeq) return;
      closeWorkflow();
      $("welcome").replaceChildren(
        el("h1", { text: exc.status === 404 ? "Run not found" : "Could not open the run" }),
        el("p", { text: exc.message }),
      );
      return;
    }
  }
  if (seq !== state.routeSeq) return;
  location.replace(runHref(run));
}

function runHref(run) {
  return `#/workflows/${run.workflow_id}/runs/${run.id}`;
}

/** The link to a run known by its id: its full route when its workflow is known here. */
function runIdHref(runId) {
  const known = state.linked.get(runId)?.run ?? state.children?.items?.find((r) => r.id === runId);
  if (known) return runHref(known);
  if (state.run?.id === runId || state.history.some((r) => r.id === runId)) {
    return `#/workflows/${state.workflow.id}/runs/${runId}`;
  }
  return `#/runs/${runId}`;
}

function shortRun(runId) {
  return `run ${String(runId).slice(0, 8)}`;
}

function workflowName(workflowId) {
  if (state.workflow?.id === workflowId) return state.workflow.name;
  return state.workflows.find((wf) => wf.id === workflowId)?.name ?? `workflow ${String(workflowId).slice(0, 8)}`;
}

let welcomeContent = null;

function closeWorkflow() {
  welcomeContent ||= [...$("welcome").childNodes];
  $("welcome").replaceChildren(...welcomeContent);
  stopFollowing();
  state.channel?.stop();
  state.channel = null;
  state.workflow = null;
  stopSchedules();
  clearRun();
  $("workspace").hidden = true;
  $("welcome").hidden = false;
  state.history = [];
  renderHistory();
  renderWorkflows();
}

async function openWorkflow(workflowId, seq) {
  stopFollowing();
  state.channel?.stop();
  state.channel = null;
  let workflow;
  try {
    workflow = await api("GET", `/workflows/${encodeURIComponent(workflowId)}`);
  } catch (exc) {
    if (seq !== state.routeSeq) return;
    closeWorkflow();
    $("welcome").replaceChildren(
      el("h1", { text: exc.status === 404 ? "Workflow not found" : "Could not open the workflow" }),
      el("p", { text: exc.message }),
    );
    return;
  }
  if (seq !== state.routeSeq) return; // another route won meanwhile
  state.workflow = workflow;
  state.selectedNode = null; // a node of the workflow shown before
  state.history = [];
  stopSchedules();
  clearRun();
  hideNotice();
  $("welcome").hidden = true;
  $("workspace").hidden = false;
  renderWorkflowHead();
  fillEditor();
  renderWorkflows();
  renderHistory();
  loadHistory();
  renderSchedules();
  loadSchedules();
  state.channel = new WorkflowChannel(workflow.id);
  state.channel.start();
}

function renderWorkflowHead() {
  const wf = state.workflow;
  $("workflow-name").textContent = wf.name;
  $("workflow-name").title = wf.name;
  const nodes = Array.isArray(wf.graph?.nodes) ? wf.graph.nodes.length : 0;
  const edges = Array.isArray(wf.graph?.edges) ? wf.graph.edges.length : 0;
  $("workflow-meta").replaceChildren(
    el("span", { text: `${nodes} nodes · ${edges} edges` }),
    el("span", { class: "mono", title: "webhook: POST this URL", text: `POST ${wf.webhook_url}` }),
    el("span", { text: `updated ${formatTime(wf.updated_at)}` }),
  );
}

function instant(iso) {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}

/** The workflow changed (our save, another editor's save, or a refresh). The REST API and
 * the live channel spell timestamps differently ("Z" / "+00:00"): compare instants. */
function applyWorkflow(workflow, { fromElsewhere = false } = {}) {
  const current = state.workflow;
  if (!current || workflow.id !== current.id) return;
  const incoming = instant(workflow.updated_at);
  const known = instant(current.updated_at);
  if (incoming !== null && known !== null && incoming <= known) return; // same or older
  const graphChanged = JSON.stringify(workflow.graph) !== JSON.stringify(current.graph);
  const nameChanged = workflow.name !== current.name;
  state.workflow = { ...current, ...workflow };
  state.workflows = state.workflows.map((wf) => (wf.id === workflow.id ? state.workflow : wf));
  renderWorkflowHead();
  renderWorkflows();
  if (!graphChanged && !nameChanged) return;
  if (graphChanged) drawGraph();
  if (!state.editorDirty) fillEditor();
  else if (fromElsewhere && !state.saving) {
    showNotice("This workflow was saved elsewhere while you were editing.", {
      action: {
        label: "Load theirs",
        run: () => {
          fillEditor();
          hideNotice();
        },
      },
    });
  }
}

// ---------------------------------------------------------------------------------------
// the open workflow's schedules

function stopSchedules() {
  clearTimeout(state.schedulesTimer);
  state.schedulesSeq += 1; // an answer on its way is for a workflow no longer shown
  state.schedules = null;
}

/** Reads the open workflow's schedules, shows them, and reads them again in
 * SCHEDULES_POLL_MS (or just after the next fire time, when that comes first). */
async function loadSchedules() {
  clearTimeout(state.schedulesTimer);
  const workflowId = state.workflow?.id;
  if (!workflowId) return;
  const seq = ++state.schedulesSeq;
  const known = state.schedules?.workflowId === workflowId ? state.schedules.items : [];
  let result;
  try {
    const data = await api("GET", `/workflows/${encodeURIComponent(workflowId)}/schedules`);
    result = { workflowId, items: Array.isArray(data?.items) ? data.items : [], error: null };
  } catch (exc) {
    result = { workflowId, items: known, error: exc.message };
  }
  if (seq !== state.schedulesSeq || state.workflow?.id !== workflowId) return;
  state.schedules = result;
  renderSchedules();
  state.schedulesTimer = setTimeout(loadSchedules, schedulesRefreshIn(result.items));
}

/** Milliseconds until the schedules are read again: SCHEDULES_POLL_MS, or sooner when a
 * schedule fires before that (its run starts and its next fire time moves on). */
function schedulesRefreshIn(items) {
  const now = Date.now();
  let wait = SCHEDULES_POLL_MS;
  for (const schedule of items) {
    const at = schedule.enabled ? instant(schedule.next_fire_at) : null;
    if (at !== null && at > now) wait = Math.min(wait, at - now + SCHEDULE_FIRED_GRACE_MS);
  }
  return Math.max(1000, wait);
}

function renderSchedules() {
  const box = $("schedules");
  const data = state.workflow && state.schedules?.workflowId === state.workflow.id ? state.schedules : null;
  const label = el("span", { class: "schedules-label", title: "Schedules: this workflow runs on these crons" }, el("span", { class: "clock", "aria-hidden": "true" }));
  const parts = [label];
  if (!data) {
    parts.push(el("span", { class: "muted", text: "loading…" }));
  } else if (!data.items.length && !data.error) {
    parts.push(el("span", { class: "muted", "data-testid": "schedules-empty", text: "no schedules" }));
  } else if (data.items.length) {
    parts.push(el("ul", { class: "schedule-list", "data-testid": "schedule-list" }, data.items.map(scheduleRow)));
  }
  if (data?.error) {
    parts.push(el("span", { class: "field-error", "data-testid": "schedules-error", text: `could not load them: ${data.error}` }));
  }
  box.dataset.state = !data ? "loading" : data.error ? "error" : data.items.length ? "some" : "none";
  box.dataset.count = String(data?.items.length ?? 0);
  box.replaceChildren(...parts);
}

function scheduleRow(schedule) {
  const enabled = schedule.enabled !== false;
  const payload = schedule.payload && typeof schedule.payload === "object" && Object.keys(schedule.payload).length
    ? `\npayload: ${JSON.stringify(schedule.payload)}`
    : "";
  let next;
  if (enabled && schedule.next_fire_at) {
    const zoned = formatInZone(schedule.next_fire_at, schedule.timezone);
    next = el(
      "span",
      { class: "schedule-next" },
      el("span", { class: "muted", text: "next" }),
      el("time", {
        "data-testid": "schedule-next",
        datetime: schedule.next_fire_at,
        title: `${zoned ? `${zoned} in ${schedule.timezone} · ` : ""}${schedule.next_fire_at}`,
        text: formatDateTime(schedule.next_fire_at),
      }),
      el("span", { class: "muted", "data-testid": "schedule-next-relative", text: relativeFuture(schedule.next_fire_at) }),
    );
  } else {
    next = el(
      "span",
      { class: "schedule-next" },
      el("span", { class: "muted", text: "next" }),
      el("span", { class: "muted", "data-testid": "schedule-next", text: "—", title: enabled ? "no next fire time" : "disabled: it does not fire" }),
    );
  }
  // The last fire time, as "3 h ago" (the date and time in its tooltip); one ahead of this
  // browser's clock (a clock skew) as its date and time.
  const lastAt = instant(schedule.last_fired_at);
  const last =
    lastAt !== null
      ? el("time", {
          "data-testid": "schedule-last",
          datetime: schedule.last_fired_at,
          title: `${formatDateTime(schedule.last_fired_at)} · ${schedule.last_fired_at}`,
          text: lastAt <= Date.now() ? relativeTime(schedule.last_fired_at) : formatDateTime(schedule.last_fired_at),
        })
      : el("span", { "data-testid": "schedule-last", text: "never" });
  return el(
    "li",
    {
      class: "schedule",
      "data-testid": "schedule",
      "data-schedule-id": schedule.id,
      "data-enabled": String(enabled),
      title: `schedule ${schedule.id}${payload}`,
    },
    el("code", { class: "schedule-cron", "data-testid": "schedule-cron", text: schedule.cron }),
    el("span", { class: "schedule-zone", "data-testid": "schedule-timezone", text: schedule.timezone }),
    el("span", {
      class: `pill ${enabled ? "on" : "off"}`,
      "data-testid": "schedule-state",
      "data-enabled": String(enabled),
      text: enabled ? "enabled" : "disabled",
    }),
    next,
    el("span", { class: "schedule-last muted" }, "last ", last),
  );
}

/** How a run was started: its trigger type, with a clock mark when a schedule started it. */
function triggerMark(triggerType, testid) {
  const scheduled = triggerType === "schedule";
  return el(
    "span",
    {
      class: scheduled ? "trigger trigger-schedule" : "trigger",
      "data-testid": testid,
      "data-trigger": triggerType ?? "",
      title: scheduled ? "started by a schedule" : undefined,
    },
    scheduled ? el("span", { class: "clock", "aria-hidden": "true" }) : null,
    triggerType ?? "",
  );
}

// ---------------------------------------------------------------------------------------
// the graph: layered left to right

function graphParts(graph) {
  const seen = new Set();
  const nodes = [];
  for (const node of Array.isArray(graph?.nodes) ? graph.nodes : []) {
    if (!node || typeof node.id !== "string" || seen.has(node.id)) continue;
    seen.add(node.id);
    nodes.push(node);
  }
  const edges = (Array.isArray(graph?.edges) ? graph.edges : []).filter(
    (e) => e && seen.has(e.from) && seen.has(e.to) && e.from !== e.to,
  );
  return { nodes, edges };
}

/** Layer of a node = 1 + the max layer of its parents (roots are layer 0). */
function layout(graph) {
  const { nodes, edges } = graphParts(graph);
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const parents = new Map(nodes.map((n) => [n.id, []]));
  const children = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    parents.get(e.to).push(e.from);
    children.get(e.from).push(e.to);
  }
  const layer = new Map();
  const indegree = new Map(nodes.map((n) => [n.id, parents.get(n.id).length]));
  const queue = nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  for (const id of queue) layer.set(id, 0);
  while (queue.length) {
    const id = queue.shift();
    for (const child of children.get(id)) {
      layer.set(child, Math.max(layer.get(child) ?? 0, layer.get(id) + 1));
      indegree.set(child, indegree.get(child) - 1);
      if (indegree.get(child) === 0) queue.push(child);
    }
  }
  // Nodes on a cycle (an invalid graph) still get a column: after their placed parents.
  for (const n of nodes) {
    if (layer.has(n.id) && indegree.get(n.id) === 0) continue;
    const placed = parents.get(n.id).filter((p) => layer.has(p) && indegree.get(p) === 0);
    layer.set(n.id, placed.length ? Math.max(...placed.map((p) => layer.get(p))) + 1 : 0);
  }
  const columns = [];
  for (const n of nodes) {
    const l = layer.get(n.id);
    (columns[l] ||= []).push(n.id);
  }
  // Order each column by the mean row of its parents (fewer crossings), then graph order.
  const row = new Map();
  columns.forEach((col, l) => {
    if (l > 0) {
      const key = (id) => {
        const rows = parents.get(id).filter((p) => row.has(p)).map((p) => row.get(p));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Number.MAX_SAFE_INTEGER;
      };
      col.sort((a, b) => key(a) - key(b) || index.get(a) - index.get(b));
    }
    col.forEach((id, i) => row.set(id, i - (col.length - 1) / 2));
  });
  const tallest = Math.max(1, ...Array.from(columns, (c) => c?.length ?? 0));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const width = PAD * 2 + columns.length * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const pos = new Map();
  columns.forEach((col, l) => {
    if (!col) return;
    const top = (height - (col.length * NODE_H + (col.length - 1) * GAP_Y)) / 2;
    col.forEach((id, i) => pos.set(id, { x: PAD + l * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
  });
  return { nodes, edges, pos, width: Math.max(width, 200), height };
}

function nodeStatus(nodeId) {
  const run = state.run;
  if (!run) return "none";
  const nodeRun = state.nodes.get(nodeId);
  if (nodeRun?.status) return nodeRun.status;
  return FINISHED_RUN.has(run.status) ? "none" : "pending";
}

function takenPort(nodeId) {
  const output = state.nodes.get(nodeId)?.output;
  return output && typeof output === "object" && typeof output.port === "string" ? output.port : null;
}

/** A for_each node's progress, `{done, total}`, or null (from GET /runs/{id}/nodes or node.item). */
function itemsOf(nodeRun) {
  const items = nodeRun?.items;
  if (!items || typeof items !== "object") return null;
  const done = Number(items.done);
  const total = Number(items.total);
  return Number.isFinite(done) && Number.isFinite(total) && total >= 0 ? { done, total } : null;
}

/** How a failed node's failure was handled ("continue", "branch"), or null when it was not:
 * its node.failed event says so (`handled`); GET /runs/{id}/nodes shows it by the output a
 * handled failure keeps ({"error": …}; an unhandled one has none), as does a run that
 * succeeded in spite of it. */
function handledOf(nodeId) {
  const nodeRun = state.run ? state.nodes.get(nodeId) : null;
  if (nodeRun?.status !== "failed") return null;
  if (typeof nodeRun.handled === "string" && nodeRun.handled) return nodeRun.handled;
  const kept = nodeRun.output !== null && nodeRun.output !== undefined;
  if (!kept && state.run.status !== "succeeded") return null;
  const declared = graphNode(nodeId)?.params?.on_error;
  return declared === "continue" || declared === "branch" ? declared : "on_error";
}

function drawGraph() {
  const graph = state.workflow?.graph;
  const box = $("graph-svg");
  const { nodes, edges, pos, width, height } = layout(graph);
  $("graph-empty").hidden = nodes.length > 0;
  box.style.display = nodes.length ? "" : "none";

  const defs = svg(
    "defs",
    {},
    svg(
      "marker",
      { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }),
    ),
  );
  const edgeLayer = svg("g", { class: "edges" });
  for (const e of edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const dx = Math.max(28, Math.abs(x2 - x1) / 2);
    const d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    const group = svg("g", {
      class: "g-edge",
      "data-testid": "graph-edge",
      "data-edge-id": e.id ?? "",
      "data-from": e.from,
      "data-to": e.to,
      "data-port": e.port ?? undefined,
    });
    group.append(svg("path", { d, "marker-end": "url(#arrow)" }));
    if (e.port !== undefined && e.port !== null && e.port !== "") {
      // The cubic's midpoint (t = 0.5).
      const mx = (x1 + 3 * (x1 + dx) + 3 * (x2 - dx) + x2) / 8;
      const my = (y1 + y2) / 2;
      const label = String(e.port);
      const w = label.length * 6.6 + 10;
      group.append(
        svg(
          "g",
          { class: "port-label", "data-testid": "edge-port" },
          svg("rect", { x: mx - w / 2, y: my - 8, width: w, height: 16, rx: 8 }),
          svg("text", { x: mx, y: my + 3.5, "text-anchor": "middle", text: label }),
        ),
      );
    }
    edgeLayer.append(group);
  }
  const nodeLayer = svg("g", { class: "nodes" });
  for (const n of nodes) {
    const p = pos.get(n.id);
    const type = typeof n.type === "string" ? n.type : "?";
    const group = svg("g", {
      class: "g-node",
      transform: `translate(${p.x},${p.y})`,
      "data-testid": "graph-node",
      "data-node-id": n.id,
      "data-node-type": type,
      "data-status": "none",
      tabindex: 0,
      role: "button",
      "aria-label": `node ${n.id} (${type})`,
    });
    group.append(
      svg("title", { text: `${n.id} · ${type}` }),
      svg("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 7 }),
      svg("rect", { class: "stripe", x: 0, y: 0, width: 5, height: NODE_H, rx: 2 }),
      svg("text", { class: "nid", x: 14, y: 23, text: clip(n.id, 19) }),
      svg("text", { class: "ntype", x: 14, y: 42, text: clip(type, 12) }),
      svg("text", { class: "nstatus", x: NODE_W - 10, y: 42, "text-anchor": "end", text: "" }),
    );
    group.addEventListener("click", () => selectNode(n.id));
    group.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        selectNode(n.id);
      }
    });
    nodeLayer.append(group);
  }
  box.replaceChildren(defs, svg("g", { class: "viewport", "data-testid": "graph-viewport" }, edgeLayer, nodeLayer));
  // A new drawing (another graph, or this one changed) is fitted; a redraw of the same one
  // (another run shown) keeps the view the user panned and zoomed to.
  const key = JSON.stringify([width, height, Array.from(pos), edges.map((e) => [e.from, e.to, e.port ?? null])]);
  Object.assign(view, { width: nodes.length ? width : 0, height });
  if (key !== view.key) {
    view.key = key;
    view.fitted = true;
  }
  if (view.fitted) fitGraph();
  else applyView();
  paintStatuses();
}

// ---------------------------------------------------------------------------------------
// the graph view: fit, zoom, pan

const view = {
  width: 0, // the drawing's size in SVG user units (0: nothing drawn)
  height: 0,
  key: "", // what was drawn: a different key is a different drawing, fitted anew
  k: 1, // scale, then translation in px: screen = drawing × k + t
  tx: 0,
  ty: 0,
  fitted: true, // showing the whole graph; refitted when the view is resized
};

function viewSize() {
  const box = $("graph");
  return { w: box.clientWidth, h: box.clientHeight };
}

/** The scale that shows the whole drawing with a margin (never above MAX_FIT). */
function fitScale() {
  const { w, h } = viewSize();
  if (!view.width || !w || !h) return 1;
  const k = Math.min(MAX_FIT, (w - 2 * FIT_MARGIN) / view.width, (h - 2 * FIT_MARGIN) / view.height);
  return Math.max(k, 0.001);
}

/** Scales the drawing to show it whole, centred. Without a size yet (the view is hidden) it
 * stays marked as fitted: the resize observer fits it when it shows. */
function fitGraph() {
  view.fitted = true;
  const { w, h } = viewSize();
  if (!view.width || !w || !h) return;
  view.k = fitScale();
  view.tx = (w - view.width * view.k) / 2;
  view.ty = (h - view.height * view.k) / 2;
  applyView();
}

/** Keeps at least KEEP_VISIBLE_PX of the drawing on screen on each axis. */
function clampView() {
  const { w, h } = viewSize();
  if (!w || !h) return;
  const clamp = (t, size, room) => {
    const keep = Math.min(KEEP_VISIBLE_PX, size, room);
    return Math.min(room - keep, Math.max(keep - size, t));
  };
  view.tx = clamp(view.tx, view.width * view.k, w);
  view.ty = clamp(view.ty, view.height * view.k, h);
}

function applyView() {
  const layer = $("graph-svg").querySelector(".viewport");
  if (layer) layer.setAttribute("transform", `translate(${view.tx} ${view.ty}) scale(${view.k})`);
  const box = $("graph");
  box.dataset.fitted = String(view.fitted);
  box.dataset.scale = view.k.toFixed(4);
  $("zoom-level").textContent = `${Math.round(view.k * 100)}%`;
}

/** Zooms by `factor` about the point (px, py) of the view, which stays put. */
function zoomBy(factor, px, py) {
  if (!view.width) return;
  const min = Math.min(0.25, fitScale() / 2);
  const k = Math.min(MAX_ZOOM, Math.max(min, view.k * factor));
  if (k === view.k) return;
  view.tx = px - ((px - view.tx) * k) / view.k;
  view.ty = py - ((py - view.ty) * k) / view.k;
  view.k = k;
  view.fitted = false;
  clampView();
  applyView();
}

function zoomAtCentre(factor) {
  const { w, h } = viewSize();
  zoomBy(factor, w / 2, h / 2);
}

function panBy(dx, dy) {
  if (!view.width) return;
  view.tx += dx;
  view.ty += dy;
  view.fitted = false;
  clampView();
  applyView();
}

function onViewResized() {
  if (view.fitted) fitGraph();
  else {
    clampView();
    applyView();
  }
}

/** Dragging anywhere in the view pans (a press that does not move stays a click on a node);
 * the wheel zooms about the pointer; +, -, 0 and the arrows work when the graph has focus. */
function wireGraphView() {
  const box = $("graph");
  let drag = null;
  let swallowClick = false;
  box.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || !view.width) return;
    drag = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
  });
  box.addEventListener("pointermove", (ev) => {
    if (!drag || ev.pointerId !== drag.id) return;
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved) {
      if (Math.hypot(dx, dy) < DRAG_PX) return;
      drag.moved = true;
      box.setPointerCapture(ev.pointerId);
      box.classList.add("panning");
    }
    view.tx = drag.tx + dx;
    view.ty = drag.ty + dy;
    view.fitted = false;
    clampView();
    applyView();
  });
  const endDrag = (ev) => {
    if (!drag || ev.pointerId !== drag.id) return;
    if (drag.moved) {
      // The click that ends a drag is not a click on the node under the pointer.
      swallowClick = true;
      setTimeout(() => {
        swallowClick = false;
      }, 0);
      box.classList.remove("panning");
    }
    drag = null;
  };
  box.addEventListener("pointerup", endDrag);
  box.addEventListener("pointercancel", endDrag);
  box.addEventListener(
    "click",
    (ev) => {
      if (!swallowClick) return;
      swallowClick = false;
      ev.stopPropagation();
      ev.preventDefault();
    },
    true,
  );
  box.addEventListener(
    "wheel",
    (ev) => {
      if (!view.width) return;
      ev.preventDefault();
      const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? viewSize().h : 1;
      if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY) && !ev.ctrlKey) {
        panBy(-ev.deltaX * unit, 0); // a sideways swipe pans
        return;
      }
      // A pinch on a touchpad arrives as a wheel with ctrlKey and small deltas.
      const factor = Math.exp(-ev.deltaY * unit * (ev.ctrlKey ? 0.01 : 0.002));
      const rect = box.getBoundingClientRect();
      zoomBy(factor, ev.clientX - rect.left - box.clientLeft, ev.clientY - rect.top - box.clientTop);
    },
    { passive: false },
  );
  box.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const keys = {
      "+": () => zoomAtCentre(ZOOM_STEP),
      "=": () => zoomAtCentre(ZOOM_STEP),
      "-": () => zoomAtCentre(1 / ZOOM_STEP),
      _: () => zoomAtCentre(1 / ZOOM_STEP),
      0: fitGraph,
      ArrowLeft: () => panBy(KEY_PAN_PX, 0),
      ArrowRight: () => panBy(-KEY_PAN_PX, 0),
      ArrowUp: () => panBy(0, KEY_PAN_PX),
      ArrowDown: () => panBy(0, -KEY_PAN_PX),
    };
    const action = keys[ev.key];
    if (!action) return;
    ev.preventDefault();
    action();
  });
  // A node reached with the keyboard (Tab) is brought into view.
  box.addEventListener("focusin", (ev) => {
    const group = ev.target.closest?.(".g-node");
    if (!group || !group.matches(":focus-visible")) return;
    const r = group.getBoundingClientRect();
    const v = box.getBoundingClientRect();
    if (r.left >= v.left && r.right <= v.right && r.top >= v.top && r.bottom <= v.bottom) return;
    panBy(v.left + v.width / 2 - (r.left + r.width / 2), v.top + v.height / 2 - (r.top + r.height / 2));
  });
  $("zoom-in").addEventListener("click", () => zoomAtCentre(ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => zoomAtCentre(1 / ZOOM_STEP));
  $("zoom-fit").addEventListener("click", fitGraph);
  new ResizeObserver(onViewResized).observe(box);
}

/** Colours the drawn nodes from state.nodes and marks untaken branch edges. */
function paintStatuses() {
  for (const group of document.querySelectorAll('[data-testid="graph-node"]')) {
    const id = group.dataset.nodeId;
    const status = nodeStatus(id);
    if (group.dataset.status !== status) group.dataset.status = status;
    const label = group.querySelector(".nstatus");
    if (label.textContent !== (status === "none" ? "" : status)) {
      label.textContent = status === "none" ? "" : status;
      fitTypeLabel(group, label);
    }
    group.classList.toggle("selected", id === state.selectedNode);
    paintTags(group, itemsOf(state.run ? state.nodes.get(id) : null), handledOf(id), copiedFrom(id));
  }
  for (const group of document.querySelectorAll('[data-testid="graph-edge"]')) {
    const port = group.dataset.port;
    const taken = port === undefined ? null : takenPort(group.dataset.from);
    group.classList.toggle("untaken", taken !== null && taken !== port);
  }
}

/** Shortens a node's type label so that it ends before its status label ("workflow.run"
 * beside "SUCCEEDED" would overlap). */
function fitTypeLabel(group, statusLabel) {
  const typeLabel = group.querySelector(".ntype");
  const full = group.dataset.nodeType || "";
  let chars = Math.min(12, full.length);
  typeLabel.textContent = clip(full, chars);
  if (!statusLabel.textContent) return;
  const room = NODE_W - 10 - statusLabel.getComputedTextLength() - 6 - 14;
  while (chars > 4 && typeLabel.getComputedTextLength() > room) {
    chars -= 1;
    typeLabel.textContent = clip(full, chars);
  }
}

/** Tags on a node's top edge ("handled", "k/n items", "copied", right-aligned) and, for a
 * for_each node, a progress bar along its bottom. Redrawn only when they change. */
function paintTags(group, items, handled, copied) {
  const key = `${items ? `${items.done}/${items.total}` : ""}|${handled ?? ""}|${copied ?? ""}`;
  if (group.__tags === key) return;
  group.__tags = key;
  if (handled) group.dataset.handled = handled;
  else delete group.dataset.handled;
  if (copied) group.dataset.copied = copied;
  else delete group.dataset.copied;
  for (const old of group.querySelectorAll(".tags, .items-bar")) old.remove();
  const tags = [];
  if (copied) tags.push({ kind: "copied", text: "copied", title: `not run again: its output is copied from ${shortRun(copied)}` });
  if (items) tags.push({ kind: "items", text: `${items.done}/${items.total} items`, title: `${items.done} of ${items.total} items finished` });
  if (handled) {
    const how = handled === "on_error" ? "its on_error" : `on_error "${handled}"`;
    tags.push({ kind: "handled", text: "handled", title: `failed, and handled by ${how}: the run went on` });
  }
  if (!tags.length) return;
  const layer = svg("g", { class: "tags" });
  let right = NODE_W - 8;
  for (const tag of tags) {
    const w = tag.text.length * 6.1 + 12; // 10px monospace
    layer.append(
      svg(
        "g",
        { class: `tag tag-${tag.kind}` },
        svg("title", { text: tag.title }),
        svg("rect", { x: right - w, y: -8, width: w, height: 16, rx: 8 }),
        svg("text", { x: right - w / 2, y: 3.5, "text-anchor": "middle", "data-testid": `node-${tag.kind}`, text: tag.text }),
      ),
    );
    right -= w + 4;
  }
  group.append(layer);
  if (items) {
    const full = NODE_W - 22;
    const share = items.total > 0 ? Math.min(1, items.done / items.total) : 1;
    group.append(
      svg(
        "g",
        { class: "items-bar" },
        svg("rect", { class: "items-track", x: 12, y: NODE_H - 7, width: full, height: 3, rx: 1.5 }),
        svg("rect", { class: "items-fill", x: 12, y: NODE_H - 7, width: full * share, height: 3, rx: 1.5 }),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------
// the shown run: run bar, statuses, following it live

function clearRun() {
  stopFollowing();
  clearTimeout(state.childrenTimer);
  state.run = null;
  state.nodes = new Map();
  state.children = null;
  state.nodeRerunError = null;
  renderRunBar();
  drawGraph();
  renderDetails();
  renderHistory();
}

function stopFollowing() {
  state.follower?.stop();
  state.follower = null;
  setMode("idle");
}

async function openRun(runId) {
  stopFollowing();
  const workflowId = state.workflow?.id;
  let run;
  let nodes;
  try {
    [run, nodes] = await Promise.all([
      api("GET", `/runs/${encodeURIComponent(runId)}`),
      api("GET", `/runs/${encodeURIComponent(runId)}/nodes`),
    ]);
  } catch (exc) {
    if (state.workflow?.id !== workflowId) return;
    showNotice(exc.status === 404 ? `Run ${runId} not found.` : `Could not load the run: ${exc.message}`, { error: true });
    return;
  }
  if (state.workflow?.id !== workflowId || !location.hash.endsWith(runId)) return;
  if (run.workflow_id !== workflowId) {
    navigate(`#/workflows/${run.workflow_id}/runs/${run.id}`);
    return;
  }
  hideNotice();
  applySnapshot(run, nodes.items);
  renderHistory();
  renderDetails();
  loadLinkedRuns(run);
  loadChildren();
  if (!FINISHED_RUN.has(run.status)) {
    state.follower = new RunFollower(run.id);
    state.follower.start();
  }
}

function setRun(run) {
  state.run = run;
  state.runReceivedAt = performance.now();
}

function applySnapshot(run, nodes) {
  const before = statusOf(state.selectedNode);
  const same = state.run?.id === run.id;
  const previous = same ? state.nodes : new Map();
  if (!same) {
    // Another run: its children and re-run errors are its own.
    clearTimeout(state.childrenTimer);
    state.children = null;
    state.nodeRerunError = null;
  }
  setRun({ ...run });
  state.nodes = new Map((nodes || []).map((n) => [n.node_id, keepLive(previous.get(n.node_id), n)]));
  afterRunChange(before);
}

/** A node record from the REST API does not say how its failure was handled, nor where a
 * copied output came from; the node.failed / node.succeeded event did: keep that. */
function keepLive(live, fresh) {
  if (!live || live.status !== fresh.status) return fresh;
  const kept = {};
  if (fresh.handled === undefined && live.handled) kept.handled = live.handled;
  if (fresh.copied_from === undefined && live.copied_from) kept.copied_from = live.copied_from;
  return Object.keys(kept).length ? { ...fresh, ...kept } : fresh;
}

/** The run a re-run's node took its output from (it was not run again), or null: its
 * node.succeeded event says so (`copied_from`); in GET /runs/{id}/nodes a copied node is one
 * that succeeded without ever starting (attempt 0, no started_at). */
function copiedFrom(nodeId) {
  const run = state.run;
  const nodeRun = run && nodeId ? state.nodes.get(nodeId) : null;
  if (nodeRun?.status !== "succeeded") return null;
  if (typeof nodeRun.copied_from === "string" && nodeRun.copied_from) return nodeRun.copied_from;
  if (run.rerun_of && nodeRun.attempt === 0 && !nodeRun.started_at) return run.rerun_of;
  return null;
}

function updateRun(fields) {
  if (!state.run) return;
  const run = { ...state.run, ...fields };
  if ("duration_ms" in fields) setRun(run);
  else state.run = run;
  if (fields.status === "running" && run.duration_ms == null) {
    run.duration_ms = 0;
    state.runReceivedAt = performance.now();
  }
  afterRunChange(statusOf(state.selectedNode));
}

function updateNode(nodeId, fields) {
  if (!nodeId) return;
  const before = statusOf(state.selectedNode);
  const prev = state.nodes.get(nodeId) || { node_id: nodeId, node_type: fields.node_type ?? null };
  state.nodes.set(nodeId, { ...prev, ...fields });
  afterRunChange(before);
}

/** A for_each node's count, from node.item events: a node may have thousands of items, so
 * the page is repainted once a frame, not once an item. */
function setItems(nodeId, items) {
  const prev = state.nodes.get(nodeId) || { node_id: nodeId, node_type: null };
  state.nodes.set(nodeId, { ...prev, items });
  if (state.itemsFrame) return;
  state.itemsFrame = requestAnimationFrame(() => {
    state.itemsFrame = 0;
    paintStatuses();
    renderDetailsHead();
  });
}

function statusOf(nodeId) {
  return nodeId ? nodeStatus(nodeId) : null;
}

function afterRunChange(selectedBefore) {
  renderRunBar();
  paintStatuses();
  patchHistoryItem();
  if (state.selectedNode) {
    const now = statusOf(state.selectedNode);
    renderDetailsHead();
    if (now !== selectedBefore) scheduleDetailsLoad();
  }
}

function runDurationMs() {
  const run = state.run;
  if (!run || run.duration_ms === null || run.duration_ms === undefined) return null;
  if (FINISHED_RUN.has(run.status) || run.status !== "running") return run.duration_ms;
  return run.duration_ms + (performance.now() - state.runReceivedAt);
}

function renderRunBar() {
  const run = state.run;
  const status = run?.status ?? "none";
  $("run-bar").dataset.status = status;
  const badge = $("run-status");
  badge.dataset.status = status;
  badge.textContent = run ? status : "no run";
  const progress = run ? Math.max(0, Math.min(100, Math.round(run.progress ?? 0))) : 0;
  const bar = $("run-progress");
  bar.setAttribute("aria-valuenow", String(progress));
  bar.querySelector(".progress-fill").style.width = `${progress}%`;
  $("run-progress-text").textContent = `${progress}%`;
  renderDuration();
  const runId = $("run-id");
  const runIdKey = run ? `${run.id}|${run.trigger_type}` : "";
  if (runId.__key !== runIdKey) {
    runId.__key = runIdKey;
    if (run) runId.replaceChildren(`run ${run.id.slice(0, 8)} · `, triggerMark(run.trigger_type, "run-trigger"));
    else runId.textContent = "press Run to start one";
  }
  runId.title = run ? run.id : "";
  const stopped = [...state.nodes.values()].some((n) => n.status === "failed" || n.status === "cancelled");
  const rerunFailed = $("rerun-failed");
  rerunFailed.hidden = !(run && FINISHED_RUN.has(run.status) && stopped);
  rerunFailed.disabled = state.rerunning;
  renderRunLinks();
  const error = $("run-error");
  if (run?.error) {
    const e = run.error;
    const where = e.node_id ? `node ${e.node_id}: ` : "";
    const type = e.type ? `${e.type}: ` : "";
    error.textContent = `${where}${type}${e.message ?? pretty(e)}`;
    error.hidden = false;
  } else {
    error.hidden = true;
  }
}

function renderDuration() {
  const run = state.run;
  const text = !run
    ? "—"
    : FINISHED_RUN.has(run.status) && run.duration
      ? run.duration
      : humanDuration(runDurationMs());
  const node = $("run-duration");
  if (node.textContent !== text) node.textContent = text;
}

setInterval(() => {
  if (state.run?.status === "running") renderDuration();
}, 200);

// ---------------------------------------------------------------------------------------
// runs linked to the shown run: its parent, the run it re-runs, its child runs

/** Fetches the runs the shown run links to (parent, re-run of), for their workflow and status. */
function loadLinkedRuns(run) {
  for (const id of [run.parent_run_id, run.rerun_of]) {
    if (!id) continue;
    api("GET", `/runs/${encodeURIComponent(id)}`).then(
      (linked) => {
        state.linked.set(id, { run: linked });
        renderRunLinks();
      },
      (exc) => {
        if (!state.linked.get(id)?.run) state.linked.set(id, { error: exc.status === 404 ? "no longer exists" : exc.message });
        renderRunLinks();
      },
    );
  }
}

/** True when the node is a workflow.run (it starts child runs). */
function startsChildRuns(nodeId) {
  if (!nodeId) return false;
  return graphNode(nodeId)?.type === "workflow.run" || state.nodes.get(nodeId)?.node_type === "workflow.run";
}

/** True when the shown run may have child runs: its graph has a workflow.run node. */
function mayHaveChildren() {
  if (graphParts(state.workflow?.graph).nodes.some((n) => n.type === "workflow.run")) return true;
  return [...state.nodes.values()].some((n) => n.node_type === "workflow.run");
}

function scheduleChildrenLoad(delay) {
  clearTimeout(state.childrenTimer);
  state.childrenTimer = setTimeout(loadChildren, delay);
}

/** The shown run's child runs (GET /runs?parent_run_id=), oldest first; polled while the run
 * goes on (it may start more) or a child has not finished. */
async function loadChildren() {
  clearTimeout(state.childrenTimer);
  const run = state.run;
  if (!run) return;
  const seq = ++state.childrenSeq;
  const children = { runId: run.id, items: [], error: null, unsupported: false, more: false };
  try {
    const data = await api("GET", `/runs?parent_run_id=${encodeURIComponent(run.id)}&limit=${CHILDREN_LIMIT}`);
    // Only this run's children, even from a server that ignores the filter.
    children.items = (data.items || []).filter((r) => r.parent_run_id === run.id).reverse();
    children.more = Boolean(data.next_before) && children.items.length >= CHILDREN_LIMIT;
  } catch (exc) {
    children.error = exc.message;
    children.unsupported = exc.status === 400 || exc.status === 422; // a server without the filter
  }
  if (seq !== state.childrenSeq || state.run?.id !== run.id) return;
  state.children = children;
  renderRunLinks();
  renderDetailsActions();
  if (children.unsupported) return;
  const unfinished = children.items.some((c) => !FINISHED_RUN.has(c.status));
  if (unfinished || (!FINISHED_RUN.has(state.run.status) && mayHaveChildren())) scheduleChildrenLoad(CHILDREN_POLL_MS);
}

/** The child runs a node started, from its output ({run_id}, or {items: [{run_id}]} under
 * for_each) or, when the child failed, from its error ("child run <id> failed: …"). */
function childRunsOf(nodeId) {
  if (!state.run || !startsChildRuns(nodeId)) return [];
  const nodeRun = state.nodes.get(nodeId);
  const ids = [];
  const output = nodeRun?.output;
  if (output && typeof output === "object") {
    if (typeof output.run_id === "string") ids.push(output.run_id);
    if (Array.isArray(output.items)) {
      for (const item of output.items) if (typeof item?.run_id === "string") ids.push(item.run_id);
    }
  }
  if (!ids.length && typeof nodeRun?.error?.message === "string") {
    const found = nodeRun.error.message.match(/child run ([0-9a-f-]{36})/i);
    if (found) ids.push(found[1]);
  }
  return ids;
}

/** child run id → the node of the shown run that started it (when its output says so). */
function nodesOfChildren() {
  const byChild = new Map();
  for (const nodeId of state.nodes.keys()) for (const id of childRunsOf(nodeId)) byChild.set(id, nodeId);
  return byChild;
}

/** Under the run bar: "started by run …", "re-run of run …" and the child runs. Rebuilt
 * only when what it shows changes. */
function renderRunLinks() {
  const box = $("run-links");
  const run = state.run;
  const children = run && state.children?.runId === run.id ? state.children : null;
  const showChildren = Boolean(run) && (Boolean(children?.items.length) || mayHaveChildren());
  const byChild = showChildren && children?.items.length ? nodesOfChildren() : new Map();
  const linkedKey = (id) => (id ? [id, state.linked.get(id)] : null);
  const key = JSON.stringify([
    run?.id,
    run && linkedKey(run.parent_run_id),
    run && linkedKey(run.rerun_of),
    showChildren && children,
    Array.from(byChild),
    run && !FINISHED_RUN.has(run.status),
  ]);
  if (box.__key === key) return;
  box.__key = key;
  const rows = [];
  if (run?.parent_run_id) {
    rows.push(linkRow("run-parent", "started by", run.parent_run_id, "The run whose workflow.run node started this one"));
  }
  if (run?.rerun_of) rows.push(linkRow("run-rerun-of", "re-run of", run.rerun_of, "The run this one re-runs"));
  if (showChildren) rows.push(childrenBlock(run, children, byChild));
  box.replaceChildren(...rows);
  box.hidden = rows.length === 0;
}

function linkRow(testid, label, runId, title) {
  const entry = state.linked.get(runId);
  const linked = entry?.run;
  const info = [];
  if (linked) {
    if (linked.workflow_id !== state.workflow?.id) {
      info.push(el("span", { class: "muted", "data-testid": `${testid}-workflow`, text: `in ${workflowName(linked.workflow_id)}` }));
    }
    info.push(el("span", { class: "badge", "data-status": linked.status, "data-testid": `${testid}-status`, text: linked.status }));
  } else if (entry?.error) {
    info.push(el("span", { class: "muted", text: `(${entry.error})` }));
  }
  return el(
    "div",
    { class: "runlink", "data-testid": testid, title },
    el("span", { class: "muted", text: label }),
    el("a", { href: runIdHref(runId), class: "mono", "data-testid": `${testid}-link`, "data-run-id": runId, title: `run ${runId}`, text: shortRun(runId) }),
    ...info,
  );
}

function childrenBlock(run, children, byChild) {
  const items = children?.items ?? [];
  const head = el(
    "div",
    { class: "runchildren-head" },
    el("span", { class: "muted", text: "child runs" }),
    children && !children.error ? el("span", { class: "pill", "data-testid": "run-children-count", text: String(items.length) }) : null,
  );
  let body;
  if (!children) body = el("span", { class: "muted", text: "loading…" });
  else if (children.error && !items.length) {
    body = el("span", {
      class: children.unsupported ? "muted" : "field-error",
      "data-testid": "run-children-note",
      text: children.unsupported
        ? `this server cannot list them (GET /runs?parent_run_id: ${children.error})`
        : `could not load them: ${children.error}`,
    });
  } else if (!items.length) {
    body = el("span", { class: "muted", "data-testid": "run-children-note", text: FINISHED_RUN.has(run.status) ? "none" : "none yet" });
  } else {
    body = el(
      "ul",
      { class: "child-list", "data-testid": "child-run-list" },
      items.map((child) => {
        const nodeId = byChild.get(child.id);
        return el(
          "li",
          { "data-testid": "child-run", "data-run-id": child.id, "data-status": child.status },
          el("a", { href: runHref(child), class: "mono", "data-testid": "child-run-link", title: `run ${child.id}`, text: shortRun(child.id) }),
          el("span", { class: "child-workflow", text: workflowName(child.workflow_id) }),
          nodeId ? el("span", { class: "muted mono", text: `← ${nodeId}` }) : null,
          el("span", { class: "badge", "data-status": child.status, "data-testid": "child-run-status", text: child.status }),
          el("span", { class: "muted", text: child.duration ?? "" }),
        );
      }),
    );
  }
  const more = children?.more ? el("span", { class: "muted", text: `the latest ${CHILDREN_LIMIT} shown` }) : null;
  return el("div", { class: "runchildren", "data-testid": "run-children", "data-count": String(items.length) }, head, body, more);
}

// ---------------------------------------------------------------------------------------
// re-runs: from a node, or from what failed

/** POSTs /runs/{id}/rerun with `body` and opens the new run; `onError` gets the API's refusal. */
async function rerun(body, onError) {
  const run = state.run;
  if (!run || state.rerunning) return;
  state.rerunning = true;
  renderRunBar();
  renderDetailsActions();
  try {
    const created = await api("POST", `/runs/${encodeURIComponent(run.id)}/rerun`, body);
    if (state.run?.id !== run.id) return;
    hideNotice();
    if (created.workflow_id === state.workflow?.id && !state.history.some((r) => r.id === created.id)) {
      state.history.unshift(created);
    }
    navigate(runHref(created));
  } catch (exc) {
    if (state.run?.id === run.id) onError(`Could not re-run: ${exc.message}`, exc);
  } finally {
    state.rerunning = false;
    renderRunBar();
    renderDetailsActions();
  }
}

function rerunFailed() {
  rerun({}, (message, exc) => showNotice(`${message} (${exc.code})`, { error: true }));
}

function rerunFromNode(nodeId) {
  state.nodeRerunError = null;
  rerun({ from: nodeId }, (message, exc) => {
    state.nodeRerunError = { runId: state.run.id, nodeId, message: `${message} (${exc.code})` };
    renderDetailsActions();
  });
}

/**
 * The websocket half shared by RunFollower and WorkflowChannel: connects to `socketPath()`,
 * resumes with `?after=<lastSeq>` after a drop, and falls back to `startPolling()` when no
 * socket can be had or it keeps dropping. Subclasses provide socketPath, handle and
 * startPolling, and may override the hooks below.
 */
class SocketFollower {
  constructor() {
    this.lastSeq = 0;
    this.ws = null;
    this.stopped = false;
    this.reconnects = 0;
    this.timer = null;
  }

  start() {
    this.connect(false);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  /** Hook: a socket is being opened, now or after a delay. */
  onConnecting() {}

  /** Hook: the socket `ws` has opened (`resume` as given to connect). */
  onOpen(_ws, _resume) {}

  /** Hook: false to drop incoming messages unread. */
  acceptsMessages() {
    return true;
  }

  /** Hook: the current socket has closed; true when that is fully dealt with. */
  onClosed(_ev) {
    return false;
  }

  connect(resume) {
    if (this.stopped) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${proto}//${location.host}${this.socketPath()}`;
    if (resume && this.lastSeq > 0) url += `?after=${this.lastSeq}`;
    let ws;
    try {
      ws = new WebSocket(withToken(url));
    } catch {
      this.startPolling();
      return;
    }
    this.ws = ws;
    let opened = false;
    let received = false;
    this.onConnecting();
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      opened = true;
      this.onOpen(ws, resume);
    });
    ws.addEventListener("message", (ev) => {
      if (this.ws !== ws || !this.acceptsMessages()) return;
      let message;
      try {
        message = JSON.parse(ev.data);
      } catch {
        return;
      }
      received = true;
      this.reconnects = 0;
      this.handle(message);
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.onClosed(ev)) return;
      if (!opened || !received) {
        // No live endpoint, or one that closed without a word: poll the REST API instead.
        this.startPolling();
        return;
      }
      if (this.reconnects < MAX_RECONNECTS) {
        this.reconnects += 1;
        this.onConnecting();
        this.timer = setTimeout(() => this.connect(true), Math.min(4000, 250 * 2 ** this.reconnects));
      } else {
        this.startPolling();
      }
    });
  }

  /** True when `message` was seen already; otherwise records its seq. A snapshot may repeat the last seq. */
  seen(message) {
    if (typeof message.seq !== "number") return false;
    if (message.type === "snapshot" ? message.seq < this.lastSeq : message.seq <= this.lastSeq) return true;
    this.lastSeq = message.seq;
    return false;
  }
}

/** Follows one run: websocket first, polling when the socket is not available. */
class RunFollower extends SocketFollower {
  constructor(runId) {
    super();
    this.runId = runId;
    this.finished = false;
    this.polling = false;
    this.snapshotTimer = null;
  }

  active() {
    return !this.stopped && state.follower === this && state.run?.id === this.runId;
  }

  stop() {
    clearTimeout(this.snapshotTimer);
    super.stop();
  }

  socketPath() {
    return `/ws/runs/${encodeURIComponent(this.runId)}`;
  }

  onConnecting() {
    setMode("connecting");
  }

  onOpen(ws, resume) {
    setMode("live");
    if (!resume || this.lastSeq === 0) {
      // A fresh connection starts with a snapshot; if none comes, do not wait on it.
      this.snapshotTimer = setTimeout(() => {
        if (this.ws === ws && this.lastSeq === 0) {
          this.ws = null;
          ws.close(1000);
          this.startPolling();
        }
      }, SNAPSHOT_WAIT_MS);
    }
  }

  onClosed(ev) {
    clearTimeout(this.snapshotTimer);
    if (this.stopped || this.finished) return true;
    if (ev.code === 4404) {
      showNotice(`Run ${this.runId} is unknown to the server.`, { error: true });
      setMode("idle");
      return true;
    }
    return false;
  }

  handle(message) {
    if (!this.active()) return;
    if (this.seen(message)) return;
    switch (message.type) {
      case "snapshot":
        clearTimeout(this.snapshotTimer);
        if (message.run) applySnapshot(message.run, message.nodes);
        if (message.run && FINISHED_RUN.has(message.run.status)) this.onFinished();
        break;
      case "lagged":
        break; // a fresh snapshot follows
      case "run.started":
        updateRun({ status: message.status ?? "running", started_at: message.started_at });
        break;
      case "run.progress":
        updateRun({ progress: message.progress });
        break;
      case "run.finished":
        updateRun({
          status: message.status,
          finished_at: message.finished_at,
          duration_ms: message.duration_ms,
          duration: message.duration,
          error: message.error ?? null,
          progress: 100,
        });
        this.onFinished();
        break;
      case "node.started":
        updateNode(message.node_id, {
          node_type: message.node_type,
          status: message.status ?? "running",
          attempt: message.attempt,
          started_at: message.started_at,
          finished_at: null,
          duration_ms: null,
        });
        break;
      case "node.succeeded":
        updateNode(message.node_id, {
          status: message.status ?? "succeeded",
          duration_ms: message.duration_ms,
          output: message.output_truncated ? message.output_preview : message.output,
          output_truncated: Boolean(message.output_truncated),
          // A re-run's node not run again: succeeded with the output it had in that run.
          ...(message.copied_from ? { copied_from: message.copied_from, attempt: 0, started_at: null } : {}),
        });
        break;
      case "node.failed":
        updateNode(message.node_id, {
          status: message.status ?? "failed",
          duration_ms: message.duration_ms,
          error: message.error,
          handled: message.handled ?? null,
        });
        break;
      case "node.item":
        // An item of a for_each node finished (its status is the item's, not the node's).
        if (message.node_id && typeof message.done === "number" && typeof message.total === "number") {
          setItems(message.node_id, { done: message.done, total: message.total });
        }
        break;
      case "node.skipped":
        updateNode(message.node_id, { status: message.status ?? "skipped" });
        break;
      case "node.cancelled":
        updateNode(message.node_id, { status: message.status ?? "cancelled", duration_ms: message.duration_ms });
        break;
      case "node.log":
        if (message.node_id && message.node_id === state.selectedNode) scheduleDetailsLoad();
        break;
      default:
        break;
    }
    // A workflow.run node started or ended a child run: list it.
    const kind = String(message.type);
    if (kind.startsWith("node.") && kind !== "node.log" && kind !== "node.item" && startsChildRuns(message.node_id)) {
      scheduleChildrenLoad(200);
    }
  }

  startPolling() {
    if (this.stopped || this.polling) return;
    this.polling = true;
    setMode("polling");
    const tick = async () => {
      if (!this.active()) return;
      let run;
      let nodes;
      try {
        [run, nodes] = await Promise.all([
          api("GET", `/runs/${encodeURIComponent(this.runId)}`),
          api("GET", `/runs/${encodeURIComponent(this.runId)}/nodes`),
        ]);
      } catch (exc) {
        if (!this.active()) return;
        if (exc.status === 404) {
          showNotice(`Run ${this.runId} no longer exists.`, { error: true });
          setMode("idle");
          return;
        }
        this.timer = setTimeout(tick, POLL_MS * 2);
        return;
      }
      if (!this.active()) return;
      applySnapshot(run, nodes.items);
      if (FINISHED_RUN.has(run.status)) {
        this.onFinished(false);
        return;
      }
      this.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  /** The run has finished: reconcile once with the REST API, then rest. */
  onFinished(reconcile = true) {
    if (this.finished) return;
    this.finished = true;
    setMode("idle");
    loadHistory();
    if (state.run?.id === this.runId) {
      scheduleChildrenLoad(0);
      loadLinkedRuns(state.run);
    }
    if (!reconcile) return;
    Promise.all([
      api("GET", `/runs/${encodeURIComponent(this.runId)}`),
      api("GET", `/runs/${encodeURIComponent(this.runId)}/nodes`),
    ])
      .then(([run, nodes]) => {
        if (!this.stopped && state.run?.id === this.runId) applySnapshot(run, nodes.items);
      })
      .catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// the workflow channel: run history and graph updates from anyone

class WorkflowChannel extends SocketFollower {
  constructor(workflowId) {
    super();
    this.workflowId = workflowId;
    this.pollTimer = null;
    this.refreshTimer = null;
  }

  active() {
    return !this.stopped && state.channel === this && state.workflow?.id === this.workflowId;
  }

  stop() {
    clearTimeout(this.pollTimer);
    clearTimeout(this.refreshTimer);
    super.stop();
  }

  socketPath() {
    return `/ws/workflows/${encodeURIComponent(this.workflowId)}`;
  }

  acceptsMessages() {
    return this.active();
  }

  onClosed(ev) {
    return this.stopped || ev.code === 4404;
  }

  handle(message) {
    if (this.seen(message)) return;
    const type = String(message.type || "");
    if (type === "snapshot") {
      if (message.workflow) applyWorkflow(message.workflow, { fromElsewhere: true });
      this.refreshHistory();
    } else if (type === "workflow.updated") {
      if (message.workflow) applyWorkflow(message.workflow, { fromElsewhere: true });
    } else if (type === "run.created" || type === "run.started" || type === "run.finished") {
      this.refreshHistory();
    }
  }

  refreshHistory() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      if (this.active()) loadHistory();
    }, 150);
  }

  /** Without the channel: refresh the history and the workflow every few seconds. */
  startPolling() {
    const tick = async () => {
      if (!this.active()) return;
      loadHistory();
      try {
        const workflow = await api("GET", `/workflows/${encodeURIComponent(this.workflowId)}`);
        if (this.active()) applyWorkflow(workflow, { fromElsewhere: true });
      } catch {
        // the next tick tries again
      }
      if (this.active()) this.pollTimer = setTimeout(tick, HISTORY_POLL_MS);
    };
    this.pollTimer = setTimeout(tick, HISTORY_POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------
// run history

async function loadHistory() {
  const workflowId = state.workflow?.id;
  if (!workflowId) return;
  try {
    const data = await api("GET", `/workflows/${encodeURIComponent(workflowId)}/runs?limit=${HISTORY_LIMIT}`);
    if (state.workflow?.id !== workflowId) return;
    state.history = data.items;
  } catch (exc) {
    if (state.workflow?.id !== workflowId) return;
    $("history-empty").textContent = `Could not load the runs: ${exc.message}`;
  }
  renderHistory();
}

/** Keeps the shown run's history entry in step with its live status. */
function patchHistoryItem() {
  const run = state.run;
  if (!run) return;
  const item = state.history.find((r) => r.id === run.id);
  if (!item) return;
  if (item.status === run.status && item.duration === run.duration) return;
  Object.assign(item, { status: run.status, duration: run.duration, duration_ms: run.duration_ms });
  renderHistory();
}

function renderHistory() {
  const list = $("run-history");
  const current = state.run?.id;
  list.replaceChildren(
    ...state.history.map((run) => {
      const duration = run.duration ?? (run.status === "pending" ? "queued" : "—");
      return el(
        "li",
        { "aria-current": run.id === current ? "true" : "false" },
        el(
          "button",
          {
            type: "button",
            "data-testid": "history-item",
            "data-run-id": run.id,
            "data-status": run.status,
            title: `run ${run.id}`,
            onclick: () => navigate(`#/workflows/${state.workflow.id}/runs/${run.id}`),
          },
          el(
            "span",
            { class: "history-line" },
            el("span", { class: "history-time", text: formatTime(run.created_at) }),
            el("span", { class: "badge", "data-status": run.status, "data-testid": "history-status", text: run.status }),
          ),
          el(
            "span",
            { class: "item-sub" },
            triggerMark(run.trigger_type, "history-trigger"),
            el("span", { "data-testid": "history-duration", text: duration }),
          ),
        ),
      );
    }),
  );
  const empty = $("history-empty");
  empty.hidden = state.history.length > 0;
  if (!state.workflow) empty.textContent = "Open a workflow to see its runs.";
  else if (!state.history.length && !empty.textContent.startsWith("Could not")) empty.textContent = "No runs yet.";
}

// ---------------------------------------------------------------------------------------
// running

function parseStartInput() {
  const area = $("run-input");
  const error = $("run-input-error");
  const text = area.value.trim();
  error.hidden = true;
  area.removeAttribute("aria-invalid");
  if (!text) return { ok: true, body: {} };
  try {
    return { ok: true, body: { start_input: JSON.parse(text) } };
  } catch (exc) {
    error.textContent = `Invalid JSON: ${exc.message}`;
    error.hidden = false;
    area.setAttribute("aria-invalid", "true");
    selectTab("input");
    area.focus();
    return { ok: false };
  }
}

async function startRun() {
  if (!state.workflow) return;
  const parsed = parseStartInput();
  if (!parsed.ok) return;
  const button = $("run-button");
  button.disabled = true;
  const workflowId = state.workflow.id;
  try {
    const run = await api("POST", `/workflows/${encodeURIComponent(workflowId)}/run`, parsed.body);
    if (state.workflow?.id !== workflowId) return;
    hideNotice();
    if (!state.history.some((r) => r.id === run.id)) state.history.unshift(run);
    navigate(`#/workflows/${workflowId}/runs/${run.id}`);
  } catch (exc) {
    showNotice(`Could not start the run: ${exc.message}`, { error: true });
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// node details

function selectNode(nodeId) {
  state.selectedNode = nodeId;
  paintStatuses();
  renderDetails();
}

function graphNode(nodeId) {
  return graphParts(state.workflow?.graph).nodes.find((n) => n.id === nodeId) || null;
}

function renderDetails() {
  const panel = $("node-panel");
  const nodeId = state.selectedNode;
  panel.dataset.nodeId = nodeId || "";
  $("node-panel-empty").hidden = Boolean(nodeId);
  $("node-panel-body").hidden = !nodeId;
  if (!nodeId) return;
  renderDetailsHead();
  const sections = $("node-panel-sections");
  const node = graphNode(nodeId);
  const parts = [section("Params", "node-params", node ? node.params ?? {} : null)];
  if (!state.run) {
    parts.push(el("p", { class: "muted", text: "No run shown. Press Run, or open a run from the history." }));
  } else {
    parts.push(el("p", { class: "muted", "data-testid": "node-panel-loading", text: "Loading…" }));
  }
  sections.replaceChildren(...parts);
  if (state.run) loadDetails();
}

function renderDetailsHead() {
  const nodeId = state.selectedNode;
  if (!nodeId) return;
  const node = graphNode(nodeId);
  const nodeRun = state.nodes.get(nodeId);
  $("node-panel-title").textContent = nodeId;
  $("node-panel-type").textContent = node?.type ?? nodeRun?.node_type ?? "";
  const status = nodeStatus(nodeId);
  const badge = $("node-panel-status");
  badge.dataset.status = status;
  badge.textContent = status === "none" ? (state.run ? "not in this run" : "no run") : status;
  const handled = handledOf(nodeId);
  const handledPill = $("node-panel-handled");
  handledPill.hidden = !handled;
  handledPill.title = handled ? `failed, and handled by ${handled === "on_error" ? "its on_error" : `on_error "${handled}"`}: the run went on` : "";
  const items = itemsOf(nodeRun);
  const itemsPill = $("node-panel-items");
  itemsPill.hidden = !items;
  itemsPill.textContent = items ? `${items.done}/${items.total} items` : "";
  const copied = copiedFrom(nodeId);
  const copiedPill = $("node-panel-copied");
  copiedPill.hidden = !copied;
  copiedPill.title = copied ? `not run again: its output is copied from ${shortRun(copied)}` : "";
  const timing = [];
  if (nodeRun?.attempt > 1) timing.push(`attempt ${nodeRun.attempt}`);
  if (nodeRun?.started_at) timing.push(`started ${formatTime(nodeRun.started_at)}`);
  if (!copied && nodeRun?.duration_ms !== null && nodeRun?.duration_ms !== undefined) timing.push(humanDuration(nodeRun.duration_ms));
  $("node-panel-timing").textContent = timing.join(" · ");
  renderDetailsActions();
}

/** Under the node's status: where a copied output came from, links to the child runs a
 * workflow.run node started, and "Re-run from this node" once the run has finished. Rebuilt
 * only when what it shows changes (a click is never lost to a repaint). */
function renderDetailsActions() {
  const box = $("node-panel-actions");
  const nodeId = state.selectedNode;
  const run = state.run;
  const nodeRun = nodeId && run ? state.nodes.get(nodeId) : null;
  const copied = nodeId ? copiedFrom(nodeId) : null;
  const childIds = nodeId ? childRunsOf(nodeId) : [];
  const childLinks = childIds.slice(0, CHILD_LINKS).map((id) => [id, runIdHref(id)]);
  const canRerun = Boolean(nodeRun) && FINISHED_RUN.has(run.status);
  const refused = state.nodeRerunError;
  const error = refused && refused.runId === run?.id && refused.nodeId === nodeId ? refused.message : null;
  const key = JSON.stringify([nodeId, run?.id, copied, copied && runIdHref(copied), childLinks, childIds.length, canRerun, state.rerunning, error]);
  if (box.__key === key) return;
  box.__key = key;
  const parts = [];
  if (copied) {
    parts.push(
      el(
        "div",
        { class: "action-line", "data-testid": "node-copied-from" },
        el("span", { class: "muted", text: "Not run again: output copied from " }),
        el("a", { href: runIdHref(copied), class: "mono", "data-testid": "node-copied-from-link", "data-run-id": copied, text: shortRun(copied) }),
      ),
    );
  }
  if (childLinks.length) {
    parts.push(
      el(
        "div",
        { class: "action-line" },
        childLinks.map(([id, href], i) =>
          el("a", {
            class: "btn small",
            href,
            "data-testid": "node-child-run-link",
            "data-run-id": id,
            title: `run ${id}`,
            text: childLinks.length === 1 ? "Open child run →" : `Child run ${i + 1} →`,
          }),
        ),
        childIds.length > CHILD_LINKS ? el("span", { class: "muted", text: `+${childIds.length - CHILD_LINKS} more under "child runs"` }) : null,
      ),
    );
  }
  if (canRerun) {
    parts.push(
      el(
        "div",
        { class: "action-line" },
        el("button", {
          type: "button",
          class: "btn small",
          "data-testid": "rerun-from-node",
          disabled: state.rerunning,
          title: "A new run: this node and everything downstream of it run again; the other nodes keep their outputs (copied)",
          onclick: () => rerunFromNode(nodeId),
          text: state.rerunning ? "Re-running…" : "↻ Re-run from this node",
        }),
      ),
    );
  }
  if (error) parts.push(el("div", { class: "field-error", "data-testid": "node-rerun-error", text: error }));
  box.replaceChildren(...parts);
  box.hidden = parts.length === 0;
}

function section(title, testid, value, { error = false, note = null } = {}) {
  const body =
    value === null || value === undefined
      ? el("p", { class: "muted", "data-testid": testid, "data-empty": "true", text: "—" })
      : el("pre", { class: error ? "json error" : "json", "data-testid": testid, text: pretty(value) });
  return disclosure(title, note && el("p", { class: "muted", text: note }), body);
}

function disclosure(title, ...children) {
  return el("details", { class: "details-section", open: true }, el("summary", {}, el("h3", { text: title })), ...children);
}

function scheduleDetailsLoad() {
  clearTimeout(state.detailsTimer);
  state.detailsTimer = setTimeout(loadDetails, 300);
}

async function fetchNodeLogs(runId, nodeId) {
  const lines = [];
  let after = 0;
  for (let page = 0; page < LOG_PAGES; page += 1) {
    const base = `/runs/${encodeURIComponent(runId)}/logs?limit=${LOG_PAGE}&after=${after}`;
    let data;
    if (state.serverFiltersLogs) {
      try {
        data = await api("GET", `${base}&node_id=${encodeURIComponent(nodeId)}`);
      } catch (exc) {
        if (exc.status !== 422 && exc.status !== 400) throw exc;
        state.serverFiltersLogs = false; // this server does not filter: filter here
      }
    }
    if (!data) data = await api("GET", base);
    lines.push(...data.items.filter((line) => line.node_id === nodeId));
    if (data.next_after === null || data.next_after === undefined) return { lines, complete: true };
    after = data.next_after;
  }
  return { lines, complete: false };
}

async function loadDetails() {
  clearTimeout(state.detailsTimer);
  const nodeId = state.selectedNode;
  const run = state.run;
  if (!nodeId || !run) return;
  const seq = ++state.detailsSeq;
  let nodeRun;
  let logs;
  try {
    const [nodes, fetched] = await Promise.all([
      api("GET", `/runs/${encodeURIComponent(run.id)}/nodes`),
      fetchNodeLogs(run.id, nodeId),
    ]);
    nodeRun = nodes.items.find((n) => n.node_id === nodeId) || null;
    logs = fetched;
  } catch (exc) {
    if (seq !== state.detailsSeq) return;
    $("node-panel-sections").replaceChildren(el("p", { class: "field-error", text: `Could not load the node: ${exc.message}` }));
    return;
  }
  if (seq !== state.detailsSeq || state.selectedNode !== nodeId || state.run?.id !== run.id) return;
  if (nodeRun) {
    // The REST answer is the full record (events may carry only a preview of the output).
    const live = state.nodes.get(nodeId);
    if (!live || FINAL_NODE.has(nodeRun.status) || live.status === nodeRun.status) state.nodes.set(nodeId, keepLive(live, nodeRun));
    renderDetailsHead();
    paintStatuses();
  }
  const node = graphNode(nodeId);
  const parts = [];
  if (!nodeRun) {
    parts.push(
      el("p", {
        class: "muted",
        "data-testid": "node-not-run",
        text: FINISHED_RUN.has(run.status) ? "This node did not run in this run." : "This node has not started yet.",
      }),
    );
  }
  if (nodeRun?.error) parts.push(section("Error", "node-error", nodeRun.error, { error: true }));
  parts.push(section("Output", "node-output", nodeRun?.output));
  parts.push(renderLogs(logs));
  parts.push(section("Input", "node-input", nodeRun?.input));
  parts.push(section("Params", "node-params", node ? node.params ?? {} : null));
  $("node-panel-sections").replaceChildren(...parts);
}

function renderLogs({ lines, complete }) {
  const title = `Logs (${lines.length}${complete ? "" : "+"})`;
  if (!lines.length) return disclosure(title, el("p", { class: "muted", "data-testid": "node-logs", text: "No log lines." }));
  const list = el(
    "ul",
    { class: "logs", "data-testid": "node-logs" },
    lines.map((line) =>
      el(
        "li",
        { "data-testid": "log-line", "data-level": line.level },
        el("span", { class: "ts", text: formatTime(line.ts) }),
        el("span", { class: `lvl lvl-${String(line.level).toLowerCase()}`, text: line.level }),
        el("span", { text: line.message }),
        line.data && Object.keys(line.data).length ? el("span", { class: "data", text: JSON.stringify(line.data) }) : null,
      ),
    ),
  );
  return disclosure(title, list);
}

// ---------------------------------------------------------------------------------------
// the JSON editor

function fillEditor() {
  const wf = state.workflow;
  if (!wf) return;
  $("graph-json").value = pretty(wf.graph ?? { nodes: [], edges: [] });
  $("graph-json").removeAttribute("aria-invalid");
  $("editor-name").value = wf.name;
  state.editorDirty = false;
  setFeedback("none");
  drawGraph();
}

function setFeedback(kind, ...children) {
  const box = $("editor-feedback");
  box.dataset.state = kind;
  box.replaceChildren(...children);
}

function readEditorGraph() {
  const area = $("graph-json");
  try {
    const graph = JSON.parse(area.value);
    area.removeAttribute("aria-invalid");
    return { ok: true, graph };
  } catch (exc) {
    area.setAttribute("aria-invalid", "true");
    setFeedback("error", el("div", { "data-testid": "editor-json-error", text: `Invalid JSON: ${exc.message}` }));
    return { ok: false };
  }
}

function showApiProblems(exc, verb) {
  const details = exc.details.map(describeProblem);
  const head = details.length
    ? `✕ ${details.length} problem${details.length === 1 ? "" : "s"}${exc.status === 422 ? "" : ` (${exc.message})`}`
    : `✕ ${verb}: ${exc.message}`;
  setFeedback(
    "invalid",
    el("div", { "data-testid": "editor-error", "data-code": exc.code, text: head }),
    details.length
      ? el(
          "ul",
          { "data-testid": "problem-list" },
          details.map((d) =>
            el("li", { "data-testid": "problem" }, d.message, d.where ? el("span", { class: "where", text: ` — ${d.where}` }) : null),
          ),
        )
      : null,
  );
}

async function validateGraph() {
  const parsed = readEditorGraph();
  if (!parsed.ok) return;
  const button = $("validate-button");
  button.disabled = true;
  setFeedback("busy", el("span", { class: "muted", text: "Validating…" }));
  try {
    const result = await api("POST", "/validate-graph", parsed.graph);
    setFeedback(
      "valid",
      el("div", { "data-testid": "editor-valid", text: "✓ valid" }),
      el("div", { class: "order", "data-testid": "editor-order", text: `order: ${(result.order || []).join(" → ")}` }),
    );
  } catch (exc) {
    showApiProblems(exc, "validation failed");
  } finally {
    button.disabled = false;
  }
}

async function saveWorkflow() {
  if (!state.workflow) return;
  const parsed = readEditorGraph();
  if (!parsed.ok) return;
  const name = $("editor-name").value.trim();
  if (!name) {
    setFeedback("error", el("div", { "data-testid": "editor-error", text: "The workflow needs a name." }));
    return;
  }
  const button = $("save-button");
  button.disabled = true;
  state.saving = true;
  const workflowId = state.workflow.id;
  try {
    const saved = await api("PUT", `/workflows/${encodeURIComponent(workflowId)}`, { name, graph: parsed.graph });
    if (state.workflow?.id !== workflowId) return;
    state.editorDirty = false;
    applyWorkflow(saved);
    fillEditor();
    hideNotice();
    setFeedback("saved", el("div", { "data-testid": "editor-saved", text: `✓ saved at ${formatTime(saved.updated_at)}` }));
  } catch (exc) {
    showApiProblems(exc, "not saved");
  } finally {
    state.saving = false;
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// tabs and wiring

function selectTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of document.querySelectorAll(".tab-panel")) panel.hidden = panel.dataset.panel !== name;
}

function wire() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  $("run-button").addEventListener("click", startRun);
  $("rerun-failed").addEventListener("click", rerunFailed);
  $("run-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      startRun();
    }
  });
  $("run-input").addEventListener("input", () => {
    $("run-input-error").hidden = true;
    $("run-input").removeAttribute("aria-invalid");
  });
  $("refresh-workflows").addEventListener("click", loadWorkflows);
  $("refresh-history").addEventListener("click", loadHistory);
  $("node-panel-close").addEventListener("click", () => selectNode(null));
  $("validate-button").addEventListener("click", validateGraph);
  $("save-button").addEventListener("click", saveWorkflow);
  $("revert-button").addEventListener("click", fillEditor);
  const markDirty = () => {
    state.editorDirty = true;
  };
  $("graph-json").addEventListener("input", markDirty);
  $("editor-name").addEventListener("input", markDirty);
  window.addEventListener("hashchange", route);
  wireGraphView();
}

async function main() {
  wire();
  setMode("idle");
  await loadWorkflows();
  await route();
  document.body.dataset.ready = "true";
}

main();
