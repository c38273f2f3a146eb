//! The change feed inside one process.

use tokio::sync::broadcast;

use crate::types::Change;

/// How many changes a slow subscriber may fall behind before it gets [`Change::Resync`]-worthy
/// lag (a `RecvError::Lagged`).
const CAPACITY: usize = 1024;

/// A broadcast of changes to every subscriber in this process.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    sender: broadcast::Sender<Change>,
}

impl Feed {
    pub(crate) fn new() -> Feed {
        Feed {
            sender: broadcast::channel(CAPACITY).0,
        }
    }

    /// Tells every subscriber (none listening is fine).
    pub(crate) fn send(&self, change: Change) {
        let _ = self.sender.send(change);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
