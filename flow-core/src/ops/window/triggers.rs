//! Triggers and evictors on time windows (tumbling and sliding, in event or processing time):
//! [`WindowedStream::trigger`] replaces the default "fire when the watermark passes the end"
//! with a [`WindowTrigger`] ([`CountTrigger`], [`ContinuousEventTimeTrigger`],
//! [`PurgingTrigger`], [`EventTimeTrigger`] or one of your own), and
//! [`WindowedStream::evictor`] drops records ([`CountEvictor`], [`TimeEvictor`]) before the
//! window function runs.
//!
//! Windows without a trigger or evictor keep running in the plain window operator; a trigger
//! or evictor moves them to [`TriggerWindowOp`], which keeps per key and window the trigger's
//! state and timers. As in Flink, a window's state is dropped (and [`WindowTrigger::clear`]
//! called) when the watermark passes its end plus the allowed lateness, whatever the trigger
//! says; records arriving later go to the late side output.
//!
//! ```
//! use flow_core::prelude::*;
//! use std::time::Duration;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let early = env
//!     .from_iter([('a', 100), ('a', 200), ('a', 300), ('a', 400), ('a', 500)])
//!     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
//!     .key_by(|e| e.0)
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
//!     .trigger(CountTrigger::of(2)) // every second record, and no firing at the end
//!     .count()
//!     .map(|w| w.value)
//!     .collect();
//! env.execute()?;
//! assert_eq!(early.take(), vec![2, 4]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::assigners::{Window, WindowInfo, WindowSpec};
use super::functions::{
    AggregateProcessWindow, AggregateWindow, ProcessWindow, ProcessWindowWithContext,
    WindowContext, WindowFn,
};
use super::global::TriggerResult;
use super::operator::WindowCodec;
use super::stream::WindowedStream;
use crate::api::exchange::side_stream;
use crate::api::stream::Stream;
use crate::graph::OpInfo;
use crate::ops::aggregate::{Aggregate, Count, Reduce, Sum};
use crate::ops::side_output::{SideOutput, TaggedOutputs};
use crate::ops::{StateKey, StateValue, Table};
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then};
use crate::runtime::panic::{Named, OpName, PanicGuard};
use crate::runtime::snapshot::{encode, Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A type's name without module paths, for the plan: `PurgingTrigger<CountTrigger>`.
fn short_type_name<X>() -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut chars = std::any::type_name::<X>().chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else {
            out.push_str(&word);
            word.clear();
            out.push(c);
        }
    }
    out.push_str(&word);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_type_names() {
        assert_eq!(
            super::short_type_name::<super::PurgingTrigger<super::CountTrigger>>(),
            "PurgingTrigger<CountTrigger>"
        );
        assert_eq!(
            super::short_type_name::<Vec<(u8, String)>>(),
            "Vec<(u8, String)>"
        );
    }
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// What a trigger can do besides answering: read the window's clock (the watermark, or the
/// wall clock for processing-time windows) and set or delete timers of its key and window.
pub struct TriggerContext<'a> {
    time: Timestamp,
    timers: &'a mut Vec<Timestamp>,
    added: &'a mut Vec<Timestamp>,
}

impl TriggerContext<'_> {
    /// The operator's current time: its watermark for event-time windows, the wall clock
    /// (as last seen) for processing-time windows.
    pub fn current_time(&self) -> Timestamp {
        self.time
    }
    /// Calls [`WindowTrigger::on_time`] for this key and window once the operator's time
    /// reaches `t` (once per distinct `t`). Timers after the window's cleanup never fire.
    pub fn register_timer(&mut self, t: Timestamp) {
        if !self.timers.contains(&t) {
            self.timers.push(t);
            self.added.push(t);
        }
    }
    /// Deletes a timer set with [`TriggerContext::register_timer`].
    pub fn delete_timer(&mut self, t: Timestamp) {
        self.timers.retain(|x| *x != t);
    }
}

/// Decides when a key's time window fires (Flink's `Trigger`): asked after each record joins
/// the window and when one of its timers is due. `State` is kept per key and window.
///
/// A timer that [`on_time`](WindowTrigger::on_time) registers at or before the current time
/// runs in the same advance of time, so a trigger must not re-register the time it is called
/// for.
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// /// Fires at the end, and early (purging) when a record's value exceeds 100.
/// #[derive(Clone)]
/// struct EarlyOnLarge;
/// impl WindowTrigger<(i64, u32)> for EarlyOnLarge {
///     type State = ();
///     fn on_element(&mut self, item: &(i64, u32), _ts: i64, window: &Window, _: &mut (),
///                   ctx: &mut TriggerContext<'_>) -> TriggerResult {
///         ctx.register_timer(window.max_timestamp());
///         if item.1 > 100 { TriggerResult::FireAndPurge } else { TriggerResult::Continue }
///     }
///     fn on_time(&mut self, time: i64, window: &Window, _: &mut (),
///                _: &mut TriggerContext<'_>) -> TriggerResult {
///         if time == window.max_timestamp() { TriggerResult::Fire } else { TriggerResult::Continue }
///     }
/// }
/// let mut env = Env::new(Config::default().parallelism(1));
/// let sums = env
///     .from_iter([(10, 1), (20, 500), (30, 2), (40, 3)])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .trigger(EarlyOnLarge)
///     .sum(|e| e.1)
///     .map(|w| w.value)
///     .collect();
/// env.execute()?;
/// assert_eq!(sums.take(), vec![501, 5]);
/// # Ok::<(), flow_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a window trigger of records `{T}`",
    label = "expected a `WindowTrigger<{T}>`",
    note = "use a built-in trigger (`CountTrigger`, `ContinuousEventTimeTrigger`, `PurgingTrigger`, `EventTimeTrigger`) or implement `WindowTrigger<{T}>`"
)]
pub trait WindowTrigger<T>: Clone + Send + 'static {
    /// The trigger's state per key and window (a count, the next firing time, ...). Kept in
    /// checkpoints, so it has serde's traits (derive them; Flink asks for a serializer too).
    type State: Default + Send + serde::Serialize + serde::de::DeserializeOwned + 'static;
    /// Called after `item` (timestamp `ts`) joined `window`.
    fn on_element(
        &mut self,
        item: &T,
        ts: Timestamp,
        window: &Window,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;
    /// Called when a timer at `time` of this key and window is due.
    fn on_time(
        &mut self,
        time: Timestamp,
        window: &Window,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;
    /// Called when the window's state is dropped (its end plus the allowed lateness passed).
    fn clear(&mut self, window: &Window, state: &mut Self::State, ctx: &mut TriggerContext<'_>) {
        let _ = (window, state, ctx);
    }
}

/// The default trigger of time windows: fires when the time passes the window's end, and
/// again for each record within the allowed lateness (Flink's `EventTimeTrigger`).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventTimeTrigger;

impl EventTimeTrigger {
    /// The trigger.
    pub fn create() -> Self {
        EventTimeTrigger
    }
}

impl<T> WindowTrigger<T> for EventTimeTrigger {
    type State = ();
    fn on_element(
        &mut self,
        _: &T,
        _: Timestamp,
        window: &Window,
        _: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_time() {
            TriggerResult::Fire
        } else {
            ctx.register_timer(window.max_timestamp());
            TriggerResult::Continue
        }
    }
    fn on_time(
        &mut self,
        time: Timestamp,
        window: &Window,
        _: &mut (),
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
}

/// Fires a key's window at every `n`-th record it receives, keeping its contents (Flink's
/// `CountTrigger`). It replaces the firing at the window's end: a window whose last records
/// do not make up `n` never reports them; the state is dropped at end plus lateness.
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// let mut env = Env::new(Config::default().parallelism(1));
/// let sums = env
///     .from_iter([(10, 1), (20, 2), (30, 3), (1_010, 4)])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .trigger(CountTrigger::of(2))
///     .sum(|e| e.1)
///     .map(|w| (w.window.start, w.value))
///     .collect();
/// env.execute()?;
/// assert_eq!(sums.take(), vec![(0, 3)]); // the 3rd record and [1000, 2000) never fill up
/// # Ok::<(), flow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CountTrigger {
    n: u64,
}

impl CountTrigger {
    /// Fires every `n` records (at least 1).
    pub fn of(n: u64) -> Self {
        CountTrigger { n: n.max(1) }
    }
}

impl<T> WindowTrigger<T> for CountTrigger {
    type State = u64;
    fn on_element(
        &mut self,
        _: &T,
        _: Timestamp,
        _: &Window,
        count: &mut u64,
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        *count += 1;
        if *count >= self.n {
            *count = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }
    fn on_time(
        &mut self,
        _: Timestamp,
        _: &Window,
        _: &mut u64,
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }
}

/// Fires a key's window every `interval` of time (aligned to the epoch) from its first
/// record on while it is open, and at its end (Flink's `ContinuousEventTimeTrigger`).
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// // One record per batch: a watermark follows every record.
/// let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
/// let sums = env
///     .from_iter([(100, 1), (300, 2), (600, 0), (700, 4)])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(500)))
///     .sum(|e| e.1)
///     .map(|w| w.value)
///     .collect();
/// env.execute()?;
/// // at 500 (the watermark 599 after the third record passed it), and at the end, 999
/// assert_eq!(sums.take(), vec![3, 7]);
/// # Ok::<(), flow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ContinuousEventTimeTrigger {
    interval: i64,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval` (at least 1 ms).
    pub fn of(interval: Duration) -> Self {
        ContinuousEventTimeTrigger {
            interval: millis(interval).max(1),
        }
    }

    fn next(
        &self,
        t: Timestamp,
        window: &Window,
        state: &mut Option<Timestamp>,
        ctx: &mut TriggerContext<'_>,
    ) {
        let next = t.min(window.max_timestamp());
        *state = Some(next);
        ctx.register_timer(next);
    }
}

impl<T> WindowTrigger<T> for ContinuousEventTimeTrigger {
    /// The next firing time.
    type State = Option<Timestamp>;
    fn on_element(
        &mut self,
        _: &T,
        ts: Timestamp,
        window: &Window,
        state: &mut Option<Timestamp>,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_time() {
            return TriggerResult::Fire;
        }
        ctx.register_timer(window.max_timestamp());
        if state.is_none() {
            let start = ts - ts.rem_euclid(self.interval);
            self.next(start.saturating_add(self.interval), window, state, ctx);
        }
        TriggerResult::Continue
    }
    fn on_time(
        &mut self,
        time: Timestamp,
        window: &Window,
        state: &mut Option<Timestamp>,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            return TriggerResult::Fire;
        }
        if *state == Some(time) {
            self.next(time.saturating_add(self.interval), window, state, ctx);
            return TriggerResult::Fire;
        }
        TriggerResult::Continue
    }
    fn clear(&mut self, _: &Window, state: &mut Option<Timestamp>, ctx: &mut TriggerContext<'_>) {
        if let Some(t) = state.take() {
            ctx.delete_timer(t);
        }
    }
}

/// Turns every firing of the trigger it wraps into fire-and-purge: each result covers only
/// the records since the previous one (Flink's `PurgingTrigger`).
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// let mut env = Env::new(Config::default().parallelism(1));
/// let sums = env
///     .from_iter([(10, 1), (20, 2), (30, 3), (40, 4)])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .trigger(PurgingTrigger::of(CountTrigger::of(2)))
///     .sum(|e| e.1)
///     .map(|w| w.value)
///     .collect();
/// env.execute()?;
/// assert_eq!(sums.take(), vec![3, 7]);
/// # Ok::<(), flow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct PurgingTrigger<Tr>(Tr);

impl<Tr> PurgingTrigger<Tr> {
    /// Purges the window after each firing of `trigger`.
    pub fn of(trigger: Tr) -> Self {
        PurgingTrigger(trigger)
    }
}

fn purging(r: TriggerResult) -> TriggerResult {
    match r {
        TriggerResult::Fire => TriggerResult::FireAndPurge,
        r => r,
    }
}

impl<T, Tr: WindowTrigger<T>> WindowTrigger<T> for PurgingTrigger<Tr> {
    type State = Tr::State;
    fn on_element(
        &mut self,
        item: &T,
        ts: Timestamp,
        window: &Window,
        state: &mut Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.0.on_element(item, ts, window, state, ctx))
    }
    fn on_time(
        &mut self,
        time: Timestamp,
        window: &Window,
        state: &mut Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.0.on_time(time, window, state, ctx))
    }
    fn clear(&mut self, window: &Window, state: &mut Tr::State, ctx: &mut TriggerContext<'_>) {
        self.0.clear(window, state, ctx)
    }
}

/// Drops records of a window before its function runs (Flink's `Evictor`, `evictBefore`).
/// The window keeps all its records with their timestamps; the evicted ones are gone for
/// later firings too.
pub trait Evictor<T>: Clone + Send + 'static {
    /// Whether the window must keep its records (false only for [`NoEvictor`]).
    const KEEPS_RECORDS: bool = true;
    /// Removes records from `records` (in arrival order, with their timestamps).
    fn evict(&mut self, records: &mut Vec<(T, Timestamp)>, window: &Window);
}

/// No evictor: windows keep only their function's incremental state.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvictor;

impl<T> Evictor<T> for NoEvictor {
    const KEEPS_RECORDS: bool = false;
    fn evict(&mut self, _: &mut Vec<(T, Timestamp)>, _: &Window) {}
}

/// Keeps the last `n` records of a window (Flink's `CountEvictor`).
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// let mut env = Env::new(Config::default().parallelism(1));
/// let last = env
///     .from_iter([(10, 'a'), (20, 'b'), (30, 'c')])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .evictor(CountEvictor::of(2))
///     .process(|_, _, items| [items.iter().map(|e| e.1).collect::<String>()])
///     .collect();
/// env.execute()?;
/// assert_eq!(last.take(), vec!["bc".to_string()]);
/// # Ok::<(), flow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CountEvictor {
    n: usize,
}

impl CountEvictor {
    /// Keeps the last `n` records.
    pub fn of(n: usize) -> Self {
        CountEvictor { n }
    }
}

impl<T: Send + 'static> Evictor<T> for CountEvictor {
    fn evict(&mut self, records: &mut Vec<(T, Timestamp)>, _: &Window) {
        if records.len() > self.n {
            records.drain(..records.len() - self.n);
        }
    }
}

/// Keeps the records of a window whose timestamps are within `d` of its newest: those with
/// `ts > newest - d` (Flink's `TimeEvictor`).
///
/// ```
/// # use flow_core::prelude::*;
/// # use std::time::Duration;
/// let mut env = Env::new(Config::default().parallelism(1));
/// let recent = env
///     .from_iter([(10, 'a'), (500, 'b'), (650, 'c'), (900, 'd')])
///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
///     .key_by(|_| 0)
///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
///     .evictor(TimeEvictor::of(Duration::from_millis(400)))
///     .process(|_, _, items| [items.iter().map(|e| e.1).collect::<String>()])
///     .collect();
/// env.execute()?;
/// assert_eq!(recent.take(), vec!["cd".to_string()]); // 500 is not after 900 - 400
/// # Ok::<(), flow_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TimeEvictor {
    d: i64,
}

impl TimeEvictor {
    /// Keeps the records within `d` of the newest.
    pub fn of(d: Duration) -> Self {
        TimeEvictor { d: millis(d) }
    }
}

impl<T: Send + 'static> Evictor<T> for TimeEvictor {
    fn evict(&mut self, records: &mut Vec<(T, Timestamp)>, _: &Window) {
        let Some(newest) = records.iter().map(|r| r.1).max() else {
            return;
        };
        let cutoff = newest.saturating_sub(self.d);
        records.retain(|r| r.1 > cutoff);
    }
}

/// A keyed stream in time windows with a custom trigger or evictor; finish it with a window
/// function.
#[must_use = "a windowed stream does nothing until a window function is applied"]
pub struct TriggeredWindowedStream<K: Send + 'static, T: Send + 'static, Tr, Ev> {
    inner: WindowedStream<K, T>,
    trigger: Tr,
    evictor: Ev,
    /// Encodes the records an evictor keeps, for checkpoints.
    records: Option<Codec<T>>,
}

impl<K, T> WindowedStream<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    /// Fires the windows with `trigger` instead of at their end (Flink's `trigger`). Only
    /// tumbling and sliding windows (event or processing time) take a trigger; session and
    /// count windows panic here.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env
    ///     .from_iter([('a', 1), ('a', 2), ('b', 3), ('a', 4)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .trigger(CountTrigger::of(1)) // every record
    ///     .count()
    ///     .map(|w| (w.key, w.value))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 1), ('a', 2), ('a', 3), ('b', 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn trigger<Tr: WindowTrigger<T>>(
        self,
        trigger: Tr,
    ) -> TriggeredWindowedStream<K, T, Tr, NoEvictor> {
        check_spec(&self.ex.g, &self.spec, Location::caller());
        TriggeredWindowedStream {
            inner: self,
            trigger,
            evictor: NoEvictor,
            records: None,
        }
    }

    /// Drops records of each window with `evictor` before the window function runs; the
    /// window keeps all its records until then (see [`CountEvictor`], [`TimeEvictor`]).
    /// Tumbling and sliding windows only.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let last_two = env
    ///     .from_iter([('a', 100, 1), ('a', 200, 2), ('a', 300, 3), ('b', 400, 4)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .evictor(CountEvictor::of(2))
    ///     .process(|k, _, items| [(*k, items.iter().map(|e| e.2).sum::<u32>())])
    ///     .collect();
    /// env.execute()?;
    /// let mut got = last_two.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 5), ('b', 4)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn evictor<Ev: Evictor<T>>(
        self,
        evictor: Ev,
    ) -> TriggeredWindowedStream<K, T, EventTimeTrigger, Ev>
    where
        T: StateValue,
    {
        check_spec(&self.ex.g, &self.spec, Location::caller());
        TriggeredWindowedStream {
            inner: self,
            trigger: EventTimeTrigger,
            evictor,
            records: Some(Codec::serde()),
        }
    }
}

/// Triggers and evictors need windows with fixed bounds: on session or count windows the
/// job fails when it is executed, with an error naming the place.
fn check_spec(g: &crate::graph::GraphRef, spec: &WindowSpec, loc: &Location<'_>) {
    let supported = matches!(
        spec,
        WindowSpec::Tumbling(_)
            | WindowSpec::Sliding(_)
            | WindowSpec::TumblingProcessing(_)
            | WindowSpec::SlidingProcessing(_)
    );
    if !supported {
        let e = crate::Error::Config(format!(
            "{}:{}: triggers and evictors are supported on tumbling and sliding windows only, not {}",
            loc.file(),
            loc.line(),
            spec.describe()
        ));
        g.borrow_mut().deferred_error.get_or_insert(e);
    }
}

impl<K, T, Tr, Ev> TriggeredWindowedStream<K, T, Tr, Ev>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    Tr: WindowTrigger<T>,
    Ev: Evictor<T>,
{
    /// Replaces the trigger.
    pub fn trigger<Tr2: WindowTrigger<T>>(
        self,
        trigger: Tr2,
    ) -> TriggeredWindowedStream<K, T, Tr2, Ev> {
        TriggeredWindowedStream {
            inner: self.inner,
            trigger,
            evictor: self.evictor,
            records: self.records,
        }
    }

    /// Sets the evictor (see [`WindowedStream::evictor`]).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let recent = env
    ///     .from_iter([(100, 'a'), (200, 'b'), (300, 'c'), (400, 'd')])
    ///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
    ///     .key_by(|_| 0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .trigger(CountTrigger::of(2))
    ///     .evictor(TimeEvictor::of(Duration::from_millis(150)))
    ///     .process(|_, _, items| [items.iter().map(|e| e.1).collect::<String>()])
    ///     .collect();
    /// env.execute()?;
    /// // every second record, the records within 150 ms of the newest
    /// assert_eq!(recent.take(), vec!["ab".to_string(), "cd".to_string()]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn evictor<Ev2: Evictor<T>>(self, evictor: Ev2) -> TriggeredWindowedStream<K, T, Tr, Ev2>
    where
        T: StateValue,
    {
        TriggeredWindowedStream {
            inner: self.inner,
            trigger: self.trigger,
            evictor,
            records: Some(Codec::serde()),
        }
    }

    /// Keeps each window's state for `d` after its end (see
    /// [`WindowedStream::allowed_lateness`]).
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.inner = self.inner.allowed_lateness(d);
        self
    }

    /// The records that arrive after their windows' state was dropped (see
    /// [`WindowedStream::late_records`]).
    #[track_caller]
    pub fn late_records(&mut self) -> Stream<Identity<T>> {
        let (outlets, stream) = side_stream(&self.inner.ex, Location::caller(), "late records");
        self.inner.late = SideOutput::new(outlets);
        stream
    }

    /// Aggregates each firing with an [`Aggregate`]: `Windowed { key, window, value }`.
    #[track_caller]
    pub fn aggregate<A: Aggregate<T>>(
        self,
        agg: A,
    ) -> TriggerWindowStream<K, T, AggregateWindow<A>, Tr, Ev>
    where
        K: StateKey,
        A::Acc: StateValue,
    {
        self.apply(
            "aggregate",
            AggregateWindow(agg),
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Counts the records of each firing.
    #[track_caller]
    pub fn count(self) -> TriggerWindowStream<K, T, AggregateWindow<Count>, Tr, Ev>
    where
        K: StateKey,
    {
        self.apply(
            "count",
            AggregateWindow(Count),
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Sums `f(record)` over each firing.
    #[track_caller]
    pub fn sum<S, F>(self, f: F) -> TriggerWindowStream<K, T, AggregateWindow<Sum<F>>, Tr, Ev>
    where
        F: FnMut(&T) -> S + Clone + Send + 'static,
        S: std::ops::AddAssign + StateValue,
        K: StateKey,
    {
        let name = OpName::new("sum", Location::caller());
        self.apply(
            "sum",
            AggregateWindow(Sum(Named { f, name })),
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Combines the records of each firing with an associative function.
    #[track_caller]
    pub fn reduce<F>(self, f: F) -> TriggerWindowStream<K, T, AggregateWindow<Reduce<F>>, Tr, Ev>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("reduce", Location::caller());
        self.apply(
            "reduce",
            AggregateWindow(Reduce(Named { f, name })),
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Hands the records of each firing (after eviction) to `f` (see
    /// [`WindowedStream::process`]).
    #[track_caller]
    pub fn process<F, I>(self, f: F) -> TriggerWindowStream<K, T, ProcessWindow<F>, Tr, Ev>
    where
        F: FnMut(&K, &WindowInfo, Vec<T>) -> I + Clone + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("process", Location::caller());
        self.apply(
            "process",
            ProcessWindow { f, name },
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Hands the records of each firing (after eviction) to `f` with a [`WindowContext`] (see
    /// [`WindowedStream::process_with_context`]).
    #[track_caller]
    pub fn process_with_context<F, O>(
        self,
        f: F,
    ) -> TriggerWindowStream<K, T, ProcessWindowWithContext<F, O>, Tr, Ev>
    where
        F: for<'x> FnMut(&K, &WindowInfo, Vec<T>, &mut WindowContext<'x, O>)
            + Clone
            + Send
            + 'static,
        O: Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("process", Location::caller());
        self.apply(
            "process",
            ProcessWindowWithContext {
                f,
                name,
                _out: std::marker::PhantomData,
            },
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// Hands the records of each firing (after eviction) to `f` with a
    /// [`StatefulWindowContext`]: besides emitting results, `f` keeps state of its own per key
    /// and window (`window_state`, dropped with the window at its end plus the allowed
    /// lateness) and per key across windows (`global_state`) — Flink's
    /// `ProcessWindowFunction.Context.windowState()` / `globalState()`, kept in memory and
    /// written whole at every checkpoint (so both state types need serde's traits).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lines = env
    ///     .from_iter([('a', 100), ('a', 200), ('a', 1_100), ('b', 1_200)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .trigger(CountTrigger::of(1))
    ///     .process_with_state(
    ///         |key: &char, info: &WindowInfo, items: Vec<(char, i64)>,
    ///          ctx: &mut StatefulWindowContext<'_, String, u32, u32>| {
    ///             *ctx.window_state() += 1; // firings of this window
    ///             let w = *ctx.window_state();
    ///             *ctx.global_state() += 1; // firings of this key
    ///             let g = *ctx.global_state();
    ///             let line = format!("{key}@{}: {} records, firing {w} of the window, {g} of the key",
    ///                 info.window.start, items.len());
    ///             ctx.emit(line);
    ///         },
    ///     )
    ///     .collect();
    /// env.execute()?;
    /// let mut got = lines.take();
    /// got.sort();
    /// assert_eq!(got, [
    ///     "a@0: 1 records, firing 1 of the window, 1 of the key",
    ///     "a@0: 2 records, firing 2 of the window, 2 of the key",
    ///     "a@1000: 1 records, firing 1 of the window, 3 of the key",
    ///     "b@1000: 1 records, firing 1 of the window, 1 of the key",
    /// ]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    #[allow(clippy::type_complexity)] // the function's type names its two states
    pub fn process_with_state<F, O, WS, GS>(
        self,
        f: F,
    ) -> TriggerWindowStream<K, T, ProcessWindowWithState<K, F, O, WS, GS>, Tr, Ev>
    where
        F: for<'x> FnMut(&K, &WindowInfo, Vec<T>, &mut StatefulWindowContext<'x, O, WS, GS>)
            + Clone
            + Send
            + 'static,
        O: Send + 'static,
        WS: StateValue + Default,
        GS: StateValue + Default,
        K: StateKey,
        T: StateValue,
    {
        let name = OpName::new("process", Location::caller());
        self.apply(
            "process",
            ProcessWindowWithState {
                f,
                name,
                windows: Table::default(),
                global: Table::default(),
                _out: std::marker::PhantomData,
            },
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// An incremental aggregate whose result `f` turns into the output (see
    /// [`WindowedStream::aggregate_process`]).
    #[track_caller]
    pub fn aggregate_process<A, F, R>(
        self,
        agg: A,
        f: F,
    ) -> TriggerWindowStream<K, T, AggregateProcessWindow<A, F>, Tr, Ev>
    where
        A: Aggregate<T>,
        F: FnMut(&K, &WindowInfo, A::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
        A::Acc: StateValue,
        K: StateKey,
    {
        let name = OpName::new("process", Location::caller());
        self.apply(
            "aggregate_process",
            AggregateProcessWindow { agg, f, name },
            Some((Codec::serde(), Codec::serde())),
        )
    }

    /// `codec` encodes keys and window state for checkpoints; `None` when they cannot be
    /// encoded.
    #[track_caller]
    fn apply<F: WindowFn<K, T>>(
        self,
        kind: &str,
        func: F,
        codec: Option<WindowCodec<K, F::State>>,
    ) -> TriggerWindowStream<K, T, F, Tr, Ev> {
        let name = OpName::new(kind, Location::caller());
        let WindowedStream {
            ex,
            spec,
            lateness,
            late,
        } = self.inner;
        let detail = format!(
            "{}, trigger {}{}{}",
            spec.describe(),
            short_type_name::<Tr>(),
            if Ev::KEEPS_RECORDS {
                format!(", evictor {}", short_type_name::<Ev>())
            } else {
                String::new()
            },
            if lateness > 0 {
                format!(", lateness {lateness} ms")
            } else {
                String::new()
            }
        );
        let metrics = ex.input.slot.metrics.clone();
        let side = TaggedOutputs::for_next_operator(&ex);
        let trigger = Named {
            f: self.trigger,
            name: OpName::new("trigger", Location::caller()),
        };
        ex.then(
            OpInfo::with_detail(&name, detail),
            TriggerWindowOp::new(
                spec,
                func,
                trigger,
                self.evictor,
                lateness,
                metrics,
                late,
                side,
            )
            .with_codecs(codec, self.records),
        )
    }
}

/// The results of a window function on a [`TriggeredWindowedStream`].
pub type TriggerWindowStream<K, T, F, Tr, Ev> = Stream<TriggerWindowChain<K, T, F, Tr, Ev>>;

/// Each window's keys and their slots.
type Slots<K, S, TS, T> = BTreeMap<Window, Table<K, Slot<S, TS, T>>>;

/// The chain of a windowed stage with a trigger or evictor.
pub type TriggerWindowChain<K, T, F, Tr, Ev> =
    Then<Identity<(K, T)>, TriggerWindowOp<K, T, F, Tr, Ev>>;

/// One key's window: the function's state (or, with an evictor, its records), the trigger's
/// state and its timers.
struct Slot<S, TS, T> {
    acc: Option<S>,
    records: Vec<(T, Timestamp)>,
    trig: TS,
    timers: Vec<Timestamp>,
}

/// The window operator of time windows with a trigger or evictor.
pub struct TriggerWindowOp<K, T, F: WindowFn<K, T>, Tr: WindowTrigger<T>, Ev> {
    spec: WindowSpec,
    func: F,
    trigger: Named<Tr>,
    evictor: Ev,
    lateness: i64,
    metrics: Arc<StageMetrics>,
    late: SideOutput<T>,
    side: TaggedOutputs,
    time: Timestamp,
    windows: Slots<K, F::State, Tr::State, T>,
    timers: BTreeMap<Timestamp, Vec<(Window, K)>>,
    scratch: Vec<Window>,
    added: Vec<Timestamp>,
    out: Vec<F::Out>,
    /// Encodes keys and window state for checkpoints; `None`: not checkpointable.
    codec: Option<WindowCodec<K, F::State>>,
    /// Encodes the records an evictor keeps; `None`: not checkpointable with an evictor.
    records: Option<Codec<T>>,
}

/// The keyed state of windows with a trigger or evictor.
const TRIGGER_WINDOWS: &str = "trigger windows";
/// The operator state: the time the operator has reached.
const TIME: &str = "time";

impl<K, T, F: WindowFn<K, T>, Tr: WindowTrigger<T>, Ev> TriggerWindowOp<K, T, F, Tr, Ev> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        spec: WindowSpec,
        func: F,
        trigger: Named<Tr>,
        evictor: Ev,
        lateness: i64,
        metrics: Arc<StageMetrics>,
        late: SideOutput<T>,
        side: TaggedOutputs,
    ) -> Self {
        TriggerWindowOp {
            spec,
            func,
            trigger,
            evictor,
            lateness,
            metrics,
            late,
            side,
            time: Timestamp::MIN,
            windows: BTreeMap::new(),
            timers: BTreeMap::new(),
            scratch: Vec::new(),
            added: Vec::new(),
            out: Vec::new(),
            codec: None,
            records: None,
        }
    }

    /// Makes the operator checkpointable: `codec` for keys and window state, `records` for
    /// the records an evictor keeps.
    fn with_codecs(
        mut self,
        codec: Option<WindowCodec<K, F::State>>,
        records: Option<Codec<T>>,
    ) -> Self {
        self.codec = codec;
        self.records = records;
        self
    }
}

impl<K, T, F: WindowFn<K, T>, Tr: WindowTrigger<T>, Ev: Clone> Clone
    for TriggerWindowOp<K, T, F, Tr, Ev>
{
    fn clone(&self) -> Self {
        TriggerWindowOp::new(
            self.spec,
            self.func.clone(),
            self.trigger.clone(),
            self.evictor.clone(),
            self.lateness,
            self.metrics.clone(),
            self.late.clone(),
            self.side.clone(),
        )
        .with_codecs(self.codec, self.records)
    }
}

impl<K, T, F: WindowFn<K, T>, Tr: WindowTrigger<T>, Ev> Sealed
    for TriggerWindowOp<K, T, F, Tr, Ev>
{
}

impl<K, T, F, Tr, Ev> TriggerWindowOp<K, T, F, Tr, Ev>
where
    K: Hash + Eq + Clone,
    T: Clone + Send,
    F: WindowFn<K, T>,
    Tr: WindowTrigger<T>,
    Ev: Evictor<T>,
{
    fn cleanup_time(&self, w: &Window) -> Timestamp {
        w.max_timestamp().saturating_add(self.lateness)
    }

    fn on_time_record<D: Downstream<F::Out>>(
        &mut self,
        down: &mut D,
        key: K,
        item: T,
        ts: Timestamp,
    ) {
        let now = self.time;
        let mut windows = std::mem::take(&mut self.scratch);
        self.spec.assign(ts, &mut windows);
        let mut any = false;
        for w in &windows {
            if self.cleanup_time(w) <= now {
                continue;
            }
            any = true;
            let table = self.windows.entry(*w).or_default();
            let slot = table.entry(key.clone()).or_insert_with(|| Slot {
                acc: None,
                records: Vec::new(),
                trig: Tr::State::default(),
                timers: Vec::new(),
            });
            if Ev::KEEPS_RECORDS {
                slot.records.push((item.clone(), ts));
            } else {
                match &mut slot.acc {
                    Some(s) => self.func.add(s, item.clone()),
                    None => slot.acc = Some(self.func.create(item.clone())),
                }
            }
            let mut ctx = TriggerContext {
                time: now,
                timers: &mut slot.timers,
                added: &mut self.added,
            };
            let guard = PanicGuard(&self.trigger.name);
            let result = self
                .trigger
                .f
                .on_element(&item, ts, w, &mut slot.trig, &mut ctx);
            std::mem::forget(guard);
            self.index_timers(*w, &key);
            self.act(down, &key, *w, result);
        }
        self.scratch = windows;
        if !any {
            self.metrics.late.fetch_add(1, Ordering::Relaxed);
            self.late.emit(item, ts);
        }
    }

    fn index_timers(&mut self, w: Window, key: &K) {
        for t in self.added.drain(..) {
            self.timers.entry(t).or_default().push((w, key.clone()));
        }
    }

    /// Fires and/or purges the window `w` of `key` as the trigger asked.
    fn act<D: Downstream<F::Out>>(&mut self, down: &mut D, key: &K, w: Window, r: TriggerResult) {
        let (fire, purge) = match r {
            TriggerResult::Continue => return,
            TriggerResult::Fire => (true, false),
            TriggerResult::FireAndPurge => (true, true),
            TriggerResult::Purge => (false, true),
        };
        let Some(slot) = self.windows.get_mut(&w).and_then(|t| t.get_mut(key)) else {
            return;
        };
        let state = if !fire {
            None
        } else if Ev::KEEPS_RECORDS {
            self.evictor.evict(&mut slot.records, &w);
            let mut it = slot.records.iter().map(|r| r.0.clone());
            it.next().map(|first| {
                let mut s = self.func.create(first);
                for x in it {
                    self.func.add(&mut s, x);
                }
                s
            })
        } else if purge {
            slot.acc.take()
        } else {
            slot.acc.clone()
        };
        if purge {
            slot.acc = None;
            slot.records.clear();
        }
        if let Some(s) = state {
            let info = WindowInfo {
                window: w,
                watermark: self.time,
            };
            let ts = w.max_timestamp();
            self.func
                .fire_with_outputs(key, &info, s, &mut self.out, &mut self.side.at(ts));
            for r in self.out.drain(..) {
                down.emit(r, ts);
            }
        }
    }

    /// Runs the timers due at `now`, then drops the windows whose cleanup time passed.
    fn advance<D: Downstream<F::Out>>(&mut self, down: &mut D, now: Timestamp) {
        self.time = now;
        while let Some(entry) = self.timers.first_entry() {
            let t = *entry.key();
            if t > now {
                break;
            }
            for (w, key) in entry.remove() {
                if t > self.cleanup_time(&w) {
                    continue;
                }
                let Some(slot) = self.windows.get_mut(&w).and_then(|tb| tb.get_mut(&key)) else {
                    continue;
                };
                let Some(i) = slot.timers.iter().position(|x| *x == t) else {
                    continue; // deleted
                };
                slot.timers.swap_remove(i);
                let mut ctx = TriggerContext {
                    time: now,
                    timers: &mut slot.timers,
                    added: &mut self.added,
                };
                let guard = PanicGuard(&self.trigger.name);
                let result = self.trigger.f.on_time(t, &w, &mut slot.trig, &mut ctx);
                std::mem::forget(guard);
                self.index_timers(w, &key);
                self.act(down, &key, w, result);
            }
        }
        let lateness = self.lateness;
        while let Some(entry) = self.windows.first_entry() {
            // Tumbling and sliding windows have one size: window order is end order.
            let w = *entry.key();
            if w.max_timestamp().saturating_add(lateness) > now {
                break;
            }
            let table = entry.remove();
            for (key, mut slot) in table {
                let mut ctx = TriggerContext {
                    time: now,
                    timers: &mut slot.timers,
                    added: &mut self.added,
                };
                let guard = PanicGuard(&self.trigger.name);
                self.trigger.f.clear(&w, &mut slot.trig, &mut ctx);
                std::mem::forget(guard);
                self.added.clear();
                self.func.clear(&key, &w);
            }
        }
    }
}

impl<K, T, F, Tr, Ev> Operator<(K, T)> for TriggerWindowOp<K, T, F, Tr, Ev>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    F: WindowFn<K, T>,
    Tr: WindowTrigger<T>,
    Ev: Evictor<T>,
{
    type Out = F::Out;

    fn state(&self) -> StateSupport {
        if self.codec.is_none() {
            return StateSupport::Unsupported(
                "the per-window and per-key state of a `process_with_state` window function",
            );
        }
        if Ev::KEEPS_RECORDS && self.records.is_none() {
            return StateSupport::Unsupported("the records an evictor keeps, without a codec");
        }
        StateSupport::Persisted(
            vec![
                StateDecl::packed::<Window, K, (F::State, Tr::State, Vec<(T, Timestamp)>)>(
                    TRIGGER_WINDOWS,
                ),
                StateDecl::operator::<Timestamp>(TIME),
            ]
            .into_iter()
            .chain(self.func.own_states())
            .collect(),
        )
    }

    /// Open windows are written whole at every checkpoint, as those of windows without a
    /// trigger, packed ([`crate::runtime::snapshot::Packer`]): per key group, one entry per
    /// window, whose key is the window's start and end and a chunk number, and whose value
    /// holds, for each key, the key, the window function's state (a presence flag first),
    /// the trigger's state, the window's timers, then the records an evictor keeps (a count,
    /// then each record and timestamp).
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        cx.operator_state(TIME, &self.time)?;
        let records = self.records;
        let mut w = cx.keyed(TRIGGER_WINDOWS, true);
        let mut p = w.packer();
        for (win, table) in &self.windows {
            let mut prefix = Vec::new();
            encode(&(win.start, win.end), &mut prefix)?;
            p.group(&mut w, prefix, Vec::new());
            for (k, slot) in table {
                p.push(&mut w, k, |v| {
                    (kc.enc)(k, v)?;
                    match &slot.acc {
                        Some(s) => {
                            v.push(1);
                            (sc.enc)(s, v)?;
                        }
                        None => v.push(0),
                    }
                    encode(&slot.trig, v)?;
                    encode(&slot.timers, v)?;
                    encode(&(slot.records.len() as u64), v)?;
                    if !slot.records.is_empty() {
                        let rc = records.ok_or_else(|| {
                            crate::Error::Checkpoint("window records without a codec".into())
                        })?;
                        for (r, ts) in &slot.records {
                            (rc.enc)(r, v)?;
                            encode(ts, v)?;
                        }
                    }
                    Ok(())
                })?;
            }
        }
        p.flush(&mut w);
        w.finish();
        self.func.snapshot_own(cx)
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        self.func.restore_own(cx)?;
        // The least advanced time of the checkpointed subtasks: no window any of them held
        // is past it.
        if let Some(t) = cx.operator_state::<Timestamp>(TIME)?.into_iter().min() {
            self.time = self.time.max(t);
        }
        let bad =
            |e: String| crate::Error::Checkpoint(format!("{}: {e}", cx.describe(TRIGGER_WINDOWS)));
        fn take<'b, X: serde::de::DeserializeOwned>(
            b: &'b [u8],
            bad: &dyn Fn(String) -> crate::Error,
        ) -> crate::Result<(X, &'b [u8])> {
            postcard::take_from_bytes(b).map_err(|e| bad(e.to_string()))
        }
        let records = self.records;
        let (windows, timers) = (&mut self.windows, &mut self.timers);
        cx.packed(TRIGGER_WINDOWS, |prefix, value| {
            let ((start, end), rest): ((Timestamp, Timestamp), _) = take(prefix, &bad)?;
            if !rest.is_empty() {
                return Err(bad(format!("{} key bytes left over", rest.len())));
            }
            let w = Window { start, end };
            let mut r = value;
            while !r.is_empty() {
                let (k, rr) = (kc.dec)(r).map_err(|e| bad(e.to_string()))?;
                let (&flag, mut rr) = rr
                    .split_first()
                    .ok_or_else(|| bad("a truncated record".into()))?;
                let acc = if flag != 0 {
                    let (s, x) = (sc.dec)(rr).map_err(|e| bad(e.to_string()))?;
                    rr = x;
                    Some(s)
                } else {
                    None
                };
                let (trig, rr): (Tr::State, _) = take(rr, &bad)?;
                let (slot_timers, rr): (Vec<Timestamp>, _) = take(rr, &bad)?;
                let (n, mut rr): (u64, _) = take(rr, &bad)?;
                let mut kept = Vec::new();
                if n > 0 {
                    let rc = records.ok_or_else(|| {
                        bad("window records, which this job cannot decode (no evictor)".into())
                    })?;
                    for _ in 0..n {
                        let (x, x_rest) = (rc.dec)(rr).map_err(|e| bad(e.to_string()))?;
                        let (ts, x_rest): (Timestamp, _) = take(x_rest, &bad)?;
                        kept.push((x, ts));
                        rr = x_rest;
                    }
                }
                r = rr;
                for &t in &slot_timers {
                    timers.entry(t).or_default().push((w, k.clone()));
                }
                windows.entry(w).or_default().insert(
                    k,
                    Slot {
                        acc,
                        records: kept,
                        trig,
                        timers: slot_timers,
                    },
                );
            }
            Ok(())
        })
    }

    fn on_record<D: Downstream<F::Out>>(
        &mut self,
        (key, item): (K, T),
        ts: Timestamp,
        down: &mut D,
    ) {
        if self.spec.is_processing_time() {
            let now = crate::time::now_ms();
            self.on_time_record(down, key, item, now)
        } else if ts == NO_TIMESTAMP {
            self.metrics.late.fetch_add(1, Ordering::Relaxed);
            self.late.emit(item, ts);
        } else {
            self.on_time_record(down, key, item, ts)
        }
    }

    fn on_event<D: Downstream<F::Out>>(&mut self, event: Event, down: &mut D) {
        match event {
            Event::Watermark(w) if w > self.time && !self.spec.is_processing_time() => {
                self.advance(down, w)
            }
            Event::ProcessingTime(t) if t > self.time && self.spec.is_processing_time() => {
                self.advance(down, t)
            }
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

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if self.spec.is_processing_time() {
            let next_timer = self.timers.keys().next().copied();
            let next_cleanup = self.windows.keys().next().map(|w| self.cleanup_time(w));
            if let Some(t) = next_timer.into_iter().chain(next_cleanup).min() {
                let wait = t.saturating_sub(crate::time::now_ms()).max(0) as u64;
                cx.wake_at(std::time::Instant::now() + Duration::from_millis(wait));
            }
        }
        Ok(self.late.drain(cx)? & self.side.drain(cx)?)
    }
}

/// What a window function of [`TriggeredWindowedStream::process_with_state`] can do: emit
/// results and use its state of the key and window, and of the key.
pub struct StatefulWindowContext<'a, O, WS, GS> {
    out: &'a mut Vec<O>,
    window: &'a mut WS,
    global: &'a mut GS,
}

impl<O, WS, GS> StatefulWindowContext<'_, O, WS, GS> {
    /// Emits a result.
    pub fn emit(&mut self, item: O) {
        self.out.push(item)
    }
    /// The function's state of this key and window (`Default` at the window's first firing;
    /// dropped at its end plus the allowed lateness).
    pub fn window_state(&mut self) -> &mut WS {
        self.window
    }
    /// The function's state of this key, shared by all its windows.
    pub fn global_state(&mut self) -> &mut GS {
        self.global
    }
}

/// All records of a window handed to a function with a [`StatefulWindowContext`].
pub struct ProcessWindowWithState<K, F, O, WS, GS> {
    f: F,
    name: OpName,
    windows: Table<(K, Window), WS>,
    global: Table<K, GS>,
    _out: std::marker::PhantomData<fn() -> O>,
}

impl<K, F: Clone, O, WS, GS> Clone for ProcessWindowWithState<K, F, O, WS, GS> {
    fn clone(&self) -> Self {
        ProcessWindowWithState {
            f: self.f.clone(),
            name: self.name.clone(),
            windows: Table::default(),
            global: Table::default(),
            _out: std::marker::PhantomData,
        }
    }
}

/// The name of a `process_with_state` function's per-window state in checkpoints.
const WINDOW_STATE: &str = "window state";
/// The name of a `process_with_state` function's per-key state in checkpoints.
const KEY_STATE: &str = "key state";

impl<K, T, F, O, WS, GS> WindowFn<K, T> for ProcessWindowWithState<K, F, O, WS, GS>
where
    K: StateKey,
    T: Clone + Send + 'static,
    F: for<'x> FnMut(&K, &WindowInfo, Vec<T>, &mut StatefulWindowContext<'x, O, WS, GS>)
        + Clone
        + Send
        + 'static,
    O: Send + 'static,
    WS: StateValue + Default,
    GS: StateValue + Default,
{
    type State = Vec<T>;
    type Out = O;
    fn create(&mut self, item: T) -> Vec<T> {
        vec![item]
    }
    fn add(&mut self, state: &mut Vec<T>, item: T) {
        state.push(item)
    }
    fn merge(&mut self, a: &mut Vec<T>, mut b: Vec<T>) {
        a.append(&mut b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Vec<T>, out: &mut Vec<O>) {
        let window = self.windows.entry((key.clone(), info.window)).or_default();
        let global = self.global.entry(key.clone()).or_default();
        let mut ctx = StatefulWindowContext {
            out,
            window,
            global,
        };
        let guard = PanicGuard(&self.name);
        (self.f)(key, info, state, &mut ctx);
        std::mem::forget(guard);
    }
    fn clear(&mut self, key: &K, window: &Window) {
        self.windows.remove(&(key.clone(), *window));
    }
    fn own_states(&self) -> Vec<StateDecl> {
        vec![
            StateDecl::keyed::<(K, Timestamp, Timestamp), WS>(WINDOW_STATE),
            StateDecl::keyed::<K, GS>(KEY_STATE),
        ]
    }
    /// Both written whole (as open windows are): a window's state by the key and the
    /// window's start and end, a key's by the key; each in its key's key group.
    fn snapshot_own(&mut self, cx: &mut SnapshotCx<'_>) -> crate::Result<()> {
        let mut w = cx.keyed(WINDOW_STATE, true);
        for ((k, win), ws) in &self.windows {
            w.put(k, &(k, win.start, win.end), Some(ws))?;
        }
        w.finish();
        let mut w = cx.keyed(KEY_STATE, true);
        for (k, gs) in &self.global {
            w.put(k, k, Some(gs))?;
        }
        w.finish();
        Ok(())
    }
    fn restore_own(&mut self, cx: &RestoreCx<'_>) -> crate::Result<()> {
        let windows = &mut self.windows;
        cx.keyed_where(
            WINDOW_STATE,
            |_| true,
            |(k, start, end): (K, Timestamp, Timestamp), ws: WS| {
                windows.insert((k, Window { start, end }), ws);
            },
        )?;
        let global = &mut self.global;
        cx.keyed_where(
            KEY_STATE,
            |_| true,
            |k: K, gs: GS| {
                global.insert(k, gs);
            },
        )
    }
}
