"""Tasks of one user: list with filters, create, read, update, toggle, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import TypeAdapter

from app import crud
from app.api.deps import DbDep, OwnerDep
from app.models import (
    API_ERRORS,
    MAX_ID,
    NO_NUL,
    Priority,
    SortOrder,
    Task,
    TaskCreate,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=API_ERRORS)
TaskId = Annotated[int, Path(ge=1, le=MAX_ID)]
MAX_PAGE = 200


TASK_LIST = TypeAdapter(list[Task])


@router.get("", response_model=list[Task])
async def list_tasks(
    user_id: OwnerDep,
    db: DbDep,
    status_: Annotated[TaskStatus, Query(alias="status")] = TaskStatus.all,
    priority: Priority | None = None,
    tag: Annotated[str | None, Query(max_length=32, pattern=NO_NUL)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    sort: TaskSort = TaskSort.created,
    order: SortOrder = SortOrder.desc,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The caller's tasks, filtered, sorted and paged."""
    async with db.connection() as conn:
        rows = await crud.list_tasks(
            conn, user_id=user_id, status=status_.value, priority=priority.value if priority else None,
            tag=tag, q=q, sort=sort.value, order=order.value, limit=limit, offset=offset,
        )
    # The hot path: validate and serialise in one pass in pydantic-core (same schema as response_model).
    return Response(TASK_LIST.dump_json(TASK_LIST.validate_python(rows)), media_type="application/json")


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_task(user_id: OwnerDep, db: DbDep, body: TaskCreate) -> Task:
    """Create a task."""
    async with db.connection() as conn:
        row = await crud.create_task(conn, user_id=user_id, **body.model_dump(mode="python") | {
            "priority": body.priority.value})
    return Task.model_validate(row)


@router.get("/{task_id}")
async def get_task(user_id: OwnerDep, db: DbDep, task_id: TaskId) -> Task:
    """One task."""
    async with db.connection() as conn:
        return Task.model_validate(await crud.get_task(conn, user_id=user_id, task_id=task_id))


@router.put("/{task_id}")
async def update_task(user_id: OwnerDep, db: DbDep, task_id: TaskId, body: TaskUpdate) -> Task:
    """Update the fields sent (partial update allowed)."""
    changes = body.model_dump(exclude_unset=True)
    if "priority" in changes:
        changes["priority"] = body.priority.value
    async with db.connection() as conn:
        return Task.model_validate(await crud.update_task(conn, user_id=user_id, task_id=task_id, changes=changes))


@router.patch("/{task_id}/complete")
async def toggle_complete(user_id: OwnerDep, db: DbDep, task_id: TaskId) -> Task:
    """Toggle completion."""
    async with db.connection() as conn:
        return Task.model_validate(await crud.toggle_task(conn, user_id=user_id, task_id=task_id))


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_task(user_id: OwnerDep, db: DbDep, task_id: TaskId) -> Response:
    """Delete a task."""
    async with db.connection() as conn:
        await crud.delete_task(conn, user_id=user_id, task_id=task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
