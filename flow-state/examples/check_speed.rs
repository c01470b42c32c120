//! Measures how fast a restore checks a checkpoint, beside how fast the disk reads the same
//! files.
//!
//! ```text
//! cargo run --release -p flow-state --example check_speed -- DIR [--checkpoint ID]
//!     [--rounds N] [--drop-caches]
//! ```
//!
//! Each round times, in alternating order:
//! - **check**: a fresh [`CheckpointStore::open`] and [`CheckpointStore::verify`] of the
//!   checkpoint, which is what `--restore` does before the first record: every segment read
//!   whole, its checksum computed and its entries walked;
//! - **read**: the same segment files read start to end with 1 MiB reads on one thread, as
//!   `dd bs=1M` would (the disk's sequential read speed), and on as many threads as the check
//!   uses.
//!
//! With `--drop-caches` (root only) the page cache is dropped before each measurement, so the
//! disk is measured, not memory. The medians of the rounds and their ratios are printed last.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use flow_state::{CheckpointStore, FsStorage};

struct Args {
    dir: PathBuf,
    checkpoint: Option<u64>,
    rounds: usize,
    drop_caches: bool,
}

fn parse() -> Result<Args, String> {
    let mut dir = None;
    let mut checkpoint = None;
    let mut rounds = 5;
    let mut drop_caches = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--checkpoint" => {
                let v = value("--checkpoint")?;
                checkpoint = Some(v.parse().map_err(|_| format!("bad checkpoint id {v:?}"))?);
            }
            "--rounds" => {
                let v = value("--rounds")?;
                rounds = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("bad round count {v:?}"))?;
            }
            "--drop-caches" => drop_caches = true,
            "-h" | "--help" => {
                println!(
                    "usage: check_speed DIR [--checkpoint ID] [--rounds N] [--drop-caches]\n\
                     Times a restore's check of checkpoint ID (default: the latest) in the \
                     checkpoint directory DIR beside reads of the same files (1 MiB reads), \
                     N rounds (default 5); --drop-caches drops the page cache before each \
                     (root only)."
                );
                std::process::exit(0);
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or("no checkpoint directory given (see --help)")?,
        checkpoint,
        rounds,
        drop_caches,
    })
}

fn drop_caches() -> Result<(), String> {
    // SAFETY: `sync` takes no arguments and only flushes the kernel's dirty buffers.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("cannot drop the page cache (/proc/sys/vm/drop_caches): {e}"))
}

/// Reads `files` whole with 1 MiB reads on `threads` threads (files handed out in order);
/// returns the bytes read.
fn read_all(files: &[PathBuf], threads: usize) -> Result<u64, String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read = |_: usize| -> Result<u64, String> {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(path) = files.get(i) else {
                return Ok(total);
            };
            let mut f = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|t| s.spawn(move || read(t))).collect();
        let mut total = read(0)?;
        for h in others {
            total += h.join().map_err(|_| "a reading thread panicked")??;
        }
        Ok(total)
    })
}

fn check(dir: &Path, id: u64) -> Result<(), String> {
    let store = CheckpointStore::open(dir, Arc::new(FsStorage)).map_err(|e| e.to_string())?;
    store.verify(id).map_err(|e| e.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(args: Args) -> Result<(), String> {
    let (id, files, bytes) = {
        let store =
            CheckpointStore::open(&args.dir, Arc::new(FsStorage)).map_err(|e| e.to_string())?;
        let id = match args.checkpoint {
            Some(id) => id,
            None => store
                .latest_complete()
                .map_err(|e| e.to_string())?
                .checkpoint
                .ok_or(format!("no complete checkpoint in {}", args.dir.display()))?,
        };
        let files = store.segment_files(id).map_err(|e| e.to_string())?;
        let bytes = store.segment_bytes(id).map_err(|e| e.to_string())?;
        (id, files, bytes)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let mb = bytes as f64 / 1e6;
    println!(
        "checkpoint {id} in {}: {} segments, {mb:.1} MB; page cache {}",
        args.dir.display(),
        files.len(),
        if args.drop_caches {
            "dropped before each measurement"
        } else {
            "kept (warm)"
        }
    );
    let fresh = || {
        if args.drop_caches {
            drop_caches()
        } else {
            Ok(())
        }
    };
    let time = |f: &dyn Fn() -> Result<(), String>| -> Result<f64, String> {
        fresh()?;
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let check_once = || check(&args.dir, id);
    let read_one = || {
        let n = read_all(&files, 1)?;
        if n != bytes {
            return Err(format!("read {n} bytes, the manifest lists {bytes}"));
        }
        Ok(())
    };
    let read_par = || read_all(&files, threads).map(|_| ());
    let (mut c, mut r1, mut rp) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Alternate the order, so that neither measurement always follows the other.
        if round % 2 == 0 {
            c.push(time(&check_once)?);
            r1.push(time(&read_one)?);
            rp.push(time(&read_par)?);
        } else {
            rp.push(time(&read_par)?);
            r1.push(time(&read_one)?);
            c.push(time(&check_once)?);
        }
        println!(
            "round {}: check {:.0} ms, read (1 thread) {:.0} ms, read ({threads} threads) {:.0} ms",
            round + 1,
            c[round] * 1e3,
            r1[round] * 1e3,
            rp[round] * 1e3
        );
    }
    let (c, r1, rp) = (median(c), median(r1), median(rp));
    println!(
        "median: check {:.0} ms ({:.0} MB/s), read (1 thread) {:.0} ms ({:.0} MB/s), \
         read ({threads} threads) {:.0} ms ({:.0} MB/s)",
        c * 1e3,
        mb / c,
        r1 * 1e3,
        mb / r1,
        rp * 1e3,
        mb / rp
    );
    println!(
        "check speed / sequential read speed: {:.2} (1 thread), {:.2} ({threads} threads)",
        r1 / c,
        rp / c
    );
    Ok(())
}

fn main() {
    let result = parse().and_then(run);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
