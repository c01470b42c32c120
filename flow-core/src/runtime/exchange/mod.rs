//! Exchanges: records move between stages as batches over bounded channels.
//!
//! Each consuming subtask owns one bounded crossbeam channel that all producing subtasks of the
//! upstream stage send into. Producers never block: a batch that does not fit waits in the
//! producer's queue, the producer registers itself with the channel and goes idle, and the
//! consumer notifies it after taking a message out. Control events (watermarks, end of input)
//! travel in the same channel as the data, in order, tagged with the producer's index so the
//! consumer can combine watermarks over its inputs ([`super::watermark`]).
pub(crate) mod partition;
// `pub` items only so that a loom build can re-export them for its model (`crate::__loom`).
#[cfg_attr(not(loom), allow(unreachable_pub))]
pub(crate) mod waiters;

use super::operator::Downstream;
use super::stage::{Input, MakeInput, Poll, Terminal};
use super::task::{TaskCx, TaskId};
use super::watermark::InputWatermarks;
use crate::error::Result;
use crate::record::{Batch, Event, Timestamp};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use partition::Partitioner;
use std::collections::VecDeque;
use std::sync::Arc;
use waiters::Waiters;

/// A message in an exchange channel.
pub(crate) enum Msg<T> {
    Data { from: u32, batch: Batch<T> },
    Event { from: u32, event: Event },
}

/// What producers and the consumer of one channel share besides the channel itself.
pub(crate) struct ChannelShared {
    consumer: TaskId,
    waiters: Waiters,
}

impl ChannelShared {
    /// Producer side of the full-channel handshake ([`Waiters`]): called after a send found
    /// the channel full, before the producer tries once more.
    fn register_waiter(&self, id: TaskId) {
        self.waiters.register(id);
    }

    /// Consumer side of the handshake: called after every receive.
    #[inline]
    fn wake_waiters(&self, cx: &TaskCx<'_>) {
        for id in self.waiters.take_if_any() {
            cx.notify(id);
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
/// `align`: hold back the records of producers that delivered the barrier being aligned
/// (exactly-once); without it only their later barriers wait (at-least-once).
pub(crate) fn channels<T>(
    producers: usize,
    consumers: &[TaskId],
    align: bool,
) -> (Vec<ChannelOut<T>>, Vec<ExchangeInput<T>>) {
    let cap = (2 * producers).max(4);
    consumers
        .iter()
        .map(|&consumer| {
            let (tx, rx) = crossbeam_channel::bounded(cap);
            let (recycle, recycled) = crossbeam_channel::bounded(cap + producers);
            let shared = Arc::new(ChannelShared {
                consumer,
                waiters: Waiters::new(),
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
                    watermarks: InputWatermarks::new(producers),
                    align: Alignment {
                        id: None,
                        hold: align,
                        blocked: vec![false; producers],
                        held: (0..producers).map(|_| VecDeque::new()).collect(),
                        held_count: 0,
                        ready: VecDeque::new(),
                    },
                },
            )
        })
        .unzip()
}

/// Hands consumer `i` its channel, for a stage's input factory.
pub(crate) fn input_maker<T: Send + 'static>(ins: Vec<ExchangeInput<T>>) -> MakeInput<T> {
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
    watermarks: InputWatermarks,
    align: Alignment<T>,
}

/// Barrier alignment over the producers of one channel (exactly-once): once producer `i` has
/// delivered barrier `n`, its later messages are held back until every live producer has
/// delivered `n`; then the barrier goes on, and the held messages are replayed in order.
/// The channel is shared by all producers, so holding back means buffering, not blocking.
///
/// At-least-once (`hold` false): only a producer's later *barriers* are held back; its records
/// and watermarks go on at once, so barrier `n` leaves after every live producer delivered it,
/// possibly behind records that followed it. A barrier is only ever delayed, never moved
/// ahead of a record, so a snapshot misses nothing before it (it may hold more).
struct Alignment<T> {
    /// The barrier being aligned.
    id: Option<u64>,
    /// Whether records of producers that delivered it wait (exactly-once).
    hold: bool,
    /// Producers that delivered it.
    blocked: Vec<bool>,
    /// Their later messages, per producer in arrival order (order across producers does not
    /// matter), and how many there are in all.
    held: Vec<VecDeque<Msg<T>>>,
    held_count: usize,
    /// Events due before the next message is read.
    ready: VecDeque<Event>,
}

impl<T> Msg<T> {
    fn from(&self) -> usize {
        match self {
            Msg::Data { from, .. } | Msg::Event { from, .. } => *from as usize,
        }
    }
}

impl<T> ExchangeInput<T> {
    /// The next held message that may go on: any while no barrier is being aligned, else the
    /// first one of a producer that has not delivered the barrier yet.
    fn next_held(&mut self) -> Option<Msg<T>> {
        let a = &mut self.align;
        if a.held_count == 0 {
            return None;
        }
        let aligning = a.id.is_some();
        for (i, q) in a.held.iter_mut().enumerate() {
            if aligning && a.blocked[i] {
                continue;
            }
            if let Some(m) = q.pop_front() {
                a.held_count -= 1;
                return Some(m);
            }
        }
        None
    }

    /// Completes the alignment if every producer that has not ended delivered the barrier.
    fn try_complete(&mut self) {
        let Some(n) = self.align.id else {
            return;
        };
        let all = (0..self.watermarks.producers())
            .all(|i| self.align.blocked[i] || self.watermarks.ended(i));
        if all {
            self.align.id = None;
            self.align.blocked.iter_mut().for_each(|b| *b = false);
            self.align.ready.push_back(Event::Barrier(n));
        }
    }
}

impl<T: Send> Input<T> for ExchangeInput<T> {
    fn poll(&mut self, cx: &TaskCx<'_>, buf: &mut Batch<T>) -> Result<Poll> {
        loop {
            if let Some(e) = self.align.ready.pop_front() {
                return Ok(Poll::Event(e));
            }
            if self.watermarks.all_ended() {
                return Ok(Poll::End);
            }
            let msg = match self.next_held() {
                Some(m) => m,
                None => {
                    let m = match self.rx.try_recv() {
                        Ok(m) => m,
                        Err(TryRecvError::Empty) => return Ok(Poll::Pending),
                        // Every producer is gone without saying End: only after a cancelled job.
                        Err(TryRecvError::Disconnected) => return Ok(Poll::End),
                    };
                    self.shared.wake_waiters(cx);
                    let from = m.from();
                    // A blocked producer's message waits: any (exactly-once) or only a
                    // later barrier (at-least-once).
                    let blocked = self.align.id.is_some() && self.align.blocked[from];
                    if blocked
                        && (self.align.hold
                            || matches!(
                                m,
                                Msg::Event {
                                    event: Event::Barrier(_),
                                    ..
                                }
                            ))
                    {
                        self.align.held[from].push_back(m);
                        self.align.held_count += 1;
                        continue;
                    }
                    m
                }
            };
            match msg {
                Msg::Data { from, batch } => {
                    self.watermarks.on_data(from as usize);
                    let mut old = std::mem::replace(buf, batch);
                    if old.data.capacity() > 0 {
                        old.data.clear();
                        old.ts.clear();
                        let _ = self.recycle.try_send(old);
                    }
                    return Ok(Poll::Data);
                }
                Msg::Event {
                    from,
                    event: Event::Barrier(n),
                } => {
                    // A producer delivers its barriers in order, and while `n` is aligned its
                    // later messages (with `n + 1`) are held: only `n` itself can arrive here.
                    self.align.id.get_or_insert(n);
                    if let Some(b) = self.align.blocked.get_mut(from as usize) {
                        *b = true;
                    }
                    self.try_complete();
                }
                Msg::Event { from, event } => {
                    let out = self.watermarks.on_event(from as usize, event);
                    // A producer that ended no longer holds an alignment back.
                    self.try_complete();
                    if let Some(e) = out {
                        // Its watermark came before the barrier completes.
                        self.align.ready.push_front(e);
                    }
                    if self.watermarks.all_ended() && self.align.ready.is_empty() {
                        return Ok(Poll::End);
                    }
                }
            }
        }
    }
}

/// Sends every record to every consumer (`broadcast`), as the terminal of a stage.
pub(crate) struct BroadcastWriter<T>(pub(crate) ExchangeWriter<T, partition::Forward>);

impl<T: Clone + Send> Downstream<T> for BroadcastWriter<T> {
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        let n = self.0.consumers();
        for t in 1..n {
            self.0.emit_to(t, item.clone(), ts);
        }
        self.0.emit_to(0, item, ts);
    }
    fn event(&mut self, event: Event) {
        self.0.event(event)
    }
}

impl<T: Clone + Send> Terminal<T> for BroadcastWriter<T> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.0.drain(cx)
    }
}

/// Sends every record to each of several exchanges (`fan_out`), as the terminal of a stage:
/// a clone to every writer but the last, which gets the record itself. Control events
/// (watermarks, barriers, end of input) go to every writer, and through each to every
/// consumer of its exchange. Not ready while any writer waits for room.
pub(crate) struct FanOutWriter<T>(pub(crate) Vec<ExchangeWriter<T, partition::Forward>>);

impl<T: Clone + Send> Downstream<T> for FanOutWriter<T> {
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        if let Some((last, rest)) = self.0.split_last_mut() {
            for w in rest {
                w.emit(item.clone(), ts);
            }
            last.emit(item, ts);
        }
    }
    fn event(&mut self, event: Event) {
        for w in &mut self.0 {
            w.event(event);
        }
    }
}

impl<T: Clone + Send> Terminal<T> for FanOutWriter<T> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        // Every writer gets its chance to send, so a slow consumer holds back only the
        // records queued for it (and, through this stage, new input), not what the others
        // could take already.
        let mut ready = true;
        for w in &mut self.0 {
            ready &= w.drain(cx)?;
        }
        Ok(ready)
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
}

impl<T: Send, P> ExchangeWriter<T, P> {
    /// The number of consumers.
    pub(crate) fn consumers(&self) -> usize {
        self.outs.len()
    }

    fn seal_to(&mut self, target: usize) {
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

    /// Sends a record to consumer `t`, whatever the partitioner says.
    #[inline]
    pub(crate) fn emit_to(&mut self, t: usize, item: T, ts: Timestamp) {
        let buf = &mut self.bufs[t];
        if buf.data.capacity() == 0 {
            buf.data.reserve_exact(self.batch_size);
        }
        buf.push(item, ts);
        if buf.len() >= self.batch_size {
            self.seal_to(t);
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
            self.seal_to(t);
        }
    }

    fn event(&mut self, event: Event) {
        if matches!(event, Event::BatchEnd | Event::ProcessingTime(_)) {
            return;
        }
        for t in 0..self.outs.len() {
            self.seal_to(t);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::JobShared;

    /// Producer 0 delivers barrier 1, then a record, then barrier 2; producer 1 then delivers
    /// a record and barrier 1. Returns what the consumer polls, as strings.
    fn polls(align: bool) -> Vec<String> {
        let job = JobShared::new(vec![], 1, Arc::default()).expect("job");
        let cx = TaskCx {
            shared: &job,
            id: 0,
        };
        let (outs, mut ins) = channels::<u64>(2, &[0], align);
        let tx = &outs[0].tx;
        let data = |from: u32, x: u64| {
            let mut batch = Batch::default();
            batch.push(x, 0);
            Msg::Data { from, batch }
        };
        let barrier = |from: u32, n: u64| Msg::Event {
            from,
            event: Event::Barrier(n),
        };
        let mut got = Vec::new();
        let mut buf = Batch::default();
        // Two phases: the channel holds only four messages.
        let phases = [
            vec![barrier(0, 1), data(0, 10), barrier(0, 2)],
            vec![data(1, 20), barrier(1, 1)],
        ];
        for phase in phases {
            for m in phase {
                tx.send(m).expect("send");
            }
            loop {
                match ins[0].poll(&cx, &mut buf).expect("poll") {
                    Poll::Data => got.push(format!("{:?}", buf.data)),
                    Poll::Event(Event::Barrier(n)) => got.push(format!("barrier {n}")),
                    Poll::Event(e) => got.push(format!("{e:?}")),
                    Poll::Pending | Poll::End => break,
                }
            }
        }
        got
    }

    #[test]
    fn exactly_once_holds_records_behind_an_aligning_barrier() {
        assert_eq!(polls(true), ["[20]", "barrier 1", "[10]"]);
    }

    #[test]
    fn at_least_once_lets_records_pass_and_holds_only_later_barriers() {
        // Producer 0's record passes at once; its barrier 2 waits for barrier 1 to complete
        // (and then for producer 1's barrier 2, which never comes here).
        assert_eq!(polls(false), ["[10]", "[20]", "barrier 1"]);
    }
}
