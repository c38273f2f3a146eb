//! The Acme engine, loaded once per test binary.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use warden_core::{Config, Engine, Sources};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Files under one folder.
struct Files(PathBuf);

impl Sources for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(ext))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The Acme configuration's engine.
pub fn acme() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let dir = repo().join("examples/acme");
            let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
            Arc::new(Engine::new(
                Config::load("warden.toml", &text, &Files(dir)).unwrap(),
            ))
        })
        .clone()
}

/// The Acme configuration with `extra` appended to its `warden.toml`.
#[allow(dead_code)]
pub fn acme_with(extra: &str) -> Arc<Engine> {
    let dir = repo().join("examples/acme");
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap() + extra;
    Arc::new(Engine::new(
        Config::load("warden.toml", &text, &Files(dir)).unwrap(),
    ))
}

/// A copy of the Acme configuration in `dir`, each file passed through `edit(path, text)`;
/// returns its engine.
#[allow(dead_code)]
pub fn acme_edited(dir: &Path, edit: impl Fn(&str, String) -> String) -> Arc<Engine> {
    let from = repo().join("examples/acme");
    for sub in ["", "policies", "approvers"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                let name = if sub.is_empty() {
                    e.file_name().to_string_lossy().to_string()
                } else {
                    format!("{sub}/{}", e.file_name().to_string_lossy())
                };
                let text = std::fs::read_to_string(e.path()).unwrap();
                std::fs::write(dir.join(&name), edit(&name, text)).unwrap();
            }
        }
    }
    let text = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    Arc::new(Engine::new(
        Config::load("warden.toml", &text, &Files(dir.to_path_buf())).unwrap(),
    ))
}
