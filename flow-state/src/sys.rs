//! Every `unsafe` block of flow-state lives in this module: read-only memory maps of immutable
//! segment files, and the `flock(2)` of the checkpoint directory's lock file.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Maps `file` read-only; `populate`: maps every page now (`MAP_POPULATE`), for a file about
/// to be read whole, rather than one page fault at a time as it is read.
///
/// Callers must only pass files that are immutable for as long as the map lives: in flow-state,
/// segment files after the fsync + rename that gave them their final name (FORMAT.md §7).
pub(crate) fn map_immutable(file: &File, populate: bool) -> io::Result<memmap2::Mmap> {
    let mut options = memmap2::MmapOptions::new();
    if populate {
        options.populate();
    }
    // SAFETY: memmap2's `map` is unsafe because the mapped file could be modified or truncated
    // by someone else while the map lives, which would change `&[u8]` contents under Rust's feet
    // or raise SIGBUS on access past a shrunken end. flow-state only maps segment files, which
    // are written under a `.tmp` name, fsynced, renamed, and never opened for writing again
    // (only removed whole, which leaves existing maps valid on POSIX). The directory is guarded
    // by an exclusive flock so no other flow process writes to it, and the caller checks the
    // mapped length and the full checksum against the manifest before handing out any byte. A
    // third party truncating a segment file by hand is outside what this can defend against
    // (documented in FORMAT.md §7). The map is read-only (PROT_READ), so flow never writes it.
    unsafe { options.map(file) }
}

/// Tries to take an exclusive, non-blocking `flock` on `file`. `Ok(false)` if another open file
/// description (this process or another) holds it. The lock is released when `file` is closed.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` takes a plain integer fd and has no memory-safety preconditions; the fd is
    // valid for the duration of the call because `file` is borrowed for it.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Drops the pages of `map` from this process's page tables (`madvise(MADV_DONTNEED)`): the
/// process's resident set shrinks by what it had touched, the page cache keeps the data, and the
/// next read of a page faults it in again from the (immutable) file.
pub(crate) fn release_pages(map: &memmap2::Mmap) -> io::Result<()> {
    // SAFETY: `MADV_DONTNEED` is unsafe in memmap2 because, on a private *writable* mapping, it
    // discards modifications, which would change memory under existing references. This map is
    // read-only and backed by an immutable file (see `map_immutable`), so a page dropped here
    // reads back with exactly the same bytes: no reference observes a change.
    unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
}

/// [`release_pages`] for the bytes `offset..offset + len` of `map` only (whole pages within).
pub(crate) fn release_range(map: &memmap2::Mmap, offset: usize, len: usize) -> io::Result<()> {
    // Whole pages only: the kernel requires a page-aligned start.
    const PAGE: usize = 4096;
    let start = offset.div_ceil(PAGE) * PAGE;
    let end = ((offset + len) / PAGE * PAGE).min(map.len() / PAGE * PAGE);
    if end <= start {
        return Ok(());
    }
    // SAFETY: as in `release_pages`: the map is read-only and backed by an immutable file, so
    // dropping these pages cannot change any byte a reference observes; the range lies within
    // the map (clamped above).
    unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) }
}

/// Asks the CPU to start loading the cache line that holds `bytes[at]`, without waiting for
/// it (nothing happens when `at` is out of bounds, or on other architectures). A loop over
/// entries scattered in a large buffer touches the entry a few steps ahead, so that its cache
/// misses overlap instead of following each other.
#[inline(always)]
pub fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        // SAFETY: `_mm_prefetch` is unsafe only for its `#[target_feature(enable = "sse")]`,
        // which every x86_64 CPU has (it is part of the architecture's baseline). A prefetch is
        // a hint: it never faults, reads nothing into the program and writes nothing, and the
        // pointer comes from a live reference in bounds anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}
