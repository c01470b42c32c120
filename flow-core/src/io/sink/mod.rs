//! Sinks: [`collect`] into memory, [`discard`], and text ([`part_files`]: `print`,
//! `write_csv`, `write_lines`; [`rows`]: records of any type, `write_csv_serde`,
//! `write_json_lines`, `print_debug`; [`buckets`]: part files in bucket directories,
//! `write_csv_bucketed`, `write_csv_serde_bucketed`). Each file adds its methods to [`crate::Stream`].
pub mod buckets;
pub mod collect;
pub mod discard;
pub mod part_files;
pub mod rows;

pub use collect::Collected;
pub use part_files::{read_part_files, read_part_files_by_bucket};
pub use rows::WriteOptions;
