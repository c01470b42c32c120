//! Per-subtask counters, read by the progress bar, the job summary, the REST API and the
//! Prometheus endpoint.
//!
//! Each subtask owns a [`SubtaskMetrics`] on a cache line of its own, so that two subtasks
//! never write the same line; the runtime adds to it once per batch or per step (never per
//! record, never under a lock). Readers load the counters with relaxed ordering: a reading is
//! a consistent-enough snapshot for rates and gauges, and exact once the job has ended.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The value of a watermark gauge before the first watermark.
pub const NO_WATERMARK: i64 = i64::MIN;

/// Counters of one subtask of a stage.
#[derive(Debug)]
#[repr(align(128))]
pub struct SubtaskMetrics {
    /// Records that entered the subtask's chain.
    pub records_in: AtomicU64,
    /// Records that left the chain into its sink or exchange.
    pub records_out: AtomicU64,
    /// Batches that entered the chain.
    pub batches: AtomicU64,
    /// Time spent in the subtask's steps, in nanoseconds.
    pub busy_ns: AtomicU64,
    /// How often the subtask found its output full and waited.
    pub backpressured: AtomicU64,
    /// Time spent waiting for room downstream, in nanoseconds.
    pub backpressured_ns: AtomicU64,
    /// Bytes read by a file source.
    pub bytes_read: AtomicU64,
    /// Checkpoint barriers the subtask snapshotted at.
    pub snapshots: AtomicU64,
    /// The longest the subtask paused its processing to freeze its part of a checkpoint, in
    /// nanoseconds.
    pub snapshot_max_ns: AtomicU64,
    /// How long the subtask took to load its state from a checkpoint before its first
    /// record, in nanoseconds.
    pub restore_max_ns: AtomicU64,
    /// How long the subtask took to load the rest of its restored state in the background,
    /// while processing (a lazy restore), from the start of its restore, in nanoseconds.
    pub restore_loaded_ns: AtomicU64,
    /// The last watermark that reached the subtask's input (ms; [`NO_WATERMARK`] before the
    /// first). A source stage's input has none: its watermarks start in its chain.
    pub watermark_in: AtomicI64,
    /// The last watermark the subtask's chain passed to its sink or exchange.
    pub watermark_out: AtomicI64,
    /// Entries of keyed state its operators hold in memory (keys, or key-window pairs), as
    /// of its last step.
    pub state_entries: AtomicU64,
    /// When the subtask finished, in ms since the Unix epoch (0 while it runs).
    pub finished_at_ms: AtomicU64,
}

impl Default for SubtaskMetrics {
    fn default() -> Self {
        SubtaskMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            backpressured: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            snapshots: AtomicU64::new(0),
            snapshot_max_ns: AtomicU64::new(0),
            restore_max_ns: AtomicU64::new(0),
            restore_loaded_ns: AtomicU64::new(0),
            watermark_in: AtomicI64::new(NO_WATERMARK),
            watermark_out: AtomicI64::new(NO_WATERMARK),
            state_entries: AtomicU64::new(0),
            finished_at_ms: AtomicU64::new(0),
        }
    }
}

/// Counters of one stage: one [`SubtaskMetrics`] per subtask, and the stage's rare events.
#[derive(Debug)]
pub struct StageMetrics {
    /// Each subtask's counters, by subtask index.
    pub subtasks: Box<[Arc<SubtaskMetrics>]>,
    /// Total bytes a file source will read (0 when unknown).
    pub bytes_total: AtomicU64,
    /// Total records a sized source (a bounded generator, a vector) will emit (0 when
    /// unknown).
    pub records_total: AtomicU64,
    /// Input records skipped by a lenient source.
    pub skipped: AtomicU64,
    /// Bytes a file sink wrote.
    pub bytes_written: AtomicU64,
    /// Records that arrived after their windows had closed.
    pub late: AtomicU64,
    /// Records a process function sent to a side output (`OutputTag`) that nobody consumes.
    pub side_dropped: AtomicU64,
}

impl Default for StageMetrics {
    fn default() -> Self {
        Self::new(1)
    }
}

impl StageMetrics {
    /// Counters for a stage of `parallelism` subtasks.
    pub fn new(parallelism: usize) -> Self {
        StageMetrics {
            subtasks: (0..parallelism.max(1))
                .map(|_| Arc::new(SubtaskMetrics::default()))
                .collect(),
            bytes_total: AtomicU64::new(0),
            records_total: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            late: AtomicU64::new(0),
            side_dropped: AtomicU64::new(0),
        }
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// The counters of subtask `i` (the last subtask's if `i` is out of range).
    pub fn subtask(&self, i: usize) -> &Arc<SubtaskMetrics> {
        &self.subtasks[i.min(self.subtasks.len() - 1)]
    }

    /// A counter summed over the subtasks.
    pub fn sum(&self, f: impl Fn(&SubtaskMetrics) -> &AtomicU64) -> u64 {
        self.subtasks.iter().map(|m| Self::get(f(m))).sum()
    }

    /// A counter's largest value over the subtasks.
    pub fn max(&self, f: impl Fn(&SubtaskMetrics) -> &AtomicU64) -> u64 {
        self.subtasks
            .iter()
            .map(|m| Self::get(f(m)))
            .max()
            .unwrap_or(0)
    }

    /// The stage's watermark: the smallest over its subtasks that have one and have not
    /// finished ([`NO_WATERMARK`] if none has).
    pub fn watermark(&self, f: impl Fn(&SubtaskMetrics) -> &AtomicI64) -> i64 {
        self.subtasks
            .iter()
            .filter(|m| m.finished_at_ms.load(Ordering::Relaxed) == 0)
            .map(|m| f(m).load(Ordering::Relaxed))
            .filter(|&w| w != NO_WATERMARK)
            .min()
            .or_else(|| {
                // All finished: the last watermarks they passed.
                self.subtasks
                    .iter()
                    .map(|m| f(m).load(Ordering::Relaxed))
                    .filter(|&w| w != NO_WATERMARK)
                    .min()
            })
            .unwrap_or(NO_WATERMARK)
    }
}

/// Where a subtask's wall time went while it waited, tracked between its steps: a step that
/// ends because its output is full starts a backpressured interval that the next step ends.
#[derive(Debug, Default)]
pub(crate) struct WaitClock {
    since: Option<Instant>,
}

impl WaitClock {
    /// The step that starts now ends any wait for room downstream.
    pub(crate) fn step_starts(&mut self, now: Instant, m: &SubtaskMetrics) {
        if let Some(t) = self.since.take() {
            m.backpressured_ns
                .fetch_add(now.duration_since(t).as_nanos() as u64, Ordering::Relaxed);
        }
    }

    /// The step that ends now waits for room downstream.
    pub(crate) fn backpressured(&mut self, now: Instant) {
        self.since = Some(now);
    }
}
