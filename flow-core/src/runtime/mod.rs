//! The runtime: how a job runs, independent of how it was described.
//!
//! - [`operator`]: the one operator abstraction and the fused chains built from it.
//! - `stage`: a subtask — input, fused chain, terminal — run a budget of batches per step.
//! - `task`: subtasks as tasks on a rayon pool, with a lost-wakeup-free state machine
//!   (`task_state`).
//! - `sync`: the atomics of the lock-free protocols, loom's under `--cfg loom`.
//! - `exchange`: bounded channels between stages, partitioners, batch recycling.
//! - `watermark`: combining the watermarks of an operator's inputs.
//! - `timer`: the job's wall-clock wake-ups; `panic`: naming the operator that panicked.
//! - [`snapshot`], `entries` and `persist`: what subtasks write at checkpoint barriers, and the writer
//!   that makes checkpoints durable and restores them (with `flow-state`).
//! - `copy_order`: the order of a large table's buckets, in which a checkpoint copies its keys.
//! - `state_memory`: the keyed-state memory budget and the spill directory of cold entries.
//! - [`metrics`] and `progress`: per-subtask counters and the terminal's progress bar.
//!
//! Nothing here imports the API (`api`), the operators (`ops`) or the connectors (`io`).
pub mod checkpoint;
pub(crate) mod copy_order;
pub(crate) mod entries;
pub(crate) mod exchange;
pub(crate) mod keyed_table;
pub mod metrics;
pub mod operator;
pub(crate) mod panic;
pub(crate) mod persist;
pub(crate) mod progress;
pub mod snapshot;
pub(crate) mod stage;
pub(crate) mod state_memory;
pub(crate) mod sync;
pub(crate) mod task;
// `pub` items only so that a loom build can re-export them for its model (`crate::__loom`).
#[cfg_attr(not(loom), allow(unreachable_pub))]
pub(crate) mod task_state;
pub(crate) mod timer;
pub mod user_metrics;
pub(crate) mod watermark;
