//! A PostgreSQL cluster of a test's own, for tests that stop the database under Warden. Shared
//! by the store's outage tests and the `warden` binary's (`#[path]` from there).

use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL cluster of the test's own (`initdb` into a temporary folder, another port),
/// stopped on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    root: bool,
}

/// Run `command`; its output on failure.
pub fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The folder of `initdb` and `pg_ctl`: `WARDEN_TEST_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("WARDEN_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no initdb and pg_ctl under /usr/lib/postgresql/*/bin: install PostgreSQL's server \
             package or set WARDEN_TEST_PG_BIN"
        )
    })
}

impl Cluster {
    /// A new cluster, initialized and started.
    pub fn new() -> Cluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("warden-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = is_root();
        if root {
            run(Command::new("chown").arg("postgres:").arg(dir.path())).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster {
            dir,
            bin,
            port,
            root,
        };
        cluster
            .pg(&[
                "initdb",
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ])
            .unwrap();
        cluster.start();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg(&self, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(args[0]);
        let mut command = if self.root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        run(command.args(&args[1..]))
    }

    pub fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "-t",
            "120",
            "start",
        ])
        .unwrap();
    }

    pub fn stop(&self) {
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "-t",
            "120",
            "stop",
        ])
        .unwrap();
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg(&["pg_ctl", "-D", &self.data(), "-m", "immediate", "stop"]);
    }
}
