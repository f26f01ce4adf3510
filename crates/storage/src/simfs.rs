//! `SimFs`: an in-memory [`Fs`] for crash tests. It keeps what has been written apart from
//! what is durable, so a test can cut the power at any point, tear unsynced writes, fail an
//! fsync or fill the disk, deterministically (every random choice comes from one seed).
//! Not used on any production path.
//!
//! # The model
//! Each file (inode) has three images:
//! - `data`: what reads return (the page cache);
//! - `writeback`: what a successful fsync would make durable. Equal to `data`, except after
//!   a failed fsync: like Linux, the kernel then drops the dirty pages it could not write
//!   (they stay readable, but no later fsync writes them), so a retried fsync "succeeds"
//!   without making them durable. Bytes written later are written back normally, with
//!   zeros (a hole) where the dropped pages were;
//! - `durable`: what survives a power loss. A successful `sync_data`/`sync_all` sets it to
//!   `writeback`; a failed one copies a random part of `writeback` into it (some pages
//!   did reach the disk) and sets `writeback` back to it.
//!
//! Directory entries have two images too: the live namespace and the durable one. A
//! create, rename or remove of an entry becomes durable only when its directory is
//! fsync'd (`sync_dir`); a new directory needs its parent fsync'd. The root always exists.
//!
//! # Faults
//! - [`SimFs::crash`]: power loss, strict: only durable file contents and durable
//!   directory entries survive.
//! - [`SimFs::crash_torn`]: power loss where what was not durable may partly survive, as
//!   real disks do: per file the durable image, or a prefix of the unsynced writes, or a
//!   mix of 512-byte sectors of both (zeros where neither had data: a grown length whose
//!   data never came); per directory entry either the durable or the live version. A
//!   rename is atomic, as journaling file systems make it: its source and target entries
//!   both keep their durable version or both take their live one.
//! - [`SimFs::restart`]: the process dies, the machine does not: everything written stays
//!   (including pages dropped by a failed fsync, still readable), open handles die.
//! - [`SimFs::crash_at_op`]: operation number `k` (see [`SimFs::op_count`]) fails and so
//!   does every later call, as if the power went off there; a write at that point lands
//!   partly (a random prefix). The file system stays down until one of the three above.
//! - [`SimFs::fail_fsync_at`] / [`SimFs::fail_next_fsync`]: a given fsync (numbered by
//!   [`SimFs::fsync_count`], files and directories alike) fails with an I/O error;
//!   [`SimFs::fail_fsyncs_of`]: every fsync of one path fails.
//! - [`SimFs::set_disk_full`]: creates, writes and extensions fail with `StorageFull`.
//!
//! A crash or restart disarms `crash_at_op`; the other injected faults stay armed until they
//! fire or [`SimFs::heal`] clears them.
//!
//! Operations counted by `op_count` (the possible crash points): create, write, set_len,
//! remove, rename, create_dir_all, remove_dir_all and every fsync. Reads are not counted
//! (they change nothing) but fail while the machine is down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{Fs, StorageFile};

/// Torn crashes mix unsynced data at this granularity.
const SECTOR_BYTES: usize = 512;

/// A small deterministic PRNG (SplitMix64), so a failing case replays from its seed.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// The generator for `seed`: the same seed yields the same sequence.
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 if n == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    writeback: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug)]
struct State {
    rng: SimRng,
    /// Bumped by every crash or restart: handles of an earlier generation are dead.
    generation: u64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    live: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    /// (from, to) of renames whose directory was not fsync'd since: a torn crash keeps or
    /// undoes both entries together.
    pending_renames: Vec<(PathBuf, PathBuf)>,
    ops: u64,
    fsyncs: u64,
    crash_at_op: Option<u64>,
    /// The power is off: every call fails until crash, crash_torn or restart.
    down: bool,
    fail_fsyncs: BTreeSet<u64>,
    fail_fsync_paths: BTreeSet<PathBuf>,
    disk_full: bool,
    /// Paths whose fsync failed by injection, in order.
    failed_fsyncs: Vec<PathBuf>,
}

/// An in-memory file system with explicit durability; see the module docs. Cloning gives
/// another handle to the same file system.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("SimFs")
            .field("generation", &s.generation)
            .field("ops", &s.ops)
            .field("fsyncs", &s.fsyncs)
            .field("down", &s.down)
            .field("entries", &s.live.len())
            .finish()
    }
}

/// The root ("/", or "" and "." for relative paths) always exists and is always durable.
fn is_root(p: &Path) -> bool {
    p.as_os_str().is_empty() || p.parent().is_none() || p == Path::new(".")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || (is_root(a) && is_root(b))
}

/// The directory holding `p` (None for the root itself).
fn parent_of(p: &Path) -> Option<&Path> {
    if is_root(p) {
        None
    } else {
        p.parent()
    }
}

fn power_off() -> io::Error {
    io::Error::other("SimFs: the machine is down (simulated power loss)")
}

fn not_found(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("SimFs: no such file or directory: {}", p.display()),
    )
}

fn disk_full(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!("SimFs: no space left on device writing {}", p.display()),
    )
}

/// What survives of a file whose durable image is `old` and whose unsynced image is `new`
/// when the power goes: `old`, or a prefix of `new` (over `old`), or a sector mix.
fn torn(old: &[u8], new: &[u8], rng: &mut SimRng) -> Vec<u8> {
    if old == new {
        return old.to_vec();
    }
    let (lo, hi) = (old.len().min(new.len()), old.len().max(new.len()));
    // Often the new length made it whole (or not at all), else any length in between.
    let len = match rng.below(3) {
        0 => new.len(),
        1 => old.len(),
        _ => lo + rng.below((hi - lo) as u64 + 1) as usize,
    };
    let pick = |src: &[u8], i: usize| src.get(i).copied().unwrap_or(0);
    match rng.below(3) {
        0 => old.to_vec(),
        1 => (0..len)
            .map(|i| if i < new.len() { new[i] } else { pick(old, i) })
            .collect(),
        _ => {
            let mut out = vec![0u8; len];
            for start in (0..len).step_by(SECTOR_BYTES) {
                let src = if rng.chance(1, 2) { new } else { old };
                for (i, b) in out
                    .iter_mut()
                    .enumerate()
                    .take((start + SECTOR_BYTES).min(len))
                    .skip(start)
                {
                    *b = pick(src, i);
                }
            }
            out
        }
    }
}

impl State {
    fn dir_exists(&self, p: &Path) -> bool {
        is_root(p) || self.live.get(p) == Some(&Node::Dir)
    }

    fn check_up(&self) -> io::Result<()> {
        if self.down {
            Err(power_off())
        } else {
            Ok(())
        }
    }

    /// Start a counted operation: fails if the machine is down or goes down now.
    fn begin_op(&mut self) -> io::Result<()> {
        self.check_up()?;
        let op = self.ops;
        self.ops += 1;
        if self.crash_at_op == Some(op) {
            self.down = true;
            return Err(power_off());
        }
        Ok(())
    }

    /// Start an fsync: Ok(true) if it must fail (injected).
    fn begin_fsync(&mut self, path: &Path) -> io::Result<bool> {
        self.begin_op()?;
        let n = self.fsyncs;
        self.fsyncs += 1;
        let fail = self.fail_fsyncs.remove(&n) || self.fail_fsync_paths.contains(path);
        if fail {
            self.failed_fsyncs.push(path.to_owned());
        }
        Ok(fail)
    }

    fn new_file(&mut self, path: &Path) -> io::Result<u64> {
        if self.disk_full {
            return Err(disk_full(path));
        }
        if !parent_of(path).is_some_and(|d| self.dir_exists(d)) {
            return Err(not_found(path));
        }
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::default());
        self.live.insert(path.to_owned(), Node::File(ino));
        Ok(ino)
    }

    fn inode_mut(&mut self, ino: u64) -> &mut Inode {
        self.inodes.get_mut(&ino).expect("inode of a live handle")
    }

    /// Keep only entries whose ancestors are all directories in `map`.
    fn prune(map: &mut BTreeMap<PathBuf, Node>) {
        let keep: BTreeSet<PathBuf> = map
            .keys()
            .filter(|p| {
                p.ancestors()
                    .skip(1)
                    .take_while(|a| !is_root(a))
                    .all(|a| map.get(a) == Some(&Node::Dir))
            })
            .cloned()
            .collect();
        map.retain(|p, _| keep.contains(p));
    }

    /// After a crash or restart: drop inodes no name refers to, kill old handles.
    fn reboot(&mut self) {
        let used: BTreeSet<u64> = self
            .live
            .values()
            .chain(self.durable.values())
            .filter_map(|n| match n {
                Node::File(i) => Some(*i),
                Node::Dir => None,
            })
            .collect();
        self.inodes.retain(|i, _| used.contains(i));
        self.generation += 1;
        self.down = false;
        self.crash_at_op = None;
    }
}

impl SimFs {
    /// An empty file system (only the root directory) whose random choices follow `seed`.
    pub fn new(seed: u64) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(State {
                rng: SimRng::new(seed),
                generation: 0,
                inodes: BTreeMap::new(),
                next_inode: 1,
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending_renames: Vec::new(),
                ops: 0,
                fsyncs: 0,
                crash_at_op: None,
                down: false,
                fail_fsyncs: BTreeSet::new(),
                fail_fsync_paths: BTreeSet::new(),
                disk_full: false,
                failed_fsyncs: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own message.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counted operations so far (creates, writes, set_len, removes, renames, directory
    /// creation, fsyncs): the numbering `crash_at_op` uses.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// fsyncs (files and directories) so far: the numbering `fail_fsync_at` uses.
    pub fn fsync_count(&self) -> u64 {
        self.lock().fsyncs
    }

    /// Paths of the fsyncs that failed because a failure was injected, in order.
    pub fn failed_fsyncs(&self) -> Vec<PathBuf> {
        self.lock().failed_fsyncs.clone()
    }

    /// True once the power went off at `crash_at_op`, until a crash or restart.
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Power goes off at counted operation `op` (absolute, see `op_count`).
    pub fn crash_at_op(&self, op: u64) {
        self.lock().crash_at_op = Some(op);
    }

    /// fsync number `n` (absolute, see `fsync_count`) fails.
    pub fn fail_fsync_at(&self, n: u64) {
        self.lock().fail_fsyncs.insert(n);
    }

    /// The next fsync, of any file or directory, fails.
    pub fn fail_next_fsync(&self) {
        let mut s = self.lock();
        let n = s.fsyncs;
        s.fail_fsyncs.insert(n);
    }

    /// Every fsync of `path` (file or directory) fails, until `heal`.
    pub fn fail_fsyncs_of(&self, path: &Path) {
        self.lock().fail_fsync_paths.insert(path.to_owned());
    }

    /// Creates, writes and file extensions fail with `StorageFull` while set.
    pub fn set_disk_full(&self, full: bool) {
        self.lock().disk_full = full;
    }

    /// Clear every injected fault that has not fired yet (the disk is replaced).
    pub fn heal(&self) {
        let mut s = self.lock();
        s.fail_fsyncs.clear();
        s.fail_fsync_paths.clear();
        s.disk_full = false;
        s.crash_at_op = None;
    }

    /// Power loss: everything not durable is gone. Open handles die.
    pub fn crash(&self) {
        let mut s = self.lock();
        let mut ns = s.durable.clone();
        State::prune(&mut ns);
        s.live = ns.clone();
        s.durable = ns;
        s.pending_renames.clear();
        for inode in s.inodes.values_mut() {
            inode.data = inode.durable.clone();
            inode.writeback = inode.durable.clone();
        }
        s.reboot();
    }

    /// Power loss where unsynced writes and directory changes may partly survive (see the
    /// module docs). Open handles die.
    pub fn crash_torn(&self) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let paths: BTreeSet<PathBuf> = s.live.keys().chain(s.durable.keys()).cloned().collect();
        // Entries tied by pending renames share one choice (union of linked paths).
        let mut group: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for (i, (from, to)) in s.pending_renames.iter().enumerate() {
            let joined = [group.get(from).copied(), group.get(to).copied()];
            let g = joined.iter().flatten().copied().min().unwrap_or(i);
            for old in joined.into_iter().flatten() {
                for v in group.values_mut() {
                    if *v == old {
                        *v = g;
                    }
                }
            }
            group.insert(from.clone(), g);
            group.insert(to.clone(), g);
        }
        s.pending_renames.clear();
        let mut group_keeps_durable: BTreeMap<usize, bool> = BTreeMap::new();
        let mut ns = BTreeMap::new();
        for p in paths {
            let (live, durable) = (s.live.get(&p).copied(), s.durable.get(&p).copied());
            let keep_durable = match group.get(&p) {
                _ if live == durable => true,
                Some(g) => match group_keeps_durable.get(g) {
                    Some(&k) => k,
                    None => {
                        let k = s.rng.chance(1, 2);
                        group_keeps_durable.insert(*g, k);
                        k
                    }
                },
                None => s.rng.chance(1, 2),
            };
            let node = if keep_durable { durable } else { live };
            if let Some(n) = node {
                ns.insert(p, n);
            }
        }
        State::prune(&mut ns);
        s.live = ns.clone();
        s.durable = ns;
        for inode in s.inodes.values_mut() {
            let image = torn(&inode.durable, &inode.writeback, &mut s.rng);
            inode.data = image.clone();
            inode.writeback = image.clone();
            inode.durable = image;
        }
        s.reboot();
    }

    /// The process dies but the machine does not: all written data stays readable (the
    /// page cache survives), durability is unchanged, open handles die.
    pub fn restart(&self) {
        self.lock().reboot();
    }

    /// What a read of the whole file would return now, None if there is no such file.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        match s.live.get(path)? {
            Node::File(i) => Some(s.inodes[i].data.clone()),
            Node::Dir => None,
        }
    }

    /// Live paths of every file and directory, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().live.keys().cloned().collect()
    }

    fn handle(&self, path: &Path, ino: u64, generation: u64) -> Arc<dyn StorageFile> {
        Arc::new(SimFile {
            state: Arc::clone(&self.state),
            path: path.to_owned(),
            ino,
            generation,
        })
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let s = self.lock();
        s.check_up()?;
        match s.live.get(path) {
            Some(Node::File(ino)) => Ok(self.handle(path, *ino, s.generation)),
            Some(Node::Dir) => Err(io::Error::other(format!(
                "SimFs: {} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.lock();
        s.begin_op()?;
        if s.live.contains_key(path) || is_root(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("SimFs: {} exists", path.display()),
            ));
        }
        let ino = s.new_file(path)?;
        Ok(self.handle(path, ino, s.generation))
    }

    fn create_truncate(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut s = self.lock();
        s.begin_op()?;
        let ino = match s.live.get(path) {
            Some(Node::File(ino)) => {
                let ino = *ino;
                let inode = s.inode_mut(ino);
                inode.data.clear();
                inode.writeback.clear();
                ino
            }
            Some(Node::Dir) => {
                return Err(io::Error::other(format!(
                    "SimFs: {} is a directory",
                    path.display()
                )))
            }
            None => s.new_file(path)?,
        };
        Ok(self.handle(path, ino, s.generation))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let s = self.lock();
        s.check_up()?;
        Ok(is_root(path) || s.live.contains_key(path))
    }

    fn file_len(&self, path: &Path) -> io::Result<Option<u64>> {
        let s = self.lock();
        s.check_up()?;
        Ok(match s.live.get(path) {
            Some(Node::File(i)) => Some(s.inodes[i].data.len() as u64),
            _ => None,
        })
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.lock();
        s.check_up()?;
        match s.live.get(path) {
            Some(Node::File(i)) => Ok(s.inodes[i].data.clone()),
            _ => Err(not_found(path)),
        }
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        s.check_up()?;
        if !s.dir_exists(dir) {
            return Err(not_found(dir));
        }
        Ok(s.live
            .keys()
            .filter(|p| parent_of(p).is_some_and(|d| same_dir(d, dir)))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.begin_op()?;
        let mut missing: Vec<&Path> = dir.ancestors().take_while(|a| !is_root(a)).collect();
        missing.reverse();
        for a in missing {
            match s.live.get(a) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::other(format!(
                        "SimFs: {} is a file",
                        a.display()
                    )))
                }
                None => {
                    s.live.insert(a.to_owned(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.begin_op()?;
        match s.live.get(path) {
            Some(Node::File(_)) => {
                s.live.remove(path);
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::other(format!(
                "SimFs: {} is a directory",
                path.display()
            ))),
            None => Err(not_found(path)),
        }
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.begin_op()?;
        if s.live.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        s.live.retain(|p, _| !p.starts_with(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.begin_op()?;
        let Some(Node::File(ino)) = s.live.get(from).copied() else {
            return Err(not_found(from));
        };
        if s.live.get(to) == Some(&Node::Dir) || !parent_of(to).is_some_and(|d| s.dir_exists(d)) {
            return Err(io::Error::other(format!(
                "SimFs: cannot rename {} to {}",
                from.display(),
                to.display()
            )));
        }
        s.live.remove(from);
        s.live.insert(to.to_owned(), Node::File(ino));
        s.pending_renames.push((from.to_owned(), to.to_owned()));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.begin_fsync(dir)? {
            return Err(io::Error::other(format!(
                "SimFs: injected failure of fsync of directory {}",
                dir.display()
            )));
        }
        if !s.dir_exists(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &Path| parent_of(p).is_some_and(|d| same_dir(d, dir));
        let live: Vec<(PathBuf, Node)> = s
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        s.durable.retain(|p, _| !in_dir(p));
        s.durable.extend(live);
        s.pending_renames
            .retain(|(from, to)| !in_dir(from) && !in_dir(to));
        Ok(())
    }
}

/// A handle on a SimFs file; dead after a crash or restart.
struct SimFile {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    ino: u64,
    generation: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("ino", &self.ino)
            .finish()
    }
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.check_up()?;
        if s.generation != self.generation {
            return Err(io::Error::other(format!(
                "SimFs: handle of {} died with its process",
                self.path.display()
            )));
        }
        Ok(s)
    }

    fn sync(&self) -> io::Result<()> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        let fail = s.begin_fsync(&self.path)?;
        let inode = s.inodes.get_mut(&self.ino).expect("inode of a live handle");
        if fail {
            // Some pages may have reached the disk; the rest are dropped from writeback.
            inode.durable = torn(&inode.durable, &inode.writeback, &mut s.rng);
            inode.writeback = inode.durable.clone();
            return Err(io::Error::other(format!(
                "SimFs: injected failure of fsync of {} (EIO)",
                self.path.display()
            )));
        }
        inode.durable = inode.writeback.clone();
        Ok(())
    }
}

fn write_into(image: &mut Vec<u8>, buf: &[u8], pos: usize) {
    if image.len() < pos + buf.len() {
        image.resize(pos + buf.len(), 0);
    }
    image[pos..pos + buf.len()].copy_from_slice(buf);
}

impl StorageFile for SimFile {
    fn pinned(self: Arc<Self>) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self)
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let s = self.lock()?;
        let data = &s.inodes[&self.ino].data;
        let end = pos.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= data.len() as u64 => {
                buf.copy_from_slice(&data[pos as usize..end as usize]);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("SimFs: read past the end of {}", self.path.display()),
            )),
        }
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        let pos = pos as usize;
        let was_down = s.down;
        if let Err(e) = s.begin_op() {
            if !was_down && s.down {
                // The power went off during this write: part of it reached the page cache.
                let keep = s.rng.below(buf.len() as u64 + 1) as usize;
                let inode = s.inodes.get_mut(&self.ino).expect("inode of a live handle");
                write_into(&mut inode.data, &buf[..keep], pos);
                write_into(&mut inode.writeback, &buf[..keep], pos);
            }
            return Err(e);
        }
        if s.disk_full {
            return Err(disk_full(&self.path));
        }
        let inode = s.inodes.get_mut(&self.ino).expect("inode of a live handle");
        write_into(&mut inode.data, buf, pos);
        write_into(&mut inode.writeback, buf, pos);
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        let s = self.lock()?;
        Ok(s.inodes[&self.ino].data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        s.begin_op()?;
        let len = len as usize;
        if s.disk_full && len > s.inodes[&self.ino].data.len() {
            return Err(disk_full(&self.path));
        }
        let inode = s.inodes.get_mut(&self.ino).expect("inode of a live handle");
        inode.data.resize(len, 0);
        inode.writeback.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(fs: &SimFs, path: &str, bytes: &[u8]) -> Arc<dyn StorageFile> {
        let f = fs.create_new(Path::new(path)).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f
    }

    #[test]
    fn unsynced_writes_vanish_at_power_loss_but_survive_a_process_restart() {
        let fs = SimFs::new(1);
        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = file(&fs, "/d/a", b"durable");
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        f.write_all_at(b" and not", 7).unwrap();
        fs.restart();
        assert_eq!(fs.contents(Path::new("/d/a")).unwrap(), b"durable and not");
        assert!(f.len_bytes().is_err(), "handles die with the process");
        fs.crash();
        assert_eq!(fs.contents(Path::new("/d/a")).unwrap(), b"durable");
    }

    #[test]
    fn directory_entries_are_durable_only_after_the_directory_fsync() {
        let fs = SimFs::new(2);
        fs.create_dir_all(Path::new("/d")).unwrap();
        let f = file(&fs, "/d/a", b"x");
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.crash();
        assert!(
            fs.paths().is_empty(),
            "/d itself was never made durable in /"
        );

        fs.create_dir_all(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let f = file(&fs, "/d/tmp", b"new");
        f.sync_all().unwrap();
        fs.rename(Path::new("/d/tmp"), Path::new("/d/ck")).unwrap();
        fs.crash();
        assert_eq!(fs.paths(), vec![PathBuf::from("/d")]);

        let f = file(&fs, "/d/tmp", b"new");
        f.sync_all().unwrap();
        fs.rename(Path::new("/d/tmp"), Path::new("/d/ck")).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        fs.remove_file(Path::new("/d/ck")).unwrap();
        fs.crash();
        assert_eq!(fs.contents(Path::new("/d/ck")).unwrap(), b"new");
        assert_eq!(fs.contents(Path::new("/d/tmp")), None);
    }

    #[test]
    fn a_torn_crash_keeps_or_undoes_a_rename_whole() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..64 {
            let fs = SimFs::new(seed);
            let old = file(&fs, "/seg", b"old");
            old.sync_data().unwrap();
            let new = file(&fs, "/seg.cleaned", b"new");
            new.sync_data().unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            fs.rename(Path::new("/seg.cleaned"), Path::new("/seg"))
                .unwrap();
            let other = file(&fs, "/other", b"x");
            other.sync_data().unwrap();
            fs.crash_torn();
            let seg = fs.contents(Path::new("/seg"));
            let cleaned = fs.contents(Path::new("/seg.cleaned"));
            match (seg.as_deref(), cleaned.as_deref()) {
                (Some(b"old"), Some(b"new")) | (Some(b"new"), None) => {}
                other => panic!("seed {seed}: a torn rename: {other:?}"),
            }
            outcomes.insert((seg, fs.contents(Path::new("/other")).is_some()));
        }
        assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    }

    #[test]
    fn a_retried_fsync_after_a_failure_does_not_make_the_dropped_pages_durable() {
        let mut lost = 0;
        for seed in 0..16 {
            let fs = SimFs::new(seed);
            let f = file(&fs, "/a", &[1u8; 4096]);
            f.sync_data().unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            f.write_all_at(&[2u8; 4096], 4096).unwrap();
            fs.fail_next_fsync();
            assert!(f.sync_data().is_err());
            f.write_all_at(&[3u8; 100], 8192).unwrap();
            f.sync_data().unwrap(); // "succeeds"
            let mut page = [0u8; 4096];
            f.read_exact_at(&mut page, 4096).unwrap();
            assert_eq!(
                page, [2u8; 4096],
                "the page cache still shows the lost write"
            );
            fs.crash();
            let after = fs.contents(Path::new("/a")).unwrap();
            assert_eq!(after.len(), 8292);
            assert_eq!(&after[..4096], &[1u8; 4096][..]);
            assert!(after[4096..8192].iter().all(|&b| b == 2 || b == 0));
            assert_eq!(&after[8192..], &[3u8; 100][..]);
            lost += after[4096..8192].contains(&0) as u32;
        }
        assert!(
            lost >= 8,
            "the failed write is mostly lost despite the later fsync"
        );
    }

    #[test]
    fn crash_at_op_takes_the_machine_down_until_the_crash() {
        let fs = SimFs::new(4);
        let f = file(&fs, "/a", b"abc");
        fs.crash_at_op(fs.op_count() + 1);
        f.write_all_at(b"d", 3).unwrap();
        assert!(f.write_all_at(b"e", 4).is_err());
        assert!(fs.is_down());
        assert!(f.sync_data().is_err());
        assert!(fs.list_dir(Path::new("/")).is_err());
        fs.restart();
        assert!(!fs.is_down());
        let s = fs.contents(Path::new("/a")).unwrap();
        assert!(s == b"abcd" || s == b"abcde", "{s:?}");
    }

    #[test]
    fn torn_crashes_are_deterministic_and_keep_the_durable_prefix() {
        let run = |seed| {
            let fs = SimFs::new(seed);
            let f = file(&fs, "/a", &[7u8; 1000]);
            f.sync_data().unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            f.write_all_at(&[8u8; 3000], 1000).unwrap();
            fs.crash_torn();
            fs.contents(Path::new("/a")).unwrap()
        };
        let mut kinds = BTreeSet::new();
        for seed in 0..64 {
            let a = run(seed);
            assert_eq!(a, run(seed));
            assert!(a.len() >= 1000 && a.len() <= 4000);
            assert_eq!(&a[..1000], &[7u8; 1000][..]);
            assert!(a[1000..].iter().all(|&b| b == 8 || b == 0));
            kinds.insert((a.len() == 1000, a[1000..].contains(&0)));
        }
        // (nothing kept, clean prefix, prefix with holes): all three occur.
        assert_eq!(kinds.len(), 3, "{kinds:?}");
    }

    #[test]
    fn a_full_disk_refuses_writes_and_creates() {
        let fs = SimFs::new(5);
        let f = file(&fs, "/a", b"abc");
        fs.set_disk_full(true);
        let e = f.write_all_at(b"d", 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(fs.create_new(Path::new("/b")).is_err());
        f.set_len(1).unwrap();
        fs.set_disk_full(false);
        f.write_all_at(b"d", 1).unwrap();
        assert_eq!(fs.contents(Path::new("/a")).unwrap(), b"ad");
    }
}
