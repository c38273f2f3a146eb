"""Warden in front of the real filesystem and memory MCP servers, driven by the Python SDK.

Each test runs over stdio (`warden proxy`) and streamable HTTP (`warden serve`). Under the
`direct` target the Warden-specific assertions are skipped and the rest runs against the
servers themselves.
"""

from __future__ import annotations

import json

import anyio
import pytest

import harness as h
from conftest import DOTENV, warden_only

pytestmark = pytest.mark.anyio

TEST_TIMEOUT = 4 * h.OP_TIMEOUT

READ_TOOLS = {
    "fs.read_text_file",
    "fs.read_file",
    "fs.read_multiple_files",
    "fs.list_directory",
    "fs.list_directory_with_sizes",
    "fs.directory_tree",
    "fs.search_files",
    "fs.get_file_info",
    "fs.list_allowed_directories",
    "memory.read_graph",
    "memory.search_nodes",
    "memory.open_nodes",
}
WRITE_TOOLS = {
    "fs.write_file",
    "fs.edit_file",
    "fs.create_directory",
    "fs.move_file",
    "memory.create_entities",
    "memory.create_relations",
    "memory.add_observations",
    "memory.delete_entities",
    "memory.delete_observations",
    "memory.delete_relations",
}
#: Served by server-filesystem, deliberately not in tests/e2e/fs/catalog.toml.
UNCATALOGUED = "fs.read_media_file"


def assert_allowed(o: h.Outcome, s: h.Session | None = None):
    assert o.kind == "allow" and not o.is_error, (
        f"`{o.tool}` should have been allowed and succeeded; got {o.kind}"
        f" (isError={o.is_error}): {o.short(1000)}" + (s.log_tail() if s else "")
    )


def assert_denied(o: h.Outcome, *needles: str):
    assert o.kind == "deny", (
        f"`{o.tool}` should have been denied by Warden (isError + 'Warden denied …'); got {o.kind}"
        f" (isError={o.is_error}): {o.short(1000)}"
    )
    assert f"`{o.tool}`" in o.text, f"the deny should name the tool `{o.tool}`: {o.text!r}"
    for n in needles:
        assert n.lower() in o.text.lower(), f"the deny reason should mention {n!r}: {o.text!r}"


# ---- tools/list -------------------------------------------------------------------------------


async def test_read_only_agent_sees_only_read_tools(fs_connect):
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "bob", "read-only") as s:
            names = await s.tool_names()
    assert READ_TOOLS <= names, f"missing read tools: {sorted(READ_TOOLS - names)}"
    if h.DIRECT:
        assert WRITE_TOOLS <= names  # the servers themselves offer everything
        return
    assert not (names & WRITE_TOOLS), f"a read-only agent sees write tools: {sorted(names & WRITE_TOOLS)}"
    assert UNCATALOGUED not in names
    assert names == READ_TOOLS, f"unexpected tools: {sorted(names - READ_TOOLS)}"


async def test_read_only_mission_hides_write_tools_from_a_writing_agent(fs_connect):
    warden_only()
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "read-only") as s:
            names = await s.tool_names()
    assert "fs.read_text_file" in names
    assert not (names & WRITE_TOOLS), (
        f"the read-only mission should hide write tools even from dev-assistant: {sorted(names & WRITE_TOOLS)}"
    )


async def test_editing_mission_sees_write_tools_but_not_uncatalogued_ones(fs_connect):
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "edit-files") as s:
            names = await s.tool_names()
    assert READ_TOOLS | WRITE_TOOLS <= names, f"missing: {sorted((READ_TOOLS | WRITE_TOOLS) - names)}"
    if not h.DIRECT:
        assert UNCATALOGUED not in names, "a tool the catalog does not describe must not be listed"
        assert names == READ_TOOLS | WRITE_TOOLS
    else:
        assert UNCATALOGUED in names


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_both_protocol_generations(fs_connect, fs_env, mode):
    """`legacy`: initialize handshake (2025-11-25); `auto`: server/discover first (2026-07-28)."""
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "bob", "read-only", mode=mode) as s:
            names = await s.tool_names()
            o = await s.call("fs.read_text_file", {"path": str(fs_env.root / "hello.txt")})
    assert "fs.read_text_file" in names
    assert_allowed(o)
    assert fs_env.token in o.text


# ---- allowed calls return the upstream's real result ------------------------------------------


async def test_allowed_read_returns_the_real_file(fs_connect, fs_env):
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "bob", "read-only") as s:
            o = await s.call("fs.read_text_file", {"path": str(fs_env.root / "hello.txt")})
            listing = await s.call("fs.list_directory", {"path": str(fs_env.root)})
    assert_allowed(o, s)
    assert fs_env.token in o.text, f"expected the file's content, got {o.text!r}"
    assert_allowed(listing, s)
    assert "hello.txt" in listing.text and "public" in listing.text, listing.text


async def test_allowed_write_reaches_the_disk(fs_connect, fs_env):
    target = fs_env.root / "docs" / "notes.md"
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "edit-files") as s:
            o = await s.call(
                "fs.write_file",
                {"path": str(target), "content": "Rotate the billing credentials on Friday.\n"},
            )
            back = await s.call("fs.read_text_file", {"path": str(target)})
    assert_allowed(o, s)
    assert target.read_text() == "Rotate the billing credentials on Friday.\n"
    assert_allowed(back, s)
    assert "Rotate the billing credentials" in back.text


# ---- denied calls -----------------------------------------------------------------------------


async def test_dotenv_read_then_write_elsewhere_is_denied(fs_connect, fs_env):
    """The third incident of DESIGN §1: an agent reads a .env and writes it where others read."""
    leak = fs_env.root / "public" / "config-notes.md"
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "edit-files", "Rotate the billing keys") as s:
            read = await s.call("fs.read_text_file", {"path": str(fs_env.root / ".env")})
            assert_allowed(read, s)
            assert "STRIPE_SECRET_KEY" in read.text, read.text
            if h.DIRECT:
                return  # without Warden the write would go through; nothing more to check
            write = await s.call(
                "fs.write_file", {"path": str(leak), "content": "For reference:\n" + read.text}
            )
            # The session is still usable after a deny.
            after = await s.call("fs.read_text_file", {"path": str(fs_env.root / "hello.txt")})
    assert_denied(write, "secret")
    assert "decision" in write.text.lower(), f"the deny should carry its decision id: {write.text!r}"
    assert not leak.exists(), "the denied write reached the disk"
    assert_allowed(after)


async def test_dotenv_content_cannot_be_smuggled_into_memory(fs_connect, fs_env):
    warden_only()
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "edit-files") as s:
            read = await s.call("fs.read_text_file", {"path": str(fs_env.root / ".env")})
            assert_allowed(read, s)
            o = await s.call(
                "memory.create_entities",
                {"entities": [{"name": "billing", "entityType": "service", "observations": [DOTENV]}]},
            )
    assert_denied(o, "secret")
    assert not fs_env.memory_file.exists() or "STRIPE" not in fs_env.memory_file.read_text()


async def test_uncleared_principal_cannot_have_dotenv_read(fs_connect, fs_env):
    """Confused deputy: the agent could read it, bob could not."""
    warden_only()
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "bob", "edit-files") as s:
            o = await s.call("fs.read_text_file", {"path": str(fs_env.root / ".env")})
    assert_denied(o)
    assert "STRIPE" not in o.text


async def test_tool_outside_the_ceiling_is_denied_if_called_anyway(fs_connect, fs_env):
    warden_only()
    target = fs_env.root / "docs" / "sneaky.md"
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "dana", "read-only") as s:
            o = await s.call("fs.write_file", {"path": str(target), "content": "x"})
    assert_denied(o)
    assert not target.exists()


async def test_uncatalogued_tool_is_denied_if_called_anyway(fs_connect, fs_env):
    warden_only()
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "dana", "edit-files") as s:
            o = await s.call(UNCATALOGUED, {"path": str(fs_env.root / "hello.txt")})
    assert_denied(o)


async def test_contractor_reads_public_but_not_internal(fs_connect, fs_env):
    warden_only()
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "erin", "read-only") as s:
            public = await s.call("fs.read_text_file", {"path": str(fs_env.root / "public" / "faq.md")})
            internal = await s.call("fs.read_text_file", {"path": str(fs_env.root / "hello.txt")})
    assert_allowed(public)
    assert "VPN" in public.text
    assert_denied(internal)
    assert fs_env.token not in internal.text


# ---- memory -----------------------------------------------------------------------------------


async def test_memory_create_then_read_back(fs_connect, fs_env):
    entity = {
        "name": "warden-e2e",
        "entityType": "project",
        "observations": ["runs real MCP servers behind Warden"],
    }
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("dev-assistant", "bob", "remember") as s:
            created = await s.call("memory.create_entities", {"entities": [entity]})
            graph = await s.call("memory.read_graph", {})
            opened = await s.call("memory.open_nodes", {"names": ["warden-e2e"]})
            found = await s.call("memory.search_nodes", {"query": "behind Warden"})
    for o in (created, graph, opened, found):
        assert_allowed(o, s)
    for o in (graph, opened, found):
        assert "runs real MCP servers behind Warden" in o.text, o.text
    assert fs_env.memory_file.exists()
    stored = [json.loads(line) for line in fs_env.memory_file.read_text().splitlines() if line.strip()]
    assert any(e.get("name") == "warden-e2e" for e in stored), stored

    # A second session (a read-only agent) sees what the first one stored.
    with anyio.fail_after(TEST_TIMEOUT):
        async with fs_connect("fs-reader", "bob", "read-only") as s2:
            again = await s2.call("memory.open_nodes", {"names": ["warden-e2e"]})
            if not h.DIRECT:
                denied = await s2.call("memory.delete_entities", {"entityNames": ["warden-e2e"]})
    assert_allowed(again)
    assert "runs real MCP servers behind Warden" in again.text
    if not h.DIRECT:
        assert_denied(denied)
