//! The job graph under construction: stages (a source or an exchange, fused operators, a
//! terminal), the tasks that will run them, and the typed [`plan::Plan`] that describes them.
pub mod plan;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::panic::OpName;
use crate::runtime::persist::SinkCommit;
use crate::runtime::snapshot::StateSupport;
use crate::runtime::stage::MakeInput;
use crate::runtime::state_memory::StateMemory;
use crate::runtime::task::TaskBody;
use crate::runtime::user_metrics::UserMetric;
use plan::{Partitioning, Plan, PlanEdge, PlanOperator, PlanStage};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

/// An operator of a stage as the plan shows it.
#[derive(Clone, Debug)]
pub(crate) struct OpInfo {
    pub(crate) name: OpName,
    /// What the operator is configured to do, beyond its kind (window size, bounds...).
    pub(crate) detail: Option<String>,
    /// The name the job gave it (`.name(..)`).
    pub(crate) label: Option<String>,
    /// The stable name the job gave it (`.uid(..)`).
    pub(crate) uid: Option<String>,
    /// The time-to-live of its keyed state (`.state_ttl(..)`).
    pub(crate) state_ttl: Option<std::time::Duration>,
}

impl OpInfo {
    pub(crate) fn new(name: &OpName) -> Self {
        OpInfo {
            name: name.clone(),
            detail: None,
            label: None,
            uid: None,
            state_ttl: None,
        }
    }
    /// The operator's stable name: the uid the job gave it, or one derived from its place in
    /// the plan (stage, position in the stage, kind).
    pub(crate) fn stable_uid(&self, stage: usize, index: usize) -> String {
        self.uid
            .clone()
            .unwrap_or_else(|| format!("{stage}.{index}.{}", self.name.kind()))
    }
    pub(crate) fn with_detail(name: &OpName, detail: impl Into<String>) -> Self {
        OpInfo {
            detail: Some(detail.into()),
            ..OpInfo::new(name)
        }
    }
}

/// What a stage ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// A sink, by name (`collect`, `write_csv(dir)`, ...).
    Sink(String),
    /// An exchange into another stage, by what partitions it (`key_by (file:line)`, ...).
    Exchange(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Sink(s) => f.write_str(s),
            Ending::Exchange(by) => write!(f, "exchange by {by}"),
        }
    }
}

/// An input edge of a stage.
#[derive(Clone, Debug)]
pub(crate) struct EdgeInfo {
    pub(crate) from: usize,
    pub(crate) partitioning: Partitioning,
}

/// Description of a stage, for the plan, the progress line and the summary.
pub(crate) struct StageInfo {
    /// The source, or what the exchange into the stage is.
    pub(crate) head: String,
    pub(crate) ops: Vec<OpInfo>,
    /// The sink or exchange the stage ends in; `None` until the stream is consumed.
    pub(crate) terminal: Option<Ending>,
    pub(crate) parallelism: usize,
    pub(crate) inputs: Vec<EdgeInfo>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) created_at: String,
    /// The state each fused operator keeps, by uid (set when the stage is built).
    pub(crate) states: Vec<(String, StateSupport)>,
    /// For a sink stage: how its pre-committed output is published and recovered, when
    /// checkpoints are persisted.
    pub(crate) sink_commit: Option<SinkCommit>,
}

impl StageInfo {
    pub(crate) fn is_source(&self) -> bool {
        self.inputs.is_empty()
    }
}

/// The operator graph under construction.
pub(crate) struct Graph {
    pub(crate) config: Config,
    pub(crate) tasks: Vec<Option<Box<dyn TaskBody>>>,
    pub(crate) stages: Vec<StageInfo>,
    /// Work to do before the job starts (preparing output directories).
    pub(crate) prepare: Vec<Box<dyn FnOnce() -> Result<()>>>,
    /// An error found while building that could not be returned where it happened.
    pub(crate) deferred_error: Option<Error>,
    /// Sink subtasks so far: each acknowledges checkpoint barriers under its index.
    pub(crate) sink_subtasks: usize,
    /// The user metrics the job registered, by name.
    pub(crate) user_metrics: Vec<(String, UserMetric)>,
    /// The tagged side outputs of operators that have them, under (stage, operator index):
    /// the operators' registries of consumed tags (type-erased; `ops::side_output` knows the
    /// type).
    pub(crate) side_tags: HashMap<(usize, usize), Box<dyn Any>>,
    /// The keyed-state memory budget, made on first use.
    memory: Option<Arc<StateMemory>>,
}

pub(crate) type GraphRef = Rc<RefCell<Graph>>;

/// A stage whose subtasks have task ids but no bodies yet.
#[derive(Clone)]
pub(crate) struct StageSlot {
    pub(crate) stage: usize,
    pub(crate) ids: Range<usize>,
    pub(crate) metrics: Arc<StageMetrics>,
}

/// A producing stage of an exchange.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Feed {
    pub(crate) stage: usize,
    pub(crate) parallelism: usize,
    pub(crate) bounded: bool,
    /// The parallelism asked for the keyed stage it feeds, if any.
    pub(crate) next_parallelism: Option<usize>,
}

/// A stage's input before the stage is built.
pub(crate) struct InputSpec<T> {
    pub(crate) slot: StageSlot,
    pub(crate) make: MakeInput<T>,
    pub(crate) bounded: bool,
}

impl Graph {
    pub(crate) fn new(config: Config) -> Self {
        Graph {
            config,
            tasks: vec![],
            stages: vec![],
            prepare: vec![],
            deferred_error: None,
            sink_subtasks: 0,
            user_metrics: Vec::new(),
            side_tags: HashMap::new(),
            memory: None,
        }
    }

    /// The job's keyed-state memory budget ([`Config::state_memory`]).
    pub(crate) fn state_memory(&mut self) -> Arc<StateMemory> {
        let c = &self.config;
        Arc::clone(self.memory.get_or_insert_with(|| {
            StateMemory::new(
                c.state_memory
                    .unwrap_or_else(crate::runtime::state_memory::default_budget),
                c.state_dir.clone(),
            )
        }))
    }

    /// Reserves a stage of `parallelism` subtasks reading `head` through `inputs`.
    pub(crate) fn reserve(
        &mut self,
        parallelism: usize,
        head: String,
        inputs: Vec<EdgeInfo>,
        created_at: &std::panic::Location<'_>,
    ) -> StageSlot {
        let start = self.tasks.len();
        self.tasks.extend((0..parallelism).map(|_| None));
        let metrics = Arc::new(StageMetrics::new(parallelism));
        self.stages.push(StageInfo {
            head,
            ops: vec![],
            terminal: None,
            parallelism,
            inputs,
            metrics: metrics.clone(),
            created_at: format!("{}:{}", created_at.file(), created_at.line()),
            states: Vec::new(),
            sink_commit: None,
        });
        StageSlot {
            stage: self.stages.len() - 1,
            ids: start..start + parallelism,
            metrics,
        }
    }

    /// The first uid that two operators share, with where they were declared.
    pub(crate) fn duplicate_uid(&self) -> Option<(String, String, String)> {
        let mut seen: std::collections::HashMap<&str, &OpInfo> = Default::default();
        for op in self.stages.iter().flat_map(|s| &s.ops) {
            if let Some(uid) = op.uid.as_deref() {
                if let Some(first) = seen.insert(uid, op) {
                    return Some((
                        uid.to_string(),
                        first.name.as_str().to_string(),
                        op.name.as_str().to_string(),
                    ));
                }
            }
        }
        None
    }

    /// Forgets the job built so far.
    pub(crate) fn clear(&mut self) {
        self.tasks.clear();
        self.stages.clear();
        self.prepare.clear();
        self.deferred_error = None;
        self.sink_subtasks = 0;
        self.user_metrics.clear();
        self.side_tags.clear();
        // The next job gets a budget (and spill directory) of its own.
        self.memory = None;
    }

    /// The typed plan of the graph built so far.
    pub(crate) fn plan(&self) -> Plan {
        Plan {
            job: self.config.name.clone(),
            parallelism: self.config.parallelism,
            max_parallelism: self.config.max_parallelism,
            stages: self
                .stages
                .iter()
                .enumerate()
                .map(|(id, st)| PlanStage {
                    id,
                    parallelism: st.parallelism,
                    head: st.head.clone(),
                    operators: st
                        .ops
                        .iter()
                        .enumerate()
                        .map(|(i, op)| PlanOperator {
                            uid: op.stable_uid(id, i),
                            name: op.label.clone(),
                            kind: op.name.kind().to_string(),
                            declared_at: op.name.declared_at().to_string(),
                            detail: op.detail.clone(),
                        })
                        .collect(),
                    terminal: st.terminal.as_ref().map(|t| t.to_string()),
                    created_at: st.created_at.clone(),
                })
                .collect(),
            edges: self
                .stages
                .iter()
                .enumerate()
                .flat_map(|(to, st)| {
                    st.inputs.iter().map(move |e| PlanEdge {
                        from: e.from,
                        to,
                        partitioning: e.partitioning.clone(),
                    })
                })
                .collect(),
        }
    }
}
