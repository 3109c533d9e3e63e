"""The MCP server through the official SDK's client, and the folder-name clash resolved on purpose."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx2
import requests
from support import Api

import agents
import mcp
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

BACKEND = Path(__file__).resolve().parents[2] / "backend"
U, OTHER = "usr_mcp", "usr_mcp_other"


def test_contract_folders_are_ours_and_the_sdk_still_imports():
    assert Path(mcp.__file__).parent == BACKEND / "mcp"
    assert Path(agents.__file__).parent == BACKEND / "agents"  # not the OpenAI Agents SDK
    ours = {p.name for p in (BACKEND / "mcp").iterdir()} - {"__init__.py", "__pycache__"}
    sdk = {p.name for p in Path(mcp.SDK_DIR).iterdir()}
    assert not ours & sdk, f"modules shadowing the SDK: {ours & sdk}"
    assert mcp.Client is Client and mcp.ClientSession is not None


async def _session(base: str, user: str, action):
    token = Api.token(user)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        async with Client(streamable_http_client(f"{base}/mcp/", http_client=http)) as client:
            return await action(client)


def _payload(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def test_official_client_lists_and_calls_tools(api):
    async def scenario(client):
        tools = await client.list_tools()
        names = {t.name for t in tools.tools}
        added = _payload(await client.call_tool("add_task", {"title": "from mcp", "tags": ["mcp"]}))
        listed = _payload(await client.call_tool("list_tasks", {}))
        return names, added, listed

    names, added, listed = asyncio.run(_session(api.base, U, scenario))
    assert names == {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
    assert added["task"]["user_id"] == U and added["task"]["tags"] == ["mcp"]
    assert [t["title"] for t in listed["tasks"]] == ["from mcp"]
    via_api = api.call("GET", f"/api/{U}/tasks", user=U).json()
    assert [t["id"] for t in via_api] == [added["task"]["id"]]


def test_mcp_acts_only_for_the_token_user(api):
    victim = api.call("POST", f"/api/{OTHER}/tasks", user=OTHER, json={"title": "not yours"}).json()

    async def scenario(client):
        listed = _payload(await client.call_tool("list_tasks", {}))
        done = _payload(await client.call_tool("complete_task", {"task_id": victim["id"]}))
        return listed, done

    listed, done = asyncio.run(_session(api.base, U, scenario))
    assert listed == {"tasks": []}
    assert done == {"error": f"task {victim['id']} not found"}
    assert api.call("GET", f"/api/{OTHER}/tasks/{victim['id']}", user=OTHER).json()["completed"] is False


def test_mcp_requires_a_token(api):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    r = requests.post(f"{api.base}/mcp/", json=body, timeout=5,
                      headers={"Accept": "application/json, text/event-stream"})
    assert r.status_code == 401
    r = requests.post(f"{api.base}/mcp/", json=body, timeout=5, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert os.environ.get("OPENAI_BASE_URL")  # the session fixture pointed the SDK at the local server
