//! The runtime: tasks on a work-stealing pool, exchanges, stages, metrics.
pub(crate) mod exchange;
pub mod metrics;
pub(crate) mod progress;
pub(crate) mod stage;
pub(crate) mod task;
pub(crate) mod timer;
