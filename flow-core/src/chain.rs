//! Fused operator chains.
//!
//! The operators between two exchanges are composed at compile time into one value whose type
//! names every closure: `FlatMap<Filter<Map<Identity<String>, F1>, F2>, F3>`. A record is pushed
//! through the whole chain by direct, inlinable calls — no channel, virtual call or allocation
//! per record. The only dynamic dispatch happens once per *batch*, where the runtime hands a
//! batch from a source or an exchange to the chain.
//!
//! A chain is a *transducer*: it is generic over the [`Downstream`] it pushes into, so the same
//! chain can end in an exchange, a pre-aggregating exchange or a sink.
use crate::record::{Event, Timestamp};
use std::marker::PhantomData;
use std::sync::Arc;

/// Where a chain pushes its output: the next operator, an exchange or a sink.
pub trait Downstream<T> {
    /// Accepts one record with its event timestamp ([`crate::record::NO_TIMESTAMP`] if none).
    fn emit(&mut self, item: T, ts: Timestamp);
    /// Accepts a control event (watermark, flush, end of input).
    fn event(&mut self, event: Event);
}

/// A fused chain of operators from records of type `In` to records of type `Out`.
///
/// Every subtask works on its own clone of the chain, so user closures need `Clone`, which
/// closures capturing only `Clone` values implement automatically.
pub trait Chain: Clone + Send + 'static {
    /// Records the chain consumes.
    type In: Send + 'static;
    /// Records the chain produces.
    type Out: Send + 'static;
    /// Pushes one record through the chain into `down`.
    fn push<D: Downstream<Self::Out>>(&mut self, item: Self::In, ts: Timestamp, down: &mut D);
    /// Passes a control event through the chain (stateful operators act on it first).
    fn event<D: Downstream<Self::Out>>(&mut self, event: Event, down: &mut D);
    /// Called once per subtask before any record, with the subtask's position.
    fn open(&mut self, _subtask: usize, _parallelism: usize) {}
    /// Passes on output that operators send elsewhere than down the chain (side outputs).
    /// Returns `false` while some of it waits for room. Operators that wrap an inner chain
    /// must forward this call.
    fn drain(&mut self, _cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        Ok(true)
    }
}

/// The runtime's view of a running subtask, for [`Chain::drain`].
pub struct DrainCx<'a, 'b> {
    pub(crate) cx: &'a crate::runtime::task::TaskCx<'b>,
    pub(crate) wake: std::cell::Cell<Option<std::time::Instant>>,
}

impl DrainCx<'_, '_> {
    /// Asks for an [`Event::ProcessingTime`] at or soon after `at` (processing-time timers,
    /// idleness). The earliest request of all operators of the stage counts.
    pub fn wake_at(&self, at: std::time::Instant) {
        if self.wake.get().is_none_or(|w| at < w) {
            self.wake.set(Some(at));
        }
    }
}

/// The empty chain: records pass unchanged.
pub struct Identity<T>(PhantomData<fn(T) -> T>);

impl<T> Identity<T> {
    pub(crate) fn new() -> Self {
        Identity(PhantomData)
    }
}

impl<T> Clone for Identity<T> {
    fn clone(&self) -> Self {
        Identity(PhantomData)
    }
}

impl<T: Send + 'static> Chain for Identity<T> {
    type In = T;
    type Out = T;
    #[inline(always)]
    fn push<D: Downstream<T>>(&mut self, item: T, ts: Timestamp, down: &mut D) {
        down.emit(item, ts)
    }
    #[inline]
    fn event<D: Downstream<T>>(&mut self, event: Event, down: &mut D) {
        down.event(event)
    }
}

/// Name and declaration site of an operator, shown in plans, metrics and panic reports.
#[derive(Clone, Debug)]
pub struct OpName(pub(crate) Arc<str>);

impl OpName {
    pub(crate) fn new(kind: &str, loc: &std::panic::Location<'_>) -> Self {
        OpName(format!("{kind} ({}:{})", loc.file(), loc.line()).into())
    }
    /// The operator's display name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

thread_local! {
    static PANICKED_OP: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Records which operator a panic unwound through. Created around every call of a user
/// function and `forget`-ed on the normal path, so it costs nothing unless the function panics.
pub(crate) struct PanicGuard<'a>(pub(crate) &'a OpName);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        // Only reached while unwinding (the normal path forgets the guard). The innermost guard
        // is dropped first; keep its name.
        PANICKED_OP.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Some(self.0 .0.clone());
            }
        });
    }
}

/// Takes the name of the operator whose user function last panicked on this thread.
pub(crate) fn take_panicked_op() -> Option<Arc<str>> {
    PANICKED_OP.with(|p| p.borrow_mut().take())
}

/// Calls a user function under a [`PanicGuard`].
macro_rules! guarded {
    ($name:expr, $call:expr) => {{
        let guard = $crate::chain::PanicGuard(&$name);
        let out = $call;
        std::mem::forget(guard);
        out
    }};
}
pub(crate) use guarded;

/// Declares an operator of the chain: a struct holding the previous chain, the user function
/// and the operator's name, plus the adapter through which the previous chain pushes into it.
macro_rules! operator {
    (
        $(#[$doc:meta])*
        $op:ident, $adapter:ident, <$i:ident, $o:ident>, [$($cbound:tt)*], [$($fbound:tt)*],
        |$s:ident, $x:ident, $ts:ident| $body:block
    ) => {
        $(#[$doc])*
        pub struct $op<C, F, $o> {
            pub(crate) inner: C,
            pub(crate) f: F,
            pub(crate) name: OpName,
            pub(crate) _out: PhantomData<fn() -> $o>,
        }

        impl<C: Clone, F: Clone, $o> Clone for $op<C, F, $o> {
            fn clone(&self) -> Self {
                $op { inner: self.inner.clone(), f: self.f.clone(), name: self.name.clone(), _out: PhantomData }
            }
        }

        impl<C: Chain, F, $o> Chain for $op<C, F, $o>
        where
            F: $($cbound)* + Clone + Send + 'static,
            $o: Send + 'static,
        {
            type In = C::In;
            type Out = $o;
            #[inline(always)]
            fn push<D: Downstream<$o>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
                let mut a = $adapter { f: &mut self.f, name: &self.name, down, _p: PhantomData };
                self.inner.push(item, ts, &mut a)
            }
            #[inline]
            fn event<D: Downstream<$o>>(&mut self, event: Event, down: &mut D) {
                let mut a = $adapter { f: &mut self.f, name: &self.name, down, _p: PhantomData };
                self.inner.event(event, &mut a)
            }
            fn open(&mut self, subtask: usize, parallelism: usize) {
                self.inner.open(subtask, parallelism)
            }
            fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
                self.inner.drain(cx)
            }
        }

        #[doc(hidden)]
        pub struct $adapter<'a, F, D, $o> {
            f: &'a mut F,
            name: &'a OpName,
            down: &'a mut D,
            _p: PhantomData<fn() -> $o>,
        }

        impl<'a, $i, $o, F, D> Downstream<$i> for $adapter<'a, F, D, $o>
        where
            F: $($fbound)*,
            D: Downstream<$o>,
        {
            #[inline(always)]
            fn emit(&mut self, $x: $i, $ts: Timestamp) {
                let $s = self;
                $body
            }
            #[inline]
            fn event(&mut self, event: Event) {
                self.down.event(event)
            }
        }
    };
}

operator! {
    /// `map`: one record in, one record out.
    Map, MapAdapter, <I, O>, [FnMut(C::Out) -> O], [FnMut(I) -> O],
    |s, x, ts| {
        let y = guarded!(*s.name, (s.f)(x));
        s.down.emit(y, ts)
    }
}

operator! {
    /// `filter_map`: maps each record to zero or one record.
    FilterMap, FilterMapAdapter, <I, O>, [FnMut(C::Out) -> Option<O>], [FnMut(I) -> Option<O>],
    |s, x, ts| {
        if let Some(y) = guarded!(*s.name, (s.f)(x)) {
            s.down.emit(y, ts)
        }
    }
}

/// `flat_map`: maps each record to any number of records.
pub struct FlatMap<C, F, It> {
    pub(crate) inner: C,
    pub(crate) f: F,
    pub(crate) name: OpName,
    pub(crate) _out: PhantomData<fn() -> It>,
}

impl<C: Clone, F: Clone, It> Clone for FlatMap<C, F, It> {
    fn clone(&self) -> Self {
        FlatMap {
            inner: self.inner.clone(),
            f: self.f.clone(),
            name: self.name.clone(),
            _out: PhantomData,
        }
    }
}

impl<C: Chain, F, It> Chain for FlatMap<C, F, It>
where
    F: FnMut(C::Out) -> It + Clone + Send + 'static,
    It: IntoIterator + 'static,
    It::Item: Send + 'static,
{
    type In = C::In;
    type Out = It::Item;
    #[inline(always)]
    fn push<D: Downstream<It::Item>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = FlatMapAdapter {
            f: &mut self.f,
            name: &self.name,
            down,
            _p: PhantomData,
        };
        self.inner.push(item, ts, &mut a)
    }
    #[inline]
    fn event<D: Downstream<It::Item>>(&mut self, event: Event, down: &mut D) {
        let mut a = FlatMapAdapter {
            f: &mut self.f,
            name: &self.name,
            down,
            _p: PhantomData,
        };
        self.inner.event(event, &mut a)
    }
    fn open(&mut self, subtask: usize, parallelism: usize) {
        self.inner.open(subtask, parallelism)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        self.inner.drain(cx)
    }
}

#[doc(hidden)]
pub struct FlatMapAdapter<'a, F, D, It> {
    f: &'a mut F,
    name: &'a OpName,
    down: &'a mut D,
    _p: PhantomData<fn() -> It>,
}

impl<'a, I, It, F, D> Downstream<I> for FlatMapAdapter<'a, F, D, It>
where
    F: FnMut(I) -> It,
    It: IntoIterator,
    D: Downstream<It::Item>,
{
    #[inline(always)]
    fn emit(&mut self, x: I, ts: Timestamp) {
        let guard = PanicGuard(self.name);
        for y in (self.f)(x) {
            self.down.emit(y, ts)
        }
        std::mem::forget(guard);
    }
    #[inline]
    fn event(&mut self, event: Event) {
        self.down.event(event)
    }
}

/// Declares an operator whose output type equals its input type (filter, inspect).
macro_rules! passthrough_operator {
    (
        $(#[$doc:meta])*
        $op:ident, $adapter:ident, [$($fbound:tt)*],
        |$s:ident, $x:ident, $ts:ident| $body:block
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $op<C, F> {
            pub(crate) inner: C,
            pub(crate) f: F,
            pub(crate) name: OpName,
        }

        impl<C: Chain, F> Chain for $op<C, F>
        where
            F: for<'x> $($fbound)*<&'x C::Out> + Clone + Send + 'static,
        {
            type In = C::In;
            type Out = C::Out;
            #[inline(always)]
            fn push<D: Downstream<C::Out>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
                let mut a = $adapter { f: &mut self.f, name: &self.name, down };
                self.inner.push(item, ts, &mut a)
            }
            #[inline]
            fn event<D: Downstream<C::Out>>(&mut self, event: Event, down: &mut D) {
                let mut a = $adapter { f: &mut self.f, name: &self.name, down };
                self.inner.event(event, &mut a)
            }
            fn open(&mut self, subtask: usize, parallelism: usize) {
                self.inner.open(subtask, parallelism)
            }
            fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
                self.inner.drain(cx)
            }
        }

        #[doc(hidden)]
        pub struct $adapter<'a, F, D> {
            f: &'a mut F,
            name: &'a OpName,
            down: &'a mut D,
        }

        impl<'a, T, F, D> Downstream<T> for $adapter<'a, F, D>
        where
            F: for<'x> $($fbound)*<&'x T>,
            D: Downstream<T>,
        {
            #[inline(always)]
            fn emit(&mut self, $x: T, $ts: Timestamp) {
                let $s = self;
                $body
            }
            #[inline]
            fn event(&mut self, event: Event) {
                self.down.event(event)
            }
        }
    };
}

/// A predicate over a record (the bound of [`Filter`]).
pub trait Predicate<A>: FnMut(A) -> bool {}
impl<A, F: FnMut(A) -> bool> Predicate<A> for F {}

/// An observer of a record (the bound of [`Inspect`]).
pub trait Observer<A>: FnMut(A) {}
impl<A, F: FnMut(A)> Observer<A> for F {}

passthrough_operator! {
    /// `filter`: keeps the records for which the predicate holds.
    Filter, FilterAdapter, [Predicate],
    |s, x, ts| {
        let keep = guarded!(*s.name, (s.f)(&x));
        if keep {
            s.down.emit(x, ts)
        }
    }
}

passthrough_operator! {
    /// `inspect`: sees every record by reference and passes it on unchanged.
    Inspect, InspectAdapter, [Observer],
    |s, x, ts| {
        guarded!(*s.name, (s.f)(&x));
        s.down.emit(x, ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<(i64, Timestamp)>, Vec<Event>);
    impl Downstream<i64> for Collect {
        fn emit(&mut self, item: i64, ts: Timestamp) {
            self.0.push((item, ts))
        }
        fn event(&mut self, event: Event) {
            self.1.push(event)
        }
    }

    fn name() -> OpName {
        OpName::new("test", std::panic::Location::caller())
    }

    #[test]
    fn operators_compose_in_order_and_keep_timestamps() {
        let c = Identity::<i64>::new();
        let c = Map {
            inner: c,
            f: |x: i64| x * 10,
            name: name(),
            _out: PhantomData,
        };
        let c = Filter {
            inner: c,
            f: |x: &i64| *x != 20,
            name: name(),
        };
        let c = FlatMap {
            inner: c,
            f: |x: i64| vec![x, x + 1],
            name: name(),
            _out: PhantomData,
        };
        let c = FilterMap {
            inner: c,
            f: |x: i64| (x % 2 == 0).then_some(x),
            name: name(),
            _out: PhantomData,
        };
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        let f = move |_: &i64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let mut c = Inspect {
            inner: c,
            f,
            name: name(),
        };
        let mut out = Collect(vec![], vec![]);
        for (i, x) in [1, 2, 3].into_iter().enumerate() {
            c.push(x, i as i64, &mut out);
        }
        c.event(Event::End, &mut out);
        assert_eq!(out.0, vec![(10, 0), (30, 2)]);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(out.1, vec![Event::End]);
    }

    #[test]
    fn a_panicking_function_is_named() {
        let c = Identity::<i64>::new();
        let mut c = Map {
            inner: c,
            f: |x: i64| if x == 3 { panic!("boom") } else { x },
            name: OpName("map (here)".into()),
            _out: PhantomData,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = Collect(vec![], vec![]);
            for x in 0..5 {
                c.push(x, 0, &mut out);
            }
        }));
        assert!(r.is_err());
        assert_eq!(take_panicked_op().as_deref(), Some("map (here)"));
    }
}
