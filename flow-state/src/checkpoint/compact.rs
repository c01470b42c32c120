//! Compaction off the checkpoint path (FORMAT.md §6a): a state's chain of segments in one
//! complete checkpoint is merged into fresh segments by another thread, and a later checkpoint
//! adopts them in place of the chain's prefix they replace.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::format::{compacted_prefix, compacted_segment_name, entry_order};
use super::manifest::{SegmentInfo, StateKey};
use super::segment::{entry_at, Segment, SegmentBuilder};
use super::view::merge;
use super::{CheckpointStore, CheckpointWriter};
use crate::error::{io_err, Result};
use crate::storage::Storage;
use crate::KeyGroupRange;

/// The merge of one state's chain in checkpoint `base`, planned on the checkpoint writer's
/// thread ([`CheckpointStore::plan_compaction`]) and run on any other ([`Compaction::run`]).
///
/// The chain is a *bottom* — its longest prefix of segments whose key-group ranges follow one
/// another without overlap (a state written whole, or compacted before) — and the *deltas*
/// after it. Compaction rewrites the bottom one segment at a time (a *slice*): each bottom
/// segment merged with the deltas' entries in its key-group slice. A later checkpoint adopts
/// each slice as it finishes, so the directory never holds more than the chain plus a slice or
/// two of new segments; adopting the last slice drops the deltas, whose entries every slice
/// now holds.
pub struct Compaction {
    base: u64,
    key: StateKey,
    bottom: Vec<SegmentInfo>,
    deltas: Vec<SegmentInfo>,
    /// Names of the inputs this process wrote during this open of the store (their crc was
    /// computed over the bytes written): those are not verified again.
    trusted: HashSet<String>,
    dir: PathBuf,
    manifest: PathBuf,
    storage: Arc<dyn Storage>,
    segment_target_bytes: u64,
    bytes_per_sec: u64,
    busy_share: f64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("base", &self.base)
            .field("state", &self.key)
            .field("bottom", &self.bottom.len())
            .field("deltas", &self.deltas.len())
            .finish()
    }
}

/// What a compaction's thread and the checkpoint writer share.
#[derive(Debug)]
struct Shared {
    base: u64,
    /// A merge of the deltas alone ([`CheckpointStore::plan_delta_merge`]) rather than a
    /// rewrite of the bottom.
    fold: bool,
    bottom: Vec<String>,
    deltas: HashSet<String>,
    output_prefix: String,
    /// Slices finished and not yet taken by [`CompactionFiles::take_finished`].
    finished: Mutex<Vec<Compacted>>,
    /// Slices taken: the compaction runs at most [`AHEAD`] slices ahead of them.
    taken: AtomicUsize,
    /// Bottom segments whose replacement a committed checkpoint lists: no longer protected.
    committed: AtomicUsize,
}

/// How many finished slices a compaction may have waiting for adoption before it pauses: the
/// bound on the extra disk it takes beyond the chain.
const AHEAD: usize = 2;

/// A compaction under way, as the checkpoint writer sees it: the files garbage collection
/// must leave alone ([`CheckpointStore::retain_protecting`]) and the slices finished so far.
#[derive(Clone, Debug)]
pub struct CompactionFiles {
    shared: Arc<Shared>,
}

impl CompactionFiles {
    /// Whether file `name` of the checkpoint directory belongs to the compaction: an input it
    /// still reads (a bottom segment whose replacement no committed checkpoint lists yet, or
    /// a delta) or an output (every name beginning `segment-<base>-c`, `.tmp` included).
    pub fn contains(&self, name: &str) -> bool {
        let s = &self.shared;
        let committed = s.committed.load(Ordering::Acquire);
        name.starts_with(&s.output_prefix)
            || s.deltas.contains(name)
            || s.bottom.iter().skip(committed).any(|b| b == name)
    }

    /// The slices finished since the last call, in order, for the next checkpoint to adopt
    /// ([`CheckpointWriter::adopt`]).
    pub fn take_finished(&self) -> Vec<Compacted> {
        let taken = std::mem::take(&mut *lock(&self.shared.finished));
        self.shared.taken.fetch_add(taken.len(), Ordering::AcqRel);
        taken
    }

    /// Whether slices are finished and not yet taken.
    pub fn has_finished(&self) -> bool {
        !lock(&self.shared.finished).is_empty()
    }

    /// Records that a checkpoint which adopted slices up to `slice` (inclusive) is durable:
    /// the bottom segments they replace are garbage once no retained checkpoint lists them.
    pub fn committed(&self, slice: usize) {
        self.shared.committed.fetch_max(slice + 1, Ordering::AcqRel);
    }
}

impl Shared {
    fn slices(&self) -> usize {
        if self.fold {
            1
        } else {
            self.bottom.len()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        // A panicking compaction thread leaves a list of finished slices, still consistent.
        Err(p) => p.into_inner(),
    }
}

/// One slice of a compaction ([`Compaction::run`]): a bottom segment merged with the deltas'
/// entries in its key-group slice, for a later checkpoint to adopt
/// ([`CheckpointWriter::adopt`]).
#[derive(Debug)]
pub struct Compacted {
    key: StateKey,
    slice: usize,
    shared: Arc<Shared>,
    segments: Vec<SegmentInfo>,
    bytes: u64,
    read: u64,
    took: Duration,
}

impl Compacted {
    /// The checkpoint whose segments were merged.
    pub fn base(&self) -> u64 {
        self.shared.base
    }

    /// The state: (operator uid, state name).
    pub fn state(&self) -> (&str, &str) {
        (&self.key.0, &self.key.1)
    }

    /// Which slice this is (0-based) of how many: the last one's adoption drops the deltas.
    pub fn slice(&self) -> (usize, usize) {
        (self.slice, self.shared.slices())
    }

    /// Bytes of the segments written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Bytes of the bottom segment merged, and of the deltas' entries in its slice.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// How long the slice took, verifying its inputs and waiting for earlier slices' adoption
    /// included.
    pub fn duration(&self) -> Duration {
        self.took
    }
}

impl CheckpointStore {
    /// Plans the compaction of state `name` of operator `uid` as complete checkpoint `base`
    /// holds it: reads only the manifest. `None` if the state's chain is all bottom (nothing
    /// to merge). Output is written at most `bytes_per_sec` fast.
    pub fn plan_compaction(
        &self,
        base: u64,
        uid: &str,
        name: &str,
        bytes_per_sec: u64,
    ) -> Result<Option<Compaction>> {
        self.plan(base, uid, name, bytes_per_sec, false)
    }

    /// Plans the merge of the *deltas* of state `name` of operator `uid` in complete
    /// checkpoint `base` — the segments after its bottom — into one run of segments that
    /// keeps their newest versions, tombstones included, and takes their place (FORMAT.md
    /// §6a). Cheap where checkpoints keep changing the same keys (a hot set): the merged
    /// deltas are no larger than one of them, and the bottom is rewritten far less often.
    /// `None` if the deltas are fewer than two runs.
    pub fn plan_delta_merge(
        &self,
        base: u64,
        uid: &str,
        name: &str,
        bytes_per_sec: u64,
    ) -> Result<Option<Compaction>> {
        self.plan(base, uid, name, bytes_per_sec, true)
    }

    fn plan(
        &self,
        base: u64,
        uid: &str,
        name: &str,
        bytes_per_sec: u64,
        fold: bool,
    ) -> Result<Option<Compaction>> {
        let m = self.read_manifest(base)?;
        let key = (uid.to_owned(), name.to_owned());
        let Some(chain) = m.states.get(&key) else {
            return Ok(None);
        };
        let b = bottom_len(chain);
        let (bottom, deltas) = (chain[..b].to_vec(), chain[b..].to_vec());
        if deltas.is_empty() || (fold && runs(&deltas) < 2) {
            return Ok(None);
        }
        let bottom = if fold { Vec::new() } else { bottom };
        let trusted = {
            let verified = self.verified_lock();
            chain
                .iter()
                .filter(|i| verified.contains(&(i.name.clone(), i.len, i.crc)))
                .map(|i| i.name.clone())
                .collect()
        };
        let shared = Arc::new(Shared {
            base,
            fold,
            bottom: bottom.iter().map(|s| s.name.clone()).collect(),
            deltas: deltas.iter().map(|s| s.name.clone()).collect(),
            output_prefix: compacted_prefix(base),
            finished: Mutex::new(Vec::new()),
            taken: AtomicUsize::new(0),
            committed: AtomicUsize::new(0),
        });
        Ok(Some(Compaction {
            base,
            key,
            bottom,
            deltas,
            trusted,
            dir: self.dir.clone(),
            manifest: self.manifest_path(base),
            storage: Arc::clone(&self.storage),
            segment_target_bytes: self.options.segment_target_bytes,
            bytes_per_sec: bytes_per_sec.max(1),
            busy_share: 1.0,
            shared,
        }))
    }

    /// The shape of state `name` of operator `uid` in checkpoint `id`, from the manifest
    /// alone: how many segments its chain has, and the bytes of its bottom (the prefix a
    /// compaction rewrites) and of the deltas after it.
    pub fn chain_shape(&self, id: u64, uid: &str, name: &str) -> Result<ChainShape> {
        let m = self.read_manifest(id)?;
        let chain = m
            .states
            .get(&(uid.to_owned(), name.to_owned()))
            .map_or(&[][..], Vec::as_slice);
        let b = bottom_len(chain);
        Ok(ChainShape {
            segments: chain.len(),
            delta_runs: runs(&chain[b..]),
            bottom_bytes: chain[..b].iter().map(|s| s.len).sum(),
            delta_bytes: chain[b..].iter().map(|s| s.len).sum(),
        })
    }
}

/// See [`CheckpointStore::chain_shape`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainShape {
    /// Segments in the chain.
    pub segments: usize,
    /// Bytes of its bottom: the longest prefix whose segments' key-group ranges follow one
    /// another without overlap.
    pub bottom_bytes: u64,
    /// Bytes of the segments after the bottom.
    pub delta_bytes: u64,
    /// Runs among the segments after the bottom (consecutive segments whose key-group ranges
    /// follow one another without overlap form one run: one per checkpoint, typically), each
    /// a cursor of a restore's merge.
    pub delta_runs: usize,
}

/// The number of runs in `segs`: maximal sequences whose key-group ranges follow one another
/// without overlap.
fn runs(segs: &[SegmentInfo]) -> usize {
    usize::from(!segs.is_empty())
        + segs
            .windows(2)
            .filter(|w| w[0].kg_end > w[1].kg_start)
            .count()
}

/// The length of `chain`'s bottom: its longest prefix of segments whose key-group ranges
/// follow one another without overlap.
fn bottom_len(chain: &[SegmentInfo]) -> usize {
    let mut n = usize::from(!chain.is_empty());
    while n < chain.len() && chain[n - 1].kg_end <= chain[n].kg_start {
        n += 1;
    }
    n
}

impl Compaction {
    /// Limits the compaction to working `share` (0 to 1) of the time it runs, sleeping the
    /// rest: at most that share of one core, however busy or idle the machine is.
    pub fn busy_at_most(mut self, share: f64) -> Self {
        self.busy_share = share.clamp(0.01, 1.0);
        self
    }

    /// The files it reads and will write, and the slices it finishes.
    pub fn files(&self) -> CompactionFiles {
        CompactionFiles {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Merges slice after slice (inputs verified in full as they are opened, unless this
    /// process wrote them): the live entries only, tombstones dropped, each output written,
    /// fsynced and renamed, then the directory synced; each finished slice is handed to
    /// [`CompactionFiles::take_finished`]. Waits while [`AHEAD`] finished slices wait for
    /// adoption. Returns whether it finished: `false` if `cancel` was set first (what was
    /// written is garbage for the next `retain`).
    pub fn run(self, cancel: &AtomicBool) -> Result<bool> {
        let storage = &*self.storage;
        let open_seg = |info: &SegmentInfo| -> Result<Arc<Segment>> {
            let open = if self.trusted.contains(&info.name) {
                Segment::open_trusted
            } else {
                Segment::open
            };
            Ok(Arc::new(open(storage, &self.dir, info, &self.manifest)?))
        };
        let mut deltas = Vec::with_capacity(self.deltas.len());
        for info in &self.deltas {
            if cancel.load(Ordering::Relaxed) {
                return Ok(false);
            }
            deltas.push(open_seg(info)?);
        }
        let mut out = Output {
            storage,
            dir: &self.dir,
            base: self.base,
            target: self.segment_target_bytes,
            bytes_per_sec: self.bytes_per_sec,
            busy_share: self.busy_share,
            slept: Duration::ZERO,
            start: Instant::now(),
            written: 0,
            seq: 0,
            cur: None,
            last_kg: None,
            segments: Vec::new(),
            ops: 0,
        };
        if self.shared.fold {
            let began = Instant::now();
            let all = KeyGroupRange {
                start: 0,
                end: u32::MAX,
            };
            let mut merged = merge(&deltas, all);
            while let Some(e) = merged.next_raw() {
                out.push(e.kg, e.key, e.value)?;
                if !out.tick(cancel) {
                    return Ok(false);
                }
            }
            let segments = out.finish_slice()?;
            lock(&self.shared.finished).push(Compacted {
                key: self.key.clone(),
                slice: 0,
                shared: Arc::clone(&self.shared),
                bytes: segments.iter().map(|s| s.len).sum(),
                segments,
                read: self.deltas.iter().map(|s| s.len).sum(),
                took: began.elapsed(),
            });
            return Ok(true);
        }
        for (i, info) in self.bottom.iter().enumerate() {
            let began = Instant::now();
            // Backpressure: at most `AHEAD` slices wait for a checkpoint to adopt them.
            while i >= self.shared.taken.load(Ordering::Acquire) + AHEAD {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(false);
                }
                out.sleep(Duration::from_millis(10));
            }
            let range = KeyGroupRange {
                start: if i == 0 { 0 } else { info.kg_start },
                end: self.bottom.get(i + 1).map_or(u32::MAX, |n| n.kg_start),
            };
            let bottom = open_seg(info)?;
            let read = info.len
                + deltas
                    .iter()
                    .map(|d| d.bytes_in(range.start, range.end))
                    .sum::<u64>();
            if !merge_slice(&bottom, &deltas, range, &mut out, cancel)? {
                return Ok(false);
            }
            let segments = out.finish_slice()?;
            lock(&self.shared.finished).push(Compacted {
                key: self.key.clone(),
                slice: i,
                shared: Arc::clone(&self.shared),
                bytes: segments.iter().map(|s| s.len).sum(),
                segments,
                read,
                took: began.elapsed(),
            });
        }
        Ok(true)
    }
}

/// Writes one slice (FORMAT.md §6a): `bottom`'s entries in `range` merged with the newest
/// versions `deltas` hold there, tombstones dropped. The bottom segment holds nearly every
/// entry, so its runs between two delta keys are copied as they are stored, one key group's
/// bytes at a time, rather than entry by entry. Returns `false` if `cancel` was set.
fn merge_slice(
    bottom: &Segment,
    deltas: &[Arc<Segment>],
    range: KeyGroupRange,
    out: &mut Output<'_>,
    cancel: &AtomicBool,
) -> Result<bool> {
    let data = bottom.entry_bytes(range.start, range.end);
    let mut newer = merge(deltas, range);
    let mut pos = 0;
    loop {
        let d = newer.next_raw();
        // Copy the bottom's entries before `d` (all that remain once the deltas end), one
        // key group's run at a time; an entry `d` replaces is skipped.
        let (mut run, mut group, mut count) = (pos, None, 0u32);
        while pos < data.len() {
            let (e, next) = entry_at(data, pos);
            let order = d.map_or(std::cmp::Ordering::Less, |d| {
                entry_order(e.kg, e.key, d.kg, d.key)
            });
            if order.is_gt() {
                break;
            }
            if group != Some(e.kg) {
                if let Some(kg) = group {
                    out.group(kg, &data[run..pos], count)?;
                }
                (run, group, count) = (pos, Some(e.kg), 0);
            }
            if order.is_eq() {
                out.group(e.kg, &data[run..pos], count)?;
                pos = next;
                (run, count) = (pos, 0);
                break;
            }
            count += 1;
            pos = next;
        }
        if let Some(kg) = group {
            out.group(kg, &data[run..pos], count)?;
        }
        let Some(d) = d else {
            return Ok(true);
        };
        if d.value.is_some() {
            out.push(d.kg, d.key, d.value)?;
        }
        if !out.tick(cancel) {
            return Ok(false);
        }
    }
}

/// The compacted segments being written: cut at key-group boundaries once past the size
/// target, and written no faster than the rate limit.
struct Output<'c> {
    storage: &'c dyn Storage,
    dir: &'c std::path::Path,
    base: u64,
    target: u64,
    bytes_per_sec: u64,
    busy_share: f64,
    /// Time spent sleeping since `start`.
    slept: Duration,
    start: Instant,
    /// Bytes of the finished segments.
    written: u64,
    seq: u32,
    cur: Option<SegmentBuilder>,
    last_kg: Option<u32>,
    /// The segments of the slice under way.
    segments: Vec<SegmentInfo>,
    ops: u32,
}

impl Output<'_> {
    /// The segment that entries of key group `kg` go to: a new one at a key-group boundary
    /// past the size target.
    fn for_group(&mut self, kg: u32) -> Result<&mut SegmentBuilder> {
        if self.last_kg != Some(kg) {
            self.last_kg = Some(kg);
            if self.cur.as_ref().is_some_and(|b| b.len() >= self.target) {
                self.finish_segment()?;
            }
        }
        let b = match self.cur.take() {
            Some(b) => b,
            None => {
                let name = compacted_segment_name(self.base, self.seq);
                self.seq += 1;
                SegmentBuilder::create(self.storage, self.dir, name)?
            }
        };
        Ok(self.cur.insert(b))
    }

    fn group(&mut self, kg: u32, bytes: &[u8], count: u32) -> Result<()> {
        if count > 0 {
            self.for_group(kg)?.append_group(kg, bytes, count)?;
        }
        Ok(())
    }

    fn push(&mut self, kg: u32, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.for_group(kg)?.push(kg, key, value)
    }

    /// Every few thousand calls: whether to go on (`cancel` not set), after sleeping as long
    /// as the limits ask: bytes written, and the share of time spent working.
    fn tick(&mut self, cancel: &AtomicBool) -> bool {
        self.ops += 1;
        if !self.ops.is_multiple_of(4096) {
            return true;
        }
        if cancel.load(Ordering::Relaxed) {
            return false;
        }
        let elapsed = self.start.elapsed();
        let w = self.written + self.cur.as_ref().map_or(0, SegmentBuilder::len);
        let by_bytes = Duration::from_secs_f64(w as f64 / self.bytes_per_sec as f64);
        let busy = elapsed.saturating_sub(self.slept);
        let by_share = busy.div_f64(self.busy_share);
        if let Some(wait) = by_bytes.max(by_share).checked_sub(elapsed) {
            self.sleep(wait.min(Duration::from_millis(100)));
        }
        true
    }

    fn sleep(&mut self, d: Duration) {
        let t = Instant::now();
        std::thread::sleep(d);
        self.slept += t.elapsed();
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some(b) = self.cur.take() {
            let info = b.finish(self.storage)?;
            self.written += info.len;
            self.segments.push(info);
        }
        Ok(())
    }

    /// Finishes the slice's last segment and syncs the directory: the slice's segments.
    fn finish_slice(&mut self) -> Result<Vec<SegmentInfo>> {
        self.finish_segment()?;
        self.last_kg = None;
        if !self.segments.is_empty() {
            self.storage
                .sync_dir(self.dir)
                .map_err(io_err("sync directory", self.dir))?;
        }
        Ok(std::mem::take(&mut self.segments))
    }
}

impl CheckpointWriter<'_> {
    /// Lists slice `c`'s segments in place of the bottom segment it rewrote, if this
    /// checkpoint's chain of that state still holds that segment and every delta the slice
    /// absorbed (it does unless the state was dropped or written whole since `c`'s base).
    /// Adopting the last slice also drops those deltas, once no bottom segment of the
    /// compaction is listed any more. Returns whether it adopted. Contents do not change: a
    /// slice holds what its bottom segment and the deltas read as in its key groups, and the
    /// deltas, still listed after it until the last slice, hold the same newest versions.
    /// A merge of the deltas ([`CheckpointStore::plan_delta_merge`]) is adopted in place of
    /// the deltas, if the chain still lists all of them, next to one another.
    pub fn adopt(&mut self, c: &Compacted) -> bool {
        let s = &c.shared;
        let Some(list) = self.manifest.states.get_mut(&c.key) else {
            return false;
        };
        let before = list.len();
        if s.fold {
            // The merged deltas take their place, which they must still hold together.
            let Some(at) = list.iter().position(|x| s.deltas.contains(&x.name)) else {
                return false;
            };
            let k = s.deltas.len();
            if list.len() < at + k || !list[at..at + k].iter().all(|x| s.deltas.contains(&x.name)) {
                return false;
            }
            list.splice(at..at + k, c.segments.iter().cloned());
            self.trust_adopted(c, before);
            return true;
        }
        let Some(at) = list.iter().position(|x| x.name == s.bottom[c.slice]) else {
            return false;
        };
        let listed = list[at + 1..]
            .iter()
            .filter(|x| s.deltas.contains(&x.name))
            .count();
        if listed != s.deltas.len() {
            return false;
        }
        list.splice(at..=at, c.segments.iter().cloned());
        if c.slice + 1 == s.bottom.len() && !list.iter().any(|x| s.bottom.contains(&x.name)) {
            list.retain(|x| !s.deltas.contains(&x.name));
        }
        self.trust_adopted(c, before);
        true
    }

    /// Accounts for `c`'s segments, adopted into a chain of `before` segments: they count as
    /// inherited, and, written by this process with their crc computed over the bytes
    /// written, are as verified as the checkpoint's own new segments.
    fn trust_adopted(&mut self, c: &Compacted, before: usize) {
        let after = self.manifest.states.get(&c.key).map_or(0, Vec::len);
        self.shared_segments = (self.shared_segments + after).saturating_sub(before);
        let mut verified = self.store.verified_lock();
        for seg in &c.segments {
            verified.insert((seg.name.clone(), seg.len, seg.crc));
        }
    }
}
