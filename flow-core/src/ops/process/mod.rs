//! Process functions: keyed ones with per-key state and timers ([`keyed`], [`state`]), and
//! non-keyed ones fused with the operators around them ([`non_keyed`]).
pub mod keyed;
pub mod non_keyed;
pub mod state;
pub(crate) mod timers;
