#!/usr/bin/env bash
# Memory of one `warden proxy` beside a bare rmcp stdio proxy, in the same run (idle after
# initialize, and under a load of tools/call over stdio). See
# crates/warden-mcp/examples/proxy_memory.rs for what is measured.
#
#   scripts/proxy-memory.sh [--calls 10000] [--concurrency 16]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p warden -p warden-acme
cargo build --release -p warden-mcp --example bare_proxy --example proxy_memory
exec target/release/examples/proxy_memory "$@"
