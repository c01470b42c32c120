//! Async I/O (Flink's `AsyncDataStream.orderedWait` / `unorderedWait`): [`Stream::map_async`]
//! calls an async function per record, with a bounded number of requests in flight and a
//! timeout, on a tokio runtime of the operator's own (never on a worker of the pool).
//!
//! `map_async` ends the stage: its terminal submits one future per record into a queue shared
//! with subtask `i` of the next stage (same parallelism, subtask `i` feeds subtask `i`), whose
//! input yields the completed results. The queue holds requests and control events in arrival
//! order:
//! - *ordered*: results leave in input order;
//! - *unordered*: results leave as they complete, but never across a watermark, a checkpoint
//!   barrier or the end of input: such an event leaves only after every result before it, and
//!   no result after it leaves before it (as in Flink).
//!
//! The queue holds at most `capacity` requests (in flight or completed and not yet taken); when
//! it is full the producing stage stops reading its input (backpressure) until the next stage
//! takes a result. A request that outlives the timeout fails the job with
//! [`Error::AsyncTimeout`] naming the operator.
//!
//! Checkpoints: a barrier sits in the queue between the requests before and after it, so the
//! requests in flight when a barrier passes the terminal are exactly the queue's entries before
//! it; snapshotting them (Flink keeps the input records of in-flight requests and replays them
//! on restore) needs only the records kept next to their entries. Not done yet: flow does not
//! snapshot operator state.
//!
//! The runtime (1 worker thread by default, [`AsyncOptions::worker_threads`]) is created when
//! the first request is submitted and shut down, without blocking, when the last subtask of
//! the operator is dropped: at the end of the job, or when it fails.
use crate::api::exchange::Exchange;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::graph::plan::Partitioning;
use crate::graph::Ending;
use crate::record::{Batch, Event, Timestamp};
use crate::runtime::operator::{Chain, Downstream, Identity};
use crate::runtime::panic::{OpName, PanicGuard};
use crate::runtime::stage::{Input, Poll, Terminal};
use crate::runtime::task::{JobShared, TaskCx, TaskId};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// How [`Stream::map_async`] runs its requests: result order, the most requests in flight per
/// subtask, and how long one may take.
///
/// ```
/// use flow_core::prelude::*;
/// use std::time::Duration;
///
/// let opts = AsyncOptions::unordered(100, Duration::from_secs(5)).worker_threads(2);
/// assert_eq!(opts.capacity(), 100);
/// assert!(!opts.is_ordered());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncOptions {
    ordered: bool,
    capacity: usize,
    timeout: Duration,
    threads: usize,
}

impl AsyncOptions {
    /// Results in input order (Flink's `orderedWait`); at most `capacity` (at least 1)
    /// requests per subtask in flight or waiting to be passed on; each must complete within
    /// `timeout`, or the job fails.
    pub fn ordered(capacity: usize, timeout: Duration) -> Self {
        AsyncOptions {
            ordered: true,
            capacity: capacity.max(1),
            timeout,
            threads: 1,
        }
    }

    /// Results as they complete (Flink's `unorderedWait`), reordered only between two
    /// watermarks, checkpoint barriers or the end of input; otherwise as [`Self::ordered`].
    pub fn unordered(capacity: usize, timeout: Duration) -> Self {
        AsyncOptions {
            ordered: false,
            ..Self::ordered(capacity, timeout)
        }
    }

    /// The number of worker threads of the operator's tokio runtime (default 1, at least 1).
    pub fn worker_threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// The most requests per subtask in flight or waiting to be passed on.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether results keep the input order.
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// How long a request may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// The operator's tokio runtime, built on first use and shut down without blocking when the
/// last subtask (terminal or input) holding it is dropped.
struct AsyncRuntime {
    threads: usize,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
}

impl AsyncRuntime {
    fn handle(&self) -> Result<tokio::runtime::Handle> {
        let mut rt = self.rt.lock();
        if let Some(rt) = rt.as_ref() {
            return Ok(rt.handle().clone());
        }
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads)
            .thread_name("flow-async-io")
            .enable_time()
            .build()
            .map_err(|source| Error::Spawn {
                what: "async I/O runtime",
                source,
            })?;
        let h = built.handle().clone();
        *rt = Some(built);
        Ok(h)
    }
}

impl Drop for AsyncRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.get_mut().take() {
            rt.shutdown_background();
        }
    }
}

/// An entry of a subtask's queue.
enum Entry<O> {
    /// A request in flight, with its record's timestamp.
    Waiting(Timestamp),
    /// A completed request's result.
    Done(O, Timestamp),
    /// A result already passed on (unordered mode), popped once it reaches the front.
    Taken,
    /// A watermark, idleness, barrier or the end of input.
    Event(Event),
}

/// What producer subtask `i` and consumer subtask `i` share.
struct Queue<O> {
    entries: VecDeque<Entry<O>>,
    /// The sequence number of `entries[0]`; a request's number never changes.
    base: u64,
    /// Entries that are `Waiting` or `Done`.
    records: usize,
    /// The first failure of a request (timeout, panic).
    error: Option<Error>,
    job: Option<Arc<JobShared>>,
    consumer: Option<TaskId>,
    /// The producer, while it waits for room.
    producer: Option<TaskId>,
}

type Shared<O> = Arc<Mutex<Queue<O>>>;

impl<O> Queue<O> {
    fn new() -> Self {
        Queue {
            entries: VecDeque::new(),
            base: 0,
            records: 0,
            error: None,
            job: None,
            consumer: None,
            producer: None,
        }
    }

    fn pop_front(&mut self) -> Option<Entry<O>> {
        let e = self.entries.pop_front()?;
        self.base += 1;
        Some(e)
    }

    /// The job and consumer to notify, if the consumer has registered.
    fn consumer(&self) -> Option<(Arc<JobShared>, TaskId)> {
        Some((self.job.clone()?, self.consumer?))
    }
}

/// Completes request `seq` with `r` and wakes the consumer.
fn complete<O>(q: &Mutex<Queue<O>>, seq: u64, r: Result<O>) {
    let wake = {
        let mut q = q.lock();
        match r {
            Ok(o) => {
                let i = (seq - q.base) as usize;
                if let Some(e) = q.entries.get_mut(i) {
                    if let Entry::Waiting(ts) = *e {
                        *e = Entry::Done(o, ts);
                    }
                }
            }
            Err(e) => {
                q.error.get_or_insert(e);
            }
        }
        q.consumer()
    };
    if let Some((job, id)) = wake {
        job.notify(id);
    }
}

/// Fails the request if its task ends without completing it (the future panicked).
struct Unfinished<O> {
    q: Shared<O>,
    seq: u64,
    operator: OpName,
    done: bool,
}

impl<O> Drop for Unfinished<O> {
    fn drop(&mut self) {
        if !self.done {
            let e = Error::OperatorPanic {
                operator: self.operator.as_str().to_string(),
                message: "the async request's future panicked or was cancelled".into(),
            };
            complete(&self.q, self.seq, Err(e));
        }
    }
}

/// One request, run on the operator's runtime.
async fn request<O, Fut: Future<Output = O>>(
    fut: Fut,
    mut guard: Unfinished<O>,
    timeout: Duration,
) {
    let r = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Error::AsyncTimeout {
            operator: guard.operator.as_str().to_string(),
            timeout,
        });
    guard.done = true;
    complete(&guard.q, guard.seq, r);
}

/// A record or an event not yet in the queue.
enum Item<I> {
    Record(I, Timestamp),
    Event(Event),
}

/// The terminal of the stage before `map_async`: buffers what the chain pushes and moves it
/// into the queue, submitting requests while there is room.
struct AsyncTerminal<I, O, F> {
    f: F,
    name: OpName,
    opts: AsyncOptions,
    rt: Arc<AsyncRuntime>,
    handle: Option<tokio::runtime::Handle>,
    q: Shared<O>,
    buf: VecDeque<Item<I>>,
}

impl<I, O, F> Downstream<I> for AsyncTerminal<I, O, F> {
    fn emit(&mut self, item: I, ts: Timestamp) {
        self.buf.push_back(Item::Record(item, ts))
    }
    fn event(&mut self, event: Event) {
        match event {
            Event::Watermark(_) | Event::Idle | Event::Barrier(_) | Event::End => {
                self.buf.push_back(Item::Event(event))
            }
            // Never cross a stage boundary.
            Event::Flush | Event::BatchEnd | Event::ProcessingTime(_) => {}
        }
    }
}

impl<I, O, F, Fut> Terminal<I> for AsyncTerminal<I, O, F>
where
    I: Send,
    O: Send + 'static,
    F: FnMut(I) -> Fut + Send,
    Fut: Future<Output = O> + Send + 'static,
{
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        if self.buf.is_empty() {
            return Ok(true);
        }
        let handle = match &self.handle {
            Some(h) => h.clone(),
            None => self.handle.insert(self.rt.handle()?).clone(),
        };
        let mut submit = Vec::new();
        let mut events = false;
        let wake = {
            let mut q = self.q.lock();
            if q.job.is_none() {
                q.job = Some(cx.shared.clone());
            }
            while let Some(item) = self.buf.front() {
                match item {
                    Item::Event(e) => {
                        let e = *e;
                        q.entries.push_back(Entry::Event(e));
                        events = true;
                    }
                    Item::Record(_, ts) => {
                        if q.records >= self.opts.capacity {
                            q.producer = Some(cx.id);
                            break;
                        }
                        let seq = q.base + q.entries.len() as u64;
                        q.entries.push_back(Entry::Waiting(*ts));
                        q.records += 1;
                        if let Some(Item::Record(x, _)) = self.buf.pop_front() {
                            submit.push((seq, x));
                        }
                        continue;
                    }
                }
                self.buf.pop_front();
            }
            if events {
                q.consumer()
            } else {
                None
            }
        };
        let guard = PanicGuard(&self.name);
        for (seq, x) in submit {
            let fut = (self.f)(x);
            let unfinished = Unfinished {
                q: self.q.clone(),
                seq,
                operator: self.name.clone(),
                done: false,
            };
            handle.spawn(request(fut, unfinished, self.opts.timeout));
        }
        std::mem::forget(guard);
        if let Some((job, id)) = wake {
            job.notify(id);
        }
        Ok(self.buf.is_empty())
    }
}

/// The input of the stage after `map_async`: completed results and the events between them.
struct AsyncInput<O> {
    q: Shared<O>,
    ordered: bool,
    max_batch: usize,
    registered: bool,
    _rt: Arc<AsyncRuntime>,
}

impl<O: Send> Input<O> for AsyncInput<O> {
    fn poll(&mut self, cx: &TaskCx<'_>, buf: &mut Batch<O>) -> Result<Poll> {
        let mut event = None;
        let wake = {
            let mut q = self.q.lock();
            if !self.registered {
                self.registered = true;
                if q.job.is_none() {
                    q.job = Some(cx.shared.clone());
                }
                q.consumer = Some(cx.id);
            }
            if let Some(e) = q.error.take() {
                return Err(e);
            }
            let before = q.records;
            if self.ordered {
                while buf.len() < self.max_batch {
                    match q.entries.front() {
                        Some(Entry::Done(..)) => {
                            if let Some(Entry::Done(o, ts)) = q.pop_front() {
                                buf.push(o, ts);
                                q.records -= 1;
                            }
                        }
                        _ => break,
                    }
                }
            } else {
                let mut taken = 0;
                for e in q.entries.iter_mut() {
                    if buf.len() >= self.max_batch {
                        break;
                    }
                    match e {
                        Entry::Event(_) => break,
                        Entry::Done(..) => {
                            if let Entry::Done(o, ts) = std::mem::replace(e, Entry::Taken) {
                                buf.push(o, ts);
                                taken += 1;
                            }
                        }
                        Entry::Waiting(_) | Entry::Taken => {}
                    }
                }
                q.records -= taken;
                while matches!(q.entries.front(), Some(Entry::Taken)) {
                    q.pop_front();
                }
            }
            if buf.is_empty() {
                if let Some(Entry::Event(e)) = q.entries.front() {
                    event = Some(*e);
                    q.pop_front();
                }
            }
            if q.records < before {
                match (q.job.clone(), q.producer.take()) {
                    (Some(job), Some(id)) => Some((job, id)),
                    _ => None,
                }
            } else {
                None
            }
        };
        if let Some((job, id)) = wake {
            job.notify(id);
        }
        Ok(match event {
            Some(Event::End) => Poll::End,
            Some(e) => Poll::Event(e),
            None if !buf.is_empty() => Poll::Data,
            None => Poll::Pending,
        })
    }
}

impl<C: Chain> Stream<C> {
    /// Calls the async function `f` on every record and passes on the output of its future
    /// (Flink's `AsyncDataStream.orderedWait` / `unorderedWait`), with at most
    /// [`AsyncOptions::capacity`] requests per subtask in flight, in input order or as they
    /// complete ([`AsyncOptions`]). The futures run on a tokio runtime of the operator's own,
    /// so they may use `tokio::time`, `tokio::sync` and tokio-based clients. A request that
    /// takes longer than the timeout fails the job with [`Error::AsyncTimeout`]; for a result
    /// instead, let the future time out itself (`tokio::time::timeout`) and return a `Result`.
    ///
    /// Ends the stage: the results start a new stage of the same parallelism, subtask `i`
    /// reading what subtask `i` submitted. Watermarks, checkpoint barriers and the end of
    /// input follow every result before them.
    ///
    /// ```
    /// use flow_core::prelude::*;
    /// use std::time::Duration;
    ///
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env
    ///     .from_iter(0..20u64)
    ///     .map_async(AsyncOptions::ordered(4, Duration::from_secs(5)), |x| async move {
    ///         tokio::time::sleep(Duration::from_millis(x % 3)).await; // a remote call
    ///         x * 10
    ///     })
    ///     .collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, (0..20).map(|x| x * 10).collect::<Vec<_>>());
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn map_async<O, F, Fut>(self, opts: AsyncOptions, f: F) -> Stream<Identity<O>>
    where
        O: Send + 'static,
        F: FnMut(C::Out) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = O> + Send + 'static,
    {
        let loc = Location::caller();
        let name = OpName::new("map_async", loc);
        let feed = self.feed();
        let mode = if opts.ordered { "ordered" } else { "unordered" };
        let ex = Exchange::<O>::new(
            &self.g,
            &[feed],
            Partitioning::Forward {
                what: format!("{mode} async results"),
            },
            format!("{} of stage {}", name.as_str(), feed.stage),
            feed.parallelism,
            loc,
        );
        let max_batch = self.g.borrow().config.batch_size.max(1);
        let rt = Arc::new(AsyncRuntime {
            threads: opts.threads,
            rt: Mutex::new(None),
        });
        let queues: Vec<Shared<O>> = (0..feed.parallelism)
            .map(|_| Arc::new(Mutex::new(Queue::new())))
            .collect();
        let (tq, trt) = (queues.clone(), rt.clone());
        self.finish(Ending::Exchange(name.as_str().to_string()), move |i, _| {
            AsyncTerminal {
                f: f.clone(),
                name: name.clone(),
                opts,
                rt: trt.clone(),
                handle: None,
                q: tq[i].clone(),
                buf: VecDeque::new(),
            }
        });
        // The consuming stage makes its subtasks' inputs in order, 0..parallelism; its
        // exchange channels stay unused.
        let mut next = 0;
        ex.into_stream_with(move |_unused| {
            let i = next;
            next += 1;
            Box::new(AsyncInput {
                q: queues[i].clone(),
                ordered: opts.ordered,
                max_batch,
                registered: false,
                _rt: rt.clone(),
            })
        })
    }
}
