//! The checkpoint writer: a thread of its own that turns the parts subtasks froze at a barrier
//! into a durable checkpoint (`flow-state`'s segments and manifest), then publishes the files
//! sinks pre-committed for it and drops old checkpoints.
//!
//! Protocol, for checkpoint `n`:
//! 1. Every subtask sends its [`Part`] for `n` when barrier `n` has passed through it — before
//!    it forwards the barrier, so before any sink downstream acknowledges `n`.
//! 2. When every sink subtask has acknowledged `n` (or finished), the coordinator sends
//!    `Complete(n)`: by (1) every part of `n` is already queued.
//! 3. The writer writes the changed entries as segments and commits the manifest (`FORMAT.md`
//!    §4); the checkpoint exists once the manifest's rename is durable, and only then does the
//!    writer publish the sink files of `n` and record the checkpoint as completed. Changes the
//!    subtasks still copy after the barrier (encoded into sortable entries as they go) are
//!    received in turn, sorted and written at once: one subtask's segment goes to disk while
//!    another's copy is still under way.
//!
//! A subtask that finishes (bounded input, or a stop) sends a final part: its state after the
//! end of input and its final source position. It belongs to every checkpoint after the last
//! barrier the subtask saw, since everything it sent downstream precedes those barriers. At the
//! end of a job, a last checkpoint records every final part, so a finished job restores as
//! finished.
//!
//! The last checkpoint of a job that finished (every source at its end) holds no keyed state,
//! as Flink's final checkpoint snapshots no finished task: nothing can reach the operators of a
//! finished job again, so a restore of it only finds the sources at their ends, publishes the
//! sinks' last files and ends, and its window contents, timers and per-key state would never
//! be read. It records the final positions, operator state (such as a bounded aggregate's
//! "finished") and the sinks' pre-commits, and starts from no base, so the state's segments
//! become garbage. A checkpoint still to be written when the job finishes is subsumed by it:
//! the writer abandons it (even part way through encoding or writing), since the last
//! checkpoint records everything it would have — each sink's last pre-commit lists every file
//! not yet published. A job given a savepoint directory keeps its state in the last
//! checkpoint instead (the savepoint is for restoring that state elsewhere), and writes every
//! checkpoint before it.
//!
//! Metadata (positions, operator state) is carried forward: a checkpoint holds the latest blob
//! of every name, so a finished subtask's final position stays in every later checkpoint.
use super::snapshot::{Abandon, CheckpointStats, Deferred, KeyedDelta, Part};
use crate::error::{Error, Result};
use crossbeam_channel::{Receiver, Sender};
use flow_state::{CheckpointStore, CheckpointWriter};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message to the checkpoint writer.
pub(crate) enum ToWriter {
    /// A subtask's part of checkpoint `id`.
    Part { id: u64, part: Part },
    /// A finished subtask's final part; `after` is the last barrier it saw.
    Final { after: u64, part: Part },
    /// Every sink acknowledged checkpoint `id`, requested at `requested`.
    Complete { id: u64, requested: Instant },
    /// The job ended: commit a last checkpoint `last` (if the job finished) and stop. A job
    /// stopped at checkpoint `stopped_at` takes no last checkpoint; that one is its savepoint.
    Shutdown {
        last: Option<u64>,
        stopped_at: Option<u64>,
    },
}

/// Publishes what a sink pre-committed for a checkpoint, once the checkpoint is durable:
/// called with the checkpoint id and the blobs of the sink's subtasks.
pub(crate) type Publish = Box<dyn FnMut(u64, &[&[u8]]) -> Result<()> + Send>;

/// How a sink stage's output takes part in checkpoints.
pub(crate) struct SinkCommit {
    /// Publishes a checkpoint's pre-committed files once the checkpoint is durable.
    pub(crate) publish: Publish,
    /// Before the job starts: brings the output to the restored checkpoint `(id, blobs of
    /// the sink's subtasks)` — publishes what it pre-committed (idempotently), removes what
    /// later checkpoints or an unfinished run wrote — or, for a fresh start (`None`),
    /// empties it.
    pub(crate) recover: Recover,
}

/// See [`SinkCommit::recover`].
pub(crate) type Recover = Box<dyn FnOnce(Option<(u64, Vec<Vec<u8>>)>) -> Result<()>>;

/// A sink stage's publish step, with the prefix of its subtasks' metadata names.
pub(crate) struct SinkPublisher {
    pub(crate) prefix: String,
    pub(crate) publish: Publish,
}

/// What the writer shares with the job.
#[derive(Default)]
pub(crate) struct WriterShared {
    pub(crate) completed: Mutex<Vec<CheckpointStats>>,
    /// The checkpoints that failed, with when (ms since the epoch) and why.
    pub(crate) failures: Mutex<Vec<super::snapshot::FailedCheckpoint>>,
    /// An error that fails the job (too many failed checkpoints, a failed publish).
    pub(crate) failed: Mutex<Option<Error>>,
    /// The savepoint written at the end of the job.
    pub(crate) savepoint: Mutex<Option<std::path::PathBuf>>,
    /// The highest checkpoint id the writer has finished with, durable or failed.
    pub(crate) settled: std::sync::atomic::AtomicU64,
}

/// Records, when dropped, that the writer is done with checkpoint `.1`.
struct Settle(Arc<WriterShared>, u64);

impl Drop for Settle {
    fn drop(&mut self) {
        self.0
            .settled
            .fetch_max(self.1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// How the writer runs.
pub(crate) struct WriterOptions {
    /// Complete checkpoints to keep.
    pub(crate) retained: usize,
    /// Consecutive failed checkpoints the job tolerates before it fails.
    pub(crate) tolerable_failures: u32,
    /// The checkpoint the job restored, the base of the first incremental one.
    pub(crate) base: Option<u64>,
    /// Metadata every checkpoint records (state declarations, key groups).
    pub(crate) job_meta: Vec<(String, Vec<u8>)>,
    /// Metadata of the restored checkpoint, carried on until replaced.
    pub(crate) carried: Vec<(String, Vec<u8>)>,
    /// The job's subtasks: a checkpoint is written once each has sent its part (or its final
    /// part, if it finished before the barrier reached it).
    pub(crate) tasks: usize,
    /// Where the job's last checkpoint is also written as a savepoint.
    pub(crate) savepoint_dir: Option<std::path::PathBuf>,
}

/// The running writer.
pub(crate) struct Writer {
    pub(crate) tx: Sender<ToWriter>,
    pub(crate) shared: Arc<WriterShared>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Set when the job finished, if its last checkpoint subsumes earlier ones (no savepoint
    /// asked for): the writer abandons the checkpoint under way.
    finishing: Option<Abandon>,
}

impl Writer {
    /// Starts the writer thread over `store`.
    pub(crate) fn start(
        store: CheckpointStore,
        options: WriterOptions,
        sinks: Vec<SinkPublisher>,
    ) -> Result<Writer> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WriterShared::default());
        let subsume = Abandon::default();
        let finishing = options.savepoint_dir.is_none().then(|| subsume.clone());
        let mut state = WriterState {
            subsume,
            final_id: None,
            store,
            last: options.base,
            carried: options.carried.into_iter().collect(),
            job_meta: options.job_meta,
            parts: BTreeMap::new(),
            finals: Vec::new(),
            finished: 0,
            tasks: options.tasks,
            ready: BTreeMap::new(),
            savepoint_dir: options.savepoint_dir,
            unwritten: Vec::new(),
            sinks,
            retained: options.retained.max(1),
            tolerable: options.tolerable_failures,
            failures: 0,
            shared: shared.clone(),
            compaction: None,
        };
        let thread = std::thread::Builder::new()
            .name("flow-checkpoint".into())
            .spawn(move || state.run(rx))
            .map_err(|e| Error::Spawn {
                what: "checkpoint writer",
                source: e,
            })?;
        Ok(Writer {
            tx,
            shared,
            thread: Some(thread),
            finishing,
        })
    }

    /// Ends the writer: with `last`, after committing that final checkpoint; with
    /// `stopped_at`, writing that checkpoint (the one the job stopped at) as the savepoint.
    /// Returns the error that failed the job, if any.
    pub(crate) fn shutdown(mut self, last: Option<u64>, stopped_at: Option<u64>) -> Result<()> {
        if let (Some(_), Some(f)) = (last, &self.finishing) {
            // Before the message: the writer may be deep in a checkpoint the last subsumes.
            f.set();
        }
        let _ = self.tx.send(ToWriter::Shutdown { last, stopped_at });
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                return Err(Error::Checkpoint("the checkpoint writer panicked".into()));
            }
        }
        match self.shared.failed.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

struct WriterState {
    /// Set when the job finished and its last checkpoint subsumes the ones before it
    /// (see the module's doc).
    subsume: Abandon,
    /// The id of the job's last checkpoint, once the job ended.
    final_id: Option<u64>,
    store: CheckpointStore,
    /// The last committed checkpoint (the base of the next).
    last: Option<u64>,
    carried: BTreeMap<String, Vec<u8>>,
    job_meta: Vec<(String, Vec<u8>)>,
    parts: BTreeMap<u64, Vec<Part>>,
    /// Final parts not yet written, with the last barrier their subtask saw.
    finals: Vec<(u64, Part)>,
    /// Subtasks whose final part is written.
    finished: usize,
    tasks: usize,
    /// Checkpoints every sink acknowledged, with when they were requested, waiting for the
    /// parts of subtasks that are still sending them (a subtask that ended may tell its
    /// consumers before its final part reaches the writer).
    ready: BTreeMap<u64, Instant>,
    savepoint_dir: Option<std::path::PathBuf>,
    /// Incremental changes of a checkpoint that failed, for the next one.
    unwritten: Vec<KeyedDelta>,
    sinks: Vec<SinkPublisher>,
    retained: usize,
    tolerable: u32,
    failures: u32,
    shared: Arc<WriterShared>,
    /// The background compaction under way, if any.
    compaction: Option<RunningCompaction>,
}

/// A compaction on a thread of its own ([`WriterState::compact_after`]).
struct RunningCompaction {
    files: flow_state::CompactionFiles,
    cancel: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<flow_state::Result<bool>>,
    /// Whether [`WriterState::warn_if_starved`] has warned.
    warned: bool,
}

impl Drop for WriterState {
    /// A compaction still running is cancelled and waited for: no thread of this job writes
    /// into the checkpoint directory once its lock is released.
    fn drop(&mut self) {
        if let Some(c) = self.compaction.take() {
            c.cancel.store(true, AtomicOrdering::Relaxed);
            let _ = c.thread.join();
        }
    }
}

impl WriterState {
    fn run(&mut self, rx: Receiver<ToWriter>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                ToWriter::Part { id, part } => self.parts.entry(id).or_default().push(part),
                ToWriter::Final { after, part } => self.finals.push((after, part)),
                ToWriter::Complete { id, requested } => {
                    self.ready.insert(id, requested);
                }
                ToWriter::Shutdown { last, stopped_at } => {
                    // Every subtask has ended: all parts are in.
                    self.final_id = last;
                    self.commit_ready();
                    if let Some(s) = stopped_at.filter(|&s| self.last == Some(s)) {
                        self.savepoint(s);
                        return;
                    }
                    if let Some(id) = last {
                        if self.shared.failed.lock().is_none() && self.ready.is_empty() {
                            self.ready.insert(id, Instant::now());
                            self.commit_ready();
                            if self.last == Some(id) {
                                self.savepoint(id);
                            }
                        }
                    }
                    return;
                }
            }
            self.commit_ready();
        }
    }

    /// Writes checkpoint `id` as a savepoint, if the job asked for one.
    fn savepoint(&mut self, id: u64) {
        let Some(dir) = &self.savepoint_dir else {
            return;
        };
        let dest = dir.join(format!("savepoint-{id}"));
        match self.store.export(id, &dest) {
            Ok(_) => *self.shared.savepoint.lock() = Some(dest),
            Err(e) => self.fail_job(Error::Checkpoint(format!(
                "writing savepoint {}: {e}",
                dest.display()
            ))),
        }
    }

    /// Commits the acknowledged checkpoints, in order, whose parts are all in.
    fn commit_ready(&mut self) {
        while let Some((&id, &requested)) = self.ready.first_key_value() {
            let have = self.parts.get(&id).map_or(0, Vec::len)
                + self.finished
                + self.finals.iter().filter(|(after, _)| *after < id).count();
            if have < self.tasks {
                return;
            }
            self.ready.remove(&id);
            self.checkpoint(id, requested);
        }
    }

    fn fail_job(&self, e: Error) {
        let mut f = self.shared.failed.lock();
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn checkpoint(&mut self, id: u64, requested: Instant) {
        let _settle = Settle(Arc::clone(&self.shared), id);
        if self.shared.failed.lock().is_some() {
            return;
        }
        let last = self.final_id == Some(id);
        // The job finished: its last checkpoint holds no keyed state and subsumes this one.
        let finishing = self.subsume.is_set();
        if finishing && !last {
            self.parts.remove(&id);
            subsumed(id);
            return;
        }
        let abandon = if last {
            Abandon::default()
        } else {
            self.subsume.clone()
        };
        let mut parts = self.parts.remove(&id).unwrap_or_default();
        if finishing {
            self.unwritten.clear();
            drop_keyed(&mut parts);
        }
        if !self.unwritten.is_empty() {
            // Changes of a failed checkpoint merge with these: theirs must be ready first.
            if let Err(e) = encode_deferred(&mut parts, &abandon) {
                if abandon.is_set() {
                    subsumed(id);
                } else {
                    self.fail_job(e);
                }
                return;
            }
            let earlier = std::mem::take(&mut self.unwritten);
            merge_unwritten(&mut parts, earlier);
        }
        // Parts of checkpoints before `id` that never completed (cannot happen: checkpoints
        // complete in order) are dropped with them.
        self.parts.retain(|&k, _| k > id);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.finals)
            .into_iter()
            .partition(|(after, _)| *after < id);
        self.finals = later;
        self.finished += due.len();
        let own = parts.len();
        let due_after: Vec<u64> = due.iter().map(|(after, _)| *after).collect();
        parts.extend(due.into_iter().map(|(_, p)| p));
        if finishing {
            drop_keyed(&mut parts);
        }
        let freeze = Instant::now();
        // The changes still being copied are written as they come, each as soon as it is
        // sorted: a subtask's segment goes to disk while another's copy is still under way.
        let written = match self.write(id, &mut parts, &abandon, finishing) {
            Err(Failed::Changes(e)) => {
                if abandon.is_set() {
                    // The final parts go with the last checkpoint (their keyed changes,
                    // encoded or not, are not written by it).
                    let finals = parts.split_off(own);
                    self.finished -= finals.len();
                    self.finals.extend(due_after.into_iter().zip(finals));
                    subsumed(id);
                } else {
                    self.fail_job(e);
                }
                return;
            }
            Err(Failed::Write(e)) => Err(e),
            Ok(w) => Ok(w),
        };
        let pause = parts.iter().map(|p| p.pause).max().unwrap_or_default();
        // Durable once its manifest is: publishing the output and removing old checkpoints
        // come after (and a crash between finishes the publish on restore).
        let (durable, write) = (requested.elapsed(), freeze.elapsed());
        match written {
            Ok((bytes, total_bytes)) => {
                self.failures = 0;
                self.last = Some(id);
                if let Err(e) = self.publish(id, &parts) {
                    // Output that cannot be published fails the job; the next run publishes
                    // it on restore.
                    self.fail_job(e);
                    return;
                }
                self.compact_after(id, &parts);
                let protect = self.compaction.as_ref().map(|c| c.files.clone());
                let protected = |name: &str| protect.as_ref().is_some_and(|f| f.contains(name));
                let removing = Instant::now();
                if let Err(e) = self.store.retain_protecting(self.retained, &protected) {
                    tracing::warn!("checkpoint {id}: removing old checkpoints failed: {e}");
                }
                tracing::debug!(
                    checkpoint = id,
                    ms = removing.elapsed().as_secs_f64() * 1e3,
                    "old checkpoints removed"
                );
                self.shared.completed.lock().push(CheckpointStats {
                    id,
                    duration: durable,
                    write,
                    bytes,
                    total_bytes,
                    pause,
                });
                tracing::info!(
                    checkpoint = id,
                    bytes,
                    ms = durable.as_millis() as u64,
                    "checkpoint complete"
                );
            }
            Err(e) => {
                // A finished subtask's final part belongs to the next checkpoint that
                // completes: its sink's pre-commit would be lost with this one.
                let finals = parts.split_off(own);
                self.finished -= finals.len();
                self.finals.extend(due_after.into_iter().zip(finals));
                if abandon.is_set() {
                    // Its segments written so far are garbage the last checkpoint removes.
                    subsumed(id);
                    return;
                }
                // The changes of incremental states are not written again by their operators:
                // they go with the next checkpoint (whose own changes win), those still
                // being copied too.
                if let Err(e) = encode_deferred(&mut parts, &abandon) {
                    self.fail_job(e);
                    return;
                }
                for p in &mut parts {
                    self.unwritten.extend(p.keyed.drain(..).filter(|d| !d.full));
                }
                self.failures += 1;
                tracing::warn!("checkpoint {id} failed ({} in a row): {e}", self.failures);
                self.shared
                    .failures
                    .lock()
                    .push(super::snapshot::FailedCheckpoint {
                        id,
                        at_ms: crate::time::now_ms(),
                        error: e.to_string(),
                    });
                if self.failures > self.tolerable {
                    self.fail_job(Error::Checkpoint(format!(
                        "{} checkpoints in a row failed, the last with: {e}",
                        self.failures
                    )));
                }
            }
        }
    }

    /// Writes and commits checkpoint `id`: every state's changes, and, in place of the
    /// segments they replace, the slices a background compaction finished
    /// ([`WriterState::compact_after`]). `no_state`: the job's last checkpoint, with no
    /// keyed state and no base. The changes ready go first; those still being copied
    /// ([`Part::deferred`]) are then received, sorted and written one by one, each into its
    /// part. Returns the bytes written and the checkpoint's whole size.
    fn write(
        &mut self,
        id: u64,
        parts: &mut [Part],
        abandon: &Abandon,
        no_state: bool,
    ) -> std::result::Result<(u64, u64), Failed> {
        for p in parts.iter() {
            for (n, b) in &p.meta {
                // Sink pre-commits belong to this checkpoint only; they are published once.
                if !n.starts_with("sink/") {
                    self.carried.insert(n.clone(), b.clone());
                }
            }
        }
        if no_state {
            if let Some(c) = &self.compaction {
                // Its output has no state to go into.
                c.cancel.store(true, AtomicOrdering::Relaxed);
            }
        }
        let slices = match &self.compaction {
            Some(c) if !no_state => c.files.take_finished(),
            _ => Vec::new(),
        };
        let base = if no_state { None } else { self.last };
        let mut cw = self
            .store
            .begin_on(id, base)
            .map_err(|e| Failed::Write(e.into()))?;
        let mut states = StatesWritten::default();
        let mut ready: Vec<&KeyedDelta> = parts.iter().flat_map(|p| &p.keyed).collect();
        ready.sort_by(|a, b| {
            (&a.uid, &a.name, a.range.start).cmp(&(&b.uid, &b.name, b.range.start))
        });
        for d in &ready {
            if d.full {
                states.drop_before(&mut cw, d).map_err(Failed::Write)?;
            }
        }
        let mut adopted = None;
        for c in &slices {
            let (uid, name) = c.state();
            let (slice, of) = c.slice();
            if !cw.adopt(c) {
                // Written whole or dropped since: the compaction's files are garbage.
                tracing::debug!("compaction of `{uid}`/`{name}` from {} is stale", c.base());
                if let Some(c) = &self.compaction {
                    c.cancel.store(true, AtomicOrdering::Relaxed);
                }
                break;
            }
            adopted = Some(slice);
            tracing::info!(
                checkpoint = id,
                base = c.base(),
                read = c.bytes_read(),
                written = c.bytes_written(),
                ms = c.duration().as_millis() as u64,
                "state `{name}` of operator `{uid}`: slice {} of {of} compacted",
                slice + 1
            );
        }
        let mut segments = Duration::ZERO;
        for d in ready {
            segments += write_delta(&mut cw, d, abandon, &mut states).map_err(Failed::Write)?;
        }
        for p in parts.iter_mut() {
            // One at a time: on a failure the rest stay in the part, for the caller.
            while !p.deferred.is_empty() {
                let deferred = p.deferred.remove(0);
                let Some(d) = receive(deferred, abandon).map_err(Failed::Changes)? else {
                    continue;
                };
                if d.full {
                    states.drop_before(&mut cw, &d).map_err(Failed::Write)?;
                }
                p.pause = p.pause.max(d.pause);
                let wrote = write_delta(&mut cw, &d, abandon, &mut states);
                // Kept in its part, written or not: a failed checkpoint's changes go with
                // the next one.
                p.keyed.push(d);
                segments += wrote.map_err(Failed::Write)?;
            }
        }
        let started = Instant::now();
        for (n, b) in &self.job_meta {
            cw.put_metadata(n, b);
        }
        for (n, b) in &self.carried {
            cw.put_metadata(n, b);
        }
        for (n, b) in parts.iter().flat_map(|p| &p.meta) {
            if n.starts_with("sink/") {
                cw.put_metadata(n, b);
            }
        }
        let info = cw.commit().map_err(|e| Failed::Write(e.into()))?;
        tracing::debug!(
            checkpoint = id,
            segments_ms = segments.as_secs_f64() * 1e3,
            commit_ms = started.elapsed().as_secs_f64() * 1e3,
            "segments written and manifest committed"
        );
        if let (Some(slice), Some(c)) = (adopted, &self.compaction) {
            c.files.committed(slice);
        }
        Ok((info.bytes_written, info.total_bytes))
    }

    /// Ends the background compaction once its thread has stopped and every slice it
    /// finished has been handed to a checkpoint (or at once, if it was cancelled as stale).
    /// A failed compaction is logged and forgotten: the slices adopted so far stay, the state
    /// keeps the rest of its chain, and a later checkpoint starts another.
    fn reap_compaction(&mut self) {
        let Some(c) = &self.compaction else {
            return;
        };
        if !c.thread.is_finished() || c.files.has_finished() {
            return;
        }
        let Some(c) = self.compaction.take() else {
            return;
        };
        match c.thread.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("background compaction failed: {e}"),
            Err(_) => tracing::warn!("background compaction panicked"),
        }
    }

    /// Warns (once per compaction) when the compaction under way falls so far behind that a
    /// state's chain has grown to 4x [`MAX_CHAIN`]: restores then merge more segments and the
    /// directory holds more than 1.5x the live state until it catches up.
    fn warn_if_starved(&mut self, id: u64, parts: &[Part]) {
        let Some(c) = self.compaction.as_mut() else {
            return;
        };
        if c.warned {
            return;
        }
        for (uid, name, ranges) in changed_states(parts) {
            let chain = self
                .store
                .chain_shape(id, uid, name)
                .map_or(0, |s| s.segments);
            if chain >= 4 * MAX_CHAIN * ranges {
                c.warned = true;
                tracing::warn!(
                    "checkpoint {id}: state `{name}` of operator `{uid}` has {chain} segments \
                     while a compaction falls behind"
                );
                return;
            }
        }
    }

    /// After checkpoint `id` committed: ends a compaction that is done, or starts one, on a
    /// thread of its own busy at most [`COMPACTION_BUSY_SHARE`] of the time and writing at
    /// most [`COMPACTION_BYTES_PER_SEC`], for the first incremental state of `parts` that
    /// needs it: a rewrite of the bottom once the deltas outweigh `1 / COMPACT_AT` of it (the
    /// directory stays near 1.5x the live state), else a merge of the deltas alone once they
    /// are [`DELTA_RUNS`] runs (a restore merges a bounded number of runs; where checkpoints
    /// keep changing the same keys, the merged deltas stay small and the bottom is rarely
    /// rewritten). Decided from `id`'s manifest alone; one compaction at a time. Later
    /// checkpoints adopt its slices as they finish; none waits for it.
    fn compact_after(&mut self, id: u64, parts: &[Part]) {
        self.reap_compaction();
        if self.compaction.is_some() {
            self.warn_if_starved(id, parts);
            return;
        }
        for (uid, name, _) in changed_states(parts) {
            let shape = match self.store.chain_shape(id, uid, name) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("checkpoint {id}: deciding on compaction: {e}");
                    return;
                }
            };
            let planned = if shape.delta_bytes * COMPACT_AT > shape.bottom_bytes.max(4096) {
                self.store
                    .plan_compaction(id, uid, name, COMPACTION_BYTES_PER_SEC)
            } else if shape.delta_runs >= DELTA_RUNS {
                self.store
                    .plan_delta_merge(id, uid, name, COMPACTION_BYTES_PER_SEC)
            } else {
                continue;
            };
            let plan = match planned {
                Ok(Some(p)) => p.busy_at_most(COMPACTION_BUSY_SHARE),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("checkpoint {id}: planning compaction: {e}");
                    return;
                }
            };
            let files = plan.files();
            let cancel = Arc::new(AtomicBool::new(false));
            let stop = Arc::clone(&cancel);
            let spawned = std::thread::Builder::new()
                .name("flow-compaction".into())
                .spawn(move || plan.run(&stop));
            match spawned {
                Ok(thread) => {
                    self.compaction = Some(RunningCompaction {
                        files,
                        cancel,
                        thread,
                        warned: false,
                    })
                }
                Err(e) => tracing::warn!("checkpoint {id}: cannot start compaction: {e}"),
            }
            return;
        }
    }

    /// Publishes the sink files pre-committed for checkpoint `id`.
    fn publish(&mut self, id: u64, parts: &[Part]) -> Result<()> {
        for s in &mut self.sinks {
            let blobs: Vec<&[u8]> = parts
                .iter()
                .flat_map(|p| &p.meta)
                .filter(|(n, _)| n.starts_with(&s.prefix))
                .map(|(_, b)| b.as_slice())
                .collect();
            if !blobs.is_empty() {
                (s.publish)(id, &blobs)?;
            }
        }
        Ok(())
    }
}

/// The chain length (segments per subtask's key-group range) past which the writer warns
/// that compaction falls behind, at 4x.
pub(crate) const MAX_CHAIN: usize = 64;

/// Runs of deltas (one per checkpoint, typically) at which they are merged into one.
const DELTA_RUNS: usize = 8;

/// A state is compacted once its deltas outweigh `1 / COMPACT_AT` of its bottom (FORMAT.md
/// §6a): the directory then holds the bottom, the deltas, and the slices of a compaction
/// under way.
const COMPACT_AT: u64 = 3;

/// The share of one core a background compaction may keep busy (it sleeps the rest): what
/// compaction can take from the processing threads of a saturated machine. The idle
/// scheduling class, tried first, starved it there, and the directory grew without bound.
const COMPACTION_BUSY_SHARE: f64 = 0.25;

/// How fast a background compaction may write.
const COMPACTION_BYTES_PER_SEC: u64 = 256 << 20;

/// How long the coordinator's clock waits at most between checks of the writer.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// Adds the changes of a failed checkpoint to the next one's parts: a key changed in both
/// keeps the later value.
fn merge_unwritten(parts: &mut Vec<Part>, earlier: Vec<KeyedDelta>) {
    let mut extra = Part::default();
    for old in earlier {
        let newer = parts
            .iter_mut()
            .flat_map(|p| p.keyed.iter_mut())
            .find(|d| d.uid == old.uid && d.name == old.name && d.range == old.range);
        match newer {
            Some(d) => {
                let mut merged = old.entries;
                merged.append_newer(std::mem::take(&mut d.entries));
                merged.sort_last_wins();
                d.entries = merged;
            }
            None => extra.keyed.push(old),
        }
    }
    parts.push(extra);
}

/// Why [`WriterState::write`] failed: the changes could not be made (a copy abandoned or
/// failed: the job fails, or the checkpoint was subsumed), or writing them failed (the
/// checkpoint fails).
enum Failed {
    Changes(Error),
    Write(Error),
}

/// The states a checkpoint wrote or dropped so far ([`WriterState::write`]).
#[derive(Default)]
struct StatesWritten {
    dropped: Vec<(String, String)>,
    written: Vec<(String, String)>,
}

impl StatesWritten {
    /// Drops the segments `d`'s state inherited (once), before its complete contents are
    /// written.
    fn drop_before(&mut self, cw: &mut CheckpointWriter<'_>, d: &KeyedDelta) -> Result<()> {
        let key = (d.uid.clone(), d.name.clone());
        if self.dropped.contains(&key) {
            return Ok(());
        }
        if self.written.contains(&key) {
            // The drop would take what this checkpoint wrote of it too.
            return Err(Error::Checkpoint(format!(
                "state `{}` of operator `{}` came both whole and as changes in one checkpoint",
                d.name, d.uid
            )));
        }
        cw.drop_state(&d.uid, &d.name);
        self.dropped.push(key);
        Ok(())
    }
}

/// Writes `d`'s entries as segments of its state; returns the time it took.
fn write_delta(
    cw: &mut CheckpointWriter<'_>,
    d: &KeyedDelta,
    abandon: &Abandon,
    states: &mut StatesWritten,
) -> Result<Duration> {
    let started = Instant::now();
    let key = (d.uid.clone(), d.name.clone());
    if !states.written.contains(&key) {
        states.written.push(key);
    }
    let mut w = cw.state(&d.uid, &d.name);
    for (i, (kg, k, v)) in d.entries.iter().enumerate() {
        abandon.check_at(i)?;
        w.put(kg, k, v)?;
    }
    w.finish()?;
    Ok(started.elapsed())
}

/// The incremental states `parts` changed, each once: (operator uid, state name, number of
/// subtask ranges that wrote it).
fn changed_states(parts: &[Part]) -> Vec<(&str, &str, usize)> {
    let mut states: Vec<(&str, &str, usize)> = Vec::new();
    for d in parts.iter().flat_map(|p| &p.keyed).filter(|d| !d.full) {
        match states
            .iter_mut()
            .find(|s| (s.0, s.1) == (d.uid.as_str(), d.name.as_str()))
        {
            Some(s) => s.2 += 1,
            None => states.push((&d.uid, &d.name, 1)),
        }
    }
    states
}

/// Receives (and sorts or encodes) the changes subtasks are still copying, into their parts:
/// before changes of a failed checkpoint are merged with them, and after a write failed.
fn encode_deferred(parts: &mut [Part], abandon: &Abandon) -> Result<()> {
    for p in parts {
        for d in std::mem::take(&mut p.deferred) {
            if let Some(d) = receive(d, abandon)? {
                p.pause = p.pause.max(d.pause);
                p.keyed.push(d);
            }
        }
    }
    Ok(())
}

/// Runs a subtask's deferred work: waits for its copy, then sorts (or encodes) it.
fn receive(deferred: Deferred, abandon: &Abandon) -> Result<Option<KeyedDelta>> {
    let start = Instant::now();
    let d = deferred(abandon)?;
    tracing::debug!(
        ms = start.elapsed().as_secs_f64() * 1e3,
        "deferred changes received and encoded"
    );
    Ok(d)
}

/// Drops the keyed changes of `parts`, encoded or not: for the last checkpoint of a job that
/// finished (see the module's doc).
fn drop_keyed(parts: &mut [Part]) {
    for p in parts {
        p.keyed.clear();
        p.deferred.clear();
    }
}

/// Logs that checkpoint `id` was subsumed by the job's last checkpoint (it is not a failure).
fn subsumed(id: u64) {
    tracing::info!(
        checkpoint = id,
        "checkpoint subsumed: the job finished, and its last checkpoint records what this one \
         would have"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on purpose
    use super::*;
    use crate::runtime::entries::Entries;
    use flow_state::{FsStorage, KeyGroupRange};

    fn writer(dir: &std::path::Path, savepoints: Option<std::path::PathBuf>) -> Writer {
        writer_on(dir, Arc::new(FsStorage), 0, savepoints)
    }

    fn writer_on(
        dir: &std::path::Path,
        storage: Arc<dyn flow_state::Storage>,
        tolerable_failures: u32,
        savepoints: Option<std::path::PathBuf>,
    ) -> Writer {
        let store = CheckpointStore::open(dir, storage).unwrap();
        let options = WriterOptions {
            retained: 1,
            tolerable_failures,
            base: None,
            job_meta: Vec::new(),
            carried: Vec::new(),
            tasks: 1,
            savepoint_dir: savepoints,
        };
        Writer::start(store, options, Vec::new()).unwrap()
    }

    /// Changes of state `op`/`acc`: keys `keys` set to `value`.
    fn delta(keys: std::ops::Range<u32>, value: &[u8]) -> KeyedDelta {
        let mut entries = Entries::default();
        for k in keys {
            entries.push(k % 128, &k.to_be_bytes(), Some(value));
        }
        entries.sort_last_wins();
        KeyedDelta {
            uid: "op".into(),
            name: "acc".into(),
            range: KeyGroupRange { start: 0, end: 128 },
            full: false,
            entries,
            pause: Duration::ZERO,
        }
    }

    fn part(position: &str, keyed: Vec<KeyedDelta>) -> Part {
        Part {
            keyed,
            meta: vec![("source/0/0".into(), position.as_bytes().to_vec())],
            ..Part::default()
        }
    }

    /// Sends checkpoint 1 (keys 0..1000 set to `one`) and its completion; returns when it
    /// was requested.
    fn first_checkpoint(w: &Writer) -> Instant {
        let requested = Instant::now();
        w.tx.send(ToWriter::Part {
            id: 1,
            part: part("at 1", vec![delta(0..1000, b"one")]),
        })
        .unwrap();
        w.tx.send(ToWriter::Complete { id: 1, requested }).unwrap();
        requested
    }

    fn segments(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    }

    /// Checkpoint 1 committed, checkpoint 2 still being encoded when the job finishes (its
    /// encode waits until it is abandoned, so the test does not race the writer), then the
    /// job's last checkpoint 3: checkpoint 2 is never written, 3 holds the final position
    /// and no keyed state, and no segment is left.
    #[test]
    fn a_finished_jobs_last_checkpoint_subsumes_the_one_under_way_and_holds_no_keyed_state() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path(), None);
        let shared = w.shared.clone();
        let requested = first_checkpoint(&w);
        while shared.completed.lock().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(segments(dir.path()) > 0);
        let mut second = part("at 2", Vec::new());
        let (started, has_started) = crossbeam_channel::bounded(1);
        second.deferred.push(Box::new(move |abandon: &Abandon| {
            let _ = started.send(());
            // Not abandoned within 10 s: written, and the test fails below.
            let waiting = Instant::now();
            while !abandon.is_set() && waiting.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
            abandon.check()?;
            Ok(Some(delta(0..10, b"two")))
        }));
        w.tx.send(ToWriter::Part {
            id: 2,
            part: second,
        })
        .unwrap();
        w.tx.send(ToWriter::Complete { id: 2, requested }).unwrap();
        has_started.recv().unwrap();
        // The subtask finished after barrier 2, with changes of its own.
        w.tx.send(ToWriter::Final {
            after: 2,
            part: part("end", vec![delta(0..5, b"final")]),
        })
        .unwrap();
        w.shutdown(Some(3), None).unwrap();
        let ids: Vec<u64> = shared.completed.lock().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 3], "checkpoint 2 is subsumed");
        assert!(
            shared.failures.lock().is_empty(),
            "a subsumed one is no failure"
        );
        let store = CheckpointStore::open(dir.path(), Arc::new(FsStorage)).unwrap();
        assert_eq!(store.checkpoints().unwrap(), vec![3]);
        let view = store.restore_view(3).unwrap();
        assert_eq!(view.states().count(), 0, "no keyed state");
        assert_eq!(view.metadata("source/0/0"), Some(&b"end"[..]));
        assert_eq!(segments(dir.path()), 0, "the state's segments are garbage");
    }

    /// The real filesystem, except that creating a file fails while `full` is set (a full
    /// disk).
    struct Filling {
        full: Arc<AtomicBool>,
    }

    impl flow_state::Storage for Filling {
        fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
            FsStorage.create_dir_all(dir)
        }
        fn create(
            &self,
            path: &std::path::Path,
        ) -> std::io::Result<Box<dyn flow_state::WritableFile>> {
            if self.full.load(AtomicOrdering::SeqCst) {
                return Err(std::io::Error::other("no space left on device (test)"));
            }
            FsStorage.create(path)
        }
        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            FsStorage.rename(from, to)
        }
        fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
            FsStorage.remove(path)
        }
        fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
            FsStorage.list(dir)
        }
        fn read(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
            FsStorage.read(path)
        }
        fn map_immutable(
            &self,
            path: &std::path::Path,
        ) -> std::io::Result<flow_state::ReadOnlyBytes> {
            FsStorage.map_immutable(path)
        }
        fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
            FsStorage.sync_dir(dir)
        }
        fn try_lock(
            &self,
            path: &std::path::Path,
            holder: &str,
        ) -> std::io::Result<Option<flow_state::LockGuard>> {
            FsStorage.try_lock(path, holder)
        }
    }

    /// A checkpoint whose files cannot be created fails; its changes, both those ready and
    /// those still being copied when the write failed, go with the next checkpoint, whose
    /// own changes win.
    #[test]
    fn a_failed_checkpoints_changes_go_with_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let full = Arc::new(AtomicBool::new(false));
        let storage = Arc::new(Filling { full: full.clone() });
        let w = writer_on(dir.path(), storage, 1, None);
        let shared = w.shared.clone();
        let requested = first_checkpoint(&w);
        let wait_for = |n: usize| {
            let waiting = Instant::now();
            while shared.completed.lock().len() + shared.failures.lock().len() < n {
                assert!(
                    waiting.elapsed() < Duration::from_secs(20),
                    "checkpoint {n} ended"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for(1);
        full.store(true, AtomicOrdering::SeqCst);
        let mut second = part("at 2", vec![delta(0..10, b"two")]);
        second
            .deferred
            .push(Box::new(|_: &Abandon| Ok(Some(delta(10..30, b"copied")))));
        w.tx.send(ToWriter::Part {
            id: 2,
            part: second,
        })
        .unwrap();
        w.tx.send(ToWriter::Complete { id: 2, requested }).unwrap();
        wait_for(2);
        full.store(false, AtomicOrdering::SeqCst);
        w.tx.send(ToWriter::Part {
            id: 3,
            part: part("at 3", vec![delta(20..40, b"three")]),
        })
        .unwrap();
        w.tx.send(ToWriter::Complete { id: 3, requested }).unwrap();
        wait_for(3);
        w.shutdown(None, None).unwrap();
        let ids: Vec<u64> = shared.completed.lock().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 3]);
        let failed: Vec<u64> = shared.failures.lock().iter().map(|f| f.id).collect();
        assert_eq!(failed, vec![2]);
        let store = CheckpointStore::open(dir.path(), Arc::new(FsStorage)).unwrap();
        let view = store.restore_view(3).unwrap();
        let range = KeyGroupRange { start: 0, end: 128 };
        let mut got: Vec<(u32, Vec<u8>)> = view
            .entries("op", "acc", range)
            .unwrap()
            .map(|e| {
                let k = u32::from_be_bytes(e.key.try_into().unwrap());
                (k, e.value.to_vec())
            })
            .collect();
        got.sort();
        let want: Vec<(u32, Vec<u8>)> = (0..1000u32)
            .map(|k| {
                let v: &[u8] = match k {
                    0..10 => b"two",
                    10..20 => b"copied",
                    20..40 => b"three",
                    _ => b"one",
                };
                (k, v.to_vec())
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(view.metadata("source/0/0"), Some(&b"at 3"[..]));
    }

    /// With a savepoint directory the last checkpoint keeps the state, and nothing before
    /// it is subsumed.
    #[test]
    fn a_job_writing_a_savepoint_keeps_its_state_in_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir.path().join("cp"), Some(dir.path().join("sp")));
        let shared = w.shared.clone();
        first_checkpoint(&w);
        w.tx.send(ToWriter::Final {
            after: 1,
            part: part("end", vec![delta(0..5, b"final")]),
        })
        .unwrap();
        w.shutdown(Some(2), None).unwrap();
        let ids: Vec<u64> = shared.completed.lock().iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let store = CheckpointStore::open(dir.path().join("cp"), Arc::new(FsStorage)).unwrap();
        let view = store.restore_view(2).unwrap();
        let range = KeyGroupRange { start: 0, end: 128 };
        let values: Vec<Vec<u8>> = view
            .entries("op", "acc", range)
            .unwrap()
            .map(|e| e.value.to_vec())
            .collect();
        assert_eq!(values.len(), 1000);
        assert_eq!(values.iter().filter(|v| &v[..] == b"final").count(), 5);
        assert!(shared.savepoint.lock().is_some());
    }
}
