//! The stream types of the DataStream API and the structural operations on them: fusing an
//! operator, ending a stage in a terminal, and `key_by`. The operators add their methods to
//! these types in `ops/` (`rebalance` and `union` in `ops/partition.rs`), the sources and
//! sinks in `io/`.
use crate::graph::{Ending, Feed, GraphRef, InputSpec, OpInfo};
use crate::record::Batch;
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Chain, Identity, OpenCx, Operator, Then};
use crate::runtime::panic::{Named, OpName};
use crate::runtime::snapshot::{Position, StateSupport};
use crate::runtime::stage::{Observed, StageTask, Terminal};
use std::hash::Hash;
use std::panic::Location;
use std::sync::Arc;

/// A stream of records of type `C::Out`: a source or exchange followed by a fused chain `C`.
///
/// Streams are built by chaining methods; each method is an operator. Operators up to the
/// next exchange (`key_by` + aggregate, `rebalance`, `union`) or sink are fused into one stage.
#[must_use = "a stream does nothing until it ends in a sink and the job is executed"]
pub struct Stream<C: Chain> {
    pub(crate) g: GraphRef,
    pub(crate) input: InputSpec<C::In>,
    pub(crate) chain: C,
    pub(crate) ops: Vec<OpInfo>,
    /// The parallelism asked for the keyed stage this stream feeds next
    /// ([`KeyedStream::parallelism`]); the job's by default.
    pub(crate) next_parallelism: Option<usize>,
}

impl<T: Send + 'static> Stream<Identity<T>> {
    pub(crate) fn new(g: GraphRef, input: InputSpec<T>) -> Self {
        Stream {
            g,
            input,
            chain: Identity::new(),
            ops: vec![],
            next_parallelism: None,
        }
    }
}

impl<C: Chain> Stream<C> {
    /// Fuses `op` after the stream's chain.
    pub(crate) fn then<O: Operator<C::Out>>(self, info: OpInfo, op: O) -> Stream<Then<C, O>> {
        let mut ops = self.ops;
        ops.push(info);
        Stream {
            g: self.g,
            input: self.input,
            chain: Then::new(self.chain, op),
            ops,
            next_parallelism: self.next_parallelism,
        }
    }

    /// The stage this stream belongs to, as the producer of an exchange.
    pub(crate) fn feed(&self) -> Feed {
        Feed {
            stage: self.input.slot.stage,
            parallelism: self.input.slot.ids.len(),
            bounded: self.input.bounded,
            next_parallelism: self.next_parallelism,
        }
    }

    /// Whether the stream ends (all its sources are bounded).
    pub(crate) fn bounded(&self) -> bool {
        self.input.bounded
    }

    /// Ends the stream in a terminal built per subtask, creating the stage's tasks.
    pub(crate) fn finish<T, MT>(self, terminal: Ending, mut make_terminal: MT)
    where
        T: Terminal<C::Out> + 'static,
        MT: FnMut(usize, &Arc<StageMetrics>) -> T,
    {
        let Stream {
            g,
            mut input,
            chain,
            ops,
            ..
        } = self;
        let mut g = g.borrow_mut();
        let slot = input.slot.clone();
        let p = slot.ids.len();
        let head = g.stages[slot.stage].head.clone();
        let source = g.stages[slot.stage].is_source();
        let watermark_every = g.config.watermark_interval;
        let max_parallelism = g.config.max_parallelism;
        let checkpoints = g.config.checkpoint_dir.is_some();
        let memory = g.state_memory();
        // Operators' stable names: the job's uid, or one derived from the plan.
        let uids: Arc<[String]> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| op.stable_uid(slot.stage, i))
            .collect();
        let mut states = Vec::new();
        chain.states(&mut states);
        let mut capable = Vec::new();
        chain.ttl_capable(&mut capable);
        for (i, op) in ops.iter().enumerate() {
            let expiring = capable.get(i).copied().flatten();
            if let (Some(_), Some(name), Some(StateSupport::Persisted(decls))) =
                (op.state_ttl, expiring, states.get_mut(i))
            {
                // Its entries carry write times: a checkpoint taken without a TTL does not
                // restore into a job with one, nor the other way round (as in Flink).
                for d in decls.iter_mut().filter(|d| d.name == name) {
                    d.types.push_str(" with TTL write times");
                }
            }
            if op.state_ttl.is_some() && expiring.is_none() {
                let e = crate::Error::Config(format!(
                    "state_ttl on `{}`, which keeps no keyed state that can expire (rolling \
                     aggregates and keyed process functions can)",
                    op.name.as_str()
                ));
                g.deferred_error.get_or_insert(e);
            }
        }
        let ttls: Option<Arc<[Option<std::time::Duration>]>> = ops
            .iter()
            .any(|o| o.state_ttl.is_some())
            .then(|| ops.iter().map(|o| o.state_ttl).collect());
        let first_sink = g.sink_subtasks;
        let is_sink = matches!(terminal, Ending::Sink(_));
        if is_sink {
            g.sink_subtasks += p;
        }
        for i in 0..p {
            let mut c = chain.clone();
            c.open(OpenCx {
                subtask: i,
                parallelism: p,
                checkpoints,
                memory: Some(memory.clone()),
                ttls: ttls.clone(),
                op: 0,
            });
            let body = StageTask {
                name: format!("stage {} `{head}` subtask {i}", slot.stage),
                input: (input.make)(i),
                chain: c,
                terminal: Observed::new(
                    make_terminal(i, &slot.metrics),
                    slot.metrics.subtask(i).clone(),
                ),
                buf: Batch::default(),
                ended: false,
                metrics: slot.metrics.subtask(i).clone(),
                waits: Default::default(),
                next_wake: None,
                source,
                sink: is_sink.then_some(first_sink + i),
                injected: 0,
                watermark_every: if source { watermark_every } else { usize::MAX },
                stage: slot.stage,
                uids: uids.clone(),
                at: Position {
                    subtask: i,
                    parallelism: p,
                    max_parallelism,
                },
                restore: None,
                seen: 0,
                loading: None,
            };
            g.tasks[slot.ids.start + i] = Some(Box::new(body));
        }
        let info = &mut g.stages[slot.stage];
        info.states = uids.iter().cloned().zip(states).collect();
        info.ops = ops;
        info.terminal = Some(terminal);
    }

    /// Names the operator before it (or, right after a source or an exchange, the stage's
    /// input) in the plan, the summary and the dashboard (Flink's `.name()`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// env.from_iter(["a b"]).name("sentences")
    ///     .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>()).name("words")
    ///     .discard();
    /// let plan = env.plan();
    /// assert_eq!(plan.stages[0].head, "sentences");
    /// assert_eq!(plan.stages[0].operators[0].name.as_deref(), Some("words"));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        match self.ops.last_mut() {
            Some(op) => op.label = Some(name),
            None => self.g.borrow_mut().stages[self.input.slot.stage].head = name,
        }
        self
    }

    /// Gives the operator before it a stable name, which its checkpointed state will be
    /// found by after the job changes (Flink's `.uid()`); uids must be unique in a job.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.from_iter([('a', 1)]).key_by(|e| e.0).sum(|e| e.1).uid("totals").discard();
    /// assert_eq!(env.plan().stages[1].operators[0].uid, "totals");
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn uid(mut self, uid: impl Into<String>) -> Self {
        match self.ops.last_mut() {
            Some(op) => op.uid = Some(uid.into()),
            None => {
                let e = crate::Error::Config(format!(
                    "uid `{}` set on the stream created at {} before any operator",
                    uid.into(),
                    self.g.borrow().stages[self.input.slot.stage].created_at
                ));
                self.g.borrow_mut().deferred_error.get_or_insert(e);
            }
        }
        self
    }

    /// Expires the keyed state of the operator before it (a rolling aggregate or a keyed
    /// process function) for keys not written for `ttl` of processing time — Flink's state
    /// TTL with `OnCreateAndWrite` updates and `NeverReturnExpired` visibility. An expired key
    /// reads as absent and its next record starts afresh; expired entries are removed from
    /// memory in the background of processing (and from spilled state when it is read or
    /// merged) and deleted from the next checkpoint. Resolution 100 ms.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let sums = env
    ///     .from_iter([('a', 1), ('a', 2)])
    ///     .key_by(|e| e.0)
    ///     .sum(|e| e.1)
    ///     .state_ttl(Duration::from_secs(3600))
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(sums.take(), vec![('a', 3)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn state_ttl(mut self, ttl: std::time::Duration) -> Self {
        match self.ops.last_mut() {
            Some(op) => op.state_ttl = Some(ttl),
            None => {
                let e = crate::Error::Config(format!(
                    "state_ttl set on the stream created at {} before any operator",
                    self.g.borrow().stages[self.input.slot.stage].created_at
                ));
                self.g.borrow_mut().deferred_error.get_or_insert(e);
            }
        }
        self
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask of the
    /// next stage. Follow it with a keyed aggregate, a window, a process function or a join.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sums = env.from_iter([('a', 1), ('b', 2), ('a', 3)]).key_by(|e| e.0).sum(|e| e.1).collect();
    /// env.execute()?;
    /// let mut got = sums.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 4), ('b', 2)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
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
}

impl<C: Chain, KF> KeyedStream<C, KF> {
    /// Runs the keyed operator that follows (aggregate, window, process function, join) in
    /// `n` subtasks instead of the job's parallelism (Flink's `setParallelism` on a keyed
    /// operator); its key groups are spread over those `n`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env
    ///     .from_iter(["a", "b", "a"])
    ///     .key_by(|w| w.to_string())
    ///     .parallelism(3)
    ///     .count()
    ///     .collect();
    /// assert_eq!(env.plan().stages[1].parallelism, 3);
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn parallelism(mut self, n: usize) -> Self {
        self.stream.next_parallelism = Some(n.max(1));
        self
    }
}

/// A stream partitioned by key, made by [`Stream::key_by`]. Aggregates on it are *rolling*:
/// in a bounded job each key's final result is emitted once at the end; in an unbounded job
/// the updated result is emitted whenever the key's value changes.
#[must_use = "a keyed stream does nothing until it is aggregated, windowed or processed"]
pub struct KeyedStream<C: Chain, KF> {
    pub(crate) stream: Stream<C>,
    pub(crate) key: Named<KF>,
}
