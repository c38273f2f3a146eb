//! File access for the core's [`warden_core::Sources`], relative to the configuration file.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use warden_core::{Config, Engine, Sources};

/// Reads files relative to a base folder.
pub struct FsSources {
    base: PathBuf,
}

impl FsSources {
    fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}

impl Sources for FsSources {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.resolve(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let rd = std::fs::read_dir(self.resolve(dir)).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| e.to_string())?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(ext) && e.path().is_file() {
                out.push(format!("{}/{}", dir.trim_end_matches('/'), name));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Load a configuration and build the engine. Errors list every problem found.
pub fn load_engine(config: &Path) -> anyhow::Result<(Engine, FsSources)> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read `{}`", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let sources = FsSources { base };
    let name = config.display().to_string();
    let cfg = Config::load(&name, &text, &sources).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((Engine::new(cfg), sources))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
