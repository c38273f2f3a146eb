//! The configuration and catalog loader, with Cedar parsing and validation: the small
//! configuration of `fuzz/base/` in memory with one of its files replaced by the input.
//!
//! Input: the first byte picks the file (`warden.toml`, `catalog.toml`, `missions.toml`,
//! `directory.json`, `policies/default.cedar`, `policies/people.cedar`, or a new policy file);
//! the rest is its text.

#![no_main]

use libfuzzer_sys::fuzz_target;

const FILES: &[&str] = &[
    "warden.toml",
    "catalog.toml",
    "missions.toml",
    "directory.json",
    "policies/default.cedar",
    "policies/people.cedar",
    "policies/fuzz.cedar",
];

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let Some(path) = FILES.get(usize::from(*pick) % FILES.len()) else {
        return;
    };
    let text = String::from_utf8_lossy(rest).into_owned();
    let sources = warden_fuzz::sources_of(warden_fuzz::BASE_FILES, Some((*path, text)));
    if let Ok(config) = warden_fuzz::load(&sources) {
        // A configuration that loads builds an engine.
        let _ = warden_core::Engine::new(config);
    }
});
