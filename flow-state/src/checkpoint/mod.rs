//! The checkpoint store: durable, incremental keyed-state checkpoints in one directory, written
//! and recovered exactly as `FORMAT.md` specifies.

mod compact;
mod format;
mod lazy;
mod manifest;
mod segment;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use compact::{ChainShape, Compacted, Compaction, CompactionFiles};
use format::*;
pub use format::{entry_order, key_prefix};
pub use lazy::LazyState;
use manifest::{Manifest, SegmentInfo, StateKey};
use segment::{Segment, SegmentBuilder};
pub use view::{Entry, RestoreView, StateIter};

use crate::error::{io_err, Result, StateError};
use crate::storage::{LockGuard, Storage};

/// The most threads a restore's check of a checkpoint's segments uses.
const MAX_CHECK_THREADS: usize = 16;

/// Tuning of a [`CheckpointStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A state's segment is cut at the next key-group boundary once it exceeds this many bytes.
    pub segment_target_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_target_bytes: 64 << 20,
        }
    }
}

/// What [`CheckpointStore::latest_complete`] found.
#[derive(Debug)]
pub struct Recovered {
    /// The newest complete checkpoint, if any.
    pub checkpoint: Option<u64>,
    /// Newer checkpoints that were skipped because they are damaged, newest first, with the
    /// error naming the damaged file. Empty when the newest checkpoint is intact.
    pub skipped: Vec<(u64, StateError)>,
}

impl Recovered {
    /// Whether recovery had to fall back past a damaged newer checkpoint.
    pub fn fell_back(&self) -> bool {
        !self.skipped.is_empty()
    }
}

/// What a commit wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The committed checkpoint.
    pub checkpoint: u64,
    /// Segment files this checkpoint wrote.
    pub new_segments: usize,
    /// Segment files it shares with earlier checkpoints.
    pub shared_segments: usize,
    /// Bytes written (new segments and the manifest).
    pub bytes_written: u64,
    /// The checkpoint's whole size: every segment it lists, new or shared, and its manifest
    /// (what a restore reads).
    pub total_bytes: u64,
}

/// What [`CheckpointStore::retain`] kept and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The checkpoints kept, ascending.
    pub retained: Vec<u64>,
    /// The files removed.
    pub removed: Vec<String>,
}

/// The checkpoints of one job in one directory (see `FORMAT.md`). Holds the directory's lock
/// file for its whole life.
pub struct CheckpointStore {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: StoreOptions,
    /// Segments verified in full during this open: (name, length, crc). Segments are immutable.
    verified: Mutex<HashSet<(String, u64, u32)>>,
    _lock: LockGuard,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl CheckpointStore {
    /// Opens (creating if needed) the checkpoint directory `dir` and takes its lock file.
    /// Fails with [`StateError::Locked`] if another store has it open. Never writes anything
    /// else: recovery is read-only.
    pub fn open(dir: impl Into<PathBuf>, storage: Arc<dyn Storage>) -> Result<Self> {
        Self::open_with(dir, storage, StoreOptions::default())
    }

    /// [`CheckpointStore::open`] with options.
    pub fn open_with(
        dir: impl Into<PathBuf>,
        storage: Arc<dyn Storage>,
        options: StoreOptions,
    ) -> Result<Self> {
        let dir = dir.into();
        storage
            .create_dir_all(&dir)
            .map_err(io_err("create directory", &dir))?;
        let lock_path = dir.join(LOCK_NAME);
        let holder = format!("pid {}", std::process::id());
        let lock = storage
            .try_lock(&lock_path, &holder)
            .map_err(io_err("lock", &lock_path))?;
        let Some(lock) = lock else {
            let holder = storage
                .read(&lock_path)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "another store".to_owned());
            return Err(StateError::Locked {
                path: lock_path,
                holder,
            });
        };
        Ok(CheckpointStore {
            dir,
            storage,
            options,
            verified: Mutex::new(HashSet::new()),
            _lock: lock,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Ids of every manifest in the directory, complete or not, ascending.
    pub fn checkpoints(&self) -> Result<Vec<u64>> {
        let names = self
            .storage
            .list(&self.dir)
            .map_err(io_err("list", &self.dir))?;
        let mut ids: Vec<u64> = names
            .iter()
            .filter_map(|n| parse_manifest_name(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn manifest_path(&self, id: u64) -> PathBuf {
        self.dir.join(manifest_name(id))
    }

    fn read_manifest(&self, id: u64) -> Result<Manifest> {
        let path = self.manifest_path(id);
        let bytes = match self.storage.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NoSuchCheckpoint { id, path })
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        Manifest::decode(&bytes, &path, id)
    }

    /// Opens the segments `m` lists: in full (checksum and structural walk) unless this open
    /// of the store verified or wrote the same file (name, length and checksum) already —
    /// a restore verifies its checkpoint first ([`CheckpointStore::latest_complete`], on
    /// every core), and is not made to read it all twice.
    fn open_segments(&self, m: &Manifest) -> Result<BTreeMap<StateKey, Vec<Arc<Segment>>>> {
        let mpath = self.manifest_path(m.id);
        let mut out = BTreeMap::new();
        for (k, infos) in &m.states {
            let mut segs = Vec::with_capacity(infos.len());
            for info in infos {
                let known = self
                    .verified_lock()
                    .contains(&(info.name.clone(), info.len, info.crc));
                let seg = if known {
                    Segment::open_trusted(&*self.storage, &self.dir, info, &mpath)?
                } else {
                    Segment::open(&*self.storage, &self.dir, info, &mpath)?
                };
                segs.push(Arc::new(seg));
            }
            out.insert(k.clone(), segs);
        }
        Ok(out)
    }

    /// The bytes of the segments checkpoint `id` needs (its manifest says).
    pub fn segment_bytes(&self, id: u64) -> Result<u64> {
        let m = self.read_manifest(id)?;
        Ok(m.states.values().flatten().map(|i| i.len).sum())
    }

    /// The paths of the segment files checkpoint `id` needs, in its manifest's order (for
    /// tools that copy, back up or measure a checkpoint). They are not checked here.
    pub fn segment_files(&self, id: u64) -> Result<Vec<PathBuf>> {
        let m = self.read_manifest(id)?;
        Ok(m.states
            .values()
            .flatten()
            .map(|i| self.dir.join(&i.name))
            .collect())
    }

    /// Checks that checkpoint `id` is complete: its manifest and every segment it lists are
    /// present and intact (full checksums; segments already verified during this open are not
    /// read again).
    pub fn verify(&self, id: u64) -> Result<()> {
        let m = self.read_manifest(id)?;
        self.verify_manifest(&m)
    }

    /// Reads every segment `m` lists in full, on twice as many threads as the machine has
    /// cores (at most [`MAX_CHECK_THREADS`]). The first damaged segment in the manifest's order
    /// is the error.
    fn verify_manifest(&self, m: &Manifest) -> Result<()> {
        let mpath = self.manifest_path(m.id);
        let todo: Vec<&SegmentInfo> = {
            let verified = self.verified_lock();
            m.states
                .values()
                .flatten()
                .filter(|i| !verified.contains(&(i.name.clone(), i.len, i.crc)))
                .collect()
        };
        // Twice as many threads as cores: a thread waits for its segment's pages (each map is
        // populated whole) while another checks one already read, so the disk and the CPUs
        // both stay busy (on 2 cores, cold: 523-548 ms for 1.16 GB against 547-655 ms with
        // one thread a core). A few threads suffice to keep a disk's queue full.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get() * 2)
            .min(MAX_CHECK_THREADS)
            .min(todo.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        let check = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(info) = todo.get(i) else { return };
            match Segment::open(&*self.storage, &self.dir, info, &mpath) {
                Ok(_) => {
                    self.verified_lock()
                        .insert((info.name.clone(), info.len, info.crc));
                }
                Err(e) => {
                    let mut f = match failures.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    f.push((i, e));
                }
            }
        };
        if threads <= 1 {
            check();
        } else {
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(check);
                }
                check();
            });
        }
        let failures = match failures.into_inner() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        match failures.into_iter().min_by_key(|(i, _)| *i) {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, u64, u32)>> {
        match self.verified.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The newest complete checkpoint. Damaged newer checkpoints are skipped and reported in
    /// [`Recovered::skipped`], never silently.
    pub fn latest_complete(&self) -> Result<Recovered> {
        let mut skipped = Vec::new();
        for id in self.checkpoints()?.into_iter().rev() {
            match self.verify(id) {
                Ok(()) => {
                    return Ok(Recovered {
                        checkpoint: Some(id),
                        skipped,
                    })
                }
                Err(e @ StateError::Io { .. }) => return Err(e),
                Err(e) => skipped.push((id, e)),
            }
        }
        Ok(Recovered {
            checkpoint: None,
            skipped,
        })
    }

    /// Opens checkpoint `id` for reading; every segment it needs is mapped and verified.
    pub fn restore_view(&self, id: u64) -> Result<RestoreView> {
        let manifest = self.read_manifest(id)?;
        let segments = self.open_segments(&manifest)?;
        for info in manifest.states.values().flatten() {
            self.verified_lock()
                .insert((info.name.clone(), info.len, info.crc));
        }
        Ok(RestoreView { manifest, segments })
    }

    /// Begins checkpoint `id` on top of the latest complete checkpoint (incremental: only
    /// changed entries need to be written). `id` must be larger than every checkpoint in the
    /// directory.
    pub fn begin(&mut self, id: u64) -> Result<CheckpointWriter<'_>> {
        let base = self.latest_complete()?.checkpoint;
        self.begin_on(id, base)
    }

    /// Begins checkpoint `id` on top of checkpoint `base` (e.g. the one restored from), or
    /// from nothing (a full checkpoint) if `base` is `None`.
    pub fn begin_on(&mut self, id: u64, base: Option<u64>) -> Result<CheckpointWriter<'_>> {
        if let Some(&largest) = self.checkpoints()?.last() {
            if id <= largest {
                return Err(StateError::IdNotIncreasing {
                    id,
                    largest,
                    dir: self.dir.clone(),
                });
            }
        }
        let mut manifest = match base {
            Some(b) => {
                let m = self.read_manifest(b)?;
                self.verify_manifest(&m)?;
                m
            }
            None => Manifest::default(),
        };
        manifest.id = id;
        manifest.base = base;
        manifest.metadata.clear();
        let shared = manifest.states.values().map(Vec::len).sum();
        Ok(CheckpointWriter {
            store: self,
            manifest,
            next_seq: 0,
            failed: None,
            new_segments: 0,
            new_from: BTreeMap::new(),
            shared_segments: shared,
            bytes_written: 0,
        })
    }

    /// Copies complete checkpoint `id` — its manifest and every segment it lists — into
    /// directory `dest`, as a self-contained checkpoint another store can open and restore
    /// (a savepoint). Segments first (each to a `.tmp` name, fsynced, renamed), a directory
    /// sync, then the manifest the same way and a last directory sync: `dest` holds the
    /// checkpoint once this returns, and a crash before leaves no manifest. Segments already in
    /// `dest` (final names are only given to complete files) are not copied again. Returns the
    /// manifest's path.
    pub fn export(&self, id: u64, dest: &Path) -> Result<PathBuf> {
        self.verify(id)?;
        let m = self.read_manifest(id)?;
        let storage = &*self.storage;
        storage
            .create_dir_all(dest)
            .map_err(io_err("create directory", dest))?;
        let present = storage.list(dest).map_err(io_err("list", dest))?;
        let copy = |name: &str, bytes: &[u8]| -> Result<()> {
            let to = dest.join(name);
            let tmp = dest.join(format!("{name}{TMP_SUFFIX}"));
            let mut f = storage.create(&tmp).map_err(io_err("create", &tmp))?;
            f.write_all(bytes).map_err(io_err("write", &tmp))?;
            f.sync().map_err(io_err("fsync", &tmp))?;
            drop(f);
            storage.rename(&tmp, &to).map_err(io_err("rename", &tmp))
        };
        for seg in m.states.values().flatten() {
            // A final name is only ever given to a complete, synced file.
            if present.contains(&seg.name) {
                continue;
            }
            let from = self.dir.join(&seg.name);
            let bytes = storage.read(&from).map_err(io_err("read", &from))?;
            copy(&seg.name, &bytes)?;
        }
        storage
            .sync_dir(dest)
            .map_err(io_err("sync directory", dest))?;
        let name = manifest_name(id);
        let from = self.dir.join(&name);
        let bytes = storage.read(&from).map_err(io_err("read", &from))?;
        copy(&name, &bytes)?;
        storage
            .sync_dir(dest)
            .map_err(io_err("sync directory", dest))?;
        Ok(dest.join(name))
    }

    /// Keeps the newest `n` (at least 1) complete checkpoints and garbage-collects the rest by
    /// listing the directory (FORMAT.md §6): removes older manifests, segments no retained
    /// checkpoint lists, and `.tmp` leftovers. If no checkpoint is complete, only `.tmp` files
    /// are removed.
    pub fn retain(&mut self, n: usize) -> Result<GcReport> {
        self.retain_protecting(n, &|_| false)
    }

    /// [`CheckpointStore::retain`] that leaves alone every file for which `protect` is true:
    /// those of a compaction under way ([`CompactionFiles::contains`]).
    pub fn retain_protecting(
        &mut self,
        n: usize,
        protect: &dyn Fn(&str) -> bool,
    ) -> Result<GcReport> {
        let n = n.max(1);
        let ids = self.checkpoints()?;
        let mut retained = Vec::new();
        let mut manifests = Vec::new();
        for &id in ids.iter().rev() {
            if retained.len() == n {
                break;
            }
            // Damaged checkpoints are not retained; an I/O error stops GC (no deleting on
            // partial knowledge).
            match self
                .read_manifest(id)
                .and_then(|m| self.verify_manifest(&m).map(|()| m))
            {
                Ok(m) => {
                    retained.push(id);
                    manifests.push(m);
                }
                Err(e @ StateError::Io { .. }) => return Err(e),
                Err(_) => {}
            }
        }
        retained.reverse();
        let names = self
            .storage
            .list(&self.dir)
            .map_err(io_err("list", &self.dir))?;
        let mut keep: BTreeSet<String> = BTreeSet::new();
        for m in &manifests {
            keep.insert(manifest_name(m.id));
            keep.extend(m.states.values().flatten().map(|s| s.name.clone()));
        }
        let newest = retained.last().copied();
        for &id in &ids {
            // Damaged manifests newer than the newest retained checkpoint stay for inspection,
            // with the segments they list if they can still be read.
            if newest.is_none_or(|nw| id > nw) {
                keep.insert(manifest_name(id));
                if let Ok(m) = self.read_manifest(id) {
                    keep.extend(m.states.values().flatten().map(|s| s.name.clone()));
                }
            }
        }
        let mut report = GcReport {
            retained,
            removed: Vec::new(),
        };
        let removable = |name: &String| {
            !keep.contains(name)
                && !protect(name)
                && (is_tmp_name(name)
                    || (newest.is_some()
                        && (parse_manifest_name(name).is_some() || is_segment_name(name))))
        };
        let mut doomed: Vec<&String> = names.iter().filter(|n| removable(n)).collect();
        doomed.sort();
        // Manifests first, made durable, then the files they listed.
        let (first, second): (Vec<&String>, Vec<&String>) = doomed
            .into_iter()
            .partition(|n| parse_manifest_name(n).is_some());
        for phase in [first, second] {
            if phase.is_empty() {
                continue;
            }
            for name in phase {
                let path = self.dir.join(name);
                self.storage
                    .remove(&path)
                    .map_err(io_err("remove", &path))?;
                report.removed.push(name.clone());
            }
            self.storage
                .sync_dir(&self.dir)
                .map_err(io_err("sync directory", &self.dir))?;
        }
        Ok(report)
    }
}

/// A checkpoint being written. Add each changed state with [`CheckpointWriter::state`] and the
/// metadata blobs with [`CheckpointWriter::put_metadata`], then [`CheckpointWriter::commit`].
/// Dropping it without committing leaves only garbage that the next `retain` removes.
pub struct CheckpointWriter<'s> {
    store: &'s mut CheckpointStore,
    manifest: Manifest,
    next_seq: u32,
    failed: Option<String>,
    new_segments: usize,
    shared_segments: usize,
    bytes_written: u64,
    /// For each state written, where its segments of this checkpoint begin in its list.
    new_from: BTreeMap<StateKey, usize>,
}

impl std::fmt::Debug for CheckpointWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointWriter")
            .field("checkpoint", &self.manifest.id)
            .finish()
    }
}

impl<'s> CheckpointWriter<'s> {
    /// The checkpoint being written.
    pub fn checkpoint_id(&self) -> u64 {
        self.manifest.id
    }

    /// Starts writing the changed entries of state `name` of operator `uid`. Entries are
    /// streamed to segment files as they are added. Several writers for the same state in one
    /// checkpoint (e.g. one per subtask's key-group range) are allowed; for a key written by
    /// more than one, the later writer wins.
    pub fn state(&mut self, uid: &str, name: &str) -> StateWriter<'_, 's> {
        StateWriter {
            cw: self,
            key: (uid.to_owned(), name.to_owned()),
            cur: None,
            last: None,
            done: false,
        }
    }

    /// Records metadata blob `name` (a source position, a sink's pre-commit record) with this
    /// checkpoint. Blobs are not inherited from the base checkpoint.
    pub fn put_metadata(&mut self, name: &str, blob: &[u8]) {
        self.manifest
            .metadata
            .insert(name.to_owned(), blob.to_vec());
    }

    /// Drops state `name` of operator `uid` from this checkpoint on (its inherited segments are
    /// no longer listed).
    pub fn drop_state(&mut self, uid: &str, name: &str) {
        let key = (uid.to_owned(), name.to_owned());
        self.new_from.remove(&key);
        if let Some(segs) = self.manifest.states.remove(&key) {
            self.shared_segments -= segs.len().min(self.shared_segments);
        }
    }

    fn fail(&mut self, e: &StateError) {
        if self.failed.is_none() {
            self.failed = Some(e.to_string());
        }
    }

    /// Makes the checkpoint durable (FORMAT.md §4: directory sync for the segment renames,
    /// manifest to a `.tmp` name, fsync, rename — the commit point — and directory sync). An
    /// error fails the checkpoint; nothing is retried.
    pub fn commit(mut self) -> Result<CommitInfo> {
        let id = self.manifest.id;
        if let Some(reason) = self.failed {
            return Err(StateError::Failed {
                checkpoint: id,
                reason,
            });
        }
        // A state's segments of this checkpoint that cover disjoint key groups (one per
        // subtask, written in the order their changes came) are listed in key-group order,
        // so that a reader merges them as one run. Overlapping ones keep their order: of two
        // writes of a key, the later writer's wins.
        for (key, from) in &self.new_from {
            if let Some(segs) = self.manifest.states.get_mut(key) {
                let from = (*from).min(segs.len());
                let new = &mut segs[from..];
                let mut sorted: Vec<(u32, u32)> =
                    new.iter().map(|s| (s.kg_start, s.kg_end)).collect();
                sorted.sort_unstable();
                if sorted.windows(2).all(|w| w[0].1 <= w[1].0) {
                    new.sort_by_key(|s| s.kg_start);
                }
            }
        }
        let storage = &*self.store.storage;
        let dir = &self.store.dir;
        if self.new_segments > 0 {
            storage
                .sync_dir(dir)
                .map_err(io_err("sync directory", dir))?;
        }
        let bytes = self.manifest.encode();
        let path = dir.join(manifest_name(id));
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", manifest_name(id)));
        let mut f = storage.create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(&bytes).map_err(io_err("write", &tmp))?;
        f.sync().map_err(io_err("fsync", &tmp))?;
        drop(f);
        storage
            .rename(&tmp, &path)
            .map_err(io_err("rename", &tmp))?;
        storage
            .sync_dir(dir)
            .map_err(io_err("sync directory", dir))?;
        let segments: u64 = self.manifest.states.values().flatten().map(|s| s.len).sum();
        Ok(CommitInfo {
            checkpoint: id,
            new_segments: self.new_segments,
            shared_segments: self.shared_segments,
            bytes_written: self.bytes_written + bytes.len() as u64,
            total_bytes: segments + bytes.len() as u64,
        })
    }
}

/// Streams the changed entries of one state into segment files. Entries must come in strictly
/// increasing `(key group, key)` order (keys compared bytewise); `None` records a deletion.
/// Call [`StateWriter::finish`]; dropping it unfinished fails the checkpoint.
pub struct StateWriter<'w, 's> {
    cw: &'w mut CheckpointWriter<'s>,
    key: StateKey,
    cur: Option<SegmentBuilder>,
    last: Option<(u32, Vec<u8>)>,
    done: bool,
}

impl std::fmt::Debug for StateWriter<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWriter")
            .field("state", &self.key)
            .finish()
    }
}

impl StateWriter<'_, '_> {
    /// Adds one changed entry: `Some(value)` sets `key` in `key_group`, `None` deletes it.
    pub fn put(&mut self, key_group: u32, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let r = self.put_inner(key_group, key, value);
        if let Err(e) = &r {
            self.cw.fail(e);
        }
        r
    }

    fn put_inner(&mut self, kg: u32, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let checkpoint = self.cw.manifest.id;
        if let Some(reason) = &self.cw.failed {
            return Err(StateError::Failed {
                checkpoint,
                reason: reason.clone(),
            });
        }
        if key.len() >= TOMBSTONE as usize || value.is_some_and(|v| v.len() >= TOMBSTONE as usize) {
            return Err(StateError::Usage {
                checkpoint,
                reason: "key or value of 4 GiB or more".into(),
            });
        }
        let new_group = match &self.last {
            Some((lkg, lkey)) if entry_order(kg, key, *lkg, lkey).is_le() => {
                return Err(StateError::Usage {
                    checkpoint,
                    reason: format!(
                        "state {}/{}: entries must be in strictly increasing (key group, key) order; got key group {kg} after {lkg}",
                        self.key.0, self.key.1
                    ),
                });
            }
            Some((lkg, _)) => *lkg != kg,
            None => true,
        };
        if new_group
            && self
                .cur
                .as_ref()
                .is_some_and(|b| b.len() >= self.cw.store.options.segment_target_bytes)
        {
            self.finish_segment()?;
        }
        if self.cur.is_none() {
            let name = segment_name(checkpoint, self.cw.next_seq);
            self.cw.next_seq += 1;
            self.cur = Some(SegmentBuilder::create(
                &*self.cw.store.storage,
                &self.cw.store.dir,
                name,
            )?);
        }
        if let Some(b) = self.cur.as_mut() {
            b.push(kg, key, value)?;
        }
        match &mut self.last {
            Some((lkg, lkey)) => {
                *lkg = kg;
                lkey.clear();
                lkey.extend_from_slice(key);
            }
            None => self.last = Some((kg, key.to_vec())),
        }
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        if let Some(b) = self.cur.take() {
            let info = b.finish(&*self.cw.store.storage)?;
            // Its crc was computed over the bytes written: reading it back from the page
            // cache to verify it again (the next checkpoint's base check) would prove nothing.
            self.cw
                .store
                .verified_lock()
                .insert((info.name.clone(), info.len, info.crc));
            self.cw.bytes_written += info.len;
            self.cw.new_segments += 1;
            let segs = self.cw.manifest.states.entry(self.key.clone()).or_default();
            self.cw
                .new_from
                .entry(self.key.clone())
                .or_insert(segs.len());
            segs.push(info);
        }
        Ok(())
    }

    /// Finishes the state's last segment (write, fsync, rename). A state with no entries
    /// writes no file.
    pub fn finish(mut self) -> Result<()> {
        self.done = true;
        let r = self.finish_segment();
        if let Err(e) = &r {
            self.cw.fail(e);
        }
        r
    }
}

impl Drop for StateWriter<'_, '_> {
    fn drop(&mut self) {
        if !self.done && self.cur.is_some() {
            let reason = format!("state {}/{} was not finished", self.key.0, self.key.1);
            if self.cw.failed.is_none() {
                self.cw.failed = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyGroupRange, SimStorage};

    fn write(cw: &mut CheckpointWriter<'_>, kgs: std::ops::Range<u32>, value: &[u8]) {
        let mut w = cw.state("op", "s");
        for kg in kgs {
            w.put(kg, b"k", Some(value)).unwrap();
        }
        w.finish().unwrap();
    }

    fn listed(store: &CheckpointStore, id: u64) -> Vec<(u32, u32)> {
        let m = store.read_manifest(id).unwrap();
        m.states[&("op".to_owned(), "s".to_owned())]
            .iter()
            .map(|s| (s.kg_start, s.kg_end))
            .collect()
    }

    #[test]
    fn a_checkpoints_disjoint_segments_of_a_state_are_listed_in_key_group_order() {
        let mut store = CheckpointStore::open("/d", Arc::new(SimStorage::new())).unwrap();
        let mut cw = store.begin(1).unwrap();
        write(&mut cw, 0..4, b"base");
        cw.commit().unwrap();
        // The second subtask's changes come first.
        let mut cw = store.begin(2).unwrap();
        write(&mut cw, 8..12, b"b");
        write(&mut cw, 4..8, b"a");
        cw.commit().unwrap();
        assert_eq!(listed(&store, 2), vec![(0, 4), (4, 8), (8, 12)]);
        // Overlapping ones keep the order they were written in: the later one wins.
        let mut cw = store.begin(3).unwrap();
        write(&mut cw, 4..6, b"x");
        write(&mut cw, 2..5, b"y");
        cw.commit().unwrap();
        assert_eq!(
            listed(&store, 3),
            vec![(0, 4), (4, 8), (8, 12), (4, 6), (2, 5)]
        );
        let view = store.restore_view(3).unwrap();
        let got: Vec<(u32, Vec<u8>)> = view
            .entries("op", "s", KeyGroupRange { start: 0, end: 12 })
            .unwrap()
            .map(|e| (e.key_group, e.value.to_vec()))
            .collect();
        assert_eq!(got[4], (4, b"y".to_vec()), "the later writer wins");
        assert_eq!(got[5], (5, b"x".to_vec()));
        assert_eq!(got[8], (8, b"b".to_vec()));
    }
}
