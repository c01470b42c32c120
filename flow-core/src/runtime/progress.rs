//! A progress line on the terminal while a job runs.
use super::metrics::StageMetrics;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Redraws a progress line on stderr until dropped.
pub(crate) struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
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
                let start = Instant::now();
                let mut shown = false;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    let sum =
                        |f: fn(&StageMetrics) -> u64| sources.iter().map(|m| f(m)).sum::<u64>();
                    let bytes = sum(|m| StageMetrics::get(&m.bytes_read));
                    let total = sum(|m| StageMetrics::get(&m.bytes_total));
                    let records = sum(|m| StageMetrics::get(&m.records_in));
                    let line = if total > 0 {
                        format!(
                            "{name}: {:.1} / {:.1} MB ({:.0}%), {:.1} MB/s, {} records",
                            bytes as f64 / 1e6,
                            total as f64 / 1e6,
                            100.0 * bytes as f64 / total as f64,
                            bytes as f64 / 1e6 / secs,
                            records
                        )
                    } else {
                        format!(
                            "{name}: {records} records, {:.0} records/s",
                            records as f64 / secs
                        )
                    };
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r\x1b[2K{line}");
                    let _ = err.flush();
                    shown = true;
                }
                if shown {
                    let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
                }
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
