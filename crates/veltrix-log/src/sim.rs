//! In-memory storage with fault injection and crash simulation, for tests (ours
//! and the server's seeded simulation).
//!
//! Like redb's test backend it keeps two images of every file: what the running
//! process sees (`live`) and what survives power loss (`durable`). `sync_data`
//! copies live to durable for one file; `sync_dir` does the same for the
//! directory entries under one directory. [`SimStorage::crash`] throws the live
//! image away and returns a handle for the "restarted" process; handles from
//! before the crash (and files opened through them) fail every call from then on,
//! so a dying `Log` cannot write after its own death.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::storage::{LockGuard, Storage, StorageFile};

#[derive(Debug, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    live_ns: BTreeMap<PathBuf, u64>,
    durable_ns: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    locks: BTreeSet<PathBuf>,
    fail_syncs: u32,
    sync_countdown: Option<u32>,
    fail_writes: u32,
    fail_dir_syncs: u32,
    space_left: Option<u64>,
    sync_delay: Duration,
    syncs: u64,
}

/// How much of the unsynced data a crash keeps.
#[derive(Debug, Clone, Copy)]
pub enum CrashMode {
    /// Only what was fsync'd survives.
    SyncedOnly,
    /// Each file additionally keeps a prefix of its unsynced appended bytes, its
    /// length chosen from `seed` (a torn write).
    TornPrefix {
        /// Seed for the per-file prefix lengths.
        seed: u64,
    },
}

/// In-memory [`Storage`] that can fail fsyncs and writes and simulate crashes.
/// Cheap to clone; clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    inner: Arc<Mutex<Inner>>,
    generation: u64,
}

fn dead() -> io::Error {
    io::Error::other("simulated process crashed; this handle is dead")
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl SimStorage {
    /// An empty file system.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, Inner>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.generation != self.generation {
            return Err(dead());
        }
        Ok(g)
    }

    /// The next `n` file syncs fail with an I/O error.
    pub fn fail_next_syncs(&self, n: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_syncs = n;
    }

    /// The next `ok` file syncs succeed and the one after them fails (once).
    pub fn fail_sync_after(&self, ok: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync_countdown = Some(ok);
    }

    /// The next `n` file writes fail with an I/O error (writing nothing).
    pub fn fail_next_writes(&self, n: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_writes = n;
    }

    /// The next `n` directory syncs ([`Storage::sync_dir`]) fail with an I/O
    /// error and make nothing durable (a new segment or a renamed snapshot
    /// may then vanish in a crash).
    pub fn fail_next_dir_syncs(&self, n: u32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_dir_syncs = n;
    }

    /// Only `bytes` more bytes may be written; then writes write what fits and fail
    /// with `ErrorKind::StorageFull`. `None` removes the limit.
    pub fn set_space_left(&self, bytes: Option<u64>) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .space_left = bytes;
    }

    /// Every file sync sleeps this long (to make group commit visible in tests).
    pub fn set_sync_delay(&self, delay: Duration) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync_delay = delay;
    }

    /// Number of successful file syncs so far.
    pub fn syncs(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).syncs
    }

    /// Simulates power loss: keeps what was durable (plus, with
    /// [`CrashMode::TornPrefix`], a prefix of unsynced appends), drops all locks and
    /// faults, and returns the handle the restarted process uses. Every older
    /// handle and file of this storage fails from now on.
    pub fn crash(&self, mode: CrashMode) -> SimStorage {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut rng = match mode {
            CrashMode::SyncedOnly => None,
            CrashMode::TornPrefix { seed } => Some(seed | 1),
        };
        let mut ids: Vec<u64> = g.inodes.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let inode = g.inodes.get_mut(&id).expect("listed");
            let mut keep = inode.durable.clone();
            if let Some(state) = rng.as_mut() {
                let extra_ok = inode.live.len() > inode.durable.len()
                    && inode.live[..inode.durable.len()] == inode.durable[..];
                if extra_ok {
                    let extra = &inode.live[inode.durable.len()..];
                    // xorshift64: deterministic per seed, no dependency.
                    *state ^= *state << 13;
                    *state ^= *state >> 7;
                    *state ^= *state << 17;
                    let n = (*state % (extra.len() as u64 + 1)) as usize;
                    keep.extend_from_slice(&extra[..n]);
                }
            }
            inode.live = keep.clone();
            inode.durable = keep;
        }
        g.live_ns = g.durable_ns.clone();
        g.locks.clear();
        g.fail_syncs = 0;
        g.sync_countdown = None;
        g.fail_writes = 0;
        g.fail_dir_syncs = 0;
        g.space_left = None;
        g.generation += 1;
        SimStorage {
            inner: self.inner.clone(),
            generation: g.generation,
        }
    }

    /// Current (live) contents of a file, for tests that damage files.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = g.live_ns.get(path)?;
        Some(g.inodes[id].live.clone())
    }

    /// Replaces a file's contents, live and durable (models damage on the media).
    pub fn set_file_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = *g.live_ns.get(path).expect("file exists");
        let inode = g.inodes.get_mut(&id).expect("inode");
        inode.live = bytes.clone();
        inode.durable = bytes;
    }
}

struct SimFile {
    storage: SimStorage,
    inode: u64,
    path: PathBuf,
}

impl StorageFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut g = self.storage.lock()?;
        if g.fail_writes > 0 {
            g.fail_writes -= 1;
            return Err(injected("write"));
        }
        let (n, full) = match g.space_left {
            Some(left) if (buf.len() as u64) > left => (left as usize, true),
            _ => (buf.len(), false),
        };
        if let Some(left) = g.space_left.as_mut() {
            *left -= n as u64;
        }
        let inode = g.inodes.get_mut(&self.inode).ok_or_else(dead)?;
        inode.live.extend_from_slice(&buf[..n]);
        if full {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("simulated disk full writing {}", self.path.display()),
            ));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let delay = {
            let mut g = self.storage.lock()?;
            if g.fail_syncs > 0 {
                g.fail_syncs -= 1;
                return Err(injected("fsync"));
            }
            match g.sync_countdown {
                Some(0) => {
                    g.sync_countdown = None;
                    return Err(injected("fsync"));
                }
                Some(n) => g.sync_countdown = Some(n - 1),
                None => {}
            }
            g.sync_delay
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let mut g = self.storage.lock()?;
        let inode = g.inodes.get_mut(&self.inode).ok_or_else(dead)?;
        inode.durable = inode.live.clone();
        g.syncs += 1;
        Ok(())
    }
}

struct SimLock {
    storage: SimStorage,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        // A handle from before a crash must not release the new process's lock.
        if let Ok(mut g) = self.storage.lock() {
            g.locks.remove(&self.path);
        }
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.lock()?;
        for a in dir.ancestors() {
            g.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let g = self.lock()?;
        if !g.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(g.live_ns
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let g = self.lock()?;
        let id = g
            .live_ns
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(g.inodes[id].live.clone())
    }

    fn read_at(&self, path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let g = self.lock()?;
        let id = g
            .live_ns
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let bytes = &g.inodes[id].live;
        let size = bytes.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(bytes[offset as usize..end as usize].to_vec()),
            _ => Err(crate::storage::past_the_end(offset, len, size)),
        }
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut g = self.lock()?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if !g.dirs.contains(parent) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        if g.live_ns.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let id = g.next_inode;
        g.next_inode += 1;
        g.inodes.insert(id, Inode::default());
        g.live_ns.insert(path.to_path_buf(), id);
        Ok(Box::new(SimFile {
            storage: self.clone(),
            inode: id,
            path: path.to_path_buf(),
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let g = self.lock()?;
        let id = *g
            .live_ns
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(SimFile {
            storage: self.clone(),
            inode: id,
            path: path.to_path_buf(),
        }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut g = self.lock()?;
        let id = *g
            .live_ns
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let inode = g.inodes.get_mut(&id).expect("inode");
        inode.live.truncate(len as usize);
        inode.durable = inode.live.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.lock()?;
        let id = g
            .live_ns
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        g.live_ns.insert(to.to_path_buf(), id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut g = self.lock()?;
        g.live_ns
            .remove(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut g = self.lock()?;
        if g.fail_dir_syncs > 0 {
            g.fail_dir_syncs -= 1;
            return Err(injected("directory fsync"));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        g.durable_ns.retain(|p, _| !in_dir(p));
        let live: Vec<(PathBuf, u64)> = g
            .live_ns
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, id)| (p.clone(), *id))
            .collect();
        g.durable_ns.extend(live);
        Ok(())
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<LockGuard>> {
        let mut g = self.lock()?;
        if !g.locks.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            storage: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}
