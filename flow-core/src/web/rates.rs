//! Rates from counters: the sampler reads every subtask's counters once a second and keeps
//! the rates over the last interval (Flink's `numRecordsInPerSecond`, `busyTimeMsPerSecond`,
//! `backPressuredTimeMsPerSecond`).
use crate::api::monitor::{JobStatus, LiveJob};
use crate::runtime::metrics::SubtaskMetrics;
use serde::Serialize;
use std::time::Instant;

/// Flink's backpressure levels, from the share of time a subtask waited for room downstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Backpressure {
    /// At most 10% of the time.
    #[default]
    Ok,
    /// At most 50%.
    Low,
    /// More.
    High,
}

impl Backpressure {
    /// The level of a backpressured share of time (`0.0..=1.0`).
    pub fn of(ratio: f64) -> Self {
        if ratio <= 0.10 {
            Backpressure::Ok
        } else if ratio <= 0.50 {
            Backpressure::Low
        } else {
            Backpressure::High
        }
    }
}

/// One subtask's rates over the last sampling interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SubtaskRates {
    /// Records in per second.
    pub records_in_per_second: f64,
    /// Records out per second.
    pub records_out_per_second: f64,
    /// Bytes read per second (file sources).
    pub bytes_read_per_second: f64,
    /// Share of the time it was busy (`0..=1`).
    pub busy_ratio: f64,
    /// Share of the time it waited for room downstream.
    pub backpressured_ratio: f64,
    /// Share of the time it had nothing to do.
    pub idle_ratio: f64,
    /// Its backpressure level.
    pub backpressure: Backpressure,
}

/// A stage's rates: its subtasks' summed, and the worst backpressure among them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageRates {
    /// Records in per second, all subtasks.
    pub records_in_per_second: f64,
    /// Records out per second, all subtasks.
    pub records_out_per_second: f64,
    /// Bytes read per second, all subtasks.
    pub bytes_read_per_second: f64,
    /// The largest backpressured share of time of its subtasks.
    pub backpressured_ratio: f64,
    /// The mean busy share of its subtasks.
    pub busy_ratio: f64,
    /// The stage's backpressure level (its most backpressured subtask's, as Flink shows it).
    pub backpressure: Backpressure,
    /// Per subtask.
    pub subtasks: Vec<SubtaskRates>,
}

#[derive(Clone, Copy, Default)]
struct Reading {
    records_in: u64,
    records_out: u64,
    bytes_read: u64,
    busy_ns: u64,
    backpressured_ns: u64,
}

impl Reading {
    fn of(m: &SubtaskMetrics) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Reading {
            records_in: m.records_in.load(Relaxed),
            records_out: m.records_out.load(Relaxed),
            bytes_read: m.bytes_read.load(Relaxed),
            busy_ns: m.busy_ns.load(Relaxed),
            backpressured_ns: m.backpressured_ns.load(Relaxed),
        }
    }
}

/// Keeps the last reading of a job's counters and the rates since the one before.
#[derive(Default)]
pub(crate) struct Sampler {
    last: Option<(Instant, Vec<Vec<Reading>>)>,
    pub(crate) stages: Vec<StageRates>,
    /// Records per second read by the job's sources, over the last interval.
    pub(crate) source_rate: f64,
    /// Whether the sample after the job's end was taken (rates are zero from then on).
    done: bool,
}

impl Sampler {
    pub(crate) fn sample(&mut self, job: &LiveJob) {
        if self.done {
            return;
        }
        let ended = job.status() != JobStatus::Running;
        let now = Instant::now();
        let readings: Vec<Vec<Reading>> = job
            .stages()
            .iter()
            .map(|s| s.subtasks.iter().map(|m| Reading::of(m)).collect())
            .collect();
        if let Some((then, prev)) = &self.last {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            self.stages = readings
                .iter()
                .zip(prev)
                .map(|(cur, prev)| stage_rates(cur, prev, secs))
                .collect();
            self.source_rate = job
                .plan()
                .stages
                .iter()
                .zip(&self.stages)
                .filter(|(p, _)| !job.plan().edges.iter().any(|e| e.to == p.id))
                .map(|(_, r)| r.records_in_per_second)
                .sum();
        } else {
            self.stages = readings
                .iter()
                .map(|s| StageRates {
                    subtasks: vec![SubtaskRates::default(); s.len()],
                    ..StageRates::default()
                })
                .collect();
        }
        self.last = Some((now, readings));
        if ended {
            // The final counters are in; what a finished job shows is its totals.
            for s in &mut self.stages {
                *s = StageRates {
                    subtasks: vec![SubtaskRates::default(); s.subtasks.len()],
                    ..StageRates::default()
                };
            }
            self.source_rate = 0.0;
            self.done = true;
        }
    }
}

fn stage_rates(cur: &[Reading], prev: &[Reading], secs: f64) -> StageRates {
    let per_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let ratio = |a: u64, b: u64| (a.saturating_sub(b) as f64 / 1e9 / secs).clamp(0.0, 1.0);
    let subtasks: Vec<SubtaskRates> = cur
        .iter()
        .zip(prev)
        .map(|(c, p)| {
            let busy = ratio(c.busy_ns, p.busy_ns);
            let bp = ratio(c.backpressured_ns, p.backpressured_ns).min(1.0 - busy);
            SubtaskRates {
                records_in_per_second: per_s(c.records_in, p.records_in),
                records_out_per_second: per_s(c.records_out, p.records_out),
                bytes_read_per_second: per_s(c.bytes_read, p.bytes_read),
                busy_ratio: busy,
                backpressured_ratio: bp,
                idle_ratio: (1.0 - busy - bp).max(0.0),
                backpressure: Backpressure::of(bp),
            }
        })
        .collect();
    let n = subtasks.len().max(1) as f64;
    let bp = subtasks
        .iter()
        .map(|s| s.backpressured_ratio)
        .fold(0.0, f64::max);
    StageRates {
        records_in_per_second: subtasks.iter().map(|s| s.records_in_per_second).sum(),
        records_out_per_second: subtasks.iter().map(|s| s.records_out_per_second).sum(),
        bytes_read_per_second: subtasks.iter().map(|s| s.bytes_read_per_second).sum(),
        backpressured_ratio: bp,
        busy_ratio: subtasks.iter().map(|s| s.busy_ratio).sum::<f64>() / n,
        backpressure: Backpressure::of(bp),
        subtasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_flinks_thresholds() {
        assert_eq!(Backpressure::of(0.0), Backpressure::Ok);
        assert_eq!(Backpressure::of(0.10), Backpressure::Ok);
        assert_eq!(Backpressure::of(0.11), Backpressure::Low);
        assert_eq!(Backpressure::of(0.50), Backpressure::Low);
        assert_eq!(Backpressure::of(0.51), Backpressure::High);
    }

    #[test]
    fn rates_are_deltas_over_the_interval() {
        let prev = [Reading::default(), Reading::default()];
        let cur = [
            Reading {
                records_in: 2_000,
                records_out: 1_000,
                bytes_read: 0,
                busy_ns: 1_000_000_000,
                backpressured_ns: 0,
            },
            Reading {
                records_in: 500,
                records_out: 500,
                bytes_read: 0,
                busy_ns: 500_000_000,
                backpressured_ns: 1_200_000_000,
            },
        ];
        let r = stage_rates(&cur, &prev, 2.0);
        assert_eq!(r.records_in_per_second, 1_250.0);
        assert_eq!(r.records_out_per_second, 750.0);
        assert_eq!(r.subtasks[0].busy_ratio, 0.5);
        assert_eq!(r.subtasks[0].idle_ratio, 0.5);
        assert_eq!(r.subtasks[1].backpressured_ratio, 0.6);
        assert_eq!(r.subtasks[1].backpressure, Backpressure::High);
        assert_eq!(r.backpressure, Backpressure::High);
        assert_eq!(r.busy_ratio, 0.375);
    }
}
