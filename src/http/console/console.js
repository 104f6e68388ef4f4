// The tasklog console: pages drawn in the browser from the public API, with
// the operator's token. The token is kept in this tab's session storage and
// sent only in the Authorization header; it never appears in a URL.

const TOKEN_KEY = "tasklog.token";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `the server answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** The header that carries the session's token. */
function authorization() {
  return { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
}

let seenPosition = 0; // the log position the last answer reflected

/** Calls the API with the session's token; the JSON answer, or ApiError. */
async function api(method, path, body) {
  const headers = authorization();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  seenPosition = Number(response.headers.get("tasklog-position") ?? seenPosition);
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (response.status === 401) {
    signOut();
    throw new ApiError(401, json);
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

let caller = null; // {name, scopes} of the token in use

function can(scope) {
  return caller !== null && (caller.scopes.includes("admin") || caller.scopes.includes(scope));
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  caller = null;
  render();
}

// ---- drawing -----------------------------------------------------------------

/** An element: `h("a", {href: "/"}, "text", child)`. Text is never parsed as HTML. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...nodes(children));
  return element;
}

/** Children as nodes: nested lists flattened, nothing for null, undefined or false. */
function nodes(children) {
  return children.flat(Infinity)
    .filter((child) => child !== undefined && child !== null && child !== false)
    .map((child) => (child instanceof Node ? child : String(child)));
}

/** A time in the browser's zone, UTC on hover. */
function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "none");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: `${date.toISOString()} (UTC)` }, date.toLocaleString());
}

function json(value) {
  return h("pre", { class: "mono" }, JSON.stringify(value, null, 2));
}

function page(title, ...children) {
  document.title = `${title} · tasklog console`;
  main.replaceChildren(h("h1", {}, title), ...nodes(children));
  // For measuring: when the page was first drawn, in the browser's own timeline.
  if (performance.getEntriesByName("tasklog:drawn").length === 0) performance.mark("tasklog:drawn");
}

function say(text) {
  statusLine.textContent = text;
}

function failure(error) {
  const detail = error.body && error.body.details ? ` ${JSON.stringify(error.body.details)}` : "";
  return h("p", { class: "notice error", role: "alert" }, `${error.message}${detail}`);
}

/** Runs an action of a button: disabled meanwhile, the error shown beside it. */
function action(label, run, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      button.after(failure(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function taskLink(id, text) {
  return h("a", { href: `/ui/tasks/${encodeURIComponent(id)}` }, text ?? id);
}

// Task ids as the API writes them; other subjects name a schedule or a queue.
const TASK_ID = /^[0-9a-f]{32}$/;

// ---- pages -------------------------------------------------------------------

let stopPage = () => {}; // ends the timers and streams of the page shown

async function render() {
  stopPage();
  stopPage = () => {};
  const path = location.pathname.replace(/^\/ui\/?/, "").replace(/\/$/, "");
  for (const link of document.querySelectorAll("nav ul a")) {
    const current = link.getAttribute("href") === `/ui/${path.split("/")[0] || "queues"}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!sessionStorage.getItem(TOKEN_KEY)) return signIn();
  try {
    if (caller === null) caller = await api("GET", "/v1/token");
    document.getElementById("who").hidden = false;
    document.getElementById("who-name").textContent = `Signed in as ${caller.name}`;
    const [first, second] = path.split("/");
    const params = new URLSearchParams(location.search);
    const [title, draw] = PAGES[first || "queues"] ?? ["Not found", notFoundPage];
    try {
      await (first === "tasks" && second ? taskPage(decodeURIComponent(second), params) : draw(params));
    } catch (error) {
      if (error.status !== 403) throw error;
      page(title, h("p", { class: "notice" }, `This token may not see this page: ${error.message}`));
    }
  } catch (error) {
    if (error.status === 401) return;
    page("Something failed", failure(error));
  }
}

function notFoundPage() {
  page("Not found", h("p", {}, "The console has no such page."));
}

function signIn(message) {
  document.getElementById("who").hidden = true;
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h("form", { id: "sign-in" },
    h("p", {}, "Sign in with an API token. It stays in this browser tab until you sign out or close it."),
    h("p", {}, h("label", { for: "token" }, "Token "), input, " ", h("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      caller = await api("GET", "/v1/token");
      render();
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      signIn(error.status === 401 ? "That token is not one this server takes." : error.message);
    }
  });
  page("Sign in", message ? h("p", { class: "notice error", role: "alert" }, message) : null, form);
  input.focus();
}

// Queues: each type's counts, limit and pause, refreshed every few seconds.
async function queuesPage() {
  const samples = new Map(); // type -> [time, completed] of the first sample
  const body = h("tbody");
  const table = h("table", {},
    h("caption", { class: "muted" }, "Each task type's queue; throughput is completions per minute since this page opened."),
    h("thead", {}, h("tr", {},
      ["Type", "Pending", "Running", "Completed", "Failed", "Throughput", "Running limit", "Claims"].map((name, i) =>
        h("th", { scope: "col", class: i >= 1 && i <= 5 ? "number" : null }, name)))),
    body);
  page("Queues", table);
  const count = (queue, state) =>
    h("td", { class: "number" }, h("a", { href: `/ui/tasks?type=${encodeURIComponent(queue.type)}&state=${state}` }, queue[state]));
  const draw = async () => {
    // Not under an operator's hands: a redraw would drop what they are typing.
    if (body.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    const { queues } = await api("GET", "/v1/queues");
    const now = Date.now();
    body.replaceChildren(...queues.map((queue) => {
      const first = samples.get(queue.type) ?? samples.set(queue.type, [now, queue.completed]).get(queue.type);
      const minutes = (now - first[0]) / 60000;
      const throughput = minutes > 0 ? ((queue.completed - first[1]) / minutes).toFixed(1) : "…";
      const settings = { maxRunning: queue.maxRunning ?? null, paused: queue.paused };
      const put = (changed) => api("PUT", `/v1/queues/${encodeURIComponent(queue.type)}`, { ...settings, ...changed }).then(draw);
      let limitCell = queue.maxRunning ?? "none";
      if (can("admin")) {
        const input = h("input", { type: "number", min: 1, max: 100000, value: queue.maxRunning ?? "", "aria-label": `Running limit of ${queue.type}`, placeholder: "none" });
        const form = h("form", { class: "inline" }, input, h("button", { type: "submit" }, "Set"));
        form.addEventListener("submit", (event) => {
          event.preventDefault();
          put({ maxRunning: input.value === "" ? null : Number(input.value) }).catch((error) => form.after(failure(error)));
        });
        limitCell = form;
      }
      return h("tr", { "data-type": queue.type },
        h("th", { scope: "row" }, queue.type),
        count(queue, "pending"), count(queue, "running"), count(queue, "completed"), count(queue, "failed"),
        h("td", { class: "number" }, throughput),
        h("td", {}, limitCell),
        h("td", {}, h("span", { class: "state" }, queue.paused ? "paused" : "open"), " ",
          can("admin") ? action(queue.paused ? "Resume" : "Pause", () => put({ paused: !queue.paused }),
            { "aria-label": `${queue.paused ? "Resume" : "Pause"} ${queue.type}` }) : null));
    }));
    if (queues.length === 0) body.append(h("tr", {}, h("td", { colspan: 8 }, "No tasks yet.")));
  };
  await draw();
  every(5000, draw);
}

/** Runs `refresh` every `ms` until the page changes, quietly skipping failures. */
function every(ms, refresh) {
  const timer = setInterval(() => refresh().catch((error) => say(error.message)), ms);
  const before = stopPage;
  stopPage = () => { clearInterval(timer); before(); };
}

const STATES = ["pending", "running", "failed", "completed"];

// Tasks: filters in the URL (never the token), cursor paging, bulk actions.
async function tasksPage(params) {
  const field = (name, label, attributes = {}) =>
    h("label", {}, label, h("input", { name, value: params.get(name) ?? "", ...attributes }));
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s)));
  const filters = h("form", { class: "filters", method: "get", action: "/ui/tasks", role: "search" },
    h("label", {}, "State", state),
    field("type", "Type"),
    field("labelSelector", "Label selector", { placeholder: "env=prod,tier!=batch" }),
    field("tags", "Tags", { placeholder: "a,b" }),
    field("nameContains", "Name contains"),
    h("button", { type: "submit" }, "Filter"));
  const query = new URLSearchParams();
  for (const name of ["state", "type", "labelSelector", "tags", "nameContains", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  query.set("limit", "50");
  const list = await api("GET", `/v1/tasks?${query}`);
  const selectable = can("tasks:write");
  const boxes = [];
  const rows = list.tasks.map((task) => {
    const box = selectable ? h("input", { type: "checkbox", value: task.id, "aria-label": `Select ${task.name}` }) : null;
    if (box) boxes.push(box);
    return h("tr", {},
      selectable ? h("td", {}, box) : null,
      h("td", {}, taskLink(task.id, task.name)),
      h("td", {}, task.type),
      h("td", { class: "state" }, task.state),
      h("td", { class: "number" }, task.priority),
      h("td", { class: "number" }, task.attempts),
      h("td", {}, time(task.createdTime)),
      h("td", {}, time(task.modifiedTime)));
  });
  const all = selectable ? h("input", { type: "checkbox", "aria-label": "Select every task shown" }) : null;
  all?.addEventListener("change", () => boxes.forEach((box) => { box.checked = all.checked; }));
  const table = h("table", {},
    h("thead", {}, h("tr", {},
      selectable ? h("th", { scope: "col" }, all) : null,
      ["Name", "Type", "State", "Priority", "Attempts", "Created", "Modified"].map((name, i) =>
        h("th", { scope: "col", class: i === 3 || i === 4 ? "number" : null }, name)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 8 }, "No tasks on this page."))));
  const bulk = async (verb, selection) => {
    const answer = await api("POST", `/v1/tasks/${verb}`, { select: selection, limit: 1000 });
    const done = verb === "retry" ? "Retried" : "Cancelled";
    await render();
    say(`${done} ${answer.changed}, skipped ${answer.skipped}${answer.more ? ", more are left" : ""}.`);
  };
  const chosen = () => {
    const ids = boxes.filter((box) => box.checked).map((box) => box.value);
    if (ids.length === 0) throw new ApiError(400, { message: "Select some tasks first." });
    return { ids };
  };
  const byFilter = (verb) => {
    if (params.get("nameContains")) {
      throw new ApiError(400, { message: "Text in the name is not a selection a bulk action takes: select the tasks instead." });
    }
    const selection = {};
    if (params.get("type")) selection.type = params.get("type");
    if (params.get("labelSelector")) selection.labelSelector = params.get("labelSelector");
    if (params.get("tags")) selection.tags = params.get("tags").split(",").map((t) => t.trim());
    if (Object.keys(selection).length === 0) {
      throw new ApiError(400, { message: "Filter by type, label selector or tags first." });
    }
    const which = verb === "retry" ? "failed" : "pending";
    if (!confirm(`${verb === "retry" ? "Retry" : "Cancel"} up to 1,000 ${which} tasks matching ${JSON.stringify(selection)}?`)) {
      return null;
    }
    return selection;
  };
  const bulkByFilter = async (verb) => {
    const selection = byFilter(verb);
    if (selection) await bulk(verb, selection);
  };
  const actions = selectable ? h("div", { class: "actions" },
    action("Retry selected", () => bulk("retry", chosen())),
    action("Cancel selected", () => bulk("cancel", chosen())),
    action("Retry every failed task matching the filter", () => bulkByFilter("retry")),
    action("Cancel every pending task matching the filter", () => bulkByFilter("cancel"))) : null;
  const paging = h("p", { class: "actions" });
  if (params.get("cursor")) {
    const first = new URLSearchParams(params);
    first.delete("cursor");
    paging.append(h("a", { href: `/ui/tasks?${first}` }, "First page"));
  }
  if (list.nextCursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", list.nextCursor);
    paging.append(h("a", { href: `/ui/tasks?${next}`, rel: "next" }, "Next page"));
  }
  page("Tasks", filters, actions, table, paging);
}

// A task: every field, and its timeline from its events, growing while it runs.
async function taskPage(id, params) {
  const revision = params.get("revision");
  const asOf = revision === null ? "" : `?revision=${encodeURIComponent(revision)}`;
  let shownEvents = -1;
  const draw = async () => {
    const task = await api("GET", `/v1/tasks/${encodeURIComponent(id)}${asOf}`);
    const history = can("events:read") ? await api("GET", `/v1/tasks/${encodeURIComponent(id)}/events`) : null;
    const events = history ? history.events : [];
    if (history && events.length === shownEvents) return;
    shownEvents = events.length;
    const fields = [
      ["Id", h("span", { class: "mono" }, task.id)], ["Type", task.type],
      ["State", h("span", { class: "state" }, task.state)], ["Priority", task.priority],
      ["Attempts", task.maxAttempts ? `${task.attempts} of ${task.maxAttempts}` : task.attempts],
      ["Worker", task.worker ?? "none"], ["Lease expires", time(task.leaseExpirationTime)],
      ["Available", time(task.availableTime)], ["Expires", time(task.expirationTime)],
      ["Created", time(task.createdTime)], ["Modified", time(task.modifiedTime)],
      ["Labels", Object.entries(task.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
      ["Tags", task.tags.join(", ") || "none"],
      ["Schedule", task.scheduleId ?? "none"],
    ];
    const sections = [["Data", task.data], ["Result", task.result], ["Progress", task.progress],
      ["Error", task.error ?? task.lastError]].filter(([, value]) => value !== undefined && value !== null);
    const actions = h("div", { class: "actions" },
      revision === null && can("tasks:write") && task.state === "pending"
        ? action("Cancel task", () => api("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`, {}).then(() => { shownEvents = -1; return draw(); })) : null,
      revision === null && can("tasks:write") && task.state === "failed"
        ? action("Retry task", () => api("POST", `/v1/tasks/${encodeURIComponent(id)}/retry`, {}).then(() => { shownEvents = -1; return draw(); })) : null);
    page(task.name,
      revision === null ? null : h("p", { class: "notice" },
        `As it stood after event ${revision}. `, h("a", { href: `/ui/tasks/${encodeURIComponent(id)}` }, "Show the task now")),
      actions,
      h("dl", { class: "fields" }, fields.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
      sections.map(([name, value]) => [h("h2", {}, name), json(value)]),
      h("h2", {}, "Timeline"),
      history ? timeline(id, events, revision) : h("p", { class: "muted" }, "The timeline needs a token with events:read."));
  };
  await draw();
  if (revision === null) every(2000, draw);
}

function timeline(id, events, revision) {
  const traceId = (traceparent) => traceparent ? traceparent.split("-")[1] : "none";
  return h("table", { id: "timeline" },
    h("caption", { class: "muted" }, "Every event of the task, oldest first, each linked to the previous by its hash."),
    h("thead", {}, h("tr", {}, ["#", "Event", "Time", "Actor", "Worker", "Request", "Trace", "Position", "Hash", ""].map((name) =>
      h("th", { scope: "col" }, name)))),
    h("tbody", {}, events.map((event) => h("tr", { "aria-current": String(event.tasklogrevision) === revision ? "true" : null },
      h("td", { class: "number" }, event.tasklogrevision),
      h("td", {}, event.type),
      h("td", {}, time(event.time)),
      h("td", {}, event.tasklogactor ?? "none"),
      h("td", {}, event.data.worker ?? ""),
      h("td", { class: "mono" }, event.tasklogrequestid ?? "none"),
      h("td", { class: "mono" }, traceId(event.traceparent)),
      h("td", { class: "number" }, event.tasklogposition),
      h("td", { class: "mono", title: event.taskloghash }, event.taskloghash.slice(0, 12)),
      h("td", {}, h("a", { href: `/ui/tasks/${encodeURIComponent(id)}?revision=${event.tasklogrevision}` }, "Show as of this event"))))));
}

// The live log: the SSE stream, read with fetch so the token goes in a header.
async function logPage(params) {
  const taskType = h("input", { name: "taskType", value: params.get("taskType") ?? "" });
  const eventType = h("input", { name: "eventType", value: params.get("eventType") ?? "", placeholder: "TaskCompleted" });
  const filters = h("form", { class: "filters", method: "get", action: "/ui/log" },
    h("label", {}, "Task type", taskType), h("label", {}, "Event type", eventType),
    h("button", { type: "submit" }, "Filter"));
  const state = h("p", { id: "stream-state", role: "status" }, "Connecting…");
  const body = h("tbody");
  const toggle = h("button", { type: "button", id: "pause-stream" }, "Pause");
  page("Live log", filters, h("div", { class: "actions" }, toggle, state),
    h("table", {}, h("thead", {}, h("tr", {}, ["Position", "Time", "Event", "Task", "Actor"].map((name) => h("th", { scope: "col" }, name)))), body));
  let last = seenPosition; // live from the position of the page's token check
  let controller = null;
  const show = (event) => {
    const subject = TASK_ID.test(event.subject) ? taskLink(event.subject) : event.subject;
    body.prepend(h("tr", {},
      h("td", { class: "number" }, event.tasklogposition), h("td", {}, time(event.time)),
      h("td", {}, event.type), h("td", { class: "mono" }, subject), h("td", {}, event.tasklogactor ?? "none")));
    while (body.rows.length > 500) body.deleteRow(-1);
  };
  let paused = false;
  let reconnect = null; // the timer of the next attempt, if one is due
  const connect = async () => {
    reconnect = null;
    controller = new AbortController();
    const query = new URLSearchParams();
    if (taskType.value) query.set("taskType", taskType.value);
    if (eventType.value) query.set("eventType", eventType.value);
    try {
      const response = await fetch(`/v1/events/stream?${query}`, {
        signal: controller.signal,
        headers: { ...authorization(), "Last-Event-ID": String(last) },
      });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      state.textContent = `Live from position ${last}`;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const frame = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = frame.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
          const id = frame.split("\n").find((line) => line.startsWith("id:"));
          if (!data) continue;
          if (id) last = Number(id.slice(3).trim());
          show(JSON.parse(data));
        }
      }
      state.textContent = "The stream ended; reconnecting…";
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error.status === 401) return signOut();
      if (error.status >= 400 && error.status < 500 && error.status !== 429) {
        state.textContent = `${error.message} The log stops here.`;
        controller = null;
        return;
      }
      state.textContent = `${error.message}; reconnecting…`;
    }
    controller = null;
    if (!paused && main.contains(body)) reconnect = setTimeout(connect, 1000);
  };
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    clearTimeout(reconnect);
    reconnect = null;
    if (paused) {
      controller?.abort();
      controller = null;
      state.textContent = `Paused after position ${last}`;
    } else if (!controller) connect();
  });
  stopPage = () => { paused = true; clearTimeout(reconnect); controller?.abort(); };
  connect();
}

// Schedules: their next runs, paused or not.
async function schedulesPage() {
  const { schedules } = await api("GET", "/v1/schedules");
  const writable = can("schedules:write");
  const act = (schedule, verb, method, path) => action(verb, async () => {
    if (verb === "Delete" && !confirm(`Delete the schedule ${schedule.name}?`)) return;
    await api(method, path, method === "POST" ? {} : undefined);
    await render();
  }, { "aria-label": `${verb} ${schedule.name}` });
  page("Schedules", h("table", {},
    h("thead", {}, h("tr", {}, ["Name", "State", "Recurrence", "Next run", "Last run", "Runs", "Last task", ""].map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, schedules.length ? schedules.map((schedule) => {
      const path = `/v1/schedules/${encodeURIComponent(schedule.id)}`;
      return h("tr", {},
        h("th", { scope: "row" }, schedule.name),
        h("td", { class: "state" }, schedule.state),
        h("td", { class: "mono" }, JSON.stringify(schedule.recurrence)),
        h("td", {}, time(schedule.nextRunTime)),
        h("td", {}, time(schedule.lastRunTime)),
        h("td", { class: "number" }, schedule.runs),
        h("td", {}, schedule.lastTaskId ? taskLink(schedule.lastTaskId, "open") : "none"),
        h("td", {}, writable ? [
          schedule.state === "paused" ? act(schedule, "Resume", "POST", `${path}/resume`) : act(schedule, "Pause", "POST", `${path}/pause`),
          " ", act(schedule, "Delete", "DELETE", path)] : null));
    }) : h("tr", {}, h("td", { colspan: 8 }, "No schedules.")))));
}

// Consumers: each durable consumer's position and how far it lags the log.
async function consumersPage() {
  const draw = async () => {
    const { consumers } = await api("GET", "/v1/consumers");
    page("Consumers", h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Position", "Head", "Lag", "Acknowledged"].map((name, i) =>
        h("th", { scope: "col", class: i >= 1 && i <= 3 ? "number" : null }, name)))),
      h("tbody", {}, consumers.length ? consumers.map((consumer) => h("tr", {},
        h("th", { scope: "row" }, consumer.name),
        h("td", { class: "number" }, consumer.position), h("td", { class: "number" }, consumer.head),
        h("td", { class: "number" }, consumer.lag), h("td", {}, time(consumer.acknowledgedTime))))
        : h("tr", {}, h("td", { colspan: 5 }, "No durable consumers.")))));
  };
  await draw();
  every(5000, draw);
}

// Verify: recompute the hash chain over the whole log.
async function verifyPage() {
  const result = h("div", { id: "verification", "aria-live": "polite" });
  if (!can("admin")) {
    return page("Verify", h("p", {}, "Verifying the log needs a token with the admin scope."));
  }
  page("Verify", h("p", {}, "Reads every event and recomputes the hash chain: any event changed, removed or reordered since it was written shows here."),
    action("Verify the log", async () => {
      result.replaceChildren(h("p", {}, "Verifying…"));
      const answer = await api("GET", "/v1/admin/verify");
      result.replaceChildren(
        h("p", { class: answer.ok ? "notice" : "notice error", role: answer.ok ? null : "alert" },
          answer.ok ? `The log verifies: ${answer.events} events, unchanged.` : `The log does not verify: ${answer.message ?? ""}`),
        h("dl", { class: "fields" },
          h("dt", {}, "Events"), h("dd", {}, answer.events ?? "none"),
          h("dt", {}, "Head"), h("dd", {}, answer.head ?? "none"),
          h("dt", {}, "Head hash"), h("dd", { class: "mono" }, answer.headHash ?? "none"),
          h("dt", {}, "First bad position"), h("dd", {}, answer.firstBadPosition ?? "none")));
    }),
    result);
}

/** Each page by its path under /ui/: its title and what draws it. */
const PAGES = {
  queues: ["Queues", queuesPage],
  tasks: ["Tasks", tasksPage],
  log: ["Live log", logPage],
  schedules: ["Schedules", schedulesPage],
  consumers: ["Consumers", consumersPage],
  verify: ["Verify", verifyPage],
};

document.getElementById("sign-out").addEventListener("click", signOut);
render();
