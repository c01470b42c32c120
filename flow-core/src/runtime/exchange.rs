//! Exchanges: records move between stages as batches over bounded channels.
//!
//! Each consuming subtask owns one bounded crossbeam channel that all producing subtasks of the
//! upstream stage send into. Producers never block: a batch that does not fit waits in the
//! producer's queue, the producer registers itself with the channel and goes idle, and the
//! consumer notifies it after taking a message out. Control events (watermarks, end of input)
//! travel in the same channel as the data, in order, tagged with the producer's index so the
//! consumer can combine watermarks over its inputs.
use super::stage::{Input, Poll, Terminal};
use super::task::{TaskCx, TaskId};
use crate::chain::Downstream;
use crate::error::Result;
use crate::record::{Batch, Event, Timestamp};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A message in an exchange channel.
pub(crate) enum Msg<T> {
    Data { from: u32, batch: Batch<T> },
    Event { from: u32, event: Event },
}

/// What producers and the consumer of one channel share besides the channel itself.
pub(crate) struct ChannelShared {
    consumer: TaskId,
    waiters: Mutex<Vec<TaskId>>,
    has_waiters: AtomicBool,
}

impl ChannelShared {
    fn register_waiter(&self, id: TaskId) {
        let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if !w.contains(&id) {
            w.push(id);
        }
        // SeqCst pairs with the consumer's load after its receive: either the consumer sees the
        // flag, or the producer's retry (which follows this store) sees the freed slot.
        self.has_waiters.store(true, Ordering::SeqCst);
    }

    fn wake_waiters(&self, cx: &TaskCx<'_>) {
        if self.has_waiters.load(Ordering::SeqCst) {
            let ids = {
                let mut w = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
                self.has_waiters.store(false, Ordering::SeqCst);
                std::mem::take(&mut *w)
            };
            for id in ids {
                cx.notify(id);
            }
        }
    }
}

/// The producing side of one channel.
pub(crate) struct ChannelOut<T> {
    tx: Sender<Msg<T>>,
    shared: Arc<ChannelShared>,
    /// Emptied batches the consumer hands back for reuse: in steady state no batch is
    /// allocated, and no memory moves between the threads' allocator arenas.
    recycled: Receiver<Batch<T>>,
}

impl<T> Clone for ChannelOut<T> {
    fn clone(&self) -> Self {
        ChannelOut {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            recycled: self.recycled.clone(),
        }
    }
}

/// Creates the channels of an exchange into the consumer tasks `consumers`.
pub(crate) fn channels<T>(
    producers: usize,
    consumers: &[TaskId],
) -> (Vec<ChannelOut<T>>, Vec<ExchangeInput<T>>) {
    let cap = (2 * producers).max(4);
    consumers
        .iter()
        .map(|&consumer| {
            let (tx, rx) = crossbeam_channel::bounded(cap);
            let (recycle, recycled) = crossbeam_channel::bounded(cap + producers);
            let shared = Arc::new(ChannelShared {
                consumer,
                waiters: Mutex::new(Vec::new()),
                has_waiters: AtomicBool::new(false),
            });
            (
                ChannelOut {
                    tx,
                    shared: shared.clone(),
                    recycled,
                },
                ExchangeInput {
                    rx,
                    shared,
                    recycle,
                    watermarks: vec![Timestamp::MIN; producers],
                    ended: vec![false; producers],
                    idle: vec![false; producers],
                    all_idle: false,
                    open: producers,
                    watermark: Timestamp::MIN,
                },
            )
        })
        .unzip()
}

/// Hands consumer `i` its channel, for a stage's input factory.
pub(crate) fn input_maker<T: Send + 'static>(
    ins: Vec<ExchangeInput<T>>,
) -> crate::env::MakeInput<T> {
    let mut ins: Vec<Option<ExchangeInput<T>>> = ins.into_iter().map(Some).collect();
    Box::new(move |i| match ins.get_mut(i).and_then(Option::take) {
        Some(inp) => Box::new(inp) as Box<dyn Input<T>>,
        None => Box::new(super::stage::EmptyInput),
    })
}

/// The consuming side of an exchange, as the input of a stage.
pub(crate) struct ExchangeInput<T> {
    rx: Receiver<Msg<T>>,
    shared: Arc<ChannelShared>,
    recycle: Sender<Batch<T>>,
    watermarks: Vec<Timestamp>,
    ended: Vec<bool>,
    idle: Vec<bool>,
    all_idle: bool,
    open: usize,
    watermark: Timestamp,
}

impl<T> ExchangeInput<T> {
    /// The combined watermark: the minimum over producers that have neither ended nor gone
    /// idle. `None` while every live producer is idle: the watermark holds.
    fn combined(&self) -> Option<Timestamp> {
        let live = || (0..self.watermarks.len()).filter(|&i| !self.ended[i]);
        if live().next().is_none() {
            return Some(Timestamp::MAX);
        }
        live()
            .filter(|&i| !self.idle[i])
            .map(|i| self.watermarks[i])
            .min()
    }
}

impl<T: Send> Input<T> for ExchangeInput<T> {
    fn poll(&mut self, cx: &TaskCx<'_>, buf: &mut Batch<T>) -> Result<Poll> {
        loop {
            if self.open == 0 {
                return Ok(Poll::End);
            }
            let msg = match self.rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => return Ok(Poll::Pending),
                // Every producer is gone without saying End: only after a cancelled job.
                Err(TryRecvError::Disconnected) => return Ok(Poll::End),
            };
            self.shared.wake_waiters(cx);
            match msg {
                Msg::Data { from, batch } => {
                    if let Some(idle) = self.idle.get_mut(from as usize) {
                        *idle = false;
                        self.all_idle = false;
                    }
                    let mut old = std::mem::replace(buf, batch);
                    if old.data.capacity() > 0 {
                        old.data.clear();
                        old.ts.clear();
                        let _ = self.recycle.try_send(old);
                    }
                    return Ok(Poll::Data);
                }
                Msg::Event { from, event } => {
                    let from = from as usize;
                    match event {
                        Event::Watermark(w) => {
                            if let Some(slot) = self.watermarks.get_mut(from) {
                                *slot = (*slot).max(w);
                            }
                        }
                        Event::End => {
                            if let Some(e) = self.ended.get_mut(from) {
                                if !*e {
                                    *e = true;
                                    self.open -= 1;
                                }
                            }
                        }
                        Event::Idle => {
                            if let Some(idle) = self.idle.get_mut(from) {
                                *idle = true;
                            }
                        }
                        Event::Flush | Event::BatchEnd | Event::ProcessingTime(_) => continue,
                    }
                    if self.open == 0 {
                        return Ok(Poll::End);
                    }
                    match self.combined() {
                        Some(w) => {
                            self.all_idle = false;
                            if w > self.watermark {
                                self.watermark = w;
                                return Ok(Poll::Event(Event::Watermark(w)));
                            }
                        }
                        // Every live producer is idle: so is this stage's output.
                        None if !self.all_idle => {
                            self.all_idle = true;
                            return Ok(Poll::Event(Event::Idle));
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

/// Chooses the consumer of each record.
pub(crate) trait Partitioner<T>: Send {
    fn route(&mut self, item: &T, consumers: usize) -> usize;
}

/// Routes `(key, value)` pairs by key group.
pub(crate) struct KeyGroups {
    pub(crate) max_parallelism: u32,
}

/// The stable hash of a key: the same in every run and process, as key groups must be.
#[inline]
pub(crate) fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

impl<K: Hash, V> Partitioner<(K, V)> for KeyGroups {
    #[inline]
    fn route(&mut self, item: &(K, V), consumers: usize) -> usize {
        let kg = flow_state::key_group_of(stable_hash(&item.0), self.max_parallelism);
        flow_state::subtask_for_key_group(kg, self.max_parallelism, consumers as u32) as usize
    }
}

/// Routes records round-robin, one record at a time (Flink's `rebalance`).
pub(crate) struct RoundRobin(pub(crate) usize);

impl<T> Partitioner<T> for RoundRobin {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        self.0 = (self.0 + 1) % consumers.max(1);
        self.0
    }
}

/// Sends everything to one consumer (side outputs: subtask `i` feeds subtask `i`).
pub(crate) struct Forward(pub(crate) usize);

impl<T> Partitioner<T> for Forward {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        self.0 % consumers.max(1)
    }
}

/// The producing side of an exchange, as the terminal of a stage.
pub(crate) struct ExchangeWriter<T, P> {
    index: u32,
    outs: Vec<ChannelOut<T>>,
    bufs: Vec<Batch<T>>,
    pending: VecDeque<(usize, Msg<T>)>,
    partitioner: P,
    batch_size: usize,
}

impl<T: Send, P: Partitioner<T>> ExchangeWriter<T, P> {
    pub(crate) fn new(
        index: usize,
        outs: Vec<ChannelOut<T>>,
        partitioner: P,
        batch_size: usize,
    ) -> Self {
        ExchangeWriter {
            index: index as u32,
            bufs: outs.iter().map(|_| Batch::default()).collect(),
            outs,
            pending: VecDeque::new(),
            partitioner,
            batch_size: batch_size.max(1),
        }
    }

    fn seal(&mut self, target: usize) {
        if !self.bufs[target].is_empty() {
            let next = match self.outs[target].recycled.try_recv() {
                Ok(b) => b,
                Err(_) => Batch::with_capacity(self.batch_size),
            };
            let b = std::mem::replace(&mut self.bufs[target], next);
            self.pending.push_back((
                target,
                Msg::Data {
                    from: self.index,
                    batch: b,
                },
            ));
        }
    }
}

impl<T: Send, P: Partitioner<T>> Downstream<T> for ExchangeWriter<T, P> {
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        let t = self.partitioner.route(&item, self.outs.len());
        let buf = &mut self.bufs[t];
        if buf.data.capacity() == 0 {
            buf.data.reserve_exact(self.batch_size);
        }
        buf.push(item, ts);
        if buf.len() >= self.batch_size {
            self.seal(t);
        }
    }

    fn event(&mut self, event: Event) {
        if matches!(event, Event::BatchEnd | Event::ProcessingTime(_)) {
            return;
        }
        for t in 0..self.outs.len() {
            self.seal(t);
        }
        if event == Event::Flush {
            return;
        }
        for t in 0..self.outs.len() {
            self.pending.push_back((
                t,
                Msg::Event {
                    from: self.index,
                    event,
                },
            ));
        }
    }
}

impl<T: Send, P: Partitioner<T>> Terminal<T> for ExchangeWriter<T, P> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        let mut sent_to = 0u64; // bit set of consumers that got something (first 64)
        let mut ready = true;
        while let Some((t, msg)) = self.pending.pop_front() {
            let out = &self.outs[t];
            match out.tx.try_send(msg) {
                Ok(()) => {
                    if t < 64 {
                        sent_to |= 1 << t;
                    } else {
                        cx.notify(out.shared.consumer);
                    }
                }
                Err(TrySendError::Full(msg)) => {
                    out.shared.register_waiter(cx.id);
                    match out.tx.try_send(msg) {
                        Ok(()) => {
                            cx.notify(out.shared.consumer);
                        }
                        Err(TrySendError::Full(msg)) => {
                            self.pending.push_front((t, msg));
                            ready = false;
                            break;
                        }
                        Err(TrySendError::Disconnected(_)) => {}
                    }
                }
                // The consumer is gone: only after the job was cancelled.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        for (t, out) in self.outs.iter().enumerate().take(64) {
            if sent_to & (1 << t) != 0 {
                cx.notify(out.shared.consumer);
            }
        }
        Ok(ready)
    }
}
