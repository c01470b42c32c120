//! The error type of flow jobs.
use std::path::PathBuf;

/// Result of flow operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can make a flow job fail. Errors about input name the file and line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of an input file is not valid UTF-8.
    #[error("{path}:{line}: line is not valid UTF-8 (byte {column} of the line)")]
    Utf8 {
        /// Input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// 1-based byte column of the first invalid byte.
        column: usize,
    },
    /// A record of an input file could not be parsed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// Input file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What was wrong with the record.
        message: String,
    },
    /// A user function panicked inside an operator.
    #[error("operator `{operator}` panicked: {message}")]
    OperatorPanic {
        /// The operator (name and the place in the job's source where it was declared).
        operator: String,
        /// The panic's message.
        message: String,
    },
    /// A network source failed.
    #[error("{address}: {source}")]
    Net {
        /// The address that was connected to.
        address: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A record read from a network source is malformed.
    #[error("{address}: line {line}: {message}")]
    NetRecord {
        /// The address the record came from.
        address: String,
        /// 1-based line number on the connection.
        line: u64,
        /// What was wrong with the record.
        message: String,
    },
    /// The job's configuration or graph is invalid.
    #[error("invalid job: {0}")]
    Config(String),
    /// An async request of `map_async` did not complete within the operator's timeout.
    #[error("operator `{operator}`: an async request timed out after {timeout:?}")]
    AsyncTimeout {
        /// The operator (`map_async` and the place in the job's source where it was declared).
        operator: String,
        /// The timeout of its [`AsyncOptions`](crate::ops::async_io::AsyncOptions).
        timeout: std::time::Duration,
    },
    /// Reading or writing a checkpoint failed (the message names the file).
    #[error("checkpoint: {0}")]
    State(#[from] flow_state::StateError),
    /// A checkpoint cannot be taken or restored for this job (the message says why and names
    /// the operators and states involved).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Keyed state beyond the memory budget could not be written to or read from its spill
    /// directory (the message names the file and the state).
    #[error("spilled state: {0}")]
    Spill(String),
    /// The runtime could not start a thread it needs (the operating system refused).
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// What the thread was for.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The web dashboard could not start (its port is taken, say); the message says what to
    /// do about it.
    #[error("{0}")]
    Web(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
