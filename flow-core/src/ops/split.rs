//! Side outputs from `Either` records: [`Stream::split`] turns a stream of [`Either`] into
//! the `Left` stream, still fused with the operators before it, and the `Right` stream, a
//! stream of its own fed subtask by subtask.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let (valid, invalid) = env
//!     .from_iter(["1", "x", "3"])
//!     .process(|s: &str, ctx: &mut ProcessContext<'_, Either<u32, String>>| match s.parse::<u32>() {
//!         Ok(n) => ctx.emit(Either::Left(n)),
//!         Err(_) => ctx.emit(Either::Right(format!("not a number: {s}"))),
//!     })
//!     .split();
//! let (valid, invalid) = (valid.collect(), invalid.collect());
//! env.execute()?;
//! let mut v = valid.take();
//! v.sort();
//! assert_eq!(v, vec![1, 3]);
//! assert_eq!(invalid.take(), vec!["not a number: x".to_string()]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::side_output::SideOutput;
use crate::api::exchange::side_stream;
use crate::api::stream::Stream;
use crate::graph::OpInfo;
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{
    Chain, Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then,
};
use crate::runtime::panic::OpName;
pub use either::Either;
use std::panic::Location;

/// Routes `Left` records down the chain and `Right` records to a side output.
pub struct Split<R> {
    side: SideOutput<R>,
}

impl<R> Clone for Split<R> {
    fn clone(&self) -> Self {
        Split {
            side: self.side.clone(),
        }
    }
}

impl<R> Sealed for Split<R> {}

impl<L, R> Operator<Either<L, R>> for Split<R>
where
    L: Send + 'static,
    R: Send + 'static,
{
    type Out = L;
    #[inline]
    fn on_record<D: Downstream<L>>(&mut self, item: Either<L, R>, ts: Timestamp, down: &mut D) {
        match item {
            Either::Left(l) => down.emit(l, ts),
            Either::Right(r) => self.side.emit(r, ts),
        }
    }
    fn on_event<D: Downstream<L>>(&mut self, event: Event, down: &mut D) {
        self.side.event(event);
        down.event(event)
    }
    fn open(&mut self, cx: OpenCx) {
        self.side.open(cx)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        self.side.drain(cx)
    }
}

/// A side output's stream.
pub type SideStream<R> = Stream<Identity<R>>;

impl<L, R, C> Stream<C>
where
    C: Chain<Out = Either<L, R>>,
    L: Send + 'static,
    R: Send + 'static,
{
    /// Splits a stream of `Either` into the `Left` stream (still fused with the operators
    /// before) and the `Right` stream (a side output of its own). Both must end in a sink.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let (small, big) = env
    ///     .from_iter([1, 50, 2])
    ///     .map(|x| if x < 10 { Either::Left(x) } else { Either::Right(x) })
    ///     .split();
    /// let (small, big) = (small.collect(), big.collect());
    /// env.execute()?;
    /// assert_eq!((small.take(), big.take()), (vec![1, 2], vec![50]));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn split(self) -> (Stream<Then<C, Split<R>>>, SideStream<R>) {
        let loc = Location::caller();
        let (outlets, side) = side_stream(&self, loc, "right side of split");
        let name = OpName::new("split", loc);
        let info = OpInfo::with_detail(
            &name,
            format!("right side to stage {}", side.input.slot.stage),
        );
        let main = self.then(
            info,
            Split {
                side: SideOutput::new(outlets),
            },
        );
        (main, side)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operator::Collect;

    #[test]
    fn left_records_stay_in_the_chain_and_right_ones_leave_it() {
        let mut op = Split::<u32> {
            side: SideOutput::none(),
        };
        let mut out = Collect::new();
        op.on_record(Either::<&str, u32>::Left("a"), 1, &mut out);
        op.on_record(Either::Right(7), 2, &mut out);
        op.on_record(Either::Left("b"), 3, &mut out);
        op.on_event(Event::End, &mut out);
        assert_eq!(out.0, vec![("a", 1), ("b", 3)]);
        assert_eq!(out.1, vec![Event::End]);
    }
}
