"""The Acme scenarios over real MCP.

Each `examples/acme/scenarios/*.jsonl` trace is replayed call by call through the gateway in
front of the Acme MCP server (`acme-mcp --server NAME`, one child per Acme server): one MCP
session per (mission, session) of the trace over HTTP, kept open so that taint builds up as it
would; the sessions of one mission share its taint, as in `warden replay`. Over stdio a
`warden proxy` process is one mission: one process (and MCP session) per mission of the trace.
Each trace gets its own `warden serve`, so that missions of different traces with the same
identity do not share their taint.
Each outcome the agent sees (a result; `isError` + "Warden denied …"; `isError` + "Warden
held …: approval required …") is compared three ways:

1. with `warden replay --format json` on the same trace but with each allowed call's `output`
   replaced by what acme-mcp really returned through the gateway. Same binary, same config,
   same outputs: the gateway must decide exactly as the core does. A difference is a gateway
   bug and always fails.
2. with the trace's `expect`. When (1) holds but this does not, the scenario does not hold
   against the real Acme server's data (a thread the trace reads is not seeded, or the seeded
   text differs from the trace's recorded `output`): the test is marked xfail with the reason,
   or fails with WARDEN_E2E_STRICT=1.
3. with `warden replay --format json` on the trace as written (recorded outputs): shown in the
   report, for context.

Under the `direct` target the same calls go to acme-mcp itself (stdio, and streamable HTTP
with `acme-mcp --http`), and every call the trace expects Warden to allow must succeed there
(xfail, as a data problem, when it does not).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import json
import os
import uuid

import anyio
import pytest

import harness as h

pytestmark = pytest.mark.anyio

TRACES = sorted((h.ACME_DIR / "scenarios").glob("*.jsonl"))


@pytest.fixture(scope="module")
def acme_config(tmp_path_factory):
    return h.render_acme_config(tmp_path_factory.mktemp("acme-config"))


@pytest.fixture
def acme_http_server(tmp_path_factory, acme_config, gateway):
    """One HTTP endpoint per test: `warden serve` (or acme-mcp --http when direct)."""
    work = tmp_path_factory.mktemp("acme-http")
    if h.DIRECT:
        with h.acme_http(work) as srv:
            yield srv
    else:
        tokens = h.agent_tokens(acme_config)
        with h.warden_serve(acme_config, work, tokens) as srv:
            yield srv


@pytest.fixture(params=["stdio", "http"])
def acme_transport(request):
    return request.param


def _open(stack, trace, mission_id, transport, config, work: Path, http_srv, n):
    m = trace.missions[mission_id]
    agent, principal, template, purpose = m["agent"], m["principal"], m["template"], m["purpose"]
    label_who = f"agent {agent}, principal {principal}, mission {template}"
    if h.DIRECT:
        if transport == "stdio":
            return h.stdio_session(h.ACME_MCP, [], log=work / f"acme-{n}.log", label="acme-mcp (direct)")
        return h.http_session(http_srv.url, {}, label="acme-mcp --http (direct)", log=http_srv.log)
    if transport == "stdio":
        return h.stdio_session(
            h.WARDEN,
            h.warden_proxy_args(config, agent, principal, template, purpose),
            log=work / f"proxy-{n}.log",
            cwd=work,
            label=f"warden proxy ({label_who})",
        )
    token = http_srv.tokens[h.token_env_of(config, agent)]
    headers = h.warden_headers(token, principal, template, purpose)
    # A stateless (2026-07-28) client has no Mcp-Session-Id; this keeps the trace's sessions apart.
    headers["X-Warden-Session"] = uuid.uuid4().hex
    return h.http_session(
        http_srv.url,
        headers,
        label=f"warden serve ({label_who})",
        log=http_srv.log,
    )


@pytest.mark.parametrize("trace_path", TRACES, ids=[p.stem for p in TRACES])
async def test_acme_scenario_over_mcp(trace_path, acme_transport, acme_config, tmp_path, gateway, request):
    trace = h.load_trace(trace_path)
    if trace.timed and not h.DIRECT:
        pytest.skip(
            "the trace sets the clock (`at_ms`): over MCP the gateway runs on the real clock, "
            "so an expiry hours later cannot be replayed (covered by `warden replay`)"
        )
    if acme_transport == "http" and not h.DIRECT and any(
        not str(v).isascii() for m in trace.missions.values() for v in m.values()
    ):
        pytest.skip(
            "over HTTP the mission travels in request headers, which carry ASCII only; a "
            "purpose in another script is replayed over stdio and by `warden replay`"
        )
    if acme_transport == "http" and not h.DIRECT and trace_path.name.startswith("v-"):
        pytest.skip(
            "the `v-*` variants exercise the decision core (encodings, provenance, advice, "
            "budgets, holds): they are replayed over stdio here, by `warden replay --check` and "
            "over real servers by warden-mcp's scenario test; HTTP parity is covered by the "
            "named Acme scenarios"
        )
    http_srv = request.getfixturevalue("acme_http_server") if acme_transport == "http" else None

    outcomes: list[tuple[h.TraceCall, h.Outcome]] = []
    with anyio.fail_after(h.OP_TIMEOUT * (4 + len(trace.calls))):
        async with AsyncExitStack() as stack:
            sessions: dict[tuple[str, str], h.Session] = {}
            for call in trace.calls:
                key = (call.mission, "" if acme_transport == "stdio" else call.session)
                if key not in sessions:
                    cm = _open(stack, trace, call.mission, acme_transport, acme_config, tmp_path, http_srv, len(sessions))
                    sessions[key] = await stack.enter_async_context(cm)
                outcomes.append((call, await sessions[key].call(call.name, call.args)))

    strict = os.environ.get("WARDEN_E2E_STRICT") == "1"
    rows, gateway_bugs, data_problems = [], [], []

    if h.DIRECT:
        for call, o in outcomes:
            rows.append(
                f"  line {call.line:>2} {call.name:<22} expect={call.expect or '-':<5} "
                f"upstream={'error' if o.is_error else 'ok'}: {o.short(160)}"
            )
            if call.expect == "allow" and (o.kind != "allow" or o.is_error):
                data_problems.append(
                    f"line {call.line}: `{call.name}` is expected to be allowed, but acme-mcp "
                    f"itself refuses it: {o.short(300)}"
                )
    else:
        real_trace = tmp_path / f"real-{trace_path.name}"
        write_real_trace(trace_path, outcomes, real_trace)
        both = h.warden_replay(acme_config, trace_path, real_trace)
        replayed = {line: d for (f, line), d in both.items() if f == trace_path.name}
        replayed_real = {line: d for (f, line), d in both.items() if f == real_trace.name}
        # After a call whose result the client could not read, the mission's taint includes
        # an output this test never saw: later calls of that mission cannot be compared with
        # the replay of real outputs (the protocol error itself is reported).
        unreadable: set[str] = set()
        for call, o in outcomes:
            key = call.mission
            rd = replayed.get(call.line, {}).get("decision")
            rr = replayed_real.get(call.line, {})
            rrd = rr.get("decision")
            note = " (upstream error)" if o.upstream_error else ""
            if key in unreadable:
                note += " (not compared: an earlier output was unreadable)"
            rows.append(
                f"  line {call.line:>2} {call.name:<22} expect={call.expect or '-':<5} "
                f"replay={rd or '-':<5} replay(real outputs)={rrd or '-':<5} "
                f"gateway={o.kind}{note}: {o.short(160)}"
            )
            if o.kind == "error":
                gateway_bugs.append(
                    f"line {call.line}: `{call.name}` failed at the protocol level instead of "
                    f"giving a tool result: {o.error}"
                )
                unreadable.add(key)
                continue
            if key in unreadable:
                continue
            if o.kind != rrd:
                why = "; ".join(r.get("text", "") for r in rr.get("reasons", []))
                gateway_bugs.append(
                    f"line {call.line}: `{call.name}`: the gateway gave {o.kind}, `warden replay` "
                    f"with the same outputs decides {rrd} ({why}): {o.short(600)}"
                )
            if o.kind in ("deny", "ask") and "(decision d-" not in o.text:
                gateway_bugs.append(f"line {call.line}: the refusal carries no decision id: {o.text!r}")
            if call.expect and o.kind != call.expect and o.kind == rrd:
                why = "; ".join(r.get("text", "") for r in replayed.get(call.line, {}).get("reasons", []))
                data_problems.append(
                    f"line {call.line}: `{call.name}` expected {call.expect} (replay of the recorded "
                    f"trace: {rd}: {why}), but with acme-mcp's real outputs it is {o.kind}: "
                    f"{o.short(300)}" + source_note(call, outcomes)
                )

    report = "\n".join(rows)
    logs = ""
    if gateway_bugs:
        for s in {str(s.log): s for s in sessions.values()}.values():
            logs += s.log_tail(1500)
    assert not gateway_bugs, (
        f"{trace_path.name} over {acme_transport}: the gateway disagrees with the decision core\n"
        + "\n".join(gateway_bugs)
        + f"\nall calls:\n{report}{logs}"
    )
    if data_problems:
        msg = (
            f"{trace_path.name}: the scenario does not hold against acme-mcp's data: "
            + " | ".join(data_problems)
        )
        if strict:
            pytest.fail(msg + f"\nall calls:\n{report}")
        pytest.xfail(msg)


def structured_tools() -> set[str]:
    """Tools whose output the gateway reads as its structured content: those whose catalog
    entry names untrusted fields or the field naming whom each record is about."""
    import tomllib

    catalog = tomllib.loads((h.ACME_DIR / "catalog.toml").read_text())
    return {
        name
        for name, entry in catalog.get("tools", {}).items()
        if entry.get("untrusted_fields") or entry.get("subject")
    }


def write_real_trace(src: Path, outcomes, dest: Path) -> None:
    """The trace, line for line, with each call's `output` set to what the gateway returned
    (for calls it allowed and the upstream answered), so `warden replay` sees what the gateway
    saw: the structured content for the tools the gateway reads that way, else the text."""
    real = {call.line: o for call, o in outcomes}
    structured = structured_tools()
    out = []
    for n, raw in enumerate(src.read_text().splitlines(), start=1):
        if not raw.strip():
            out.append(raw)
            continue
        obj = json.loads(raw)
        if obj.get("kind") == "call":
            obj.pop("output", None)
            o = real.get(n)
            if o is not None and o.kind == "allow" and not o.text.startswith("Warden allowed `"):
                name = f"{obj.get('server')}.{obj.get('tool')}"
                if name in structured and o.structured is not None:
                    obj["output"] = json.dumps(o.structured)
                else:
                    obj["output"] = o.text
        out.append(json.dumps(obj))
    dest.write_text("\n".join(out) + "\n")


def source_note(call, outcomes) -> str:
    """Earlier calls of the same mission whose real output differs from the recorded one."""
    notes = []
    for c, o in outcomes:
        if c.line >= call.line:
            break
        if c.mission != call.mission or c.output is None:
            continue
        recorded = c.output if isinstance(c.output, str) else json.dumps(c.output)
        real = o.text if o.kind == "allow" else f"<{o.kind}>"
        if recorded.strip() != real.strip():
            notes.append(
                f"\n    line {c.line} `{c.name}` recorded output: {recorded[:160]!r}"
                f"\n    {' ' * len(str(c.line))}      acme-mcp returned: {real[:160]!r}"
            )
    return "".join(notes)
