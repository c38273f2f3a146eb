#!/usr/bin/env bash
# why.sh TRACE MISSION-PREFIX: Warden's decisions and reasons for the calls of matching missions.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../../target/debug/warden" replay --config "$here/pack/warden.toml" --format json "$1" \
  | jq -r --arg m "$2" 'select(.mission | startswith($m)) | "\(.mission) \(.tool) \(.decision): \([.reasons[] | select(.outcome == "deny" or .outcome == "ask") | .policy + " " + .text] | join(" | "))"'
