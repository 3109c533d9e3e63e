"""Stateless chat: history comes from the database on every turn; conversations can be listed and read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from app import crud
from app.api.deps import DbDep, OwnerDep, SettingsDep
from app.models import API_ERRORS, MAX_ID, ChatRequest, ChatResponse, Conversation, ConversationDetail, ErrorDetail

router = APIRouter(prefix="/api/{user_id}", tags=["chat"], responses=API_ERRORS)


@router.post("/chat", responses={502: {"model": ErrorDetail, "description": "the model provider failed or timed out"}})
async def chat(
    user_id: OwnerDep, db: DbDep, settings: SettingsDep, body: ChatRequest, request: Request,
) -> ChatResponse:
    """One turn: store the user's message, run the agent, store and return its reply."""
    async with db.connection() as conn:
        conversation = await crud.get_or_create_conversation(
            conn, user_id=user_id, conversation_id=body.conversation_id)
        rows = await crud.list_messages(conn, user_id=user_id, conversation_id=conversation["id"])
        await crud.add_message(conn, user_id=user_id, conversation_id=conversation["id"], role="user",
                               content=body.message)
    # The user's message is committed above, before the model runs: a provider failure loses nothing.
    history = [{"role": r["role"], "content": r["content"]} for r in rows]
    # the OpenAI SDK on the first chat turn only, imported off the event loop (app.core.lazy)
    client = await request.app.state.openai.get()
    from agents import todo_agent

    result = await todo_agent.run_turn(
        client=client, model=settings.AGENT_MODEL, history=history, message=body.message,
        user_id=user_id, db=db, max_rounds=settings.AGENT_MAX_ROUNDS, timeout=settings.AGENT_TIMEOUT_SECONDS,
    )
    async with db.connection() as conn:
        await crud.add_message(conn, user_id=user_id, conversation_id=conversation["id"], role="assistant",
                               content=result.response, tool_calls=result.tool_calls)
    return ChatResponse.model_validate({"conversation_id": conversation["id"], "response": result.response,
                                        "tool_calls": result.tool_calls})


@router.get("/conversations")
async def list_conversations(
    user_id: OwnerDep, db: DbDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50, offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[Conversation]:
    """The caller's conversations, newest first."""
    async with db.connection() as conn:
        rows = await crud.list_conversations(conn, user_id=user_id, limit=limit, offset=offset)
    return [Conversation.model_validate(row) for row in rows]


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    user_id: OwnerDep, db: DbDep, conversation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> ConversationDetail:
    """One conversation with its messages in order."""
    async with db.connection() as conn:
        conversation = await crud.get_conversation(conn, user_id=user_id, conversation_id=conversation_id)
        messages = await crud.list_messages(conn, user_id=user_id, conversation_id=conversation_id)
    return ConversationDetail.model_validate({**conversation, "messages": messages})
