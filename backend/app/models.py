"""Request and response shapes of the API."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
# Ids are PostgreSQL BIGSERIALs: anything outside 1..2**63-1 cannot exist (and would be a database error).
MAX_ID = 2**63 - 1
# PostgreSQL text cannot hold NUL bytes: refuse them as a validation error (422), not a database error.
NO_NUL = r"^[^\x00]*$"
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=NO_NUL)]
Tags = Annotated[list[Tag], Field(max_length=20)]


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class TaskFields(BaseModel):
    """A new task's fields, defined once: the API's TaskCreate and the agent's add_task tool extend it."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    priority: Priority = Priority.medium
    tags: Tags = []
    due_date: UtcDatetime | None = Field(default=None, description="ISO-8601 date or date-time")


class TaskCreate(TaskFields):
    completed: bool = False


class TaskUpdate(BaseModel):
    """Every field optional (partial update); only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    # Typed non-nullable with a None default: omitting is fine, sending null is a 422.
    title: Title = None  # type: ignore[assignment]
    description: Description | None = None
    priority: Priority = None  # type: ignore[assignment]
    tags: Tags = None  # type: ignore[assignment]
    due_date: UtcDatetime | None = None
    completed: bool = None  # type: ignore[assignment]


class Task(BaseModel):
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    priority: Priority
    tags: list[str]
    due_date: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class TaskStatus(StrEnum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(StrEnum):
    created = "created"
    updated = "updated"
    due = "due"
    priority = "priority"
    title = "title"  # type: ignore[assignment]  # the API's value; the member shadows str.title, never called


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    message: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_NUL)]


class ToolCall(BaseModel):
    tool: str
    arguments: dict[str, Any]
    result: Any


class ChatResponse(BaseModel):
    conversation_id: int
    response: str
    tool_calls: list[ToolCall]


class Conversation(BaseModel):
    id: int
    user_id: str
    created_at: UtcDatetime
    updated_at: UtcDatetime


class Message(BaseModel):
    id: int
    conversation_id: int
    role: str
    content: str
    tool_calls: list[ToolCall]
    created_at: UtcDatetime


class ConversationDetail(Conversation):
    messages: list[Message]


class ErrorDetail(BaseModel):
    detail: str


# Declared on every /api route so the OpenAPI document tells clients (and schemathesis) the truth.
API_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorDetail, "description": "missing, invalid or expired bearer token"},
    403: {"model": ErrorDetail, "description": "the token's user is not the user in the path"},
    404: {"model": ErrorDetail, "description": "no such task or conversation for this user"},
    413: {"model": ErrorDetail, "description": "request body too large"},
    503: {"model": ErrorDetail, "description": "database unavailable; retry later"},
}
