//! Per-stage counters, read by the progress display and the job summary.
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one stage, summed over its subtasks.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Records that entered the stage's chain.
    pub records_in: AtomicU64,
    /// Records that left the stage through a sink.
    pub records_out: AtomicU64,
    /// Batches that entered the stage.
    pub batches: AtomicU64,
    /// Time spent in the stage's steps, in nanoseconds (summed over subtasks).
    pub busy_ns: AtomicU64,
    /// How often a subtask found its output full and waited.
    pub backpressured: AtomicU64,
    /// Bytes read by a file source.
    pub bytes_read: AtomicU64,
    /// Total bytes a file source will read (0 when unknown).
    pub bytes_total: AtomicU64,
    /// Input records skipped by a lenient source.
    pub skipped: AtomicU64,
    /// Records that arrived after their windows had closed.
    pub late: AtomicU64,
    /// Records a process function sent to a side output (`OutputTag`) that nobody consumes.
    pub side_dropped: AtomicU64,
    /// Checkpoint barriers the stage's subtasks snapshotted at.
    pub snapshots: AtomicU64,
    /// The longest a subtask paused its processing to freeze its part of a checkpoint, in
    /// nanoseconds.
    pub snapshot_max_ns: AtomicU64,
    /// The longest a subtask took to load its state from a checkpoint before its first
    /// record, in nanoseconds.
    pub restore_max_ns: AtomicU64,
}

impl StageMetrics {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
