//! The operators, one file (or folder) each, holding the operator, the methods it adds to
//! the stream types, and its unit tests.
//!
//! - [`stateless`] — `map`, `filter`, `flat_map`, `filter_map`, `inspect`.
//! - [`partition`] — `rebalance` and `union`.
//! - [`timestamps`] — `assign_timestamps`.
//! - [`aggregate`] — rolling keyed aggregates with pre-aggregation before the exchange.
//! - [`split`] and [`side_output`]: side outputs (`Either` + `split`, and [`side_output::OutputTag`]).
//! - [`process`] — keyed and non-keyed process functions, keyed state, timers.
//! - [`window`] — window assigners, the window operator, global windows with triggers.
//! - [`async_io`] — `map_async`: async requests with bounded concurrency and a timeout.
//! - [`join`] — `connect` with co-process functions, interval joins, window joins.
pub mod aggregate;
pub mod async_io;
pub mod join;
pub mod partition;
pub mod process;
pub mod side_output;
pub mod split;
pub mod stateless;
pub mod timestamps;
pub mod window;

#[cfg(test)]
mod barrier_tests;

pub use crate::runtime::snapshot::{StateKey, StateValue};

/// A keyed table with flow's fast, stable hasher.
pub(crate) type Table<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;
