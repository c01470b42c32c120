//! Connectors: [`source`]s, [`sink`]s and the [`csv`] row format.
pub mod csv;
pub mod sink;
pub mod source;
