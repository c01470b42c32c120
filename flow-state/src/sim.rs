//! [`SimStorage`]: an in-memory [`Storage`] that simulates power loss, for tests.
//!
//! It keeps two views of the world. The *current* view is what a running process sees: every
//! write, create, rename and remove takes effect in it at once. The *durable* view is what
//! survives a power cut: a file's contents reach it on [`WritableFile::sync`] of that file,
//! and directory entries (creates, renames, removes) of a directory reach it on
//! [`Storage::sync_dir`] of that directory — never earlier. [`SimStorage::crash`] throws the
//! current view away and replaces it with the durable one: every unsynced write is lost, and an
//! unsynced rename or create is undone (a file whose rename was lost is found under its old
//! name, with the contents it had when last synced).
//!
//! [`SimStorage::fail_after`] arms a power cut after a given number of mutating operations
//! (create, write, fsync, rename, remove, directory sync): from then on every operation fails,
//! as if the machine had stopped, until `crash()` is called. Enumerating the count enumerates
//! every step of a commit. [`SimStorage::log`] names the operations, for test messages.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{LockGuard, ReadOnlyBytes, Storage, WritableFile};

/// A [`Storage`] in memory that loses everything not yet synced on [`SimStorage::crash`].
/// Clones share the same simulated disk.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct SimState {
    inodes: Vec<Inode>,
    current: BTreeMap<PathBuf, usize>,
    durable: BTreeMap<PathBuf, usize>,
    /// Bumped by every crash: handles and locks of an earlier "boot" are dead.
    generation: u64,
    locks: HashMap<PathBuf, u64>,
    ops: u64,
    fail_at: Option<u64>,
    dead: bool,
    log: Vec<String>,
}

fn power_cut() -> io::Error {
    io::Error::other("simulated power loss")
}

impl SimState {
    fn alive(&self) -> io::Result<()> {
        if self.dead {
            Err(power_cut())
        } else {
            Ok(())
        }
    }

    /// Counts one mutating operation; fails it if the armed power cut is due.
    fn step(&mut self, what: String) -> io::Result<()> {
        self.alive()?;
        if self.fail_at.is_some_and(|at| self.ops >= at) {
            self.dead = true;
            return Err(power_cut());
        }
        self.ops += 1;
        self.log.push(what);
        Ok(())
    }

    fn inode_of(&self, path: &Path) -> io::Result<usize> {
        self.current.get(path).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such file", path.display()),
            )
        })
    }
}

impl SimStorage {
    /// An empty simulated disk.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Power loss: every write, create, rename and remove that was not synced is lost, open
    /// files and locks die with the "process", and an armed [`SimStorage::fail_after`] is
    /// cleared.
    pub fn crash(&self) {
        self.crash_keeping(|_| false);
    }

    /// Power loss where the OS happened to have written some unsynced directory entries
    /// already: for every path with `persisted(path)`, its current entry (or its absence) is
    /// made durable first; everything else unsynced is lost as in [`SimStorage::crash`]. This
    /// models directory updates reaching the disk out of order; file contents still need fsync.
    pub fn crash_keeping(&self, persisted: impl Fn(&Path) -> bool) {
        let mut st = self.lock();
        let cur: Vec<(PathBuf, usize)> = st
            .current
            .iter()
            .filter(|(p, _)| persisted(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let gone: Vec<PathBuf> = st
            .durable
            .keys()
            .filter(|p| persisted(p) && !st.current.contains_key(*p))
            .cloned()
            .collect();
        st.durable.extend(cur);
        for p in gone {
            st.durable.remove(&p);
        }
        st.current = st.durable.clone();
        for inode in &mut st.inodes {
            inode.current = inode.durable.clone();
        }
        st.generation += 1;
        st.locks.clear();
        st.fail_at = None;
        st.dead = false;
    }

    /// Arms a power cut: the next `n` mutating operations succeed, and every operation after
    /// them fails until [`SimStorage::crash`].
    pub fn fail_after(&self, n: u64) {
        let mut st = self.lock();
        st.fail_at = Some(st.ops + n);
    }

    /// Number of mutating operations so far.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// Descriptions of every mutating operation so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Names of the files in `dir` as the running process sees them, sorted.
    pub fn files(&self, dir: &Path) -> Vec<String> {
        let st = self.lock();
        st.current
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect()
    }

    /// Test hook: replaces a file's contents, current and durable (bit rot, truncation).
    pub fn corrupt(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut st = self.lock();
        let ino = st.inode_of(path)?;
        let inode = &mut st.inodes[ino];
        f(&mut inode.current);
        inode.durable = inode.current.clone();
        Ok(())
    }
}

struct SimFile {
    storage: SimStorage,
    inode: usize,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, SimState>> {
        let st = self.storage.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        Ok(st)
    }
}

impl WritableFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.state()?;
        st.step(format!("write {} ({} B)", self.path.display(), buf.len()))?;
        st.inodes[self.inode].current.extend_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.state()?;
        st.step(format!("fsync {}", self.path.display()))?;
        let inode = &mut st.inodes[self.inode];
        inode.durable = inode.current.clone();
        Ok(())
    }
}

struct SimLock {
    storage: SimStorage,
    path: PathBuf,
    generation: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.storage.lock();
        if st.locks.get(&self.path) == Some(&self.generation) {
            st.locks.remove(&self.path);
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        // Directories are implicit (and durable) in the simulation.
        self.lock().alive()
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut st = self.lock();
        st.step(format!("create {}", path.display()))?;
        let ino = st.inodes.len();
        st.inodes.push(Inode::default());
        st.current.insert(path.to_path_buf(), ino);
        let generation = st.generation;
        drop(st);
        Ok(Box::new(SimFile {
            storage: self.clone(),
            inode: ino,
            generation,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let ino = st.inode_of(from)?;
        st.step(format!("rename {} -> {}", from.display(), to.display()))?;
        st.current.remove(from);
        st.current.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.inode_of(path)?;
        st.step(format!("remove {}", path.display()))?;
        st.current.remove(path);
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.lock().alive()?;
        Ok(self.files(dir))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        st.alive()?;
        let ino = st.inode_of(path)?;
        Ok(st.inodes[ino].current.clone())
    }

    fn map_immutable(&self, path: &Path) -> io::Result<ReadOnlyBytes> {
        self.read(path).map(ReadOnlyBytes::from_vec)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        st.step(format!("sync_dir {}", dir.display()))?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable.retain(|p, _| !in_dir(p));
        let entries: Vec<(PathBuf, usize)> = st
            .current
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable.extend(entries);
        Ok(())
    }

    fn try_lock(&self, path: &Path, holder: &str) -> io::Result<Option<LockGuard>> {
        let mut st = self.lock();
        st.alive()?;
        if st.locks.contains_key(path) {
            return Ok(None);
        }
        let generation = st.generation;
        st.locks.insert(path.to_path_buf(), generation);
        let ino = match st.current.get(path) {
            Some(&i) => i,
            None => {
                st.inodes.push(Inode::default());
                let i = st.inodes.len() - 1;
                st.current.insert(path.to_path_buf(), i);
                i
            }
        };
        st.inodes[ino].current = holder.as_bytes().to_vec();
        drop(st);
        Ok(Some(Box::new(SimLock {
            storage: self.clone(),
            path: path.to_path_buf(),
            generation,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_exactly_what_was_synced() {
        let s = SimStorage::new();
        let d = Path::new("/d");
        let mut f = s.create(&d.join("a")).unwrap();
        f.write_all(b"durable").unwrap();
        f.sync().unwrap();
        f.write_all(b" lost").unwrap();
        s.sync_dir(d).unwrap();
        s.rename(&d.join("a"), &d.join("b")).unwrap();
        s.create(&d.join("c")).unwrap();
        s.crash();
        assert_eq!(s.files(d), vec!["a".to_owned()]);
        assert_eq!(s.read(&d.join("a")).unwrap(), b"durable");
        // Handles from before the crash are dead.
        assert!(f.write_all(b"x").is_err());
    }

    #[test]
    fn fail_after_stops_every_operation_until_the_crash() {
        let s = SimStorage::new();
        s.fail_after(1);
        let mut f = s.create(Path::new("/d/a")).unwrap();
        assert!(f.write_all(b"x").is_err());
        assert!(s.list(Path::new("/d")).is_err());
        s.crash();
        assert_eq!(s.files(Path::new("/d")), Vec::<String>::new());
    }
}
