//! Two keyed inputs: [`connect`] with a co-process function sharing keyed state,
//! [`interval`] joins and [`window_join`]s.
pub mod connect;
pub mod interval;
pub mod window_join;
