// Drives a real server through openapi-fetch, typed by openapi-typescript
// from schemas/openapi.json: tsc checks the calls against the document, then
// node runs them. Usage: node check.js <base url> <token>
import createClient from "openapi-fetch";
import type { components, paths } from "./api.js";

type Task = components["schemas"]["Task"];
type TaskBatch = components["schemas"]["TaskBatch"];

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    console.error(`typescript client: ${what}`);
    process.exit(1);
  }
}

const [base, token] = process.argv.slice(2);
const client = createClient<paths>({ baseUrl: base, headers: { Authorization: `Bearer ${token}` } });
const now = Date.now();
const body = (name: string) => ({
  name,
  type: "typescript",
  priority: 1,
  data: { to: "ada@example.com" },
  availableTime: new Date(now - 3_600_000).toISOString(),
  expirationTime: new Date(now + 3_600_000).toISOString(),
});

const created = await client.POST("/v1/tasks", { body: body("one") });
check(created.response.status === 200 && created.data !== undefined, `create: ${JSON.stringify(created.error)}`);
const task: Task = created.data;
check(task.state === "pending" && task.name === "one", `created ${JSON.stringify(task)}`);

const batch = await client.POST("/v1/tasks/batch", { body: { tasks: [body("two"), body("three")] } });
check(batch.data !== undefined, `batch: ${JSON.stringify(batch.error)}`);
check(batch.data.tasks.map((t) => t.name).join(",") === "two,three", `batch made ${JSON.stringify(batch.data)}`);

const claimed = await client.POST("/v1/tasks/claim", {
  body: { types: ["typescript"], worker: "ts", leaseSeconds: 60 },
});
check(claimed.response.status === 200 && claimed.data !== undefined, `claim: ${claimed.response.status}`);
const running = claimed.data as Task;
check(running.state === "running" && running.worker === "ts", `claimed ${JSON.stringify(running)}`);
const done = await client.POST("/v1/tasks/{id}/complete", {
  params: { path: { id: running.id } },
  body: { worker: "ts" },
});
check(done.data?.state === "completed", `complete: ${JSON.stringify(done.error)}`);

const many = await client.POST("/v1/tasks/claim", {
  body: { types: ["typescript"], worker: "ts", leaseSeconds: 60, max: 10 },
});
check((many.data as TaskBatch | undefined)?.tasks.length === 2, `claim of many: ${JSON.stringify(many.data)}`);

const missing = await client.GET("/v1/tasks/{id}", { params: { path: { id: "0".repeat(32) } } });
check(missing.response.status === 404, `a missing task: ${missing.response.status}`);
check(missing.error?.reason === "task_not_found", `a missing task: ${JSON.stringify(missing.error)}`);
console.log("typescript client: create, batch, claim, claim of many, complete and 404 as documented");
