"""The end-to-end harness: real MCP servers and the official Python MCP SDK, through Warden.

Two targets, chosen by the environment variable ``WARDEN_E2E_TARGET``:

* ``warden`` (the default): every client talks to the Warden gateway — ``warden proxy`` over
  stdio, ``warden serve`` over streamable HTTP — and Warden talks to the upstream servers.
* ``direct``: the clients talk to the upstream servers themselves, with no Warden. Only the
  parts of each test that do not depend on Warden run; it proves the clients, the servers and
  this harness work, so that a failure under ``warden`` is about Warden.

Every client operation runs under a timeout (``WARDEN_E2E_TIMEOUT`` seconds, default 30), and
every process this harness starts is stopped when its context ends.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

E2E_DIR = Path(__file__).resolve().parent
REPO = E2E_DIR.parent.parent
ACME_DIR = REPO / "examples" / "acme"
FS_TEMPLATE_DIR = E2E_DIR / "fs"

WARDEN = Path(os.environ.get("WARDEN_BIN", REPO / "target" / "debug" / "warden"))
ACME_MCP = Path(os.environ.get("ACME_MCP_BIN", REPO / "target" / "debug" / "acme-mcp"))
FS_SERVER = E2E_DIR / "node_modules" / ".bin" / "mcp-server-filesystem"
MEMORY_SERVER = E2E_DIR / "node_modules" / ".bin" / "mcp-server-memory"

TARGET = os.environ.get("WARDEN_E2E_TARGET", "warden")
if TARGET not in ("warden", "direct"):
    raise RuntimeError(f"WARDEN_E2E_TARGET must be `warden` or `direct`, not `{TARGET}`")
DIRECT = TARGET == "direct"

#: Seconds for one client operation (connect, list, call).
OP_TIMEOUT = float(os.environ.get("WARDEN_E2E_TIMEOUT", "30"))
#: How clients negotiate the protocol: `auto` (server/discover, 2026-07-28, falling back to the
#: initialize handshake) or `legacy` (initialize only, 2025-11-25). Tests that do not say.
MODE = os.environ.get("WARDEN_E2E_MODE", "auto")
#: Seconds for a server process to start listening.
START_TIMEOUT = float(os.environ.get("WARDEN_E2E_START_TIMEOUT", "30"))

ACME_SERVERS = ("forum", "logs", "hr", "files", "acl", "web", "mail")

# ---- the gateway ------------------------------------------------------------------------------


def gateway_status() -> tuple[bool, str]:
    """Is `warden proxy` there? (available, what `warden proxy --help` said)."""
    if not WARDEN.exists():
        return False, f"{WARDEN} does not exist (run `cargo build -p warden`)"
    try:
        out = subprocess.run(
            [str(WARDEN), "proxy", "--help"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`warden proxy --help` failed: {e}"
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0, text


def serve_available() -> tuple[bool, str]:
    """Is `warden serve` there?"""
    if not WARDEN.exists():
        return False, f"{WARDEN} does not exist"
    try:
        out = subprocess.run(
            [str(WARDEN), "serve", "--help"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`warden serve --help` failed: {e}"
    return out.returncode == 0, (out.stdout + out.stderr).strip()


# ---- configurations ---------------------------------------------------------------------------


def render_fs_config(dest: Path, fs_root: Path, memory_file: Path) -> Path:
    """Copy tests/e2e/fs into `dest` and fill in the absolute paths; return the warden.toml."""
    shutil.copytree(FS_TEMPLATE_DIR, dest, dirs_exist_ok=True)
    cfg = dest / "warden.toml"
    text = cfg.read_text()
    for key, value in {
        "{{E2E_DIR}}": E2E_DIR,
        "{{FS_ROOT}}": fs_root,
        "{{MEMORY_FILE}}": memory_file,
    }.items():
        text = text.replace(key, toml_escape(str(value)))
    cfg.write_text(text)
    return cfg


def toml_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"-]+)")


def strip_servers(text: str) -> str:
    """Remove every `[servers]` / `[servers.*]` table from a warden.toml text."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        m = _TABLE_HEADER.match(line)
        if m:
            name = m.group(1).strip('"')
            skipping = name == "servers" or name.startswith("servers.")
        if not skipping:
            out.append(line)
    return "".join(out)


def acme_servers_toml() -> str:
    """`[servers.*]` for every Acme server: one `acme-mcp --server NAME` child each."""
    parts = ["\n# Added by tests/e2e/harness.py: the Acme MCP server, one child per server.\n"]
    for name in ACME_SERVERS:
        parts.append(
            f'\n[servers.{name}]\ncommand = "{toml_escape(str(ACME_MCP))}"\n'
            f'args = ["--server", "{name}"]\n'
        )
    return "".join(parts)


def render_acme_config(dest: Path) -> Path:
    """Copy examples/acme into `dest`; replace its `[servers.*]` with ones for acme-mcp."""
    shutil.copytree(ACME_DIR, dest, dirs_exist_ok=True)
    cfg = dest / "warden.toml"
    cfg.write_text(strip_servers(cfg.read_text()) + acme_servers_toml())
    return cfg


def agent_tokens(config: Path) -> dict[str, str]:
    """A fresh bearer token for every agent of a config: {token_env: token}."""
    import tomllib

    raw = tomllib.loads(config.read_text())
    out = {}
    for agent, spec in raw.get("agents", {}).items():
        env = spec.get("token_env")
        if env:
            out[env] = f"tok-{agent}-{secrets.token_hex(12)}"
    return out


def token_env_of(config: Path, agent: str) -> str:
    import tomllib

    raw = tomllib.loads(config.read_text())
    env = raw["agents"][agent].get("token_env")
    if not env:
        raise KeyError(f"agent `{agent}` has no token_env in {config}")
    return env


# ---- outcomes ---------------------------------------------------------------------------------

DENY_RE = re.compile(r"Warden denied", re.I)
ASK_RE = re.compile(
    r"approval required|requires? (?:a person's |human )?approval|needs? (?:a person's )?approval"
    r"|held for approval|awaiting approval|pending approval|Warden (?:held|asks?)",
    re.I,
)


@dataclass
class Outcome:
    """What one tools/call came to, as the agent sees it."""

    tool: str
    args: Any
    #: `allow` (the upstream answered, even with an error), `deny`, `ask`, or `error` (the
    #: call failed at the protocol level: an MCP error, not a tool result).
    kind: str
    is_error: bool
    text: str
    structured: Any = None
    error: str | None = None

    @property
    def upstream_error(self) -> bool:
        """Allowed by Warden, but the upstream tool itself reported an error."""
        return self.kind == "allow" and self.is_error

    def short(self, n: int = 300) -> str:
        t = self.error if self.kind == "error" else self.text
        t = (t or "").replace("\n", "\\n")
        return t if len(t) <= n else t[:n] + "…"


def classify(tool: str, args: Any, result: types.CallToolResult) -> Outcome:
    text = "\n".join(
        c.text for c in result.content if isinstance(c, types.TextContent)
    )
    is_error = bool(result.is_error)
    kind = "allow"
    if is_error and DENY_RE.search(text):
        kind = "deny"
    elif is_error and ASK_RE.search(text):
        kind = "ask"
    return Outcome(tool, args, kind, is_error, text, result.structured_content)


# ---- sessions ---------------------------------------------------------------------------------


class Session:
    """One agent session: `tool_names()` and `call(name, args)`; names are `server.tool`."""

    def __init__(self, clients: dict[str | None, Client], label: str, log: Path | None = None):
        # Key None: one client that serves `server.tool` names itself (Warden, or acme-mcp).
        # Otherwise one client per upstream server, called with bare tool names.
        self._clients = clients
        self.label = label
        self.log = log

    async def tool_names(self) -> set[str]:
        names: set[str] = set()
        for prefix, client in self._clients.items():
            with anyio.fail_after(OP_TIMEOUT):
                cursor = None
                while True:
                    res = await client.list_tools(cursor=cursor, cache_mode="refresh")
                    for t in res.tools:
                        names.add(t.name if prefix is None else f"{prefix}.{t.name}")
                    cursor = res.next_cursor
                    if not cursor:
                        break
        return names

    async def call(self, name: str, args: Any) -> Outcome:
        if None in self._clients:
            client, tool = self._clients[None], name
        else:
            server, _, tool = name.partition(".")
            if server not in self._clients:
                return Outcome(name, args, "error", True, "", error=f"no upstream `{server}`")
            client = self._clients[server]
        try:
            with anyio.fail_after(OP_TIMEOUT):
                result = await client.call_tool(tool, args)
        except TimeoutError:
            raise TimeoutError(
                f"{self.label}: tools/call `{name}` got no answer in {OP_TIMEOUT}s{self.log_tail()}"
            ) from None
        except Exception as e:  # an MCP error, not a tool result
            return Outcome(name, args, "error", True, "", error=f"{type(e).__name__}: {e}")
        return classify(name, args, result)

    def log_tail(self, n: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        t = self.log.read_text(errors="replace")
        return f"\n--- stderr of {self.label} (last {n} chars) ---\n{t[-n:]}" if t else ""


def _client(transport: Any, mode: str | None, **callbacks: Any) -> Client:
    return Client(
        transport, cache=None, read_timeout_seconds=OP_TIMEOUT, mode=mode or MODE, **callbacks
    )


@asynccontextmanager
async def stdio_session(
    command: str | Path,
    args: list[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prefix: str | None = None,
    mode: str | None = None,
    label: str | None = None,
) -> AsyncIterator[Session]:
    """Spawn an MCP server (or `warden proxy`) and talk to it over stdio."""
    async with AsyncExitStack() as stack:
        errlog = stack.enter_context(open(log, "a"))
        params = StdioServerParameters(command=str(command), args=args, env=env, cwd=cwd)
        label = label or f"{Path(str(command)).name} {' '.join(args)}"
        # No cancel scope around the enter: the client's task group outlives it. The
        # initialize/discover request has the client's read timeout.
        try:
            client = await stack.enter_async_context(
                _client(stdio_client(params, errlog=errlog), mode)
            )
        except Exception as e:
            errlog.flush()
            raise ConnectError(label, e, log) from e
        yield Session({prefix: client}, label, log)


@asynccontextmanager
async def http_session(
    url: str,
    headers: dict[str, str],
    *,
    mode: str | None = None,
    label: str | None = None,
    log: Path | None = None,
    **callbacks: Any,
) -> AsyncIterator[Session]:
    """Talk to a streamable HTTP MCP endpoint with the given headers (`callbacks`: the
    client's `elicitation_callback`, … )."""
    label = label or url
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(OP_TIMEOUT))
        )
        try:
            client = await stack.enter_async_context(
                _client(streamable_http_client(url, http_client=http), mode, **callbacks)
            )
        except Exception as e:
            raise ConnectError(label, e, log) from e
        yield Session({None: client}, label, log)


def _leaves(e: BaseException) -> list[str]:
    """The innermost exceptions of (nested) exception groups."""
    if isinstance(e, BaseExceptionGroup):
        return [x for sub in e.exceptions for x in _leaves(sub)]
    return [f"{type(e).__name__}: {e}"]


class ConnectError(RuntimeError):
    """Could not open an MCP session; carries the server's stderr."""

    def __init__(self, label: str, cause: BaseException, log: Path | None):
        tail = ""
        if log is not None and log.exists():
            tail = log.read_text(errors="replace")[-3000:]
        msg = f"could not open an MCP session with {label}: {type(cause).__name__}: {cause}"
        msg += "".join(f"\n  {line}" for line in _leaves(cause))
        if tail:
            msg += f"\n--- stderr of {label} ---\n{tail}"
        super().__init__(msg)
        self.stderr = tail


@asynccontextmanager
async def multi_session(
    sessions: dict[str, Any], label: str
) -> AsyncIterator[Session]:
    """Direct mode: several upstream servers, one `Session`, names `server.tool`."""
    async with AsyncExitStack() as stack:
        clients: dict[str | None, Client] = {}
        for prefix, cm in sessions.items():
            s: Session = await stack.enter_async_context(cm)
            clients[prefix] = s._clients[None]
        yield Session(clients, label)


def warden_proxy_args(
    config: Path, agent: str, principal: str, mission: str, purpose: str
) -> list[str]:
    # Each proxy records in an SQLite store of its own: mission state persists by identity, so
    # runs that reuse one (agent, person, template, purpose) must not share a store.
    store = Path(tempfile.mkdtemp(prefix="warden-store-")) / "warden.db"
    # These sessions name their identity by flags (local development mode); the mission-token
    # tests (test_mission_tokens.py) present tokens instead.
    return [
        "proxy",
        "--insecure-identity",
        "--config", str(config),
        "--store", f"sqlite://{store}",
        "--agent", agent,
        "--principal", principal,
        "--mission", mission,
        "--purpose", purpose,
    ]


def warden_headers(token: str | None, principal: str, mission: str, purpose: str) -> dict[str, str]:
    h = {
        "X-Warden-Principal": principal,
        "X-Warden-Mission": mission,
        "X-Warden-Purpose": purpose,
    }
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return h


# ---- server processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode} before listening:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(
        f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT}s:\n"
        f"{log.read_text(errors='replace')[-3000:]}"
    )


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process this harness started, and its process group (its upstream children)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    # Children of the group may outlive the leader: make sure the group is gone.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class HttpServer:
    url: str
    log: Path
    proc: subprocess.Popen
    tokens: dict[str, str] = field(default_factory=dict)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def warden_serve(
    config: Path,
    workdir: Path,
    tokens: dict[str, str],
    insecure_identity: bool = True,
    store: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[HttpServer]:
    """`warden serve --config CONFIG --listen 127.0.0.1:PORT`, with the agents' tokens in env.

    With `insecure_identity` (the default of the older tests) agents name their identity in
    headers; without it they must present mission tokens."""
    port = free_port()
    log = workdir / f"warden-serve-{port}.log"
    env = {**os.environ, **tokens, **(extra_env or {}), "RUST_BACKTRACE": "1"}
    args = [str(WARDEN), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
            "--store", store or f"sqlite://{workdir / f'warden-{port}.db'}"]
    if insecure_identity:
        args.append("--insecure-identity")
    with open(log, "w") as errlog:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=errlog,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    try:
        _wait_listening(port, proc, log, "warden serve")
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", log, proc, tokens)
    finally:
        stop_process(proc)


@contextmanager
def acme_http(workdir: Path) -> Iterator[HttpServer]:
    """Direct mode: `acme-mcp --http 127.0.0.1:PORT` (every tool, as `server.tool`)."""
    port = free_port()
    log = workdir / f"acme-mcp-{port}.log"
    with open(log, "w") as errlog:
        proc = subprocess.Popen(
            [str(ACME_MCP), "--http", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=errlog,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        _wait_listening(port, proc, log, "acme-mcp --http")
        yield HttpServer(f"http://127.0.0.1:{port}/mcp", log, proc)
    finally:
        stop_process(proc)


# ---- traces -----------------------------------------------------------------------------------


@dataclass
class TraceCall:
    line: int
    mission: str
    session: str
    server: str
    tool: str
    args: Any
    expect: str | None
    output: Any
    at_ms: int | None

    @property
    def name(self) -> str:
        return f"{self.server}.{self.tool}"


@dataclass
class Trace:
    path: Path
    missions: dict[str, dict]
    calls: list[TraceCall]

    @property
    def timed(self) -> bool:
        """Uses `at_ms`: replays need a clock the gateway does not let tests set."""
        return any(c.at_ms is not None for c in self.calls) or any(
            "at_ms" in m for m in self.missions.values()
        )


def load_trace(path: Path) -> Trace:
    missions: dict[str, dict] = {}
    calls: list[TraceCall] = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        obj = json.loads(raw)
        if obj["kind"] == "mission":
            missions[obj["id"]] = obj
        elif obj["kind"] == "call":
            calls.append(
                TraceCall(
                    line=n,
                    mission=obj["mission"],
                    session=obj["session"],
                    server=obj["server"],
                    tool=obj["tool"],
                    args=obj.get("args", {}),
                    expect=obj.get("expect"),
                    output=obj.get("output"),
                    at_ms=obj.get("at_ms"),
                )
            )
    return Trace(path, missions, calls)


def warden_replay(config: Path, *traces: Path) -> dict[tuple[str, int], dict]:
    """`warden replay --format json` on one or more traces (one config load):
    {(trace file name, line): decision object}."""
    out = subprocess.run(
        [str(WARDEN), "replay", "--config", str(config), "--format", "json", *map(str, traces)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"warden replay failed ({out.returncode}):\n{out.stderr}")
    decisions = {}
    for raw in out.stdout.splitlines():
        if raw.strip():
            d = json.loads(raw)
            decisions[(Path(d["file"]).name, int(d["line"]))] = d
    return decisions
