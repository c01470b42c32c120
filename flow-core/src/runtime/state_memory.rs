//! The memory budget of a job's keyed state ([`crate::Config::state_memory`]), shared by every
//! keyed table of every subtask, and the spill directory their cold entries go to.
//!
//! Each table that can spill (its keys and values have a codec) registers here and keeps its
//! in-memory part within an equal share of the budget; what does not fit goes to immutable
//! run files in the spill directory ([`flow_state::spill`]), opened on first use.
use flow_state::spill::SpillDir;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// One job's keyed-state memory budget.
#[derive(Debug)]
pub(crate) struct StateMemory {
    budget: u64,
    tables: AtomicUsize,
    /// Where spill runs go (`None`: a fresh directory under the system's temporary one).
    dir_path: Option<PathBuf>,
    dir: Mutex<Option<Arc<SpillDir>>>,
    evicted: AtomicU64,
    loaded: AtomicU64,
    run_bytes: AtomicU64,
    peak_run_bytes: AtomicU64,
}

/// What a job's keyed tables moved out of memory ([`crate::JobSummary::state_spill`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpillTotals {
    /// The budget, in bytes ([`crate::Config::state_memory`]).
    pub budget: u64,
    /// Entries written to spill runs by evictions.
    pub evicted: u64,
    /// Spilled entries read back into memory.
    pub loaded: u64,
    /// The most bytes the spill runs took on disk at once.
    pub peak_run_bytes: u64,
}

impl StateMemory {
    pub(crate) fn new(budget: u64, dir_path: Option<PathBuf>) -> Arc<Self> {
        Arc::new(StateMemory {
            budget: budget.max(1),
            tables: AtomicUsize::new(0),
            dir_path,
            dir: Mutex::new(None),
            evicted: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            run_bytes: AtomicU64::new(0),
            peak_run_bytes: AtomicU64::new(0),
        })
    }

    /// Counts entries evicted and the change of a table's run bytes from `before` to `after`.
    pub(crate) fn note_runs(&self, evicted: u64, before: u64, after: u64) {
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        let now = if after >= before {
            self.run_bytes.fetch_add(after - before, Ordering::Relaxed) + (after - before)
        } else {
            self.run_bytes.fetch_sub(before - after, Ordering::Relaxed) - (before - after)
        };
        self.peak_run_bytes.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts spilled entries read back.
    pub(crate) fn note_loaded(&self, n: u64) {
        self.loaded.fetch_add(n, Ordering::Relaxed);
    }

    /// The totals so far.
    pub(crate) fn totals(&self) -> SpillTotals {
        SpillTotals {
            budget: self.budget,
            evicted: self.evicted.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            peak_run_bytes: self.peak_run_bytes.load(Ordering::Relaxed),
        }
    }

    /// Counts a table that keeps within its share.
    pub(crate) fn register(&self) {
        self.tables.fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts a table.
    pub(crate) fn unregister(&self) {
        self.tables.fetch_sub(1, Ordering::Relaxed);
    }

    /// One table's share of the budget, in bytes.
    pub(crate) fn share(&self) -> u64 {
        self.budget / self.tables.load(Ordering::Relaxed).max(1) as u64
    }

    /// The spill directory, opened (and locked) on first use.
    pub(crate) fn spill_dir(&self) -> flow_state::Result<Arc<SpillDir>> {
        let mut d = self.dir.lock();
        if let Some(d) = d.as_ref() {
            return Ok(Arc::clone(d));
        }
        let dir = match &self.dir_path {
            Some(p) => SpillDir::open(p.clone())?,
            None => SpillDir::temporary()?,
        };
        *d = Some(Arc::clone(&dir));
        Ok(dir)
    }
}

/// The default budget: half of the machine's memory (1 GiB where that cannot be read).
pub(crate) fn default_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    });
    total.map_or(1 << 30, |t| t / 2)
}

/// Parses a byte size: `512MB`, `2GiB`, `64m`, `1000000` (bytes). Units are powers of 1024.
/// (`--state-memory`'s parser, so only with the `cli` feature.)
#[cfg(any(feature = "cli", test))]
pub(crate) fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` does not start with a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown unit `{u}` in `{s}`: use B, KB, MB, GB or TB"
            ))
        }
    };
    let bytes = n * mult as f64;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("`{s}` must be a positive size"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("0MB").is_err());
        assert!(parse_bytes("MB").is_err());
    }

    #[test]
    fn tables_share_the_budget_equally() {
        let m = StateMemory::new(100 << 20, None);
        m.register();
        m.register();
        assert_eq!(m.share(), 50 << 20);
        m.unregister();
        assert_eq!(m.share(), 100 << 20);
    }
}
