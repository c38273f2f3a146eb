//! The trace reader: arbitrary text replayed as a trace against the Acme configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Trace files are read as UTF-8 text; anything else is refused before the reader.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let engine = warden_fuzz::engine();
    if let Ok(replayed) = warden_core::trace::replay(&engine, "fuzz.jsonl", text, 0) {
        for r in &replayed {
            assert!(r.line >= 1);
        }
    }
});
