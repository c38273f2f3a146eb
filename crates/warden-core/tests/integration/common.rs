use std::collections::HashMap;
use std::path::{Path, PathBuf};

use warden_core::{Config, Engine, Sources};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn acme_dir() -> PathBuf {
    repo().join("examples/acme")
}

/// Reads from a folder, with some files replaced or added in memory.
pub struct Overlay {
    pub base: PathBuf,
    pub files: HashMap<String, String>,
}

impl Sources for Overlay {
    fn read(&self, path: &str) -> Result<String, String> {
        if let Some(t) = self.files.get(path) {
            return Ok(t.clone());
        }
        std::fs::read_to_string(self.base.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = self
            .files
            .keys()
            .filter(|k| k.starts_with(&format!("{dir}/")) && k.ends_with(ext))
            .cloned()
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.base.join(dir)) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                let p = format!("{dir}/{n}");
                if n.ends_with(ext) && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

pub fn acme_text() -> String {
    std::fs::read_to_string(acme_dir().join("warden.toml")).unwrap()
}

pub fn load_with(
    main: &str,
    files: &[(&str, &str)],
) -> Result<Config, warden_core::error::ConfigError> {
    let o = Overlay {
        base: acme_dir(),
        files: files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    Config::load("warden.toml", main, &o)
}

pub fn acme() -> Engine {
    static ENGINE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let _ = ENGINE;
    Engine::new(load_with(&acme_text(), &[]).expect("the Acme configuration loads"))
}

/// A fixed clock for deterministic snapshots: 2026-11-20T09:00:00Z.
pub const NOW: i64 = 1_763_629_200_000;
