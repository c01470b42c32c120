//! Sources: files read in parallel chunks ([`file`](mod@file)), in-memory collections ([`iter`]),
//! generators ([`generator`]) and sockets ([`socket`]); [`rows`] reads files of records of
//! any serde type (CSV, JSON lines). Each file adds its constructors to [`crate::Env`].
pub mod file;
pub mod generator;
pub mod iter;
pub(crate) mod position;
pub mod rows;
pub mod socket;

/// What a lenient source does with a record it cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnBadRecord {
    /// Fail the job with an error naming the file and line (the default).
    #[default]
    Fail,
    /// Skip the record, count it in the job's summary and log it as a warning.
    Skip,
}

/// Options of file sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// What to do with a line that is not UTF-8 or not a valid record.
    pub on_bad_record: OnBadRecord,
    /// The file's first record is a header, not data: `read_csv_serde` maps fields to struct
    /// fields by its names; the other file sources skip it. Off by default.
    pub header: bool,
}

impl ReadOptions {
    /// Skip (and count) bad records instead of failing.
    pub fn lenient() -> Self {
        ReadOptions {
            on_bad_record: OnBadRecord::Skip,
            header: false,
        }
    }

    /// The file's first record is a header (see [`ReadOptions::header`]).
    pub fn with_header(mut self) -> Self {
        self.header = true;
        self
    }
}
