//! Side outputs and non-keyed process functions.
//!
//! A process function emits `Either::Left` for its main output and `Either::Right` for a side
//! output; [`Stream::split`] turns such a stream into two. The main output stays fused with
//! the operators before it; the side output is a stream of its own, fed subtask by subtask.
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
use crate::chain::{Chain, Downstream, DrainCx, OpName, PanicGuard};
use crate::join::Either;
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::{ChannelOut, ExchangeWriter, Forward};
use crate::runtime::stage::Terminal;
use crate::stream::Stream;
use std::marker::PhantomData;
use std::panic::Location;

/// Routes `Left` records down the chain and `Right` records to a side stream.
pub struct SplitOp<C, L, R: Send> {
    pub(crate) inner: C,
    pub(crate) outs: Option<Vec<ChannelOut<R>>>,
    pub(crate) side: Option<ExchangeWriter<R, Forward>>,
    pub(crate) batch_size: usize,
    pub(crate) _p: PhantomData<fn(L)>,
}

impl<C: Clone, L, R: Send> Clone for SplitOp<C, L, R> {
    fn clone(&self) -> Self {
        SplitOp {
            inner: self.inner.clone(),
            outs: self.outs.clone(),
            side: None,
            batch_size: self.batch_size,
            _p: PhantomData,
        }
    }
}

#[doc(hidden)]
pub struct SplitAdapter<'a, R: Send, D> {
    side: Option<&'a mut ExchangeWriter<R, Forward>>,
    down: &'a mut D,
}

impl<C, L, R> Chain for SplitOp<C, L, R>
where
    C: Chain<Out = Either<L, R>>,
    L: Send + 'static,
    R: Send + 'static,
{
    type In = C::In;
    type Out = L;
    #[inline]
    fn push<D: Downstream<L>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = SplitAdapter {
            side: self.side.as_mut(),
            down,
        };
        self.inner.push(item, ts, &mut a)
    }
    fn event<D: Downstream<L>>(&mut self, event: Event, down: &mut D) {
        let mut a = SplitAdapter {
            side: self.side.as_mut(),
            down,
        };
        self.inner.event(event, &mut a)
    }
    fn open(&mut self, subtask: usize, parallelism: usize) {
        if let Some(outs) = self.outs.take() {
            self.side = Some(ExchangeWriter::new(
                subtask,
                outs,
                Forward(subtask),
                self.batch_size,
            ));
        }
        self.inner.open(subtask, parallelism)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        let inner = self.inner.drain(cx)?;
        let side = match self.side.as_mut() {
            Some(w) => w.drain(cx.cx)?,
            None => true,
        };
        Ok(inner && side)
    }
}

impl<L, R: Send, D: Downstream<L>> Downstream<Either<L, R>> for SplitAdapter<'_, R, D> {
    #[inline]
    fn emit(&mut self, item: Either<L, R>, ts: Timestamp) {
        match item {
            Either::Left(l) => self.down.emit(l, ts),
            Either::Right(r) => {
                if let Some(side) = self.side.as_deref_mut() {
                    side.emit(r, ts)
                }
            }
        }
    }
    fn event(&mut self, event: Event) {
        if let Some(side) = self.side.as_deref_mut() {
            side.event(event);
        }
        self.down.event(event)
    }
}

impl<L, R, C> Stream<C>
where
    C: Chain<Out = Either<L, R>>,
    L: Send + 'static,
    R: Send + 'static,
{
    /// Splits a stream of `Either` into the `Left` stream (still fused with the operators
    /// before) and the `Right` stream (a side output of its own). Both must end in a sink.
    #[track_caller]
    pub fn split(self) -> (Stream<SplitOp<C, L, R>>, SideStream<R>) {
        let loc = Location::caller();
        let (outs, side) = crate::windowed::side_stream(&self, loc, "side output");
        let batch_size = self.g.borrow().config.batch_size;
        let name = format!("split (side output to stage {})", side.input.slot.stage);
        let main = self.then(name, move |inner| SplitOp {
            inner,
            outs: Some(outs),
            side: None,
            batch_size,
            _p: PhantomData,
        });
        (main, side)
    }
}

/// A side output's stream.
pub type SideStream<R> = Stream<crate::chain::Identity<R>>;

/// What a non-keyed process function can do besides emitting.
pub struct ProcessContext<'a, O> {
    timestamp: Timestamp,
    watermark: Timestamp,
    out: &'a mut Vec<O>,
}

impl<O> ProcessContext<'_, O> {
    /// The timestamp of the current record.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }
    /// Emits a record with the current record's timestamp.
    pub fn emit(&mut self, item: O) {
        self.out.push(item)
    }
}

/// A non-keyed process function, fused with the operators around it.
pub struct ProcessFn<C, F, O> {
    pub(crate) inner: C,
    pub(crate) f: F,
    pub(crate) name: OpName,
    pub(crate) watermark: Timestamp,
    pub(crate) buf: Vec<O>,
}

impl<C: Clone, F: Clone, O> Clone for ProcessFn<C, F, O> {
    fn clone(&self) -> Self {
        ProcessFn {
            inner: self.inner.clone(),
            f: self.f.clone(),
            name: self.name.clone(),
            watermark: Timestamp::MIN,
            buf: Vec::new(),
        }
    }
}

#[doc(hidden)]
pub struct ProcessFnAdapter<'a, F, O, D> {
    f: &'a mut F,
    name: &'a OpName,
    watermark: &'a mut Timestamp,
    buf: &'a mut Vec<O>,
    down: &'a mut D,
}

impl<C, F, O> Chain for ProcessFn<C, F, O>
where
    C: Chain,
    F: for<'x> FnMut(C::Out, &mut ProcessContext<'x, O>) + Clone + Send + 'static,
    O: Send + 'static,
{
    type In = C::In;
    type Out = O;
    #[inline]
    fn push<D: Downstream<O>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = ProcessFnAdapter {
            f: &mut self.f,
            name: &self.name,
            watermark: &mut self.watermark,
            buf: &mut self.buf,
            down,
        };
        self.inner.push(item, ts, &mut a)
    }
    fn event<D: Downstream<O>>(&mut self, event: Event, down: &mut D) {
        let mut a = ProcessFnAdapter {
            f: &mut self.f,
            name: &self.name,
            watermark: &mut self.watermark,
            buf: &mut self.buf,
            down,
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

impl<T, F, O, D> Downstream<T> for ProcessFnAdapter<'_, F, O, D>
where
    F: for<'x> FnMut(T, &mut ProcessContext<'x, O>),
    D: Downstream<O>,
{
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        let mut ctx = ProcessContext {
            timestamp: ts,
            watermark: *self.watermark,
            out: &mut *self.buf,
        };
        let guard = PanicGuard(self.name);
        (self.f)(item, &mut ctx);
        std::mem::forget(guard);
        for o in self.buf.drain(..) {
            self.down.emit(o, ts);
        }
    }
    fn event(&mut self, event: Event) {
        if let Event::Watermark(w) = event {
            *self.watermark = (*self.watermark).max(w);
        }
        self.down.event(event)
    }
}

impl<C: Chain> Stream<C> {
    /// A process function on a non-keyed stream: any number of outputs per record, with the
    /// record's timestamp and the current watermark (no keyed state or timers: use
    /// `key_by(..).process(..)` for those). Fused with the operators around it.
    #[track_caller]
    pub fn process<F, O>(self, f: F) -> Stream<ProcessFn<C, F, O>>
    where
        F: for<'x> FnMut(C::Out, &mut ProcessContext<'x, O>) + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("process", Location::caller());
        self.then(name.as_str().to_string(), move |inner| ProcessFn {
            inner,
            f,
            name,
            watermark: Timestamp::MIN,
            buf: Vec::new(),
        })
    }
}
