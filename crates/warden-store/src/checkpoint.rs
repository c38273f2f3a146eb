//! Checkpoints: signing keys, the signed message, and the copy kept outside the database.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::types::{Checkpoint, Hash};

/// Where the signing key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A PKCS#8 PEM file, as [`save_signing_key`] writes it.
    Path(PathBuf),
    /// A key already loaded.
    Key(Box<SigningKey>),
}

/// How the audit chain is checkpointed.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The Ed25519 key that signs checkpoints. Without one, checkpoints are still made and kept
    /// outside, unsigned: they detect a cut tail, but not a forger who can write that file.
    pub signing_key: Option<KeySource>,
    /// A checkpoint after this many records (0: never by count).
    pub checkpoint_every: u64,
    /// A checkpoint after this many seconds with new records (0: never by time).
    pub checkpoint_seconds: u64,
    /// The file outside the database where each checkpoint is appended as one JSON line.
    pub checkpoint_file: Option<PathBuf>,
    /// The most records one transaction takes from the queue.
    pub max_batch: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            signing_key: None,
            checkpoint_every: 1000,
            checkpoint_seconds: 60,
            checkpoint_file: None,
            max_batch: 2048,
        }
    }
}

impl AuditConfig {
    /// The checkpoint interval as a duration, if checkpoints are made by time.
    pub(crate) fn interval(&self) -> Option<Duration> {
        (self.checkpoint_seconds > 0).then(|| Duration::from_secs(self.checkpoint_seconds))
    }

    /// Loads the signing key, if one is configured.
    pub(crate) fn load_key(&self) -> Result<Option<SigningKey>, StoreError> {
        match &self.signing_key {
            None => Ok(None),
            Some(KeySource::Key(key)) => Ok(Some((**key).clone())),
            Some(KeySource::Path(path)) => load_signing_key(path).map(Some),
        }
    }
}

/// A new random Ed25519 signing key, from the operating system's generator.
pub fn generate_keypair() -> Result<SigningKey, StoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| StoreError::Key {
        path: String::new(),
        reason: format!("no randomness from the operating system: {e}"),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The id of a public key: the first 16 hexadecimal characters of SHA-256 of its 32 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex::encode(&digest[..8])
}

fn key_error(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Key {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Writes a signing key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), readable by its owner
/// only. Refuses to overwrite an existing file.
pub fn save_signing_key(path: &Path, key: &SigningKey) -> Result<(), StoreError> {
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| key_error(path, e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| key_error(path, e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, e))
}

/// Reads a signing key written by [`save_signing_key`] (or `openssl genpkey -algorithm ed25519`).
pub fn load_signing_key(path: &Path) -> Result<SigningKey, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    SigningKey::from_pkcs8_pem(&text)
        .map_err(|e| key_error(path, format!("not a PKCS#8 Ed25519 private key: {e}")))
}

/// Writes a public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`). Refuses to overwrite.
pub fn save_verifying_key(path: &Path, key: &VerifyingKey) -> Result<(), StoreError> {
    let pem = key
        .to_public_key_pem(Default::default())
        .map_err(|e| key_error(path, e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| key_error(path, e))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| key_error(path, e))
}

/// Reads a public key written by [`save_verifying_key`].
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    VerifyingKey::from_public_key_pem(&text)
        .map_err(|e| key_error(path, format!("not an SPKI Ed25519 public key: {e}")))
}

/// The bytes a checkpoint's signature covers: the UTF-8 text
/// `warden-audit-checkpoint/v1\n{seq}\n{hash}\n{at_ms}\n{key_id}` with `seq` and `at_ms` in
/// decimal and `hash` in lowercase hexadecimal.
pub fn signed_message(seq: u64, hash: &Hash, at_ms: i64, key_id: &str) -> Vec<u8> {
    format!(
        "warden-audit-checkpoint/v1\n{seq}\n{}\n{at_ms}\n{key_id}",
        hash.to_hex()
    )
    .into_bytes()
}

/// Makes a checkpoint of the chain at `seq` with `hash`, signed when a key is given.
pub fn make_checkpoint(seq: u64, hash: Hash, at_ms: i64, key: Option<&SigningKey>) -> Checkpoint {
    match key {
        None => Checkpoint {
            seq,
            hash,
            at_ms,
            key_id: None,
            signature: None,
        },
        Some(key) => {
            let id = key_id(&key.verifying_key());
            let signature = key.sign(&signed_message(seq, &hash, at_ms, &id));
            Checkpoint {
                seq,
                hash,
                at_ms,
                key_id: Some(id),
                signature: Some(hex::encode(signature.to_bytes())),
            }
        }
    }
}

/// Whether a checkpoint's signature verifies with `key`. An unsigned checkpoint does not.
pub fn verify_checkpoint(checkpoint: &Checkpoint, key: &VerifyingKey) -> bool {
    let (Some(id), Some(signature)) = (&checkpoint.key_id, &checkpoint.signature) else {
        return false;
    };
    let Ok(bytes) = hex::decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&bytes) else {
        return false;
    };
    let message = signed_message(checkpoint.seq, &checkpoint.hash, checkpoint.at_ms, id);
    key.verify(&message, &signature).is_ok()
}

/// Appends a checkpoint to the outside file as one JSON line, and syncs it to disk.
pub fn append_outside(path: &Path, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    let file_error = |e: std::io::Error| StoreError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut line =
        serde_json::to_vec(checkpoint).map_err(|e| StoreError::Invalid(e.to_string()))?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(file_error)?;
    file.write_all(&line).map_err(file_error)?;
    file.sync_data().map_err(file_error)
}

/// Reads every checkpoint of an outside file. A line that does not parse is an error: the file
/// is evidence, and a damaged line must be looked at.
pub fn read_outside(path: &Path) -> Result<Vec<Checkpoint>, StoreError> {
    let file_error = |reason: String| StoreError::File {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| file_error(e.to_string()))?;
    let mut checkpoints = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| file_error(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let checkpoint: Checkpoint = serde_json::from_str(&line)
            .map_err(|e| file_error(format!("line {}: {e}", index + 1)))?;
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_keypair().unwrap();
        save_signing_key(&dir.path().join("k.pem"), &key).unwrap();
        save_verifying_key(&dir.path().join("k.pub"), &key.verifying_key()).unwrap();
        let loaded = load_signing_key(&dir.path().join("k.pem")).unwrap();
        let public = load_verifying_key(&dir.path().join("k.pub")).unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
        let checkpoint = make_checkpoint(3, Hash([7; 32]), 5, Some(&loaded));
        assert!(verify_checkpoint(&checkpoint, &public));
        let mut forged = checkpoint.clone();
        forged.seq = 4;
        assert!(!verify_checkpoint(&forged, &public));
        assert!(save_signing_key(&dir.path().join("k.pem"), &key).is_err());
    }
}
