//! `warden migrate` (bring a store's schema up to date) and `warden keygen` (the Ed25519 key
//! pair that signs audit checkpoints).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::audit_cmd::StoreArgs;
use crate::store_cfg::migrate_store;

/// Arguments of `warden migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// Arguments of `warden keygen`: `--out PREFIX`, or `--private FILE --public FILE`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes `PREFIX.pem` (private) and `PREFIX.pub.pem` (public).
    #[arg(long, value_name = "PREFIX", conflicts_with_all = ["private", "public"], required_unless_present_any = ["private", "public"])]
    out: Option<PathBuf>,
    /// The private key file (PKCS#8 PEM, readable by its owner only).
    #[arg(long, value_name = "FILE", requires = "public")]
    private: Option<PathBuf>,
    /// The public key file (SPKI PEM), for `warden audit verify --public-key`.
    #[arg(long, value_name = "FILE", requires = "private")]
    public: Option<PathBuf>,
}

/// Runs the migrations of the store and prints the schema version.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let target = args.store.target()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let version = runtime.block_on(migrate_store(&target))?;
    println!("ok: schema version {version} ({})", target.display_url());
    Ok(ExitCode::SUCCESS)
}

/// Writes a new key pair and prints its key id. Refuses to overwrite either file.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (private, public) = match (args.out, args.private, args.public) {
        (Some(prefix), None, None) => (
            with_suffix(&prefix, ".pem"),
            with_suffix(&prefix, ".pub.pem"),
        ),
        (None, Some(private), Some(public)) => (private, public),
        _ => bail!("give `--out PREFIX`, or both `--private FILE` and `--public FILE`"),
    };
    if private == public {
        bail!("the private and public key files must differ");
    }
    for path in [&private, &public] {
        if path.exists() {
            bail!(
                "`{}` exists; Warden never overwrites a key: move it aside or choose another name",
                path.display()
            );
        }
    }
    let key = warden_store::generate_keypair()?;
    warden_store::save_signing_key(&private, &key)?;
    if let Err(e) = warden_store::save_verifying_key(&public, &key.verifying_key()) {
        // Leave no private key whose public half was never written.
        let _ = std::fs::remove_file(&private);
        return Err(e.into());
    }
    println!(
        "key id {}\nprivate key {} (keep it secret; `signing_key` in [audit])\npublic key  {} (for `warden audit verify --public-key`)",
        warden_store::key_id(&key.verifying_key()),
        private.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}
