//! The plan of a job as data: stages, the operators fused into each, and the exchanges
//! between them. `--plan` prints it ([`std::fmt::Display`]); it serialises to JSON for tools
//! and the web dashboard.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! let mut env = Env::new(Config::default().parallelism(2).name("wc"));
//! env.from_iter(["a b", "b"])
//!     .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
//!     .key_by(|w| w.clone())
//!     .count()
//!     .discard();
//! let plan = env.plan();
//! assert_eq!(plan.stages.len(), 2);
//! assert_eq!(plan.edges[0].partitioning, Partitioning::Hash { key_groups: 128 });
//! let kinds: Vec<_> = plan.stages[1].operators.iter().map(|o| o.kind.as_str()).collect();
//! assert_eq!(kinds, ["count"]);
//! assert!(plan.to_json().contains("\"job\": \"wc\""));
//! ```
use serde::Serialize;
use std::fmt;

/// How an exchange distributes records over the consuming stage's subtasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Partitioning {
    /// By the key's key group (`hash % key_groups`), to the subtask owning the key group.
    Hash {
        /// The number of key groups (the job's max parallelism).
        key_groups: u32,
    },
    /// Round-robin, one record at a time (`rebalance`, `union`).
    RoundRobin,
    /// Subtask `i` to subtask `i` (side outputs).
    Forward {
        /// What travels on the edge (e.g. `late records`).
        what: String,
    },
    /// Everything to a single subtask (`window_all`, `global`).
    Single,
    /// To consumers chosen at random (`shuffle`).
    Shuffle,
    /// Every record to every consumer (`broadcast`).
    Broadcast,
    /// Round-robin over the consumers that share the producer's share of the stage
    /// (`rescale`).
    Rescale,
    /// By a user function (`partition_custom`).
    Custom,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioning::Hash { key_groups } => write!(f, "hash by key, {key_groups} key groups"),
            Partitioning::RoundRobin => f.write_str("round-robin"),
            Partitioning::Forward { what } => write!(f, "forward: {what}"),
            Partitioning::Single => f.write_str("single subtask"),
            Partitioning::Shuffle => f.write_str("random"),
            Partitioning::Broadcast => f.write_str("broadcast"),
            Partitioning::Rescale => f.write_str("rescale"),
            Partitioning::Custom => f.write_str("custom"),
        }
    }
}

/// One operator fused into a stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanOperator {
    /// The operator's stable name: the one the job set with `.uid(..)`, else `stage.index.kind`,
    /// the same for the same job graph in every build. Checkpointed state is keyed by it.
    pub uid: String,
    /// The name the job gave it with `.name(..)`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the operator does: `map`, `window`, `count`, ...
    pub kind: String,
    /// Where the job's source declares it, `file:line`.
    pub declared_at: String,
    /// Its configuration, when it has one worth showing (window size, join bounds, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One stage: a source or exchange, fused operators, and the sink or exchange it ends in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanStage {
    /// The stage's index.
    pub id: usize,
    /// Its number of subtasks.
    pub parallelism: usize,
    /// The source it reads, or the exchange it receives from.
    pub head: String,
    /// The operators fused into it, in order.
    pub operators: Vec<PlanOperator>,
    /// The sink or exchange it ends in; `None` if its stream is never consumed.
    pub terminal: Option<String>,
    /// Where the job's source creates the stage.
    pub created_at: String,
}

/// An exchange from one stage into another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanEdge {
    /// The producing stage.
    pub from: usize,
    /// The consuming stage.
    pub to: usize,
    /// How records are distributed.
    pub partitioning: Partitioning,
}

/// A job's plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The job's name.
    pub job: String,
    /// The default parallelism of its stages.
    pub parallelism: usize,
    /// The number of key groups.
    pub max_parallelism: u32,
    /// The stages, in the order the job created them.
    pub stages: Vec<PlanStage>,
    /// The exchanges between stages.
    pub edges: Vec<PlanEdge>,
}

impl Plan {
    /// The plan as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job `{}`: {} stage(s), parallelism {}, {} key groups",
            self.job,
            self.stages.len(),
            self.parallelism,
            self.max_parallelism
        )?;
        for st in &self.stages {
            for e in self.edges.iter().filter(|e| e.to == st.id) {
                writeln!(
                    f,
                    "  stage {} ==[{}]==> stage {}",
                    e.from, e.partitioning, e.to
                )?;
            }
            let s = if st.parallelism == 1 { "" } else { "s" };
            writeln!(
                f,
                "stage {} ({} subtask{s}): {}",
                st.id, st.parallelism, st.head
            )?;
            for op in &st.operators {
                match &op.name {
                    Some(name) => write!(f, "    -> {name} ({}, {})", op.kind, op.declared_at)?,
                    None => write!(f, "    -> {} ({})", op.kind, op.declared_at)?,
                }
                if let Some(d) = &op.detail {
                    write!(f, " [{d}]")?;
                }
                writeln!(f)?;
            }
            match &st.terminal {
                Some(t) => writeln!(f, "    => {t}")?,
                None => writeln!(
                    f,
                    "    => (no sink: the stream created at {} is never consumed)",
                    st.created_at
                )?,
            }
        }
        Ok(())
    }
}
