//! The one operator abstraction: an [`Operator`] turns records and control events into output
//! for a [`Downstream`]; [`Then`] appends an operator to a [`Chain`], so the operators between
//! two exchanges compose at compile time into one value whose type names every closure:
//! `Then<Then<Identity<String>, Map<F1>>, Filter<F2>>`. A record is pushed through the whole
//! chain by direct, inlinable calls — no channel, virtual call or allocation per record. The
//! only dynamic dispatch happens once per *batch*, where the runtime hands a batch from a
//! source or an exchange to the chain.
//!
//! A chain is a *transducer*: it is generic over the [`Downstream`] it pushes into, so the
//! same chain can end in an exchange, a pre-aggregating exchange or a sink.
//!
//! Every operator of flow — stateless functions, timestamp assignment, keyed aggregates,
//! windows, process functions, joins, side outputs — is an [`Operator`]; the chain plumbing
//! (opening, draining side outputs, passing events on) is written once, here. Operators that
//! keep keyed state will also snapshot and restore it, per key group, through this trait when
//! checkpoints arrive, so that is written once for all of them too.
use super::snapshot::{RestoreCx, SnapshotCx, StateSupport};
use super::task::TaskCx;
use crate::error::Result;
use crate::record::{Event, Timestamp};
use std::marker::PhantomData;
use std::time::Instant;

/// Where an operator pushes its output: the next operator, an exchange or a sink.
pub trait Downstream<T> {
    /// Accepts one record with its event timestamp ([`crate::record::NO_TIMESTAMP`] if none).
    fn emit(&mut self, item: T, ts: Timestamp);
    /// Accepts a control event (watermark, flush, end of input).
    fn event(&mut self, event: Event);
}

mod sealed {
    /// Only flow's own chains and operators implement [`super::Chain`] and [`super::Operator`]:
    /// the runtime relies on how they pass events on.
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// What an operator may do while the runtime drains its side outputs
/// ([`Operator::drain`]).
pub struct DrainCx<'a, 'b> {
    pub(crate) cx: &'a TaskCx<'b>,
    wake: std::cell::Cell<Option<Instant>>,
}

impl<'a, 'b> DrainCx<'a, 'b> {
    pub(crate) fn new(cx: &'a TaskCx<'b>) -> Self {
        DrainCx {
            cx,
            wake: std::cell::Cell::new(None),
        }
    }

    /// The earliest wake-up asked for.
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.wake.get()
    }

    /// Asks for an [`Event::ProcessingTime`] at or soon after `at` (processing-time timers,
    /// idleness). The earliest request of all operators of the stage counts.
    pub fn wake_at(&self, at: Instant) {
        if self.wake.get().is_none_or(|w| at < w) {
            self.wake.set(Some(at));
        }
    }
}

/// Where a subtask sits in its stage, handed to [`Operator::open`].
#[derive(Clone, Debug)]
pub struct OpenCx {
    /// This subtask's index, `0..parallelism`.
    pub subtask: usize,
    /// The number of subtasks of the stage.
    pub parallelism: usize,
    /// Whether the job persists checkpoints: stateful operators then track what changed.
    pub checkpoints: bool,
    /// The job's keyed-state memory budget, which keyed tables that can spill keep within.
    pub(crate) memory: Option<std::sync::Arc<super::state_memory::StateMemory>>,
    /// The state TTL of each operator of the chain ([`crate::Stream::state_ttl`]).
    pub(crate) ttls: Option<std::sync::Arc<[Option<std::time::Duration>]>>,
    /// The position of the operator being opened in its chain.
    pub(crate) op: usize,
}

impl OpenCx {
    /// The state TTL the job set on the operator being opened.
    pub(crate) fn state_ttl(&self) -> Option<std::time::Duration> {
        self.ttls
            .as_ref()
            .and_then(|t| t.get(self.op).copied().flatten())
    }
}

/// One fused operator of a chain, consuming records of type `In`.
///
/// An operator sees every record ([`Operator::on_record`]) and every control event
/// ([`Operator::on_event`]: watermarks, idleness, flushes, the end of input, processing-time
/// wake-ups) of its subtask in order, and pushes its output into `down`. It must pass every
/// event on (after acting on it), except events it replaces: the timestamp assigner replaces
/// upstream watermarks by its own.
///
/// Every subtask runs its own clone of the operator, cloned before [`Operator::open`]; state
/// built before `open` is the operator's configuration, state built after it is the
/// subtask's.
pub trait Operator<In>: Sealed + Clone + Send + 'static {
    /// The records the operator produces.
    type Out: Send + 'static;

    /// Processes one record with its event timestamp.
    fn on_record<D: Downstream<Self::Out>>(&mut self, item: In, ts: Timestamp, down: &mut D);

    /// Acts on a control event and passes it on. The default only passes it on.
    #[inline]
    fn on_event<D: Downstream<Self::Out>>(&mut self, event: Event, down: &mut D) {
        down.event(event)
    }

    /// Called once per subtask before any record.
    fn open(&mut self, _cx: OpenCx) {}

    /// Passes on output the operator sends elsewhere than down the chain (side outputs) and
    /// asks for processing-time wake-ups. Returns `false` while some of it waits for room.
    fn drain(&mut self, _cx: &DrainCx<'_, '_>) -> Result<bool> {
        Ok(true)
    }

    /// What state the operator keeps, and whether it can checkpoint it.
    #[doc(hidden)]
    fn state(&self) -> StateSupport {
        StateSupport::Stateless
    }

    /// The name of the operator's keyed state that can expire after a
    /// [`crate::Stream::state_ttl`] (`None`: it keeps no such state). With a TTL, that state's
    /// checkpointed entries carry their write times, and its declared types say so.
    #[doc(hidden)]
    fn ttl_state(&self) -> Option<&'static str> {
        None
    }

    /// Writes what changed in the operator's state since the last checkpoint. Called when
    /// checkpoint barrier `cx.checkpoint()` has passed through the whole chain, so the state
    /// reflects exactly the records before the barrier.
    #[doc(hidden)]
    fn snapshot(&mut self, _cx: &mut SnapshotCx<'_>) -> Result<()> {
        Ok(())
    }

    /// Loads the operator's state from a checkpoint, after [`Operator::open`] and before any
    /// record.
    #[doc(hidden)]
    fn restore(&mut self, _cx: &RestoreCx<'_>) -> Result<()> {
        Ok(())
    }

    /// Entries of keyed state the operator holds in memory now (keys, or key-window pairs),
    /// for the metrics; cheap to call.
    #[doc(hidden)]
    fn state_entries(&self) -> u64 {
        0
    }

    /// Whether the operator is still loading restored state in the background (a lazy
    /// restore), for the metrics.
    #[doc(hidden)]
    fn restoring(&self) -> bool {
        false
    }
}

/// A fused chain of operators from records of type `In` to records of type `Out`: an
/// [`Identity`] followed by operators appended with [`Then`]. Sealed: build chains with the
/// methods of [`crate::Stream`].
pub trait Chain: Sealed + Clone + Send + 'static {
    /// Records the chain consumes.
    type In: Send + 'static;
    /// Records the chain produces.
    type Out: Send + 'static;
    /// Pushes one record through the chain into `down`.
    fn push<D: Downstream<Self::Out>>(&mut self, item: Self::In, ts: Timestamp, down: &mut D);
    /// Passes a control event through the chain (stateful operators act on it first).
    fn event<D: Downstream<Self::Out>>(&mut self, event: Event, down: &mut D);
    /// Called once per subtask before any record.
    fn open(&mut self, cx: OpenCx);
    /// Drains every operator's side outputs; `false` while some output waits for room.
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool>;
    /// The number of operators in the chain.
    #[doc(hidden)]
    const OPS: usize;
    /// The state of every operator, in chain order.
    #[doc(hidden)]
    fn states(&self, out: &mut Vec<StateSupport>);
    /// Whether each operator supports a state TTL, in chain order.
    #[doc(hidden)]
    fn ttl_capable(&self, out: &mut Vec<Option<&'static str>>);
    /// Snapshots every operator's state (`cx.op` counts the operators).
    #[doc(hidden)]
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> Result<()>;
    /// Restores every operator's state (`cx.op` counts the operators).
    #[doc(hidden)]
    fn restore(&mut self, cx: &mut RestoreCx<'_>) -> Result<()>;
    /// Entries of keyed state the chain's operators hold in memory.
    #[doc(hidden)]
    fn state_entries(&self) -> u64;
    /// Whether an operator is still loading restored state in the background.
    #[doc(hidden)]
    fn restoring(&self) -> bool;
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

impl<T> Sealed for Identity<T> {}

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
    const OPS: usize = 0;
    fn open(&mut self, _cx: OpenCx) {}
    fn drain(&mut self, _cx: &DrainCx<'_, '_>) -> Result<bool> {
        Ok(true)
    }
    fn states(&self, _out: &mut Vec<StateSupport>) {}
    fn ttl_capable(&self, _out: &mut Vec<Option<&'static str>>) {}
    fn snapshot(&mut self, _cx: &mut SnapshotCx<'_>) -> Result<()> {
        Ok(())
    }
    fn restore(&mut self, _cx: &mut RestoreCx<'_>) -> Result<()> {
        Ok(())
    }
    fn state_entries(&self) -> u64 {
        0
    }
    fn restoring(&self) -> bool {
        false
    }
}

/// A chain followed by one more operator: the only way chains grow.
#[derive(Clone)]
pub struct Then<C, O> {
    inner: C,
    op: O,
}

impl<C, O> Then<C, O> {
    pub(crate) fn new(inner: C, op: O) -> Self {
        Then { inner, op }
    }
}

impl<C, O> Sealed for Then<C, O> {}

/// The operator seen by the chain before it, as that chain's downstream.
pub struct Fused<'a, O, D> {
    op: &'a mut O,
    down: &'a mut D,
}

impl<In, O: Operator<In>, D: Downstream<O::Out>> Downstream<In> for Fused<'_, O, D> {
    #[inline(always)]
    fn emit(&mut self, item: In, ts: Timestamp) {
        self.op.on_record(item, ts, self.down)
    }
    #[inline]
    fn event(&mut self, event: Event) {
        self.op.on_event(event, self.down)
    }
}

impl<C: Chain, O: Operator<C::Out>> Chain for Then<C, O> {
    type In = C::In;
    type Out = O::Out;
    #[inline(always)]
    fn push<D: Downstream<O::Out>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        self.inner.push(
            item,
            ts,
            &mut Fused {
                op: &mut self.op,
                down,
            },
        )
    }
    #[inline]
    fn event<D: Downstream<O::Out>>(&mut self, event: Event, down: &mut D) {
        self.inner.event(
            event,
            &mut Fused {
                op: &mut self.op,
                down,
            },
        )
    }
    const OPS: usize = C::OPS + 1;
    fn open(&mut self, cx: OpenCx) {
        let mut own = cx.clone();
        own.op = C::OPS;
        self.inner.open(cx);
        self.op.open(own);
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        let inner = self.inner.drain(cx)?;
        let own = self.op.drain(cx)?;
        Ok(inner && own)
    }
    fn states(&self, out: &mut Vec<StateSupport>) {
        self.inner.states(out);
        out.push(self.op.state());
    }
    fn ttl_capable(&self, out: &mut Vec<Option<&'static str>>) {
        self.inner.ttl_capable(out);
        out.push(self.op.ttl_state());
    }
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> Result<()> {
        self.inner.snapshot(cx)?;
        self.op.snapshot(cx)?;
        cx.op += 1;
        Ok(())
    }
    fn restore(&mut self, cx: &mut RestoreCx<'_>) -> Result<()> {
        self.inner.restore(cx)?;
        self.op.restore(cx)?;
        cx.op += 1;
        Ok(())
    }
    fn state_entries(&self) -> u64 {
        self.inner.state_entries() + self.op.state_entries()
    }
    fn restoring(&self) -> bool {
        self.inner.restoring() || self.op.restoring()
    }
}

/// A downstream that keeps what it is given, for operators' unit tests.
#[cfg(test)]
pub(crate) struct Collect<T>(pub(crate) Vec<(T, Timestamp)>, pub(crate) Vec<Event>);

#[cfg(test)]
impl<T> Collect<T> {
    pub(crate) fn new() -> Self {
        Collect(Vec::new(), Vec::new())
    }
}

#[cfg(test)]
impl<T> Downstream<T> for Collect<T> {
    fn emit(&mut self, item: T, ts: Timestamp) {
        self.0.push((item, ts))
    }
    fn event(&mut self, event: Event) {
        self.1.push(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds `self.0` to each record and counts the events it saw.
    #[derive(Clone)]
    struct Add(i64, usize);
    impl Sealed for Add {}
    impl Operator<i64> for Add {
        type Out = i64;
        fn on_record<D: Downstream<i64>>(&mut self, item: i64, ts: Timestamp, down: &mut D) {
            down.emit(item + self.0, ts)
        }
        fn on_event<D: Downstream<i64>>(&mut self, event: Event, down: &mut D) {
            self.1 += 1;
            down.event(event)
        }
    }

    #[test]
    fn operators_run_in_the_order_they_were_appended() {
        let c = Then::new(Identity::<i64>::new(), Add(1, 0));
        let mut c = Then::new(c, Add(10, 0));
        let mut out = Collect::new();
        c.push(5, 7, &mut out);
        c.event(Event::Watermark(3), &mut out);
        assert_eq!(out.0, vec![(16, 7)]);
        assert_eq!(out.1, vec![Event::Watermark(3)]);
        assert_eq!((c.inner.op.1, c.op.1), (1, 1));
    }
}
