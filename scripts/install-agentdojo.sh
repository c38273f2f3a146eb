#!/usr/bin/env bash
# Install what the AgentDojo benchmark (benchmarks/agentdojo) needs: a Python venv at
# benchmarks/agentdojo/.venv with benchmarks/agentdojo/requirements.txt (agentdojo==0.1.35).
# Needs Python >= 3.10 with venv or pip; reaches only PyPI. Idempotent: skipped when the
# requirements have not changed since the last successful install (FORCE=1 redoes it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/benchmarks/agentdojo"
VENV="$DIR/.venv"
PYTHON="${PYTHON:-python3}"
FORCE="${FORCE:-0}"

say() { printf 'install-agentdojo: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON is not installed (Python 3.10 or later is needed)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$("$PYTHON" --version 2>&1) is too old: agentdojo needs Python 3.10 or later"

stamp="$VENV/.warden-agentdojo-requirements.sha256"
want="$(sha256sum "$DIR/requirements.txt" | cut -d' ' -f1)-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$FORCE" != 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  say ".venv is up to date"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ] || [ "$FORCE" = 1 ]; then
  rm -rf "$VENV"
  say "creating $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
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
say "pip install -r benchmarks/agentdojo/requirements.txt"
"${PIP[@]}" install --disable-pip-version-check --no-input -q -r "$DIR/requirements.txt"
"$VENV/bin/python" -c 'import agentdojo.task_suite.load_suites' || die "the venv cannot import agentdojo"
echo "$want" > "$stamp"
say "ok: agentdojo $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("agentdojo"))')"
