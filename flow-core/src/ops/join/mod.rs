//! Two inputs: [`connect`] with a co-process function sharing keyed state, [`broadcast`]
//! state,
//! [`interval`] joins and [`window_join`]s.
pub mod broadcast;
pub mod co;
pub mod connect;
pub mod interval;
pub mod window_join;
