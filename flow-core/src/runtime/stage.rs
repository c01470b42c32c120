//! A stage's subtask: input -> fused chain -> terminal, run a budget of batches per step.
use super::metrics::{SubtaskMetrics, WaitClock};
use super::operator::{Chain, Downstream, DrainCx};
use super::persist::ToWriter;
use super::snapshot::{Part, Position, Restore, RestoreCx, SnapshotCx};
use super::task::{Step, TaskBody, TaskCx};
use crate::error::Result;
use crate::record::{Batch, Event};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What an input had for the subtask.
pub(crate) enum Poll {
    /// `buf` holds a batch of records.
    Data,
    /// A control event (a watermark) to pass through the chain.
    Event(Event),
    /// Nothing right now; whoever provides more input will notify the task.
    Pending,
    /// The input is exhausted.
    End,
}

/// Where a stage's records come from: a source split or an exchange.
pub(crate) trait Input<T>: Send {
    /// Fills `buf` (empty on entry) or reports an event, the lack of input, or its end.
    fn poll(&mut self, cx: &TaskCx<'_>, buf: &mut Batch<T>) -> Result<Poll>;

    /// A source's position after everything it returned so far, for a checkpoint: `None`
    /// if it cannot be replayed from a position (a socket).
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Resumes after the positions that the source's subtasks recorded in the restored
    /// checkpoint (all of them, whatever the parallelism then was). Called before the first
    /// poll; never called for a source that returned `None` from `snapshot`.
    fn restore(&mut self, _positions: &[&[u8]]) -> Result<()> {
        Ok(())
    }
}

/// Makes the input of each subtask of a stage.
pub(crate) type MakeInput<T> = Box<dyn FnMut(usize) -> Box<dyn Input<T>>>;

/// Where a stage's records go: an exchange or a sink.
pub(crate) trait Terminal<T>: Downstream<T> + Send {
    /// Passes on buffered output. Returns `false` when some output waits for room downstream;
    /// the task has then registered to be notified when there is room.
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool>;

    /// A sink's pre-commit at a checkpoint barrier (or at its end): makes what it wrote since
    /// the last one durable but invisible, and describes it, to be published when the
    /// checkpoint completes. `None`: nothing to publish.
    fn pre_commit(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// Work done per step before yielding to other tasks.
const STEP_BATCHES: usize = 64;
const STEP_TIME: Duration = Duration::from_millis(1);

pub(crate) struct StageTask<C: Chain, T> {
    pub(crate) name: String,
    pub(crate) input: Box<dyn Input<C::In>>,
    pub(crate) chain: C,
    pub(crate) terminal: T,
    pub(crate) buf: Batch<C::In>,
    pub(crate) ended: bool,
    pub(crate) metrics: Arc<SubtaskMetrics>,
    /// Tracks the time the subtask waits for room downstream.
    pub(crate) waits: WaitClock,
    /// The wall-clock time an operator of the chain asked to be woken at.
    pub(crate) next_wake: Option<Instant>,
    /// Whether the stage reads a source: it injects checkpoint barriers.
    pub(crate) source: bool,
    /// The stage's index among the job's sink subtasks, if it ends in a sink: it acknowledges
    /// checkpoint barriers.
    pub(crate) sink: Option<usize>,
    /// The last checkpoint barrier this source subtask injected.
    pub(crate) injected: u64,
    /// A source's watermark cadence: a batch end (after which timestamp assigners emit their
    /// watermark) every this many records; `usize::MAX` after an exchange.
    pub(crate) watermark_every: usize,
    /// The stage's index in the job.
    pub(crate) stage: usize,
    /// The uids of the chain's operators, in order.
    pub(crate) uids: Arc<[String]>,
    /// Which subtask this is, for the key groups of its state.
    pub(crate) at: Position,
    /// The checkpoint to restore before the first record.
    pub(crate) restore: Option<Restore>,
    /// The last checkpoint barrier that passed through this subtask.
    pub(crate) seen: u64,
    /// When the restore began, while operators still load restored state in the background.
    pub(crate) loading: Option<Instant>,
}

impl<C: Chain, T: Terminal<C::Out>> StageTask<C, T> {
    /// Drains the chain's side outputs and registers the wake-up its operators asked for.
    fn drain_chain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        let dcx = DrainCx::new(cx);
        let ready = self.chain.drain(&dcx)?;
        if let Some(at) = dcx.wake() {
            if self.next_wake.is_none_or(|w| at < w) {
                self.next_wake = Some(at);
                cx.wake_at(at);
            }
        }
        Ok(ready)
    }

    /// Passes checkpoint barrier `n` through the chain into the terminal; a sink has then
    /// processed everything before it. With checkpoints persisted, the subtask's part of
    /// checkpoint `n` goes to the writer before the barrier leaves it.
    fn barrier(&mut self, cx: &TaskCx<'_>, n: u64) -> Result<()> {
        self.chain.event(Event::Barrier(n), &mut self.terminal);
        self.seen = n;
        tracing::debug!(
            checkpoint = n,
            stage = self.stage,
            subtask = self.at.subtask,
            "barrier passed"
        );
        if let Some(tx) = cx.checkpoints().writer() {
            let start = Instant::now();
            let mut part = self.part()?;
            part.pause = start.elapsed();
            let _ = tx.send(ToWriter::Part { id: n, part });
            let ns = start.elapsed().as_nanos() as u64;
            self.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .snapshot_max_ns
                .fetch_max(ns, Ordering::Relaxed);
        }
        if let Some(sink) = self.sink {
            cx.checkpoints().ack(sink, n);
        }
        Ok(())
    }

    /// What this subtask contributes to the checkpoint whose barrier just passed (or, at its
    /// end, to every later one).
    fn part(&mut self) -> Result<Part> {
        let mut part = Part::default();
        let mut scx = SnapshotCx {
            at: self.at,
            uids: &self.uids,
            op: 0,
            part: &mut part,
        };
        self.chain.snapshot(&mut scx)?;
        if self.source {
            if let Some(pos) = self.input.snapshot()? {
                let name = format!("source/{}/{}", self.stage, self.at.subtask);
                part.meta.push((name, pos));
            }
        }
        if let Some(blob) = self.terminal.pre_commit()? {
            let name = format!("sink/{}/{}", self.stage, self.at.subtask);
            part.meta.push((name, blob));
        }
        Ok(part)
    }

    /// Loads the restored checkpoint into the chain and the source.
    fn restore(&mut self, view: &Restore) -> Result<()> {
        let mut rcx = RestoreCx {
            view,
            at: self.at,
            uids: &self.uids,
            op: 0,
        };
        self.chain.restore(&mut rcx)?;
        if self.source {
            let prefix = format!("source/{}/", self.stage);
            let positions: Vec<&[u8]> = view
                .metadata_entries()
                .filter(|(n, _)| n.starts_with(&prefix))
                .map(|(_, b)| b)
                .collect();
            if !positions.is_empty() {
                self.input.restore(&positions)?;
            }
        }
        Ok(())
    }

    fn step_inner(&mut self, cx: &TaskCx<'_>) -> Result<Step> {
        if let Some(view) = self.restore.take() {
            let start = Instant::now();
            self.restore(&view)?;
            let ns = start.elapsed().as_nanos() as u64;
            self.metrics.restore_max_ns.fetch_max(ns, Ordering::Relaxed);
            self.loading = Some(start);
        }
        if let Some(since) = self.loading {
            if !self.chain.restoring() {
                self.loading = None;
                let ns = since.elapsed().as_nanos() as u64;
                self.metrics
                    .restore_loaded_ns
                    .fetch_max(ns, Ordering::Relaxed);
            }
        }
        let start = Instant::now();
        for _ in 0..STEP_BATCHES {
            if let Some(at) = self.next_wake {
                if Instant::now() >= at && !self.ended {
                    self.next_wake = None;
                    self.chain.event(
                        Event::ProcessingTime(crate::time::now_ms()),
                        &mut self.terminal,
                    );
                }
            }
            let side = self.drain_chain(cx)?;
            if !self.terminal.drain(cx)? || !side {
                self.metrics.backpressured.fetch_add(1, Ordering::Relaxed);
                self.waits.backpressured(Instant::now());
                return Ok(Step::Idle);
            }
            if self.ended {
                if let Some(tx) = cx.checkpoints().writer() {
                    // Sent even when empty: the writer counts every subtask's part.
                    let part = self.part()?;
                    let _ = tx.send(ToWriter::Final {
                        after: self.seen,
                        part,
                    });
                }
                if let Some(sink) = self.sink {
                    cx.checkpoints().finished(sink);
                }
                self.metrics
                    .finished_at_ms
                    .store(crate::time::now_ms().max(1) as u64, Ordering::Relaxed);
                return Ok(Step::Done);
            }
            if self.source {
                if self.injected < cx.checkpoints().base() {
                    // A restored job's first checkpoint follows the ones already on disk.
                    self.injected = cx.checkpoints().base();
                }
                // Between two batches, after the last batch's watermark: every barrier asked
                // for since the last one, in order, so that all sources inject the same ids.
                let stop_at = cx.stop_at();
                let upto = cx
                    .checkpoints()
                    .requested()
                    .min(stop_at.unwrap_or(u64::MAX));
                while self.injected < upto {
                    self.injected += 1;
                    self.barrier(cx, self.injected)?;
                }
                if stop_at.is_some_and(|s| self.injected >= s) {
                    // Stopping at that checkpoint: nothing more is read; the job is cancelled
                    // once it is durable.
                    self.chain.event(Event::Flush, &mut self.terminal);
                    self.drain_chain(cx)?;
                    self.terminal.drain(cx)?;
                    return Ok(Step::Idle);
                }
            }
            match self.input.poll(cx, &mut self.buf)? {
                Poll::Data => {
                    let n = self.buf.len() as u64;
                    let (chain, term) = (&mut self.chain, &mut self.terminal);
                    // A batch end (so a watermark) after every `watermark_every` records, also
                    // within a large batch (a file chunk), and after the batch.
                    let every = self.watermark_every;
                    let mut since = 0usize;
                    self.buf.drain_into(|x, ts| {
                        chain.push(x, ts, term);
                        since += 1;
                        if since == every {
                            chain.event(Event::BatchEnd, term);
                            since = 0;
                        }
                    });
                    if since > 0 || n == 0 {
                        chain.event(Event::BatchEnd, term);
                    }
                    self.metrics.records_in.fetch_add(n, Ordering::Relaxed);
                    self.metrics.batches.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Event(Event::Barrier(n)) => self.barrier(cx, n)?,
                Poll::Event(Event::Watermark(w)) => {
                    self.metrics.watermark_in.store(w, Ordering::Relaxed);
                    self.chain.event(Event::Watermark(w), &mut self.terminal)
                }
                Poll::Event(e) => self.chain.event(e, &mut self.terminal),
                Poll::Pending => {
                    self.chain.event(Event::Flush, &mut self.terminal);
                    self.drain_chain(cx)?;
                    self.terminal.drain(cx)?;
                    return Ok(Step::Idle);
                }
                Poll::End => {
                    self.chain.event(Event::End, &mut self.terminal);
                    self.ended = true;
                }
            }
            if start.elapsed() >= STEP_TIME {
                break;
            }
        }
        Ok(Step::Yield)
    }
}

impl<C: Chain, T: Terminal<C::Out>> TaskBody for StageTask<C, T> {
    fn step(&mut self, cx: &TaskCx<'_>) -> Result<Step> {
        let start = Instant::now();
        self.waits.step_starts(start, &self.metrics);
        let r = self.step_inner(cx);
        // Once per step (a millisecond or a budget of batches): the entries its tables hold.
        self.metrics
            .state_entries
            .store(self.chain.state_entries(), Ordering::Relaxed);
        self.metrics
            .busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn set_restore(&mut self, view: Restore) {
        self.restore = Some(view);
    }
}

/// A stage's terminal with the subtask's output counted: records per batch (a local count
/// added to the shared counter at each event, and a batch end follows every batch) and the
/// last watermark.
pub(crate) struct Observed<T> {
    inner: T,
    out: u64,
    metrics: Arc<SubtaskMetrics>,
}

impl<T> Observed<T> {
    pub(crate) fn new(inner: T, metrics: Arc<SubtaskMetrics>) -> Self {
        Observed {
            inner,
            out: 0,
            metrics,
        }
    }
}

impl<X, T: Downstream<X>> Downstream<X> for Observed<T> {
    #[inline]
    fn emit(&mut self, item: X, ts: crate::record::Timestamp) {
        self.out += 1;
        self.inner.emit(item, ts)
    }

    fn event(&mut self, event: Event) {
        if self.out > 0 {
            self.metrics
                .records_out
                .fetch_add(std::mem::take(&mut self.out), Ordering::Relaxed);
        }
        if let Event::Watermark(w) = event {
            self.metrics.watermark_out.store(w, Ordering::Relaxed);
        }
        self.inner.event(event)
    }
}

impl<X, T: Terminal<X>> Terminal<X> for Observed<T> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.inner.drain(cx)
    }

    fn pre_commit(&mut self) -> Result<Option<Vec<u8>>> {
        self.inner.pre_commit()
    }
}

/// The input of a subtask that has nothing to read.
pub(crate) struct EmptyInput;

impl<T> Input<T> for EmptyInput {
    fn poll(&mut self, _cx: &TaskCx<'_>, _buf: &mut Batch<T>) -> Result<Poll> {
        Ok(Poll::End)
    }
}
