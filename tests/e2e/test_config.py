"""The e2e configurations are valid Warden configurations, and their policy tests pass.
These need only `warden policy`, not the gateway, so they run under both targets."""

from __future__ import annotations

import subprocess

import pytest

import harness as h


def warden(*args: str) -> subprocess.CompletedProcess:
    if not h.WARDEN.exists():
        pytest.fail(f"{h.WARDEN} does not exist: run `cargo build -p warden`", pytrace=False)
    return subprocess.run([str(h.WARDEN), *args], capture_output=True, text=True, timeout=120)


def test_fs_config_validates_as_committed():
    out = warden("policy", "validate", "--config", str(h.FS_TEMPLATE_DIR / "warden.toml"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_fs_policy_tests_pass():
    out = warden("policy", "test", "--config", str(h.FS_TEMPLATE_DIR / "warden.toml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 failed" in out.stdout, out.stdout


def test_rendered_fs_config_validates(tmp_path):
    cfg = h.render_fs_config(tmp_path / "cfg", tmp_path / "root", tmp_path / "memory.jsonl")
    text = cfg.read_text()
    assert "{{FS_ROOT}}" not in text and str(tmp_path / "root") in text
    out = warden("policy", "validate", "--config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rendered_acme_config_validates(tmp_path):
    cfg = h.render_acme_config(tmp_path / "acme")
    text = cfg.read_text()
    for name in h.ACME_SERVERS:
        assert f"[servers.{name}]" in text
    out = warden("policy", "validate", "--config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr


def test_strip_servers_keeps_everything_else():
    text = (
        'name = "x"\n[servers.forum]\ncommand = "a"\nargs = ["b"]\n[servers.logs]\nurl = "http://x"\n'
        '[agents.a]\nceiling = ["*"]\n[servers]\n[limits]\nmax_argument_bytes = 1\n'
    )
    out = h.strip_servers(text)
    assert "servers" not in out and "command" not in out and "url" not in out
    assert '[agents.a]\nceiling = ["*"]\n' in out and "[limits]\nmax_argument_bytes = 1\n" in out


def test_fs_default_pack_is_the_acme_default_pack():
    """tests/e2e/fs/policies/default.cedar is a copy of Warden's default pack; keep them equal
    (`cp examples/acme/policies/default.cedar tests/e2e/fs/policies/`)."""
    ours = (h.FS_TEMPLATE_DIR / "policies" / "default.cedar").read_text()
    theirs = (h.ACME_DIR / "policies" / "default.cedar").read_text()
    assert ours == theirs, "tests/e2e/fs/policies/default.cedar differs from examples/acme/policies/default.cedar"
