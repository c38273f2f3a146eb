//! `warden policy validate` and `warden policy test`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use std::sync::Arc;

use anyhow::Context;
use warden_core::Sources;
use warden_enforce::policytest::run_file;

use crate::fs::{load_engine, now_ms};

/// Policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate the configuration, catalog, directory and policies; report every error.
    Validate {
        /// The configuration file (warden.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the policy test cases kept beside the policies.
    Test {
        /// The configuration file (warden.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the Cedar schema generated for the configuration's catalog.
    Schema {
        /// The configuration file (warden.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Run a policy subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Validate { config } => {
            let (engine, _) = load_engine(&config)?;
            let c = engine.config();
            println!(
                "ok: {} policies, {} tools, {} agents, {} mission templates, {} users",
                c.policies.len(),
                c.catalog.tools().count(),
                c.agents.len(),
                c.templates.len(),
                c.directory.user_count()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Schema { config } => {
            let (engine, _) = load_engine(&config)?;
            print!(
                "{}",
                warden_core::policy::schema_text(&engine.config().catalog)
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { config } => {
            let (engine, sources) = load_engine(&config)?;
            let dir = engine.config().policy_tests.clone();
            let files = sources
                .list(&dir, ".toml")
                .map_err(|e| anyhow::anyhow!("cannot list policy tests in `{dir}`: {e}"))?;
            if files.is_empty() {
                anyhow::bail!("no policy tests (*.toml) in `{dir}`");
            }
            let engine = Arc::new(engine);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let (mut passed, mut failed) = (0, 0);
            for f in files {
                let text = sources
                    .read(&f)
                    .map_err(|e| anyhow::anyhow!("cannot read `{f}`: {e}"))?;
                for r in rt.block_on(run_file(&engine, &f, &text, now_ms())) {
                    if r.passed() {
                        passed += 1;
                        println!("ok   {}:{} {}", r.file, r.line, r.name);
                    } else {
                        failed += 1;
                        match &r.decision {
                            Ok(d) => println!(
                                "FAIL {}:{} {}: expected {}, got {} ({}){}",
                                r.file,
                                r.line,
                                r.name,
                                r.expect,
                                d.decision,
                                d.summary(),
                                if r.missing_policies.is_empty() {
                                    String::new()
                                } else {
                                    format!("; missing policies {}", r.missing_policies.join(", "))
                                }
                            ),
                            Err(e) => println!("FAIL {}:{} {}: {e}", r.file, r.line, r.name),
                        }
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
