//! Side outputs: records an operator sends to a stream of their own (the right side of
//! `split`, a window's late records, a process function's [`OutputTag`]s), subtask `i`
//! feeding subtask `i` of that stream.
use crate::api::exchange::{side_stream, Outlets};
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::partition::Forward;
use crate::runtime::exchange::ExchangeWriter;
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Chain, Downstream, DrainCx, Identity, OpenCx};
use crate::runtime::stage::Terminal;
use std::any::{type_name, Any};
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// A side output of an operator. Before `open` it holds the outlets of its stream; after,
/// the subtask's writer. Without a consumer it drops what it is given.
pub(crate) struct SideOutput<T> {
    outlets: Option<Outlets<T>>,
    writer: Option<ExchangeWriter<T, Forward>>,
}

impl<T> Clone for SideOutput<T> {
    fn clone(&self) -> Self {
        SideOutput {
            outlets: self.outlets.clone(),
            writer: None,
        }
    }
}

impl<T: Send> SideOutput<T> {
    /// A side output into the stream whose producers write to `outlets`.
    pub(crate) fn new(outlets: Outlets<T>) -> Self {
        SideOutput {
            outlets: Some(outlets),
            writer: None,
        }
    }

    /// A side output that nobody consumes.
    pub(crate) fn none() -> Self {
        SideOutput {
            outlets: None,
            writer: None,
        }
    }

    /// Creates the subtask's writer.
    pub(crate) fn open(&mut self, cx: OpenCx) {
        if let Some(o) = self.outlets.take() {
            self.writer = Some(o.writer(cx.subtask, Forward(cx.subtask)));
        }
    }

    /// Sends a record, if the side output has a consumer.
    #[inline]
    pub(crate) fn emit(&mut self, item: T, ts: Timestamp) {
        if let Some(w) = self.writer.as_mut() {
            w.emit(item, ts)
        }
    }

    /// Passes a control event to the side stream.
    pub(crate) fn event(&mut self, event: Event) {
        if let Some(w) = self.writer.as_mut() {
            w.event(event)
        }
    }

    /// Sends what is buffered; `false` while some of it waits for room.
    pub(crate) fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        match self.writer.as_mut() {
            Some(w) => w.drain(cx.cx),
            None => Ok(true),
        }
    }
}

/// A typed, named side output of a process function (Flink's `OutputTag`).
///
/// A process function sends records to a tag with [`Context::output`] (keyed) or
/// [`ProcessContext::output`] (non-keyed); the stream of a tag is taken from the operator's
/// output stream with [`Stream::side_output`]. Tags are told apart by name; the record type is
/// part of the tag's type, so a record of the wrong type does not compile. Records sent to a
/// tag whose stream nobody took are dropped and counted ([`JobSummary::records_side_dropped`]).
///
/// ```
/// use flow_core::prelude::*;
///
/// let invalid = OutputTag::<String>::new("invalid");
/// let mut env = Env::new(Config::default().parallelism(2));
/// let numbers = env.from_iter(["1", "x", "3"]).process({
///     let invalid = invalid.clone();
///     move |s: &str, ctx: &mut ProcessContext<'_, u32>| match s.parse::<u32>() {
///         Ok(n) => ctx.emit(n),
///         Err(_) => ctx.output(&invalid, format!("not a number: {s}")),
///     }
/// });
/// let bad = numbers.side_output(&invalid).collect();
/// let numbers = numbers.collect();
/// env.execute()?;
/// let mut n = numbers.take();
/// n.sort();
/// assert_eq!(n, vec![1, 3]);
/// assert_eq!(bad.take(), vec!["not a number: x".to_string()]);
/// # Ok::<(), flow_core::Error>(())
/// ```
///
/// [`Context::output`]: crate::ops::process::keyed::Context::output
/// [`ProcessContext::output`]: crate::ops::process::non_keyed::ProcessContext::output
/// [`JobSummary::records_side_dropped`]: crate::JobSummary::records_side_dropped
pub struct OutputTag<T> {
    name: Arc<str>,
    _records: PhantomData<fn(T) -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag {
            name: self.name.clone(),
            _records: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag<{}>({:?})", type_name::<T>(), &*self.name)
    }
}

impl<T: Send + 'static> OutputTag<T> {
    /// A tag named `name` for records of type `T`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let tag = OutputTag::<(String, u32)>::new("too large");
    /// assert_eq!(tag.name(), "too large");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        let name: String = name.into();
        OutputTag {
            name: name.into(),
            _records: PhantomData,
        }
    }

    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The outlets of one tag's stream, with the record type erased.
trait ErasedOutlets: Send {
    fn open(&self, subtask: usize) -> Box<dyn ErasedSide>;
}

impl<T: Send + 'static> ErasedOutlets for Outlets<T> {
    fn open(&self, subtask: usize) -> Box<dyn ErasedSide> {
        Box::new(SideOutput {
            outlets: None,
            writer: Some(self.writer(subtask, Forward(subtask))),
        })
    }
}

/// One subtask's writer into a tag's stream, with the record type erased.
trait ErasedSide: Send {
    fn event(&mut self, event: Event);
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool>;
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<T: Send + 'static> ErasedSide for SideOutput<T> {
    fn event(&mut self, event: Event) {
        SideOutput::event(self, event)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        SideOutput::drain(self, cx)
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// A consumed tag: its name, its record type's name, its outlets.
type TagEntry = (Arc<str>, &'static str, Box<dyn ErasedOutlets>);

/// The tags of one operator that have consumers, filled in by [`Stream::side_output`] while
/// the job is built and read by each subtask's `open`. The graph keeps it under the
/// operator's (stage, index), type-erased.
#[derive(Clone, Default)]
pub(crate) struct TagRegistry(Arc<Mutex<Vec<TagEntry>>>);

impl TagRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TagEntry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tagged side outputs of an operator. Before `open` it holds the registry of the tags
/// that have consumers; after, the subtask's writer of each.
pub(crate) struct TaggedOutputs {
    registry: TagRegistry,
    metrics: Arc<StageMetrics>,
    /// (tag name, record type name, writer), looked up by name per record.
    sides: Vec<(Arc<str>, &'static str, Box<dyn ErasedSide>)>,
    /// Records sent to tags without consumer, not yet added to the stage's counter.
    dropped: u64,
}

impl Clone for TaggedOutputs {
    fn clone(&self) -> Self {
        TaggedOutputs {
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            sides: Vec::new(),
            dropped: 0,
        }
    }
}

impl TaggedOutputs {
    /// Side outputs of an operator no stream can take tags from (tests, `connect`).
    pub(crate) fn none() -> Self {
        TaggedOutputs {
            registry: TagRegistry::default(),
            metrics: Arc::default(),
            sides: Vec::new(),
            dropped: 0,
        }
    }

    /// The side outputs of the operator about to be fused after `stream`'s chain: registers
    /// the operator in the graph so that [`Stream::side_output`] finds it.
    pub(crate) fn for_next_operator<C: Chain>(stream: &Stream<C>) -> Self {
        let registry = TagRegistry::default();
        let at = (stream.input.slot.stage, stream.ops.len());
        stream
            .g
            .borrow_mut()
            .side_tags
            .insert(at, Box::new(registry.clone()));
        TaggedOutputs {
            registry,
            metrics: stream.input.slot.metrics.clone(),
            sides: Vec::new(),
            dropped: 0,
        }
    }

    /// Creates the subtask's writer of every consumed tag.
    pub(crate) fn open(&mut self, cx: OpenCx) {
        self.sides = self
            .registry
            .lock()
            .iter()
            .map(|(name, ty, outlets)| (name.clone(), *ty, outlets.open(cx.subtask)))
            .collect();
    }

    /// Sends a record to `tag`'s stream, or counts it as dropped if nobody consumes it.
    #[inline]
    pub(crate) fn emit<T: Send + 'static>(&mut self, tag: &OutputTag<T>, item: T, ts: Timestamp) {
        let side = self
            .sides
            .iter_mut()
            .find(|(name, _, _)| Arc::ptr_eq(name, &tag.name) || **name == *tag.name);
        match side {
            Some((name, ty, side)) => match side.as_any().downcast_mut::<SideOutput<T>>() {
                Some(side) => side.emit(item, ts),
                None => panic!(
                    "side output `{name}` is consumed as a stream of `{ty}` but was sent a `{}`",
                    type_name::<T>()
                ),
            },
            None => self.dropped += 1,
        }
    }

    /// Passes a control event to every tag's stream.
    pub(crate) fn event(&mut self, event: Event) {
        self.flush_dropped();
        for (_, _, side) in &mut self.sides {
            side.event(event);
        }
    }

    /// Sends what is buffered; `false` while some of it waits for room.
    pub(crate) fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        self.flush_dropped();
        let mut done = true;
        for (_, _, side) in &mut self.sides {
            done &= side.drain(cx)?;
        }
        Ok(done)
    }

    /// The side outputs for a window function firing a window whose results carry `ts`.
    pub(crate) fn at(&mut self, ts: Timestamp) -> SideOutputs<'_> {
        SideOutputs { outputs: self, ts }
    }

    fn flush_dropped(&mut self) {
        if self.dropped > 0 {
            self.metrics
                .side_dropped
                .fetch_add(std::mem::take(&mut self.dropped), Ordering::Relaxed);
        }
    }
}

/// The tagged side outputs of a window operator while a window fires, at the timestamp of
/// the window's results: what [`WindowFn::fire_with_outputs`] gets.
///
/// [`WindowFn::fire_with_outputs`]: crate::ops::window::WindowFn::fire_with_outputs
pub struct SideOutputs<'a> {
    pub(crate) outputs: &'a mut TaggedOutputs,
    pub(crate) ts: Timestamp,
}

impl SideOutputs<'_> {
    /// Sends a record to the side output `tag` (dropped and counted without a consumer).
    pub fn output<X: Send + 'static>(&mut self, tag: &OutputTag<X>, item: X) {
        self.outputs.emit(tag, item, self.ts)
    }
}

impl<C: Chain> Stream<C> {
    /// The stream of the records that the operator before it (a keyed or non-keyed process
    /// function, a `co_process`, a window function) sends to `tag` (Flink's `getSideOutput`). Subtask `i` of the operator feeds
    /// subtask `i` of the side stream; the stream must end in a sink, as every stream.
    ///
    /// Take each tag's stream once per operator, before the operator's stream itself is
    /// consumed. Asking for a tag of an operator without tagged outputs (say after a `map`)
    /// makes `execute` fail.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// #[derive(Clone)]
    /// struct Sorter { odd: OutputTag<u32>, big: OutputTag<String> }
    /// impl KeyedProcessFunction<bool, u32> for Sorter {
    ///     type State = ();
    ///     type Out = u32;
    ///     fn process_element(&mut self, _: &bool, n: u32, _: &mut (),
    ///                        ctx: &mut Context<'_, u32>) {
    ///         if n >= 100 {
    ///             ctx.output(&self.big, format!("{n} is big"));
    ///         } else if n % 2 == 1 {
    ///             ctx.output(&self.odd, n);
    ///         } else {
    ///             ctx.emit(n);
    ///         }
    ///     }
    /// }
    /// let (odd, big) = (OutputTag::<u32>::new("odd"), OutputTag::<String>::new("big"));
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let even = env
    ///     .from_iter([1, 2, 3, 200])
    ///     .key_by(|n| n % 2 == 0)
    ///     .process(Sorter { odd: odd.clone(), big: big.clone() });
    /// let (odd, big) = (even.side_output(&odd).collect(), even.side_output(&big).collect());
    /// let even = even.collect();
    /// env.execute()?;
    /// let mut o = odd.take();
    /// o.sort();
    /// assert_eq!((even.take(), o, big.take()), (vec![2], vec![1, 3], vec!["200 is big".into()]));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn side_output<T: Send + 'static>(&self, tag: &OutputTag<T>) -> Stream<Identity<T>> {
        let loc = Location::caller();
        let what = format!("side output `{}`", tag.name());
        let (outlets, side) = side_stream::<C, T>(self, loc, &what);
        let stage = self.input.slot.stage;
        let mut g = self.g.borrow_mut();
        let registry = self
            .ops
            .len()
            .checked_sub(1)
            .and_then(|i| g.side_tags.get(&(stage, i)))
            .and_then(|r| r.downcast_ref::<TagRegistry>())
            .cloned();
        let error = match registry {
            None => Some(format!(
                "side_output(`{}`) at {}:{}: the operator before it has no tagged side outputs \
                 (only process functions have; take the side output right after `process`)",
                tag.name(),
                loc.file(),
                loc.line()
            )),
            Some(registry) => {
                let mut tags = registry.lock();
                if tags.iter().any(|(name, _, _)| **name == *tag.name) {
                    Some(format!(
                        "side_output(`{}`) at {}:{}: the tag's stream was already taken from \
                         this operator",
                        tag.name(),
                        loc.file(),
                        loc.line()
                    ))
                } else {
                    tags.push((tag.name.clone(), type_name::<T>(), Box::new(outlets)));
                    None
                }
            }
        };
        if let Some(e) = error {
            g.deferred_error.get_or_insert(Error::Config(e));
        }
        side
    }
}
