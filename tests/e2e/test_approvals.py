"""People in the loop, end to end, with the official Python MCP SDK against `warden serve` and
the `warden approvals` CLI: the sev1 post is held while the agent waits; an approver denies it
and the waiting agent receives the reason; approved instead (alice's consent, dave's approval of
the exposure), the agent receives the real result; approved as narrowed, the DM lands and the
public post does not. bob, and alice for the exposure, are refused."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest

import harness as h
from conftest import warden_only
from test_mission_tokens import ALICE, LOGS, READ, grant, post_json, session

pytestmark = pytest.mark.anyio

DAVE = "dave-e2e-" + secrets.token_hex(8)
BOB = "bob-e2e-" + secrets.token_hex(8)


@pytest.fixture
def approvals_serve(tmp_path, gateway):
    warden_only()
    config = h.render_acme_config(tmp_path / "acme")
    text = config.read_text().replace('expires = "1h"', 'expires = "1h"\nwait = "20s"', 1)
    text += (
        '\n[users.dave]\ntoken_env = "WARDEN_USER_DAVE"\n'
        '\n[users.bob]\ntoken_env = "WARDEN_USER_BOB"\n'
    )
    config.write_text(text)
    store = f"sqlite://{tmp_path / 'approvals.db'}"
    tokens = h.agent_tokens(config)
    with h.warden_serve(
        config, tmp_path, tokens, insecure_identity=False, store=store, extra_env=PEOPLE
    ) as srv:
        yield config, srv, store


PEOPLE = {"WARDEN_USER_ALICE": ALICE, "WARDEN_USER_DAVE": DAVE, "WARDEN_USER_BOB": BOB}


def approvals(config: Path, store: str, token: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(h.WARDEN), "approvals", *args, "--config", str(config), "--store", store,
         "--token", token],
        capture_output=True, text=True, timeout=60, env={**os.environ, **PEOPLE},
    )


def pending(config: Path, store: str) -> list[dict]:
    out = approvals(config, store, DAVE, "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def wait_for_request(config: Path, store: str, seen: set[str]) -> dict:
    """The first pending request not in `seen`, as `warden approvals list` shows it to dave."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for r in await anyio.to_thread.run_sync(pending, config, store):
            if r["id"] not in seen:
                return r
        await anyio.sleep(0.3)
    raise AssertionError("no approval request appeared")


def body_of(logs_text: str, tag: str) -> dict:
    lines = "\n".join(logs_text.splitlines()[:3])
    return {
        "channel": "eng-help",
        "thread_id": "T-1042",
        "as_user": "alice",
        "body": f"Bob ({tag}), your account got locked after failed logins:\n{lines}",
    }


async def held_call(s, args: dict, answer) -> tuple[h.Outcome, dict]:
    """Call post_reply with `args` and, while it waits, find its request and `answer` it."""
    result: dict = {}

    async def call():
        result["outcome"] = await s.call("forum.post_reply", args)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        request = await answer()
    return result["outcome"], request


async def test_the_held_sev1_post_is_denied_approved_or_narrowed_by_people(approvals_serve):
    config, srv, store = approvals_serve
    granted = grant(srv)
    seen: set[str] = set()
    async with session(srv, config, granted["token"], "forum-helper") as s:
        assert (await s.call("forum.read_thread", READ)).kind == "allow"
        logs = await s.call("logs.query_logs", LOGS)
        assert logs.kind == "allow", logs.short()

        # 1. Denied from the CLI: the waiting agent receives the reason.
        async def deny():
            r = await wait_for_request(config, store, seen)
            seen.add(r["id"])
            holds = {x["facts"]["kind"] for x in r["request"]["holds"]}
            assert holds == {"consent", "exposure"}, r
            assert r["request"]["exposure"]["count"] > 2000, r
            bob = approvals(config, store, BOB, "deny", r["id"], "--reason", "nope")
            assert bob.returncode != 0 and "not allowed" in bob.stderr, bob.stderr
            out = approvals(config, store, DAVE, "deny", r["id"], "--reason",
                            "it quotes auth logs to 3,000 people")
            assert out.returncode == 0, out.stderr
            return r

        denied, r1 = await held_call(s, body_of(logs.text, "1"), deny)
        assert denied.kind == "deny", denied.short()
        assert "it quotes auth logs to 3,000 people" in denied.text, denied.text
        assert r1["id"] in denied.text

        # 2. Approved: alice consents (over HTTP), alice may not approve the exposure, dave
        # does (on the CLI).
        api = srv.url.removesuffix("/mcp") + "/v1/approvals"

        async def approve():
            r = await wait_for_request(config, store, seen)
            seen.add(r["id"])
            status, bob_sees = await anyio.to_thread.run_sync(
                lambda: post_json(f"{api}/{r['id']}/approve", BOB, {}))
            assert status == 403, (status, bob_sees)
            status, answer = await anyio.to_thread.run_sync(
                lambda: post_json(f"{api}/{r['id']}/approve", ALICE, {"reason": "yes, as me"}))
            assert status == 200 and answer["state"] == "pending", (status, answer)
            again = approvals(config, store, ALICE, "approve", r["id"])
            assert again.returncode != 0 and "no-self-approval" in again.stderr, again.stderr
            out = approvals(config, store, DAVE, "approve", r["id"], "--reason", "ok, bob asked")
            assert out.returncode == 0, out.stderr
            return r

        posted, r2 = await held_call(s, body_of(logs.text, "2"), approve)
        assert posted.kind == "allow" and not posted.is_error, posted.short()
        assert "Posted reply" in posted.text or "reply" in posted.text.lower(), posted.text

        # 3. Approved as narrowed: the DM lands, the public post does not.
        async def narrow():
            r = await wait_for_request(config, store, seen)
            seen.add(r["id"])
            out = approvals(config, store, DAVE, "approve-narrowed", r["id"], "--alternative")
            assert out.returncode == 0, out.stderr
            assert "approved as narrowed" in out.stdout, out.stdout
            return r

        narrowed = body_of(logs.text, "3")
        dm, r3 = await held_call(s, narrowed, narrow)
        assert dm.kind == "allow" and not dm.is_error, dm.short()
        assert "Sent direct message" in dm.text and "to alice" in dm.text, dm.text
        assert "forum.send_dm" in dm.text, dm.text  # the agent is told what changed
        thread = await s.call("forum.read_thread", READ)
        assert "Bob (2)" in thread.text, thread.text
        assert "Bob (3)" not in thread.text, thread.text

    # Each request is closed as it ended, and the chain holds who did what.
    shown = approvals(config, store, DAVE, "show", r3["id"], "--format", "json")
    assert json.loads(shown.stdout)["state"] == "used", shown.stdout
    shown = approvals(config, store, DAVE, "show", r1["id"], "--format", "json")
    assert json.loads(shown.stdout)["state"] == "denied", shown.stdout


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_act_as_consent_is_asked_of_a_client_its_principal_operates(tmp_path, gateway, mode):
    """With `[approvals] elicit_consent = ["forum-helper"]`, a post under alice's name (held only
    for her consent) is put to the agent's own client as an elicitation (an `input_required`
    round on 2026-07-28, a request of the server on 2025-11-25); her yes lets it go."""
    warden_only()
    config = h.render_acme_config(tmp_path / "acme")
    config.write_text(config.read_text().replace(
        'expires = "1h"', 'expires = "1h"\nwait = "20s"\nelicit_consent = ["forum-helper"]', 1
    ))
    asked: list[str] = []

    async def elicitation(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"consent": True})

    tokens = h.agent_tokens(config)
    with h.warden_serve(config, tmp_path, tokens, insecure_identity=False,
                        extra_env={"WARDEN_USER_ALICE": ALICE}) as srv:
        granted = grant(srv)
        headers = {
            "Authorization": f"Bearer {srv.tokens[h.token_env_of(config, 'forum-helper')]}",
            "X-Warden-Mission-Token": granted["token"],
        }
        async with h.http_session(srv.url, headers, mode=mode, label="alice's own client",
                                  log=srv.log, elicitation_callback=elicitation) as s:
            post = await s.call("forum.post_reply", {
                "channel": "eng-help", "thread_id": "T-1042", "as_user": "alice",
                "body": "Try resetting your password from the login page.",
            })
    assert len(asked) == 1, asked
    assert "under your name" in asked[0] and "forum.post_reply" in asked[0], asked
    assert post.kind == "allow" and not post.is_error, post.short()
