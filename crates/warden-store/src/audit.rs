//! The audit chain's writer: group commit and checkpoints.
//!
//! Every backend appends through one [`Writer`] task. Callers put their records on a queue
//! and await a reply; the writer takes everything queued (up to [`AuditConfig::max_batch`]
//! records), commits it in one transaction, and answers each caller with its own records'
//! places in the chain. An append returns only after its transaction committed. A failed
//! batch fails every caller in it, and the writer goes on: each batch reads the chain's head
//! inside its own transaction, so nothing is cached across a failure.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use crate::canonical::{record_bytes_with_body, record_hash, write_canonical};
use crate::checkpoint::{append_outside, make_checkpoint, AuditConfig};
use crate::error::StoreError;
use crate::types::{AuditInput, AuditRecordMeta, Checkpoint, Hash};

/// How long one database operation may take before it is reported as unavailable.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// How many appends may wait in the queue before callers wait to enqueue.
const QUEUE: usize = 16_384;

/// A record ready to insert: its place, its canonical body text and its hashes.
pub(crate) struct Sealed {
    pub seq: u64,
    pub input: AuditInput,
    pub body_text: String,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// Gives `inputs` their sequence numbers and hashes after the head `(seq, hash)`.
pub(crate) fn seal(head_seq: u64, head_hash: Hash, inputs: Vec<AuditInput>) -> Vec<Sealed> {
    let mut prev = head_hash;
    let mut seq = head_seq;
    let mut sealed = Vec::with_capacity(inputs.len());
    for input in inputs {
        seq += 1;
        let mut body = Vec::with_capacity(128);
        write_canonical(&mut body, &input.body);
        let bytes = record_bytes_with_body(seq, &input.kind, input.at_ms, &input.columns, &body);
        let hash = record_hash(&bytes, &prev);
        sealed.push(Sealed {
            seq,
            input,
            body_text: String::from_utf8(body).unwrap_or_default(),
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    sealed
}

/// When the batch being committed should end with a checkpoint, and the key that signs it.
pub(crate) struct CheckpointPlan<'a> {
    /// A checkpoint is due once the chain reaches this seq.
    pub due_at: u64,
    /// The signing key.
    pub key: Option<&'a SigningKey>,
}

impl CheckpointPlan<'_> {
    /// The checkpoint of a batch that ends at `last`, if one is due.
    pub(crate) fn make(&self, last: Option<&AuditRecordMeta>) -> Option<Checkpoint> {
        last.filter(|last| last.seq >= self.due_at)
            .map(|last| make_checkpoint(last.seq, last.hash, now_ms(), self.key))
    }
}

/// What one committed batch produced.
pub(crate) struct Committed {
    /// The records' places, in order.
    pub metas: Vec<AuditRecordMeta>,
    /// The checkpoint stored in the same transaction, if one was due.
    pub checkpoint: Option<Checkpoint>,
}

/// What a backend does for the writer.
#[async_trait]
pub(crate) trait ChainBackend: Send + Sync + 'static {
    /// In one transaction: reads the head, seals `inputs` after it, inserts them, moves the
    /// head, stores the checkpoint the plan makes due, commits.
    async fn commit(
        &self,
        inputs: Vec<AuditInput>,
        plan: Option<&CheckpointPlan<'_>>,
    ) -> Result<Committed, StoreError>;
    /// The last record's place, if any.
    async fn tail(&self) -> Result<Option<AuditRecordMeta>, StoreError>;
    /// The highest checkpointed sequence number (0 without checkpoints).
    async fn last_checkpoint_seq(&self) -> Result<u64, StoreError>;
    /// Stores a checkpoint in the database.
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
}

/// Runs `future` with the operation timeout; a timeout is [`StoreError::Unavailable`].
pub(crate) async fn timed<T>(
    future: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer from the database within {} s",
            OP_TIMEOUT.as_secs()
        ))),
    }
}

/// The store's clock, for what the chain does not hash (checkpoint and revocation times).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type AppendReply = oneshot::Sender<Result<Vec<AuditRecordMeta>, StoreError>>;
type CheckpointReply = oneshot::Sender<Result<Option<Checkpoint>, StoreError>>;

enum Job {
    Append(Vec<AuditInput>, AppendReply),
    Checkpoint(CheckpointReply),
}

/// The handle to the writer task. Dropping it stops the task once the queue is drained.
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer for `backend`.
    pub(crate) fn spawn<B: ChainBackend>(
        backend: Arc<B>,
        config: AuditConfig,
        key: Option<SigningKey>,
    ) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let outside = config.checkpoint_file.clone().map(Outside::spawn);
        tokio::spawn(run(backend, config, key, outside, jobs));
        Writer { queue }
    }

    /// Appends `inputs` and waits until they are committed.
    pub(crate) async fn append(
        &self,
        inputs: Vec<AuditInput>,
    ) -> Result<Vec<AuditRecordMeta>, StoreError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Append(inputs, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Makes a checkpoint of the current tail now (none if the chain is empty).
    pub(crate) async fn checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job::Checkpoint(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The copy of checkpoints kept outside the database: one task appends them to the file in
/// order, off the writer's path (a batch does not wait for the file).
struct Outside {
    queue: mpsc::UnboundedSender<OutsideJob>,
}

enum OutsideJob {
    Write(Checkpoint),
    /// Answers once every write before it is on disk, with the first error since the last
    /// flush.
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

impl Outside {
    fn spawn(path: std::path::PathBuf) -> Outside {
        let (queue, mut jobs) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut failed: Option<StoreError> = None;
            while let Some(job) = jobs.recv().await {
                match job {
                    OutsideJob::Write(checkpoint) => {
                        let path = path.clone();
                        let result =
                            tokio::task::spawn_blocking(move || append_outside(&path, &checkpoint))
                                .await
                                .unwrap_or_else(|e| {
                                    Err(StoreError::File {
                                        path: String::new(),
                                        reason: e.to_string(),
                                    })
                                });
                        if let Err(error) = result {
                            tracing::warn!(%error, "checkpoint not written outside the database");
                            failed.get_or_insert(error);
                        }
                    }
                    OutsideJob::Flush(reply) => {
                        let _ = reply.send(failed.take().map_or(Ok(()), Err));
                    }
                }
            }
        });
        Outside { queue }
    }

    fn write(&self, checkpoint: Checkpoint) {
        let _ = self.queue.send(OutsideJob::Write(checkpoint));
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(OutsideJob::Flush(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

struct State<B> {
    backend: Arc<B>,
    config: AuditConfig,
    key: Option<SigningKey>,
    outside: Option<Outside>,
    /// The highest sequence number checkpointed, once known.
    checkpointed: Option<u64>,
}

async fn run<B: ChainBackend>(
    backend: Arc<B>,
    config: AuditConfig,
    key: Option<SigningKey>,
    outside: Option<Outside>,
    mut jobs: mpsc::Receiver<Job>,
) {
    let interval = config.interval();
    let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let max_batch = config.max_batch.max(1);
    let mut state = State {
        backend,
        config,
        key,
        outside,
        checkpointed: None,
    };
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let mut records = job_len(&job);
                let mut batch = vec![job];
                while records < max_batch {
                    match jobs.try_recv() {
                        Ok(job) => {
                            records += job_len(&job);
                            batch.push(job);
                        }
                        Err(_) => break,
                    }
                }
                state.process(batch).await;
            }
            _ = ticker.tick(), if interval.is_some() => {
                if let Err(error) = state.checkpoint_if_new().await {
                    tracing::warn!(%error, "audit checkpoint by time failed");
                }
            }
        }
    }
}

/// How many records a job adds to a batch.
fn job_len(job: &Job) -> usize {
    match job {
        Job::Append(inputs, _) => inputs.len(),
        Job::Checkpoint(_) => 1,
    }
}

impl<B: ChainBackend> State<B> {
    async fn process(&mut self, batch: Vec<Job>) {
        let mut inputs = Vec::new();
        let mut waiting = Vec::new();
        let mut checkpoints = Vec::new();
        for job in batch {
            match job {
                Job::Append(records, reply) => {
                    waiting.push((records.len(), reply));
                    inputs.extend(records);
                }
                Job::Checkpoint(reply) => checkpoints.push(reply),
            }
        }
        if !inputs.is_empty() {
            let due_at = match self.config.checkpoint_every {
                0 => None,
                every => match self.checkpointed().await {
                    Ok(seq) => Some(seq.saturating_add(every)),
                    Err(error) => {
                        tracing::warn!(%error, "last checkpoint unknown; none in this batch");
                        None
                    }
                },
            };
            let plan = due_at.map(|due_at| CheckpointPlan {
                due_at,
                key: self.key.as_ref(),
            });
            let result = timed(self.backend.commit(inputs, plan.as_ref())).await;
            match result {
                Ok(committed) => {
                    let mut metas = committed.metas.into_iter();
                    for (count, reply) in waiting {
                        let mine: Vec<AuditRecordMeta> = metas.by_ref().take(count).collect();
                        let _ = reply.send(Ok(mine));
                    }
                    if let Some(checkpoint) = committed.checkpoint {
                        self.checkpointed = Some(checkpoint.seq);
                        if let Some(outside) = &self.outside {
                            outside.write(checkpoint);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "audit batch failed");
                    for (_, reply) in waiting {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        for reply in checkpoints {
            let result = match timed(self.backend.tail()).await {
                Ok(Some(tail)) => self.checkpoint(tail).await.map(Some),
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            };
            let _ = reply.send(result);
        }
    }

    async fn checkpointed(&mut self) -> Result<u64, StoreError> {
        match self.checkpointed {
            Some(seq) => Ok(seq),
            None => {
                let seq = timed(self.backend.last_checkpoint_seq()).await?;
                self.checkpointed = Some(seq);
                Ok(seq)
            }
        }
    }

    async fn checkpoint_if_new(&mut self) -> Result<(), StoreError> {
        let checkpointed = self.checkpointed().await?;
        if let Some(tail) = timed(self.backend.tail()).await? {
            if tail.seq > checkpointed {
                self.checkpoint(tail).await?;
            }
        }
        Ok(())
    }

    /// A checkpoint in its own transaction (on demand, or by time), written outside and
    /// flushed before it returns.
    async fn checkpoint(&mut self, at: AuditRecordMeta) -> Result<Checkpoint, StoreError> {
        let checkpoint = make_checkpoint(at.seq, at.hash, now_ms(), self.key.as_ref());
        timed(self.backend.save_checkpoint(&checkpoint)).await?;
        self.checkpointed = Some(at.seq.max(self.checkpointed.unwrap_or(0)));
        if let Some(outside) = &self.outside {
            outside.write(checkpoint.clone());
            outside.flush().await?;
        }
        Ok(checkpoint)
    }
}
