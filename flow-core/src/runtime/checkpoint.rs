//! Checkpoint barriers: the coordinator asks for checkpoint `n`; every source subtask injects
//! [`Event::Barrier`]`(n)` into its chain between two batches (after the batch's watermark);
//! barriers travel through chains and exchanges in order with the data, exchanges align them
//! over their producers (`exchange::ExchangeInput`), and every sink subtask acknowledges `n`
//! once the barrier has passed through it. Checkpoint `n` is complete when every sink subtask
//! has acknowledged it or has finished.
//!
//! What operators and sinks persist at a barrier belongs to the durable-state layer
//! (`flow-state`); this module only moves barriers and tracks which checkpoints completed.
//!
//! [`Event::Barrier`]: crate::record::Event::Barrier
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A completed checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's id (1, 2, ...).
    pub id: u64,
    /// From the coordinator's request to the last sink's acknowledgement.
    pub duration: Duration,
}

/// The job's checkpoint coordinator.
pub(crate) struct Coordinator {
    /// How often a checkpoint is requested; `None`: never.
    pub(crate) interval: Option<Duration>,
    /// The highest checkpoint id requested so far (0: none).
    requested: AtomicU64,
    /// Per sink subtask, the highest checkpoint it acknowledged (`u64::MAX` once finished).
    acked: Vec<AtomicU64>,
    progress: Mutex<Progress>,
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
        Coordinator {
            interval,
            requested: AtomicU64::new(0),
            acked: (0..sinks).map(|_| AtomicU64::new(0)).collect(),
            progress: Mutex::new(Progress::default()),
        }
    }

    /// Asks for the next checkpoint; returns its id.
    pub(crate) fn request(&self) -> u64 {
        let mut p = self.progress.lock();
        let id = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        p.started.push_back((id, Instant::now()));
        id
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
            p.completed.push(CheckpointStats {
                id,
                duration: at.elapsed(),
            });
        }
    }

    /// The checkpoints completed so far, in order.
    pub(crate) fn completed(&self) -> Vec<CheckpointStats> {
        self.progress.lock().completed.clone()
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
