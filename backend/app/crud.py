"""Data functions: every query takes the owner's user id and filters by it.

Used by the HTTP routes, the chat agent's tools and the MCP server alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.types.json import Jsonb

from app.core.errors import NotFound

Row = dict[str, Any]

TASK_COLUMNS = "id, user_id, title, description, completed, priority, tags, due_date, created_at, updated_at"
SORT_EXPRESSIONS = {
    "created": "created_at",
    "updated": "updated_at",
    "due": "due_date",
    "priority": "array_position(ARRAY['low','medium','high'], priority)",
    "title": "lower(title)",
}
UPDATABLE = frozenset({"title", "description", "completed", "priority", "tags", "due_date"})


async def _found(cur: AsyncCursor[Row], what: str) -> Row:
    """The one row a statement returned, or NotFound naming what was asked for (another user's rows look the
    same as missing ones)."""
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"{what} not found")
    return row


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def create_task(
    conn: AsyncConnection[Row],
    *,
    user_id: str,
    title: str,
    description: str | None = None,
    priority: str = "medium",
    tags: list[str] | None = None,
    due_date: datetime | None = None,
    completed: bool = False,
) -> Row:
    cur = await conn.execute(
        f"INSERT INTO tasks (user_id, title, description, priority, tags, due_date, completed)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {TASK_COLUMNS}",
        (user_id, title, description, priority, tags or [], due_date, completed),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def list_tasks(
    conn: AsyncConnection[Row],
    *,
    user_id: str,
    status: str = "all",
    priority: str | None = None,
    tag: str | None = None,
    q: str | None = None,
    sort: str = "created",
    order: str = "desc",
    limit: int = 50,
    offset: int = 0,
) -> list[Row]:
    where = [sql.SQL("user_id = %s")]
    params: list[Any] = [user_id]
    if status == "pending":
        where.append(sql.SQL("NOT completed"))
    elif status == "completed":
        where.append(sql.SQL("completed"))
    if priority:
        where.append(sql.SQL("priority = %s"))
        params.append(priority)
    if tag:
        where.append(sql.SQL("%s = ANY(tags)"))
        params.append(tag)
    if q:
        where.append(sql.SQL("(title ILIKE %s OR coalesce(description, '') ILIKE %s)"))
        params += [_like_pattern(q), _like_pattern(q)]
    direction = sql.SQL("ASC" if order == "asc" else "DESC")
    query = sql.SQL("SELECT {cols} FROM tasks WHERE {where} ORDER BY {key} {dir} NULLS LAST, id {dir}"
                    " LIMIT %s OFFSET %s").format(
        cols=sql.SQL(TASK_COLUMNS),
        where=sql.SQL(" AND ").join(where),
        key=sql.SQL(SORT_EXPRESSIONS[sort]),
        dir=direction,
    )
    cur = await conn.execute(query, [*params, limit, offset])
    return await cur.fetchall()


async def get_task(conn: AsyncConnection[Row], *, user_id: str, task_id: int) -> Row:
    cur = await conn.execute(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %s AND user_id = %s", (task_id, user_id))
    return await _found(cur, f"task {task_id}")


async def update_task(conn: AsyncConnection[Row], *, user_id: str, task_id: int, changes: dict[str, Any]) -> Row:
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
    if not changes:
        return await get_task(conn, user_id=user_id, task_id=task_id)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes
    )
    query = sql.SQL("UPDATE tasks SET {assign}, updated_at = now() WHERE id = %s AND user_id = %s"
                    " RETURNING {cols}").format(assign=assignments, cols=sql.SQL(TASK_COLUMNS))
    cur = await conn.execute(query, [*changes.values(), task_id, user_id])
    return await _found(cur, f"task {task_id}")


async def toggle_task(conn: AsyncConnection[Row], *, user_id: str, task_id: int) -> Row:
    cur = await conn.execute(
        f"UPDATE tasks SET completed = NOT completed, updated_at = now() WHERE id = %s AND user_id = %s"
        f" RETURNING {TASK_COLUMNS}",
        (task_id, user_id),
    )
    return await _found(cur, f"task {task_id}")


async def set_completed(conn: AsyncConnection[Row], *, user_id: str, task_id: int, completed: bool = True) -> Row:
    return await update_task(conn, user_id=user_id, task_id=task_id, changes={"completed": completed})


async def delete_task(conn: AsyncConnection[Row], *, user_id: str, task_id: int) -> Row:
    cur = await conn.execute(
        f"DELETE FROM tasks WHERE id = %s AND user_id = %s RETURNING {TASK_COLUMNS}", (task_id, user_id)
    )
    return await _found(cur, f"task {task_id}")


# --- conversations -------------------------------------------------------------------------------


async def get_or_create_conversation(conn: AsyncConnection[Row], *, user_id: str, conversation_id: int | None) -> Row:
    if conversation_id is None:
        cur = await conn.execute(
            "INSERT INTO conversations (user_id) VALUES (%s) RETURNING id, user_id, created_at, updated_at",
            (user_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        return row
    return await get_conversation(conn, user_id=user_id, conversation_id=conversation_id)


async def get_conversation(conn: AsyncConnection[Row], *, user_id: str, conversation_id: int) -> Row:
    cur = await conn.execute(
        "SELECT id, user_id, created_at, updated_at FROM conversations WHERE id = %s AND user_id = %s",
        (conversation_id, user_id),
    )
    return await _found(cur, f"conversation {conversation_id}")


async def list_conversations(
    conn: AsyncConnection[Row], *, user_id: str, limit: int = 50, offset: int = 0,
) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, user_id, created_at, updated_at FROM conversations WHERE user_id = %s"
        " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
        (user_id, limit, offset),
    )
    return await cur.fetchall()


async def add_message(
    conn: AsyncConnection[Row],
    *,
    user_id: str,
    conversation_id: int,
    role: str,
    content: str,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Row:
    cur = await conn.execute(
        "INSERT INTO messages (conversation_id, user_id, role, content, tool_calls) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id, conversation_id, role, content, tool_calls, created_at",
        (conversation_id, user_id, role, content, Jsonb(tool_calls or [])),
    )
    await conn.execute(
        "UPDATE conversations SET updated_at = now() WHERE id = %s AND user_id = %s", (conversation_id, user_id)
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def list_messages(conn: AsyncConnection[Row], *, user_id: str, conversation_id: int) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, conversation_id, role, content, tool_calls, created_at FROM messages"
        " WHERE conversation_id = %s AND user_id = %s ORDER BY id",
        (conversation_id, user_id),
    )
    return await cur.fetchall()
