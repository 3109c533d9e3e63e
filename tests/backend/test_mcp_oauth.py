"""An MCP client that starts without a token, end to end with the real parts: the MCP Python SDK's OAuth
client against the backend's /mcp/, and a real Better Auth server (tests/betterauth: better-auth and
@better-auth/mcp 1.7.5, pinned) as the authorization server. Discovery through our protected-resource
metadata and then Better Auth's, dynamic client registration, the authorization code with PKCE (the
sign-in and consent steps done with a Better Auth session, no browser), then the tools with the token."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2
import jwt
import pytest
import requests
from support import make_settings, serve

from imagepipe.services import betterauth
from imagepipe.services.postgres import TempPostgres, free_port
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:1/callback"  # never fetched: the code is read from the consent's answer
USER = {"email": "ada@example.test", "password": "correct-horse-battery-staple", "name": "Ada"}


@dataclass
class Stack:
    issuer: str  # Better Auth's base URL, which its jwt plugin's issuer is set to
    app: str
    resource: str
    browser: requests.Session  # the user's Better Auth session (its cookie)
    user_id: str


@pytest.fixture(scope="module")
def stack(postgres, tmp_path_factory) -> Iterator[Stack]:
    app_port, auth_port = free_port(), free_port()
    issuer, resource = f"http://127.0.0.1:{auth_port}", f"http://127.0.0.1:{app_port}/mcp"
    auth_db = TempPostgres(database="auth").start()
    work = tmp_path_factory.mktemp("betterauth")
    shutil.copy2(betterauth.SOURCE / "server.mjs", work / "server.mjs")
    (work / "node_modules").symlink_to(betterauth.ensure() / "node_modules")
    env = {**os.environ, "BASE_URL": issuer, "MCP_RESOURCE": resource, "DATABASE_URL": auth_db.dsn(),
           "AUTH_SECRET": "better-auth-test-secret-" + "y" * 24, "PORT": str(auth_port)}
    node = subprocess.Popen([betterauth.node(), str(work / "server.mjs")], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    app = None
    try:
        _wait_for_ready(node)
        app = serve(make_settings(postgres.dsn(), MCP_RESOURCE_URL=resource, MCP_AUTHORIZATION_SERVER=issuer,
                                  BETTER_AUTH_JWKS_URL=f"{issuer}/api/auth/jwks"), port=app_port)
        browser = requests.Session()
        browser.headers["Origin"] = issuer  # Better Auth's CSRF check on cookie-authenticated POSTs
        signed_up = browser.post(f"{issuer}/api/auth/sign-up/email", json=USER, timeout=10)
        assert signed_up.status_code == 200, signed_up.text
        yield Stack(issuer, app.base, resource, browser, signed_up.json()["user"]["id"])
    finally:
        if app is not None:
            app.stop()
        node.terminate()
        node.wait(timeout=10)
        auth_db.stop()


def _wait_for_ready(node: subprocess.Popen[str], timeout: float = 60) -> None:
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        for line in node.stdout or []:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"the Better Auth server exited: {''.join(seen)}")
        seen.append(line)
        if line.startswith("ready "):
            return


@dataclass
class Memory:
    """The client's token storage, in memory."""

    tokens: OAuthToken | None = None
    client: OAuthClientInformationFull | None = None
    urls: list[str] = field(default_factory=list)  # every request the client sent, in order

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def _oauth_client(stack: Stack, memory: Memory) -> OAuthClientProvider:
    answer: dict[str, str] = {}

    async def sign_in_and_consent(authorization_url: str) -> None:
        """What the user does in a browser: open the authorization URL signed in (Better Auth sends the
        consent page, since the SDK asks for offline_access), then accept there."""
        opened = stack.browser.get(authorization_url, allow_redirects=False, timeout=10)
        assert opened.status_code == 302, opened.text
        consent_page = urllib.parse.urlsplit(opened.headers["location"])
        assert consent_page.path == "/consent", opened.headers["location"]
        accepted = stack.browser.post(f"{stack.issuer}/api/auth/oauth2/consent", timeout=10,
                                      json={"accept": True, "oauth_query": consent_page.query})
        assert accepted.status_code == 200, accepted.text
        redirect = urllib.parse.urlsplit(accepted.json()["url"])
        answer.update(urllib.parse.parse_qsl(redirect.query))

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    metadata = OAuthClientMetadata(client_name="imagepipe test client", redirect_uris=[REDIRECT],
                                   grant_types=["authorization_code", "refresh_token"], response_types=["code"],
                                   token_endpoint_auth_method="none")
    return OAuthClientProvider(f"{stack.app}/mcp/", metadata, memory, redirect_handler=sign_in_and_consent,
                               callback_handler=callback)


def test_an_mcp_client_without_a_token_signs_in_through_better_auth_and_uses_the_tools(stack):
    memory = Memory()

    async def record(request: httpx2.Request) -> None:
        memory.urls.append(f"{request.method} {request.url.copy_with(query=None)}")

    async def scenario() -> tuple[set[str], dict, dict]:
        async with httpx2.AsyncClient(auth=_oauth_client(stack, memory), timeout=30,
                                      event_hooks={"request": [record]}) as http:
            async with Client(streamable_http_client(f"{stack.app}/mcp/", http_client=http)) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                added = (await client.call_tool("add_task", {"title": "from an OAuth client"})).structured_content
                listed = (await client.call_tool("list_tasks", {})).structured_content
        return names, added, listed

    names, added, listed = asyncio.run(scenario())
    assert names == {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
    assert added["task"]["user_id"] == stack.user_id
    assert [t["title"] for t in listed["tasks"]] == ["from an OAuth client"]
    # discovery: our 401, our metadata, then Better Auth's metadata, registration and the token endpoint
    steps = [f"POST {stack.app}/mcp/", f"GET {stack.app}/.well-known/oauth-protected-resource/mcp",
             f"GET {stack.issuer}/.well-known/oauth-authorization-server",
             f"POST {stack.issuer}/api/auth/oauth2/register", f"POST {stack.issuer}/api/auth/oauth2/token"]
    positions = [memory.urls.index(step) for step in steps]
    assert positions == sorted(positions), memory.urls
    assert memory.client is not None and memory.client.client_id
    claims = jwt.decode(memory.tokens.access_token, options={"verify_signature": False})
    assert jwt.get_unverified_header(memory.tokens.access_token)["typ"] == "at+jwt"
    assert claims["iss"] == stack.issuer and stack.resource in claims["aud"] and claims["sub"] == stack.user_id


def test_better_auths_session_jwt_is_refused_at_mcp_and_accepted_by_the_api(stack):
    """The front end's session JWT (/api/auth/token) is issued for Better Auth's origin, not for the MCP
    server: /mcp/ refuses it with invalid_token and the metadata's URL; the tasks API keeps accepting it."""
    session_jwt = stack.browser.get(f"{stack.issuer}/api/auth/token", timeout=10).json()["token"]
    assert jwt.decode(session_jwt, options={"verify_signature": False})["aud"] == stack.issuer
    refused = requests.post(f"{stack.app}/mcp/", timeout=10, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                            headers={"Authorization": f"Bearer {session_jwt}",
                                     "Accept": "application/json, text/event-stream"})
    assert refused.status_code == 401
    assert refused.json() == {"detail": f"the token is not issued for {stack.resource} (aud: {stack.issuer})"}
    metadata = f"{stack.app}/.well-known/oauth-protected-resource/mcp"
    assert refused.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="the token is not issued for {stack.resource} '
        f"(aud: {stack.issuer})\", resource_metadata=\"{metadata}\"")
    tasks = requests.get(f"{stack.app}/api/{stack.user_id}/tasks", timeout=10,
                         headers={"Authorization": f"Bearer {session_jwt}"})
    assert tasks.status_code == 200, tasks.text


def test_our_metadata_names_the_resource_better_auth_binds_tokens_to(stack):
    ours = requests.get(f"{stack.app}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
    theirs = requests.get(f"{stack.issuer}/.well-known/oauth-authorization-server", timeout=10).json()
    assert ours["resource"] == stack.resource
    assert ours["authorization_servers"] == [theirs["issuer"]] == [stack.issuer]
    assert theirs["registration_endpoint"] == f"{stack.issuer}/api/auth/oauth2/register"
