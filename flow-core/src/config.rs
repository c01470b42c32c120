//! How a job runs: parallelism, key groups, batch and chunk sizes, reporting.

/// How a job runs. Build it with the chained setters.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) name: String,
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u32,
    pub(crate) batch_size: usize,
    pub(crate) chunk_bytes: u64,
    pub(crate) pre_aggregate_capacity: usize,
    pub(crate) progress: bool,
    pub(crate) report: bool,
    pub(crate) plan_only: Option<PlanFormat>,
    pub(crate) barrier_interval: Option<std::time::Duration>,
    pub(crate) watermark_interval: usize,
    pub(crate) checkpoint_dir: Option<std::path::PathBuf>,
    pub(crate) restore: Option<Restore>,
    pub(crate) checkpoints_retained: usize,
    pub(crate) savepoint_dir: Option<std::path::PathBuf>,
    pub(crate) tolerable_checkpoint_failures: u32,
    pub(crate) checkpoint_mode: CheckpointMode,
    pub(crate) state_memory: Option<u64>,
    pub(crate) state_dir: Option<std::path::PathBuf>,
}

/// How operators with several input channels treat checkpoint barriers
/// ([`Config::checkpoint_mode`]), as Flink's `CheckpointingMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum CheckpointMode {
    /// Barriers are aligned: once a channel delivered barrier `n`, its later records wait
    /// (buffered) until every channel delivered `n`, so the snapshot holds exactly the
    /// records before the barrier and a restored job counts each record once.
    #[default]
    ExactlyOnce,
    /// No alignment: records of a channel that delivered barrier `n` go on at once and the
    /// barrier follows once every channel delivered it. No record waits (lower latency under
    /// skew and backpressure), but a snapshot may hold records after the barrier, which a
    /// restored job then processes again: their effects on state may count twice. Part-file
    /// output stays transactional (nothing uncommitted is published), yet may repeat rows.
    AtLeastOnce,
}

/// Which checkpoint a job restores ([`Config::restore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restore {
    /// The newest complete checkpoint in the checkpoint directory; a fresh start (said on
    /// stderr) when there is none.
    Latest,
    /// This checkpoint of the checkpoint directory.
    Checkpoint(u64),
    /// The newest complete checkpoint of another directory, such as a savepoint written with
    /// [`Config::savepoint_dir`]: it is copied into the (empty, or at least not holding a
    /// checkpoint of that id) checkpoint directory first.
    Path(std::path::PathBuf),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "flow-job".into(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_parallelism: flow_state::DEFAULT_MAX_PARALLELISM,
            batch_size: 1024,
            chunk_bytes: 1 << 16,
            pre_aggregate_capacity: 1 << 17,
            progress: false,
            report: false,
            plan_only: None,
            barrier_interval: None,
            watermark_interval: 4096,
            checkpoint_dir: None,
            restore: None,
            checkpoints_retained: 1,
            savepoint_dir: None,
            tolerable_checkpoint_failures: 3,
            checkpoint_mode: CheckpointMode::ExactlyOnce,
            state_memory: None,
            state_dir: None,
        }
    }
}

impl Config {
    /// The job's name, shown in plans, progress and logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Parallel subtasks per stage and threads in the pool (default: available cores).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
    /// Number of key groups, the upper bound for rescaling keyed state (default 128).
    pub fn max_parallelism(mut self, n: u32) -> Self {
        self.max_parallelism = n.max(1);
        self
    }
    /// Records per batch sent through an exchange (default 1024).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Bytes per chunk that file readers take at a time (default 64 KiB).
    pub fn chunk_bytes(mut self, n: u64) -> Self {
        self.chunk_bytes = n.max(1);
        self
    }
    /// A source subtask's watermark cadence: its timestamp assigner emits a watermark after
    /// at most this many records (default 4096), and after every batch a source hands over
    /// (a file chunk of 64 KiB, a generator's batch). Smaller values make lateness finer, at
    /// a cost: a watermark seals the exchange's partly filled batches (at 1024 records,
    /// `window_sum` at parallelism 2 runs about 6% slower than at 4096). Watermarks still
    /// follow the data, never a timer.
    pub fn watermark_interval(mut self, records: usize) -> Self {
        self.watermark_interval = records.max(1);
        self
    }
    /// Keys held by a pre-aggregation table before it flushes (default 131072).
    pub fn pre_aggregate_capacity(mut self, n: usize) -> Self {
        self.pre_aggregate_capacity = n.max(1);
        self
    }
    /// Shows a progress line on a terminal while a bounded job runs.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
    /// Prints the job summary to stderr when the job ends.
    pub fn report(mut self, on: bool) -> Self {
        self.report = on;
        self
    }
    /// Persists checkpoints in `dir`: keyed and operator state, source positions and the
    /// sinks' pre-committed output, so that a killed job resumes with [`Config::restore`]
    /// and its part-file output is exactly-once. Needs a [`Config::checkpoint_interval`] for
    /// periodic checkpoints; a job always takes one at its end.
    pub fn checkpoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }
    /// Takes a checkpoint every `interval` (barriers injected at every source split).
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.barrier_interval = Some(interval);
        self
    }
    /// Resumes from a checkpoint of [`Config::checkpoint_dir`].
    pub fn restore(mut self, from: Restore) -> Self {
        self.restore = Some(from);
        self
    }
    /// When the job ends — its input is exhausted, or it was stopped (Ctrl-C, SIGTERM,
    /// [`crate::StopHandle::stop`]) — its last checkpoint is also written to
    /// `dir/savepoint-<id>` as a self-contained savepoint, which `Restore::Path` resumes
    /// from, with any checkpoint directory.
    pub fn savepoint_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.savepoint_dir = Some(dir.into());
        self
    }
    /// Complete checkpoints kept in the checkpoint directory (default 1); older ones and
    /// every file only they use are removed after each checkpoint.
    pub fn checkpoints_retained(mut self, n: usize) -> Self {
        self.checkpoints_retained = n.max(1);
        self
    }
    /// The memory budget of the job's keyed state, in bytes (default: half of the machine's
    /// memory). Keyed tables whose keys and values have serde codecs — rolling aggregates and
    /// keyed process functions — keep the hot part of their state within an equal share of
    /// it each; their coldest entries move to immutable, checksummed run files in
    /// [`Config::state_dir`], read back through memory maps. Window contents, timers and join
    /// buffers stay in memory.
    pub fn state_memory(mut self, bytes: u64) -> Self {
        self.state_memory = Some(bytes);
        self
    }
    /// Where keyed state that does not fit [`Config::state_memory`] goes (default: a new
    /// directory under the system's temporary directory, removed when the job ends). The
    /// directory is locked by one process; runs left by a killed process are removed.
    pub fn state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }
    /// Failed checkpoints in a row (an `fsync` error, a full disk) the job survives (default
    /// 3); one more fails the job. A failed checkpoint is never retried: the next one is new.
    pub fn tolerable_checkpoint_failures(mut self, n: u32) -> Self {
        self.tolerable_checkpoint_failures = n;
        self
    }
    /// Exactly-once (the default) or at-least-once barrier handling; see [`CheckpointMode`].
    pub fn checkpoint_mode(mut self, mode: CheckpointMode) -> Self {
        self.checkpoint_mode = mode;
        self
    }
    /// Injects checkpoint barriers at every source every `interval` and tracks them to the
    /// sinks ([`crate::JobSummary::checkpoints`]), persisting nothing unless a checkpoint
    /// directory is set: the barrier machinery on its own, for tests.
    #[doc(hidden)]
    pub fn barrier_interval(mut self, interval: std::time::Duration) -> Self {
        self.barrier_interval = Some(interval);
        self
    }
    /// `execute` prints the plan (as text) instead of running the job.
    pub fn plan_only(mut self, on: bool) -> Self {
        self.plan_only = on.then_some(PlanFormat::Text);
        self
    }
    /// `execute` prints the plan in `format` instead of running the job.
    pub fn plan_format(mut self, format: PlanFormat) -> Self {
        self.plan_only = Some(format);
        self
    }
    /// The configured watermark cadence of sources, in records.
    pub fn get_watermark_interval(&self) -> usize {
        self.watermark_interval
    }
    /// The configured parallelism.
    pub fn get_parallelism(&self) -> usize {
        self.parallelism
    }
    /// The checkpoint directory, if checkpoints are on.
    pub fn get_checkpoint_dir(&self) -> Option<&std::path::Path> {
        self.checkpoint_dir.as_deref()
    }
}

/// How `--plan` prints the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum PlanFormat {
    /// Stages, fused operators and exchanges, one per line.
    #[default]
    Text,
    /// The typed plan as JSON (for tools and the dashboard).
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let c = Config::default();
        assert_eq!(c.chunk_bytes, 64 * 1024, "documented as 64 KiB");
        assert_eq!(c.batch_size, 1024);
        assert_eq!(c.watermark_interval, 4096);
        assert_eq!(c.max_parallelism, 128);
        assert_eq!(c.pre_aggregate_capacity, 131_072);
    }
}
