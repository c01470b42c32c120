//! Interval joins: each record `a` of one keyed stream with every record `b` of another with
//! the same key and `a.ts + lower <= b.ts <= a.ts + upper` (bounds inclusive, as Flink's).
use super::connect::KeyedCoProcessFunction;
use crate::api::stream::{KeyedStream, Stream};
use crate::error::Error;
use crate::ops::process::keyed::Context;
use crate::ops::{StateKey, StateValue};
use crate::record::Timestamp;
use crate::runtime::operator::Chain;
use crate::runtime::panic::{guarded, Named, OpName};
use crate::runtime::snapshot::Codec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;
use std::time::Duration;

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Joins each record `a` of this stream with every record `b` of `other` with the same
    /// key and `a.ts + lower <= b.ts <= a.ts + upper` (bounds inclusive, as Flink's interval
    /// join); `f` makes the joined record. Records older than the watermark are dropped, and
    /// buffered records are released once no later record can match them.
    ///
    /// With checkpoints, the buffered records and their release timers are checkpointed per
    /// key: keys and both sides' records need serde's traits.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let clicks = env
    ///     .from_iter([('a', 1_000), ('b', 5_000)])
    ///     .assign_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///     .key_by(|c| c.0);
    /// let buys = env
    ///     .from_iter([('a', 1_400), ('b', 9_000)])
    ///     .assign_timestamps(|b| b.1, WatermarkStrategy::monotonous())
    ///     .key_by(|b| b.0);
    /// // buys from 0 to 1 s after the click
    /// let joined = clicks
    ///     .interval_join(buys, Duration::ZERO, Duration::from_secs(1), |k, c, b| (*k, b.1 - c.1))
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(joined.take(), vec![('a', 400)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn interval_join<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        lower: Duration,
        upper: Duration,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        K: StateKey,
        C::Out: StateValue,
        C2: Chain,
        C2::Out: StateValue,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        self.interval_join_signed(other, ms(lower), ms(upper), f)
    }

    /// [`KeyedStream::interval_join`] with signed bounds in milliseconds (e.g. `-2000, 1000`:
    /// `b` from two seconds before to one second after `a`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let alerts = env
    ///     .from_iter([(7u8, 10_000)])
    ///     .assign_timestamps(|a| a.1, WatermarkStrategy::monotonous())
    ///     .key_by(|a| a.0);
    /// let logins = env
    ///     .from_iter([(7u8, 5_000), (7, 8_500), (7, 10_500)])
    ///     .assign_timestamps(|l| l.1, WatermarkStrategy::monotonous())
    ///     .key_by(|l| l.0);
    /// // logins from 2 s before the alert up to the alert
    /// let before = alerts.interval_join_signed(logins, -2_000, 0, |_, a, l| l.1 - a.1).collect();
    /// env.execute()?;
    /// assert_eq!(before.take(), vec![-1_500]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn interval_join_signed<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        lower: i64,
        upper: i64,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        K: StateKey,
        C::Out: StateValue,
        C2: Chain,
        C2::Out: StateValue,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        let name = OpName::new("interval_join", Location::caller());
        if lower > upper {
            let e = Error::Config(format!(
                "interval_join at {}: the lower bound {lower} ms is above the upper bound {upper} ms",
                name.declared_at()
            ));
            self.stream.g.borrow_mut().deferred_error.get_or_insert(e);
        }
        self.connect(other).process_named(
            "interval_join",
            Some(format!("[{lower} ms, {upper} ms]")),
            IntervalJoin {
                lower,
                upper,
                f: Named { f, name },
                _p: PhantomData,
            },
            Some((Codec::serde(), Codec::serde())),
        )
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The state of an interval join for one key: the records of each side that may still match.
#[derive(Serialize, Deserialize)]
pub struct IntervalState<A, B> {
    left: BTreeMap<Timestamp, Vec<A>>,
    right: BTreeMap<Timestamp, Vec<B>>,
}

impl<A, B> Default for IntervalState<A, B> {
    fn default() -> Self {
        IntervalState {
            left: BTreeMap::new(),
            right: BTreeMap::new(),
        }
    }
}

/// The interval join as a co-process function.
pub struct IntervalJoin<F, A, B> {
    lower: i64,
    upper: i64,
    f: Named<F>,
    _p: PhantomData<fn(A, B)>,
}

impl<F: Clone, A, B> Clone for IntervalJoin<F, A, B> {
    fn clone(&self) -> Self {
        IntervalJoin {
            lower: self.lower,
            upper: self.upper,
            f: self.f.clone(),
            _p: PhantomData,
        }
    }
}

impl<K, A, B, F, R> KeyedCoProcessFunction<K, A, B> for IntervalJoin<F, A, B>
where
    A: Clone + Send + 'static,
    B: Clone + Send + 'static,
    F: FnMut(&K, &A, &B) -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    type State = IntervalState<A, B>;
    type Out = R;

    fn process_left(&mut self, key: &K, a: A, st: &mut Self::State, ctx: &mut Context<'_, R>) {
        let ts = ctx.timestamp();
        if ts <= ctx.current_watermark() {
            return; // late: Flink's interval join drops it
        }
        for (_, bs) in st
            .right
            .range(ts.saturating_add(self.lower)..=ts.saturating_add(self.upper))
        {
            for b in bs {
                let r = guarded!(self.f.name, (self.f.f)(key, &a, b));
                ctx.emit(r);
            }
        }
        st.left.entry(ts).or_default().push(a);
        // Once the watermark passes ts + upper, no later right record can match.
        ctx.register_event_time_timer(ts.saturating_add(self.upper));
    }

    fn process_right(&mut self, key: &K, b: B, st: &mut Self::State, ctx: &mut Context<'_, R>) {
        let ts = ctx.timestamp();
        if ts <= ctx.current_watermark() {
            return;
        }
        for (_, as_) in st
            .left
            .range(ts.saturating_sub(self.upper)..=ts.saturating_sub(self.lower))
        {
            for a in as_ {
                let r = guarded!(self.f.name, (self.f.f)(key, a, &b));
                ctx.emit(r);
            }
        }
        st.right.entry(ts).or_default().push(b);
        // Once the watermark passes ts - lower, no later left record can match.
        ctx.register_event_time_timer(ts.saturating_sub(self.lower));
    }

    fn on_timer(
        &mut self,
        _key: &K,
        now: Timestamp,
        st: &mut Self::State,
        ctx: &mut Context<'_, R>,
    ) {
        // Both buffers are ordered by time: drop from the front what can no longer match
        // (O(dropped · log n), where a `retain` would visit the whole buffer at every timer).
        drop_front(&mut st.left, |t| t.saturating_add(self.upper) <= now);
        drop_front(&mut st.right, |t| t.saturating_sub(self.lower) <= now);
        if st.left.is_empty() && st.right.is_empty() {
            ctx.clear_state();
        }
    }
}

/// Removes the first entries of `buf` while `done` says so of their time.
fn drop_front<V>(buf: &mut BTreeMap<Timestamp, V>, done: impl Fn(Timestamp) -> bool) {
    while let Some(first) = buf.first_entry() {
        if !done(*first.key()) {
            break;
        }
        first.remove();
    }
}
