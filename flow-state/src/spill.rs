//! Spilled keyed state: the cold tier of state that is larger than memory.
//!
//! When a subtask's keyed state outgrows its share of the memory budget, the engine moves its
//! coldest entries out of the hash table into a [`Run`]: an immutable file of entries sorted by
//! `(hash, key bytes)`, written once with `write` and then only read, through a read-only memory
//! map. A table keeps a few runs, newest last; a lookup that misses in memory asks the runs
//! newest first (the newest entry of a key decides, a tombstone means "deleted"), and
//! [`merge`] folds runs together so their number stays small.
//!
//! Runs are working files, not checkpoints: they live in a [`SpillDir`] that is locked by one
//! process, emptied when it is opened and removed when the job ends. Durability comes from
//! checkpoints (which hold every changed entry, wherever it lives), so a run is not `fsync`ed:
//! after a crash the job restores from its checkpoint and the spill directory starts empty.
//!
//! Every block of a run (about 4 KiB) carries a CRC-32C, checked the first time the block is
//! read, so a disk that returns other bytes than were written is reported with the file's path
//! instead of handing out wrong state. Pages of the map that a lookup touched count in the
//! process's resident set until [`Run::release_pages`] returns them to the page cache; the
//! engine does so regularly, so the memory budget bounds the resident set.
//!
//! ```
//! use flow_state::spill::{SpillDir, merge};
//!
//! let dir = SpillDir::temporary().unwrap();
//! let e = |h: u64, k: &'static [u8], v: Option<&'static [u8]>| (h, k, v);
//! let old = dir.write_run([e(1, b"a", Some(b"1")), e(5, b"b", Some(b"2"))]).unwrap();
//! let new = dir.write_run([e(5, b"b", None), e(7, b"c", Some(b"3"))]).unwrap();
//! assert_eq!(old.get(1, |k| k == b"a").unwrap(), Some(Some(&b"1"[..])));
//! assert_eq!(new.get(5, |k| k == b"b").unwrap(), Some(None), "a tombstone");
//! assert_eq!(new.get(2, |_| true).unwrap(), None, "absent");
//! let both = merge(&dir, &[&old, &new], false).unwrap();
//! let keys: Vec<Vec<u8>> = both.iter().map(|e| e.unwrap().key.to_vec()).collect();
//! assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec()]);
//! ```

use crate::error::{Result, StateError};
use crate::storage::{FsStorage, LockGuard, ReadOnlyBytes, Storage};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The first bytes of every run file.
const MAGIC: &[u8; 8] = b"FLOWRUN\0";
/// `value_len` of a tombstone.
const TOMBSTONE: u32 = u32::MAX;
/// A block of a run is cut after the record that takes it past this many bytes.
pub const BLOCK_BYTES: usize = 4096;
/// `hash u64 | key_len u32 | value_len u32`.
const RECORD_HEADER: usize = 16;

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StateError + 'p {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The directory of one job's spilled state: locked by one process, emptied when opened,
/// removed when the last run and the handle are dropped (if it was created temporary).
pub struct SpillDir {
    dir: PathBuf,
    _lock: LockGuard,
    next: AtomicU64,
    remove: bool,
}

impl std::fmt::Debug for SpillDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillDir").field("dir", &self.dir).finish()
    }
}

impl SpillDir {
    /// Opens `dir` (creating it) for one process: takes its lock file `LOCK` (two processes
    /// never share a spill directory) and removes the runs a previous process left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Arc<SpillDir>> {
        Self::open_inner(dir.into(), false)
    }

    /// A new spill directory under the system's temporary directory, removed when dropped.
    pub fn temporary() -> Result<Arc<SpillDir>> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "flow-spill-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Self::open_inner(std::env::temp_dir().join(name), true)
    }

    fn open_inner(dir: PathBuf, remove: bool) -> Result<Arc<SpillDir>> {
        let fs = FsStorage;
        fs.create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let lock_path = dir.join("LOCK");
        let holder = format!("pid {}", std::process::id());
        let lock = match fs
            .try_lock(&lock_path, &holder)
            .map_err(io_err("lock", &lock_path))?
        {
            Some(l) => l,
            None => {
                let holder = fs
                    .read(&lock_path)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|_| "another process".into());
                return Err(StateError::Locked {
                    path: lock_path,
                    holder,
                });
            }
        };
        for name in fs.list(&dir).map_err(io_err("list", &dir))? {
            if name.ends_with(".run") || name.ends_with(".run.tmp") {
                let p = dir.join(&name);
                fs.remove(&p).map_err(io_err("remove", &p))?;
            }
        }
        Ok(Arc::new(SpillDir {
            dir,
            _lock: lock,
            next: AtomicU64::new(0),
            remove,
        }))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes `entries` — sorted by `(hash, key)`, no key twice; a `None` value is a tombstone —
    /// as a new run, and maps it for reading. Fails (writing nothing) if they are out of order.
    pub fn write_run<'a>(
        self: &Arc<Self>,
        entries: impl IntoIterator<Item = (u64, &'a [u8], Option<&'a [u8]>)>,
    ) -> Result<Run> {
        let entries = entries.into_iter();
        let expected = entries.size_hint().0;
        self.write_run_sized(expected, entries)
    }

    /// [`SpillDir::write_run`] of about `expected` entries (sizes the run's Bloom filter).
    fn write_run_sized<'a>(
        self: &Arc<Self>,
        expected: usize,
        entries: impl Iterator<Item = (u64, &'a [u8], Option<&'a [u8]>)>,
    ) -> Result<Run> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("run-{n:012}.run"));
        let mut w = RunWriter::create(&path, expected)?;
        for (hash, key, value) in entries {
            if let Err(e) = w.push(hash, key, value) {
                drop(w);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        }
        let (blocks, entries, tombstones, bloom) = match w.finish() {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        let bytes = match FsStorage.map_immutable(&path) {
            Ok(b) => b,
            Err(e) => {
                let _ = fs::remove_file(&path);
                return Err(io_err("map", &path)(e));
            }
        };
        let file_len = blocks.last().map_or(MAGIC.len() as u64, |b| b.end());
        if bytes.len() as u64 != file_len {
            return Err(StateError::Corrupt {
                path,
                reason: format!("{} bytes mapped, {file_len} written", bytes.len()),
            });
        }
        Ok(Run {
            path,
            bytes,
            blocks,
            entries,
            tombstones,
            bloom,
            _dir: Arc::clone(self),
        })
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A blocked Bloom filter over the hashes of a run's keys: about 10 bits per key, every probe
/// of a key in one 512-bit block (one cache line), about 1% false positives. A lookup of a key
/// that no run holds — every new key of a spilling table — then costs a few bit tests per run
/// instead of a block scan.
struct Bloom {
    blocks: Vec<[u64; 8]>,
}

impl Bloom {
    const PROBES: u32 = 7;

    fn new(expected: usize) -> Self {
        let n = (expected.max(1) * 10).div_ceil(512);
        Bloom {
            blocks: vec![[0; 8]; n],
        }
    }

    /// The block of `hash` and the bits that choose its probes.
    fn block_of(&self, hash: u64) -> (usize, u64) {
        let h = crate::mix64(hash);
        let i = ((u128::from(h) * self.blocks.len() as u128) >> 64) as usize;
        (i, crate::mix64(h ^ 0x9E37_79B9_7F4A_7C15))
    }

    fn insert(&mut self, hash: u64) {
        let (i, mut bits) = self.block_of(hash);
        let b = &mut self.blocks[i];
        for _ in 0..Self::PROBES {
            let bit = (bits & 511) as usize;
            b[bit / 64] |= 1 << (bit % 64);
            bits >>= 9;
        }
    }

    fn may_contain(&self, hash: u64) -> bool {
        let (i, mut bits) = self.block_of(hash);
        let b = &self.blocks[i];
        for _ in 0..Self::PROBES {
            let bit = (bits & 511) as usize;
            if b[bit / 64] & (1 << (bit % 64)) == 0 {
                return false;
            }
            bits >>= 9;
        }
        true
    }

    fn bytes(&self) -> usize {
        self.blocks.len() * 64
    }
}

/// Where a block lies in its run, and its checksum.
struct Block {
    first_hash: u64,
    offset: u64,
    len: u32,
    crc: u32,
    verified: AtomicBool,
}

impl Block {
    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

struct RunWriter<'p> {
    path: &'p Path,
    out: BufWriter<File>,
    block: Vec<u8>,
    block_first: u64,
    offset: u64,
    blocks: Vec<Block>,
    last: Option<(u64, Vec<u8>)>,
    entries: u64,
    tombstones: u64,
    bloom: Bloom,
}

impl<'p> RunWriter<'p> {
    fn create(path: &'p Path, expected: usize) -> Result<Self> {
        let f = File::create(path).map_err(io_err("create", path))?;
        let mut out = BufWriter::with_capacity(1 << 16, f);
        out.write_all(MAGIC).map_err(io_err("write", path))?;
        Ok(RunWriter {
            path,
            out,
            block: Vec::with_capacity(BLOCK_BYTES * 2),
            block_first: 0,
            offset: MAGIC.len() as u64,
            blocks: Vec::new(),
            last: None,
            entries: 0,
            tombstones: 0,
            bloom: Bloom::new(expected),
        })
    }

    fn push(&mut self, hash: u64, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if let Some((h, k)) = &self.last {
            if (hash, key) <= (*h, k.as_slice()) {
                return Err(StateError::Corrupt {
                    path: self.path.to_path_buf(),
                    reason: "spilled entries out of order or repeated".into(),
                });
            }
        }
        let too_long = |what: &str| StateError::Corrupt {
            path: self.path.to_path_buf(),
            reason: format!("a {what} of 4 GiB or more cannot be spilled"),
        };
        let klen = u32::try_from(key.len()).map_err(|_| too_long("key"))?;
        let vlen = match value {
            Some(v) => u32::try_from(v.len())
                .ok()
                .filter(|&l| l != TOMBSTONE)
                .ok_or_else(|| too_long("value"))?,
            None => TOMBSTONE,
        };
        if self.block.is_empty() {
            self.block_first = hash;
        }
        self.bloom.insert(hash);
        self.block.extend_from_slice(&hash.to_le_bytes());
        self.block.extend_from_slice(&klen.to_le_bytes());
        self.block.extend_from_slice(&vlen.to_le_bytes());
        self.block.extend_from_slice(key);
        if let Some(v) = value {
            self.block.extend_from_slice(v);
        } else {
            self.tombstones += 1;
        }
        self.entries += 1;
        match &mut self.last {
            Some((h, k)) => {
                *h = hash;
                k.clear();
                k.extend_from_slice(key);
            }
            None => self.last = Some((hash, key.to_vec())),
        }
        if self.block.len() >= BLOCK_BYTES {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.out
            .write_all(&self.block)
            .map_err(io_err("write", self.path))?;
        self.blocks.push(Block {
            first_hash: self.block_first,
            offset: self.offset,
            len: self.block.len() as u32,
            crc: crc32c::crc32c(&self.block),
            verified: AtomicBool::new(false),
        });
        self.offset += self.block.len() as u64;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<Block>, u64, u64, Bloom)> {
        self.cut()?;
        self.out.flush().map_err(io_err("write", self.path))?;
        if self.entries > 0 && self.bloom.bytes() * 8 < self.entries as usize * 5 {
            // Far more entries than expected: a filter this full would say yes to everything.
            self.bloom = Bloom { blocks: Vec::new() };
        }
        Ok((self.blocks, self.entries, self.tombstones, self.bloom))
    }
}

/// One entry of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunEntry<'a> {
    /// The key's hash, as the table that spilled it computes it.
    pub hash: u64,
    /// The encoded key.
    pub key: &'a [u8],
    /// The encoded value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

/// An immutable, memory-mapped file of spilled entries sorted by `(hash, key)`. Removed from
/// disk when dropped.
pub struct Run {
    path: PathBuf,
    bytes: ReadOnlyBytes,
    blocks: Vec<Block>,
    entries: u64,
    tombstones: u64,
    /// Empty: no filter (every lookup scans).
    bloom: Bloom,
    _dir: Arc<SpillDir>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .finish()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Run {
    /// The number of entries, tombstones included.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Whether the run has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The number of tombstones.
    pub fn tombstones(&self) -> u64 {
        self.tombstones
    }

    /// The size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of block `i`, checked against its checksum the first time.
    fn block(&self, i: usize) -> Result<&[u8]> {
        let b = &self.blocks[i];
        let bytes = self
            .bytes
            .get(b.offset as usize..b.end() as usize)
            .ok_or_else(|| StateError::Corrupt {
                path: self.path.clone(),
                reason: format!("block {i} lies past the end of the file"),
            })?;
        if !b.verified.load(Ordering::Relaxed) {
            if crc32c::crc32c(bytes) != b.crc {
                return Err(StateError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("checksum mismatch in block {i} (offset {})", b.offset),
                });
            }
            b.verified.store(true, Ordering::Relaxed);
        }
        Ok(bytes)
    }

    /// The record of `block` at `pos`, and the position after it.
    fn record<'a>(&self, block: &'a [u8], pos: usize) -> Result<(RunEntry<'a>, usize)> {
        let bad = || StateError::Corrupt {
            path: self.path.clone(),
            reason: format!("a record at block offset {pos} runs past its block"),
        };
        let head = block.get(pos..pos + RECORD_HEADER).ok_or_else(bad)?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let mut h = [0u8; 8];
        h.copy_from_slice(&head[..8]);
        let hash = u64::from_le_bytes(h);
        let klen = word(8) as usize;
        let vlen = word(12);
        let kstart = pos + RECORD_HEADER;
        let key = block.get(kstart..kstart + klen).ok_or_else(bad)?;
        let vstart = kstart + klen;
        let (value, next) = if vlen == TOMBSTONE {
            (None, vstart)
        } else {
            let v = block.get(vstart..vstart + vlen as usize).ok_or_else(bad)?;
            (Some(v), vstart + vlen as usize)
        };
        Ok((RunEntry { hash, key, value }, next))
    }

    /// Whether the run may hold a key of hash `hash` (its Bloom filter says so): if not,
    /// [`Run::get`] reads nothing.
    pub fn may_contain(&self, hash: u64) -> bool {
        self.bloom.blocks.is_empty() || self.bloom.may_contain(hash)
    }

    /// The entry of the key with hash `hash` for which `is_key` says yes: `Some(Some(value))`,
    /// `Some(None)` for a tombstone, `None` if the run does not hold the key.
    pub fn get(
        &self,
        hash: u64,
        mut is_key: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Option<&[u8]>>> {
        if !self.may_contain(hash) {
            return Ok(None);
        }
        // Entries of `hash` start in the last block whose first hash is below it, or later.
        let p = self.blocks.partition_point(|b| b.first_hash < hash);
        for i in p.saturating_sub(1)..self.blocks.len() {
            if self.blocks[i].first_hash > hash {
                break;
            }
            let block = self.block(i)?;
            let mut pos = 0;
            while pos < block.len() {
                let (e, next) = self.record(block, pos)?;
                if e.hash > hash {
                    return Ok(None);
                }
                if e.hash == hash && is_key(e.key) {
                    return Ok(Some(e.value));
                }
                pos = next;
            }
        }
        Ok(None)
    }

    /// Every entry, in order, tombstones included.
    pub fn iter(&self) -> RunIter<'_> {
        RunIter {
            run: self,
            block: 0,
            bytes: &[],
            pos: 0,
            released: 0,
        }
    }

    /// Returns the pages this process touched to the page cache (see the module doc).
    pub fn release_pages(&self) -> Result<()> {
        self.bytes
            .release_pages()
            .map_err(io_err("madvise", &self.path))
    }
}

/// The entries of a [`Run`] in order; an error for a damaged block ends the iteration.
pub struct RunIter<'a> {
    run: &'a Run,
    block: usize,
    bytes: &'a [u8],
    pos: usize,
    /// The file offset up to which pages were released (a scan keeps its resident set small).
    released: usize,
}

/// A scan returns the pages it has passed every this many bytes.
const RELEASE_EVERY: usize = 1 << 20;

impl<'a> Iterator for RunIter<'a> {
    type Item = Result<RunEntry<'a>>;

    fn next(&mut self) -> Option<Result<RunEntry<'a>>> {
        while self.pos >= self.bytes.len() {
            if self.block >= self.run.blocks.len() {
                return None;
            }
            let offset = self.run.blocks[self.block].offset as usize;
            if offset - self.released >= RELEASE_EVERY {
                if let Err(e) = self
                    .run
                    .bytes
                    .release_range(self.released, offset - self.released)
                {
                    self.block = self.run.blocks.len();
                    return Some(Err(io_err("madvise", &self.run.path)(e)));
                }
                self.released = offset;
            }
            match self.run.block(self.block) {
                Ok(b) => self.bytes = b,
                Err(e) => {
                    self.block = self.run.blocks.len();
                    return Some(Err(e));
                }
            }
            self.block += 1;
            self.pos = 0;
        }
        match self.run.record(self.bytes, self.pos) {
            Ok((e, next)) => {
                self.pos = next;
                Some(Ok(e))
            }
            Err(e) => {
                self.block = self.run.blocks.len();
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

/// The entries of several runs (oldest first) as one sorted sequence: of entries with the same
/// `(hash, key)` only the newest run's is given. Tombstones are given too.
pub struct Merged<'a> {
    cursors: Vec<(RunIter<'a>, Option<RunEntry<'a>>)>,
}

/// Merges the entries of `runs` (oldest first); see [`Merged`].
pub fn merged<'a>(runs: &[&'a Run]) -> Result<Merged<'a>> {
    let mut cursors = Vec::with_capacity(runs.len());
    for r in runs {
        let mut it = r.iter();
        let head = it.next().transpose()?;
        cursors.push((it, head));
    }
    Ok(Merged { cursors })
}

impl<'a> Iterator for Merged<'a> {
    type Item = Result<RunEntry<'a>>;

    fn next(&mut self) -> Option<Result<RunEntry<'a>>> {
        // The smallest head; of equal heads the newest run's (the later cursor).
        let mut best: Option<(usize, RunEntry<'a>)> = None;
        for (i, (_, head)) in self.cursors.iter().enumerate() {
            if let Some(e) = head {
                match &best {
                    Some((_, b)) if (b.hash, b.key) < (e.hash, e.key) => {}
                    _ => best = Some((i, *e)),
                }
            }
        }
        let (_, top) = best?;
        for (it, head) in &mut self.cursors {
            if let Some(e) = head {
                if (e.hash, e.key) == (top.hash, top.key) {
                    match it.next().transpose() {
                        Ok(h) => *head = h,
                        Err(err) => return Some(Err(err)),
                    }
                }
            }
        }
        Some(Ok(top))
    }
}

/// Writes the merge of `runs` (oldest first) as one new run of `dir`. With `keep_tombstones`
/// false (the merge covers every run of the table, so nothing older is left to shadow),
/// deletions are dropped.
pub fn merge(dir: &Arc<SpillDir>, runs: &[&Run], keep_tombstones: bool) -> Result<Run> {
    merge_filtered(dir, runs, keep_tombstones, |_| true)
}

/// [`merge`], dropping the (newest) entries for which `keep` says no — say, expired ones.
pub fn merge_filtered(
    dir: &Arc<SpillDir>,
    runs: &[&Run],
    keep_tombstones: bool,
    mut keep: impl FnMut(&RunEntry<'_>) -> bool,
) -> Result<Run> {
    let mut err = None;
    let mut it = merged(runs)?;
    let entries = std::iter::from_fn(|| loop {
        match it.next()? {
            Ok(e) if e.value.is_none() && !keep_tombstones => continue,
            Ok(e) if !keep(&e) => continue,
            Ok(e) => return Some((e.hash, e.key, e.value)),
            Err(e) => {
                err = Some(e);
                return None;
            }
        }
    });
    let expected = runs.iter().map(|r| r.len() as usize).sum();
    let run = dir.write_run_sized(expected, entries)?;
    match err {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_every_key_across_blocks_and_equal_hashes() {
        let dir = SpillDir::temporary().unwrap();
        let keys: Vec<(u64, Vec<u8>)> = (0..5000u64)
            .map(|i| (i / 3, format!("key-{i:06}").into_bytes()))
            .collect();
        let run = dir
            .write_run(
                keys.iter()
                    .map(|(h, k)| (*h, k.as_slice(), Some(k.as_slice()))),
            )
            .unwrap();
        assert!(run.blocks.len() > 10);
        for (h, k) in &keys {
            assert_eq!(run.get(*h, |x| x == k).unwrap(), Some(Some(k.as_slice())));
        }
        assert_eq!(run.get(10_000, |_| true).unwrap(), None);
        assert_eq!(run.get(3, |x| x == b"nope").unwrap(), None);
        assert_eq!(run.iter().count(), 5000);
        run.release_pages().unwrap();
        assert_eq!(
            run.get(7, |x| x == b"key-000021").unwrap(),
            Some(Some(&b"key-000021"[..]))
        );
    }

    #[test]
    fn the_bloom_filter_has_no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::new(100_000);
        for i in 0..100_000u64 {
            b.insert(i.wrapping_mul(0x9E37_79B9));
        }
        assert!((0..100_000u64).all(|i| b.may_contain(i.wrapping_mul(0x9E37_79B9))));
        let fp = (0..100_000u64)
            .filter(|i| b.may_contain(i.wrapping_mul(0x9E37_79B9) + 1))
            .count();
        assert!(fp < 2_500, "{fp} false positives in 100,000");
    }

    /// This process's resident file-backed memory, in bytes (Linux).
    fn rss_file() -> Option<u64> {
        let s = fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("RssFile:"))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    }

    #[test]
    fn scans_and_merges_return_the_pages_they_pass() {
        let dir = SpillDir::temporary().unwrap();
        let value = vec![7u8; 1000];
        let keys: Vec<[u8; 8]> = (0..64_000u64).map(|i| i.to_be_bytes()).collect();
        let a = dir
            .write_run(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (i as u64 * 2, &k[..], Some(&value[..]))),
            )
            .unwrap();
        let b = dir
            .write_run(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (i as u64 * 2 + 1, &k[..], Some(&value[..]))),
            )
            .unwrap();
        let Some(before) = rss_file() else { return };
        let mut peak = 0;
        let mut n = 0;
        for e in merged(&[&a, &b]).unwrap() {
            e.unwrap();
            n += 1;
            if n % 4096 == 0 {
                peak = peak.max(rss_file().unwrap_or(0).saturating_sub(before));
            }
        }
        assert_eq!(n, 128_000);
        // 2 x 64 MB of runs scanned; what stays mapped is bounded by the release step.
        assert!(
            peak < 16 << 20,
            "{} MB of run pages stayed resident",
            peak >> 20
        );
    }

    #[test]
    fn out_of_order_entries_are_refused_and_leave_no_file() {
        let dir = SpillDir::temporary().unwrap();
        let e = dir
            .write_run([(2, &b"a"[..], None), (1, b"b", None)])
            .unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
        let runs = fs::read_dir(dir.path()).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".run")
        });
        assert_eq!(runs.count(), 0);
    }

    #[test]
    fn a_flipped_byte_is_reported_with_the_path() {
        let dir = SpillDir::temporary().unwrap();
        let path;
        {
            let run = dir.write_run([(1, &b"k"[..], Some(&b"v"[..]))]).unwrap();
            path = run.path().to_path_buf();
            // Rewrite the file with one byte changed, as a failing disk would return it.
            let mut b = fs::read(&path).unwrap();
            let last = b.len() - 1;
            b[last] ^= 1;
            let _ = fs::remove_file(&path);
            fs::write(&path, &b).unwrap();
            let damaged = Run {
                path: path.clone(),
                bytes: FsStorage.map_immutable(&path).unwrap(),
                blocks: vec![Block {
                    first_hash: 1,
                    offset: run.blocks[0].offset,
                    len: run.blocks[0].len,
                    crc: run.blocks[0].crc,
                    verified: AtomicBool::new(false),
                }],
                entries: 1,
                tombstones: 0,
                bloom: Bloom { blocks: Vec::new() },
                _dir: Arc::clone(&dir),
            };
            let e = damaged.get(1, |_| true).unwrap_err();
            assert!(e.to_string().contains("checksum mismatch"), "{e}");
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        assert!(!path.exists(), "dropped runs remove their file");
    }

    #[test]
    fn a_second_process_handle_cannot_share_the_directory_and_leftovers_are_removed() {
        let base = std::env::temp_dir().join(format!("flow-spill-test-{}", std::process::id()));
        {
            let d = SpillDir::open(&base).unwrap();
            let e = SpillDir::open(&base).unwrap_err();
            assert!(matches!(e, StateError::Locked { .. }), "{e}");
            // As a killed process would leave it.
            fs::write(d.path().join("run-000000000007.run"), b"FLOWRUN\0").unwrap();
        }
        let _d = SpillDir::open(&base).unwrap();
        let left = fs::read_dir(&base)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".run")
            })
            .count();
        assert_eq!(left, 0);
        drop(_d);
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn merging_keeps_the_newest_version_and_drops_deletions_when_asked() {
        let dir = SpillDir::temporary().unwrap();
        let a = dir
            .write_run([(1, &b"x"[..], Some(&b"1"[..])), (2, b"y", Some(b"1"))])
            .unwrap();
        let b = dir
            .write_run([
                (1, &b"x"[..], Some(&b"2"[..])),
                (2, b"y", None),
                (3, b"z", Some(b"2")),
            ])
            .unwrap();
        let m = merge(&dir, &[&a, &b], true).unwrap();
        let got: Vec<_> = m
            .iter()
            .map(|e| e.unwrap())
            .map(|e| (e.key.to_vec(), e.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"x".to_vec(), Some(b"2".to_vec())),
                (b"y".to_vec(), None),
                (b"z".to_vec(), Some(b"2".to_vec()))
            ]
        );
        let m = merge(&dir, &[&a, &b], false).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.tombstones(), 0);
    }
}
