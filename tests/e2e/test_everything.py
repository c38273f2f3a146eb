"""The whole of MCP through Warden: @modelcontextprotocol/server-everything, driven by the
official Python SDK directly and through `warden proxy` and `warden serve`, in the SDK's default
`mode="auto"` (2026-07-28 with Warden) and in `mode="legacy"` (2025-11-25).

Each feature gives the same result through Warden as directly, or the decision Warden documents
(docs/mcp.md). Under the `direct`
target only the direct connections run.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

import harness as h

pytestmark = pytest.mark.anyio

TEST_TIMEOUT = 6 * h.OP_TIMEOUT
EVERYTHING = h.E2E_DIR / "node_modules" / ".bin" / "mcp-server-everything"
TEMPLATE = h.E2E_DIR / "everything"

#: The tools server-everything offers a client without sampling, elicitation or roots.
BASE_TOOLS = {
    "echo", "get-annotated-message", "get-env", "get-resource-links", "get-resource-reference",
    "get-structured-content", "get-sum", "get-tiny-image", "gzip-file-as-resource",
    "toggle-simulated-logging", "toggle-subscriber-updates", "trigger-long-running-operation",
}
PROMPTS = {"simple-prompt", "args-prompt", "completable-prompt", "resource-prompt"}
TEMPLATES = {"demo://resource/dynamic/text/{resourceId}", "demo://resource/dynamic/blob/{resourceId}"}
STATIC_DOC = "demo://resource/static/document/features.md"

KINDS = ["direct"] if h.DIRECT else ["direct", "proxy", "serve"]


def render_config(dest: Path) -> Path:
    import shutil

    shutil.copytree(TEMPLATE, dest, dirs_exist_ok=True)
    cfg = dest / "warden.toml"
    cfg.write_text(cfg.read_text().replace("{{E2E_DIR}}", h.toml_escape(str(h.E2E_DIR))))
    return cfg


class Env:
    """One test's deployment: the config, and `warden serve` when asked for."""

    def __init__(self, tmp: Path, stack: ExitStack):
        self.tmp = tmp
        self.stack = stack
        self.config = None if h.DIRECT else render_config(tmp / "config")
        self.workdir = tmp / "work"
        self.workdir.mkdir()
        self._serve: h.HttpServer | None = None
        self.n = 0

    def serve(self) -> h.HttpServer:
        if self._serve is None:
            tokens = h.agent_tokens(self.config)
            self._serve = self.stack.enter_context(h.warden_serve(self.config, self.workdir, tokens))
        return self._serve

    def name(self, kind: str, bare: str) -> str:
        """What the tool, prompt or server is called over `kind`."""
        return bare if kind == "direct" else f"everything.{bare}"

    @asynccontextmanager
    async def connect(self, kind: str, mode: str, **kw) -> AsyncIterator[Client]:
        self.n += 1
        opts = dict(cache=None, read_timeout_seconds=h.OP_TIMEOUT, mode=mode, **kw)
        log = self.workdir / f"{kind}-{self.n}.log"
        if kind == "serve":
            server = self.serve()
            token = server.tokens["WARDEN_TOKEN_EXPLORER"]
            headers = h.warden_headers(token, "erin", "explore", "try everything")
            async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(h.OP_TIMEOUT)) as http:
                async with Client(streamable_http_client(server.url, http_client=http), **opts) as c:
                    yield c
            return
        if kind == "direct":
            params = StdioServerParameters(command=str(EVERYTHING), args=["stdio"])
        else:
            args = h.warden_proxy_args(self.config, "explorer", "erin", "explore", "try everything")
            params = StdioServerParameters(command=str(h.WARDEN), args=args, cwd=str(self.workdir))
        with open(log, "a") as errlog:
            from mcp.client.stdio import stdio_client

            async with Client(stdio_client(params, errlog=errlog), **opts) as c:
                yield c


@pytest.fixture
def env(tmp_path, gateway):
    with ExitStack() as stack:
        yield Env(tmp_path, stack)


def texts(blocks) -> str:
    return "\n".join(b.text for b in blocks if getattr(b, "type", None) == "text")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
async def test_tools_prompts_resources_and_completions(env, kind, mode):
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, mode) as c:
            # Tools: the same list, the same results (text, image, structured content).
            tools = {t.name for t in (await c.list_tools()).tools}
            assert {n(t) for t in BASE_TOOLS} <= tools, sorted(tools)
            r = await c.call_tool(n("echo"), {"message": "hello"})
            assert texts(r.content) == "Echo: hello" and not r.is_error
            r = await c.call_tool(n("get-tiny-image"), {})
            assert any(b.type == "image" and b.data for b in r.content), r
            r = await c.call_tool(n("get-structured-content"), {"location": "New York"})
            assert r.structured_content and "temperature" in r.structured_content, r

            # Prompts: listed, got with and without arguments.
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert {n(p) for p in PROMPTS} <= prompts, sorted(prompts)
            got = await c.get_prompt(n("simple-prompt"))
            assert got.messages and got.messages[0].content.text, got
            got = await c.get_prompt(n("args-prompt"), {"city": "Lisbon", "state": "LX"})
            assert "Lisbon" in got.messages[0].content.text, got

            # Resources: listed, templates listed, static and templated URIs read, and a URI a
            # tool linked to.
            listed = {str(x.uri) for x in (await c.list_resources()).resources}
            assert STATIC_DOC in listed, sorted(listed)
            templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
            assert TEMPLATES <= templates, templates
            doc = await c.read_resource(STATIC_DOC)
            assert doc.contents and doc.contents[0].text, doc
            dyn = await c.read_resource("demo://resource/dynamic/text/3")
            assert "3" in dyn.contents[0].text, dyn
            links = await c.call_tool(n("get-resource-links"), {"count": 2})
            linked = [b.uri for b in links.content if b.type == "resource_link"]
            assert linked, links
            again = await c.read_resource(str(linked[0]))
            assert again.contents, again

            # Completions: forwarded to the server, never made up.
            done = await c.complete(
                types.PromptReference(type="ref/prompt", name=n("completable-prompt")),
                {"name": "department", "value": "E"},
            )
            assert "Engineering" in done.completion.values, done
            with pytest.raises(Exception):
                await c.complete(
                    types.PromptReference(type="ref/prompt", name=n("no-such-prompt")),
                    {"name": "x", "value": ""},
                )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
async def test_progress_concurrency_and_cancellation(env, kind, mode):
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, mode) as c:
            # Progress: every step of the long-running operation reaches the client.
            heard: list[float] = []

            async def progress(p: float, total: float | None, message: str | None) -> None:
                heard.append(p)

            r = await c.call_tool(
                n("trigger-long-running-operation"), {"duration": 1, "steps": 3},
                progress_callback=progress,
            )
            assert "completed" in texts(r.content), r
            assert heard == [1, 2, 3], heard

            # Concurrency: a quick call is not held behind a slow one of the same session.
            slow_done: list[float] = []

            async def slow() -> None:
                await c.call_tool(n("trigger-long-running-operation"), {"duration": 3, "steps": 3})
                slow_done.append(time.monotonic())

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                await anyio.sleep(0.3)
                quick = await c.call_tool(n("echo"), {"message": "meanwhile"})
                quick_at = time.monotonic()
                assert texts(quick.content) == "Echo: meanwhile"
                assert not slow_done, "the quick call waited for the slow one"
            assert slow_done and slow_done[0] > quick_at

            # Cancellation: a cancelled call ends, and the session goes on at once.
            with anyio.move_on_after(0.5):
                await c.call_tool(n("trigger-long-running-operation"), {"duration": 20, "steps": 2})
            started = time.monotonic()
            after = await c.call_tool(n("echo"), {"message": "after"})
            assert texts(after.content) == "Echo: after"
            assert time.monotonic() - started < 5


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "direct"])
async def test_a_tool_that_runs_only_as_a_task_is_one_call_through_warden(env, kind):
    """`simulate-research-query` says `taskSupport: "required"`: directly, a client without
    tasks cannot call it. Through Warden it is one call, decided as every call is; Warden runs
    it upstream as a task (`tools/call` with `task`, then `tasks/result`)."""
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, "legacy") as c:
            r = await c.call_tool(n("simulate-research-query"), {"topic": "owls"})
            assert not r.is_error, r
            report = texts(r.content)
            assert "Research Report: owls" in report and "Generating report" in report, report


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "direct"])
async def test_a_session_hears_only_its_own_progress(env, kind):
    """Two agents' sessions run the long operation at once; each hears its own three steps."""
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    heard: dict[str, list[float]] = {"a": [], "b": []}

    async def run(who: str, duration: int) -> None:
        async def progress(p: float, total: float | None, message: str | None) -> None:
            heard[who].append(p)

        async with env.connect(kind, "legacy") as c:
            r = await c.call_tool(
                n("trigger-long-running-operation"), {"duration": duration, "steps": 3 if who == "a" else 4},
                progress_callback=progress,
            )
            assert "completed" in texts(r.content)

    with anyio.fail_after(TEST_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", 1)
            tg.start_soon(run, "b", 1)
    assert heard["a"] == [1, 2, 3], heard
    assert heard["b"] == [1, 2, 3, 4], heard


@pytest.mark.parametrize("kind", KINDS)
async def test_logging_level_and_messages(env, kind):
    """`logging/setLevel` is answered. Directly, the simulated log messages arrive; through
    Warden the upstream session is shared by every agent and these messages name no request, so
    they reach no agent (the documented decision)."""
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    got: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.append(params)

    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, "legacy", logging_callback=on_log) as c:
            await c.set_logging_level("debug")
            r = await c.call_tool(n("toggle-simulated-logging"), {})
            assert "Started simulated" in texts(r.content), r
            await anyio.sleep(1.5)
            await c.call_tool(n("toggle-simulated-logging"), {})
    if kind == "direct":
        assert got, "server-everything sends a log message when logging starts"
    else:
        assert not got, [g.data for g in got]


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "direct"])
async def test_reads_are_decided_and_labelled_by_uri(env, kind):
    """A templated URI the catalog labels secret is denied for erin, who is not cleared."""
    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, "legacy") as c:
            with pytest.raises(Exception) as e:
                await c.read_resource("demo://resource/dynamic/blob/9")
            assert "Warden denied" in str(e.value), str(e.value)
            ok = await c.read_resource("demo://resource/dynamic/blob/1")
            assert ok.contents


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
async def test_sampling_elicitation_and_roots_under_policy(env, kind, mode):
    """The server asks the client for roots, for input (elicitation) and for its model
    (sampling). Directly, every one is answered. Through Warden each is a decision: roots and
    elicitation are allowed to erin's own client and relayed; sampling is held for approval and
    never reaches the client. A 2026-07-28 client (`auto` through Warden) is asked through
    `input_required` rounds, the others during the call."""
    n = lambda bare: env.name(kind, bare)  # noqa: E731
    asked: list[str] = []

    async def sampling(context, params: types.CreateMessageRequestParams):
        asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled text"), model="e2e"
        )

    async def elicitation(context, params: types.ElicitRequestParams):
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"name": "Erin Example", "check": True})

    async def roots(context):
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///srv/erin-project", name="erin-project")])

    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(
            kind, mode,
            sampling_callback=sampling, elicitation_callback=elicitation, list_roots_callback=roots,
        ) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            for t in ("get-roots-list", "trigger-elicitation-request", "trigger-sampling-request"):
                assert n(t) in tools, sorted(tools)

            r = await c.call_tool(n("get-roots-list"), {})
            assert "erin-project" in texts(r.content), r
            r = await c.call_tool(n("trigger-elicitation-request"), {})
            assert "Erin Example" in texts(r.content), r

            r = await c.call_tool(n("trigger-sampling-request"), {"prompt": "say hi", "maxTokens": 20})
            if kind == "direct":
                assert "sampled text" in texts(r.content), r
                assert "sampling" in asked
            else:
                assert r.is_error, r
                assert "approval required" in texts(r.content), texts(r.content)
                assert "sampling" not in asked, asked
    assert "roots" in asked and "elicitation" in asked, asked


def modern(c: Client) -> bool:
    """Did the client negotiate 2026-07-28 or later (no handshake, `subscriptions/listen`)?"""
    return (c.session.protocol_version or "") >= "2026-07-28"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("kind", KINDS)
async def test_subscriptions_reach_only_their_subscribers(env, kind, mode):
    """One session subscribes to a document (`resources/subscribe`, or `subscriptions/listen`
    on 2026-07-28) and turns on the server's simulated updates; the updates reach it, and not a
    second session that did not subscribe. Through Warden, a subscription is decided as a read:
    a URI the catalog labels secret cannot be subscribed to."""
    from mcp.shared.subscriptions import ResourceUpdated

    n = lambda bare: env.name(kind, bare)  # noqa: E731
    seen: dict[str, list[str]] = {"sub": [], "other": []}

    def recorder(who: str):
        async def on_message(m) -> None:
            if isinstance(m, types.ResourceUpdatedNotification):
                seen[who].append(str(m.params.uri))

        return on_message

    async def wait_for_update() -> None:
        with anyio.move_on_after(8):
            while not seen["sub"]:
                await anyio.sleep(0.1)

    with anyio.fail_after(TEST_TIMEOUT):
        async with env.connect(kind, mode, message_handler=recorder("sub")) as c, env.connect(
            kind, mode, message_handler=recorder("other")
        ) as d:
            await d.list_tools()
            if modern(c):
                async with c.listen(resource_subscriptions=[STATIC_DOC]) as sub:
                    async def consume() -> None:
                        async for event in sub:
                            if isinstance(event, ResourceUpdated):
                                seen["sub"].append(event.uri)
                                return

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(consume)
                        await c.call_tool(n("toggle-subscriber-updates"), {})
                        await wait_for_update()
                        tg.cancel_scope.cancel()
            else:
                await c.subscribe_resource(STATIC_DOC)
                await c.call_tool(n("toggle-subscriber-updates"), {})
                await wait_for_update()
                await c.unsubscribe_resource(STATIC_DOC)
            await c.call_tool(n("toggle-subscriber-updates"), {})
            assert STATIC_DOC in seen["sub"], seen
            assert not seen["other"], seen
            if kind != "direct" and not modern(c):
                with pytest.raises(Exception) as e:
                    await c.subscribe_resource("demo://resource/dynamic/blob/9")
                assert "Warden denied" in str(e.value), str(e.value)
