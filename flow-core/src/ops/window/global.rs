//! Global windows with a custom trigger: one window per key that never closes by itself;
//! a [`Trigger`] decides after each record whether to fire it, purge it, or both.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! /// Fires a key's window whenever a record has the "flush" flag, and starts over.
//! #[derive(Clone)]
//! struct OnFlag;
//! impl Trigger<(u8, u32, bool)> for OnFlag {
//!     fn on_element(&mut self, item: &(u8, u32, bool), _ts: i64, _count: u64) -> TriggerResult {
//!         if item.2 { TriggerResult::FireAndPurge } else { TriggerResult::Continue }
//!     }
//! }
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let sums = env
//!     .from_iter([(1u8, 5, false), (1, 6, true), (1, 7, false), (1, 1, true), (1, 100, false)])
//!     .key_by(|r| r.0)
//!     .global_window(OnFlag)
//!     .aggregate(SumOf)
//!     .map(|w| w.value)
//!     .collect();
//! # #[derive(Clone)] struct SumOf;
//! # impl Aggregate<(u8, u32, bool)> for SumOf {
//! #     type Acc = u32; type Out = u32;
//! #     fn create(&mut self, r: (u8, u32, bool)) -> u32 { r.1 }
//! #     fn add(&mut self, a: &mut u32, r: (u8, u32, bool)) { *a += r.1 }
//! #     fn merge(&mut self, a: &mut u32, b: u32) { *a += b }
//! #     fn result(&mut self, a: u32) -> u32 { a }
//! # }
//! env.execute()?;
//! // the trailing 100 never sees a flag: a global window does not fire at the end by itself
//! assert_eq!(sums.take(), vec![11, 8]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::assigners::{Window, WindowInfo};
use super::functions::{AggregateWindow, ProcessWindow, WindowFn};
use crate::api::exchange::exchange_by_key;
use crate::api::stream::{KeyedStream, Stream};
use crate::graph::OpInfo;
use crate::ops::aggregate::Aggregate;
use crate::ops::{StateKey, StateValue, Table};
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{Chain, Downstream, Identity, Operator, Sealed, Then};
use crate::runtime::panic::{Named, OpName, PanicGuard};
use crate::runtime::snapshot::{encode, Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport};
use std::hash::Hash;
use std::panic::Location;

/// What a trigger asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerResult {
    /// Keep collecting.
    Continue,
    /// Emit the window's result and keep its contents.
    Fire,
    /// Emit the window's result and start the window over.
    FireAndPurge,
    /// Drop the window's contents without emitting.
    Purge,
}

/// Decides when a key's global window fires.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a trigger of records `{T}`",
    label = "expected a `Trigger<{T}>`",
    note = "implement `Trigger<{T}>` (`on_element`, optionally `on_end`) for a `Clone + Send` type"
)]
pub trait Trigger<T>: Clone + Send + 'static {
    /// Called after `item` (with event timestamp `ts`) joined the key's window, which now
    /// holds `count` records.
    fn on_element(&mut self, item: &T, ts: Timestamp, count: u64) -> TriggerResult;
    /// Called for each key's window when the input ends. The default keeps the window
    /// unfired, as Flink's global windows do.
    fn on_end(&mut self, _count: u64) -> TriggerResult {
        TriggerResult::Continue
    }
}

/// A keyed stream in global windows; finish it with a window function.
#[must_use = "a windowed stream does nothing until a window function is applied"]
pub struct GlobalWindowedStream<K: Send + 'static, T: Send + 'static, Tr> {
    ex: Stream<Identity<(K, T)>>,
    trigger: Tr,
}

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    C::Out: Clone,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// One window per key, fired by `trigger` (Flink's `GlobalWindows` with a custom trigger).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// Fires and clears a key's window at every second record.
    /// #[derive(Clone)]
    /// struct Pairs;
    /// impl Trigger<(char, u32)> for Pairs {
    ///     fn on_element(&mut self, _: &(char, u32), _: i64, count: u64) -> TriggerResult {
    ///         if count == 2 { TriggerResult::FireAndPurge } else { TriggerResult::Continue }
    ///     }
    /// }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sums = env
    ///     .from_iter([('a', 1), ('b', 5), ('a', 2), ('a', 3)])
    ///     .key_by(|e| e.0)
    ///     .global_window(Pairs)
    ///     .process(|k, _, items| [(*k, items.iter().map(|e| e.1).sum::<u32>())])
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(sums.take(), vec![('a', 3)]); // 'b' and the last 'a' wait for a second record
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn global_window<Tr: Trigger<C::Out>>(
        self,
        trigger: Tr,
    ) -> GlobalWindowedStream<K, C::Out, Tr> {
        let loc = Location::caller();
        let KeyedStream { stream, key } = self;
        GlobalWindowedStream {
            ex: exchange_by_key(stream, loc, key),
            trigger,
        }
    }
}

impl<K, T, Tr> GlobalWindowedStream<K, T, Tr>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    Tr: Trigger<T>,
{
    /// Aggregates each firing of a key's window: `Windowed { key, window: Window::GLOBAL, value }`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use flow_core::ops::aggregate::Count;
    /// /// Fires a key's window, keeping its records, at each "!".
    /// #[derive(Clone)]
    /// struct OnBang;
    /// impl Trigger<&'static str> for OnBang {
    ///     fn on_element(&mut self, item: &&'static str, _: i64, _: u64) -> TriggerResult {
    ///         if *item == "!" { TriggerResult::Fire } else { TriggerResult::Continue }
    ///     }
    /// }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env
    ///     .from_iter(["a", "!", "b", "!"])
    ///     .key_by(|_| 0)
    ///     .global_window(OnBang)
    ///     .aggregate(Count)
    ///     .map(|w| (w.window, w.value))
    ///     .collect();
    /// env.execute()?;
    /// // `Fire` keeps the window's records: the second firing counts all four
    /// assert_eq!(counts.take(), vec![(Window::GLOBAL, 2), (Window::GLOBAL, 4)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    ///
    /// With checkpoints, each key's window (its accumulator and record count) is
    /// checkpointed; the trigger's own fields are not (it is cloned fresh on restore).
    #[track_caller]
    pub fn aggregate<A>(self, agg: A) -> Stream<GlobalChain<K, T, AggregateWindow<A>, Tr>>
    where
        K: StateKey,
        A: Aggregate<T>,
        A::Acc: StateValue,
    {
        self.apply("aggregate", AggregateWindow(agg))
    }

    /// Hands all records of a firing window to `f`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// Fires each key's window once, when the input ends.
    /// #[derive(Clone)]
    /// struct AtEnd;
    /// impl Trigger<(u8, char)> for AtEnd {
    ///     fn on_element(&mut self, _: &(u8, char), _: i64, _: u64) -> TriggerResult {
    ///         TriggerResult::Continue
    ///     }
    ///     fn on_end(&mut self, _count: u64) -> TriggerResult {
    ///         TriggerResult::Fire
    ///     }
    /// }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let words = env
    ///     .from_iter([(1, 'h'), (2, 'o'), (1, 'i')])
    ///     .key_by(|e| e.0)
    ///     .global_window(AtEnd)
    ///     .process(|k, _, items| [(*k, items.iter().map(|e| e.1).collect::<String>())])
    ///     .collect();
    /// env.execute()?;
    /// let mut got = words.take();
    /// got.sort();
    /// assert_eq!(got, vec![(1, "hi".to_string()), (2, "o".to_string())]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    ///
    /// With checkpoints, each key's window (its records) is checkpointed; the trigger's own
    /// fields are not (it is cloned fresh on restore).
    #[track_caller]
    pub fn process<F, I>(self, f: F) -> Stream<GlobalChain<K, T, ProcessWindow<F>, Tr>>
    where
        F: FnMut(&K, &WindowInfo, Vec<T>) -> I + Clone + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        K: StateKey,
        T: StateValue,
    {
        let name = OpName::new("process", Location::caller());
        self.apply("process", ProcessWindow { f, name })
    }

    #[track_caller]
    fn apply<F>(self, kind: &str, func: F) -> Stream<GlobalChain<K, T, F, Tr>>
    where
        K: StateKey,
        F: WindowFn<K, T>,
        F::State: StateValue,
    {
        let name = OpName::new(kind, Location::caller());
        let trigger = Named {
            f: self.trigger,
            name: OpName::new("trigger", Location::caller()),
        };
        self.ex.then(
            OpInfo::with_detail(&name, "global window"),
            GlobalWindowOp {
                func,
                trigger,
                windows: Table::default(),
                watermark: Timestamp::MIN,
                codec: Some((Codec::serde(), Codec::serde())),
            },
        )
    }
}

/// Names of the global-window operator's states in checkpoints.
const WINDOWS: &str = "windows";
const WATERMARK: &str = "watermark";

/// The chain of a global-window stage.
pub type GlobalChain<K, T, F, Tr> = Then<Identity<(K, T)>, GlobalWindowOp<K, T, F, Tr>>;

/// The operator of global windows.
pub struct GlobalWindowOp<K, T, F: WindowFn<K, T>, Tr> {
    func: F,
    trigger: Named<Tr>,
    windows: Table<K, (F::State, u64)>,
    watermark: Timestamp,
    /// Encodes keys and window state for checkpoints; `None`: not checkpointable.
    codec: Option<(Codec<K>, Codec<F::State>)>,
}

impl<K, T, F: WindowFn<K, T>, Tr: Clone> Clone for GlobalWindowOp<K, T, F, Tr> {
    fn clone(&self) -> Self {
        GlobalWindowOp {
            func: self.func.clone(),
            trigger: self.trigger.clone(),
            windows: Table::default(),
            watermark: Timestamp::MIN,
            codec: self.codec,
        }
    }
}

impl<K, T, F: WindowFn<K, T>, Tr> Sealed for GlobalWindowOp<K, T, F, Tr> {}

impl<K, T, F, Tr> GlobalWindowOp<K, T, F, Tr>
where
    K: Hash + Eq + Clone,
    F: WindowFn<K, T>,
{
    fn act<D: Downstream<F::Out>>(
        &mut self,
        key: K,
        result: TriggerResult,
        ts: Timestamp,
        down: &mut D,
    ) {
        let info = WindowInfo {
            window: Window::GLOBAL,
            watermark: self.watermark,
        };
        let mut out = Vec::new();
        match result {
            TriggerResult::Continue => {}
            TriggerResult::Fire => {
                if let Some((s, _)) = self.windows.get(&key) {
                    let s = s.clone();
                    self.func.fire(&key, &info, s, &mut out);
                }
            }
            TriggerResult::FireAndPurge => {
                if let Some((s, _)) = self.windows.remove(&key) {
                    self.func.fire(&key, &info, s, &mut out);
                }
            }
            TriggerResult::Purge => {
                self.windows.remove(&key);
            }
        }
        for r in out {
            down.emit(r, ts);
        }
    }
}

impl<K, T, F, Tr> Operator<(K, T)> for GlobalWindowOp<K, T, F, Tr>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    F: WindowFn<K, T>,
    Tr: Trigger<T>,
{
    type Out = F::Out;

    fn state(&self) -> StateSupport {
        if self.codec.is_none() {
            return StateSupport::Unsupported("global-window contents without a codec");
        }
        StateSupport::Persisted(vec![
            StateDecl::keyed::<K, (F::State, u64)>(WINDOWS),
            StateDecl::operator::<Timestamp>(WATERMARK),
        ])
    }

    /// Every key's window is written whole at each checkpoint: key, then its state and how
    /// many records it holds.
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        cx.operator_state(WATERMARK, &self.watermark)?;
        let mut w = cx.keyed(WINDOWS, true);
        for (k, (s, count)) in &self.windows {
            let mut key = Vec::new();
            (kc.enc)(k, &mut key)?;
            let mut v = Vec::new();
            (sc.enc)(s, &mut v)?;
            encode(count, &mut v)?;
            w.put_encoded(k, key, Some(v));
        }
        w.finish();
        Ok(())
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        if let Some(w) = cx.operator_state::<Timestamp>(WATERMARK)?.into_iter().min() {
            self.watermark = self.watermark.max(w);
        }
        let windows = &mut self.windows;
        cx.keyed_raw(WINDOWS, |key, value| {
            let bad =
                |e: String| crate::Error::Checkpoint(format!("{}: {e}", cx.describe(WINDOWS)));
            let k = kc.decode_all(key, &|| cx.describe(WINDOWS))?;
            let (s, rest) = (sc.dec)(value).map_err(|e| bad(e.to_string()))?;
            let (count, rest): (u64, _) =
                postcard::take_from_bytes(rest).map_err(|e| bad(e.to_string()))?;
            if !rest.is_empty() {
                return Err(bad(format!("{} bytes left over", rest.len())));
            }
            windows.insert(k, (s, count));
            Ok(())
        })
    }

    #[inline]
    fn on_record<D: Downstream<F::Out>>(
        &mut self,
        (key, item): (K, T),
        ts: Timestamp,
        down: &mut D,
    ) {
        let count = self.windows.get(&key).map_or(0, |w| w.1) + 1;
        let guard = PanicGuard(&self.trigger.name);
        let result = self.trigger.f.on_element(&item, ts, count);
        std::mem::forget(guard);
        match self.windows.get_mut(&key) {
            Some(w) => {
                self.func.add(&mut w.0, item);
                w.1 = count;
            }
            None => {
                let s = self.func.create(item);
                self.windows.insert(key.clone(), (s, count));
            }
        }
        self.act(key, result, ts, down);
    }

    fn on_event<D: Downstream<F::Out>>(&mut self, event: Event, down: &mut D) {
        match event {
            Event::Watermark(w) => self.watermark = self.watermark.max(w),
            Event::End => {
                let keys: Vec<(K, u64)> =
                    self.windows.iter().map(|(k, w)| (k.clone(), w.1)).collect();
                for (k, count) in keys {
                    let guard = PanicGuard(&self.trigger.name);
                    let result = self.trigger.f.on_end(count);
                    std::mem::forget(guard);
                    self.act(k, result, Timestamp::MAX, down);
                }
            }
            _ => {}
        }
        down.event(event)
    }
}
