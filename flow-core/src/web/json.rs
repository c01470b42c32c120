//! The REST API's JSON documents.
use super::Entry;
use crate::api::monitor::{JobStatus, LiveJob};
use crate::graph::plan::PlanStage;
use crate::runtime::metrics::{StageMetrics, SubtaskMetrics, NO_WATERMARK};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn watermark(w: i64) -> Value {
    if w == NO_WATERMARK {
        Value::Null
    } else {
        json!(w)
    }
}

/// A stage's name as the dashboard and Prometheus show it: its operators, or its head.
/// A source stage starts with its source's kind (`generate`, `read_lines`, ...).
pub(crate) fn stage_name(s: &PlanStage, source: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    if source || s.operators.is_empty() {
        let head = s.head.split('(').next().unwrap_or(&s.head);
        parts.push(head.to_string());
    }
    parts.extend(
        s.operators
            .iter()
            .map(|o| o.name.clone().unwrap_or_else(|| o.kind.clone())),
    );
    parts.join(" -> ")
}

fn counts(jobs: &[Entry]) -> (usize, usize, usize) {
    let n = |st| jobs.iter().filter(|e| e.job.status() == st).count();
    (
        n(JobStatus::Running),
        n(JobStatus::Finished),
        n(JobStatus::Failed),
    )
}

pub(crate) fn overview(jobs: &[Entry]) -> Value {
    let (running, finished, failed) = counts(jobs);
    let slots: usize = jobs
        .iter()
        .filter(|e| e.job.status() == JobStatus::Running)
        .map(|e| e.job.threads())
        .sum();
    json!({
        "flow-version": env!("CARGO_PKG_VERSION"),
        "taskslots-total": slots,
        "jobs-running": running,
        "jobs-finished": finished,
        "jobs-cancelled": 0,
        "jobs-failed": failed,
    })
}

pub(crate) fn jobs(jobs: &[Entry]) -> Value {
    json!({
        "jobs": jobs.iter().map(|e| json!({
            "id": e.job.id(),
            "status": e.job.status().as_str(),
        })).collect::<Vec<_>>()
    })
}

fn times(job: &LiveJob) -> Value {
    json!({
        "start-time": job.start_ms(),
        "end-time": job.end_ms().unwrap_or(-1),
        "duration": job.elapsed().as_millis() as u64,
        "now": crate::time::now_ms(),
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

pub(crate) fn jobs_overview(jobs: &[Entry]) -> Value {
    json!({
        "jobs": jobs.iter().map(|e| merge(json!({
            "jid": e.job.id(),
            "name": e.job.name(),
            "state": e.job.status().as_str(),
            "stages": e.job.plan().stages.len(),
            "records-read": records_read(&e.job),
        }), times(&e.job))).collect::<Vec<_>>()
    })
}

pub(crate) fn is_source(job: &LiveJob, stage: usize) -> bool {
    !job.plan().edges.iter().any(|e| e.to == stage)
}

fn records_read(job: &LiveJob) -> u64 {
    job.stages()
        .iter()
        .enumerate()
        .filter(|(i, _)| is_source(job, *i))
        .map(|(_, m)| m.sum(|s| &s.records_in))
        .sum()
}

/// How far a bounded job is: what its sources read of their known total, and an ETA.
fn progress(e: &Entry) -> Value {
    let job = &e.job;
    let sources: Vec<&StageMetrics> = job
        .stages()
        .iter()
        .enumerate()
        .filter(|(i, _)| is_source(job, *i))
        .map(|(_, m)| &**m)
        .collect();
    let all = |f: fn(&StageMetrics) -> u64| !sources.is_empty() && sources.iter().all(|m| f(m) > 0);
    let (unit, done, total) = if all(|m| m.bytes_total.load(Relaxed)) {
        (
            "bytes",
            sources
                .iter()
                .map(|m| m.sum(|s| &s.bytes_read))
                .sum::<u64>(),
            sources
                .iter()
                .map(|m| m.bytes_total.load(Relaxed))
                .sum::<u64>(),
        )
    } else if all(|m| m.records_total.load(Relaxed)) {
        (
            "records",
            sources
                .iter()
                .map(|m| m.sum(|s| &s.records_in))
                .sum::<u64>(),
            sources
                .iter()
                .map(|m| m.records_total.load(Relaxed))
                .sum::<u64>(),
        )
    } else {
        return json!({ "bounded": false, "records": records_read(job) });
    };
    let finished = job.status() != JobStatus::Running;
    let fraction = if finished {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    // The rate over the whole run so far: steadier than the last second's.
    let secs = job.elapsed().as_secs_f64();
    let eta = (!finished && done > 0 && secs > 0.0)
        .then(|| (total.saturating_sub(done)) as f64 / (done as f64 / secs));
    json!({
        "bounded": true,
        "unit": unit,
        "done": if finished { total.max(done) } else { done },
        "total": total,
        "fraction": fraction,
        "eta-seconds": eta,
        "records": records_read(job),
    })
}

fn subtask(m: &SubtaskMetrics, i: usize, r: Option<&super::SubtaskRates>) -> Value {
    json!({
        "subtask": i,
        "status": if m.finished_at_ms.load(Relaxed) > 0 { "FINISHED" } else { "RUNNING" },
        "metrics": {
            "read-records": m.records_in.load(Relaxed),
            "write-records": m.records_out.load(Relaxed),
            "read-bytes": m.bytes_read.load(Relaxed),
            "batches": m.batches.load(Relaxed),
            "busy-ms": m.busy_ns.load(Relaxed) / 1_000_000,
            "backpressured-ms": m.backpressured_ns.load(Relaxed) / 1_000_000,
            "backpressured-waits": m.backpressured.load(Relaxed),
            "watermark-in": watermark(m.watermark_in.load(Relaxed)),
            "watermark-out": watermark(m.watermark_out.load(Relaxed)),
            "state-entries": m.state_entries.load(Relaxed),
            "snapshots": m.snapshots.load(Relaxed),
            "snapshot-pause-max-ms": m.snapshot_max_ns.load(Relaxed) as f64 / 1e6,
            "restore-ms": m.restore_max_ns.load(Relaxed) as f64 / 1e6,
        },
        "rates": r,
    })
}

fn vertex_summary(e: &Entry, i: usize) -> Option<Value> {
    let job = &e.job;
    let st = job.plan().stages.get(i)?;
    let m = job.stage_metrics(i)?;
    let rates = e.rates.stages.get(i);
    let status = if m
        .subtasks
        .iter()
        .all(|s| s.finished_at_ms.load(Relaxed) > 0)
    {
        "FINISHED"
    } else if job.status() == JobStatus::Failed {
        "FAILED"
    } else {
        "RUNNING"
    };
    let wm_out = m.watermark(|s| &s.watermark_out);
    let now = crate::time::now_ms();
    Some(json!({
        "id": i,
        "name": stage_name(st, is_source(job, i)),
        "head": st.head,
        "operators": st.operators,
        "terminal": st.terminal,
        "parallelism": st.parallelism,
        "status": status,
        "source": is_source(job, i),
        "metrics": {
            "read-records": m.sum(|s| &s.records_in),
            "write-records": m.sum(|s| &s.records_out),
            "read-bytes": m.sum(|s| &s.bytes_read),
            "write-bytes": m.bytes_written.load(Relaxed),
            "busy-ms": m.sum(|s| &s.busy_ns) / 1_000_000,
            "backpressured-ms": m.sum(|s| &s.backpressured_ns) / 1_000_000,
            "state-entries": m.sum(|s| &s.state_entries),
            "late-records": m.late.load(Relaxed),
            "skipped-records": m.skipped.load(Relaxed),
            "side-dropped-records": m.side_dropped.load(Relaxed),
            "watermark-in": watermark(m.watermark(|s| &s.watermark_in)),
            "watermark-out": watermark(wm_out),
            "watermark-lag-ms": (wm_out != NO_WATERMARK && status == "RUNNING")
                .then(|| now.saturating_sub(wm_out)),
        },
        "rates": rates.map(|r| json!({
            "records-in-per-second": r.records_in_per_second,
            "records-out-per-second": r.records_out_per_second,
            "bytes-read-per-second": r.bytes_read_per_second,
            "busy-ratio": r.busy_ratio,
            "backpressured-ratio": r.backpressured_ratio,
        })),
        "backpressure": rates.map(|r| r.backpressure),
    }))
}

pub(crate) fn job(e: &Entry) -> Value {
    let job = &e.job;
    let plan = job.plan();
    let spill = job.state_spill();
    merge(
        json!({
            "jid": job.id(),
            "name": job.name(),
            "state": job.status().as_str(),
            "parallelism": plan.parallelism,
            "max-parallelism": plan.max_parallelism,
            "stop-requested": job.stop_requested(),
            "plan": plan,
            "vertices": (0..plan.stages.len())
                .filter_map(|i| vertex_summary(e, i))
                .collect::<Vec<_>>(),
            "edges": plan.edges,
            "progress": progress(e),
            "source-records-per-second": e.rates.source_rate,
            "checkpointing": job.checkpoint_interval().map(|d| json!({ "interval-ms": ms(d) })),
            "keyed-state": {
                "memory-budget-bytes": spill.budget,
                "spilled-entries": spill.evicted,
                "loaded-entries": spill.loaded,
                "spill-peak-bytes": spill.peak_run_bytes,
            },
            "user-metrics": job.user_metrics().into_iter().map(|(n, v)| {
                use crate::runtime::user_metrics::MetricValue as V;
                let v = match v {
                    V::Counter(c) => json!({ "type": "counter", "value": c }),
                    V::Gauge(g) => json!({ "type": "gauge", "value": g }),
                    V::Histogram(h) => json!({
                        "type": "histogram", "count": h.count, "min": h.min, "max": h.max,
                        "p50": h.quantile(0.5), "p99": h.quantile(0.99),
                    }),
                };
                json!({ "name": n, "value": v })
            }).collect::<Vec<_>>(),
        }),
        times(job),
    )
}

pub(crate) fn vertex(e: &Entry, vid: usize) -> Option<Value> {
    let mut v = vertex_summary(e, vid)?;
    let m = e.job.stage_metrics(vid)?;
    let rates = e.rates.stages.get(vid);
    let subtasks: Vec<Value> = m
        .subtasks
        .iter()
        .enumerate()
        .map(|(i, s)| subtask(s, i, rates.and_then(|r| r.subtasks.get(i))))
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("subtasks".into(), Value::Array(subtasks));
        o.insert("now".into(), json!(crate::time::now_ms()));
    }
    Some(v)
}

pub(crate) fn checkpoints(job: &LiveJob) -> Value {
    let done = job.checkpoints();
    let failed = job.failed_checkpoints();
    let entry = |c: &crate::runtime::checkpoint::CheckpointStats| {
        json!({
            "id": c.id,
            "status": "COMPLETED",
            "end_to_end_duration": ms(c.duration),
            "write_duration": ms(c.write),
            "sync_pause": ms(c.pause),
            "checkpointed_size": c.bytes,
            "state_size": c.total_bytes,
        })
    };
    let mut history: Vec<Value> = done.iter().rev().take(100).map(entry).collect();
    history.extend(failed.iter().rev().take(100).map(|f| {
        json!({
            "id": f.id,
            "status": "FAILED",
            "failure_timestamp": f.at_ms,
            "failure_message": f.error,
        })
    }));
    history.sort_by_key(|h| std::cmp::Reverse(h["id"].as_u64().unwrap_or(0)));
    let mut durations: Vec<f64> = done.iter().map(|c| ms(c.duration)).collect();
    durations.sort_by(f64::total_cmp);
    let q = |p: f64| {
        (!durations.is_empty())
            .then(|| durations[((durations.len() - 1) as f64 * p).round() as usize])
    };
    json!({
        "counts": {
            "completed": done.len(),
            "failed": failed.len(),
            "in_progress": job.checkpoint_in_progress().map_or(0, |_| 1),
            "total": done.len() + failed.len(),
        },
        "interval_ms": job.checkpoint_interval().map(ms),
        "summary": {
            "end_to_end_duration": { "p50": q(0.5), "p99": q(0.99), "max": q(1.0) },
            "checkpointed_size_total": done.iter().map(|c| c.bytes).sum::<u64>(),
            "sync_pause_max": done.iter().map(|c| ms(c.pause)).fold(0.0, f64::max),
        },
        "latest": { "completed": done.last().map(entry) },
        "history": history,
    })
}

pub(crate) fn exceptions(job: &LiveJob) -> Value {
    let all = job.exceptions();
    let root = all.iter().rev().find(|e| e.fatal);
    json!({
        "root-exception": root.map(|e| e.message.clone()),
        "timestamp": root.map(|e| e.at_ms),
        "exceptionHistory": {
            "entries": all.iter().rev().map(|e| json!({
                "exceptionName": if e.fatal { "JobFailure" } else { "CheckpointFailure" },
                "stacktrace": e.message,
                "timestamp": e.at_ms,
                "fatal": e.fatal,
            })).collect::<Vec<_>>(),
            "truncated": false,
        },
    })
}
