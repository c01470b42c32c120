//! The window operator of a keyed stream, after the key-group exchange: assigns records to
//! windows, fires them as the watermark (or the wall clock) passes their end, re-fires them
//! for records within the allowed lateness, and sends later records to the late side output.
//!
//! Semantics follow Flink: a window `[start, end)` fires when the watermark reaches
//! `end - 1`; with `allowed_lateness(d)` its state is kept until the watermark reaches
//! `end - 1 + d`, and every record arriving in that time re-fires the window with the updated
//! result; a record whose windows are all past that point is late: it goes to the late side
//! output if the job asked for one, and is counted in the job summary either way.
use super::assigners::{CountWindows, Window, WindowInfo, WindowSpec};
use super::functions::WindowFn;
use crate::ops::side_output::{SideOutput, TaggedOutputs};
use crate::ops::Table;
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then};
use crate::runtime::snapshot::{encode, Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport};
use hashbrown::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// State of one time window across keys.
struct TimeWindow<K, S> {
    table: Table<K, S>,
    fired: bool,
}

struct Session<S> {
    window: Window,
    state: S,
    fired: bool,
}

struct CountState<T, S> {
    /// Tumbling: the running state and how many records it holds.
    running: Option<(S, u64)>,
    /// Sliding: the last `size` records.
    recent: VecDeque<T>,
    seen: u64,
}

/// The window operator of one subtask: its configuration and the state of its keys' windows.
pub struct WindowOp<K, T, F: WindowFn<K, T>> {
    spec: WindowSpec,
    func: F,
    lateness: i64,
    metrics: Arc<StageMetrics>,
    late: SideOutput<T>,
    side: TaggedOutputs,
    watermark: Timestamp,
    time: BTreeMap<Window, TimeWindow<K, F::State>>,
    sessions: Table<K, Vec<Session<F::State>>>,
    session_checks: BTreeMap<Timestamp, Vec<K>>,
    counts: Table<K, CountState<T, F::State>>,
    scratch: Vec<Window>,
    out: Vec<F::Out>,
    /// Keys in the last window that fired: new windows' tables start at that size instead
    /// of growing through every power of two.
    typical_keys: usize,
    /// Encodes keys and window state for checkpoints; `None`: not checkpointable.
    codec: Option<WindowCodec<K, F::State>>,
    /// Encodes records, which sliding count windows keep; `None`: those are not
    /// checkpointable (the window function's record type lacks serde's traits).
    records: Option<Codec<T>>,
}

/// The codecs of a window operator's keys and window state.
pub(crate) type WindowCodec<K, S> = (Codec<K>, Codec<S>);

impl<K, T, F: WindowFn<K, T>> WindowOp<K, T, F> {
    pub(crate) fn new(
        spec: WindowSpec,
        func: F,
        lateness: i64,
        metrics: Arc<StageMetrics>,
        late: SideOutput<T>,
        side: TaggedOutputs,
    ) -> Self {
        WindowOp {
            spec,
            func,
            lateness,
            metrics,
            late,
            side,
            watermark: Timestamp::MIN,
            time: BTreeMap::new(),
            sessions: Table::default(),
            session_checks: BTreeMap::new(),
            counts: Table::default(),
            scratch: Vec::new(),
            out: Vec::new(),
            typical_keys: 0,
            codec: None,
            records: None,
        }
    }

    /// Makes the operator's state checkpointable with `codec`.
    pub(crate) fn with_codec(mut self, codec: Option<WindowCodec<K, F::State>>) -> Self {
        self.codec = codec;
        self
    }

    /// Makes the records that sliding count windows keep checkpointable with `records`.
    pub(crate) fn with_records(mut self, records: Option<Codec<T>>) -> Self {
        self.records = records;
        self
    }
}

impl<K, T, F: WindowFn<K, T>> Clone for WindowOp<K, T, F> {
    fn clone(&self) -> Self {
        WindowOp::new(
            self.spec,
            self.func.clone(),
            self.lateness,
            self.metrics.clone(),
            self.late.clone(),
            self.side.clone(),
        )
        .with_codec(self.codec)
        .with_records(self.records)
    }
}

impl<K, T, F: WindowFn<K, T>> Sealed for WindowOp<K, T, F> {}

impl<K, T, F> WindowOp<K, T, F>
where
    K: Hash + Eq + Clone,
    T: Clone + Send,
    F: WindowFn<K, T>,
{
    fn emit_out<D: Downstream<F::Out>>(&mut self, ts: Timestamp, down: &mut D) {
        for r in self.out.drain(..) {
            down.emit(r, ts);
        }
    }

    fn late(&mut self, item: T, ts: Timestamp) {
        self.metrics.late.fetch_add(1, Ordering::Relaxed);
        self.late.emit(item, ts);
    }

    fn time_record<D: Downstream<F::Out>>(&mut self, down: &mut D, key: K, item: T, ts: Timestamp) {
        let wm = self.watermark;
        let mut windows = std::mem::take(&mut self.scratch);
        self.spec.assign(ts, &mut windows);
        let live = windows
            .iter()
            .filter(|w| w.max_timestamp().saturating_add(self.lateness) > wm)
            .count();
        if live == 0 {
            self.scratch = windows;
            return self.late(item, ts);
        }
        let mut item = Some(item);
        let mut left = live;
        for w in &windows {
            if w.max_timestamp().saturating_add(self.lateness) <= wm {
                continue;
            }
            left -= 1;
            let x = if left == 0 { item.take() } else { item.clone() };
            let Some(x) = x else { break };
            let typical = self.typical_keys;
            let slot = self.time.entry(*w).or_insert_with(|| TimeWindow {
                table: Table::with_capacity_and_hasher(typical, Default::default()),
                fired: false,
            });
            if w.max_timestamp() <= wm {
                // Past its firing time: this record fires the window for its key below, and
                // the watermark must not fire it again.
                slot.fired = true;
            }
            let state = match slot.table.entry(key.clone()) {
                Entry::Occupied(o) => {
                    let s = o.into_mut();
                    self.func.add(s, x);
                    s
                }
                Entry::Vacant(v) => v.insert(self.func.create(x)),
            };
            if w.max_timestamp() <= wm {
                // A late record within the allowed lateness re-fires its window.
                let info = WindowInfo {
                    window: *w,
                    watermark: wm,
                };
                let s = state.clone();
                self.func.fire_with_outputs(
                    &key,
                    &info,
                    s,
                    &mut self.out,
                    &mut self.side.at(w.max_timestamp()),
                );
                self.emit_out(w.max_timestamp(), down);
            }
        }
        self.scratch = windows;
    }

    fn session_record<D: Downstream<F::Out>>(
        &mut self,
        down: &mut D,
        key: K,
        item: T,
        ts: Timestamp,
        gap: i64,
    ) {
        let wm = self.watermark;
        let new = Window {
            start: ts,
            end: ts.saturating_add(gap),
        };
        let sessions = self.sessions.entry(key.clone()).or_default();
        // The window the record would end up in, before changing anything.
        let merged = sessions
            .iter()
            .filter(|s| s.window.touches(&new))
            .fold(new, |m, s| m.cover(&s.window));
        if merged.max_timestamp().saturating_add(self.lateness) <= wm {
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
            return self.late(item, ts);
        }
        let mut state = self.func.create(item);
        let mut i = 0;
        while i < sessions.len() {
            if sessions[i].window.touches(&merged) {
                let s = sessions.swap_remove(i);
                // Keep the earlier records first in the merged state.
                let mut earlier = s.state;
                self.func.merge(&mut earlier, state);
                state = earlier;
            } else {
                i += 1;
            }
        }
        let refire = merged.max_timestamp() <= wm;
        let snapshot = if refire { Some(state.clone()) } else { None };
        sessions.push(Session {
            window: merged,
            state,
            // A merged session is a new window: it fires when the watermark passes its end
            // (now, if it already has), whether or not the sessions it absorbed had fired.
            fired: refire,
        });
        self.session_checks
            .entry(merged.max_timestamp())
            .or_default()
            .push(key.clone());
        if self.lateness > 0 {
            let purge_at = merged.max_timestamp().saturating_add(self.lateness);
            self.session_checks
                .entry(purge_at)
                .or_default()
                .push(key.clone());
        }
        if let Some(s) = snapshot {
            let info = WindowInfo {
                window: merged,
                watermark: wm,
            };
            self.func.fire_with_outputs(
                &key,
                &info,
                s,
                &mut self.out,
                &mut self.side.at(merged.max_timestamp()),
            );
            self.emit_out(merged.max_timestamp(), down);
        }
    }

    fn count_record<D: Downstream<F::Out>>(
        &mut self,
        down: &mut D,
        key: K,
        item: T,
        ts: Timestamp,
        c: CountWindows,
    ) {
        let st = self
            .counts
            .entry(key.clone())
            .or_insert_with(|| CountState {
                running: None,
                recent: VecDeque::new(),
                seen: 0,
            });
        let info = WindowInfo {
            window: Window::GLOBAL,
            watermark: self.watermark,
        };
        if c.size == c.slide {
            let (state, n) = match st.running.take() {
                Some((mut s, n)) => {
                    self.func.add(&mut s, item);
                    (s, n + 1)
                }
                None => (self.func.create(item), 1),
            };
            if n == c.size {
                self.func.fire_with_outputs(
                    &key,
                    &info,
                    state,
                    &mut self.out,
                    &mut self.side.at(ts),
                );
            } else {
                st.running = Some((state, n));
            }
        } else {
            st.recent.push_back(item);
            if st.recent.len() as u64 > c.size {
                st.recent.pop_front();
            }
            st.seen += 1;
            if st.seen % c.slide == 0 {
                let mut it = st.recent.iter().cloned();
                if let Some(first) = it.next() {
                    let mut s = self.func.create(first);
                    for x in it {
                        self.func.add(&mut s, x);
                    }
                    self.func.fire_with_outputs(
                        &key,
                        &info,
                        s,
                        &mut self.out,
                        &mut self.side.at(ts),
                    );
                }
            }
        }
        self.emit_out(ts, down);
    }

    /// Fires (and purges) everything the watermark `wm` has passed.
    fn advance<D: Downstream<F::Out>>(&mut self, down: &mut D, wm: Timestamp) {
        self.watermark = wm;
        // Time windows, in window order.
        while let Some((&w, _)) = self
            .time
            .iter()
            .find(|(w, tw)| w.max_timestamp() <= wm && !tw.fired)
        {
            let purge = w.max_timestamp().saturating_add(self.lateness) <= wm;
            let info = WindowInfo {
                window: w,
                watermark: wm,
            };
            if purge {
                if let Some(tw) = self.time.remove(&w) {
                    self.typical_keys = tw.table.len();
                    for (k, s) in tw.table {
                        self.func.fire_with_outputs(
                            &k,
                            &info,
                            s,
                            &mut self.out,
                            &mut self.side.at(w.max_timestamp()),
                        );
                    }
                }
            } else if let Some(tw) = self.time.get_mut(&w) {
                tw.fired = true;
                for (k, s) in &tw.table {
                    self.func.fire_with_outputs(
                        k,
                        &info,
                        s.clone(),
                        &mut self.out,
                        &mut self.side.at(w.max_timestamp()),
                    );
                }
            }
            self.emit_out(w.max_timestamp(), down);
        }
        let lateness = self.lateness;
        self.time
            .retain(|w, _| w.max_timestamp().saturating_add(lateness) > wm);
        // Sessions: the keys that have something due.
        while let Some(entry) = self.session_checks.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let keys = entry.remove();
            for key in keys {
                let Some(sessions) = self.sessions.get_mut(&key) else {
                    continue;
                };
                let mut i = 0;
                let mut due = Vec::new();
                while i < sessions.len() {
                    let s = &mut sessions[i];
                    let max = s.window.max_timestamp();
                    if max > wm {
                        i += 1;
                        continue;
                    }
                    let purge = max.saturating_add(lateness) <= wm;
                    if purge {
                        let s = sessions.swap_remove(i);
                        if !s.fired {
                            due.push((s.window, s.state));
                        }
                    } else {
                        if !s.fired {
                            s.fired = true;
                            due.push((s.window, s.state.clone()));
                        }
                        i += 1;
                    }
                }
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                }
                due.sort_by_key(|(w, _)| *w);
                for (w, s) in due {
                    let info = WindowInfo {
                        window: w,
                        watermark: wm,
                    };
                    self.func.fire_with_outputs(
                        &key,
                        &info,
                        s,
                        &mut self.out,
                        &mut self.side.at(w.max_timestamp()),
                    );
                    self.emit_out(w.max_timestamp(), down);
                }
            }
        }
    }
}

/// A key's count windows as checkpoints store them (for the type check): the running
/// state of a tumbling window and its record count, the records seen, the last records.
type StoredCount<T, S> = (Option<(S, u64)>, u64, Vec<T>);

/// A session as checkpoints store it: start, end, fired, contents (for the type check).
type StoredSession<S> = (Timestamp, Timestamp, bool, S);

impl<K, T, F> Operator<(K, T)> for WindowOp<K, T, F>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    F: WindowFn<K, T>,
{
    type Out = F::Out;

    #[inline]
    fn on_record<D: Downstream<F::Out>>(
        &mut self,
        (key, item): (K, T),
        ts: Timestamp,
        down: &mut D,
    ) {
        match self.spec {
            WindowSpec::TumblingProcessing(_) | WindowSpec::SlidingProcessing(_) => {
                let now = crate::time::now_ms();
                self.time_record(down, key, item, now)
            }
            WindowSpec::Tumbling(_) | WindowSpec::Sliding(_) => {
                if ts == NO_TIMESTAMP {
                    self.late(item, ts);
                } else {
                    self.time_record(down, key, item, ts)
                }
            }
            WindowSpec::Session(s) => {
                if ts == NO_TIMESTAMP {
                    self.late(item, ts);
                } else {
                    self.session_record(down, key, item, ts, s.gap)
                }
            }
            WindowSpec::Count(c) => self.count_record(down, key, item, ts, c),
        }
    }

    fn on_event<D: Downstream<F::Out>>(&mut self, event: Event, down: &mut D) {
        match event {
            Event::Watermark(w) if w > self.watermark && !self.spec.is_processing_time() => {
                self.advance(down, w)
            }
            Event::ProcessingTime(t) if t > self.watermark && self.spec.is_processing_time() => {
                self.advance(down, t)
            }
            // The end of a bounded input is the final watermark: every window fires.
            Event::End => self.advance(down, Timestamp::MAX),
            _ => {}
        }
        self.late.event(event);
        self.side.event(event);
        down.event(event)
    }

    fn open(&mut self, cx: OpenCx) {
        self.late.open(cx.clone());
        self.side.open(cx)
    }

    fn state_entries(&self) -> u64 {
        let windows: usize = self.time.values().map(|w| w.table.len()).sum();
        (windows + self.sessions.len() + self.counts.len()) as u64
    }

    fn state(&self) -> StateSupport {
        let watermark = StateDecl::operator::<Timestamp>(WATERMARK);
        match (self.spec, &self.codec) {
            (_, None) => StateSupport::Unsupported("window contents without a codec"),
            (WindowSpec::Count(c), _) if c.size != c.slide && self.records.is_none() => {
                StateSupport::Unsupported(
                    "the records of sliding count windows, whose type lacks serde's traits for this window function (use `process` or `reduce`, which need them, to checkpoint)",
                )
            }
            (WindowSpec::Count(_), _) => StateSupport::Persisted(vec![
                StateDecl::packed::<(), K, StoredCount<T, F::State>>(COUNTS),
                watermark,
            ]),
            (WindowSpec::Session(_), _) => StateSupport::Persisted(vec![
                StateDecl::packed::<(), K, Vec<StoredSession<F::State>>>(SESSIONS),
                watermark,
            ]),
            _ => StateSupport::Persisted(vec![
                StateDecl::packed::<(Window, bool), K, F::State>(WINDOWS),
                watermark,
            ]),
        }
    }

    /// Window contents are written whole at every checkpoint (open windows are what a
    /// window operator holds, and most of them changed since the last checkpoint); the
    /// segments of the previous checkpoint's contents are dropped.
    ///
    /// Count windows are written whole too: per key, a flag and the running state and record
    /// count of a tumbling window, the records seen and the last records (sliding windows).
    ///
    /// Entries are packed ([`crate::runtime::snapshot::Packer`]): per key group, one entry
    /// per window (time windows; its start and end and a chunk number as the key, its fired
    /// flag then every key and state as the value) or one for all keys (sessions: each key,
    /// its count of sessions and each session's start, end, fired flag and state; count
    /// windows: each key and its count state).
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        cx.operator_state(WATERMARK, &self.watermark)?;
        match self.spec {
            WindowSpec::Count(_) => {
                let records = self.records;
                let mut w = cx.keyed(COUNTS, true);
                let mut p = w.packer();
                for (k, st) in &self.counts {
                    p.push(&mut w, k, |v| {
                        (kc.enc)(k, v)?;
                        match &st.running {
                            Some((s, n)) => {
                                v.push(1);
                                (sc.enc)(s, v)?;
                                encode(n, v)?;
                            }
                            None => v.push(0),
                        }
                        encode(&st.seen, v)?;
                        encode(&(st.recent.len() as u64), v)?;
                        if !st.recent.is_empty() {
                            let rc = records.ok_or_else(|| {
                                crate::Error::Checkpoint(
                                    "the records of a sliding count window have no codec".into(),
                                )
                            })?;
                            for r in &st.recent {
                                (rc.enc)(r, v)?;
                            }
                        }
                        Ok(())
                    })?;
                }
                p.flush(&mut w);
                w.finish();
            }
            WindowSpec::Session(_) => {
                let mut w = cx.keyed(SESSIONS, true);
                let mut p = w.packer();
                for (k, sessions) in &self.sessions {
                    p.push(&mut w, k, |v| {
                        (kc.enc)(k, v)?;
                        encode(&(sessions.len() as u64), v)?;
                        for s in sessions {
                            encode(&(s.window.start, s.window.end, s.fired), v)?;
                            (sc.enc)(&s.state, v)?;
                        }
                        Ok(())
                    })?;
                }
                p.flush(&mut w);
                w.finish();
            }
            _ => {
                let mut w = cx.keyed(WINDOWS, true);
                let mut p = w.packer();
                for (win, tw) in &self.time {
                    let mut prefix = Vec::new();
                    encode(&(win.start, win.end), &mut prefix)?;
                    p.group(&mut w, prefix, vec![tw.fired as u8]);
                    for (k, s) in &tw.table {
                        p.push(&mut w, k, |v| {
                            (kc.enc)(k, v)?;
                            (sc.enc)(s, v)
                        })?;
                    }
                }
                p.flush(&mut w);
                w.finish();
            }
        }
        Ok(())
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        // Of the subtasks of the checkpointed job, the least advanced watermark: no window
        // that any of them still held is past it.
        if let Some(w) = cx.operator_state::<Timestamp>(WATERMARK)?.into_iter().min() {
            self.watermark = self.watermark.max(w);
        }
        let bad = |name: &str, e: crate::Error| {
            crate::Error::Checkpoint(format!("{}: {e}", cx.describe(name)))
        };
        fn take<X: serde::de::DeserializeOwned>(b: &[u8]) -> crate::Result<(X, &[u8])> {
            postcard::take_from_bytes(b).map_err(|e| crate::Error::Checkpoint(e.to_string()))
        }
        match self.spec {
            WindowSpec::Count(_) => {
                let counts = &mut self.counts;
                let records = self.records;
                cx.packed(COUNTS, |_, mut rest| {
                    while !rest.is_empty() {
                        let (k, r) = (kc.dec)(rest).map_err(|e| bad(COUNTS, e))?;
                        let (&flag, r) = r.split_first().ok_or_else(|| {
                            bad(COUNTS, crate::Error::Checkpoint("a truncated count".into()))
                        })?;
                        let (running, r) = if flag != 0 {
                            let (s, r) = (sc.dec)(r).map_err(|e| bad(COUNTS, e))?;
                            let (n, r) = take::<u64>(r).map_err(|e| bad(COUNTS, e))?;
                            (Some((s, n)), r)
                        } else {
                            (None, r)
                        };
                        let (seen, r) = take::<u64>(r).map_err(|e| bad(COUNTS, e))?;
                        let (len, mut r) = take::<u64>(r).map_err(|e| bad(COUNTS, e))?;
                        let mut recent = VecDeque::new();
                        if len > 0 {
                            let rc = records.ok_or_else(|| {
                                bad(
                                    COUNTS,
                                    crate::Error::Checkpoint(
                                        "records of a sliding count window, which this job cannot decode"
                                            .into(),
                                    ),
                                )
                            })?;
                            for _ in 0..len {
                                let (x, rr) = (rc.dec)(r).map_err(|e| bad(COUNTS, e))?;
                                recent.push_back(x);
                                r = rr;
                            }
                        }
                        rest = r;
                        counts.insert(
                            k,
                            CountState {
                                running,
                                recent,
                                seen,
                            },
                        );
                    }
                    Ok(())
                })?;
            }
            WindowSpec::Session(_) => {
                let mut restored = Vec::new();
                cx.packed(SESSIONS, |_, mut rest| {
                    while !rest.is_empty() {
                        let (k, r) = (kc.dec)(rest).map_err(|e| bad(SESSIONS, e))?;
                        let (n, mut r) = take::<u64>(r).map_err(|e| bad(SESSIONS, e))?;
                        let mut v = Vec::new();
                        for _ in 0..n {
                            let ((start, end, fired), rr) = take::<(Timestamp, Timestamp, bool)>(r)
                                .map_err(|e| bad(SESSIONS, e))?;
                            let (state, rr) = (sc.dec)(rr).map_err(|e| bad(SESSIONS, e))?;
                            v.push((Window { start, end }, fired, state));
                            r = rr;
                        }
                        rest = r;
                        restored.push((k, v));
                    }
                    Ok(())
                })?;
                for (k, v) in restored {
                    for (window, fired, state) in v {
                        let max = window.max_timestamp();
                        self.session_checks.entry(max).or_default().push(k.clone());
                        if self.lateness > 0 {
                            let purge = max.saturating_add(self.lateness);
                            self.session_checks
                                .entry(purge)
                                .or_default()
                                .push(k.clone());
                        }
                        self.sessions.entry(k.clone()).or_default().push(Session {
                            window,
                            state,
                            fired,
                        });
                    }
                }
            }
            _ => {
                let time = &mut self.time;
                cx.packed(WINDOWS, |prefix, value| {
                    let (start, end) = postcard::from_bytes::<(Timestamp, Timestamp)>(prefix)
                        .map_err(|e| bad(WINDOWS, crate::Error::Checkpoint(e.to_string())))?;
                    let (&fired, mut rest) = value.split_first().ok_or_else(|| {
                        bad(WINDOWS, crate::Error::Checkpoint("empty value".into()))
                    })?;
                    let slot = time
                        .entry(Window { start, end })
                        .or_insert_with(|| TimeWindow {
                            table: Table::default(),
                            fired: fired != 0,
                        });
                    while !rest.is_empty() {
                        let (k, r) = (kc.dec)(rest).map_err(|e| bad(WINDOWS, e))?;
                        let (s, r) = (sc.dec)(r).map_err(|e| bad(WINDOWS, e))?;
                        rest = r;
                        slot.table.insert(k, s);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if self.spec.is_processing_time() {
            if let Some(end) = self.time.keys().map(|w| w.end).min() {
                let wait = (end - 1).saturating_sub(crate::time::now_ms()).max(0) as u64;
                cx.wake_at(std::time::Instant::now() + Duration::from_millis(wait));
            }
        }
        Ok(self.late.drain(cx)? & self.side.drain(cx)?)
    }
}

/// Names of the window operator's states in checkpoints.
const WATERMARK: &str = "watermark";
const WINDOWS: &str = "windows";
const SESSIONS: &str = "sessions";
const COUNTS: &str = "counts";

/// The chain of a windowed stage: the exchange's `(key, record)` pairs into the window operator.
pub type WindowChain<K, T, F> = Then<Identity<(K, T)>, WindowOp<K, T, F>>;
