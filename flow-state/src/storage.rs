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

/// Alignment of direct writes: their buffer's address, their length and their offset in the
/// file (the logical block size of any disk is at most this).
#[cfg(target_os = "linux")]
const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered before a direct write.
#[cfg(target_os = "linux")]
const DIRECT_CHUNK: usize = 1 << 20;

/// Buffers of closed direct files, for the next ones (a fresh megabyte costs a page fault per
/// 4 KiB in a VM); at most [`DIRECT_POOL`] of them.
#[cfg(target_os = "linux")]
static DIRECT_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
#[cfg(target_os = "linux")]
const DIRECT_POOL: usize = 8;

/// A file written with `O_DIRECT`: from an aligned buffer straight to the disk, past the page
/// cache. A buffered `write` copies every byte into the page cache, into pages the kernel
/// allocates for it — in a VM, fresh memory that costs a fault per page: a third of the
/// checkpoint writer's time, on the same cores as the processing threads. A direct write
/// costs the writer almost no CPU, and waits for the disk instead.
///
/// Data is gathered into [`DIRECT_CHUNK`]s. [`WritableFile::sync`] writes the last, partial
/// chunk padded to [`DIRECT_ALIGN`], cuts the file back to its length and `fsync`s; the
/// partial chunk stays in the buffer, so later appends rewrite its block in place. If the
/// filesystem refuses a direct write, the file is reopened without `O_DIRECT` and written
/// as usual from there.
#[cfg(target_os = "linux")]
struct DirectFile {
    file: File,
    path: std::path::PathBuf,
    /// Holds an aligned [`DIRECT_CHUNK`] at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes gathered in the chunk.
    filled: usize,
    /// Where the chunk goes in the file (a multiple of [`DIRECT_ALIGN`]).
    at: u64,
    /// Set once a direct write failed: `file` is then an ordinary file, positioned at its end.
    buffered: bool,
}

#[cfg(target_os = "linux")]
impl DirectFile {
    /// Creates (or truncates) `path` for direct writes; `None` where the filesystem does not
    /// support them (tmpfs, some overlay filesystems).
    fn create(path: &Path) -> Option<DirectFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()?;
        let kept = DIRECT_BUFFERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let buf = kept.unwrap_or_else(|| vec![0u8; DIRECT_CHUNK + DIRECT_ALIGN]);
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        (start <= DIRECT_ALIGN).then(|| DirectFile {
            file,
            path: path.to_path_buf(),
            buf,
            start,
            filled: 0,
            at: 0,
            buffered: false,
        })
    }

    fn chunk(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + DIRECT_CHUNK]
    }

    /// Writes the first `len` bytes of the chunk (a multiple of [`DIRECT_ALIGN`]) at `at`;
    /// on a refusal, falls back to buffered writes of the file's `valid` bytes and then these.
    fn write_chunk(&mut self, len: usize, valid: usize) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let at = self.at;
        let data = &self.buf[self.start..self.start + len];
        match self.file.write_all_at(data, at) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.fall_back(valid),
            Err(e) => Err(e),
        }
    }

    /// Reopens the file without `O_DIRECT` and appends the gathered bytes: from here on it is
    /// an ordinary file.
    fn fall_back(&mut self, valid: usize) -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(&self.path)?;
        file.set_len(self.at)?;
        file.seek(SeekFrom::Start(self.at))?;
        file.write_all(&self.buf[self.start..self.start + valid])?;
        self.file = file;
        self.buffered = true;
        self.filled = 0;
        Ok(())
    }
}

#[cfg(target_os = "linux")]
impl Drop for DirectFile {
    fn drop(&mut self) {
        let mut pool = DIRECT_BUFFERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < DIRECT_POOL {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(target_os = "linux")]
impl WritableFile for DirectFile {
    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        if self.buffered {
            return self.file.write_all(buf);
        }
        while !buf.is_empty() {
            let n = buf.len().min(DIRECT_CHUNK - self.filled);
            let filled = self.filled;
            self.chunk()[filled..filled + n].copy_from_slice(&buf[..n]);
            self.filled += n;
            buf = &buf[n..];
            if self.filled == DIRECT_CHUNK {
                self.write_chunk(DIRECT_CHUNK, DIRECT_CHUNK)?;
                if self.buffered {
                    return self.file.write_all(buf);
                }
                self.at += DIRECT_CHUNK as u64;
                self.filled = 0;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if !self.buffered && self.filled > 0 {
            let filled = self.filled;
            let padded = filled.next_multiple_of(DIRECT_ALIGN);
            self.chunk()[filled..padded].fill(0);
            self.write_chunk(padded, filled)?;
            if !self.buffered {
                // The padding goes; the partial block stays gathered for later appends.
                self.file.set_len(self.at + filled as u64)?;
            }
        }
        self.file.sync_all()
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        #[cfg(target_os = "linux")]
        if let Some(f) = DirectFile::create(path) {
            return Ok(Box::new(f));
        }
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly on purpose
    use super::*;
    use proptest::prelude::*;

    /// What a file written by `writes` (each a length; `true`: `sync` after it) must hold.
    fn expected(writes: &[(usize, bool)]) -> Vec<u8> {
        let total: usize = writes.iter().map(|w| w.0).sum();
        (0..total).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    fn write_in_pieces(f: &mut dyn WritableFile, want: &[u8], writes: &[(usize, bool)]) {
        let mut at = 0;
        for &(n, sync) in writes {
            f.write_all(&want[at..at + n]).unwrap();
            at += n;
            if sync {
                f.sync().unwrap();
            }
        }
        f.sync().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// A file written directly, in pieces of any size with syncs between them (each
        /// leaving a partial block to write again), holds exactly the bytes written, and so
        /// does one that falls back to buffered writes part of the way.
        #[test]
        fn a_direct_file_holds_exactly_what_was_written(
            writes in proptest::collection::vec((0..300_000usize, any::<bool>()), 1..12),
            fall_back_after in proptest::option::of(0..12usize),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let want = expected(&writes);
            match DirectFile::create(&path) {
                Some(mut f) => {
                    match fall_back_after {
                        Some(k) if k < writes.len() => {
                            let (first, rest) = writes.split_at(k);
                            let n: usize = first.iter().map(|w| w.0).sum();
                            write_in_pieces(&mut f, &want[..n], first);
                            let valid = f.filled;
                            f.fall_back(valid).unwrap();
                            write_in_pieces(&mut f, &want[n..], rest);
                        }
                        _ => write_in_pieces(&mut f, &want, &writes),
                    }
                }
                // No direct I/O on this filesystem: the ordinary file is what `create` gives.
                None => write_in_pieces(&mut *FsStorage.create(&path).unwrap(), &want, &writes),
            }
            let got = fs::read(&path).unwrap();
            prop_assert_eq!(got.len(), want.len());
            prop_assert!(got == want, "contents differ");
        }
    }
}
