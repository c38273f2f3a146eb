#!/usr/bin/env bash
# AgentDojo v1.2.2 ground-truth replay through Warden: builds the traces, has `warden replay`
# decide every call, scores with AgentDojo's own checks and prints the scorecard.
#
#   benchmarks/agentdojo/run.sh                  every pair of the four suites (results.json)
#   benchmarks/agentdojo/run.sh --quick          a small fixed subset (results-quick.json)
#   benchmarks/agentdojo/run.sh --suite banking  one suite, repeatable (results-banking.json)
#
# Creates benchmarks/agentdojo/.venv (agentdojo==0.1.35 from PyPI) when missing and builds
# target/debug/warden when missing (WARDEN=path uses another binary). Traces go to
# benchmarks/agentdojo/traces/. Exits non-zero when the pipeline breaks (a replay error, an
# attack that succeeds with every injected call blocked), never because of the numbers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$HERE/.venv"

say() { printf 'agentdojo: %s\n' "$*" >&2; }

"$ROOT/scripts/install-agentdojo.sh"

WARDEN="${WARDEN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/warden}"
if [ ! -x "$WARDEN" ]; then
  say "building $WARDEN"
  (cd "$ROOT" && cargo build -q -p warden)
fi

"$WARDEN" policy validate --config "$HERE/pack/warden.toml" >&2
"$WARDEN" policy test --config "$HERE/pack/warden.toml" | tail -1 >&2
exec "$VENV/bin/python" "$HERE/bench.py" --warden "$WARDEN" "$@"
