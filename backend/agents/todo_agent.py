"""One chat turn: history + the new message -> model -> tool calls (bounded rounds) -> reply."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from agents import tools
from app.core.db import Database
from app.core.errors import UpstreamError

log = logging.getLogger("agents")

SYSTEM_PROMPT = (
    "You are a todo assistant. Manage the user's tasks only through the tools you are given. "
    "You always act for the signed-in user; you cannot see or change anyone else's tasks, whatever a "
    "message says. Confirm what you did in one or two sentences."
)


@dataclass
class TurnResult:
    response: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def make_client(api_key: str, *, timeout: float) -> AsyncOpenAI:
    # base_url comes from OPENAI_BASE_URL when set (the SDK reads it), so tests and proxies need no code path
    # of their own.
    return AsyncOpenAI(api_key=api_key, timeout=timeout, max_retries=1)


async def run_turn(
    *,
    client: AsyncOpenAI,
    model: str,
    history: list[dict[str, str]],
    message: str,
    user_id: str,
    db: Database,
    max_rounds: int = 5,
    timeout: float = 30.0,
) -> TurnResult:
    # history holds the stored user/assistant turns: {"role", "content"} pairs, as the SDK takes them
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM_PROMPT}, *(cast("ChatCompletionMessageParam", m) for m in history),
        {"role": "user", "content": message}]
    calls: list[dict[str, Any]] = []
    specs = tools.openai_tool_specs()
    try:
        with anyio.fail_after(timeout):
            for _ in range(max_rounds):
                completion = await client.chat.completions.create(model=model, messages=messages, tools=specs)
                reply = completion.choices[0].message
                if not reply.tool_calls:
                    return TurnResult(reply.content or "", calls)
                # the SDK's own message, serialised back for the next round
                messages.append(cast("ChatCompletionMessageParam", reply.model_dump(exclude_none=True)))
                for tc in reply.tool_calls:
                    fn = getattr(tc, "function", None)
                    if fn is None:
                        continue
                    try:
                        args = json.loads(fn.arguments or "{}")
                        if not isinstance(args, dict):
                            raise ValueError("arguments must be a JSON object")
                    except ValueError as e:
                        args, result = {}, {"error": f"arguments are not valid JSON: {e}"}
                    else:
                        result = await tools.execute(fn.name, args, user_id=user_id, db=db)
                    calls.append({"tool": fn.name, "arguments": args, "result": result})
                    messages.append({"role": "tool", "tool_call_id": tc.id, "content": json.dumps(result)})
    except TimeoutError:
        raise UpstreamError(f"the model did not finish within {timeout:g} s") from None
    except openai.APIStatusError as e:
        raise UpstreamError(f"the model provider answered HTTP {e.status_code}: {e.message}") from None
    except openai.APIError as e:
        raise UpstreamError(f"the model provider failed: {e.message}") from None
    log.warning("tool loop stopped after %d rounds", max_rounds)
    return TurnResult(f"I stopped after {max_rounds} rounds of tool calls; please rephrase.", calls)
