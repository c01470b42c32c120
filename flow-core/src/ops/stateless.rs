//! Stateless operators, fused into the stage around them: `map`, `filter`, `flat_map`,
//! `filter_map`, `inspect`.
use crate::api::stream::Stream;
use crate::graph::OpInfo;
use crate::record::Timestamp;
use crate::runtime::operator::{Chain, Downstream, Operator, Sealed, Then};
use crate::runtime::panic::{guarded, OpName, PanicGuard};
use std::panic::Location;

/// `map`: one record in, one record out.
#[derive(Clone)]
pub struct Map<F> {
    f: F,
    name: OpName,
}

/// `filter`: keeps the records for which the predicate holds.
#[derive(Clone)]
pub struct Filter<F> {
    f: F,
    name: OpName,
}

/// `flat_map`: maps each record to any number of records.
#[derive(Clone)]
pub struct FlatMap<F> {
    f: F,
    name: OpName,
}

/// `filter_map`: maps each record to zero or one record.
#[derive(Clone)]
pub struct FilterMap<F> {
    f: F,
    name: OpName,
}

/// `inspect`: sees every record by reference and passes it on unchanged.
#[derive(Clone)]
pub struct Inspect<F> {
    f: F,
    name: OpName,
}

impl<F> Sealed for Map<F> {}
impl<F> Sealed for Filter<F> {}
impl<F> Sealed for FlatMap<F> {}
impl<F> Sealed for FilterMap<F> {}
impl<F> Sealed for Inspect<F> {}

impl<I, O, F> Operator<I> for Map<F>
where
    F: FnMut(I) -> O + Clone + Send + 'static,
    O: Send + 'static,
{
    type Out = O;
    #[inline(always)]
    fn on_record<D: Downstream<O>>(&mut self, item: I, ts: Timestamp, down: &mut D) {
        let y = guarded!(self.name, (self.f)(item));
        down.emit(y, ts)
    }
}

impl<I, F> Operator<I> for Filter<F>
where
    F: FnMut(&I) -> bool + Clone + Send + 'static,
    I: Send + 'static,
{
    type Out = I;
    #[inline(always)]
    fn on_record<D: Downstream<I>>(&mut self, item: I, ts: Timestamp, down: &mut D) {
        if guarded!(self.name, (self.f)(&item)) {
            down.emit(item, ts)
        }
    }
}

impl<I, It, F> Operator<I> for FlatMap<F>
where
    F: FnMut(I) -> It + Clone + Send + 'static,
    It: IntoIterator,
    It::Item: Send + 'static,
{
    type Out = It::Item;
    #[inline(always)]
    fn on_record<D: Downstream<It::Item>>(&mut self, item: I, ts: Timestamp, down: &mut D) {
        let guard = PanicGuard(&self.name);
        for y in (self.f)(item) {
            down.emit(y, ts)
        }
        std::mem::forget(guard);
    }
}

impl<I, O, F> Operator<I> for FilterMap<F>
where
    F: FnMut(I) -> Option<O> + Clone + Send + 'static,
    O: Send + 'static,
{
    type Out = O;
    #[inline(always)]
    fn on_record<D: Downstream<O>>(&mut self, item: I, ts: Timestamp, down: &mut D) {
        if let Some(y) = guarded!(self.name, (self.f)(item)) {
            down.emit(y, ts)
        }
    }
}

impl<I, F> Operator<I> for Inspect<F>
where
    F: FnMut(&I) + Clone + Send + 'static,
    I: Send + 'static,
{
    type Out = I;
    #[inline(always)]
    fn on_record<D: Downstream<I>>(&mut self, item: I, ts: Timestamp, down: &mut D) {
        guarded!(self.name, (self.f)(&item));
        down.emit(item, ts)
    }
}

impl<C: Chain> Stream<C> {
    /// Transforms each record.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env.from_iter(["a", "bb"]).map(|s| s.len()).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![1, 2]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn map<O, F>(self, f: F) -> Stream<Then<C, Map<F>>>
    where
        F: FnMut(C::Out) -> O + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("map", Location::caller());
        self.then(OpInfo::new(&name), Map { f, name })
    }

    /// Keeps the records for which `f` returns true.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env.from_iter(1..=6).filter(|x| x % 3 == 0).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![3, 6]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn filter<F>(self, f: F) -> Stream<Then<C, Filter<F>>>
    where
        F: FnMut(&C::Out) -> bool + Clone + Send + 'static,
    {
        let name = OpName::new("filter", Location::caller());
        self.then(OpInfo::new(&name), Filter { f, name })
    }

    /// Maps each record to any number of records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env
    ///     .from_iter(["to be", "or not"])
    ///     .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec!["to", "be", "or", "not"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn flat_map<I, F>(self, f: F) -> Stream<Then<C, FlatMap<F>>>
    where
        F: FnMut(C::Out) -> I + Clone + Send + 'static,
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
    {
        let name = OpName::new("flat_map", Location::caller());
        self.then(OpInfo::new(&name), FlatMap { f, name })
    }

    /// Maps each record to zero or one record.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env.from_iter(["1", "x", "3"]).filter_map(|s| s.parse::<u32>().ok()).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![1, 3]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn filter_map<O, F>(self, f: F) -> Stream<Then<C, FilterMap<F>>>
    where
        F: FnMut(C::Out) -> Option<O> + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("filter_map", Location::caller());
        self.then(OpInfo::new(&name), FilterMap { f, name })
    }

    /// Calls `f` on each record and passes the record on unchanged.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// let seen = Arc::new(AtomicU64::new(0));
    /// let counter = seen.clone();
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.from_iter(1..=4u64)
    ///     .inspect(move |x| { counter.fetch_add(*x, Ordering::Relaxed); })
    ///     .discard();
    /// env.execute()?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 10);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn inspect<F>(self, f: F) -> Stream<Then<C, Inspect<F>>>
    where
        F: FnMut(&C::Out) + Clone + Send + 'static,
    {
        let name = OpName::new("inspect", Location::caller());
        self.then(OpInfo::new(&name), Inspect { f, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Event;
    use crate::runtime::operator::{Collect, Identity};

    fn name() -> OpName {
        OpName::new("test", Location::caller())
    }

    #[test]
    fn operators_compose_in_order_and_keep_timestamps() {
        let c = Then::new(
            Identity::<i64>::new(),
            Map {
                f: |x: i64| x * 10,
                name: name(),
            },
        );
        let c = Then::new(
            c,
            Filter {
                f: |x: &i64| *x != 20,
                name: name(),
            },
        );
        let c = Then::new(
            c,
            FlatMap {
                f: |x: i64| vec![x, x + 1],
                name: name(),
            },
        );
        let c = Then::new(
            c,
            FilterMap {
                f: |x: i64| (x % 2 == 0).then_some(x),
                name: name(),
            },
        );
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        let f = move |_: &i64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let mut c = Then::new(c, Inspect { f, name: name() });
        let mut out = Collect::new();
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
        let op_name = name();
        let mut c = Then::new(
            Identity::<i64>::new(),
            Map {
                f: |x: i64| if x == 3 { panic!("boom") } else { x },
                name: op_name.clone(),
            },
        );
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = Collect::new();
            for x in 0..5 {
                c.push(x, 0, &mut out);
            }
        }));
        assert!(r.is_err());
        assert_eq!(
            crate::runtime::panic::take_panicked_op().as_deref(),
            Some(op_name.as_str())
        );
    }
}
