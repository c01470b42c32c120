//! Checkpoint barriers: the coordinator asks for checkpoint `n`; every source subtask injects
//! [`Event::Barrier`]`(n)` into its chain between two batches (after the batch's watermark);
//! barriers travel through chains and exchanges in order with the data, exchanges align them
//! over their producers (`exchange::ExchangeInput`), and every sink subtask acknowledges `n`
//! once the barrier has passed through it. Checkpoint `n` is complete when every sink subtask
//! has acknowledged it or has finished.
//!
//! With checkpoints persisted (`--checkpoint-dir`), a completed checkpoint goes to the writer
//! (`persist`), which makes it durable; this module moves barriers and tracks completion.
//!
//! [`Event::Barrier`]: crate::record::Event::Barrier
use super::persist::{ToWriter, WriterShared};
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use super::snapshot::{CheckpointStats, FailedCheckpoint};

/// The job's checkpoint coordinator.
pub(crate) struct Coordinator {
    /// How often a checkpoint is requested; `None`: never.
    pub(crate) interval: Option<Duration>,
    /// The highest checkpoint id requested so far (0: none).
    requested: AtomicU64,
    /// The id before the first checkpoint of this run.
    base: u64,
    /// Per sink subtask, the highest checkpoint it acknowledged (`u64::MAX` once finished).
    acked: Vec<AtomicU64>,
    progress: Mutex<Progress>,
    /// The checkpoint writer, when checkpoints are persisted.
    writer: Option<(Sender<ToWriter>, Arc<WriterShared>)>,
}

#[derive(Default)]
struct Progress {
    /// When each requested, not yet completed checkpoint was requested, oldest first.
    started: std::collections::VecDeque<(u64, Instant)>,
    completed: Vec<CheckpointStats>,
}

impl Coordinator {
    /// A coordinator for a job with `sinks` sink subtasks.
    pub(crate) fn new(interval: Option<Duration>, sinks: usize) -> Self {
        Self::persisting(interval, sinks, 0, None)
    }

    /// A coordinator whose first checkpoint is `after + 1`, sending completed checkpoints to
    /// `writer` to be made durable.
    pub(crate) fn persisting(
        interval: Option<Duration>,
        sinks: usize,
        after: u64,
        writer: Option<(Sender<ToWriter>, Arc<WriterShared>)>,
    ) -> Self {
        Coordinator {
            interval,
            requested: AtomicU64::new(after),
            base: after,
            acked: (0..sinks).map(|_| AtomicU64::new(after)).collect(),
            progress: Mutex::new(Progress::default()),
            writer,
        }
    }

    /// The number of sink subtasks.
    pub(crate) fn sinks(&self) -> usize {
        self.acked.len()
    }

    /// An error of the checkpoint writer that fails the job.
    pub(crate) fn writer_failed(&self) -> Option<crate::error::Error> {
        self.writer.as_ref().and_then(|w| w.1.failed.lock().take())
    }

    /// Where subtasks send their checkpoint parts, when checkpoints are persisted.
    pub(crate) fn writer(&self) -> Option<&Sender<ToWriter>> {
        self.writer.as_ref().map(|w| &w.0)
    }

    /// Asks for the next checkpoint; returns its id.
    pub(crate) fn request(&self) -> u64 {
        let mut p = self.progress.lock();
        let id = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        p.started.push_back((id, Instant::now()));
        id
    }

    /// Whether persisted checkpoint `id` is settled: `Some(Ok)` once durable, `Some(Err)` if
    /// it failed, `None` while on its way (or when checkpoints are not persisted).
    pub(crate) fn durable(&self, id: u64) -> Option<crate::error::Result<()>> {
        let (_, shared) = self.writer.as_ref()?;
        if shared.settled.load(Ordering::Acquire) < id {
            return None;
        }
        if shared.completed.lock().iter().any(|c| c.id == id) {
            return Some(Ok(()));
        }
        let why = shared
            .failures
            .lock()
            .iter()
            .find(|f| f.id == id)
            .map_or_else(|| "it did not complete".to_string(), |f| f.error.clone());
        Some(Err(crate::error::Error::Checkpoint(format!(
            "checkpoint {id}, taken to stop the job, failed ({why}); restore resumes from the \
             one before"
        ))))
    }

    /// The checkpoint id the job started after (the newest on disk when it restored).
    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Whether a persisted checkpoint is still on its way to disk: the next is requested
    /// only after it (one checkpoint at a time, Flink's default), so checkpoints never queue
    /// behind each other and a slow write stretches the interval instead of the latency.
    pub(crate) fn in_flight(&self) -> bool {
        match &self.writer {
            Some((_, shared)) => {
                let settled = shared.settled.load(Ordering::Acquire).max(self.base);
                self.requested() > settled
            }
            None => false,
        }
    }

    /// The highest checkpoint id requested so far.
    pub(crate) fn requested(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// Sink subtask `sink` let barrier `id` pass.
    pub(crate) fn ack(&self, sink: usize, id: u64) {
        if let Some(a) = self.acked.get(sink) {
            a.fetch_max(id, Ordering::AcqRel);
        }
        self.complete();
    }

    /// Sink subtask `sink` finished: it acknowledges every later checkpoint.
    pub(crate) fn finished(&self, sink: usize) {
        self.ack(sink, u64::MAX);
    }

    /// Records the checkpoints every sink has acknowledged.
    fn complete(&self) {
        let done = self
            .acked
            .iter()
            .map(|a| a.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let mut p = self.progress.lock();
        while let Some(&(id, at)) = p.started.front() {
            if id > done {
                break;
            }
            p.started.pop_front();
            match &self.writer {
                Some((tx, _)) => {
                    let _ = tx.send(ToWriter::Complete { id, requested: at });
                }
                None => p.completed.push(CheckpointStats {
                    id,
                    duration: at.elapsed(),
                    write: Duration::ZERO,
                    bytes: 0,
                    total_bytes: 0,
                    pause: Duration::ZERO,
                }),
            }
        }
    }

    /// The checkpoints completed so far, in order.
    pub(crate) fn failed(&self) -> Vec<FailedCheckpoint> {
        match &self.writer {
            Some((_, shared)) => shared.failures.lock().clone(),
            None => Vec::new(),
        }
    }

    /// The highest checkpoint id requested so far, and whether one is being written.
    pub(crate) fn pending(&self) -> Option<u64> {
        self.in_flight().then(|| self.requested())
    }

    pub(crate) fn completed(&self) -> Vec<CheckpointStats> {
        match &self.writer {
            Some((_, shared)) => shared.completed.lock().clone(),
            None => self.progress.lock().completed.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_completes_when_every_sink_acknowledged_or_finished() {
        let c = Coordinator::new(None, 2);
        assert_eq!(c.request(), 1);
        assert_eq!(c.request(), 2);
        c.ack(0, 1);
        assert!(c.completed().is_empty());
        c.ack(1, 2);
        assert_eq!(c.completed().iter().map(|s| s.id).collect::<Vec<_>>(), [1]);
        c.finished(0);
        assert_eq!(
            c.completed().iter().map(|s| s.id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(c.request(), 3);
        c.finished(1);
        assert_eq!(c.completed().len(), 3);
    }
}
