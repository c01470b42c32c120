//! What a finished job did: per-stage counters and wall time.
use crate::graph::{Ending, StageInfo};
use crate::runtime::metrics::{StageMetrics, SubtaskMetrics};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// What one stage did.
#[derive(Clone, Debug, Default)]
pub struct StageSummary {
    /// The stage's source or upstream exchange and its operators.
    pub name: String,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Records that entered the stage.
    pub records_in: u64,
    /// Records that left the stage, into its sink or its exchange.
    pub records_out: u64,
    /// Bytes read by a file source.
    pub bytes_read: u64,
    /// Bytes written by a file sink.
    pub bytes_written: u64,
    /// Records skipped by a lenient source.
    pub skipped: u64,
    /// Records that arrived after their windows had closed (see the late side output).
    pub late: u64,
    /// Records sent to a side output (`OutputTag`) whose stream nobody took, and dropped.
    pub side_dropped: u64,
    /// Time the stage's subtasks were busy, summed.
    pub busy: Duration,
    /// How often a subtask waited for room downstream.
    pub backpressured: u64,
    /// Time the stage's subtasks waited for room downstream, summed.
    pub backpressured_time: Duration,
    /// Whether the stage reads a source.
    pub is_source: bool,
    /// The sink the stage ends in (`None` when it ends in an exchange).
    pub sink: Option<String>,
}

/// What a finished job did: per-stage counters and wall time.
#[derive(Clone, Debug, Default)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// Wall time from start to end.
    pub elapsed: Duration,
    /// Per-stage counters, in stage order.
    pub stages: Vec<StageSummary>,
    /// True when the environment only printed its plan (`--plan`).
    pub planned_only: bool,
    /// The checkpoints that completed (with a checkpoint directory: that are durable), in
    /// order.
    pub checkpoints: Vec<crate::runtime::checkpoint::CheckpointStats>,
    /// The longest any subtask paused its processing to freeze its part of a checkpoint.
    pub snapshot_pause: Duration,
    /// The longest any subtask took to load its state from the restored checkpoint before
    /// its first record (zero without a restore).
    pub restore: Duration,
    /// The longest any subtask took, from the start of its restore, to load in the
    /// background, while it processed records, the restored keyed state it did not load
    /// before its first record (zero without a lazy restore).
    pub restore_loaded: Duration,
    /// The savepoint the job wrote when it ended ([`crate::Config::savepoint_dir`]).
    pub savepoint: Option<std::path::PathBuf>,
    /// The checkpoint a stopped job (Ctrl-C, [`crate::StopHandle`]) ended at, with
    /// checkpoints persisted: the job did not drain, and `--restore` resumes from there.
    pub stopped_at: Option<u64>,
    /// The job's user metrics when it ended, in the order they were created.
    pub metrics: Vec<(String, crate::runtime::user_metrics::MetricValue)>,
    /// What keyed state moved beyond the memory budget ([`crate::Config::state_memory`]).
    pub state_spill: crate::runtime::state_memory::SpillTotals,
}

impl JobSummary {
    pub(crate) fn new(name: &str, elapsed: Duration, stages: &[StageInfo]) -> Self {
        let get = StageMetrics::get;
        let sum = |m: &StageMetrics, f: fn(&SubtaskMetrics) -> &AtomicU64| m.sum(f);
        JobSummary {
            name: name.to_string(),
            elapsed,
            planned_only: false,
            checkpoints: Vec::new(),
            savepoint: None,
            stopped_at: None,
            restore: Duration::from_nanos(
                stages
                    .iter()
                    .map(|s| s.metrics.max(|m| &m.restore_max_ns))
                    .max()
                    .unwrap_or(0),
            ),
            restore_loaded: Duration::from_nanos(
                stages
                    .iter()
                    .map(|s| s.metrics.max(|m| &m.restore_loaded_ns))
                    .max()
                    .unwrap_or(0),
            ),
            snapshot_pause: Duration::from_nanos(
                stages
                    .iter()
                    .map(|s| s.metrics.max(|m| &m.snapshot_max_ns))
                    .max()
                    .unwrap_or(0),
            ),
            metrics: Vec::new(),
            state_spill: Default::default(),
            stages: stages
                .iter()
                .map(|s| {
                    let m = &s.metrics;
                    let mut name = s.head.clone();
                    for op in &s.ops {
                        name.push_str(" -> ");
                        name.push_str(op.label.as_deref().unwrap_or(op.name.kind()));
                    }
                    name.push_str(" => ");
                    match &s.terminal {
                        Some(t) => name.push_str(&t.to_string()),
                        None => name.push_str("(no sink)"),
                    }
                    StageSummary {
                        name,
                        parallelism: s.parallelism,
                        records_in: sum(m, |m| &m.records_in),
                        records_out: sum(m, |m| &m.records_out),
                        bytes_read: sum(m, |m| &m.bytes_read),
                        bytes_written: get(&m.bytes_written),
                        skipped: get(&m.skipped),
                        late: get(&m.late),
                        side_dropped: get(&m.side_dropped),
                        busy: Duration::from_nanos(sum(m, |m| &m.busy_ns)),
                        backpressured: sum(m, |m| &m.backpressured),
                        backpressured_time: Duration::from_nanos(sum(m, |m| &m.backpressured_ns)),
                        is_source: s.is_source(),
                        sink: match &s.terminal {
                            Some(Ending::Sink(name)) => Some(name.clone()),
                            _ => None,
                        },
                    }
                })
                .collect(),
        }
    }

    /// Records read by the job's sources.
    pub fn records_read(&self) -> u64 {
        self.stages
            .iter()
            .filter(|s| s.is_source)
            .map(|s| s.records_in)
            .sum()
    }

    /// Bytes read by the job's file sources.
    pub fn bytes_read(&self) -> u64 {
        self.stages.iter().map(|s| s.bytes_read).sum()
    }

    /// Records written by all of the job's sinks together, side outputs' sinks included; see
    /// [`JobSummary::sinks`] for each sink's count.
    pub fn records_written(&self) -> u64 {
        self.stages
            .iter()
            .filter(|s| s.sink.is_some())
            .map(|s| s.records_out)
            .sum()
    }

    /// The value of user metric `name` when the job ended.
    pub fn metric(&self, name: &str) -> Option<&crate::runtime::user_metrics::MetricValue> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Each sink with the records it wrote, in stage order.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let (small, big) = env
    ///     .from_iter([1, 50, 2])
    ///     .map(|x| if x < 10 { Either::Left(x) } else { Either::Right(x) })
    ///     .split();
    /// small.discard();
    /// let _big = big.collect();
    /// let summary = env.execute()?;
    /// assert_eq!(summary.sinks(), vec![("discard", 2), ("collect", 1)]);
    /// assert_eq!(summary.records_written(), 3);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn sinks(&self) -> Vec<(&str, u64)> {
        self.stages
            .iter()
            .filter_map(|s| s.sink.as_deref().map(|name| (name, s.records_out)))
            .collect()
    }

    /// Input records skipped by lenient sources.
    pub fn records_skipped(&self) -> u64 {
        self.stages.iter().map(|s| s.skipped).sum()
    }

    /// Records that arrived too late for their windows.
    pub fn records_late(&self) -> u64 {
        self.stages.iter().map(|s| s.late).sum()
    }

    /// Records that process functions sent to side outputs (`OutputTag`s) without a
    /// consumer, and that were dropped.
    pub fn records_side_dropped(&self) -> u64 {
        self.stages.iter().map(|s| s.side_dropped).sum()
    }
}

impl std::fmt::Display for JobSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "job `{}` finished in {:.3} s", self.name, secs)?;
        for (i, s) in self.stages.iter().enumerate() {
            writeln!(
                f,
                "  stage {i} x{}: {} in, {} out, busy {:.3} s, backpressured {:.3} s  [{}]",
                s.parallelism,
                s.records_in,
                s.records_out,
                s.busy.as_secs_f64(),
                s.backpressured_time.as_secs_f64(),
                s.name
            )?;
        }
        let bytes = self.bytes_read();
        if bytes > 0 {
            writeln!(
                f,
                "  read {:.1} MB at {:.1} MB/s",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            )?;
        }
        for (name, v) in &self.metrics {
            use crate::runtime::user_metrics::MetricValue as V;
            match v {
                V::Counter(n) => writeln!(f, "  {name}: {n}")?,
                V::Gauge(g) => writeln!(f, "  {name}: {g}")?,
                V::Histogram(h) => writeln!(
                    f,
                    "  {name}: {} values, min {}, p50 <= {}, p99 <= {}, max {}",
                    h.count,
                    h.min,
                    h.quantile(0.5),
                    h.quantile(0.99),
                    h.max
                )?,
            }
        }
        if !self.checkpoints.is_empty() {
            let mut d: Vec<_> = self.checkpoints.iter().map(|c| c.duration).collect();
            d.sort();
            let q = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
            let bytes: u64 = self.checkpoints.iter().map(|c| c.bytes).sum();
            writeln!(
                f,
                "  {} checkpoint(s): barrier to durable p50 {:.0} ms, p99 {:.0} ms; {:.1} MB written; \
                 longest pause to snapshot {:.2} ms",
                d.len(),
                q(0.5),
                q(0.99),
                bytes as f64 / 1e6,
                self.snapshot_pause.as_secs_f64() * 1e3
            )?;
        }
        if !self.restore.is_zero() {
            writeln!(
                f,
                "  state restored in {:.0} ms (the slowest subtask, before its first record)",
                self.restore.as_secs_f64() * 1e3
            )?;
            if !self.restore_loaded.is_zero() {
                writeln!(
                    f,
                    "  the rest of the restored state loaded while processing, by {:.0} ms",
                    self.restore_loaded.as_secs_f64() * 1e3
                )?;
            }
        }
        let sp = &self.state_spill;
        if sp.evicted > 0 {
            writeln!(
                f,
                "  keyed state beyond its {:.0} MB budget: {} entries spilled, {} read back, \
                 spill files peaked at {:.1} MB",
                sp.budget as f64 / (1 << 20) as f64,
                sp.evicted,
                sp.loaded,
                sp.peak_run_bytes as f64 / 1e6
            )?;
        }
        if let Some(id) = self.stopped_at {
            writeln!(
                f,
                "  stopped at checkpoint {id} (not drained): --restore resumes from there"
            )?;
        }
        if let Some(p) = &self.savepoint {
            writeln!(f, "  savepoint written to {}", p.display())?;
        }
        let late = self.records_late();
        if late > 0 {
            writeln!(f, "  {late} record(s) arrived after their windows closed")?;
        }
        let dropped = self.records_side_dropped();
        if dropped > 0 {
            writeln!(
                f,
                "  dropped {dropped} record(s) sent to side outputs that nobody consumes"
            )?;
        }
        let skipped = self.records_skipped();
        if skipped > 0 {
            writeln!(
                f,
                "  skipped {skipped} bad input record(s); see the warnings above"
            )?;
        }
        Ok(())
    }
}
