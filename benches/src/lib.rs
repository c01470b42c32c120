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
