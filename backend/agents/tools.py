"""The five todo tools, defined once: argument models, the OpenAI tool specs derived from them, and one
dispatcher. The chat agent and the MCP server both call `execute`; the user id is always the server's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app import crud
from app.core.db import Database
from app.core.errors import AppError
from app.models import MAX_ID, Description, Priority, Tags, Task, TaskFields, TaskStatus, Title, UtcDatetime

if TYPE_CHECKING:  # the SDK's types only: the MCP server imports this module without the SDK
    from openai.types.chat import ChatCompletionToolParam


class _Args(BaseModel):
    # extra="forbid": a model that tries to pass user_id (or anything unknown) gets an error, not obedience.
    model_config = ConfigDict(extra="forbid")


class AddTaskArgs(TaskFields):  # the API's new-task fields; no docstring: it would enter the tool's schema
    pass


class ListTasksArgs(_Args):
    status: TaskStatus = TaskStatus.all
    priority: Priority | None = None
    tag: str | None = None
    q: str | None = Field(default=None, description="text to search in title and description")
    limit: int = Field(default=20, ge=1, le=100)


class TaskIdArgs(_Args):
    task_id: int = Field(ge=1, le=MAX_ID)


class UpdateTaskArgs(_Args):
    task_id: int = Field(ge=1, le=MAX_ID)
    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None
    tags: Tags | None = None
    due_date: UtcDatetime | None = None


TOOLS: dict[str, tuple[type[BaseModel], str]] = {
    "add_task": (AddTaskArgs, "Create a task for the user."),
    "list_tasks": (ListTasksArgs, "List the user's tasks, optionally filtered."),
    "complete_task": (TaskIdArgs, "Mark one of the user's tasks as completed."),
    "delete_task": (TaskIdArgs, "Delete one of the user's tasks."),
    "update_task": (UpdateTaskArgs, "Change fields of one of the user's tasks; only the fields given change."),
}


def openai_tool_specs() -> list[ChatCompletionToolParam]:
    return [
        {
            "type": "function",
            "function": {"name": name, "description": doc, "parameters": model.model_json_schema()},
        }
        for name, (model, doc) in TOOLS.items()
    ]


def _task(row: dict[str, Any]) -> dict[str, Any]:
    return Task.model_validate(row).model_dump(mode="json")


async def execute(name: str, arguments: dict[str, Any], *, user_id: str, db: Database) -> dict[str, Any]:
    """Run one tool for `user_id`. Bad arguments and missing tasks come back as {"error": ...} for the model;
    database outages propagate (the caller turns them into 503)."""
    if name not in TOOLS:
        return {"error": f"unknown tool {name!r}"}
    model, _ = TOOLS[name]
    try:
        args = model.model_validate(arguments)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        return {"error": "invalid arguments: " + problems}
    try:
        async with db.connection() as conn:
            if isinstance(args, AddTaskArgs):
                return {"task": _task(await crud.create_task(conn, user_id=user_id, **args.model_dump()))}
            if isinstance(args, ListTasksArgs):
                rows = await crud.list_tasks(
                    conn, user_id=user_id, status=args.status.value,
                    priority=args.priority.value if args.priority else None, tag=args.tag, q=args.q, limit=args.limit,
                )
                return {"tasks": [_task(r) for r in rows]}
            if isinstance(args, UpdateTaskArgs):
                changes = args.model_dump(exclude_unset=True, exclude={"task_id"})
                if "priority" in changes and changes["priority"] is not None:
                    changes["priority"] = changes["priority"].value
                for field in ("title", "priority", "tags"):
                    if field in changes and changes[field] is None:
                        del changes[field]
                row = await crud.update_task(conn, user_id=user_id, task_id=args.task_id, changes=changes)
                return {"task": _task(row)}
            assert isinstance(args, TaskIdArgs)
            if name == "complete_task":
                return {"task": _task(await crud.set_completed(conn, user_id=user_id, task_id=args.task_id))}
            return {"deleted": _task(await crud.delete_task(conn, user_id=user_id, task_id=args.task_id))}
    except AppError as e:
        if e.status_code == 503:
            raise
        return {"error": e.message}
