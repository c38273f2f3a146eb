//! The trace reader: arbitrary text replayed as a trace against the Acme configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Trace files are read as UTF-8 text; anything else is refused before the reader.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Read, then replayed through the enforcement pipeline (on a store that keeps nothing).
    let Ok(steps) = warden_core::trace::steps("fuzz.jsonl", text, 0) else {
        return;
    };
    assert!(steps.len() <= text.lines().count());
    warden_fuzz::runtime().block_on(async {
        let replayer = warden_enforce::replay::Replayer::new(
            warden_fuzz::engine(),
            std::sync::Arc::new(warden_fuzz::Discard::default()),
        )
        .await
        .unwrap();
        if let Ok(replayed) = replayer.replay("fuzz.jsonl", text, 0).await {
            for r in &replayed {
                assert!(r.line >= 1);
            }
        }
    });
});
