//! `/metrics` in the Prometheus text exposition format (version 0.0.4): every family once,
//! with `# HELP` and `# TYPE`, then its samples labelled `job`, `job_id`, `stage`,
//! `operator` and `subtask`.
use super::json::{is_source, stage_name};
use super::Entry;
use crate::runtime::metrics::{StageMetrics, SubtaskMetrics, NO_WATERMARK};
use crate::runtime::user_metrics::MetricValue;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Escapes a label value: backslash, double quote and line feed.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric name from a user metric's name: `[a-zA-Z0-9_]`, other characters as `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, String)>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str, kind: &'a str, help: &'a str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }
    fn add(&mut self, labels: &str, value: impl std::fmt::Display) {
        self.samples.push((labels.to_string(), value.to_string()));
    }
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{{{labels}}} {value}", self.name);
        }
    }
}

type SubtaskCounter = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SubtaskMetrics) -> &AtomicU64,
    f64,
);

/// Per-subtask counters: name, type, help, the counter, and the factor to its unit.
const SUBTASK: &[SubtaskCounter] = &[
    (
        "flow_records_in_total",
        "counter",
        "Records that entered the subtask's fused chain.",
        |m| &m.records_in,
        1.0,
    ),
    (
        "flow_records_out_total",
        "counter",
        "Records the subtask passed to its sink or exchange.",
        |m| &m.records_out,
        1.0,
    ),
    (
        "flow_batches_in_total",
        "counter",
        "Batches that entered the subtask.",
        |m| &m.batches,
        1.0,
    ),
    (
        "flow_bytes_read_total",
        "counter",
        "Bytes a file source subtask read.",
        |m| &m.bytes_read,
        1.0,
    ),
    (
        "flow_busy_seconds_total",
        "counter",
        "Time the subtask spent processing.",
        |m| &m.busy_ns,
        1e-9,
    ),
    (
        "flow_backpressured_seconds_total",
        "counter",
        "Time the subtask waited for room downstream.",
        |m| &m.backpressured_ns,
        1e-9,
    ),
    (
        "flow_backpressured_waits_total",
        "counter",
        "Times the subtask found its output full.",
        |m| &m.backpressured,
        1.0,
    ),
    (
        "flow_snapshots_total",
        "counter",
        "Checkpoint barriers the subtask snapshotted its state at.",
        |m| &m.snapshots,
        1.0,
    ),
];

type StageCounter = (&'static str, &'static str, fn(&StageMetrics) -> &AtomicU64);

const STAGE: &[StageCounter] = &[
    (
        "flow_late_records_total",
        "Records that arrived after their windows had closed.",
        |m| &m.late,
    ),
    (
        "flow_skipped_records_total",
        "Bad input records a lenient source skipped.",
        |m| &m.skipped,
    ),
    (
        "flow_side_output_dropped_records_total",
        "Records sent to side outputs that nobody consumes.",
        |m| &m.side_dropped,
    ),
    (
        "flow_bytes_written_total",
        "Bytes a file sink wrote.",
        |m| &m.bytes_written,
    ),
];

pub(crate) fn render(jobs: &[Entry]) -> String {
    let mut out = String::new();
    let mut info = Family::new(
        "flow_job_info",
        "gauge",
        "A job this process ran or runs; the value is 1.",
    );
    let mut running = Family::new(
        "flow_job_running",
        "gauge",
        "1 while the job runs, 0 after it ended.",
    );
    let mut uptime = Family::new(
        "flow_job_uptime_seconds",
        "gauge",
        "How long the job has run (ran).",
    );
    let mut subtask: Vec<Family> = SUBTASK
        .iter()
        .map(|(n, k, h, _, _)| Family::new(n, k, h))
        .collect();
    let mut stage: Vec<Family> = STAGE
        .iter()
        .map(|(n, h, _)| Family::new(n, "counter", h))
        .collect();
    let mut wm_in = Family::new(
        "flow_watermark_in_milliseconds",
        "gauge",
        "The last watermark that reached the subtask (event time, ms since the epoch).",
    );
    let mut wm_out = Family::new(
        "flow_watermark_out_milliseconds",
        "gauge",
        "The last watermark the subtask passed on (event time, ms since the epoch).",
    );
    let mut entries = Family::new(
        "flow_state_entries",
        "gauge",
        "Entries of keyed state the subtask's operators hold in memory.",
    );
    let mut busy = Family::new(
        "flow_busy_ratio",
        "gauge",
        "Share of the last second the subtask was busy.",
    );
    let mut bp = Family::new(
        "flow_backpressured_ratio",
        "gauge",
        "Share of the last second the subtask waited for room downstream.",
    );
    let mut parallelism = Family::new("flow_stage_parallelism", "gauge", "Subtasks of the stage.");
    let mut ck_done = Family::new(
        "flow_checkpoints_completed_total",
        "counter",
        "Checkpoints that completed.",
    );
    let mut ck_failed = Family::new(
        "flow_checkpoints_failed_total",
        "counter",
        "Checkpoints that failed.",
    );
    let mut ck_duration = Family::new(
        "flow_last_checkpoint_duration_seconds",
        "gauge",
        "Barrier to durable manifest, of the last completed checkpoint.",
    );
    let mut ck_pause = Family::new(
        "flow_last_checkpoint_sync_pause_seconds",
        "gauge",
        "The longest processing pause to freeze state, of the last completed checkpoint.",
    );
    let mut ck_bytes = Family::new(
        "flow_last_checkpoint_size_bytes",
        "gauge",
        "Bytes the last completed checkpoint wrote (incremental).",
    );
    let mut ck_total = Family::new(
        "flow_last_checkpoint_full_size_bytes",
        "gauge",
        "The whole size of the last completed checkpoint, shared segments included.",
    );
    let mut spilled = Family::new(
        "flow_state_spilled_entries_total",
        "counter",
        "Keyed state entries moved beyond the memory budget.",
    );
    let mut budget = Family::new(
        "flow_state_memory_budget_bytes",
        "gauge",
        "The keyed state memory budget.",
    );
    let mut user: Vec<(String, String)> = Vec::new();
    for e in jobs {
        let job = &e.job;
        let base = format!(
            "job=\"{}\",job_id=\"{}\"",
            escape(job.name()),
            escape(job.id())
        );
        info.add(&format!("{base},status=\"{}\"", job.status().as_str()), 1);
        let is_running = job.status() == crate::api::monitor::JobStatus::Running;
        running.add(&base, u8::from(is_running));
        uptime.add(&base, job.elapsed().as_secs_f64());
        for (i, (st, m)) in job.plan().stages.iter().zip(job.stages()).enumerate() {
            let sl = format!(
                "{base},stage=\"{i}\",operator=\"{}\"",
                escape(&stage_name(st, is_source(job, i)))
            );
            parallelism.add(&sl, st.parallelism);
            for (f, (_, _, get)) in stage.iter_mut().zip(STAGE) {
                f.add(&sl, get(m).load(Relaxed));
            }
            let rates = e.rates.stages.get(i);
            for (k, s) in m.subtasks.iter().enumerate() {
                let l = format!("{sl},subtask=\"{k}\"");
                for (f, (_, _, _, get, scale)) in subtask.iter_mut().zip(SUBTASK) {
                    let v = get(s).load(Relaxed);
                    if *scale == 1.0 {
                        f.add(&l, v);
                    } else {
                        f.add(&l, v as f64 * scale);
                    }
                }
                for (f, w) in [
                    (&mut wm_in, &s.watermark_in),
                    (&mut wm_out, &s.watermark_out),
                ] {
                    let w = w.load(Relaxed);
                    if w != NO_WATERMARK {
                        f.add(&l, w);
                    }
                }
                entries.add(&l, s.state_entries.load(Relaxed));
                if let Some(r) = rates.and_then(|r| r.subtasks.get(k)) {
                    busy.add(&l, r.busy_ratio);
                    bp.add(&l, r.backpressured_ratio);
                }
            }
        }
        let done = job.checkpoints();
        if job.checkpoint_interval().is_some() || !done.is_empty() {
            ck_done.add(&base, done.len());
            ck_failed.add(&base, job.failed_checkpoints().len());
        }
        if let Some(c) = done.last() {
            ck_duration.add(&base, c.duration.as_secs_f64());
            ck_pause.add(&base, c.pause.as_secs_f64());
            ck_bytes.add(&base, c.bytes);
            ck_total.add(&base, c.total_bytes);
        }
        let spill = job.state_spill();
        spilled.add(&base, spill.evicted);
        budget.add(&base, spill.budget);
        for (name, v) in job.user_metrics() {
            let n = format!("flow_user_{}", sanitize(&name));
            let mut text = String::new();
            match v {
                MetricValue::Counter(c) => {
                    let _ = writeln!(text, "# HELP {n} User counter `{}`.", escape(&name));
                    let _ = writeln!(text, "# TYPE {n} counter");
                    let _ = writeln!(text, "{n}{{{base}}} {c}");
                }
                MetricValue::Gauge(g) => {
                    let _ = writeln!(text, "# HELP {n} User gauge `{}`.", escape(&name));
                    let _ = writeln!(text, "# TYPE {n} gauge");
                    let _ = writeln!(text, "{n}{{{base}}} {g}");
                }
                MetricValue::Histogram(h) => {
                    let _ = writeln!(text, "# HELP {n} User histogram `{}`.", escape(&name));
                    let _ = writeln!(text, "# TYPE {n} histogram");
                    let mut cumulative = 0;
                    for (i, c) in h.buckets.iter().enumerate() {
                        cumulative += c;
                        // Bucket i holds values below 2^i.
                        let le = if i >= 64 { u64::MAX } else { (1u64 << i) - 1 };
                        let _ = writeln!(text, "{n}_bucket{{{base},le=\"{le}\"}} {cumulative}");
                    }
                    let _ = writeln!(text, "{n}_bucket{{{base},le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(text, "{n}_sum{{{base}}} {}", h.sum);
                    let _ = writeln!(text, "{n}_count{{{base}}} {}", h.count);
                }
            }
            user.push((n, text));
        }
    }
    for f in [&info, &running, &uptime, &parallelism] {
        f.write(&mut out);
    }
    for f in subtask.iter().chain(stage.iter()) {
        f.write(&mut out);
    }
    for f in [
        &wm_in,
        &wm_out,
        &entries,
        &busy,
        &bp,
        &ck_done,
        &ck_failed,
        &ck_duration,
        &ck_pause,
        &ck_bytes,
        &ck_total,
        &spilled,
        &budget,
    ] {
        f.write(&mut out);
    }
    // A user metric of the same name in two jobs: one family, HELP and TYPE once.
    user.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last = String::new();
    for (name, text) in user {
        if name == last {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(&text);
        }
        last = name;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(sanitize("late.count-2"), "late_count_2");
    }
}
