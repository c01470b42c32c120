//! Process functions on non-keyed streams: any number of outputs per record, with the
//! record's timestamp and the current watermark; fused with the operators around them.
use crate::api::stream::Stream;
use crate::graph::OpInfo;
use crate::ops::side_output::{OutputTag, TaggedOutputs};
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{Chain, Downstream, DrainCx, OpenCx, Operator, Sealed, Then};
use crate::runtime::panic::{OpName, PanicGuard};
use std::panic::Location;

/// What a non-keyed process function can do besides emitting.
pub struct ProcessContext<'a, O> {
    timestamp: Timestamp,
    watermark: Timestamp,
    out: &'a mut Vec<O>,
    side: &'a mut TaggedOutputs,
}

impl<'a, O> ProcessContext<'a, O> {
    pub(crate) fn new(
        timestamp: Timestamp,
        watermark: Timestamp,
        out: &'a mut Vec<O>,
        side: &'a mut TaggedOutputs,
    ) -> Self {
        ProcessContext {
            timestamp,
            watermark,
            out,
            side,
        }
    }

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
    /// Sends a record (with the current record's timestamp) to the side output `tag`, whose
    /// stream is taken with [`Stream::side_output`] from the operator's stream. Without a
    /// consumer the record is dropped and counted in the job summary.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let negative = OutputTag::<i32>::new("negative");
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let tag = negative.clone();
    /// let positive = env.from_iter([3, -1, 4, -5]).process(
    ///     move |n: i32, ctx: &mut ProcessContext<'_, u32>| match u32::try_from(n) {
    ///         Ok(p) => ctx.emit(p),
    ///         Err(_) => ctx.output(&tag, n),
    ///     },
    /// );
    /// let negative = positive.side_output(&negative).collect();
    /// let positive = positive.collect();
    /// env.execute()?;
    /// assert_eq!((positive.take(), negative.take()), (vec![3, 4], vec![-1, -5]));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn output<X: Send + 'static>(&mut self, tag: &OutputTag<X>, item: X) {
        self.side.emit(tag, item, self.timestamp)
    }
}

/// The operator of a non-keyed process function.
pub struct Process<F, O> {
    f: F,
    name: OpName,
    watermark: Timestamp,
    buf: Vec<O>,
    side: TaggedOutputs,
}

impl<F: Clone, O> Clone for Process<F, O> {
    fn clone(&self) -> Self {
        Process {
            f: self.f.clone(),
            name: self.name.clone(),
            watermark: Timestamp::MIN,
            buf: Vec::new(),
            side: self.side.clone(),
        }
    }
}

impl<F, O> Sealed for Process<F, O> {}

impl<T, F, O> Operator<T> for Process<F, O>
where
    F: for<'x> FnMut(T, &mut ProcessContext<'x, O>) + Clone + Send + 'static,
    O: Send + 'static,
{
    type Out = O;
    #[inline]
    fn on_record<D: Downstream<O>>(&mut self, item: T, ts: Timestamp, down: &mut D) {
        let mut ctx = ProcessContext {
            timestamp: ts,
            watermark: self.watermark,
            out: &mut self.buf,
            side: &mut self.side,
        };
        let guard = PanicGuard(&self.name);
        (self.f)(item, &mut ctx);
        std::mem::forget(guard);
        for o in self.buf.drain(..) {
            down.emit(o, ts);
        }
    }
    fn on_event<D: Downstream<O>>(&mut self, event: Event, down: &mut D) {
        if let Event::Watermark(w) = event {
            self.watermark = self.watermark.max(w);
        }
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

impl<C: Chain> Stream<C> {
    /// A process function on a non-keyed stream: any number of outputs per record, with the
    /// record's timestamp and the current watermark (no keyed state or timers: use
    /// `key_by(..).process(..)` for those). Fused with the operators around it.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env
    ///     .from_iter([2, 3])
    ///     .process(|n: u32, ctx: &mut ProcessContext<'_, u32>| {
    ///         for i in 0..n {
    ///             ctx.emit(i);
    ///         }
    ///     })
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![0, 1, 0, 1, 2]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process<F, O>(self, f: F) -> Stream<Then<C, Process<F, O>>>
    where
        F: for<'x> FnMut(C::Out, &mut ProcessContext<'x, O>) + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("process", Location::caller());
        let side = TaggedOutputs::for_next_operator(&self);
        self.then(
            OpInfo::new(&name),
            Process {
                f,
                name,
                watermark: Timestamp::MIN,
                buf: Vec::new(),
                side,
            },
        )
    }
}
