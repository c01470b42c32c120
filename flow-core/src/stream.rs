//! The DataStream API: typed streams and keyed streams.
use crate::chain::Filter;
use crate::chain::{Chain, FilterMap, FlatMap, Identity, Inspect, Map, OpName};
use crate::csv::CsvRow;
use crate::env::{GraphRef, InputSpec};
use crate::error::{Error, Result};
use crate::keyed::{
    Aggregate, Combine, Count, Extreme, ExtremeBy, FoldRecords, KeyedAggregate, MergePartials,
    Named, PreAggregate, Reduce, Sum, Table,
};
use crate::record::Batch;
use crate::runtime::exchange::{channels, ExchangeWriter, KeyGroups, Partitioner, RoundRobin};
use crate::runtime::stage::{Input, StageTask, Terminal};
use crate::runtime::task::TaskCx;
use crate::sink::{prepare_output_dir, shared_vec, CollectSink, Collected, DiscardSink, TextSink};
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;
use std::path::Path;

/// A stream of records of type `C::Out`: a source or exchange followed by a fused chain `C`.
///
/// Streams are built by chaining methods; each method is an operator. Operators up to the
/// next exchange (`key_by` + aggregate, `rebalance`, `union`) or sink are fused into one stage.
#[must_use = "a stream does nothing until it ends in a sink and the job is executed"]
pub struct Stream<C: Chain> {
    pub(crate) g: GraphRef,
    pub(crate) input: InputSpec<C::In>,
    pub(crate) chain: C,
    pub(crate) ops: Vec<String>,
}

impl<T: Send + 'static> Stream<Identity<T>> {
    pub(crate) fn new(g: GraphRef, input: InputSpec<T>) -> Self {
        Stream {
            g,
            input,
            chain: Identity::new(),
            ops: vec![],
        }
    }
}

impl<C: Chain> Stream<C> {
    pub(crate) fn then<C2: Chain<In = C::In>>(
        self,
        op: String,
        chain: impl FnOnce(C) -> C2,
    ) -> Stream<C2> {
        let mut ops = self.ops;
        ops.push(op);
        Stream {
            g: self.g,
            input: self.input,
            chain: chain(self.chain),
            ops,
        }
    }

    /// Transforms each record.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env.from_iter(["a", "bb"]).map(|s| s.len()).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![1, 2]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn map<O, F>(self, f: F) -> Stream<Map<C, F, O>>
    where
        F: FnMut(C::Out) -> O + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("map", Location::caller());
        self.then(name.as_str().to_string(), |inner| Map {
            inner,
            f,
            name,
            _out: PhantomData,
        })
    }

    /// Keeps the records for which `f` returns true.
    #[track_caller]
    pub fn filter<F>(self, f: F) -> Stream<Filter<C, F>>
    where
        F: FnMut(&C::Out) -> bool + Clone + Send + 'static,
    {
        let name = OpName::new("filter", Location::caller());
        self.then(name.as_str().to_string(), |inner| Filter { inner, f, name })
    }

    /// Maps each record to any number of records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env
    ///     .from_iter(["to be", "or not"])
    ///     .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec!["to", "be", "or", "not"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn flat_map<I, F>(self, f: F) -> Stream<FlatMap<C, F, I>>
    where
        F: FnMut(C::Out) -> I + Clone + Send + 'static,
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
    {
        let name = OpName::new("flat_map", Location::caller());
        self.then(name.as_str().to_string(), |inner| FlatMap {
            inner,
            f,
            name,
            _out: PhantomData,
        })
    }

    /// Maps each record to zero or one record.
    #[track_caller]
    pub fn filter_map<O, F>(self, f: F) -> Stream<FilterMap<C, F, O>>
    where
        F: FnMut(C::Out) -> Option<O> + Clone + Send + 'static,
        O: Send + 'static,
    {
        let name = OpName::new("filter_map", Location::caller());
        self.then(name.as_str().to_string(), |inner| FilterMap {
            inner,
            f,
            name,
            _out: PhantomData,
        })
    }

    /// Calls `f` on each record and passes the record on unchanged.
    #[track_caller]
    pub fn inspect<F>(self, f: F) -> Stream<Inspect<C, F>>
    where
        F: FnMut(&C::Out) + Clone + Send + 'static,
    {
        let name = OpName::new("inspect", Location::caller());
        self.then(name.as_str().to_string(), |inner| Inspect {
            inner,
            f,
            name,
        })
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask of the
    /// next stage. Follow it with a keyed aggregate.
    #[track_caller]
    pub fn key_by<K, KF>(self, key: KF) -> KeyedStream<C, KF>
    where
        KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
        K: Hash + Eq + Clone + Send + 'static,
    {
        let name = OpName::new("key_by", Location::caller());
        KeyedStream {
            stream: self,
            key: Named { f: key, name },
        }
    }

    /// Redistributes records round-robin over the next stage's subtasks (evens out skew).
    #[track_caller]
    pub fn rebalance(self) -> Stream<Identity<C::Out>> {
        let loc = Location::caller();
        exchange(
            vec![Box::new(self.into_part())],
            "rebalance (round-robin)",
            loc,
            |_| RoundRobin(0),
        )
    }

    /// Merges this stream with another stream of the same record type.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let a = env.from_iter(1..=3);
    /// let b = env.from_iter(10..=11).map(|x| x * 2);
    /// let out = a.union(b).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3, 20, 22]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn union<C2: Chain<Out = C::Out>>(self, other: Stream<C2>) -> Stream<Identity<C::Out>> {
        let loc = Location::caller();
        exchange(
            vec![Box::new(self.into_part()), Box::new(other.into_part())],
            "union (round-robin)",
            loc,
            RoundRobin,
        )
    }

    /// Collects the records in memory; read them with [`Collected::take`] after
    /// [`crate::Env::execute`]. For tests and small results.
    #[track_caller]
    pub fn collect(self) -> Collected<C::Out> {
        let items = shared_vec();
        let shared = items.clone();
        self.finish("collect".into(), move |_, m| {
            CollectSink::new(shared.clone(), m.clone())
        });
        Collected { items }
    }

    /// Counts and drops every record (for benchmarks).
    pub fn discard(self) {
        self.finish("discard".into(), |_, m| DiscardSink {
            count: 0,
            metrics: m.clone(),
        })
    }

    /// Prints each record as a CSV row on standard output.
    pub fn print(self)
    where
        C::Out: CsvRow,
    {
        self.finish("print".into(), |_, m| {
            TextSink::stdout(|x: &C::Out, b: &mut Vec<u8>| x.write_row(b), m.clone())
        })
    }

    /// Writes the records as CSV rows to part files `part-NNNNN.csv` in `dir`, one per
    /// subtask. A part file appears under its final name only once complete (it is written
    /// as `.part-NNNNN.csv.inprogress`, synced and renamed). Part files of an earlier run in
    /// `dir` are removed when the job starts.
    pub fn write_csv(self, dir: impl AsRef<Path>) -> Result<()>
    where
        C::Out: CsvRow,
    {
        self.write_text(
            dir.as_ref(),
            "csv",
            "write_csv",
            |x: &C::Out, b: &mut Vec<u8>| x.write_row(b),
        )
    }

    /// Writes each record's `Display` form as a line to part files `part-NNNNN.txt` in `dir`
    /// (same protocol as [`Stream::write_csv`]).
    pub fn write_lines(self, dir: impl AsRef<Path>) -> Result<()>
    where
        C::Out: std::fmt::Display,
    {
        self.write_text(
            dir.as_ref(),
            "txt",
            "write_lines",
            |x: &C::Out, b: &mut Vec<u8>| {
                use std::io::Write;
                let _ = write!(b, "{x}");
            },
        )
    }

    fn write_text<F>(self, dir: &Path, ext: &'static str, kind: &str, format: F) -> Result<()>
    where
        F: FnMut(&C::Out, &mut Vec<u8>) + Clone + Send + 'static,
    {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::other("exists and is not a directory"),
            ));
        }
        let d = dir.to_path_buf();
        self.g
            .borrow_mut()
            .prepare
            .push(Box::new(move || prepare_output_dir(&d)));
        let d = dir.to_path_buf();
        self.finish(format!("{kind}({})", dir.display()), move |i, m| {
            TextSink::part(&d, i, ext, format.clone(), m.clone())
        });
        Ok(())
    }

    /// Ends the stream in a terminal built per subtask, creating the stage's tasks.
    pub(crate) fn finish<T, MT>(self, terminal: String, mut make_terminal: MT)
    where
        T: Terminal<C::Out> + 'static,
        MT: FnMut(usize, &std::sync::Arc<crate::runtime::metrics::StageMetrics>) -> T,
    {
        let Stream {
            g,
            mut input,
            chain,
            ops,
        } = self;
        let mut g = g.borrow_mut();
        let slot = input.slot.clone();
        let p = slot.ids.len();
        let stage_name = g.stages[slot.stage].source.clone();
        for i in 0..p {
            let mut c = chain.clone();
            c.open(i, p);
            let body = StageTask {
                name: format!("stage {} `{}` subtask {i}", slot.stage, stage_name),
                input: (input.make)(i),
                chain: c,
                terminal: make_terminal(i, &slot.metrics),
                buf: Batch::default(),
                ended: false,
                metrics: slot.metrics.clone(),
                next_wake: None,
            };
            g.tasks[slot.ids.start + i] = Some(Box::new(body));
        }
        let info = &mut g.stages[slot.stage];
        info.ops = ops;
        info.terminal = terminal;
        info.built = true;
    }

    fn into_part(self) -> StreamPart<C> {
        StreamPart(self)
    }

    pub(crate) fn bounded(&self) -> bool {
        self.input.bounded
    }
}

/// One upstream of an exchange, with its record type fixed and its chain type erased.
trait UpstreamPart<T: Send + 'static> {
    fn parallelism(&self) -> usize;
    fn stage(&self) -> usize;
    fn bounded(&self) -> bool;
    fn graph(&self) -> GraphRef;
    fn finish_into(
        self: Box<Self>,
        outs: Vec<crate::runtime::exchange::ChannelOut<T>>,
        first_index: usize,
        partitioner: &mut dyn FnMut(usize) -> Box<dyn Partitioner<T>>,
        batch_size: usize,
    );
}

struct StreamPart<C: Chain>(Stream<C>);

impl<T: Send + 'static> Partitioner<T> for Box<dyn Partitioner<T>> {
    #[inline]
    fn route(&mut self, item: &T, consumers: usize) -> usize {
        (**self).route(item, consumers)
    }
}

impl<C: Chain> UpstreamPart<C::Out> for StreamPart<C> {
    fn parallelism(&self) -> usize {
        self.0.input.slot.ids.len()
    }
    fn stage(&self) -> usize {
        self.0.input.slot.stage
    }
    fn bounded(&self) -> bool {
        self.0.bounded()
    }
    fn graph(&self) -> GraphRef {
        self.0.g.clone()
    }
    fn finish_into(
        self: Box<Self>,
        outs: Vec<crate::runtime::exchange::ChannelOut<C::Out>>,
        first_index: usize,
        partitioner: &mut dyn FnMut(usize) -> Box<dyn Partitioner<C::Out>>,
        batch_size: usize,
    ) {
        let n = self.parallelism();
        let mut parts: Vec<Option<Box<dyn Partitioner<C::Out>>>> =
            (0..n).map(|i| Some(partitioner(first_index + i))).collect();
        self.0.finish("exchange".into(), move |i, _| {
            let p = parts[i].take().unwrap_or_else(|| Box::new(RoundRobin(i)));
            ExchangeWriter::new(first_index + i, outs.clone(), p, batch_size)
        });
    }
}

/// Connects `parts` to a new stage through an exchange with the given partitioner.
fn exchange<T: Send + 'static, P: Partitioner<T> + 'static>(
    parts: Vec<Box<dyn UpstreamPart<T>>>,
    how: &str,
    loc: &'static Location<'static>,
    mut partitioner: impl FnMut(usize) -> P,
) -> Stream<Identity<T>> {
    let g = parts[0].graph();
    let (p_down, batch) = {
        let g = g.borrow();
        (g.config.parallelism, g.config.batch_size)
    };
    let producers: usize = parts.iter().map(|p| p.parallelism()).sum();
    let bounded = parts.iter().all(|p| p.bounded());
    let inputs = parts
        .iter()
        .map(|p| (p.stage(), how.to_string()))
        .collect::<Vec<_>>();
    let from = inputs
        .iter()
        .map(|(s, _)| format!("stage {s}"))
        .collect::<Vec<_>>()
        .join(" + ");
    let slot = g
        .borrow_mut()
        .reserve(p_down, format!("from {from} via {how}"), inputs, loc);
    let ids: Vec<usize> = slot.ids.clone().collect();
    let (outs, ins) = channels::<T>(producers, &ids);
    let mut first = 0;
    let mut boxed = |i: usize| Box::new(partitioner(i)) as Box<dyn Partitioner<T>>;
    for part in parts {
        let n = part.parallelism();
        part.finish_into(outs.clone(), first, &mut boxed, batch);
        first += n;
    }
    let make = crate::runtime::exchange::input_maker(ins);
    Stream::new(
        g,
        InputSpec {
            slot,
            make,
            bounded,
        },
    )
}

/// A stream partitioned by key. Aggregates on it are *rolling*: in a bounded job each key's
/// final result is emitted once at the end; in an unbounded job the updated result is emitted
/// whenever the key's value changes.
#[must_use = "a keyed stream does nothing until it is aggregated"]
pub struct KeyedStream<C: Chain, KF> {
    pub(crate) stream: Stream<C>,
    pub(crate) key: Named<KF>,
}

/// The record type of a keyed stream's input.
type In<C> = <C as Chain>::Out;

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Aggregates each key's records with an [`Aggregate`], pre-aggregating before the
    /// exchange. Emits `(key, result)`.
    #[track_caller]
    pub fn aggregate<A: Aggregate<C::Out>>(self, agg: A) -> Stream<impl Chain<Out = (K, A::Out)>> {
        self.aggregate_as("aggregate", agg, |k, r| (k, r))
    }

    /// Counts each key's records: `(key, count)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env.from_iter(["a", "b", "a"]).key_by(|w| w.to_string()).count().collect();
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn count(self) -> Stream<impl Chain<Out = (K, u64)>> {
        self.aggregate_as("count", Count, |k, n| (k, n))
    }

    /// Sums `f(record)` per key: `(key, sum)`.
    #[track_caller]
    pub fn sum<S, F>(self, f: F) -> Stream<impl Chain<Out = (K, S)>>
    where
        F: FnMut(&C::Out) -> S + Clone + Send + 'static,
        S: std::ops::AddAssign + Clone + Send + 'static,
    {
        let name = OpName::new("sum", Location::caller());
        self.aggregate_as("sum", Sum(Named { f, name }), |k, s| (k, s))
    }

    /// The smallest `f(record)` per key: `(key, min)`.
    #[track_caller]
    pub fn min<V, F>(self, f: F) -> Stream<impl Chain<Out = (K, V)>>
    where
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd + Clone + Send + 'static,
    {
        let name = OpName::new("min", Location::caller());
        self.aggregate_as("min", Extreme::<F, false>(Named { f, name }), |k, v| (k, v))
    }

    /// The largest `f(record)` per key: `(key, max)`.
    #[track_caller]
    pub fn max<V, F>(self, f: F) -> Stream<impl Chain<Out = (K, V)>>
    where
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd + Clone + Send + 'static,
    {
        let name = OpName::new("max", Location::caller());
        self.aggregate_as("max", Extreme::<F, true>(Named { f, name }), |k, v| (k, v))
    }

    /// The record with the smallest `f(record)` per key (the first such record on ties).
    #[track_caller]
    pub fn min_by<V, F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: Clone,
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd,
    {
        let name = OpName::new("min_by", Location::caller());
        self.aggregate_as("min_by", ExtremeBy::<F, false>(Named { f, name }), |_, r| r)
    }

    /// The record with the largest `f(record)` per key (the first such record on ties).
    #[track_caller]
    pub fn max_by<V, F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: Clone,
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd,
    {
        let name = OpName::new("max_by", Location::caller());
        self.aggregate_as("max_by", ExtremeBy::<F, true>(Named { f, name }), |_, r| r)
    }

    /// Combines each key's records with an associative function.
    #[track_caller]
    pub fn reduce<F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: Clone,
        F: FnMut(C::Out, C::Out) -> C::Out + Clone + Send + 'static,
    {
        let name = OpName::new("reduce", Location::caller());
        self.aggregate_as("reduce", Reduce(Named { f, name }), |_, r| r)
    }

    /// Folds each key's records, in arrival order, into an accumulator starting at `init`:
    /// `(key, acc)`. `f` need not be associative, so records are not pre-aggregated.
    #[track_caller]
    pub fn fold<A, F>(self, init: A, f: F) -> Stream<impl Chain<Out = (K, A)>>
    where
        A: Clone + Send + 'static,
        F: FnMut(&mut A, C::Out) + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let name = OpName::new("fold", loc);
        let KeyedStream { stream, key } = self;
        let bounded = stream.bounded();
        let op = format!("{} + {}", key.name.as_str(), name.as_str());
        let ex = exchange_by_key(stream, loc, key);
        let combine = FoldRecords {
            init,
            f: Named { f, name },
        };
        keyed_op(ex, op, combine, bounded, |k, a| (k, a))
    }

    #[track_caller]
    fn aggregate_as<A, R, OF>(self, kind: &str, agg: A, out: OF) -> Stream<impl Chain<Out = R>>
    where
        A: Aggregate<C::Out>,
        R: Send + 'static,
        OF: FnMut(K, A::Out) -> R + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let name = OpName::new(kind, loc);
        let KeyedStream { stream, key } = self;
        let bounded = stream.bounded();
        let capacity = stream.g.borrow().config.pre_aggregate_capacity;
        let op = format!("{} + {} (merge partials)", key.name.as_str(), name.as_str());
        let pre = format!("{} + {} (pre-aggregate)", key.name.as_str(), name.as_str());
        let (k2, a2) = (key.clone(), agg.clone());
        let stream = Stream {
            ops: [stream.ops, vec![pre]].concat(),
            ..stream
        };
        let ex = exchange_keyed(stream, loc, move |w| PreAggregate {
            key: k2.clone(),
            agg: a2.clone(),
            table: Table::default(),
            capacity,
            writer: w,
            _t: PhantomData,
        });
        keyed_op(
            ex,
            op,
            MergePartials(agg, PhantomData::<fn(In<C>)>),
            bounded,
            out,
        )
    }
}

/// Routes records by the key group of their key, computed by the key function.
struct KeyRoute<KF> {
    key: Named<KF>,
    max_parallelism: u32,
}

impl<T, K: Hash, KF: FnMut(&T) -> K + Send> Partitioner<T> for KeyRoute<KF> {
    #[inline]
    fn route(&mut self, item: &T, consumers: usize) -> usize {
        let k = crate::chain::guarded!(self.key.name, (self.key.f)(item));
        let kg = flow_state::key_group_of(
            crate::runtime::exchange::stable_hash(&k),
            self.max_parallelism,
        );
        flow_state::subtask_for_key_group(kg, self.max_parallelism, consumers as u32) as usize
    }
}

/// The receiving side of a keyed exchange that carries bare records: computes each record's
/// key again on arrival (as Flink does), so the key never crosses the exchange.
struct RekeyInput<T, KF> {
    inner: crate::runtime::exchange::ExchangeInput<T>,
    key: Named<KF>,
    tmp: Batch<T>,
}

impl<T: Send, K, KF: FnMut(&T) -> K + Send> Input<(K, T)> for RekeyInput<T, KF> {
    fn poll(
        &mut self,
        cx: &TaskCx<'_>,
        buf: &mut Batch<(K, T)>,
    ) -> Result<crate::runtime::stage::Poll> {
        let r = self.inner.poll(cx, &mut self.tmp)?;
        if matches!(r, crate::runtime::stage::Poll::Data) {
            let (key, ts) = (&mut self.key, std::mem::take(&mut self.tmp.ts));
            buf.data.reserve(self.tmp.data.len());
            let guard = crate::chain::PanicGuard(&key.name);
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

/// The downstream stage of a key-group exchange from `stream`'s stage, reserved.
struct KeyedExchange {
    g: GraphRef,
    slot: crate::env::StageSlot,
    ids: Vec<usize>,
    producers: usize,
    batch: usize,
    max_p: u32,
    bounded: bool,
}

fn keyed_exchange<C: Chain>(stream: &Stream<C>, loc: &'static Location<'static>) -> KeyedExchange {
    let g = stream.g.clone();
    let (p_down, batch, max_p) = {
        let g = g.borrow();
        (
            g.config.parallelism,
            g.config.batch_size,
            g.config.max_parallelism,
        )
    };
    let how = format!("hash by key, {max_p} key groups");
    let slot = g.borrow_mut().reserve(
        p_down,
        format!("from stage {} via {how}", stream.input.slot.stage),
        vec![(stream.input.slot.stage, how)],
        loc,
    );
    let ids = slot.ids.clone().collect();
    KeyedExchange {
        g,
        slot,
        ids,
        producers: stream.input.slot.ids.len(),
        batch,
        max_p,
        bounded: stream.bounded(),
    }
}

/// Ends `stream` in a key-group exchange of its records and returns the `(key, record)`
/// stream on the other side; the key is computed on both sides instead of being sent.
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
    let KeyedExchange {
        g,
        slot,
        ids,
        producers,
        batch,
        max_p,
        bounded,
    } = keyed_exchange(&stream, loc);
    let (outs, ins) = channels::<C::Out>(producers, &ids);
    let route_key = key.clone();
    stream.finish("exchange".into(), move |i, _| {
        let route = KeyRoute {
            key: route_key.clone(),
            max_parallelism: max_p,
        };
        ExchangeWriter::new(i, outs.clone(), route, batch)
    });
    let mut ins: Vec<Option<_>> = ins.into_iter().map(Some).collect();
    let make: crate::env::MakeInput<(K, C::Out)> =
        Box::new(move |i| match ins.get_mut(i).and_then(Option::take) {
            Some(inner) => Box::new(RekeyInput {
                inner,
                key: key.clone(),
                tmp: Batch::default(),
            }),
            None => Box::new(crate::runtime::stage::EmptyInput),
        });
    Stream::new(
        g,
        InputSpec {
            slot,
            make,
            bounded,
        },
    )
}

/// Ends `stream` in a terminal that writes `(K, V)` pairs into a key-group exchange, and
/// returns the stream of pairs on the other side.
pub(crate) fn exchange_keyed<C, K, V, T, MT>(
    stream: Stream<C>,
    loc: &'static Location<'static>,
    make: MT,
) -> Stream<Identity<(K, V)>>
where
    C: Chain,
    K: Hash + Send + 'static,
    V: Send + 'static,
    T: Terminal<C::Out> + 'static,
    MT: FnMut(ExchangeWriter<(K, V), KeyGroups>) -> T + Clone + 'static,
{
    let KeyedExchange {
        g,
        slot,
        ids,
        producers,
        batch,
        max_p,
        bounded,
    } = keyed_exchange(&stream, loc);
    let (outs, ins) = channels::<(K, V)>(producers, &ids);
    let mut make = make;
    stream.finish("exchange".into(), move |i, _| {
        make(ExchangeWriter::new(
            i,
            outs.clone(),
            KeyGroups {
                max_parallelism: max_p,
            },
            batch,
        ))
    });
    let make_input = crate::runtime::exchange::input_maker(ins);
    Stream::new(
        g,
        InputSpec {
            slot,
            make: make_input,
            bounded,
        },
    )
}

/// The chain of a keyed aggregate stage: the exchange's `(key, value)` pairs into the aggregate.
type KeyedAgg<K, V, G, R, OF> = KeyedAggregate<Identity<(K, V)>, K, V, G, R, OF>;

fn keyed_op<K, V, G, R, OF>(
    s: Stream<Identity<(K, V)>>,
    op: String,
    combine: G,
    bounded: bool,
    out: OF,
) -> Stream<KeyedAgg<K, V, G, R, OF>>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Send + 'static,
    G: Combine<V>,
    R: Send + 'static,
    OF: FnMut(K, G::Out) -> R + Clone + Send + 'static,
{
    s.then(op, |inner| KeyedAggregate {
        inner,
        combine,
        out,
        bounded,
        state: Table::default(),
        _p: PhantomData,
    })
}
