"""verify's production-path checks: the paths the image takes in production, exercised inside the built
image against real or stand-in services on this machine (nothing leaves it).

- database-tls: a Neon-like PostgreSQL (TLS only, SCRAM, `sslmode=require&channel_binding=require`);
- auth-jwks: Better Auth JWT-plugin tokens (EdDSA) verified through a JWKS, with key rotation;
- chat: one chat turn through the real `openai` SDK in the image, the model calling `add_task`;
- mcp: the official MCP client against the container's /mcp/.

Each takes the running CheckRun (`v`): its container, base URL, secrets and stand-ins.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import requests

from imagepipe.checks.types import ISSUER, Check, CheckRun, ImageCheck, ServiceCheck, ServiceView
from imagepipe.exec import cmdline, runner
from imagepipe.exec.retry import wait_until

# verify sets the service's JWKS refetch cooldown (BETTER_AUTH_JWKS_COOLDOWN_SECONDS, 5 s by default) to this,
# so that the rotation step fits in verify's time budget; the code path is the production one.
JWKS_COOLDOWN_S = 1.0
MCP_TOOLS = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
CA_IN_CONTAINER = "/run/verify-db-ca.crt"

# Every session of the service's database user, other than psql's own, and whether it is encrypted.
SESSIONS_SQL = ("SELECT count(*) FILTER (WHERE s.ssl), count(*), coalesce(max(s.version), '-') FROM pg_stat_ssl s "
                "JOIN pg_stat_activity a USING (pid) WHERE a.usename = current_user AND a.pid <> pg_backend_pid()")
OWN_SQL = "SELECT ssl, coalesce(version, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _tls_failure(text: str) -> str:
    """Name what broke, e.g. a library the image lost."""
    missing = re.search(r"error while loading shared libraries: ([^:\s]+)", text)
    if missing:
        return f"TLS handshake failed: {missing.group(1)} missing in the image"
    return f"TLS connection failed: {runner.first_error_line(text)[:200]}"


def _psql(v: ImageCheck, dsn: str, *sql: str, ca: Path | None = None) -> runner.Result:
    """psql of the image in a fresh container (so it answers even when the service container is gone)."""
    args = [a for q in sql for a in ("-c", q)]
    volumes = [f"{ca}:{CA_IN_CONTAINER}:ro"] if ca is not None else []
    return v.sh(cmdline.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels, volumes=volumes,
                                    entrypoint="", command=["psql", dsn, "-tA", "-F|", *args]), ok=(0, 1, 2, 127))


def plain_text_refused(v: CheckRun) -> tuple[bool, str]:
    """Whether the server refuses a plain-text session, as the server says it (`no encryption`): a session
    that opens is ACCEPTED; a psql that fails otherwise (on a loaded machine its container once came back
    with exit 2 and nothing said) is asked once more, then named as what it is, not as an acceptance."""
    for _ in range(2):
        plain = _psql(v, v.running.dsn_with(sslmode="disable"), "SELECT 1")
        if plain.code == 0:
            return False, "plain text ACCEPTED"
        if "no encryption" in plain.stderr + plain.stdout:
            return True, "plain text refused"
    said = runner.first_error_line(plain.stderr + plain.stdout) or "no output"
    return False, f"the plain-text probe failed without the server's answer (exit {plain.code}: {said})"


def check_database_tls(v: CheckRun) -> Check:
    parts, ok = [], True
    # The service's own pool (every one of its sessions encrypted, as the server sees it) and psql's session.
    psql = _psql(v, v.running.dsn, SESSIONS_SQL, OWN_SQL)
    rows = [r.split("|") for r in psql.stdout.split()]
    if psql.code != 0 or len(rows) < 2:
        return Check("database-tls", False, None, "all sessions TLS", _tls_failure(psql.stderr + psql.stdout))
    (encrypted, total, version), (own_ssl, own_version) = rows[0], rows[1]
    service_ok = int(total) > 0 and encrypted == total
    ok &= service_ok and own_ssl == "t"
    parts.append(f"service sessions encrypted {encrypted}/{total} ({version}); psql in image: "
                 f"{'TLS ' + own_version if own_ssl == 't' else 'NOT encrypted'}")
    value: dict[str, Any] = {"service_sessions_tls": f"{encrypted}/{total}", "protocol": version,
                             "psql_tls": own_ssl == "t"}
    if v.running.tls is not None:
        # The server takes no plain-text TCP at all, as Neon.
        refused, said = plain_text_refused(v)
        ok &= refused
        parts.append(said)
        # A user who supplies the CA gets certificate and host name verification (psql and psycopg).
        dsn = v.running.dsn_with(sslmode="verify-full", sslrootcert=CA_IN_CONTAINER, channel_binding="require")
        probe = ("psql \"$DSN\" -tAc 'SELECT 1' >/dev/null && python -c "
                 "\"import os, psycopg; psycopg.connect(os.environ['DSN']).execute('SELECT 1'); print('verified')\"")
        full = v.sh(cmdline.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels, env={"DSN": dsn},
                                        volumes=[f"{v.running.tls.ca}:{CA_IN_CONTAINER}:ro"], entrypoint="",
                                        command=["sh", "-c", probe]), ok=(0, 1, 2, 127))
        verified = full.code == 0 and "verified" in full.stdout
        ok &= verified
        parts.append("verify-full with the run's CA: ok" if verified else _tls_failure(full.stderr + full.stdout))
        value.update(plain_refused=refused, verify_full=verified)
    else:
        parts.append("verify-full not tried (--database-url: the server's CA is not known here)")
    return Check("database-tls", ok, value, "all sessions TLS, plain refused, verify-full ok", "; ".join(parts))


def jwks_warm_up(v: ServiceCheck) -> tuple[int, float]:
    """The first EdDSA request, early in verify: the backend fetches the JWKS now, so the rotation step at
    the end waits out less of its refetch cooldown. API calls answer 503 until the database pool is up."""
    jwks = v.running.jwks
    token = jwks.sign("k1", v.jwks_user)
    def answered() -> int | None:  # 503 while the database pool is still coming up
        status = v.get(f"/api/{v.jwks_user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
        return None if status == 503 else status

    return wait_until(answered, timeout=30 * v.slowdown) or 503, time.monotonic()


def check_auth_jwks(v: ServiceView) -> Check:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    jwks = v.running.jwks
    def status(token: str) -> int:
        return v.get(f"/api/{v.jwks_user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code

    first, fetched_at = v.jwks_first
    forged = status(jwks.sign("k1", v.jwks_user, key=Ed25519PrivateKey.generate()))
    jwks.add("k2")  # rotation: Better Auth publishes a new key; tokens name it by kid
    time.sleep(max(0.0, fetched_at + JWKS_COOLDOWN_S + 0.2 - time.monotonic()))
    rotated = status(jwks.sign("k2", v.jwks_user))
    ok = first == 200 and forged == 401 and rotated == 200
    return Check("auth-jwks", ok, {"eddsa": first, "other_key": forged, "rotated_kid": rotated},
                 {"eddsa": 200, "other_key": 401, "rotated_kid": 200},
                 f"EdDSA token via JWKS -> {first}; signed by another key -> {forged}; new kid after rotation, "
                 f"no restart -> {rotated} (JWKS fetched {jwks.fetches} times)")


def check_chat(v: ServiceCheck) -> Check:
    user, title = "usr_verify_chat", "verify: buy milk"
    headers = {"Authorization": f"Bearer {v.token(user)}"}
    openai = v.running.openai
    openai.reset()
    openai.tool_call("add_task", {"title": title, "priority": "high"})
    openai.reply("Added it.")
    turn = v.http.post(f"{v.base}/api/{user}/chat", json={"message": "remind me to buy milk"}, headers=headers,
                       timeout=30 * v.slowdown)  # under emulation the turn runs the image's Python in qemu
    if turn.status_code != 200:
        return Check("chat", False, turn.status_code, 200,
                     f"POST /chat -> {turn.status_code}: {turn.text[:200]}{last_error(v)}")
    body = turn.json()
    calls = body.get("tool_calls") or []
    tool_status = calls[0].get("result", {}).get("error") if calls else "no tool call"
    tasks = v.get(f"/api/{user}/tasks", headers=headers).json()
    stored = [t["title"] for t in tasks if t.get("title") == title]
    history = v.get(f"/api/{user}/conversations/{body['conversation_id']}", headers=headers)
    roles = [m["role"] for m in history.json().get("messages", [])] if history.status_code == 200 else []
    sdk = openai.requests[0] if openai.requests else {}
    via_sdk = sdk.get("path") == "/v1/chat/completions" and sdk.get("auth") == f"Bearer {v.secrets['OPENAI_API_KEY']}"
    ok = bool(stored) and roles == ["user", "assistant"] and via_sdk and not (calls and tool_status)
    return Check("chat", ok, {"tool": calls[0]["tool"] if calls else None, "task_stored": bool(stored),
                              "history": roles, "openai_sdk": via_sdk}, "add_task stored, history kept",
                 f"model called {calls[0]['tool'] if calls else 'nothing'}"
                 f"{' (error: ' + str(tool_status) + ')' if calls and tool_status else ''}; task in the database: "
                 f"{'yes' if stored else 'no'}; GET /conversations/{{id}} -> {history.status_code} {roles}; "
                 f"request through the image's openai SDK: {'yes' if via_sdk else 'no'}")


def last_error(v: ServiceView) -> str:
    """The service's last error line (the chat agent and the MCP server load on first use, so an import that
    fails shows there, not at start-up)."""
    lines = [ln.strip() for ln in v.logs().splitlines() if re.search(r"\w+(Error|Exception)\b", ln)]
    return f"; service log: {lines[-1][:200]}" if lines else ""


def check_mcp(v: ServiceView) -> Check:
    """The official MCP client with a token issued for the MCP server, and what a client without one needs
    to find the authorization server: the 401's resource_metadata, the metadata it names (RFC 9728), and
    a 401 for a token issued for another resource."""
    user, resource = "usr_verify_mcp", f"{v.base}/mcp"
    # First, without a token: that request also loads the MCP server (app.core.lazy), which takes seconds on
    # a slow or emulated CPU, so it gets the time the client's own requests (10 s each) do not.
    anonymous, challenge = _mcp_status(v, None, timeout=60)
    elsewhere, _ = _mcp_status(v, v.token(user, aud="http://other.verify.invalid/mcp"), timeout=10)
    metadata = _metadata(v, challenge)
    try:
        names, listed = asyncio.run(_mcp_session(f"{v.base}/mcp/", v.token(user, aud=resource)))
    except Exception as e:  # noqa: BLE001 - the SDK raises many types; all mean the MCP path is broken
        leaf = innermost(e)
        return Check("mcp", False, None, sorted(MCP_TOOLS),
                     f"MCP client failed: {type(leaf).__name__}: {leaf}"[:300] + last_error(v))
    want_metadata = {"resource": resource, "authorization_servers": [ISSUER]}
    discovered = {k: metadata.get(k) for k in want_metadata} if isinstance(metadata, dict) else metadata
    ok = (names == MCP_TOOLS and isinstance(listed, dict) and "tasks" in listed and anonymous == 401
          and elsewhere == 401 and discovered == want_metadata)
    return Check("mcp", ok, {"tools": sorted(names), "list_tasks": "ok" if "tasks" in listed else listed,
                             "without_token": anonymous, "other_audience": elsewhere, "metadata": discovered},
                 {"tools": sorted(MCP_TOOLS), "without_token": 401, "other_audience": 401,
                  "metadata": want_metadata},
                 f"official MCP client: {len(names)} tools, list_tasks -> "
                 f"{'ok' if 'tasks' in listed else listed}; without a token -> {anonymous}, for another resource "
                 f"-> {elsewhere}; protected-resource metadata: "
                 f"{'as configured' if discovered == want_metadata else discovered}")


def _mcp_status(v: ServiceView, token: str | None, *, timeout: float) -> tuple[int | None, str]:
    """A tools/list with this token (or none): the status and the WWW-Authenticate header."""
    headers = {"Accept": "application/json, text/event-stream", **({"Authorization": f"Bearer {token}"}
                                                                      if token else {})}
    try:
        r = requests.post(f"{v.base}/mcp/", timeout=timeout, headers=headers,
                          json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    except requests.RequestException:
        return None, ""  # the client below says why
    return r.status_code, r.headers.get("www-authenticate", "")


def _metadata(v: ServiceView, challenge: str) -> dict[str, Any] | str:
    """The metadata document the 401 points to, read from the service (the URL names the configured
    resource's host, which is the published port here)."""
    found = re.search(r'resource_metadata="([^"]+)"', challenge)
    if not found:
        return f"no resource_metadata in the 401's WWW-Authenticate ({challenge or 'absent'})"
    try:
        r = requests.get(found.group(1), timeout=10)
        return r.json() if r.status_code == 200 else f"{found.group(1)} -> {r.status_code}"
    except (requests.RequestException, ValueError) as e:
        return f"{found.group(1)}: {e}"


def innermost(e: BaseException) -> BaseException:
    """The first leaf of an exception group (the SDK's task groups wrap the cause: "unhandled errors in a
    TaskGroup (1 sub-exception)" names nothing)."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


async def _mcp_session(url: str, token: str) -> tuple[set[str], Any]:
    import httpx2

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import TextContent

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            result = await client.call_tool("list_tasks", {})
    payload = result.structured_content
    if payload is None:
        first = result.content[0] if result.content else None
        payload = json.loads(first.text) if isinstance(first, TextContent) else None
    return {t.name for t in tools.tools}, payload
