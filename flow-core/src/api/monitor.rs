//! A running job as its observers see it: status, live counters per stage and subtask,
//! checkpoints and exceptions. The web dashboard and the Prometheus endpoint (`crate::web`)
//! read jobs through this; anyone can, with [`Env::observe`](crate::Env::observe).
//!
//! ```
//! use flow_core::api::monitor::{JobObserver, JobStatus, LiveJob};
//! use flow_core::prelude::*;
//! use std::sync::{Arc, Mutex};
//!
//! #[derive(Default)]
//! struct Jobs(Mutex<Vec<Arc<LiveJob>>>);
//! impl JobObserver for Jobs {
//!     fn job_started(&self, job: Arc<LiveJob>) {
//!         self.0.lock().unwrap().push(job);
//!     }
//! }
//!
//! let jobs = Arc::new(Jobs::default());
//! let mut env = Env::new(Config::default().parallelism(2).name("evens"));
//! env.observe(jobs.clone());
//! env.generate_n(1_000, |i| i).filter(|i| i % 2 == 0).discard();
//! env.execute()?;
//! let job = jobs.0.lock().unwrap()[0].clone();
//! assert_eq!((job.name(), job.status()), ("evens", JobStatus::Finished));
//! let source = job.stage_metrics(0).expect("stage 0");
//! assert_eq!(source.sum(|m| &m.records_in), 1_000);
//! assert_eq!(source.sum(|m| &m.records_out), 500);
//! # Ok::<(), flow_core::Error>(())
//! ```
use crate::graph::plan::Plan;
use crate::runtime::checkpoint::{CheckpointStats, FailedCheckpoint};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::state_memory::{SpillTotals, StateMemory};
use crate::runtime::task::JobShared;
use crate::runtime::user_metrics::{MetricValue, UserMetric};
use parking_lot::Mutex;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Told about every job an [`Env`](crate::Env) starts.
pub trait JobObserver: Send + Sync {
    /// A job started; `job` stays current until it ends, and keeps its final state after.
    fn job_started(&self, job: Arc<LiveJob>);
}

/// Where a job is in its life (Flink's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Running.
    Running,
    /// Ended well: its sources ended, or it was stopped and drained.
    Finished,
    /// Ended with an error (see [`LiveJob::exceptions`]).
    Failed,
}

impl JobStatus {
    /// `RUNNING`, `FINISHED` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed => "FAILED",
        }
    }
}

/// An error a job met: one that failed it, or a checkpoint that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobException {
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The error's message.
    pub message: String,
    /// Whether it ended the job.
    pub fatal: bool,
}

struct Ended {
    at_ms: i64,
    elapsed: Duration,
    checkpoints: Vec<CheckpointStats>,
    failed_checkpoints: Vec<FailedCheckpoint>,
}

/// A job that was started: live while it runs, its final state after.
pub struct LiveJob {
    id: String,
    name: String,
    plan: Plan,
    threads: usize,
    start_ms: i64,
    started: Instant,
    stages: Vec<Arc<StageMetrics>>,
    /// The job's stop flag (what [`crate::StopHandle`] sets).
    stop: Arc<std::sync::atomic::AtomicBool>,
    checkpoint_interval: Option<Duration>,
    pub(crate) user_metrics: Vec<(String, UserMetric)>,
    pub(crate) state: Arc<StateMemory>,
    shared: Mutex<Weak<JobShared>>,
    status: Mutex<JobStatus>,
    ended: Mutex<Option<Ended>>,
    exceptions: Mutex<Vec<JobException>>,
}

impl std::fmt::Debug for LiveJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveJob")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// A job id in Flink's shape: 32 hex digits, unique within the process and unlikely to repeat
/// across processes.
fn new_job_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mix = |mut x: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    };
    format!(
        "{:016x}{:016x}",
        mix(nanos ^ (std::process::id() as u64) << 32),
        mix(n)
    )
}

impl LiveJob {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        plan: Plan,
        threads: usize,
        stages: Vec<Arc<StageMetrics>>,
        stop: Arc<std::sync::atomic::AtomicBool>,
        checkpoint_interval: Option<Duration>,
        user_metrics: Vec<(String, UserMetric)>,
        state: Arc<StateMemory>,
    ) -> Self {
        LiveJob {
            id: new_job_id(),
            name: name.to_string(),
            plan,
            threads,
            start_ms: crate::time::now_ms(),
            started: Instant::now(),
            stages,
            stop,
            checkpoint_interval,
            user_metrics,
            state,
            shared: Mutex::new(Weak::new()),
            status: Mutex::new(JobStatus::Running),
            ended: Mutex::new(None),
            exceptions: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn attach(&self, shared: &Arc<JobShared>) {
        *self.shared.lock() = Arc::downgrade(shared);
    }

    /// Records the job's end (`error`: why it failed).
    pub(crate) fn finish(&self, shared: &JobShared, error: Option<String>) {
        let now = crate::time::now_ms();
        *self.ended.lock() = Some(Ended {
            at_ms: now,
            elapsed: self.started.elapsed(),
            checkpoints: shared.completed_checkpoints(),
            failed_checkpoints: shared.failed_checkpoints(),
        });
        if let Some(message) = &error {
            self.exceptions.lock().push(JobException {
                at_ms: now,
                message: message.clone(),
                fatal: true,
            });
        }
        *self.status.lock() = if error.is_some() {
            JobStatus::Failed
        } else {
            JobStatus::Finished
        };
    }

    /// The job's id: 32 hex digits.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The job's plan: stages, fused operators, exchanges.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// Worker threads of its pool.
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// Where the job is.
    pub fn status(&self) -> JobStatus {
        *self.status.lock()
    }
    /// When it started, in ms since the Unix epoch.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }
    /// When it ended, in ms since the Unix epoch.
    pub fn end_ms(&self) -> Option<i64> {
        self.ended.lock().as_ref().map(|e| e.at_ms)
    }
    /// How long it ran (so far).
    pub fn elapsed(&self) -> Duration {
        match &*self.ended.lock() {
            Some(e) => e.elapsed,
            None => self.started.elapsed(),
        }
    }
    /// How often it checkpoints, if it does.
    pub fn checkpoint_interval(&self) -> Option<Duration> {
        self.checkpoint_interval
    }
    /// The counters of stage `i` (stages as in [`Plan::stages`]).
    pub fn stage_metrics(&self, i: usize) -> Option<&Arc<StageMetrics>> {
        self.stages.get(i)
    }
    /// The counters of every stage.
    pub fn stages(&self) -> &[Arc<StageMetrics>] {
        &self.stages
    }
    /// The checkpoints that completed, oldest first.
    pub fn checkpoints(&self) -> Vec<CheckpointStats> {
        if let Some(e) = &*self.ended.lock() {
            return e.checkpoints.clone();
        }
        match self.shared.lock().upgrade() {
            Some(s) => s.completed_checkpoints(),
            None => Vec::new(),
        }
    }
    /// The checkpoints that failed, oldest first.
    pub fn failed_checkpoints(&self) -> Vec<FailedCheckpoint> {
        if let Some(e) = &*self.ended.lock() {
            return e.failed_checkpoints.clone();
        }
        match self.shared.lock().upgrade() {
            Some(s) => s.failed_checkpoints(),
            None => Vec::new(),
        }
    }
    /// The checkpoint being taken now, if any.
    pub fn checkpoint_in_progress(&self) -> Option<u64> {
        self.shared
            .lock()
            .upgrade()
            .and_then(|s| s.pending_checkpoint())
    }
    /// The errors the job met: the one that failed it, and failed checkpoints.
    pub fn exceptions(&self) -> Vec<JobException> {
        let mut all: Vec<JobException> = self
            .failed_checkpoints()
            .into_iter()
            .map(|f| JobException {
                at_ms: f.at_ms,
                message: format!("checkpoint {} failed: {}", f.id, f.error),
                fatal: false,
            })
            .collect();
        all.extend(self.exceptions.lock().iter().cloned());
        all.sort_by_key(|e| e.at_ms);
        all
    }
    /// The job's user metrics now, in the order they were created.
    pub fn user_metrics(&self) -> Vec<(String, MetricValue)> {
        self.user_metrics
            .iter()
            .map(|(n, m)| (n.clone(), m.value()))
            .collect()
    }
    /// What keyed state moved beyond the memory budget so far.
    pub fn state_spill(&self) -> SpillTotals {
        self.state.totals()
    }
    /// Asks the job to stop: its sources end, it drains, and (with `--savepoint-dir`) it
    /// writes a savepoint.
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst)
    }
    /// Whether a stop was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
}
