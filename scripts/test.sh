#!/usr/bin/env bash
# Every test Warden has: formatting, lints, the Rust suites, docs, drift checks, the policy
# tests and scenario replays of the reference config, a quick AgentDojo replay, and the
# end-to-end tests against real MCP servers and clients. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s  [%s]\n' "$*" "$(date -u +%H:%M:%S)"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "warden-core stays pure (no tokio, sqlx, axum, hyper, reqwest)"
if cargo tree -p warden-core -e normal --prefix none | grep -E '^(tokio|sqlx|axum|hyper|reqwest) ' ; then
  echo "warden-core must not depend on an async runtime, a database driver or an HTTP stack" >&2
  exit 1
fi

step "cargo test (workspace)"
cargo test --workspace

step "cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "build the warden binary"
cargo build -p warden -p warden-acme
warden=target/debug/warden

step "generated files have not drifted"
"$warden" policy schema --config examples/acme/warden.toml > target/acme.cedarschema
diff -u examples/acme/schema.cedarschema target/acme.cedarschema

step "policy validate and policy test (Acme)"
"$warden" policy validate --config examples/acme/warden.toml
"$warden" policy test --config examples/acme/warden.toml

step "replay --check every Acme scenario"
"$warden" replay --config examples/acme/warden.toml --check --format json examples/acme/scenarios/*.jsonl > /dev/null

step "AgentDojo quick replay (benchmarks/agentdojo, a fixed subset of pairs through the pack)"
WARDEN="$warden" benchmarks/agentdojo/run.sh --quick
benchmarks/agentdojo/.venv/bin/python -m unittest discover -s benchmarks/agentdojo -p 'test_*.py'

step "fuzz smoke: every cargo-fuzz target for ${FUZZ_SECONDS:-30} s from the committed seeds"
scripts/fuzz-smoke.sh

if [ -x scripts/e2e.sh ]; then
  step "end-to-end tests against real MCP servers and clients"
  scripts/e2e.sh
fi

printf '\nall checks passed\n'
