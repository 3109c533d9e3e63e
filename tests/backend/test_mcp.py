"""The MCP server through the official SDK's client, and the folder-name clash resolved on purpose."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2
import requests
from support import ISSUER, MCP_RESOURCE, Api

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


async def _session(base: str, user: str, action, *, aud: str | list[str] = MCP_RESOURCE):
    token = Api.token(user, aud=aud)
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


METADATA = "https://todo.example.test/.well-known/oauth-protected-resource/mcp"
BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
ACCEPT = "application/json, text/event-stream"


def test_mcp_without_a_token_points_to_its_metadata(api):
    r = requests.post(f"{api.base}/mcp/", json=BODY, timeout=5, headers={"Accept": ACCEPT})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{METADATA}"'


def test_a_refused_token_is_invalid_token_with_the_metadata(api):
    r = requests.post(f"{api.base}/mcp/", json=BODY, timeout=5, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="malformed bearer token: Not enough segments", '
        f'resource_metadata="{METADATA}"')


def test_a_token_for_another_resource_gets_401(api):
    for aud in ("https://auth.example.test", ["https://other.example.test/mcp"], None):
        token = Api.token(U, **({"aud": aud} if aud else {}))
        r = requests.post(f"{api.base}/mcp/", json=BODY, timeout=5,
                          headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"})
        assert r.status_code == 401, aud
        issued = ", ".join([aud] if isinstance(aud, str) else aud or ["no audience"])
        assert r.json() == {"detail": f"the token is not issued for {MCP_RESOURCE} (aud: {issued})"}
        assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", ')


def test_a_token_whose_audience_list_holds_the_resource_is_accepted(api):
    """Better Auth's MCP access tokens carry aud as a list that holds the resource."""
    async def scenario(client):
        return {t.name for t in (await client.list_tools()).tools}

    names = asyncio.run(_session(api.base, U, scenario, aud=["https://auth.example.test", MCP_RESOURCE]))
    assert "list_tasks" in names


def test_the_api_still_accepts_the_front_ends_tokens(api):
    """Session JWTs carry aud = the Better Auth origin; /api checks no audience unless JWT_AUDIENCE is set."""
    r = api.call("GET", f"/api/{U}/tasks", token=Api.token(U, aud="https://auth.example.test"))
    assert r.status_code == 200


def test_protected_resource_metadata_at_the_root_and_the_path_suffixed_form(api):
    want = {"resource": MCP_RESOURCE, "authorization_servers": [ISSUER], "bearer_methods_supported": ["header"],
            "resource_name": "Todo MCP server"}
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = requests.get(api.base + path, timeout=5)
        assert r.status_code == 200, path
        assert r.json() == want
        assert r.headers["Access-Control-Allow-Origin"] == "*"


def _shape(schema: dict) -> dict:
    """A JSON schema without the model's own name, and without additionalProperties: the SDK builds its
    argument model from the tool function and drops unknown keys, where the OpenAI path refuses them."""
    return {k: v for k, v in schema.items() if k not in ("title", "additionalProperties")}


def test_mcp_and_openai_tool_schemas_come_from_one_definition():
    from agents import tools
    from mcp.todo_server import build_server

    listed = asyncio.run(build_server().list_tools())
    mcp_schemas = {t.name: _shape(t.input_schema) for t in listed}
    openai_schemas = {s["function"]["name"]: _shape(s["function"]["parameters"]) for s in tools.openai_tool_specs()}
    assert mcp_schemas == openai_schemas
    assert set(mcp_schemas) == set(tools.TOOLS)
    assert mcp_schemas["add_task"]["properties"]["priority"]["$ref"].endswith("/Priority"), "priority is the enum"
    assert mcp_schemas["complete_task"]["properties"]["task_id"]["maximum"] == 2**63 - 1
