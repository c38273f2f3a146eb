//! Slow tools, for tests of what happens to a call in flight (cancellation, the kill switch).
//!
//! `ACME_MCP_DELAY="read_thread=8000,query_logs=200"` makes each named tool (by the name the
//! server exposes: bare under `--server`, else `server.tool`) wait that many milliseconds
//! before it runs. A tool cancelled by the client while it waits (`notifications/cancelled`)
//! says so on stderr and does not run.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// The environment variable naming the slow tools.
pub const DELAY_ENV: &str = "ACME_MCP_DELAY";

/// The delays `text` names; entries that do not parse are ignored.
fn parse(text: &str) -> BTreeMap<String, Duration> {
    text.split(',')
        .filter_map(|entry| {
            let (tool, ms) = entry.split_once('=')?;
            let ms: u64 = ms.trim().parse().ok()?;
            Some((tool.trim().to_string(), Duration::from_millis(ms)))
        })
        .collect()
}

/// How long tool `name` waits before it runs (none: it does not).
pub(crate) fn of(name: &str) -> Option<Duration> {
    static DELAYS: OnceLock<BTreeMap<String, Duration>> = OnceLock::new();
    DELAYS
        .get_or_init(|| {
            std::env::var(DELAY_ENV)
                .map(|t| parse(&t))
                .unwrap_or_default()
        })
        .get(name)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_bad_ones_are_ignored() {
        let d = parse("read_thread=8000, forum.post_reply = 5,bad,x=y");
        assert_eq!(d.len(), 2);
        assert_eq!(d["read_thread"], Duration::from_millis(8000));
        assert_eq!(d["forum.post_reply"], Duration::from_millis(5));
    }
}
