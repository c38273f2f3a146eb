#!/usr/bin/env bash
# Install what the end-to-end tests (tests/e2e) need, at pinned versions:
#   - npm ci in tests/e2e (package-lock.json): @modelcontextprotocol/server-filesystem,
#     @modelcontextprotocol/server-memory, @modelcontextprotocol/sdk (the TypeScript client);
#   - a Python venv at tests/e2e/.venv with tests/e2e/requirements.txt: the official Python
#     SDK `mcp`, pytest, pytest-timeout;
#   - a Python venv at benchmarks/agentdojo/.venv with agentdojo==0.1.35 (scripts/install-agentdojo.sh).
# Needs Node >= 20 with npm and Python >= 3.10 with pip; reaches only the npm registry and PyPI.
# Idempotent: a step whose lock file has not changed since it last succeeded is skipped
# (FORCE=1 redoes everything).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$ROOT/tests/e2e"
PYTHON="${PYTHON:-python3}"
FORCE="${FORCE:-0}"

say() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# ---- Node -------------------------------------------------------------------------------------
command -v node >/dev/null || die "node is not installed (Node 20 or later is needed)"
command -v npm >/dev/null || die "npm is not installed"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node $(node --version) is too old: 20 or later is needed"

node_stamp="$E2E/node_modules/.warden-e2e-lock.sha256"
node_want="$(hash_of "$E2E/package.json" "$E2E/package-lock.json")-node$node_major"
if [ "$FORCE" != 1 ] && [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ] \
   && [ -x "$E2E/node_modules/.bin/mcp-server-filesystem" ] && [ -x "$E2E/node_modules/.bin/mcp-server-memory" ]; then
  say "node_modules is up to date"
else
  say "npm ci in tests/e2e"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
  for bin in mcp-server-filesystem mcp-server-memory; do
    [ -x "$E2E/node_modules/.bin/$bin" ] || die "npm ci did not install node_modules/.bin/$bin"
  done
  echo "$node_want" > "$node_stamp"
fi

# ---- Python -----------------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (Python 3.10 or later is needed)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" --version 2>&1) is too old: the mcp SDK needs Python 3.10 or later"

VENV="$E2E/.venv"
py_stamp="$VENV/.warden-e2e-requirements.sha256"
py_want="$(hash_of "$E2E/requirements.txt")-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$FORCE" != 1 ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ] && [ -x "$VENV/bin/python" ]; then
  say ".venv is up to date"
else
  if [ ! -x "$VENV/bin/python" ] || [ "$FORCE" = 1 ]; then
    rm -rf "$VENV"
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
      # Debian without python3-venv has no ensurepip: make the venv without pip and install into
      # it with the system pip (pip >= 22.3 has --python).
      rm -rf "$VENV"
      "$PYTHON" -m venv --without-pip "$VENV" || die "cannot create a venv with $PYTHON"
    fi
  fi
  if [ -x "$VENV/bin/pip" ] || "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    PIP=("$VENV/bin/python" -m pip)
  else
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "no pip for $PYTHON"
    PIP=("$PYTHON" -m pip --python "$VENV/bin/python")
  fi
  say "pip install -r tests/e2e/requirements.txt"
  "${PIP[@]}" install --disable-pip-version-check --no-input -q -r "$E2E/requirements.txt"
  "$VENV/bin/python" -c 'import mcp, pytest, pytest_timeout' || die "the venv cannot import mcp/pytest"
  echo "$py_want" > "$py_stamp"
fi

# ---- AgentDojo ---------------------------------------------------------------------------------
"$ROOT/scripts/install-agentdojo.sh"

say "ok: $(cd "$E2E" && node -p 'const l=require("./package-lock.json").packages; ["@modelcontextprotocol/sdk","@modelcontextprotocol/server-filesystem","@modelcontextprotocol/server-memory"].map(p=>p+"@"+l["node_modules/"+p].version).join(" ")' 2>/dev/null), mcp $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
