//! What operators, sources and sinks write at a checkpoint barrier and read back on restore.
//!
//! At barrier `n` every subtask *freezes* what changed since barrier `n - 1` into a [`Part`]:
//! the keyed state each stateful operator changed (encoded key and value, or a tombstone, per
//! key group), operator state that is not keyed (a watermark), its source position and its
//! sink's pre-committed files. Encoding the changed entries is the only work done on the
//! processing thread; the part then goes to the checkpoint writer (`persist`), which writes
//! segment files and the manifest off the hot path.
//!
//! State is named by the operator's uid (`.uid("..")`, or one derived from the plan) and a
//! state name, encoded with serde (postcard), and partitioned by key group: a key's group is
//! the one the exchange routed it by, so a restore at another parallelism hands each subtask
//! the entries of its new key-group range without rewriting anything.
use crate::error::{Error, Result};
use crate::runtime::entries::Entries;
use crate::runtime::exchange::partition::stable_hash;
use flow_state::{KeyGroupRange, RestoreView};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// A key of keyed state: hashable for its key group and encodable (serde) for checkpoints.
/// Implemented for every such type; derive `serde::Serialize` and `serde::Deserialize` for
/// your own keys.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot key checkpointable state",
    label = "a key must be `Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it; for a `&'static str` key use `String` or `flow_core::text::Word`"
)]
pub trait StateKey: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Hash + Eq + Clone + Send + Serialize + DeserializeOwned + 'static> StateKey for T {}

/// A value of keyed state (an accumulator, a window's contents): encodable (serde) for
/// checkpoints. Implemented for every such type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be kept in checkpointable state",
    label = "state must be `Clone + Send + Serialize + DeserializeOwned + 'static`",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it; `&'static str` fields cannot be restored: use `String` or `flow_core::text::Word`"
)]
pub trait StateValue: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> StateValue for T {}

/// A completed checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's id (1, 2, ...).
    pub id: u64,
    /// From the coordinator's request to the checkpoint being durable: its manifest
    /// committed, before its output is published and old checkpoints are removed (to the
    /// last sink's acknowledgement when nothing is persisted).
    pub duration: Duration,
    /// Of which writing the segments and the manifest (zero when nothing is persisted).
    pub write: Duration,
    /// Bytes written: new segments and the manifest (the incremental size).
    pub bytes: u64,
    /// The checkpoint's whole size, segments shared with earlier checkpoints included (the
    /// full size; zero when nothing is persisted).
    pub total_bytes: u64,
    /// The longest time a subtask paused its processing to freeze its part of this
    /// checkpoint (zero when nothing is persisted).
    pub pause: Duration,
}

/// A checkpoint that could not be made durable (the job goes on, up to
/// [`crate::Config::tolerable_checkpoint_failures`] in a row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCheckpoint {
    /// The checkpoint's id.
    pub id: u64,
    /// When it failed, in ms since the Unix epoch.
    pub at_ms: i64,
    /// Why.
    pub error: String,
}

/// The codec of state entries; recorded with each state so that a restore by a build that
/// encodes differently fails with a clear error instead of misreading bytes.
pub(crate) const CODEC: &str = "postcard-1";

/// Encodes `value` with the state codec, appending to `out` (on an error, `out` may hold
/// part of the encoding after what it held).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    postcard::serialize_with_flavor(value, Append(out))
        .map_err(|e| Error::Checkpoint(format!("cannot encode state: {e}")))
}

/// The old encode, for the comparison test.
#[cfg(test)]
fn encode_by_extend<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(value, buf)
        .map_err(|e| Error::Checkpoint(format!("cannot encode state: {e}")))?;
    Ok(())
}

/// postcard's output appended to a `Vec` in place: `extend_from_slice` and `push`, where
/// postcard's own `to_extend` goes through a generic `Extend` of bytes and moves the `Vec`
/// in and out of every call (a quarter of the checkpoint writer's time was in `encode`).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a value of the state codec; `what` names the state for the error message.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &dyn Fn() -> String) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| {
        Error::Checkpoint(format!(
            "cannot decode {} as {}: {e}",
            what(),
            std::any::type_name::<T>()
        ))
    })
}

/// Decodes a value from the front of some bytes; returns it with the rest.
pub(crate) type Decode<T> = for<'a> fn(&'a [u8]) -> Result<(T, &'a [u8])>;

/// Encodes and decodes values of type `T` with the state codec; built only where `T` has
/// serde's traits, so operators whose types lack them still compile and say, when a job
/// asks for checkpoints, that their state cannot be checkpointed.
pub(crate) struct Codec<T> {
    /// Appends the encoding of a value.
    pub(crate) enc: fn(&T, &mut Vec<u8>) -> Result<()>,
    /// Decodes a value from the front of the bytes; returns it with the rest.
    pub(crate) dec: Decode<T>,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Codec<T> {}

impl<T: Serialize + DeserializeOwned> Codec<T> {
    /// The serde (postcard) codec of `T`.
    pub(crate) fn serde() -> Self {
        Codec {
            enc: |v, out| encode(v, out),
            dec: |b| {
                postcard::take_from_bytes(b).map_err(|e| {
                    Error::Checkpoint(format!(
                        "cannot decode a {}: {e}",
                        std::any::type_name::<T>()
                    ))
                })
            },
        }
    }
}

impl<T> Codec<T> {
    /// Decodes a value that fills `bytes` exactly.
    pub(crate) fn decode_all(&self, bytes: &[u8], what: &dyn Fn() -> String) -> Result<T> {
        let (v, rest) =
            (self.dec)(bytes).map_err(|e| Error::Checkpoint(format!("{}: {e}", what())))?;
        if !rest.is_empty() {
            return Err(Error::Checkpoint(format!(
                "{}: {} bytes left after a {}",
                what(),
                rest.len(),
                std::any::type_name::<T>()
            )));
        }
        Ok(v)
    }
}

/// The changed entries of one keyed state of one subtask, sorted by (key group, key).
pub(crate) struct KeyedDelta {
    pub(crate) uid: String,
    pub(crate) name: String,
    /// The subtask's key groups.
    pub(crate) range: KeyGroupRange,
    /// Whether the entries are the state's complete contents in `range` (earlier segments
    /// of the state are dropped), rather than changes since the last checkpoint.
    pub(crate) full: bool,
    pub(crate) entries: Entries,
    /// The longest pause of the processing thread to copy these changes out, when that
    /// happened after the barrier, in steps ([`SnapshotCx::keyed_values_later`]).
    pub(crate) pause: std::time::Duration,
}

/// Changes of a keyed state frozen as typed values, to be encoded by the checkpoint writer
/// (off the processing thread), which may [`Abandon`] the work part way.
/// `None`: no entries.
pub(crate) type Deferred = Box<dyn FnOnce(&Abandon) -> Result<Option<KeyedDelta>> + Send>;

/// Tells the checkpoint writer's long loops (encoding and writing a checkpoint's changes) to
/// stop early: set when the job finished and its last checkpoint subsumes the one under way
/// (`persist`). A loop that sees it set returns an error the writer does not count as a
/// failure.
#[derive(Clone, Debug, Default)]
pub(crate) struct Abandon(Arc<std::sync::atomic::AtomicBool>);

/// Entries a loop handles between two looks at its [`Abandon`].
const ABANDON_EVERY: usize = 1 << 14;

impl Abandon {
    /// Asks the loops that share this flag to stop.
    pub(crate) fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the work was abandoned.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// An error if the work was abandoned, to end a loop with `?`.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_set() {
            return Err(Error::Checkpoint(
                "abandoned: the job's last checkpoint subsumes this one".into(),
            ));
        }
        Ok(())
    }

    /// [`Abandon::check`] at entry `i` of a loop, once every [`ABANDON_EVERY`] entries (an
    /// atomic load per entry would cost more than the loops' own work on small entries).
    pub(crate) fn check_at(&self, i: usize) -> Result<()> {
        if i.is_multiple_of(ABANDON_EVERY) {
            self.check()
        } else {
            Ok(())
        }
    }
}

/// What one subtask contributes to one checkpoint.
#[derive(Default)]
pub(crate) struct Part {
    pub(crate) keyed: Vec<KeyedDelta>,
    /// Keyed changes still to be encoded.
    pub(crate) deferred: Vec<Deferred>,
    /// Metadata blobs by name: source positions, sink pre-commits, operator state.
    pub(crate) meta: Vec<(String, Vec<u8>)>,
    /// How long the subtask paused to make this part.
    pub(crate) pause: Duration,
}

#[cfg(test)]
impl Part {
    /// The writer's side, for tests: encodes what the operators froze, into `keyed`.
    pub(crate) fn encode_deferred(&mut self) {
        for d in std::mem::take(&mut self.deferred) {
            self.keyed
                .extend(d(&Abandon::default()).expect("a deferred encode of a test's part"));
        }
    }
}

#[cfg(test)]
impl<'a> SnapshotCx<'a> {
    /// The context of the single operator `uids[0]` of subtask 0 of 1 (128 key groups),
    /// writing into `part`, for tests.
    pub(crate) fn for_test(uids: &'a [String], part: &'a mut Part) -> Self {
        SnapshotCx {
            at: Position {
                subtask: 0,
                parallelism: 1,
                max_parallelism: 128,
            },
            uids,
            op: 0,
            part,
        }
    }
}

/// How an operator keeps state, as declared by [`crate::runtime::operator::Operator`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSupport {
    /// The operator keeps no state across records.
    Stateless,
    /// The operator checkpoints and restores these states.
    Persisted(Vec<StateDecl>),
    /// The operator keeps state that it cannot checkpoint yet: a job with checkpoints on
    /// refuses to start rather than restore it wrongly. The text says what the state is.
    Unsupported(&'static str),
}

/// One state an operator checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDecl {
    /// The state's name within its operator.
    pub name: &'static str,
    /// Keyed (partitioned by key group) or operator state (one value per subtask).
    pub keyed: bool,
    /// The Rust types of its key and value, as recorded in the checkpoint.
    pub types: String,
}

impl StateDecl {
    /// A keyed state of keys `K` and values `V`.
    pub(crate) fn keyed<K, V>(name: &'static str) -> Self {
        StateDecl {
            name,
            keyed: true,
            types: format!(
                "{} => {} ({CODEC})",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ),
        }
    }

    /// A keyed state packed by [`Packer`]: per group `G` and key group, records of keys `K`
    /// and values `V`.
    pub(crate) fn packed<G, K, V>(name: &'static str) -> Self {
        StateDecl {
            name,
            keyed: true,
            types: format!(
                "packed {} => [{} => {}] ({CODEC})",
                std::any::type_name::<G>(),
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ),
        }
    }

    /// An operator state of values `V`.
    pub(crate) fn operator<V>(name: &'static str) -> Self {
        StateDecl {
            name,
            keyed: false,
            types: format!("{} ({CODEC})", std::any::type_name::<V>()),
        }
    }
}

/// Where a subtask is, for snapshots and restores.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Position {
    pub(crate) subtask: usize,
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u32,
}

impl Position {
    pub(crate) fn key_groups(&self) -> KeyGroupRange {
        KeyGroupRange::for_subtask(
            self.subtask as u32,
            self.max_parallelism,
            self.parallelism as u32,
        )
    }
}

/// The metadata name of operator state `name` of `uid`, written by `subtask`.
pub(crate) fn operator_state_name(uid: &str, name: &str, subtask: usize) -> String {
    format!("op/{uid}/{name}/{subtask}")
}

/// What an operator writes its state into at a barrier.
pub struct SnapshotCx<'a> {
    pub(crate) at: Position,
    /// The uids of the stage's operators, in chain order.
    pub(crate) uids: &'a [String],
    /// The operator being snapshotted, an index into `uids`.
    pub(crate) op: usize,
    pub(crate) part: &'a mut Part,
}

impl SnapshotCx<'_> {
    fn uid(&self) -> &str {
        self.uids.get(self.op).map(String::as_str).unwrap_or("?")
    }

    /// Starts the changes of keyed state `name` (`full`: its complete contents).
    pub(crate) fn keyed(&mut self, name: &str, full: bool) -> KeyedWriter<'_> {
        let delta = KeyedDelta {
            uid: self.uid().to_string(),
            name: name.to_string(),
            range: self.at.key_groups(),
            full,
            entries: Entries::default(),
            pause: std::time::Duration::ZERO,
        };
        KeyedWriter {
            max_parallelism: self.at.max_parallelism,
            delta: Some(delta),
            part: self.part,
        }
    }

    /// The key groups of this subtask.
    pub(crate) fn key_groups(&self) -> KeyGroupRange {
        self.at.key_groups()
    }

    /// Records the changes of keyed state `name` as typed values (`None`: deleted): the
    /// processing thread only freezes them (moves or clones); the checkpoint writer encodes
    /// and sorts them.
    pub(crate) fn keyed_values<K, V>(
        &mut self,
        name: &str,
        full: bool,
        entries: Vec<(K, Option<V>)>,
    ) where
        K: Hash + Serialize + Send + 'static,
        V: Serialize + Send + 'static,
    {
        if entries.is_empty() && !full {
            return;
        }
        let encode = self.encoder(name, full);
        self.part.deferred.push(Box::new(move |abandon| {
            encode(
                entries.into_iter().map(Ok),
                std::time::Duration::ZERO,
                abandon,
            )
        }));
    }

    /// Records the changes of keyed state `name` that the processing thread encodes into
    /// [`Entries`] after the barrier, a step at a time (`KeyedTable::begin_freeze_encoded`),
    /// and sends on `rx` with the longest step. The writer only sorts them; it waits for them,
    /// and a dropped sender (a job that ended or failed first) fails the checkpoint.
    pub(crate) fn keyed_entries_later(
        &mut self,
        name: &str,
        rx: crossbeam_channel::Receiver<(Result<Entries>, std::time::Duration)>,
    ) {
        let what = self.describe_state(name);
        let delta = self.delta_of(name, false);
        self.part.deferred.push(Box::new(move |abandon: &Abandon| {
            let (entries, pause) = rx.recv().map_err(|_| {
                Error::Checkpoint(format!("{what}: its copy was abandoned (the job stopped)"))
            })?;
            let mut entries = entries?;
            abandon.check()?;
            if entries.is_empty() {
                return Ok(None);
            }
            entries.sort_last_wins();
            Ok(Some(delta.delta(entries, pause)))
        }));
    }

    /// The job's max parallelism: the number of key groups.
    pub(crate) fn max_parallelism(&self) -> u32 {
        self.at.max_parallelism
    }

    /// Records the changes of keyed state `name` by running `write` on the checkpoint
    /// writer's thread. `write` owns what it reads — at the end of input, an operator's whole
    /// table, which nothing changes any more — so the processing thread neither copies nor
    /// encodes, and a job's last checkpoint, which writes no keyed state, skips the work.
    pub(crate) fn keyed_on_writer(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut KeyedWriter<'_>, &Abandon) -> Result<()> + Send + 'static,
    ) {
        let delta = self.delta_of(name, false);
        self.part.deferred.push(Box::new(move |abandon| {
            delta.write(0, Duration::ZERO, |w| write(w, abandon), abandon)
        }));
    }

    /// What a delta of keyed state `name` of this subtask is made of, for the writer's thread.
    fn delta_of(&self, name: &str, full: bool) -> DeltaOf {
        DeltaOf {
            uid: self.uid().to_string(),
            name: name.to_string(),
            range: self.at.key_groups(),
            full,
            max_parallelism: self.at.max_parallelism,
        }
    }

    /// `state name of operator uid`, for errors.
    fn describe_state(&self, name: &str) -> String {
        format!("state `{name}` of operator `{}`", self.uid())
    }

    /// Encodes typed entries of keyed state `name` into a delta (on the writer's thread).
    #[allow(clippy::type_complexity)] // a boxed closure over the entries
    fn encoder<K, V, I>(
        &self,
        name: &str,
        full: bool,
    ) -> impl FnOnce(I, std::time::Duration, &Abandon) -> Result<Option<KeyedDelta>> + Send + 'static
    where
        K: Hash + Serialize + Send + 'static,
        V: Serialize + Send + 'static,
        I: ExactSizeIterator<Item = Result<(K, Option<V>)>>,
    {
        let delta = self.delta_of(name, full);
        move |entries, pause, abandon: &Abandon| {
            let n = entries.len();
            let put_all = |w: &mut KeyedWriter<'_>| {
                for (i, e) in entries.enumerate() {
                    abandon.check_at(i)?;
                    let (k, v) = e?;
                    w.put(&k, &k, v.as_ref())?;
                }
                Ok(())
            };
            delta.write(n, pause, put_all, abandon)
        }
    }

    /// Writes operator state `name`: one value per subtask.
    pub(crate) fn operator_state<V: Serialize>(&mut self, name: &str, value: &V) -> Result<()> {
        let mut b = Vec::new();
        encode(value, &mut b)?;
        let n = operator_state_name(self.uid(), name, self.at.subtask);
        self.part.meta.push((n, b));
        Ok(())
    }
}

/// Names a delta of one keyed state of one subtask, made on the writer's thread
/// ([`SnapshotCx::delta_of`]).
struct DeltaOf {
    uid: String,
    name: String,
    range: KeyGroupRange,
    full: bool,
    max_parallelism: u32,
}

impl DeltaOf {
    /// The delta of the entries `put` records (room made for `capacity`), sorted; `None`
    /// for an incremental state without changes.
    /// The delta of `entries`, copied out in steps of at most `pause`.
    fn delta(self, entries: Entries, pause: Duration) -> KeyedDelta {
        KeyedDelta {
            uid: self.uid,
            name: self.name,
            range: self.range,
            full: self.full,
            entries,
            pause,
        }
    }

    fn write(
        self,
        capacity: usize,
        pause: Duration,
        put: impl FnOnce(&mut KeyedWriter<'_>) -> Result<()>,
        abandon: &Abandon,
    ) -> Result<Option<KeyedDelta>> {
        let mut part = Part::default();
        let mut w = KeyedWriter {
            max_parallelism: self.max_parallelism,
            delta: Some(self.delta(Entries::with_capacity(capacity), pause)),
            part: &mut part,
        };
        put(&mut w)?;
        abandon.check()?;
        w.finish();
        Ok(part.keyed.pop())
    }
}

/// Collects the changed entries of one keyed state; [`KeyedWriter::finish`] sorts them into
/// the subtask's part.
pub(crate) struct KeyedWriter<'a> {
    max_parallelism: u32,
    delta: Option<KeyedDelta>,
    part: &'a mut Part,
}

impl KeyedWriter<'_> {
    /// The key group of `key`: the one the exchange routes it by.
    pub(crate) fn key_group<K: Hash + ?Sized>(&self, key: &K) -> u32 {
        flow_state::key_group_of(stable_hash(key), self.max_parallelism)
    }

    /// Records `key`'s current value (`None`: deleted) under the key group of `group_key`.
    pub(crate) fn put<G, K, V>(&mut self, group_key: &G, key: &K, value: Option<&V>) -> Result<()>
    where
        G: Hash + ?Sized,
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        let kg = self.key_group(group_key);
        match self.delta.as_mut() {
            Some(d) => d.entries.push_with(
                kg,
                |b| encode(key, b),
                |b| match value {
                    Some(v) => encode(v, b).map(|()| true),
                    None => Ok(false),
                },
            ),
            None => Ok(()),
        }
    }

    /// Records an entry already encoded, under the key group of `group_key`.
    pub(crate) fn put_encoded<G: Hash + ?Sized>(
        &mut self,
        group_key: &G,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) {
        let kg = self.key_group(group_key);
        if let Some(d) = self.delta.as_mut() {
            d.entries.push(kg, &key, value.as_deref());
        }
    }

    /// Records an entry under the key group of `group_key` that `key` and `value` encode
    /// straight into the buffer ([`Entries::push_with`]: `value` returns `false` for a
    /// deletion, having written nothing).
    pub(crate) fn put_with<G: Hash + ?Sized>(
        &mut self,
        group_key: &G,
        key: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        value: impl FnOnce(&mut Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let kg = self.key_group(group_key);
        match self.delta.as_mut() {
            Some(d) => d.entries.push_with(kg, key, value),
            None => Ok(()),
        }
    }

    /// A [`Packer`] of entries for this writer's key groups.
    pub(crate) fn packer(&self) -> Packer {
        let range = self
            .delta
            .as_ref()
            .map_or(KeyGroupRange { start: 0, end: 0 }, |d| d.range);
        Packer::new(range, self.max_parallelism)
    }

    /// Records an entry already encoded, in key group `kg`.
    pub(crate) fn put_in_group(&mut self, kg: u32, key: &[u8], value: Option<&[u8]>) {
        if let Some(d) = self.delta.as_mut() {
            d.entries.push(kg, key, value);
        }
    }

    /// Sorts the entries and adds them to the part (nothing, for an incremental state that
    /// did not change).
    pub(crate) fn finish(mut self) {
        if let Some(mut d) = self.delta.take() {
            if d.entries.is_empty() && !d.full {
                return;
            }
            d.entries.sort_last_wins();
            self.part.keyed.push(d);
        }
    }
}

/// Packs the many small entries of a state written whole (window contents) into few large
/// ones: per key group, the encoded records of all its keys go into values of about
/// [`PACKED_CHUNK`] bytes, under a key made of a prefix (what the records belong to, say a
/// window) and the chunk's number. One pass, no allocation per record and a sort of a few
/// entries instead of one per key: packing is what keeps a barrier's pause short for large
/// window state. Key groups never split, so a restore at any parallelism reads back the
/// chunks of its key groups ([`RestoreCx::packed`]).
pub(crate) struct Packer {
    start: u32,
    max_parallelism: u32,
    /// Per key group of the subtask: the chunk being filled.
    bufs: Vec<Vec<u8>>,
    /// Per key group: chunks written so far under the current prefix.
    chunks: Vec<u32>,
    prefix: Vec<u8>,
    /// The bytes every value starts with (say a window's fired flag).
    header: Vec<u8>,
}

/// Values of packed entries are cut at about this many bytes.
pub(crate) const PACKED_CHUNK: usize = 256 << 10;

impl Packer {
    /// A packer for the key groups of the writer's subtask.
    pub(crate) fn new(range: KeyGroupRange, max_parallelism: u32) -> Self {
        let n = (range.end - range.start) as usize;
        Packer {
            start: range.start,
            max_parallelism,
            bufs: vec![Vec::new(); n],
            chunks: vec![0; n],
            prefix: Vec::new(),
            header: Vec::new(),
        }
    }

    /// Starts the records of group `prefix` (encoded), each value beginning with `header`;
    /// the previous group's chunks go to `w`.
    pub(crate) fn group(&mut self, w: &mut KeyedWriter<'_>, prefix: Vec<u8>, header: Vec<u8>) {
        self.flush(w);
        self.prefix = prefix;
        self.header = header;
        self.chunks.iter_mut().for_each(|c| *c = 0);
    }

    /// Adds the record of `key`, which `f` appends, to its key group's chunk.
    pub(crate) fn push<K: Hash + ?Sized>(
        &mut self,
        w: &mut KeyedWriter<'_>,
        key: &K,
        f: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let kg = flow_state::key_group_of(stable_hash(key), self.max_parallelism);
        let i = kg
            .checked_sub(self.start)
            .map(|i| i as usize)
            .filter(|&i| i < self.bufs.len());
        let Some(i) = i else {
            return Err(Error::Checkpoint(format!(
                "a key of key group {kg} is held by the subtask of key groups {}..{}",
                self.start,
                self.start as usize + self.bufs.len()
            )));
        };
        let b = &mut self.bufs[i];
        if b.is_empty() {
            b.extend_from_slice(&self.header);
        }
        f(b)?;
        if b.len() >= PACKED_CHUNK {
            self.cut(w, i);
        }
        Ok(())
    }

    /// Writes key group `i`'s chunk as an entry.
    fn cut(&mut self, w: &mut KeyedWriter<'_>, i: usize) {
        let mut key = self.prefix.clone();
        key.extend_from_slice(&self.chunks[i].to_be_bytes());
        self.chunks[i] += 1;
        w.put_in_group(self.start + i as u32, &key, Some(&self.bufs[i]));
        // Emptied, the buffer keeps its room for the key group's next chunk.
        self.bufs[i].clear();
    }

    /// Writes every chunk being filled.
    pub(crate) fn flush(&mut self, w: &mut KeyedWriter<'_>) {
        for i in 0..self.bufs.len() {
            if !self.bufs[i].is_empty() {
                self.cut(w, i);
            }
        }
    }
}

/// What an operator reads its state back from when a job restores a checkpoint.
pub struct RestoreCx<'a> {
    pub(crate) view: &'a RestoreView,
    pub(crate) at: Position,
    pub(crate) uids: &'a [String],
    pub(crate) op: usize,
}

impl RestoreCx<'_> {
    fn uid(&self) -> &str {
        self.uids.get(self.op).map(String::as_str).unwrap_or("?")
    }

    /// Calls `f` with every entry of keyed state `name` in this subtask's key groups whose
    /// key group passes `keep`.
    pub(crate) fn keyed_where<K, V>(
        &self,
        name: &str,
        keep: impl Fn(u32) -> bool,
        mut f: impl FnMut(K, V),
    ) -> Result<()>
    where
        K: DeserializeOwned,
        V: DeserializeOwned,
    {
        let uid = self.uid();
        if !self.view.states().any(|(u, n)| u == uid && n == name) {
            // The state had no entry when the checkpoint was taken.
            return Ok(());
        }
        let what = || format!("state `{name}` of operator `{uid}`");
        for e in self.view.entries(uid, name, self.at.key_groups())? {
            if !keep(e.key_group) {
                continue;
            }
            let k: K = decode(e.key, &what)?;
            let v: V = decode(e.value, &what)?;
            f(k, v);
        }
        Ok(())
    }

    /// Keyed state `name` in this subtask's key groups, to be read lazily (`None`: the
    /// checkpoint holds no entry of it).
    pub(crate) fn lazy(&self, name: &str) -> Result<Option<flow_state::LazyState>> {
        let uid = self.uid();
        if !self.view.states().any(|(u, n)| u == uid && n == name) {
            return Ok(None);
        }
        Ok(Some(self.view.lazy(uid, name, self.at.key_groups())?))
    }

    /// The number of key groups of the job.
    pub(crate) fn max_parallelism(&self) -> u32 {
        self.at.max_parallelism
    }

    /// At most how many entries [`RestoreCx::keyed_where`] of state `name` yields: to size
    /// a table first.
    pub(crate) fn keyed_count_bound(&self, name: &str) -> u64 {
        self.view
            .entry_count_bound(self.uid(), name, self.at.key_groups())
    }

    /// Calls `f` with every entry, still encoded, of keyed state `name` in this subtask's key
    /// groups.
    pub(crate) fn keyed_raw(
        &self,
        name: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let uid = self.uid();
        if !self.view.states().any(|(u, n)| u == uid && n == name) {
            return Ok(());
        }
        for e in self.view.entries(uid, name, self.at.key_groups())? {
            f(e.key, e.value)?;
        }
        Ok(())
    }

    /// Calls `f` with every packed entry ([`Packer`]) of keyed state `name` in this
    /// subtask's key groups: the group prefix (the key without its chunk number) and the
    /// value.
    pub(crate) fn packed(
        &self,
        name: &str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.keyed_raw(name, |key, value| {
            let Some(prefix) = key.len().checked_sub(4).map(|n| &key[..n]) else {
                return Err(Error::Checkpoint(format!(
                    "{}: a packed entry's key of {} bytes has no chunk number",
                    self.describe(name),
                    key.len()
                )));
            };
            f(prefix, value)
        })
    }

    /// Describes state `name` of this operator, for error messages.
    pub(crate) fn describe(&self, name: &str) -> String {
        format!("state `{name}` of operator `{}`", self.uid())
    }

    /// The values of operator state `name` that every subtask of the checkpointed job wrote
    /// (whatever its parallelism was), in subtask order.
    pub(crate) fn operator_state<V: DeserializeOwned>(&self, name: &str) -> Result<Vec<V>> {
        let prefix = format!("op/{}/{name}/", self.uid());
        let mut found: Vec<(usize, &[u8])> = self
            .view
            .metadata_entries()
            .filter_map(|(n, b)| {
                let i = n.strip_prefix(&prefix)?.parse::<usize>().ok()?;
                Some((i, b))
            })
            .collect();
        found.sort_by_key(|f| f.0);
        let what = || format!("operator state `{name}` of operator `{}`", self.uid());
        found.into_iter().map(|(_, b)| decode(b, &what)).collect()
    }
}

/// The checkpoint a job restores, shared by its subtasks.
pub(crate) type Restore = Arc<RestoreView>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed entries hold every record once, in its key's group, in chunks of bounded
    /// size under distinct keys, for each group prefix.
    #[test]
    fn packed_entries_hold_every_record_once_in_its_key_group() {
        let at = Position {
            subtask: 1,
            parallelism: 3,
            max_parallelism: 128,
        };
        let uids = ["w".to_string()];
        let mut part = Part::default();
        let mut cx = SnapshotCx {
            at,
            uids: &uids,
            op: 0,
            part: &mut part,
        };
        let range = at.key_groups();
        // Keys of this subtask only, as its exchange would route them.
        let keys: Vec<u64> = (0..400_000u64)
            .filter(|k| range.contains(flow_state::key_group_of(stable_hash(k), 128)))
            .collect();
        let mut w = cx.keyed("windows", true);
        let mut p = w.packer();
        for window in [7u8, 9] {
            p.group(&mut w, vec![window], vec![b'h']);
            for k in &keys {
                // 100 bytes of padding: some key groups fill several chunks.
                p.push(&mut w, k, |b| {
                    encode(&(k, k * u64::from(window), vec![window; 100]), b)
                })
                .unwrap();
            }
        }
        // A key of another subtask's group is an error, not a silent misfiling.
        let foreign = (0..1000u64)
            .find(|k| !range.contains(flow_state::key_group_of(stable_hash(k), 128)))
            .unwrap();
        assert!(p.push(&mut w, &foreign, |_| Ok(())).is_err());
        p.flush(&mut w);
        w.finish();
        let d = &part.keyed[0];
        assert!(d.full);
        let mut seen = std::collections::HashMap::new();
        let mut keys_seen = std::collections::HashSet::new();
        let mut chunked = false;
        for (kg, key, value) in d.entries.iter() {
            assert!(keys_seen.insert((kg, key.to_vec())), "a key written twice");
            let value = value.as_ref().unwrap();
            // A chunk is cut after the record that fills it.
            assert!(value.len() < PACKED_CHUNK + 256);
            chunked |= key[1..] != [0, 0, 0, 0];
            let window = key[0];
            let (&h, mut rest) = value.split_first().unwrap();
            assert_eq!(h, b'h');
            while !rest.is_empty() {
                let ((k, v, pad), r): ((u64, u64, Vec<u8>), _) =
                    postcard::take_from_bytes(rest).unwrap();
                assert_eq!(pad, vec![window; 100]);
                rest = r;
                assert_eq!(flow_state::key_group_of(stable_hash(&k), 128), kg);
                assert_eq!(v, k * u64::from(window));
                assert!(
                    seen.insert((window, k), ()).is_none(),
                    "a record written twice"
                );
            }
        }
        assert!(chunked, "no key group filled more than one chunk");
        assert_eq!(seen.len(), 2 * keys.len());
    }
}

#[cfg(test)]
mod encode_tests {
    use super::{encode, encode_by_extend};

    /// The in-place encoding is postcard's, byte for byte, appended after what was there.
    #[test]
    fn encode_appends_postcards_bytes() {
        let values: Vec<(u64, Option<String>, i64, Vec<u32>)> = (0..500u64)
            .map(|i| {
                (
                    i * 977,
                    (i % 3 == 0).then(|| "x".repeat(i as usize % 40)),
                    -(i as i64),
                    vec![i as u32; i as usize % 5],
                )
            })
            .collect();
        let (mut a, mut b) = (vec![7u8], vec![7u8]);
        for v in &values {
            encode(v, &mut a).unwrap();
            encode_by_extend(v, &mut b).unwrap();
        }
        assert_eq!(a, b);
        let first = postcard::to_allocvec(&values[0]).unwrap();
        assert_eq!(
            a[1..1 + first.len()],
            first[..],
            "the first value follows the 7"
        );
    }

    /// Times both encodes of 4 M (u64, u64) entries, in one process (run with
    /// `--release --ignored --nocapture`).
    #[test]
    #[ignore]
    fn encode_speed() {
        for round in 0..3 {
            for (name, f) in [
                (
                    "in place",
                    encode::<(u64, u64)> as fn(&(u64, u64), &mut Vec<u8>) -> crate::Result<()>,
                ),
                ("to_extend", encode_by_extend::<(u64, u64)>),
            ] {
                let mut out = Vec::with_capacity(64 << 20);
                let t = std::time::Instant::now();
                for i in 0..4_000_000u64 {
                    f(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i), &mut out).unwrap();
                }
                println!(
                    "round {round} {name}: {:?} ({} bytes)",
                    t.elapsed(),
                    out.len()
                );
            }
        }
    }
}
