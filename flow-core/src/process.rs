//! Keyed process functions: per-key state, event-time timers and free-form output
//! (Flink's `KeyedProcessFunction`).
//!
//! The state of a key is a value of the function's `State` type (any `Default` struct whose
//! fields are the key's values, lists and maps), created on the key's first record and kept
//! until the function calls [`Context::clear_state`]. Timers are per key and timestamp and
//! deduplicated; they fire in timestamp order once the watermark reaches them, and the end of
//! a bounded input fires all of them.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! /// Emits each key's running total whenever a second passes without a record.
//! #[derive(Clone)]
//! struct QuietTotals;
//! impl KeyedProcessFunction<&'static str, (&'static str, i64, u32)> for QuietTotals {
//!     type State = (u32, i64); // (total, pending timer)
//!     type Out = (&'static str, u32);
//!     fn process_element(&mut self, _k: &&'static str, e: (&'static str, i64, u32),
//!                        st: &mut (u32, i64), ctx: &mut Context<'_, Self::Out>) {
//!         st.0 += e.2;
//!         ctx.delete_event_time_timer(st.1);
//!         st.1 = e.1 + 1000;
//!         ctx.register_event_time_timer(st.1);
//!     }
//!     fn on_timer(&mut self, k: &&'static str, _ts: i64, st: &mut (u32, i64),
//!                 ctx: &mut Context<'_, Self::Out>) {
//!         ctx.emit((*k, st.0));
//!     }
//! }
//!
//! // One record per batch, so a watermark follows every record.
//! let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
//! let out = env
//!     .from_iter([("a", 0, 1), ("a", 500, 2), ("b", 3_000, 4), ("a", 3_100, 5)])
//!     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
//!     .key_by(|e| e.0)
//!     .process(QuietTotals)
//!     .collect();
//! env.execute()?;
//! let mut got = out.take();
//! got.sort();
//! // the watermark 2999 after b's record fires a's timer at 1500; the end fires the rest
//! assert_eq!(got, vec![("a", 3), ("a", 8), ("b", 4)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use crate::chain::{Chain, Downstream, DrainCx, OpName, PanicGuard};
use crate::keyed::Table;
use crate::record::{Event, Timestamp};
use std::collections::BTreeMap;
use std::hash::Hash;

/// A function of a keyed stream with per-key state and timers.
pub trait KeyedProcessFunction<K, T>: Clone + Send + 'static {
    /// The state of one key.
    type State: Default + Send + 'static;
    /// Output records.
    type Out: Send + 'static;
    /// Called for each record of key `key`.
    fn process_element(
        &mut self,
        key: &K,
        item: T,
        state: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    );
    /// Called when an event-time timer of `key` fires.
    fn on_timer(
        &mut self,
        _key: &K,
        _timestamp: Timestamp,
        _state: &mut Self::State,
        _ctx: &mut Context<'_, Self::Out>,
    ) {
    }
}

/// What a process function can do besides changing its state.
pub struct Context<'a, O> {
    timestamp: Timestamp,
    watermark: Timestamp,
    out: &'a mut Vec<O>,
    timers: &'a mut Vec<(Timestamp, bool, bool)>,
    clear: bool,
    processing_time: bool,
}

impl<O> Context<'_, O> {
    /// The timestamp of the current record, or of the firing timer.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }
    /// Emits a record (with the current timestamp).
    pub fn emit(&mut self, item: O) {
        self.out.push(item)
    }
    /// Asks for [`KeyedProcessFunction::on_timer`] once the watermark reaches `ts`. A timer
    /// registered twice for the same key and time fires once.
    pub fn register_event_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, true, false))
    }
    /// Cancels this key's event-time timer at `ts`, if any.
    pub fn delete_event_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, false, false))
    }
    /// Asks for [`KeyedProcessFunction::on_timer`] once the wall clock reaches `ts` (ms since
    /// the epoch; see [`crate::time::now_ms`]).
    pub fn register_processing_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, true, true))
    }
    /// Cancels this key's processing-time timer at `ts`, if any.
    pub fn delete_processing_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, false, true))
    }
    /// In `on_timer`: whether the firing timer is a processing-time timer.
    pub fn is_processing_time_timer(&self) -> bool {
        self.processing_time
    }
    /// The wall clock, in ms since the epoch.
    pub fn current_processing_time(&self) -> Timestamp {
        crate::time::now_ms()
    }
    /// Drops this key's state after the current call.
    pub fn clear_state(&mut self) {
        self.clear = true
    }
}

#[doc(hidden)]
pub struct ProcessState<K, S, O> {
    states: Table<K, S>,
    /// Event-time (`false`) and processing-time (`true`) timers, by time.
    timers: [BTreeMap<Timestamp, Vec<K>>; 2],
    live_timers: Table<(K, Timestamp, bool), ()>,
    watermark: Timestamp,
    out: Vec<O>,
    new_timers: Vec<(Timestamp, bool, bool)>,
}

impl<K, S, O> ProcessState<K, S, O> {
    pub(crate) fn new() -> Self {
        ProcessState {
            states: Table::default(),
            timers: [BTreeMap::new(), BTreeMap::new()],
            live_timers: Table::default(),
            watermark: Timestamp::MIN,
            out: Vec::new(),
            new_timers: Vec::new(),
        }
    }
}

/// The operator running a [`KeyedProcessFunction`] after the key-group exchange.
pub struct ProcessOp<C, K, T, P: KeyedProcessFunction<K, T>> {
    pub(crate) inner: C,
    pub(crate) f: P,
    pub(crate) name: OpName,
    pub(crate) st: ProcessState<K, P::State, P::Out>,
}

impl<C: Clone, K, T, P: KeyedProcessFunction<K, T>> Clone for ProcessOp<C, K, T, P> {
    fn clone(&self) -> Self {
        ProcessOp {
            inner: self.inner.clone(),
            f: self.f.clone(),
            name: self.name.clone(),
            st: ProcessState::new(),
        }
    }
}

#[doc(hidden)]
pub struct ProcessAdapter<'a, K, T, P: KeyedProcessFunction<K, T>, D> {
    f: &'a mut P,
    name: &'a OpName,
    st: &'a mut ProcessState<K, P::State, P::Out>,
    down: &'a mut D,
}

impl<C, K, T, P> Chain for ProcessOp<C, K, T, P>
where
    C: Chain<Out = (K, T)>,
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    P: KeyedProcessFunction<K, T>,
{
    type In = C::In;
    type Out = P::Out;
    #[inline]
    fn push<D: Downstream<P::Out>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = ProcessAdapter {
            f: &mut self.f,
            name: &self.name,
            st: &mut self.st,
            down,
        };
        self.inner.push(item, ts, &mut a)
    }
    fn event<D: Downstream<P::Out>>(&mut self, event: Event, down: &mut D) {
        let mut a = ProcessAdapter {
            f: &mut self.f,
            name: &self.name,
            st: &mut self.st,
            down,
        };
        self.inner.event(event, &mut a)
    }
    fn open(&mut self, subtask: usize, parallelism: usize) {
        self.inner.open(subtask, parallelism)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if let Some((&t, _)) = self.st.timers[1].first_key_value() {
            let wait = t.saturating_sub(crate::time::now_ms()).max(0) as u64;
            cx.wake_at(std::time::Instant::now() + std::time::Duration::from_millis(wait));
        }
        self.inner.drain(cx)
    }
}

impl<K, T, P, D> ProcessAdapter<'_, K, T, P, D>
where
    K: Hash + Eq + Clone,
    P: KeyedProcessFunction<K, T>,
    D: Downstream<P::Out>,
{
    /// Runs `call` on `key`'s state with a fresh context, then applies timer changes, state
    /// clearing and output.
    fn with_context(
        &mut self,
        key: &K,
        ts: Timestamp,
        processing_time: bool,
        call: impl FnOnce(&mut P, &mut P::State, &mut Context<'_, P::Out>),
    ) {
        let st = &mut *self.st;
        let state = st.states.entry(key.clone()).or_default();
        let mut ctx = Context {
            timestamp: ts,
            watermark: st.watermark,
            out: &mut st.out,
            timers: &mut st.new_timers,
            clear: false,
            processing_time,
        };
        let guard = PanicGuard(self.name);
        call(self.f, state, &mut ctx);
        std::mem::forget(guard);
        let clear = ctx.clear;
        if clear {
            st.states.remove(key);
        }
        for (t, add, proc) in st.new_timers.drain(..) {
            if add {
                if st.live_timers.insert((key.clone(), t, proc), ()).is_none() {
                    st.timers[proc as usize]
                        .entry(t)
                        .or_default()
                        .push(key.clone());
                }
            } else {
                st.live_timers.remove(&(key.clone(), t, proc));
            }
        }
        for o in st.out.drain(..) {
            self.down.emit(o, ts);
        }
    }

    /// Fires the timers of one time domain up to `now`, in time order (including timers that
    /// the firing ones register for times already passed).
    fn fire(&mut self, now: Timestamp, proc: bool) {
        if !proc {
            self.st.watermark = now;
        }
        while let Some(entry) = self.st.timers[proc as usize].first_entry() {
            if *entry.key() > now {
                break;
            }
            let (t, keys) = entry.remove_entry();
            for key in keys {
                if self
                    .st
                    .live_timers
                    .remove(&(key.clone(), t, proc))
                    .is_some()
                {
                    self.with_context(&key, t, proc, |f, s, ctx| f.on_timer(&key, t, s, ctx));
                }
            }
        }
    }
}

impl<K, T, P, D> Downstream<(K, T)> for ProcessAdapter<'_, K, T, P, D>
where
    K: Hash + Eq + Clone,
    P: KeyedProcessFunction<K, T>,
    D: Downstream<P::Out>,
{
    #[inline]
    fn emit(&mut self, (key, item): (K, T), ts: Timestamp) {
        self.with_context(&key, ts, false, |f, s, ctx| {
            f.process_element(&key, item, s, ctx)
        });
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Watermark(w) if w > self.st.watermark => self.fire(w, false),
            Event::ProcessingTime(t) => self.fire(t, true),
            // The end of input drains both domains: event time first, as Flink's final watermark.
            Event::End => {
                self.fire(Timestamp::MAX, false);
                self.fire(Timestamp::MAX, true);
            }
            _ => {}
        }
        self.down.event(event)
    }
}
