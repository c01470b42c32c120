//! The storage layer under checkpoints: a small trait over the file operations the commit
//! protocol needs, a real filesystem implementation ([`FsStorage`]), and (in [`crate::sim`]) a
//! simulation that loses unsynced writes on a power cut.

use std::any::Any;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::path::Path;

/// The bytes of an immutable file: a read-only memory map on a real filesystem, or an owned
/// copy.
pub struct ReadOnlyBytes {
    inner: Inner,
}

enum Inner {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl ReadOnlyBytes {
    /// Bytes held in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        ReadOnlyBytes {
            inner: Inner::Owned(bytes),
        }
    }

    /// Whether the bytes are a memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped(_))
    }

    /// Returns the pages of a memory map that this process touched to the page cache, so they
    /// no longer count in its resident set (reading them again faults them back in). Nothing
    /// for bytes held in memory.
    pub fn release_pages(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Mapped(m) => crate::sys::release_pages(m),
            Inner::Owned(_) => Ok(()),
        }
    }

    /// [`ReadOnlyBytes::release_pages`] for the whole pages within `offset..offset + len`.
    pub fn release_range(&self, offset: usize, len: usize) -> io::Result<()> {
        match &self.inner {
            Inner::Mapped(m) => crate::sys::release_range(m, offset, len),
            Inner::Owned(_) => Ok(()),
        }
    }
}

impl Deref for ReadOnlyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Mapped(m) => m,
            Inner::Owned(v) => v,
        }
    }
}

impl fmt::Debug for ReadOnlyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyBytes")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// A file being written. Nothing written is durable until [`WritableFile::sync`] returns.
pub trait WritableFile: Send {
    /// Appends `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fsync`: makes the file's contents (not its name) durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// Held while a directory is locked; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file operations of the checkpoint commit protocol. All checkpoint code goes through
/// this trait. Paths are full paths; "directory" operations act on the directory itself.
pub trait Storage: Send + Sync {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Renames `from` to `to`, replacing `to`. Not durable until [`Storage::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`. Not durable until [`Storage::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names (not paths) of the files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole contents of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Read-only view of a file that will never be modified again (a segment): a memory map
    /// on a real filesystem.
    fn map_immutable(&self, path: &Path) -> io::Result<ReadOnlyBytes>;
    /// [`Storage::map_immutable`] of a file the caller is about to read whole (checking a
    /// segment's checksum): a real filesystem maps every page at once instead of faulting
    /// them in one by one.
    fn map_immutable_whole(&self, path: &Path) -> io::Result<ReadOnlyBytes> {
        self.map_immutable(path)
    }
    /// `fsync` of the directory: makes creates, renames and removes in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the lock file `path` (creating it), recording `holder` in
    /// it. `Ok(None)` if it is held already; the caller may then [`Storage::read`] the holder.
    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Option<LockGuard>>;
}

/// [`Storage`] on the real filesystem: `write` + `fsync` for writing, `mmap` for reading
/// immutable files, `flock` for the lock.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

struct FsFile(File);

impl WritableFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsFile(f)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            if let Ok(name) = e.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn map_immutable(&self, path: &Path) -> io::Result<ReadOnlyBytes> {
        map_file(path, false)
    }

    fn map_immutable_whole(&self, path: &Path) -> io::Result<ReadOnlyBytes> {
        map_file(path, true)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Option<LockGuard>> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !crate::sys::try_lock_exclusive(&f)? {
            return Ok(None);
        }
        // Informational only (for the "locked by" message); not synced.
        f.set_len(0)?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(holder.as_bytes())?;
        Ok(Some(Box::new(f)))
    }
}

/// Maps the immutable file `path` (`populate`: every page at once).
fn map_file(path: &Path, populate: bool) -> io::Result<ReadOnlyBytes> {
    let f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        // An empty map is an error on some platforms; an empty file is simply empty.
        return Ok(ReadOnlyBytes::from_vec(Vec::new()));
    }
    Ok(ReadOnlyBytes {
        inner: Inner::Mapped(crate::sys::map_immutable(&f, populate)?),
    })
}
