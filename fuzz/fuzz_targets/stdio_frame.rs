//! The stdio framing and JSON-RPC check of `warden proxy` (`warden_mcp::stdio::frame`): the
//! bytes a client writes, framed into lines exactly as the proxy frames them and checked by
//! the same guard. The gateway behind it is not run (too slow per execution); what it receives
//! is checked instead: every forwarded line is one rmcp parses, and every answer is a JSON-RPC
//! error line.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;
use warden_mcp::stdio::frame::{GuardedLines, Step};

/// Small enough that the fuzzer reaches the oversized-line path.
const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    warden_fuzz::runtime().block_on(async {
        let mut lines = GuardedLines::new(data, MAX);
        while let Some(step) = lines.next_step().await {
            match step {
                Step::Forward(line) => {
                    assert!(line.len() <= MAX + 1, "{} bytes forwarded", line.len());
                    assert_eq!(line.last(), Some(&b'\n'));
                    let body = line.strip_suffix(b"\n").unwrap_or(&line);
                    let body = body.strip_suffix(b"\r").unwrap_or(body);
                    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
                    // rmcp parses every line it is given: none can vanish in it.
                    if let Err(e) = serde_json::from_slice::<ClientJsonRpcMessage>(body) {
                        let is_notification = serde_json::from_slice::<serde_json::Value>(body)
                            .ok()
                            .and_then(|v| v.as_object().cloned())
                            .is_some_and(|o| o.contains_key("method") && !o.contains_key("id"));
                        assert!(is_notification, "forwarded a line rmcp cannot parse: {e}");
                    }
                }
                Step::Reply(reply) => {
                    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
                    assert_eq!(v["jsonrpc"], "2.0");
                    assert!(v["error"]["code"].is_i64(), "{v}");
                }
            }
        }
    });
});
