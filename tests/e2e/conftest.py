"""Fixtures for the end-to-end tests. See harness.py for the two targets (warden, direct)."""

from __future__ import annotations

import secrets
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import pytest

import harness as h

#: A .env file as people really leave them lying around (fake values).
DOTENV = (
    "STRIPE_SECRET_KEY=sk_live_51HqLyjWDarjtT1zdp7dcXYZ0123456789abcdef\n"
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
)


def pytest_report_header(config):
    lines = [f"warden e2e target: {h.TARGET} (WARDEN_E2E_TARGET), op timeout {h.OP_TIMEOUT}s"]
    if not h.DIRECT:
        ok, text = h.gateway_status()
        first = text.splitlines()[0] if text else ""
        lines.append(f"gateway `warden proxy`: {'available' if ok else 'NOT available'} — {first}")
    return lines


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def gateway():
    """Under the `warden` target: the gateway must exist, or every test that needs it errors."""
    if h.DIRECT:
        return None
    ok, text = h.gateway_status()
    if not ok:
        pytest.fail(
            "the Warden gateway is not available: `warden proxy --help` said:\n"
            f"{text}\n(build it with `cargo build -p warden`; to test only the harness against the "
            "real servers, run with WARDEN_E2E_TARGET=direct)",
            pytrace=False,
        )
    return text


@pytest.fixture(params=["stdio", "http"])
def transport(request):
    return request.param


def warden_only():
    if h.DIRECT:
        pytest.skip("checks Warden's own behaviour; the `direct` target has no Warden")


# ---- the filesystem + memory deployment -------------------------------------------------------


@dataclass
class FsEnv:
    root: Path
    memory_file: Path
    config: Path | None
    workdir: Path
    token: str  # appears in hello.txt


@pytest.fixture
def fs_env(tmp_path) -> FsEnv:
    root = tmp_path / "project"
    (root / "public").mkdir(parents=True)
    (root / "docs").mkdir()
    token = f"hello-{secrets.token_hex(8)}"
    (root / "hello.txt").write_text(f"Hello from the e2e tests: {token}\n")
    (root / ".env").write_text(DOTENV)
    (root / "public" / "faq.md").write_text("# FAQ\nThe VPN client is on the portal.\n")
    (root / "docs" / "runbook.md").write_text("# Runbook\nRestart with `systemctl restart app`.\n")
    memory_file = tmp_path / "memory.jsonl"
    workdir = tmp_path / "work"
    workdir.mkdir()
    config = None
    if not h.DIRECT:
        config = h.render_fs_config(tmp_path / "config", root, memory_file)
    return FsEnv(root.resolve(), memory_file, config, workdir, token)


@pytest.fixture
def fs_connect(fs_env, transport, gateway):
    """`connect(agent, principal, mission, purpose, mode=...)` → async context of a Session."""
    stack = ExitStack()
    state: dict = {}

    def serve() -> h.HttpServer:
        if "serve" not in state:
            tokens = h.agent_tokens(fs_env.config)
            state["serve"] = stack.enter_context(h.warden_serve(fs_env.config, fs_env.workdir, tokens))
        return state["serve"]

    @asynccontextmanager
    async def connect(
        agent: str,
        principal: str,
        mission: str,
        purpose: str = "e2e test",
        mode: str | None = None,
    ) -> AsyncIterator[h.Session]:
        n = state.setdefault("n", 0) + 1
        state["n"] = n
        if h.DIRECT:
            if transport == "http":
                pytest.skip(
                    "server-filesystem and server-memory speak stdio only; under the direct "
                    "target HTTP is covered by the Acme tests (acme-mcp --http)"
                )
            log = fs_env.workdir / f"direct-{n}.log"
            async with h.multi_session(
                {
                    "fs": h.stdio_session(h.FS_SERVER, [str(fs_env.root)], log=log, mode=mode),
                    "memory": h.stdio_session(
                        h.MEMORY_SERVER,
                        [],
                        log=log,
                        env={"MEMORY_FILE_PATH": str(fs_env.memory_file)},
                        mode=mode,
                    ),
                },
                label="server-filesystem + server-memory (direct)",
            ) as s:
                yield s
            return
        if transport == "stdio":
            log = fs_env.workdir / f"proxy-{n}.log"
            async with h.stdio_session(
                h.WARDEN,
                h.warden_proxy_args(fs_env.config, agent, principal, mission, purpose),
                log=log,
                cwd=fs_env.workdir,
                mode=mode,
                label=f"warden proxy (agent {agent}, principal {principal}, mission {mission})",
            ) as s:
                yield s
        else:
            srv = serve()
            token = srv.tokens[h.token_env_of(fs_env.config, agent)]
            async with h.http_session(
                srv.url,
                h.warden_headers(token, principal, mission, purpose),
                mode=mode,
                label=f"warden serve (agent {agent}, principal {principal}, mission {mission})",
                log=srv.log,
            ) as s:
                yield s

    connect.serve = serve  # type: ignore[attr-defined]
    yield connect
    stack.close()
