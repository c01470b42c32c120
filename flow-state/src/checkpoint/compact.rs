//! Compaction off the checkpoint path (FORMAT.md §6a): a state's chain of segments in one
//! complete checkpoint is merged into fresh segments by another thread, and a later checkpoint
//! adopts them in place of the chain's prefix they replace.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format::{compacted_prefix, compacted_segment_name};
use super::manifest::{SegmentInfo, StateKey};
use super::segment::{Segment, SegmentBuilder};
use super::view::merge;
use super::{CheckpointStore, CheckpointWriter};
use crate::error::{io_err, Result};
use crate::storage::Storage;
use crate::KeyGroupRange;

/// The merge of one state's segments in checkpoint `base`, planned on the checkpoint writer's
/// thread ([`CheckpointStore::plan_compaction`]) and run on any other ([`Compaction::run`]).
pub struct Compaction {
    base: u64,
    key: StateKey,
    inputs: Vec<SegmentInfo>,
    /// Per input, whether this process wrote it during this open of the store (its crc was
    /// computed over the bytes written): those are not verified again.
    trusted: Vec<bool>,
    dir: PathBuf,
    manifest: PathBuf,
    storage: Arc<dyn Storage>,
    segment_target_bytes: u64,
    bytes_per_sec: u64,
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("base", &self.base)
            .field("state", &self.key)
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

/// The files a compaction under way reads and writes, which garbage collection must leave
/// alone ([`CheckpointStore::retain_protecting`]).
#[derive(Clone, Debug)]
pub struct CompactionFiles {
    inputs: Arc<HashSet<String>>,
    output_prefix: String,
}

impl CompactionFiles {
    /// Whether file `name` of the checkpoint directory belongs to the compaction.
    pub fn contains(&self, name: &str) -> bool {
        name.starts_with(&self.output_prefix) || self.inputs.contains(name)
    }
}

/// A state written whole by [`Compaction::run`], for a later checkpoint to adopt
/// ([`CheckpointWriter::adopt`]).
#[derive(Debug)]
pub struct Compacted {
    base: u64,
    key: StateKey,
    replaces: Vec<String>,
    segments: Vec<SegmentInfo>,
    bytes: u64,
    read: u64,
    took: Duration,
}

impl Compacted {
    /// The checkpoint whose segments were merged.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The state: (operator uid, state name).
    pub fn state(&self) -> (&str, &str) {
        (&self.key.0, &self.key.1)
    }

    /// Bytes of the segments written.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Bytes of the segments merged.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// How long the compaction ran, verifying its inputs included.
    pub fn duration(&self) -> Duration {
        self.took
    }
}

impl CheckpointStore {
    /// Plans the compaction of state `name` of operator `uid` as complete checkpoint `base`
    /// holds it: reads only the manifest. `None` if the state has fewer than two segments
    /// (nothing to merge). Output is written at most `bytes_per_sec` fast.
    pub fn plan_compaction(
        &self,
        base: u64,
        uid: &str,
        name: &str,
        bytes_per_sec: u64,
    ) -> Result<Option<Compaction>> {
        let m = self.read_manifest(base)?;
        let key = (uid.to_owned(), name.to_owned());
        let Some(inputs) = m.states.get(&key).filter(|s| s.len() >= 2) else {
            return Ok(None);
        };
        let trusted = {
            let verified = self.verified_lock();
            inputs
                .iter()
                .map(|i| verified.contains(&(i.name.clone(), i.len, i.crc)))
                .collect()
        };
        Ok(Some(Compaction {
            base,
            key,
            inputs: inputs.clone(),
            trusted,
            dir: self.dir.clone(),
            manifest: self.manifest_path(base),
            storage: Arc::clone(&self.storage),
            segment_target_bytes: self.options.segment_target_bytes,
            bytes_per_sec: bytes_per_sec.max(1),
        }))
    }
}

impl Compaction {
    /// The files it reads and will write.
    pub fn files(&self) -> CompactionFiles {
        CompactionFiles {
            inputs: Arc::new(self.inputs.iter().map(|s| s.name.clone()).collect()),
            output_prefix: compacted_prefix(self.base),
        }
    }

    /// Merges the inputs (each verified in full as it is opened, unless this process wrote it)
    /// into new segments — the live
    /// entries only, tombstones dropped — each written, fsynced and renamed, then syncs the
    /// directory. `Ok(None)` if `cancel` was set first: what was written is garbage for the
    /// next `retain`.
    pub fn run(self, cancel: &AtomicBool) -> Result<Option<Compacted>> {
        let began = Instant::now();
        let storage = &*self.storage;
        let mut segs = Vec::with_capacity(self.inputs.len());
        for (info, &trusted) in self.inputs.iter().zip(&self.trusted) {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let open = if trusted {
                Segment::open_trusted
            } else {
                Segment::open
            };
            segs.push(Arc::new(open(storage, &self.dir, info, &self.manifest)?));
        }
        let read = self.inputs.iter().map(|s| s.len).sum();
        let all = KeyGroupRange {
            start: 0,
            end: u32::MAX,
        };
        let start = Instant::now();
        let mut out: Vec<SegmentInfo> = Vec::new();
        let mut cur: Option<SegmentBuilder> = None;
        let mut done: u64 = 0;
        let mut last_kg = None;
        for (n, e) in merge(&segs, all).enumerate() {
            if n % 4096 == 0 {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                // Rate limit: no faster than `bytes_per_sec` on average.
                let written = done + cur.as_ref().map_or(0, SegmentBuilder::len);
                let due = Duration::from_secs_f64(written as f64 / self.bytes_per_sec as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
            }
            let new_group = last_kg != Some(e.key_group);
            last_kg = Some(e.key_group);
            if new_group
                && cur
                    .as_ref()
                    .is_some_and(|b| b.len() >= self.segment_target_bytes)
            {
                if let Some(b) = cur.take() {
                    let info = b.finish(storage)?;
                    done += info.len;
                    out.push(info);
                }
            }
            let b = match &mut cur {
                Some(b) => b,
                None => cur.insert(SegmentBuilder::create(
                    storage,
                    &self.dir,
                    compacted_segment_name(self.base, out.len() as u32),
                )?),
            };
            b.push(e.key_group, e.key, Some(e.value))?;
        }
        if let Some(b) = cur.take() {
            let info = b.finish(storage)?;
            done += info.len;
            out.push(info);
        }
        if !out.is_empty() {
            storage
                .sync_dir(&self.dir)
                .map_err(io_err("sync directory", &self.dir))?;
        }
        Ok(Some(Compacted {
            base: self.base,
            key: self.key,
            replaces: self.inputs.into_iter().map(|s| s.name).collect(),
            segments: out,
            bytes: done,
            read,
            took: began.elapsed(),
        }))
    }
}

impl CheckpointWriter<'_> {
    /// Lists `c`'s segments in place of the segments it merged, if this checkpoint's chain of
    /// that state still begins with exactly those (it does unless the state was dropped or
    /// written whole since `c`'s base). Returns whether it did. A compacted segment holds what
    /// the merged ones held, so the state's contents do not change; only fewer, smaller files
    /// are listed.
    pub fn adopt(&mut self, c: &Compacted) -> bool {
        let Some(list) = self.manifest.states.get_mut(&c.key) else {
            return false;
        };
        let n = c.replaces.len();
        if list.len() < n || list.iter().zip(&c.replaces).any(|(s, r)| &s.name != r) {
            return false;
        }
        list.splice(0..n, c.segments.iter().cloned());
        self.shared_segments =
            self.shared_segments + c.segments.len() - n.min(self.shared_segments);
        // Written by this process, crc computed over the bytes written: as verified as the
        // checkpoint's own new segments.
        let mut verified = self.store.verified_lock();
        for s in &c.segments {
            verified.insert((s.name.clone(), s.len, s.crc));
        }
        true
    }
}
