//! Hand-written baselines that flow's criterion benchmarks run beside flow, doing the same
//! work the way a person would write it without a framework.
use rustc_hash::FxHashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The seed's tokenisation table: a word byte's lowercase form, 0 for a separator.
use flow_examples::WORD_BYTE as LOWER;

/// Word counts by word bytes.
pub type Counts = FxHashMap<Box<[u8]>, u64>;

fn add(m: &mut Counts, word: &[u8], scratch: &mut Vec<u8>) {
    let lower = if word.iter().all(|&b| LOWER[b as usize] == b) {
        word
    } else {
        scratch.clear();
        scratch.extend(word.iter().map(|&b| LOWER[b as usize]));
        &scratch[..]
    };
    match m.get_mut(lower) {
        Some(c) => *c += 1,
        None => {
            m.insert(lower.into(), 1);
        }
    }
}

/// Counts the words of the lines in byte range `[start, end)` of `path` (lines that start in
/// the range), with a 1 MiB `BufReader` and byte-level splitting.
pub fn count_range(path: &Path, start: u64, end: u64) -> std::io::Result<Counts> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut pos = start;
    let mut line = Vec::with_capacity(256);
    if start > 0 {
        r.seek(SeekFrom::Start(start - 1))?;
        pos = start - 1 + r.read_until(b'\n', &mut line)? as u64;
    }
    let mut m = Counts::default();
    let mut scratch = Vec::new();
    while pos < end {
        line.clear();
        let n = r.by_ref().read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        let mut s = None;
        for (i, &b) in line.iter().enumerate() {
            match (LOWER[b as usize] != 0, s) {
                (true, None) => s = Some(i),
                (false, Some(st)) => {
                    add(&mut m, &line[st..i], &mut scratch);
                    s = None;
                }
                _ => {}
            }
        }
        if let Some(st) = s {
            add(&mut m, &line[st..], &mut scratch);
        }
    }
    Ok(m)
}

/// The baseline word count on `threads` threads over equal byte ranges, merged at the end.
pub fn word_count_threads(path: &Path, threads: usize) -> std::io::Result<Counts> {
    let len = std::fs::metadata(path)?.len();
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|i| {
                s.spawn(move || {
                    count_range(
                        path,
                        len * i / threads as u64,
                        len * (i + 1) / threads as u64,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Vec<_>>()
    });
    let mut total = Counts::default();
    for part in parts {
        for (k, v) in part? {
            *total.entry(k).or_insert(0) += v;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_baseline_fires_each_key_window_once_and_drops_late_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.csv");
        std::fs::write(&p, "a,1000,1\nb,1500,2\na,2100,3\na,1200,4\nb,2500,5\n").unwrap();
        // bound 0: after 2100 the window [1000, 2000) has fired, so a@1200 is late
        let t = window_sum(&p, 1000, 0).unwrap();
        assert_eq!(
            t,
            WindowTotals {
                rows: 4,
                sum: 11,
                late: 1
            }
        );
        let t = window_sum(&p, 1000, 500).unwrap();
        assert_eq!(
            t,
            WindowTotals {
                rows: 4,
                sum: 15,
                late: 0
            }
        );
    }

    #[test]
    fn thread_counts_agree_and_lines_on_range_edges_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.txt");
        std::fs::write(&p, "A b, a\nccc b\n\nx_1 A\nlast").unwrap();
        let one = word_count_threads(&p, 1).unwrap();
        for t in 2..6 {
            assert_eq!(word_count_threads(&p, t).unwrap(), one, "threads {t}");
        }
        assert_eq!(one.get(&b"a"[..]), Some(&3));
        assert_eq!(one.values().sum::<u64>(), 8);
    }
}

/// What the window baseline computed: emitted `(key, window)` rows, the sum of all sums,
/// and the late records it dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WindowTotals {
    /// Rows emitted (one per key and window).
    pub rows: u64,
    /// Sum over all emitted sums.
    pub sum: u64,
    /// Records dropped as late.
    pub late: u64,
}

/// Sum and count per key of one window.
type WindowSums = FxHashMap<Box<[u8]>, (u64, u64)>;

fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |a, &c| {
        c.is_ascii_digit().then(|| a * 10 + u64::from(c - b'0'))
    })
}

/// The hand-written streaming baseline for `window_sum`: one thread, a 1 MiB `BufReader`,
/// `BTreeMap<window_start, FxHashMap<key, (sum, count)>>`, Flink's bounded out-of-orderness
/// watermark (max timestamp − bound − 1), windows fired as the watermark passes their end.
pub fn window_sum(path: &Path, window_ms: u64, bound_ms: u64) -> std::io::Result<WindowTotals> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut open: std::collections::BTreeMap<u64, WindowSums> = Default::default();
    let mut t = WindowTotals::default();
    let mut max_ts = 0u64;
    let mut line = Vec::with_capacity(64);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed event line");
    let fire = |t: &mut WindowTotals, m: WindowSums| {
        for (_, (s, _)) in m {
            t.rows += 1;
            t.sum += s;
        }
    };
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let l = line.strip_suffix(b"\n").unwrap_or(&line);
        let mut it = l.splitn(3, |&b| b == b',');
        let (Some(k), Some(ts), Some(v)) = (it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        let (ts, v) = (number(ts).ok_or_else(bad)?, number(v).ok_or_else(bad)?);
        let w = ts - ts % window_ms;
        if w + window_ms <= max_ts.saturating_sub(bound_ms) {
            t.late += 1;
            continue;
        }
        let m = open.entry(w).or_default();
        match m.get_mut(k) {
            Some(e) => {
                e.0 += v;
                e.1 += 1;
            }
            None => {
                m.insert(k.into(), (v, 1));
            }
        }
        if ts > max_ts {
            max_ts = ts;
            while let Some(entry) = open.first_entry() {
                if *entry.key() + window_ms > max_ts.saturating_sub(bound_ms) {
                    break;
                }
                fire(&mut t, entry.remove());
            }
        }
    }
    for (_, m) in std::mem::take(&mut open) {
        fire(&mut t, m);
    }
    Ok(t)
}
