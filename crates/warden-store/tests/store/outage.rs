//! The database goes away and comes back: typed errors meanwhile, the same store value after.
//!
//! Both tests make their own outage and never touch the shared server: a small tmpfs that is
//! filled up under SQLite (a full disk; root can write through file modes, not through a full
//! disk), and a PostgreSQL cluster of their own (`initdb` into a temporary folder, another
//! port) that is stopped and started again. They run as root (as CI does) or as a user who may
//! mount and run `initdb`.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_store::{open, verify, Change, StoreError, VerifyOptions};

use crate::cluster::{run, Cluster};
use crate::support::input;

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()))
        .unwrap_or_else(|e| panic!("this test mounts a tmpfs to fill it (run as root): {e}"));
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(self.dir.path()));
    }
}

/// Writes until the disk is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_data())
        .is_ok()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_full_disk_then_space_again() {
    let disk = Tmpfs::new("4m");
    let url = format!("sqlite://{}", disk.dir.path().join("warden.db").display());
    let store = open(&url).await.unwrap();
    store.append((0..5).map(input).collect()).await.unwrap();

    let filler = disk.dir.path().join("filler");
    fill(&filler);
    let mut big = input(5);
    big.body = json!({"output": "x".repeat(512 * 1024)});
    let started = Instant::now();
    let error = store.append(vec![big.clone()]).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(7));
    // The writer survived the failed batch, and reads still work.
    assert_eq!(store.audit_tail_seq().await.unwrap(), 5);

    std::fs::remove_file(&filler).unwrap();
    let metas = store.append(vec![big]).await.unwrap();
    assert_eq!(metas[0].seq, 6);
    let report = verify(store.as_ref(), VerifyOptions::default())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.faults);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_then_started_again() {
    let cluster = tokio::task::spawn_blocking(Cluster::new).await.unwrap();
    let store = open(&cluster.url()).await.unwrap();
    let mut feed = store.subscribe();
    store.append(vec![input(0)]).await.unwrap();
    assert_eq!(store.spend("m1", "calls", 1, 10).await.unwrap(), Ok(9));

    cluster.stop();
    let started = Instant::now();
    let error = store.append(vec![input(1)]).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let error = store.spend("m1", "calls", 1, 10).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(store.ping().await.unwrap_err().is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "errors took {:?}",
        started.elapsed()
    );

    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(15);
    let metas = loop {
        match store.append(vec![input(2)]).await {
            Ok(metas) => break metas,
            Err(error) => {
                assert!(Instant::now() < deadline, "still failing: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(metas[0].seq, 2);
    assert_eq!(store.spend("m1", "calls", 1, 10).await.unwrap(), Ok(8));
    let report = verify(store.as_ref(), VerifyOptions::default())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.faults);

    // The change feed listens again: a revocation arrives (after a resync notice).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        store.revoke("m1", "after the outage").await.unwrap();
        let got = tokio::time::timeout(Duration::from_millis(700), async {
            loop {
                match feed.recv().await {
                    Ok(Change::Revoked(id)) if id == "m1" => return true,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        if got == Ok(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the feed did not come back");
    }
}
