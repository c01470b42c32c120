//! Windows on keyed streams: tumbling, sliding and session windows in event time, count
//! windows, with allowed lateness and a side output for late records.
//!
//! Semantics follow Flink: a window `[start, end)` fires when the watermark reaches
//! `end - 1`; with `allowed_lateness(d)` its state is kept until the watermark reaches
//! `end - 1 + d`, and every record arriving in that time re-fires the window with the updated
//! result; a record whose windows are all past that point is late: it goes to the late side
//! output if the job asked for one, and is counted in the job summary either way.
//!
//! ```
//! use flow_core::prelude::*;
//! use std::time::Duration;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let sums = env
//!     .from_iter([("a", 1_000, 1), ("a", 1_500, 2), ("b", 1_200, 5), ("a", 2_100, 7)])
//!     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
//!     .key_by(|e| e.0)
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
//!     .sum(|e| e.2)
//!     .map(|w| (w.key, w.window.start, w.value))
//!     .collect();
//! env.execute()?;
//! let mut got = sums.take();
//! got.sort();
//! assert_eq!(got, [("a", 1_000, 3), ("a", 2_000, 7), ("b", 1_000, 5)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use crate::chain::{Chain, Downstream, DrainCx, Identity, OpName, PanicGuard};
use crate::keyed::{Aggregate, Table};
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use crate::runtime::exchange::{ChannelOut, ExchangeWriter, Forward};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::stage::Terminal;
use hashbrown::hash_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A window of event time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First timestamp in the window.
    pub start: Timestamp,
    /// One past the last timestamp in the window.
    pub end: Timestamp,
}

impl Window {
    /// The window of count windows, which has no time bounds.
    pub const GLOBAL: Window = Window {
        start: Timestamp::MIN,
        end: Timestamp::MAX,
    };

    /// The largest timestamp in the window: it fires when the watermark reaches this.
    pub fn max_timestamp(&self) -> Timestamp {
        self.end.saturating_sub(1)
    }

    /// Whether two session windows overlap or touch (and so merge).
    fn touches(&self, other: &Window) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    fn cover(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One result of a window function: the key, the window and the value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// The window function's result.
    pub value: V,
}

/// What a `process` window function knows besides the records.
#[derive(Clone, Copy, Debug)]
pub struct WindowInfo {
    /// The window that fired.
    pub window: Window,
    /// The operator's watermark when it fired.
    pub watermark: Timestamp,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Event-time tumbling windows: fixed size, no overlap.
#[derive(Clone, Copy, Debug)]
pub struct TumblingEventTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size`, aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        TumblingEventTimeWindows {
            size: millis(size).max(1),
            offset: 0,
        }
    }
    /// Shifts the windows' alignment by `offset` (e.g. for time zones).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset);
        self
    }
}

/// Event-time sliding windows: `size` long, a new one every `slide`.
#[derive(Clone, Copy, Debug)]
pub struct SlidingEventTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingEventTimeWindows {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }
    /// Shifts the windows' alignment by `offset`.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset);
        self
    }
}

/// Processing-time tumbling windows: records go to the window of the wall-clock time at which
/// the window operator sees them; windows fire when the wall clock passes their end.
#[derive(Clone, Copy, Debug)]
pub struct TumblingProcessingTimeWindows(TumblingEventTimeWindows);

impl TumblingProcessingTimeWindows {
    /// Windows of `size` of wall time.
    pub fn of(size: Duration) -> Self {
        TumblingProcessingTimeWindows(TumblingEventTimeWindows::of(size))
    }
    /// Shifts the windows' alignment by `offset`.
    pub fn with_offset(self, offset: Duration) -> Self {
        TumblingProcessingTimeWindows(self.0.with_offset(offset))
    }
}

/// Processing-time sliding windows.
#[derive(Clone, Copy, Debug)]
pub struct SlidingProcessingTimeWindows(SlidingEventTimeWindows);

impl SlidingProcessingTimeWindows {
    /// Windows of `size` of wall time, starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingProcessingTimeWindows(SlidingEventTimeWindows::of(size, slide))
    }
}

/// Event-time session windows: a key's records closer together than `gap` form one window.
#[derive(Clone, Copy, Debug)]
pub struct EventTimeSessionWindows {
    gap: i64,
}

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` without a record.
    pub fn with_gap(gap: Duration) -> Self {
        EventTimeSessionWindows {
            gap: millis(gap).max(1),
        }
    }
}

/// Count windows: fire every `slide` records of a key over its last `size` records
/// (tumbling when `slide == size`). Like Flink's, they never fire a partial window.
#[derive(Clone, Copy, Debug)]
pub struct CountWindows {
    size: u64,
    slide: u64,
}

impl CountWindows {
    /// Tumbling count windows of `size` records.
    pub fn of(size: u64) -> Self {
        CountWindows {
            size: size.max(1),
            slide: size.max(1),
        }
    }
    /// Sliding count windows: every `slide` records, over the last `size`.
    pub fn sliding(size: u64, slide: u64) -> Self {
        CountWindows {
            size: size.max(1),
            slide: slide.max(1),
        }
    }
}

/// How records are grouped into windows.
#[derive(Clone, Copy, Debug)]
pub enum WindowSpec {
    /// Tumbling event-time windows.
    Tumbling(TumblingEventTimeWindows),
    /// Sliding event-time windows.
    Sliding(SlidingEventTimeWindows),
    /// Merging session windows in event time.
    Session(EventTimeSessionWindows),
    /// Count windows.
    Count(CountWindows),
    /// Tumbling windows in processing time.
    TumblingProcessing(TumblingProcessingTimeWindows),
    /// Sliding windows in processing time.
    SlidingProcessing(SlidingProcessingTimeWindows),
}

impl From<TumblingProcessingTimeWindows> for WindowSpec {
    fn from(w: TumblingProcessingTimeWindows) -> Self {
        WindowSpec::TumblingProcessing(w)
    }
}
impl From<SlidingProcessingTimeWindows> for WindowSpec {
    fn from(w: SlidingProcessingTimeWindows) -> Self {
        WindowSpec::SlidingProcessing(w)
    }
}

impl From<TumblingEventTimeWindows> for WindowSpec {
    fn from(w: TumblingEventTimeWindows) -> Self {
        WindowSpec::Tumbling(w)
    }
}
impl From<SlidingEventTimeWindows> for WindowSpec {
    fn from(w: SlidingEventTimeWindows) -> Self {
        WindowSpec::Sliding(w)
    }
}
impl From<EventTimeSessionWindows> for WindowSpec {
    fn from(w: EventTimeSessionWindows) -> Self {
        WindowSpec::Session(w)
    }
}
impl From<CountWindows> for WindowSpec {
    fn from(w: CountWindows) -> Self {
        WindowSpec::Count(w)
    }
}

impl WindowSpec {
    /// The time windows that contain `ts`, in `out` (Flink's assigners, including negative
    /// timestamps).
    pub fn assign(&self, ts: Timestamp, out: &mut Vec<Window>) {
        out.clear();
        match *self {
            WindowSpec::TumblingProcessing(t) => WindowSpec::Tumbling(t.0).assign(ts, out),
            WindowSpec::SlidingProcessing(s) => WindowSpec::Sliding(s.0).assign(ts, out),
            WindowSpec::Tumbling(t) => {
                let start = ts - (ts - t.offset).rem_euclid(t.size);
                out.push(Window {
                    start,
                    end: start + t.size,
                });
            }
            WindowSpec::Sliding(s) => {
                let last = ts - (ts - s.offset).rem_euclid(s.slide);
                let mut start = last;
                while start > ts - s.size {
                    out.push(Window {
                        start,
                        end: start + s.size,
                    });
                    start -= s.slide;
                }
            }
            WindowSpec::Session(s) => out.push(Window {
                start: ts,
                end: ts + s.gap,
            }),
            WindowSpec::Count(_) => out.push(Window::GLOBAL),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            WindowSpec::Tumbling(t) => format!("tumbling {} ms", t.size),
            WindowSpec::Sliding(s) => format!("sliding {} ms every {} ms", s.size, s.slide),
            WindowSpec::Session(s) => format!("session gap {} ms", s.gap),
            WindowSpec::Count(c) => format!("count {} every {}", c.size, c.slide),
            WindowSpec::TumblingProcessing(t) => {
                format!("tumbling {} ms processing time", t.0.size)
            }
            WindowSpec::SlidingProcessing(s) => {
                format!(
                    "sliding {} ms every {} ms processing time",
                    s.0.size, s.0.slide
                )
            }
        }
    }

    /// Whether windows follow the wall clock instead of the watermark.
    pub fn is_processing_time(&self) -> bool {
        matches!(
            self,
            WindowSpec::TumblingProcessing(_) | WindowSpec::SlidingProcessing(_)
        )
    }
}

/// What a window computes from its records (aggregate, reduce, process, ...).
pub trait WindowFn<K, T>: Clone + Send + 'static {
    /// Per key and window state.
    type State: Clone + Send + 'static;
    /// Results.
    type Out: Send + 'static;
    /// The state of a window's first record.
    fn create(&mut self, item: T) -> Self::State;
    /// Adds a record.
    fn add(&mut self, state: &mut Self::State, item: T);
    /// Merges `b` into `a` (session windows).
    fn merge(&mut self, a: &mut Self::State, b: Self::State);
    /// Produces the results of a firing window.
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Self::State, out: &mut Vec<Self::Out>);
}

/// An [`Aggregate`] per window: results `Windowed<K, A::Out>`.
#[derive(Clone)]
pub struct AggregateWindow<A>(pub(crate) A);

impl<K: Clone + Send + 'static, T, A: Aggregate<T>> WindowFn<K, T> for AggregateWindow<A> {
    type State = A::Acc;
    type Out = Windowed<K, A::Out>;
    #[inline]
    fn create(&mut self, item: T) -> A::Acc {
        self.0.create(item)
    }
    #[inline]
    fn add(&mut self, state: &mut A::Acc, item: T) {
        self.0.add(state, item)
    }
    fn merge(&mut self, a: &mut A::Acc, b: A::Acc) {
        self.0.merge(a, b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: A::Acc, out: &mut Vec<Self::Out>) {
        out.push(Windowed {
            key: key.clone(),
            window: info.window,
            value: self.0.result(state),
        })
    }
}

/// All records of the window handed to a function (Flink's `ProcessWindowFunction`).
#[derive(Clone)]
pub struct ProcessWindow<F> {
    pub(crate) f: F,
    pub(crate) name: OpName,
}

impl<K, T, F, I> WindowFn<K, T> for ProcessWindow<F>
where
    T: Clone + Send + 'static,
    F: FnMut(&K, &WindowInfo, Vec<T>) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type State = Vec<T>;
    type Out = I::Item;
    fn create(&mut self, item: T) -> Vec<T> {
        vec![item]
    }
    fn add(&mut self, state: &mut Vec<T>, item: T) {
        state.push(item)
    }
    fn merge(&mut self, a: &mut Vec<T>, mut b: Vec<T>) {
        a.append(&mut b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Vec<T>, out: &mut Vec<I::Item>) {
        let guard = PanicGuard(&self.name);
        out.extend((self.f)(key, info, state));
        std::mem::forget(guard);
    }
}

/// An incremental aggregate whose result is handed to a function with the window's context.
#[derive(Clone)]
pub struct AggregateProcessWindow<A, F> {
    pub(crate) agg: A,
    pub(crate) f: F,
    pub(crate) name: OpName,
}

impl<K, T, A, F, R> WindowFn<K, T> for AggregateProcessWindow<A, F>
where
    A: Aggregate<T>,
    F: FnMut(&K, &WindowInfo, A::Out) -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    type State = A::Acc;
    type Out = R;
    fn create(&mut self, item: T) -> A::Acc {
        self.agg.create(item)
    }
    fn add(&mut self, state: &mut A::Acc, item: T) {
        self.agg.add(state, item)
    }
    fn merge(&mut self, a: &mut A::Acc, b: A::Acc) {
        self.agg.merge(a, b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: A::Acc, out: &mut Vec<R>) {
        let r = self.agg.result(state);
        let guard = PanicGuard(&self.name);
        out.push((self.f)(key, info, r));
        std::mem::forget(guard);
    }
}

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

/// The windowing operator of a keyed stream, after the key-group exchange.
pub struct WindowOp<C, K, T, F: WindowFn<K, T>> {
    pub(crate) inner: C,
    pub(crate) spec: WindowSpec,
    pub(crate) func: F,
    pub(crate) lateness: i64,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) late_outs: Option<Vec<ChannelOut<T>>>,
    pub(crate) batch_size: usize,
    pub(crate) st: WindowState<K, T, F::State>,
}

#[doc(hidden)]
pub struct WindowState<K, T, S> {
    watermark: Timestamp,
    time: BTreeMap<Window, TimeWindow<K, S>>,
    sessions: Table<K, Vec<Session<S>>>,
    session_checks: BTreeMap<Timestamp, Vec<K>>,
    counts: Table<K, CountState<T, S>>,
    scratch: Vec<Window>,
    late: Option<ExchangeWriter<T, Forward>>,
    /// Keys in the last window that fired: new windows' tables start at that size instead
    /// of growing through every power of two.
    typical_keys: usize,
}

impl<K, T, S> WindowState<K, T, S> {
    pub(crate) fn new() -> Self {
        WindowState {
            watermark: Timestamp::MIN,
            time: BTreeMap::new(),
            sessions: Table::default(),
            session_checks: BTreeMap::new(),
            counts: Table::default(),
            scratch: Vec::new(),
            late: None,
            typical_keys: 0,
        }
    }
}

impl<C: Clone, K, T, F: WindowFn<K, T>> Clone for WindowOp<C, K, T, F> {
    fn clone(&self) -> Self {
        WindowOp {
            inner: self.inner.clone(),
            spec: self.spec,
            func: self.func.clone(),
            lateness: self.lateness,
            metrics: self.metrics.clone(),
            late_outs: self.late_outs.clone(),
            batch_size: self.batch_size,
            st: WindowState::new(),
        }
    }
}

#[doc(hidden)]
pub struct WindowAdapter<'a, K, T, F: WindowFn<K, T>, D> {
    spec: WindowSpec,
    func: &'a mut F,
    lateness: i64,
    metrics: &'a StageMetrics,
    st: &'a mut WindowState<K, T, F::State>,
    out: Vec<F::Out>,
    down: &'a mut D,
}

impl<C, K, T, F> Chain for WindowOp<C, K, T, F>
where
    C: Chain<Out = (K, T)>,
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    F: WindowFn<K, T>,
{
    type In = C::In;
    type Out = F::Out;

    #[inline]
    fn push<D: Downstream<F::Out>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = WindowAdapter {
            spec: self.spec,
            func: &mut self.func,
            lateness: self.lateness,
            metrics: &self.metrics,
            st: &mut self.st,
            out: Vec::new(),
            down,
        };
        self.inner.push(item, ts, &mut a)
    }

    fn event<D: Downstream<F::Out>>(&mut self, event: Event, down: &mut D) {
        let mut a = WindowAdapter {
            spec: self.spec,
            func: &mut self.func,
            lateness: self.lateness,
            metrics: &self.metrics,
            st: &mut self.st,
            out: Vec::new(),
            down,
        };
        self.inner.event(event, &mut a)
    }

    fn open(&mut self, subtask: usize, parallelism: usize) {
        if let Some(outs) = self.late_outs.take() {
            self.st.late = Some(ExchangeWriter::new(
                subtask,
                outs,
                Forward(subtask),
                self.batch_size,
            ));
        }
        self.inner.open(subtask, parallelism)
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if self.spec.is_processing_time() {
            if let Some(end) = self.st.time.keys().map(|w| w.end).min() {
                let wait = (end - 1).saturating_sub(crate::time::now_ms()).max(0) as u64;
                cx.wake_at(std::time::Instant::now() + Duration::from_millis(wait));
            }
        }
        let inner = self.inner.drain(cx)?;
        let late = match self.st.late.as_mut() {
            Some(w) => w.drain(cx.cx)?,
            None => true,
        };
        Ok(inner && late)
    }
}

impl<K, T, F, D> WindowAdapter<'_, K, T, F, D>
where
    K: Hash + Eq + Clone,
    T: Clone + Send,
    F: WindowFn<K, T>,
    D: Downstream<F::Out>,
{
    fn emit_out(&mut self, ts: Timestamp) {
        for r in self.out.drain(..) {
            self.down.emit(r, ts);
        }
    }

    fn late(&mut self, item: T, ts: Timestamp) {
        self.metrics.late.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = self.st.late.as_mut() {
            w.emit(item, ts);
        }
    }

    fn time_record(&mut self, key: K, item: T, ts: Timestamp) {
        let wm = self.st.watermark;
        let mut windows = std::mem::take(&mut self.st.scratch);
        self.spec.assign(ts, &mut windows);
        let live = windows
            .iter()
            .filter(|w| w.max_timestamp().saturating_add(self.lateness) > wm)
            .count();
        if live == 0 {
            self.st.scratch = windows;
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
            let typical = self.st.typical_keys;
            let slot = self.st.time.entry(*w).or_insert_with(|| TimeWindow {
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
                self.func.fire(&key, &info, s, &mut self.out);
                self.emit_out(w.max_timestamp());
            }
        }
        self.st.scratch = windows;
    }

    fn session_record(&mut self, key: K, item: T, ts: Timestamp, gap: i64) {
        let wm = self.st.watermark;
        let new = Window {
            start: ts,
            end: ts.saturating_add(gap),
        };
        let sessions = self.st.sessions.entry(key.clone()).or_default();
        // The window the record would end up in, before changing anything.
        let merged = sessions
            .iter()
            .filter(|s| s.window.touches(&new))
            .fold(new, |m, s| m.cover(&s.window));
        if merged.max_timestamp().saturating_add(self.lateness) <= wm {
            if sessions.is_empty() {
                self.st.sessions.remove(&key);
            }
            return self.late(item, ts);
        }
        let mut state = self.func.create(item);
        let mut fired = false;
        let mut i = 0;
        while i < sessions.len() {
            if sessions[i].window.touches(&merged) {
                let s = sessions.swap_remove(i);
                // Keep the earlier records first in the merged state.
                let mut earlier = s.state;
                self.func.merge(&mut earlier, state);
                state = earlier;
                fired |= s.fired;
            } else {
                i += 1;
            }
        }
        let refire = merged.max_timestamp() <= wm;
        let snapshot = if refire { Some(state.clone()) } else { None };
        sessions.push(Session {
            window: merged,
            state,
            fired: fired || refire,
        });
        self.st
            .session_checks
            .entry(merged.max_timestamp())
            .or_default()
            .push(key.clone());
        if self.lateness > 0 {
            let purge_at = merged.max_timestamp().saturating_add(self.lateness);
            self.st
                .session_checks
                .entry(purge_at)
                .or_default()
                .push(key.clone());
        }
        if let Some(s) = snapshot {
            let info = WindowInfo {
                window: merged,
                watermark: wm,
            };
            self.func.fire(&key, &info, s, &mut self.out);
            self.emit_out(merged.max_timestamp());
        }
    }

    fn count_record(&mut self, key: K, item: T, ts: Timestamp, c: CountWindows) {
        let st = self
            .st
            .counts
            .entry(key.clone())
            .or_insert_with(|| CountState {
                running: None,
                recent: VecDeque::new(),
                seen: 0,
            });
        let info = WindowInfo {
            window: Window::GLOBAL,
            watermark: self.st.watermark,
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
                self.func.fire(&key, &info, state, &mut self.out);
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
                    self.func.fire(&key, &info, s, &mut self.out);
                }
            }
        }
        self.emit_out(ts);
    }

    /// Fires (and purges) everything the watermark `wm` has passed.
    fn advance(&mut self, wm: Timestamp) {
        self.st.watermark = wm;
        // Time windows, in window order.
        while let Some((&w, _)) = self
            .st
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
                if let Some(tw) = self.st.time.remove(&w) {
                    self.st.typical_keys = tw.table.len();
                    for (k, s) in tw.table {
                        self.func.fire(&k, &info, s, &mut self.out);
                    }
                }
            } else if let Some(tw) = self.st.time.get_mut(&w) {
                tw.fired = true;
                for (k, s) in &tw.table {
                    self.func.fire(k, &info, s.clone(), &mut self.out);
                }
            }
            self.emit_out(w.max_timestamp());
        }
        let lateness = self.lateness;
        self.st
            .time
            .retain(|w, _| w.max_timestamp().saturating_add(lateness) > wm);
        // Sessions: the keys that have something due.
        while let Some(entry) = self.st.session_checks.first_entry() {
            if *entry.key() > wm {
                break;
            }
            let keys = entry.remove();
            for key in keys {
                let Some(sessions) = self.st.sessions.get_mut(&key) else {
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
                    self.st.sessions.remove(&key);
                }
                due.sort_by_key(|(w, _)| *w);
                for (w, s) in due {
                    let info = WindowInfo {
                        window: w,
                        watermark: wm,
                    };
                    self.func.fire(&key, &info, s, &mut self.out);
                    self.emit_out(w.max_timestamp());
                }
            }
        }
    }
}

impl<K, T, F, D> Downstream<(K, T)> for WindowAdapter<'_, K, T, F, D>
where
    K: Hash + Eq + Clone,
    T: Clone + Send,
    F: WindowFn<K, T>,
    D: Downstream<F::Out>,
{
    #[inline]
    fn emit(&mut self, (key, item): (K, T), ts: Timestamp) {
        match self.spec {
            WindowSpec::TumblingProcessing(_) | WindowSpec::SlidingProcessing(_) => {
                let now = crate::time::now_ms();
                self.time_record(key, item, now)
            }
            WindowSpec::Tumbling(_) | WindowSpec::Sliding(_) => {
                if ts == NO_TIMESTAMP {
                    self.late(item, ts);
                } else {
                    self.time_record(key, item, ts)
                }
            }
            WindowSpec::Session(s) => {
                if ts == NO_TIMESTAMP {
                    self.late(item, ts);
                } else {
                    self.session_record(key, item, ts, s.gap)
                }
            }
            WindowSpec::Count(c) => self.count_record(key, item, ts, c),
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Watermark(w) if w > self.st.watermark && !self.spec.is_processing_time() => {
                self.advance(w)
            }
            Event::ProcessingTime(t) if t > self.st.watermark && self.spec.is_processing_time() => {
                self.advance(t)
            }
            // The end of a bounded input is the final watermark: every window fires.
            Event::End => self.advance(Timestamp::MAX),
            _ => {}
        }
        if let Some(late) = self.st.late.as_mut() {
            late.event(event);
        }
        self.down.event(event)
    }
}

/// Marker making the chain type of windowed stages nameable.
pub type WindowChain<K, T, F> = WindowOp<Identity<(K, T)>, K, T, F>;
