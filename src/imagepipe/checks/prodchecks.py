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

from imagepipe import commands, runner
from imagepipe.checks.types import Check, CheckRun, ImageCheck, ServiceCheck, ServiceView
from imagepipe.retry import wait_until

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
    return v.sh(commands.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels, volumes=volumes,
                                    entrypoint="", command=["psql", dsn, "-tA", "-F|", *args]), ok=(0, 1, 2, 127))


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
        plain = _psql(v, v.running.dsn_with(sslmode="disable"), "SELECT 1")
        refused = plain.code != 0 and "no encryption" in plain.stderr
        ok &= refused
        parts.append("plain text refused" if refused else "plain text ACCEPTED")
        # A user who supplies the CA gets certificate and host name verification (psql and psycopg).
        dsn = v.running.dsn_with(sslmode="verify-full", sslrootcert=CA_IN_CONTAINER, channel_binding="require")
        probe = ("psql \"$DSN\" -tAc 'SELECT 1' >/dev/null && python -c "
                 "\"import os, psycopg; psycopg.connect(os.environ['DSN']).execute('SELECT 1'); print('verified')\"")
        full = v.sh(commands.podman_run(v.profile, v.image, remove=True, labels=v.opt.labels, env={"DSN": dsn},
                                        volumes=[f"{v.running.tls.ca}:{CA_IN_CONTAINER}:ro"], entrypoint="",
                                        command=["sh", "-c", probe]), ok=(0, 1, 2, 127))
        verified = full.code == 0 and "verified" in full.stdout
        ok &= verified
        parts.append("verify-full with the run's CA: ok" if verified else _tls_failure(full.stderr + full.stdout))
        value.update(plain_refused=refused, verify_full=verified)
    else:
        parts.append("verify-full not tried (--database-url: the server's CA is not known here)")
    return Check("database-tls", ok, value, "all sessions TLS, plain refused, verify-full ok", "; ".join(parts))


def jwks_warm_up(v: ServiceView) -> tuple[int, float]:
    """The first EdDSA request, early in verify: the backend fetches the JWKS now, so the rotation step at
    the end waits out less of its refetch cooldown. API calls answer 503 until the database pool is up."""
    jwks = v.running.jwks
    token = jwks.sign("k1", v.jwks_user)
    def answered() -> int | None:  # 503 while the database pool is still coming up
        status = v.get(f"/api/{v.jwks_user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
        return None if status == 503 else status

    return wait_until(answered, timeout=30) or 503, time.monotonic()


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
                       timeout=30)
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
    user = "usr_verify_mcp"
    try:
        names, listed = asyncio.run(_mcp_session(f"{v.base}/mcp/", v.token(user)))
    except Exception as e:  # noqa: BLE001 - the SDK raises many types; all mean the MCP path is broken
        return Check("mcp", False, None, sorted(MCP_TOOLS),
                     f"MCP client failed: {type(e).__name__}: {e}"[:300] + last_error(v))
    anonymous = requests.post(f"{v.base}/mcp/", timeout=5, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                              headers={"Accept": "application/json, text/event-stream"}).status_code
    ok = names == MCP_TOOLS and isinstance(listed, dict) and "tasks" in listed and anonymous == 401
    return Check("mcp", ok, {"tools": sorted(names), "list_tasks": "ok" if "tasks" in listed else listed,
                             "without_token": anonymous}, {"tools": sorted(MCP_TOOLS), "without_token": 401},
                 f"official MCP client: {len(names)} tools, list_tasks -> "
                 f"{'ok' if 'tasks' in listed else listed}; without a token -> {anonymous}")


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
