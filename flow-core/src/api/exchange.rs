//! The one exchange builder: every edge between stages — `key_by`, `rebalance`, `union`,
//! `connect`, side outputs — reserves its consuming stage, creates its channels and hands the
//! producers their writers here.
use super::stream::Stream;
use crate::error::Result;
use crate::graph::plan::Partitioning;
use crate::graph::{EdgeInfo, Ending, Feed, GraphRef, InputSpec, StageSlot};
use crate::record::Batch;
use crate::runtime::exchange::partition::{ByKey, Partitioner};
use crate::runtime::exchange::{channels, input_maker, ChannelOut, ExchangeInput, ExchangeWriter};
use crate::runtime::operator::{Chain, Identity};
use crate::runtime::panic::{Named, PanicGuard};
use crate::runtime::stage::{EmptyInput, Input, MakeInput, Poll};
use crate::runtime::task::TaskCx;
use std::hash::Hash;
use std::panic::Location;

/// The producer side of an exchange: one channel per consumer, shared by every producer.
pub(crate) struct Outlets<T> {
    outs: Vec<ChannelOut<T>>,
    batch_size: usize,
}

impl<T> Clone for Outlets<T> {
    fn clone(&self) -> Self {
        Outlets {
            outs: self.outs.clone(),
            batch_size: self.batch_size,
        }
    }
}

impl<T: Send> Outlets<T> {
    /// The writer of producer `index` (numbered over all feeds of the exchange).
    pub(crate) fn writer<P: Partitioner<T>>(&self, index: usize, p: P) -> ExchangeWriter<T, P> {
        ExchangeWriter::new(index, self.outs.clone(), p, self.batch_size)
    }
}

/// An exchange whose consuming stage is reserved.
pub(crate) struct Exchange<T> {
    g: GraphRef,
    slot: StageSlot,
    ins: Vec<ExchangeInput<T>>,
    bounded: bool,
    pub(crate) outlets: Outlets<T>,
}

impl<T: Send + 'static> Exchange<T> {
    /// Reserves a stage of `parallelism` subtasks fed by `feeds` (their producers numbered in
    /// order) and creates the channels between them.
    pub(crate) fn new(
        g: &GraphRef,
        feeds: &[Feed],
        partitioning: Partitioning,
        head: String,
        parallelism: usize,
        loc: &'static Location<'static>,
    ) -> Self {
        let (batch_size, align) = {
            let c = &g.borrow().config;
            (
                c.batch_size,
                c.checkpoint_mode == crate::config::CheckpointMode::ExactlyOnce,
            )
        };
        let inputs = feeds
            .iter()
            .map(|f| EdgeInfo {
                from: f.stage,
                partitioning: partitioning.clone(),
            })
            .collect();
        let slot = g.borrow_mut().reserve(parallelism, head, inputs, loc);
        let ids: Vec<usize> = slot.ids.clone().collect();
        let producers = feeds.iter().map(|f| f.parallelism).sum();
        let (outs, ins) = channels::<T>(producers, &ids, align);
        Exchange {
            g: g.clone(),
            slot,
            ins,
            bounded: feeds.iter().all(|f| f.bounded),
            outlets: Outlets { outs, batch_size },
        }
    }

    /// A hash exchange from `from` into a stage of the job's parallelism.
    pub(crate) fn keyed(g: &GraphRef, from: Feed, loc: &'static Location<'static>) -> Self {
        let (p, key_groups) = {
            let g = g.borrow();
            (
                from.next_parallelism.unwrap_or(g.config.parallelism),
                g.config.max_parallelism,
            )
        };
        Exchange::new(
            g,
            &[from],
            Partitioning::Hash { key_groups },
            format!("from stage {} by key", from.stage),
            p,
            loc,
        )
    }

    /// The consuming stage's stream of the exchanged records.
    pub(crate) fn into_stream(mut self) -> Stream<Identity<T>> {
        let make = input_maker(std::mem::take(&mut self.ins));
        self.stream_with(make)
    }

    /// The consuming stage's stream, each subtask reading its channel through `wrap`.
    pub(crate) fn into_stream_with<U: Send + 'static>(
        mut self,
        mut wrap: impl FnMut(ExchangeInput<T>) -> Box<dyn Input<U>> + 'static,
    ) -> Stream<Identity<U>> {
        let mut ins: Vec<Option<ExchangeInput<T>>> = std::mem::take(&mut self.ins)
            .into_iter()
            .map(Some)
            .collect();
        let make: MakeInput<U> = Box::new(move |i| match ins.get_mut(i).and_then(Option::take) {
            Some(inner) => wrap(inner),
            None => Box::new(EmptyInput),
        });
        self.stream_with(make)
    }

    fn stream_with<U: Send + 'static>(self, make: MakeInput<U>) -> Stream<Identity<U>> {
        Stream::new(
            self.g,
            InputSpec {
                slot: self.slot,
                make,
                bounded: self.bounded,
            },
        )
    }
}

/// Creates a side stream fed subtask by subtask by `from`'s stage; returns the producers'
/// outlets (each subtask `i` writes with `Forward(i)`) and the stream.
pub(crate) fn side_stream<C: Chain, T: Send + 'static>(
    from: &Stream<C>,
    loc: &'static Location<'static>,
    what: &str,
) -> (Outlets<T>, Stream<Identity<T>>) {
    let feed = from.feed();
    let ex = Exchange::new(
        &from.g,
        &[feed],
        Partitioning::Forward {
            what: what.to_string(),
        },
        format!("{what} of stage {}", feed.stage),
        feed.parallelism,
        loc,
    );
    let outlets = ex.outlets.clone();
    (outlets, ex.into_stream())
}

/// Ends `stream` in a key-group exchange of its records and returns the `(key, record)`
/// stream on the other side; the key is computed on both sides instead of being sent (as
/// Flink does), so keys never cross the exchange.
pub(crate) fn exchange_by_key<C, K, KF>(
    stream: Stream<C>,
    loc: &'static Location<'static>,
    key: Named<KF>,
) -> Stream<Identity<(K, C::Out)>>
where
    C: Chain,
    K: Hash + Send + 'static,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
{
    let ex = Exchange::<C::Out>::keyed(&stream.g, stream.feed(), loc);
    rekeyed(stream, ex, key)
}

/// [`exchange_by_key`] into a stage of one subtask (`window_all`: one key, one subtask).
pub(crate) fn exchange_to_one<C, K, KF>(
    stream: Stream<C>,
    loc: &'static Location<'static>,
    key: Named<KF>,
) -> Stream<Identity<(K, C::Out)>>
where
    C: Chain,
    K: Hash + Send + 'static,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
{
    let from = stream.feed();
    let ex = Exchange::<C::Out>::new(
        &stream.g,
        &[from],
        Partitioning::Single,
        format!("from stage {} to one subtask", from.stage),
        1,
        loc,
    );
    rekeyed(stream, ex, key)
}

/// Ends `stream` in `ex`, routing by `key`, and recomputes the key on the other side.
fn rekeyed<C, K, KF>(
    stream: Stream<C>,
    ex: Exchange<C::Out>,
    key: Named<KF>,
) -> Stream<Identity<(K, C::Out)>>
where
    C: Chain,
    K: Hash + Send + 'static,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
{
    let max_parallelism = stream.g.borrow().config.max_parallelism;
    let outlets = ex.outlets.clone();
    let route_key = key.clone();
    let by = Ending::Exchange(key.name.as_str().to_string());
    stream.finish(by, move |i, _| {
        outlets.writer(
            i,
            ByKey {
                key: route_key.clone(),
                max_parallelism,
            },
        )
    });
    ex.into_stream_with(move |inner| {
        Box::new(RekeyInput {
            inner,
            key: key.clone(),
            tmp: Batch::default(),
        })
    })
}

/// The receiving side of a keyed exchange that carries bare records: computes each record's
/// key again on arrival.
struct RekeyInput<T, KF> {
    inner: ExchangeInput<T>,
    key: Named<KF>,
    tmp: Batch<T>,
}

impl<T: Send, K, KF: FnMut(&T) -> K + Send> Input<(K, T)> for RekeyInput<T, KF> {
    fn poll(&mut self, cx: &TaskCx<'_>, buf: &mut Batch<(K, T)>) -> Result<Poll> {
        let r = self.inner.poll(cx, &mut self.tmp)?;
        if matches!(r, Poll::Data) {
            let (key, ts) = (&mut self.key, std::mem::take(&mut self.tmp.ts));
            buf.data.reserve(self.tmp.data.len());
            let guard = PanicGuard(&key.name);
            for x in self.tmp.data.drain(..) {
                let k = (key.f)(&x);
                buf.data.push((k, x));
            }
            std::mem::forget(guard);
            buf.ts = ts;
        }
        Ok(r)
    }
}
