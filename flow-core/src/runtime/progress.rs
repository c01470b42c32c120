//! The progress bar on the terminal while a job runs (`indicatif`, on stderr).
//!
//! A bounded job whose sources know their size shows a bar: bytes of the total for file
//! sources, records of the total for sized generators, with the rate and the time left. Other
//! jobs show the records read and their rate.
use super::metrics::StageMetrics;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Redraws a progress bar on stderr until dropped.
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the bar counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Bytes,
    Records,
    Unknown,
}

fn read(sources: &[Arc<StageMetrics>]) -> (Unit, u64, u64) {
    let sum = |f: fn(&StageMetrics) -> u64| sources.iter().map(|m| f(m)).sum::<u64>();
    let bytes_total = sum(|m| StageMetrics::get(&m.bytes_total));
    let records_total = sum(|m| StageMetrics::get(&m.records_total));
    let bytes = sum(|m| m.sum(|s| &s.bytes_read));
    let records = sum(|m| m.sum(|s| &s.records_in));
    // Every source must know its size for a total to mean anything.
    let all = |f: fn(&StageMetrics) -> u64| sources.iter().all(|m| f(m) > 0);
    if bytes_total > 0 && all(|m| StageMetrics::get(&m.bytes_total)) {
        (Unit::Bytes, bytes, bytes_total)
    } else if records_total > 0 && all(|m| StageMetrics::get(&m.records_total)) {
        (Unit::Records, records, records_total)
    } else {
        (Unit::Unknown, records, 0)
    }
}

impl Progress {
    /// Shows the progress of the source stages whose counters are `sources`.
    pub(crate) fn start(name: &str, sources: Vec<Arc<StageMetrics>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let thread = std::thread::Builder::new()
            .name("flow-progress".into())
            .spawn(move || {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_prefix(name);
                let mut unit = None;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let (u, done, total) = read(&sources);
                    if unit != Some(u) {
                        let template = match u {
                            Unit::Bytes => {
                                "{prefix}: [{bar:30}] {bytes}/{total_bytes} \
                                            ({percent}%), {bytes_per_sec}, ETA {eta}"
                            }
                            Unit::Records => {
                                "{prefix}: [{bar:30}] {human_pos}/{human_len} \
                                              records ({percent}%), {per_sec}, ETA {eta}"
                            }
                            Unit::Unknown => "{prefix}: {spinner} {human_pos} records, {per_sec}",
                        };
                        if let Ok(style) = ProgressStyle::with_template(template) {
                            bar.set_style(style.progress_chars("=> "));
                        }
                        unit = Some(u);
                    }
                    if total > 0 {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                }
                bar.finish_and_clear();
            })
            .ok();
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
