// The stepwise viewer: one execution (/ui/executions/<id>) or one workflow's recent runs (/ui/workflows/<id>).
//
// The page is static; everything it shows comes from the API with the bearer token kept in this tab's
// sessionStorage (taken from the address's #token=<jwt>, which is removed at once, or pasted in a form).
// An execution is read once (GET /api/workflows/execute/<id>), then built from its events, which are the
// truth (GET .../events?after=<cursor>, long-polled until the terminal event), and read once more at the
// end for its output. Stable hooks for tests and scripts: data-node-id and data-state on every node,
// data-execution-state on the state badge, data-action on the action buttons.
//
// No innerHTML anywhere: every element is built from text (the page's CSP enforces Trusted Types).
"use strict";

(() => {
  const TOKEN_KEY = "stepwise.token";
  const EVENTS_PER_PAGE = 500;
  const WAIT_SECONDS = 20;
  const RUNS_PER_PAGE = 25;
  const MOST_TIMELINE_ROWS = 300;
  const MOST_LOG_LINES = 2000;
  const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELED"]);
  const TERMINAL_EVENTS = {
    "execution.completed": "COMPLETED",
    "execution.failed": "FAILED",
    "execution.canceled": "CANCELED",
  };
  // Each state has an icon and its name in text: never colour alone.
  const ICONS = {
    PENDING: "○",
    RUNNING: "▶",
    PAUSED: "⏸",
    COMPLETED: "✓",
    FAILED: "✗",
    CANCELED: "⊘",
    SKIPPED: "↷",
  };
  const SVG = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------ the token, out of the address first
  function takeTokenFromAddress() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (!fragment.has("token")) return false;
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token").trim());
    history.replaceState(history.state, "", location.pathname + location.search);
    return true;
  }
  takeTokenFromAddress();
  // A link with another token opened in this tab changes only the fragment: no new page load.
  window.addEventListener("hashchange", () => {
    if (takeTokenFromAddress()) start();
  });

  // Where the API is: this page's path up to /ui/ (an API Gateway stage prefix included).
  const uiAt = location.pathname.lastIndexOf("/ui/");
  const base = location.pathname.slice(0, uiAt);
  const [pageKind, rawId] = location.pathname.slice(uiAt + 4).split("/");
  const pageId = decodeURIComponent(rawId || "");
  const enc = encodeURIComponent;

  // ------------------------------------------------------------------ small DOM helpers
  const $ = (selector, root = document) => root.querySelector(selector);

  function append(element, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      element.append(child instanceof Node ? child : String(child));
    }
    return element;
  }

  function h(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : String(value));
    }
    return append(element, children);
  }

  function svg(tag, attributes = {}) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    return element;
  }

  function fill(element, ...children) {
    element.replaceChildren();
    return append(element, children);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ------------------------------------------------------------------ words and numbers
  function clock(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) return iso;
    const time = at.toLocaleTimeString("en-GB", { hour12: false });
    return `${time}.${String(at.getMilliseconds()).padStart(3, "0")}`;
  }

  function timeElement(iso) {
    if (!iso) return h("span", {}, "—");
    const at = new Date(iso);
    return h("time", { datetime: iso, title: Number.isNaN(at.getTime()) ? iso : at.toString() }, clock(iso));
  }

  function dateTime(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    return Number.isNaN(at.getTime()) ? iso : `${at.toLocaleDateString("en-CA")} ${clock(iso)}`;
  }

  function duration(ms) {
    if (!Number.isFinite(ms) || ms < 0) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  const between = (start, end) => Date.parse(end) - Date.parse(start);
  const plural = (count, one, many = `${one}s`) => `${count} ${count === 1 ? one : many}`;

  function stateLabel(state, extra) {
    return h(
      "span",
      { class: `state state-${String(state).toLowerCase()}` },
      h("span", { class: "icon", "aria-hidden": "true" }, ICONS[state] || "•"),
      ` ${state}`,
      extra ? ` · ${extra}` : null,
    );
  }

  // ------------------------------------------------------------------ notices and the token form
  function showAlert(message) {
    const alert = $("#alert");
    alert.hidden = !message;
    alert.textContent = message || "";
  }

  function showStatus(message) {
    $("#status").textContent = message || "";
  }

  function askForToken(reason) {
    $("#token-box").hidden = false;
    $("#token-box").setAttribute("data-token-problem", reason ? "refused" : "missing");
    $("#token-reason").textContent = reason
      ? `The API refused the token: ${reason}. Paste a new one to go on.`
      : "Paste a bearer token to see this page: its data comes from the API, which asks for one.";
    $("#token-input").focus();
  }

  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token-input")
      .value.trim()
      .replace(/^bearer\s+/i, "");
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("#token-input").value = "";
    $("#token-box").hidden = true;
    start();
  });

  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    generation += 1;
    fill($("#view"));
    showStatus("The token is forgotten in this tab.");
    askForToken(null);
  });

  // ------------------------------------------------------------------ the API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const bearer = sessionStorage.getItem(TOKEN_KEY);
    if (!bearer) throw new ApiError(401, null);
    const headers = { accept: "application/json", authorization: `Bearer ${bearer}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let answer;
    try {
      answer = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      throw new ApiError(0, `the API cannot be reached (${error.message})`);
    }
    let json = null;
    try {
      json = await answer.json();
    } catch {
      json = null;
    }
    if (!answer.ok) {
      const said = json && (json.error || json.message);
      throw new ApiError(answer.status, said || `${method} ${path} answered HTTP ${answer.status}`);
    }
    return json;
  }

  // What every loader does with a failure: a refused token asks for another, the rest is said plainly.
  function failed(error, what) {
    if (error.status === 401) {
      askForToken(error.message);
      return;
    }
    showAlert(`${what}: ${error.message}`);
  }

  // ------------------------------------------------------------------ collapsible JSON
  function isRef(value) {
    return value && typeof value === "object" && !Array.isArray(value) && typeof value.$ref === "string";
  }

  // ``opened`` remembers which branches the reader opened, so a redraw keeps them open.
  function jsonTree(value, path, opened, depth = 0) {
    if (value === null || typeof value !== "object") {
      const kind = value === null ? "null" : typeof value;
      return h("span", { class: `json-${kind}` }, JSON.stringify(value) ?? "undefined");
    }
    if (isRef(value)) {
      const holder = h("span", { class: "json-ref" });
      const load = h("button", { type: "button", class: "small" }, "Load it");
      load.addEventListener("click", async () => {
        load.disabled = true;
        try {
          const loaded = await api("GET", value.$ref);
          fill(holder, jsonTree(loaded.data, path, opened, depth));
        } catch (error) {
          load.disabled = false;
          failed(error, "The value could not be loaded");
        }
      });
      return fill(holder, `kept apart (${plural(value.bytes, "byte")}) `, load);
    }
    const entries = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
    if (entries.length === 0) return h("span", { class: "json-empty" }, Array.isArray(value) ? "[]" : "{}");
    const summary = Array.isArray(value)
      ? `[ ${plural(entries.length, "item")} ]`
      : `{ ${plural(entries.length, "key")} }`;
    const details = h("details", { "data-path": path });
    details.open = opened.has(path) || (depth === 0 && !opened.has(`-${path}`));
    details.addEventListener("toggle", () => {
      opened.delete(details.open ? `-${path}` : path);
      if (details.open) opened.add(path);
      else opened.add(`-${path}`);
    });
    const list = h("ul", { class: "json-entries" });
    for (const [key, item] of entries) {
      list.append(
        h("li", {}, h("span", { class: "json-key" }, `${key}: `), jsonTree(item, `${path}/${key}`, opened, depth + 1)),
      );
    }
    return append(details, [h("summary", {}, summary), list]);
  }

  // ------------------------------------------------------------------ the confirmation dialog
  function confirmAction(title, text, accept, dismiss) {
    const dialog = $("#confirm");
    $("#confirm-title").textContent = title;
    $("#confirm-text").textContent = text;
    $("#confirm-accept").textContent = accept;
    $("#confirm-dismiss").textContent = dismiss;
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
      dialog.showModal();
    });
  }

  let generation = 0; // a new token (or page) starts anew; older loops see they are stale and stop
  let redrawGraph = () => {}; // the edges are placed by the nodes' boxes: drawn again when the window resizes
  window.addEventListener("resize", () => redrawGraph());

  // ================================================================== one execution
  function newExecutionModel(execution) {
    return {
      execution,
      workflow: null,
      workflowProblem: null,
      state: execution.state,
      pauseRequested: Boolean(execution.pauseRequested),
      pausedFor: null,
      startedAt: execution.startedAt,
      completedAt: execution.completedAt,
      error: execution.error,
      canceledBy: null,
      variables: execution.variables || {}, // as they are now; the events rebuild them from the start
      variablesVersion: 0,
      runs: new Map(), // run number -> one node run
      skipped: new Set(),
      taken: new Map(), // "from\u0000to" -> how often that edge was taken
      logs: [],
      lastSeq: 0,
      caughtUp: false,
      ended: false,
      finishing: false,
      // An ended execution's record has its output already; one that runs gets it when it ends (finish).
      outputKnown: TERMINAL.has(execution.state),
      output: execution.output,
      selected: null,
    };
  }

  // A node run, by its run number (one the log names without a number, e.g. reused by a rerun, by its event).
  // ``first`` is the seq of its first event: runs sort in the order they started.
  function runOf(model, event) {
    const key = event.run ?? `${event.nodeId}@${event.seq}`;
    let run = model.runs.get(key);
    if (!run) {
      run = {
        run: key,
        first: event.seq,
        nodeId: event.nodeId,
        state: "RUNNING",
        startedAt: event.startedAt || event.at,
      };
      run.retries = [];
      model.runs.set(key, run);
    }
    return run;
  }

  function fold(model, event) {
    switch (event.type) {
      case "execution.started":
        model.variables = { ...(event.variables || {}) };
        model.variablesVersion += 1;
        model.startedAt = event.at;
        model.state = "PENDING";
        break;
      case "execution.running":
        model.state = "RUNNING";
        break;
      case "execution.pause_requested":
        model.pauseRequested = true;
        break;
      case "execution.pause_withdrawn":
        model.pauseRequested = false;
        break;
      case "execution.paused":
        model.state = "PAUSED";
        model.pauseRequested = false;
        model.pausedFor = event.reason === "approval" ? event.nodeId || "an approval" : null;
        break;
      case "execution.resumed":
        model.state = "RUNNING";
        model.pausedFor = null;
        break;
      case "execution.completed":
      case "execution.failed":
      case "execution.canceled":
        model.state = TERMINAL_EVENTS[event.type];
        model.completedAt = event.at;
        model.error = event.error || null;
        model.canceledBy = event.by ? event.by.name : null;
        model.pauseRequested = false;
        model.pausedFor = null;
        break;
      case "node.started":
        runOf(model, event).startedAt = event.at;
        break;
      case "node.waiting": {
        const run = runOf(model, event);
        run.waitingSince = event.at;
        run.waitingFor = event.waitingFor;
        run.waitSeconds = event.seconds;
        break;
      }
      case "node.completed": {
        const run = runOf(model, event);
        Object.assign(run, { state: "COMPLETED", endedAt: event.at, output: event.output, reused: event.reused });
        if (event.startedAt) run.startedAt = event.startedAt;
        if (event.variables && Object.keys(event.variables).length) {
          Object.assign(model.variables, event.variables);
          model.variablesVersion += 1;
        }
        if ("next" in event) {
          const key = `${event.nodeId}\u0000${event.next ?? ""}`;
          model.taken.set(key, (model.taken.get(key) || 0) + 1);
        }
        break;
      }
      case "node.failed": {
        const run = runOf(model, event);
        Object.assign(run, { state: "FAILED", endedAt: event.at, error: event.error });
        if (event.startedAt) run.startedAt = event.startedAt;
        break;
      }
      case "node.skipped":
        model.skipped.add(event.nodeId);
        break;
      case "log":
        model.logs.push(event);
        // A call out logs each failed attempt it will try again as a warning "...; retrying in N s".
        if (event.run && event.level === "warning" && /retrying/.test(event.message) && model.runs.has(event.run)) {
          model.runs.get(event.run).retries.push(event.at);
        }
        break;
      default:
        break; // an event type newer than this page: the record still shows what it changed
    }
  }

  const inOrder = (a, b) => a.first - b.first;

  function runsOfNode(model, nodeId) {
    return [...model.runs.values()].filter((run) => run.nodeId === nodeId).sort(inOrder);
  }

  // A node as the graph shows it: its latest run from the events, else the execution's record of it.
  function nodeView(model, nodeId) {
    const runs = runsOfNode(model, nodeId);
    const recorded = (model.execution.nodeStates || {})[nodeId];
    const count = Math.max(runs.length, recorded ? recorded.runs || 0 : 0);
    const latest = runs[runs.length - 1];
    if (latest) return { state: latest.state, count, latest, runs };
    if (model.skipped.has(nodeId)) return { state: "SKIPPED", count, latest: null, runs };
    if (recorded && recorded.state !== "PENDING") {
      const { state, startedAt, completedAt, error, output } = recorded;
      return {
        state,
        count,
        latest: { state, startedAt, endedAt: completedAt, error, output, reused: recorded.reused },
        runs,
      };
    }
    return { state: "PENDING", count, latest: null, runs };
  }

  function graphNodes(model) {
    const nodes = model.workflow ? model.workflow.nodes.map((node) => ({ ...node })) : [];
    const known = new Set(nodes.map((node) => node.id));
    // Nodes the run knows that the graph does not (the workflow changed or is gone): shown at the end.
    const others = [
      ...Object.keys(model.execution.nodeStates || {}),
      ...[...model.runs.values()].map((run) => run.nodeId),
    ];
    for (const id of others) {
      if (id && !known.has(id)) {
        known.add(id);
        nodes.push({ id, type: "?", config: {} });
      }
    }
    return nodes;
  }

  function edgesOf(nodes) {
    const edges = [];
    nodes.forEach((node, index) => {
      const config = node.config || {};
      if (node.type === "condition") {
        if (config.then) edges.push({ from: node.id, to: config.then, label: "then" });
        if (config.else) edges.push({ from: node.id, to: config.else, label: "else" });
      } else if (node.next) {
        edges.push({ from: node.id, to: node.next, label: "next" });
      } else if (index + 1 < nodes.length && node.type !== "?") {
        edges.push({ from: node.id, to: nodes[index + 1].id, label: "" });
      }
    });
    return edges;
  }

  function allowedActions(model) {
    const live = !TERMINAL.has(model.state);
    return {
      pause: (model.state === "RUNNING" || model.state === "PENDING") && !model.pauseRequested,
      resume: model.state === "PAUSED" || (live && model.pauseRequested),
      cancel: live,
      rerun: !live,
    };
  }

  // ------------------------------------------------------------------ the execution page's skeleton
  function executionSkeleton(model) {
    const id = model.execution.id;
    const section = (name, title, ...children) =>
      h(
        "section",
        { class: `panel panel-${name}`, "aria-labelledby": `${name}-title` },
        h("h2", { id: `${name}-title` }, title),
        ...children,
      );
    const actionButton = (action, text) =>
      h("button", { type: "button", "data-action": action, hidden: true, onclick: () => act(model, action) }, text);
    const levelFilter = h(
      "select",
      { id: "log-level" },
      h("option", { value: "debug" }, "all levels"),
      h("option", { value: "info", selected: true }, "info and above"),
      h("option", { value: "warning" }, "warnings and errors"),
      h("option", { value: "error" }, "errors only"),
    );
    levelFilter.addEventListener("change", () => $("#log").setAttribute("data-min-level", levelFilter.value));
    return [
      h(
        "section",
        { class: "summary", "aria-labelledby": "execution-title" },
        h("h1", { id: "execution-title" }, "Execution ", h("code", {}, id)),
        h("p", { id: "execution-state", class: "badge", "data-execution-state": model.state }),
        h("dl", { id: "execution-facts", class: "facts" }),
        h("p", { id: "live", class: "live" }),
      ),
      h(
        "section",
        { id: "error", class: "error-box", role: "alert", "aria-labelledby": "error-title", hidden: true },
        h("h2", { id: "error-title" }, "Error"),
        h("pre", { id: "error-text" }),
      ),
      h(
        "div",
        { class: "actions", role: "group", "aria-label": "Actions on this execution" },
        actionButton("pause", "⏸ Pause"),
        actionButton("resume", "▶ Resume"),
        actionButton("cancel", "⊘ Cancel"),
        h(
          "span",
          { id: "rerun-group", class: "rerun-group", hidden: true },
          h("label", { for: "rerun-from" }, "Rerun from node"),
          h("select", { id: "rerun-from" }),
          actionButton("rerun", "↻ Rerun"),
        ),
      ),
      h(
        "div",
        { class: "columns" },
        section(
          "graph",
          "Graph",
          h("p", { id: "graph-note", class: "note", hidden: true }),
          h(
            "div",
            { class: "graph-wrap", id: "graph-wrap" },
            h("ol", { id: "graph", class: "graph" }),
            svg("svg", { id: "edges", class: "edges", "aria-hidden": "true" }),
          ),
        ),
        section(
          "node",
          "Node",
          h(
            "div",
            { id: "node-details" },
            h("p", { class: "note" }, "Choose a node in the graph to see its runs, output and error."),
          ),
        ),
      ),
      section(
        "timeline",
        "Timeline",
        h(
          "p",
          { class: "note" },
          "Each node run from its start to its end; a hatched part is a wait (a delay or an approval).",
        ),
        h("div", { id: "timeline" }),
      ),
      section(
        "log",
        "Log",
        h("p", { class: "filter" }, h("label", { for: "log-level" }, "Show "), levelFilter),
        h("ol", { id: "log", class: "log", "data-min-level": "info" }),
        h("p", { id: "log-note", class: "note" }),
      ),
      h(
        "div",
        { class: "columns" },
        section("variables", "Variables", h("div", { id: "variables" })),
        section("output", "Output", h("div", { id: "output" })),
      ),
    ];
  }

  // ------------------------------------------------------------------ drawing what changed
  function renderSummary(model) {
    const badge = $("#execution-state");
    badge.setAttribute("data-execution-state", model.state);
    let extra = null;
    if (model.state === "PAUSED") extra = model.pausedFor ? `waiting for approval at ${model.pausedFor}` : "paused";
    else if (model.pauseRequested) extra = "pause requested: it pauses before its next node";
    else if (model.state === "CANCELED" && model.canceledBy) extra = `by ${model.canceledBy}`;
    fill(badge, stateLabel(model.state, extra));
    const x = model.execution;
    const end = model.completedAt || (model.ended ? null : new Date().toISOString());
    const workflowName = model.workflow ? model.workflow.name : x.workflowId;
    const fact = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
    fill(
      $("#execution-facts"),
      fact(
        "Workflow",
        h("a", { href: `${base}/ui/workflows/${enc(x.workflowId)}` }, workflowName),
        ` (version ${x.workflowVersion})`,
      ),
      fact("Started", dateTime(model.startedAt), " by ", x.startedByName || x.startedBy),
      fact(
        model.completedAt ? "Ended" : "Running for",
        model.completedAt ? dateTime(model.completedAt) : duration(between(model.startedAt, end)),
      ),
      model.completedAt ? fact("Took", duration(between(model.startedAt, model.completedAt))) : null,
      x.rerunOf
        ? fact(
            "Rerun of",
            h("a", { href: `${base}/ui/executions/${enc(x.rerunOf.executionId)}` }, x.rerunOf.executionId),
            ` from ${x.rerunOf.fromNode}`,
          )
        : null,
    );
    document.title = `${model.state} · ${workflowName} · stepwise`;
    $("#error").hidden = !model.error;
    $("#error-text").textContent = model.error || "";
  }

  function renderActions(model) {
    const allowed = allowedActions(model);
    for (const button of document.querySelectorAll("[data-action]")) {
      const action = button.getAttribute("data-action");
      button.hidden = !allowed[action];
    }
    $("#rerun-group").hidden = !allowed.rerun;
    const resume = $('[data-action="resume"]');
    resume.textContent =
      model.state !== "PAUSED" ? "▶ Withdraw pause" : model.pausedFor ? "✓ Approve and resume" : "▶ Resume";
    if (allowed.rerun) renderRerunChoices(model);
  }

  function renderRerunChoices(model) {
    const select = $("#rerun-from");
    const reached = graphNodes(model).filter(
      (node) => nodeView(model, node.id).count > 0 || nodeView(model, node.id).latest,
    );
    const signature = reached.map((node) => node.id).join("\u0000");
    if (select.getAttribute("data-signature") === signature) return;
    select.setAttribute("data-signature", signature);
    const failedNode = reached.find((node) => nodeView(model, node.id).state === "FAILED");
    const chosen = (failedNode || reached[0] || {}).id;
    fill(
      select,
      reached.map((node) =>
        h("option", { value: node.id, selected: node.id === chosen }, `${node.id} (${nodeView(model, node.id).state})`),
      ),
    );
  }

  function renderGraph(model) {
    const list = $("#graph");
    const nodes = graphNodes(model);
    const edges = edgesOf(nodes);
    for (const node of nodes) {
      let item = list.querySelector(`[data-node-id="${CSS.escape(node.id)}"]`);
      if (!item) {
        const outgoing = edges.filter((edge) => edge.from === node.id && edge.label);
        item = h(
          "li",
          { class: "node", "data-node-id": node.id },
          h(
            "button",
            { type: "button", class: "node-button", "aria-pressed": "false", onclick: () => select(model, node.id) },
            h("span", { class: "node-state" }),
            h(
              "span",
              { class: "node-name" },
              h("strong", {}, node.id),
              " ",
              h("span", { class: "node-type" }, node.type),
            ),
            h("span", { class: "node-runs" }),
            h("span", { class: "node-time" }),
          ),
          outgoing.length
            ? h(
                "p",
                { class: "node-edges" },
                outgoing.map((edge, index) => [
                  index ? " · " : "",
                  `${edge.label} → `,
                  h("span", { "data-edge": `${edge.from}\u0000${edge.to}` }, edge.to),
                ]),
              )
            : null,
          h("p", { class: "node-error" }),
        );
        list.append(item);
      }
      const shown = nodeView(model, node.id);
      const latest = shown.latest || {};
      item.setAttribute("data-state", shown.state);
      item.setAttribute("data-runs", String(shown.count));
      const waiting = shown.state === "RUNNING" && latest.waitingFor;
      const extra = waiting
        ? latest.waitingFor === "approval"
          ? "waiting for approval"
          : `waiting ${latest.waitSeconds} s`
        : latest.reused
          ? "reused"
          : null;
      fill(item.querySelector(".node-state"), stateLabel(shown.state, extra));
      item.querySelector(".node-runs").textContent = shown.count ? plural(shown.count, "run") : "not run";
      const took = latest.startedAt ? between(latest.startedAt, latest.endedAt || new Date().toISOString()) : NaN;
      item.querySelector(".node-time").textContent = Number.isFinite(took) ? duration(took) : "";
      item.querySelector(".node-error").textContent = shown.state === "FAILED" ? latest.error || "" : "";
      item.querySelector(".node-button").setAttribute("aria-pressed", String(model.selected === node.id));
      for (const edge of item.querySelectorAll("[data-edge]")) {
        const times = model.taken.get(edge.getAttribute("data-edge")) || 0;
        edge.setAttribute("data-taken", String(times));
        edge.textContent = `${edge.getAttribute("data-edge").split("\u0000")[1]}${times ? ` (taken ${times}×)` : ""}`;
      }
    }
    drawEdges(model, nodes, edges);
  }

  // The edges, drawn over the list: straight down to the next node, or an arc on the right to any other.
  function drawEdges(model, nodes, edges) {
    const wrap = $("#graph-wrap");
    const canvas = $("#edges");
    canvas.replaceChildren();
    const box = (id) => wrap.querySelector(`[data-node-id="${CSS.escape(id)}"]`);
    canvas.setAttribute("width", String(wrap.clientWidth));
    canvas.setAttribute("height", String(wrap.scrollHeight));
    const defs = svg("defs");
    const marker = svg("marker", {
      id: "arrow",
      viewBox: "0 0 10 10",
      refX: "9",
      refY: "5",
      markerWidth: "7",
      markerHeight: "7",
      orient: "auto-start-reverse",
    });
    marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }));
    defs.append(marker);
    canvas.append(defs);
    const index = new Map(nodes.map((node, position) => [node.id, position]));
    let lane = 0;
    for (const edge of edges) {
      const from = box(edge.from);
      const to = box(edge.to);
      if (!from || !to) continue;
      const taken = model.taken.get(`${edge.from}\u0000${edge.to}`) || 0;
      const classes = `edge${taken ? " taken" : ""}`;
      if (index.get(edge.to) === index.get(edge.from) + 1) {
        const x = from.offsetLeft + 28;
        canvas.append(
          svg("path", {
            d: `M ${x} ${from.offsetTop + from.offsetHeight} L ${x} ${to.offsetTop}`,
            class: classes,
            "marker-end": "url(#arrow)",
          }),
        );
        if (edge.label) canvas.append(label(x + 6, from.offsetTop + from.offsetHeight + 12, edge.label));
        continue;
      }
      lane += 1;
      const right = from.offsetLeft + from.offsetWidth;
      const startY =
        from.offsetTop + from.offsetHeight / 2 + (edge.label === "else" ? 8 : edge.label === "then" ? -8 : 0);
      const endY = to.offsetTop + to.offsetHeight / 2;
      const bend = right + 18 + lane * 16;
      canvas.append(
        svg("path", {
          d: `M ${right} ${startY} C ${bend} ${startY}, ${bend} ${endY}, ${right + 2} ${endY}`,
          class: classes,
          "marker-end": "url(#arrow)",
        }),
      );
      if (edge.label) canvas.append(label(bend - 2, (startY + endY) / 2 + 4, edge.label));
    }
  }

  function label(x, y, text) {
    const element = svg("text", { x, y, class: "edge-label" });
    element.textContent = text;
    return element;
  }

  function select(model, nodeId) {
    model.selected = model.selected === nodeId ? null : nodeId;
    model.detailsSignature = null;
    renderGraph(model);
    renderDetails(model);
  }

  function renderDetails(model) {
    const holder = $("#node-details");
    if (!model.selected) {
      if (model.detailsSignature !== "")
        fill(holder, h("p", { class: "note" }, "Choose a node in the graph to see its runs, output and error."));
      model.detailsSignature = "";
      return;
    }
    const node = graphNodes(model).find((item) => item.id === model.selected) || { id: model.selected, config: {} };
    const shown = nodeView(model, node.id);
    const signature = JSON.stringify([
      node.id,
      shown.state,
      shown.count,
      shown.latest && shown.latest.endedAt,
      model.state,
    ]);
    if (signature === model.detailsSignature) return;
    model.detailsSignature = signature;
    const latest = shown.latest || {};
    const opened = (model.openedDetails ||= new Set());
    const rerunHere =
      TERMINAL.has(model.state) && shown.count > 0
        ? h(
            "button",
            {
              type: "button",
              "data-rerun-from": node.id,
              onclick: () => {
                $("#rerun-from").value = node.id;
                act(model, "rerun");
              },
            },
            `↻ Rerun from ${node.id}…`,
          )
        : null;
    fill(
      holder,
      h("h3", {}, node.id, " ", h("span", { class: "node-type" }, node.type || "")),
      node.name ? h("p", {}, node.name) : null,
      h("p", {}, stateLabel(shown.state), " · ", shown.count ? plural(shown.count, "run") : "not run yet"),
      latest.startedAt
        ? h(
            "p",
            {},
            "Latest run: ",
            timeElement(latest.startedAt),
            " → ",
            timeElement(latest.endedAt),
            latest.endedAt ? ` (${duration(between(latest.startedAt, latest.endedAt))})` : " (running)",
          )
        : null,
      latest.error ? h("div", { class: "error-box" }, h("h4", {}, "Error"), h("pre", {}, latest.error)) : null,
      latest.output !== undefined && latest.state === "COMPLETED"
        ? [h("h4", {}, "Output"), jsonTree(latest.output, "output", opened)]
        : null,
      shown.runs.length > 1
        ? [
            h("h4", {}, "Runs"),
            h(
              "ol",
              { class: "runs" },
              shown.runs
                .slice(-50)
                .map((run) =>
                  h(
                    "li",
                    {},
                    stateLabel(run.state),
                    " ",
                    timeElement(run.startedAt),
                    run.endedAt ? ` (${duration(between(run.startedAt, run.endedAt))})` : "",
                  ),
                ),
            ),
          ]
        : null,
      [h("h4", {}, "Config"), jsonTree(node.config || {}, "config", opened)],
      rerunHere,
    );
  }

  function renderTimeline(model) {
    const holder = $("#timeline");
    const all = [...model.runs.values()].filter((run) => run.startedAt).sort(inOrder);
    if (!all.length) {
      fill(holder, h("p", { class: "note" }, "No node has run yet."));
      return;
    }
    const runs = all.slice(-MOST_TIMELINE_ROWS);
    const first = Date.parse(model.startedAt || runs[0].startedAt);
    const last = model.completedAt ? Date.parse(model.completedAt) : Date.now();
    const span = Math.max(last - first, 1);
    const percent = (iso) => `${Math.min(100, Math.max(0, ((Date.parse(iso) - first) / span) * 100)).toFixed(3)}%`;
    const nowIso = new Date(last).toISOString();
    const perNode = new Map();
    const rows = runs.map((run) => {
      const ordinal = (perNode.get(run.nodeId) || 0) + 1;
      perNode.set(run.nodeId, ordinal);
      const end = run.endedAt || nowIso;
      const bar = h("span", { class: `bar bar-${run.state.toLowerCase()}` });
      bar.style.left = percent(run.startedAt);
      bar.style.width = `max(2px, calc(${percent(end)} - ${percent(run.startedAt)}))`;
      const track = h("span", { class: "track", "aria-hidden": "true" }, bar);
      const words = [
        stateLabel(run.state),
        " ",
        timeElement(run.startedAt),
        " → ",
        run.endedAt ? timeElement(run.endedAt) : "now",
        ` · ${duration(between(run.startedAt, end))}`,
      ];
      if (run.waitingSince) {
        const waitEnd = run.endedAt || nowIso;
        const wait = h("span", { class: "wait" });
        wait.style.left = percent(run.waitingSince);
        wait.style.width = `calc(${percent(waitEnd)} - ${percent(run.waitingSince)})`;
        track.append(wait);
        const why = run.waitingFor === "approval" ? "for approval" : `in a ${run.waitSeconds} s delay`;
        words.push(` · waited ${duration(between(run.waitingSince, waitEnd))} ${why}`);
      }
      for (const at of run.retries) {
        const tick = h("span", { class: "retry" });
        tick.style.left = percent(at);
        track.append(tick);
      }
      if (run.retries.length) words.push(` · ${plural(run.retries.length, "retry", "retries")}`);
      if (run.reused) words.push(" · reused from the earlier run");
      return h(
        "li",
        { class: "timeline-row", "data-run-node": run.nodeId },
        h("span", { class: "run-name" }, run.nodeId, h("span", { class: "run-ordinal" }, ` #${ordinal}`)),
        track,
        h("span", { class: "run-words" }, ...words),
      );
    });
    fill(
      holder,
      all.length > runs.length
        ? h("p", { class: "note" }, `The newest ${runs.length} of ${all.length} node runs.`)
        : null,
      h("ol", { class: "timeline" }, rows),
    );
  }

  function renderLog(model) {
    const list = $("#log");
    const shown = Number(list.getAttribute("data-shown") || 0);
    for (const line of model.logs.slice(shown)) {
      list.append(
        h(
          "li",
          { class: `log-line level-${line.level}` },
          timeElement(line.at),
          " ",
          h("span", { class: "level" }, String(line.level).toUpperCase()),
          " ",
          line.nodeId ? h("span", { class: "log-node" }, line.nodeId) : null,
          " ",
          h("span", { class: "message" }, line.message),
        ),
      );
    }
    list.setAttribute("data-shown", String(model.logs.length));
    while (list.children.length > MOST_LOG_LINES) list.firstElementChild.remove();
    $("#log-note").textContent =
      model.logs.length > MOST_LOG_LINES
        ? `The newest ${MOST_LOG_LINES} of ${model.logs.length} lines.`
        : model.logs.length
          ? ""
          : "No log lines yet.";
  }

  function renderValues(model) {
    const opened = (model.openedValues ||= new Set());
    if ($("#variables").getAttribute("data-version") !== String(model.variablesVersion)) {
      $("#variables").setAttribute("data-version", String(model.variablesVersion));
      fill($("#variables"), jsonTree(model.variables, "variables", opened));
    }
    const output = $("#output");
    if (model.outputKnown && output.getAttribute("data-filled") !== "yes") {
      output.setAttribute("data-filled", "yes");
      fill(
        output,
        model.output === undefined || model.output === null
          ? h("p", { class: "note" }, "No output.")
          : jsonTree(model.output, "output", opened),
      );
    } else if (!model.outputKnown) {
      fill(output, h("p", { class: "note" }, "Shown once the execution has completed."));
    }
  }

  function renderWorkflowNote(model) {
    const note = $("#graph-note");
    let text = null;
    if (model.workflowProblem)
      text = `The workflow could not be read (${model.workflowProblem}): only the nodes this run reached are shown.`;
    else if (model.workflow && model.workflow.version !== model.execution.workflowVersion) {
      text = `The graph is the workflow's version ${model.workflow.version}; this run used version ${model.execution.workflowVersion}.`;
    }
    note.hidden = !text;
    note.textContent = text || "";
  }

  function render(model) {
    renderSummary(model);
    renderActions(model);
    renderGraph(model);
    renderDetails(model);
    renderTimeline(model);
    renderLog(model);
    renderValues(model);
    const live = $("#live");
    live.textContent = model.ended
      ? "Ended: nothing more will change."
      : model.caughtUp
        ? "Live: following its events."
        : "Reading its events…";
  }

  // ------------------------------------------------------------------ actions
  const ACTIONS = {
    pause: {
      ask: (model) => [
        "Pause this execution?",
        "It pauses before its next node; a node running now finishes first.",
        "Pause",
        "Keep it running",
      ],
      send: (model) => api("POST", `/api/workflows/execute/${enc(model.execution.id)}/pause`),
    },
    resume: {
      ask: (model) =>
        model.state !== "PAUSED"
          ? [
              "Withdraw the pause?",
              "The pause asked for has not been taken yet; the run goes on without pausing.",
              "Withdraw the pause",
              "Keep the pause",
            ]
          : model.pausedFor
            ? [
                "Approve and resume?",
                `The execution waits for an approval at node ${model.pausedFor}; resuming approves it.`,
                "Approve and resume",
                "Not now",
              ]
            : ["Resume this execution?", "It goes on from where it paused.", "Resume", "Not now"],
      send: (model) => api("POST", `/api/workflows/execute/${enc(model.execution.id)}/resume`),
    },
    cancel: {
      ask: (model) => [
        "Cancel this execution?",
        "It ends CANCELED: a node running now is stopped and no further node runs. This cannot be undone.",
        "Cancel the execution",
        "Keep it running",
      ],
      send: (model) => api("DELETE", `/api/workflows/execute/${enc(model.execution.id)}`),
    },
    rerun: {
      ask: (model) => [
        "Rerun from this node?",
        `A new execution starts at node ${$("#rerun-from").value}; the nodes that ran before it are not run again.`,
        "Start the rerun",
        "Not now",
      ],
      send: (model) =>
        api("POST", `/api/workflows/execute/${enc(model.execution.id)}/rerun`, { fromNode: $("#rerun-from").value }),
    },
  };

  async function act(model, action) {
    const { ask, send } = ACTIONS[action];
    if (!(await confirmAction(...ask(model)))) return;
    const buttons = document.querySelectorAll("[data-action], [data-rerun-from]");
    for (const button of buttons) button.disabled = true;
    showAlert(null);
    try {
      const answer = await send(model);
      if (action === "rerun" && answer && answer.data && answer.data.executionId) {
        showStatus(`Rerun started: ${answer.data.executionId}. Opening it…`);
        location.assign(`${base}/ui/executions/${enc(answer.data.executionId)}`);
        return;
      }
      showStatus((answer && answer.message) || `${action}: done`);
    } catch (error) {
      failed(error, `The API refused to ${action} it`);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ loading and following
  async function showExecution(mine) {
    const path = `/api/workflows/execute/${enc(pageId)}`;
    const execution = (await api("GET", path)).data;
    if (mine !== generation) return;
    const model = newExecutionModel(execution);
    try {
      model.workflow = (await api("GET", `/api/workflows/${enc(execution.workflowId)}`)).data;
    } catch (error) {
      if (error.status === 401) throw error;
      model.workflowProblem = error.message;
    }
    if (mine !== generation) return;
    fill(
      $("#crumbs"),
      h(
        "a",
        { href: `${base}/ui/workflows/${enc(execution.workflowId)}` },
        model.workflow ? model.workflow.name : execution.workflowId,
      ),
      " › ",
      h("span", { "aria-current": "page" }, execution.id),
    );
    fill($("#view"), executionSkeleton(model));
    renderWorkflowNote(model);
    redrawGraph = () => renderGraph(model);
    const ticker = setInterval(() => {
      if (mine !== generation || model.ended) clearInterval(ticker);
      else if (model.caughtUp && !model.finishing) {
        renderSummary(model);
        renderGraph(model);
        renderTimeline(model);
      }
    }, 1000);
    render(model);
    await follow(model, mine);
  }

  async function follow(model, mine) {
    const id = enc(model.execution.id);
    let wait = 0;
    let failures = 0;
    while (mine === generation) {
      let page;
      try {
        const query = `after=${model.lastSeq}&limit=${EVENTS_PER_PAGE}&waitSeconds=${wait}`;
        page = (await api("GET", `/api/workflows/execute/${id}/events?${query}`)).data;
      } catch (error) {
        if (mine !== generation) return;
        if (error.status === 0 || error.status >= 500 || error.status === 429) {
          failures += 1;
          $("#live").textContent = `Connection lost (${error.message}); trying again…`;
          await sleep(Math.min(15000, 500 * 2 ** failures));
          continue;
        }
        failed(error, "Following the execution stopped");
        return;
      }
      if (mine !== generation) return;
      failures = 0;
      for (const event of page.events) fold(model, event);
      model.lastSeq = page.lastSeq;
      const full = page.events.length === EVENTS_PER_PAGE;
      if (!full) {
        model.caughtUp = true;
        model.state = page.state;
      }
      if (TERMINAL.has(page.state) && !full) {
        // Nothing is drawn until the record is read: a page that reads ended shows its output too.
        model.finishing = true;
        await finish(model, mine);
        return;
      }
      if (model.caughtUp) render(model);
      wait = full ? 0 : WAIT_SECONDS;
    }
  }

  // The end: the record once more, for its output and what the events do not carry.
  async function finish(model, mine) {
    try {
      const execution = (await api("GET", `/api/workflows/execute/${enc(model.execution.id)}`)).data;
      if (mine !== generation) return;
      model.execution = execution;
      model.output = execution.output;
      model.outputKnown = true;
      model.error = execution.error;
      model.completedAt = execution.completedAt || model.completedAt;
      model.state = execution.state;
    } catch (error) {
      failed(error, "The execution's output could not be read");
    }
    model.ended = true;
    render(model);
  }

  // ================================================================== one workflow's runs
  async function showWorkflow(mine) {
    let workflow = null;
    let problem = null;
    try {
      workflow = (await api("GET", `/api/workflows/${enc(pageId)}`)).data;
    } catch (error) {
      if (error.status === 401) throw error;
      problem = error.message;
    }
    if (mine !== generation) return;
    const name = workflow ? workflow.name : pageId;
    document.title = `${name} · stepwise`;
    fill($("#crumbs"), h("span", { "aria-current": "page" }, name));
    const table = h(
      "table",
      { class: "runs-table" },
      h("caption", {}, "Recent executions, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Execution", "State", "Started", "Took", "Started by", "Error"].map((title) =>
            h("th", { scope: "col" }, title),
          ),
        ),
      ),
      h("tbody", { id: "runs" }),
    );
    const more = h("button", { type: "button", hidden: true }, "Show older executions");
    fill(
      $("#view"),
      h(
        "section",
        { class: "summary", "aria-labelledby": "workflow-title" },
        h("h1", { id: "workflow-title" }, name),
        h(
          "p",
          {},
          h("code", {}, pageId),
          workflow
            ? ` · version ${workflow.version} · ${plural(workflow.nodes.length, "node")} · updated ${dateTime(workflow.updatedAt)}`
            : "",
        ),
        workflow && workflow.description ? h("p", {}, workflow.description) : null,
        problem
          ? h("p", { class: "note" }, `The workflow could not be read (${problem}); its executions are listed below.`)
          : null,
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "runs-title" },
        h("h2", { id: "runs-title" }, "Executions"),
        table,
        more,
        h("p", { id: "runs-note", class: "note" }),
      ),
    );
    let cursor = null;
    let firstPage = "";
    const row = (run) =>
      h(
        "tr",
        { "data-execution-id": run.id, "data-state": run.state },
        h("td", {}, h("a", { href: `${base}/ui/executions/${enc(run.id)}` }, h("code", {}, run.id))),
        h("td", {}, stateLabel(run.state, run.pauseRequested ? "pause requested" : null)),
        h("td", {}, dateTime(run.startedAt)),
        h("td", {}, run.completedAt ? duration(between(run.startedAt, run.completedAt)) : "running"),
        h("td", {}, run.startedByName || run.startedBy),
        h("td", { class: "cell-error" }, run.error || ""),
      );
    const load = async (older) => {
      const query = `workflowId=${enc(pageId)}&limit=${RUNS_PER_PAGE}${older && cursor ? `&cursor=${enc(cursor)}` : ""}`;
      const page = await api("GET", `/api/executions?${query}`);
      if (mine !== generation) return false;
      if (older) append($("#runs"), page.data.map(row));
      else {
        const signature = JSON.stringify(page.data);
        if (signature !== firstPage) {
          firstPage = signature;
          fill($("#runs"), page.data.map(row));
          cursor = page.nextCursor;
        }
      }
      if (older) cursor = page.nextCursor;
      more.hidden = !cursor;
      $("#runs-note").textContent = $("#runs").children.length ? "" : "No executions yet.";
      return page.data.some((run) => !TERMINAL.has(run.state));
    };
    more.addEventListener("click", () =>
      load(true).catch((error) => failed(error, "Older executions could not be read")),
    );
    let active = await load(false);
    // The first page follows runs in flight: read again every few seconds while one of them is.
    while (active && mine === generation) {
      await sleep(3000);
      if (document.visibilityState === "hidden") continue;
      try {
        active = await load(false);
      } catch (error) {
        failed(error, "The executions could not be read");
        return;
      }
    }
  }

  // ================================================================== start
  async function start() {
    generation += 1;
    const mine = generation;
    showAlert(null);
    showStatus("");
    fill($("#view")); // what another token read is not shown under this one
    fill($("#crumbs"));
    if (!sessionStorage.getItem(TOKEN_KEY)) {
      askForToken(null);
      return;
    }
    $("#forget-token").hidden = false;
    try {
      if (pageKind === "executions") await showExecution(mine);
      else if (pageKind === "workflows") await showWorkflow(mine);
      else showAlert(`This page shows /ui/executions/<id> or /ui/workflows/<id>, not ${location.pathname}`);
    } catch (error) {
      if (mine === generation)
        failed(
          error,
          pageKind === "executions" ? `Execution ${pageId} could not be read` : `Workflow ${pageId} could not be read`,
        );
    }
  }

  start();
})();
