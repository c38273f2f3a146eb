"""Mission tokens end to end, with the official Python MCP SDK against `warden serve` (no
`--insecure-identity`): a person grants the mission over HTTP with their own credential, the
agent presents it beside its own token, a sub-agent gets a narrower one, and a revocation on one
replica stops the other within a second (two `warden serve` on one PostgreSQL)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import pytest

import harness as h
from conftest import warden_only

pytestmark = pytest.mark.anyio

ALICE = "alice-e2e-" + secrets.token_hex(8)
PURPOSE = "Help me answer Bob's question in T-1042"
READ = {"channel": "eng-help", "thread_id": "T-1042"}
LOGS = {"source": "auth", "query": "user=bob", "limit": 50}
PG = os.environ.get("WARDEN_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


def post_json(url: str, bearer: str, body: dict) -> tuple[int, dict | str]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=h.OP_TIMEOUT) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def missions_url(srv: h.HttpServer) -> str:
    return srv.url.removesuffix("/mcp") + "/v1/missions"


def grant(srv: h.HttpServer, **extra) -> dict:
    body = {
        "template": "answer-forum-question",
        "agent": "forum-helper",
        "purpose": PURPOSE,
        "expires": "1h",
        **extra,
    }
    status, answer = post_json(missions_url(srv), ALICE, body)
    assert status == 201, f"grant: HTTP {status}: {answer}"
    return answer


def agent_headers(srv: h.HttpServer, config: Path, mission_token: str) -> dict[str, str]:
    token = srv.tokens[h.token_env_of(config, "forum-helper")]
    return {"Authorization": f"Bearer {token}", "X-Warden-Mission-Token": mission_token}


def session(srv: h.HttpServer, config: Path, mission_token: str, label: str):
    return h.http_session(
        srv.url, agent_headers(srv, config, mission_token), label=label, log=srv.log
    )


@pytest.fixture
def acme(tmp_path, gateway):
    warden_only()
    config = h.render_acme_config(tmp_path / "acme")
    return config, tmp_path


@pytest.fixture
def acme_serve(acme):
    config, work = acme
    tokens = h.agent_tokens(config)
    with h.warden_serve(
        config, work, tokens, insecure_identity=False, extra_env={"WARDEN_USER_ALICE": ALICE}
    ) as srv:
        yield config, srv


async def test_the_sev1_incident_under_a_granted_mission(acme_serve):
    config, srv = acme_serve
    granted = grant(srv)
    async with session(srv, config, granted["token"], "forum-helper (granted)") as s:
        names = await s.tool_names()
        assert "forum.read_thread" in names and "forum.post_reply" in names
        assert not any(n.startswith("acl.") for n in names), names
        read = await s.call("forum.read_thread", READ)
        assert read.kind == "allow", read.short()
        logs = await s.call("logs.query_logs", LOGS)
        assert logs.kind == "allow", logs.short()
        lines = "\n".join(logs.text.splitlines()[:3])
        post = await s.call(
            "forum.post_reply",
            {
                "channel": "eng-help",
                "thread_id": "T-1042",
                "as_user": "alice",
                "body": f"Bob, your account got locked after failed logins:\n{lines}",
            },
        )
        assert post.kind in ("ask", "deny"), post.short()
        assert post.kind == "ask", f"the sev1 post is held for a person: {post.short()}"


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "warden-e2e-raw", "version": "0"},
    },
}


def initialize(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """`initialize` posted raw, so the HTTP status is what is checked."""
    req = urllib.request.Request(
        url,
        data=json.dumps(INITIALIZE).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=h.OP_TIMEOUT) as r:
            return r.status, r.read(65536).decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read(65536).decode(errors="replace")


async def test_identity_headers_and_other_agents_missions_are_refused(acme_serve):
    config, srv = acme_serve
    granted = grant(srv)
    ops_token = srv.tokens[h.token_env_of(config, "ops-bot")]
    status, body = initialize(
        srv.url, {"Authorization": f"Bearer {ops_token}", "X-Warden-Mission-Token": granted["token"]}
    )
    assert status == 403, f"ops-bot with forum-helper's mission: {status} {body}"
    assert "is for agent `forum-helper`, not `ops-bot`" in body, body
    # Identity headers: the old way to name anyone.
    fh = srv.tokens[h.token_env_of(config, "forum-helper")]
    status, body = initialize(srv.url, h.warden_headers(fh, "dave", "ops-change", "x"))
    assert status == 403, f"identity headers: {status} {body}"
    assert "X-Warden-Mission-Token" in body, body
    # The SDK cannot open a session with them either.
    with pytest.raises(h.ConnectError):
        async with h.http_session(
            srv.url, h.warden_headers(fh, "dave", "ops-change", "x"), label="headers"
        ):
            pass


async def test_a_sub_agent_is_narrowed_and_its_reads_hold_the_parents_publish(acme_serve):
    config, srv = acme_serve
    parent = grant(srv)
    child = subprocess.run(
        [str(h.WARDEN), "mission", "attenuate", parent["token"],
         "--tools", "forum.read_thread,logs.query_logs", "--expires", "30m",
         "--config", str(config)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    post = {"channel": "eng-help", "thread_id": "T-1042", "body": "Try resetting your password."}
    async with session(srv, config, child, "sub-agent") as sub:
        names = await sub.tool_names()
        assert names == {"forum.read_thread", "logs.query_logs"}, names
        refused = await sub.call("forum.post_reply", post)
        assert refused.kind == "deny", refused.short()
        logs = await sub.call("logs.query_logs", LOGS)
        assert logs.kind == "allow", logs.short()
    async with session(srv, config, parent["token"], "parent") as p:
        held = await p.call("forum.post_reply", post)
        assert held.kind in ("ask", "deny"), f"the child's read holds the parent: {held.short()}"
    fresh = grant(srv)
    async with session(srv, config, fresh["token"], "another mission") as f:
        ok = await f.call("forum.post_reply", post)
        assert ok.kind == "allow", f"a mission that read nothing posts: {ok.short()}"


def pg_schema() -> str | None:
    """A fresh schema on the test PostgreSQL, as a store URL; None when psql cannot reach it."""
    if not shutil.which("psql"):
        return None
    name = "e2e_" + secrets.token_hex(6)
    r = subprocess.run(
        ["psql", PG, "-v", "ON_ERROR_STOP=1", "-c", f"CREATE SCHEMA {name}"],
        capture_output=True, text=True, timeout=30,
    )
    if r.returncode != 0:
        return None
    sep = "&" if "?" in PG else "?"
    return f"{PG}{sep}options[search_path]={name}"


async def test_revocation_on_one_replica_stops_the_other_within_a_second(acme):
    config, work = acme
    store = pg_schema()
    if store is None:
        pytest.fail(f"PostgreSQL at {PG} is unreachable (`.ci/run` starts it)")
    tokens = h.agent_tokens(config)
    env = {"WARDEN_USER_ALICE": ALICE}
    with h.warden_serve(config, work, tokens, insecure_identity=False, store=store, extra_env=env) as a, \
            h.warden_serve(config, work, tokens, insecure_identity=False, store=store, extra_env=env) as b:
        granted = grant(a)
        async with session(a, config, granted["token"], "replica A") as sa, \
                session(b, config, granted["token"], "replica B") as sb:
            assert (await sa.call("forum.read_thread", READ)).kind == "allow"
            assert (await sb.call("forum.read_thread", READ)).kind == "allow"
            status, answer = post_json(
                missions_url(a) + "/revoke", ALICE, {"mission": granted["mission"], "reason": "e2e"}
            )
            assert status == 200, answer
            revoked_at = time.monotonic()
            while True:
                out = await sb.call("forum.read_thread", READ)
                if out.kind == "deny":
                    assert "revoked" in out.text, out.short()
                    break
                assert time.monotonic() - revoked_at < 1.0, "replica B still allows after 1 s"
                await anyio.sleep(0.05)
            assert time.monotonic() - revoked_at < 1.0
            again = await sa.call("forum.read_thread", READ)
            assert again.kind == "deny", again.short()
