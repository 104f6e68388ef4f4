"""Drives a real server through a Python client that openapi-python-client
generated from schemas/openapi.json: a create, a batch, a claim of one and of
many, a complete, and a 404, each answer read as the document's types.

Usage: python_client_check.py <base url> <token>
"""

import datetime
import sys

from tasklog_client import AuthenticatedClient
from tasklog_client.api.tasks import create_task, create_tasks, get_task
from tasklog_client.api.workers import claim_task, complete_task
from tasklog_client.models import (
    ClaimRequest,
    CompleteRequest,
    CreateTask,
    CreateTaskData,
    CreateTasks,
    ErrorBody,
    Task,
    TaskBatch,
)


def check(condition, what):
    if not condition:
        sys.exit(f"python client: {what}")


def main(base, token):
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def body(name):
        return CreateTask(
            name=name,
            type_="python",
            priority=1,
            data=CreateTaskData.from_dict({"to": "ada@example.com"}),
            available_time=now - datetime.timedelta(hours=1),
            expiration_time=now + datetime.timedelta(hours=1),
            tags=["generated"],
        )

    created = create_task.sync(client=client, body=body("one"))
    check(isinstance(created, Task), f"create answered {created!r}")
    check(created.state == "pending" and created.name == "one", f"created {created!r}")

    batch = create_tasks.sync(client=client, body=CreateTasks(tasks=[body("two"), body("three")]))
    check(isinstance(batch, TaskBatch), f"the batch answered {batch!r}")
    check([t.name for t in batch.tasks] == ["two", "three"], f"the batch made {batch!r}")

    claimed = claim_task.sync(
        client=client, body=ClaimRequest(types=["python"], worker="py", lease_seconds=60)
    )
    check(isinstance(claimed, Task), f"the claim answered {claimed!r}")
    check(claimed.state == "running" and claimed.worker == "py", f"claimed {claimed!r}")
    done = complete_task.sync(claimed.id, client=client, body=CompleteRequest(worker="py"))
    check(isinstance(done, Task) and done.state == "completed", f"complete answered {done!r}")

    rest = claim_task.sync(
        client=client,
        body=ClaimRequest(types=["python"], worker="py", lease_seconds=60, max_=10),
    )
    check(isinstance(rest, TaskBatch) and len(rest.tasks) == 2, f"the claim of many answered {rest!r}")

    missing = get_task.sync("0" * 32, client=client)
    check(isinstance(missing, ErrorBody), f"a missing task answered {missing!r}")
    check(missing.code == 404 and missing.reason == "task_not_found", f"a missing task: {missing!r}")
    shown = get_task.sync(created.id, client=client)
    check(isinstance(shown, Task) and shown.id == created.id, f"get answered {shown!r}")
    print("python client: create, batch, claim, claim of many, complete and 404 as documented")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
