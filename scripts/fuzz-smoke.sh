#!/usr/bin/env bash
# A short fuzzing pass over every cargo-fuzz target (fuzz/): each runs for FUZZ_SECONDS
# (default 30) from the seeds in fuzz/corpus/<target>, and any crash, hang (10 s per input) or
# memory blow-up (2 GiB) fails the script. New inputs go to a scratch folder, never into the
# committed seeds; a failing input is kept in fuzz/artifacts/<target>/.
#
# Installs cargo-fuzz from crates.io when it is missing. No nightly toolchain: the stable
# compiler is allowed the unstable flags cargo-fuzz uses through RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

seconds="${FUZZ_SECONDS:-30}"
targets=(stdio_frame http_request trace_reader config_loader decoders)
export RUSTC_BOOTSTRAP=1

# No sanitizer: the code under test is safe Rust, so address checks would only halve the
# executions; panics, overflows (debug assertions), hangs and memory limits are still caught.
fuzz=(cargo fuzz run --sanitizer none --debug-assertions)

cargo fuzz build --sanitizer none --debug-assertions
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  printf '\n--> fuzz %s for %ss\n' "$t" "$seconds"
  mkdir -p "$scratch/$t"
  "${fuzz[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
printf '\nfuzz smoke: no crash in %s targets\n' "${#targets[@]}"
