//! Sinks: [`collect`] into memory, [`discard`], and text ([`part_files`]: `print`,
//! `write_csv`, `write_lines`). Each file adds its methods to [`crate::Stream`].
pub mod collect;
pub mod discard;
pub mod part_files;

pub use collect::Collected;
pub use part_files::read_part_files;
