//! Errors of the checkpoint store. Every error about a file names its path.

use std::io;
use std::path::PathBuf;

/// An error of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A storage operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation (`create`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The file or directory it acted on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another open store holds the directory's lock file.
    #[error("checkpoint directory is in use: lock file {} is held by {holder}", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// A file is damaged: bad magic, version, checksum, length or structure.
    #[error("corrupt file {}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest lists a segment that does not exist.
    #[error("missing segment {} (listed by manifest {})", path.display(), manifest.display())]
    MissingSegment {
        /// The missing segment file.
        path: PathBuf,
        /// The manifest that lists it.
        manifest: PathBuf,
    },
    /// No manifest for this checkpoint id.
    #[error("checkpoint {id} does not exist (no manifest {})", path.display())]
    NoSuchCheckpoint {
        /// The checkpoint id asked for.
        id: u64,
        /// Where its manifest would be.
        path: PathBuf,
    },
    /// A checkpoint id that is not larger than every existing one.
    #[error("checkpoint id {id} must be larger than {largest}, the largest checkpoint in {}", dir.display())]
    IdNotIncreasing {
        /// The id asked for.
        id: u64,
        /// The largest id present.
        largest: u64,
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// The checkpoint has no state of this name.
    #[error("checkpoint {checkpoint} has no state {name:?} of operator {uid:?}")]
    UnknownState {
        /// The checkpoint.
        checkpoint: u64,
        /// Operator uid.
        uid: String,
        /// State name.
        name: String,
    },
    /// The API was used against its contract (e.g. entries out of order).
    #[error("checkpoint {checkpoint}: {reason}")]
    Usage {
        /// The checkpoint being written.
        checkpoint: u64,
        /// What was wrong.
        reason: String,
    },
    /// An earlier error failed this checkpoint; it cannot commit.
    #[error("checkpoint {checkpoint} failed and cannot be committed: {reason}")]
    Failed {
        /// The checkpoint.
        checkpoint: u64,
        /// The first error.
        reason: String,
    },
}

/// Result of the checkpoint store.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> StateError {
    let path = path.into();
    move |source| StateError::Io { op, path, source }
}

pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> StateError {
    StateError::Corrupt {
        path: path.into(),
        reason: reason.into(),
    }
}
