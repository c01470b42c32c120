//! The DataStream API: [`env::Env`] creates sources and runs jobs, [`stream::Stream`] and
//! [`stream::KeyedStream`] are the typed streams (`Stream::fan_out` feeds several consumers
//! from one), `exchange` is the one builder of edges between stages, [`summary`] what a
//! finished job did, [`metrics`] the user metrics, [`monitor`] a running job as observers
//! (the dashboard) see it, `recovery` how a job with
//! checkpoints starts. Operators add their methods to the stream types in [`crate::ops`];
//! sources and sinks in [`crate::io`].
pub mod env;
pub(crate) mod exchange;
mod fan_out;
pub mod metrics;
pub mod monitor;
pub(crate) mod recovery;
pub mod stream;
pub mod summary;
