//! A bound on open file descriptors: [`BoundedFs`] wraps another [`Fs`] and closes the
//! least recently used files when more than `capacity` are open, reopening them by path on
//! their next use. A node with 10,000 partitions of 100 segments each would otherwise hold a
//! million descriptors, one per segment (Kafka does, and asks for a huge `ulimit -n`;
//! Redpanda keeps an open-file cache like this one).
//!
//! Only a *clean* file is closed: one with nothing written through its handle since the
//! last successful `sync_data`/`sync_all`. So closing never loses track of an unsynced
//! write, and an fsync of a closed file that was synced through its handle before has
//! nothing to do and succeeds without reopening it. (A write error the kernel reports on
//! fsync belongs to the descriptor it happened through; a dirty file keeps that descriptor
//! until the fsync that reports it.) A file opened (not created) here and never synced
//! through its handle may hold an earlier process's unsynced writes, so its first fsync
//! always runs, reopening it if needed. A file that failed an fsync stays dirty, so open,
//! for good (fail-stop).
//!
//! A handle keeps std's meaning: it reads the inode it was opened on, even after a rename or
//! an unlink. Renames through this `Fs` update the path of every handle of the renamed file;
//! before an unlink (or a rename over it, or a directory removal) the handles of that file
//! are reopened if they were closed, and stay open from then on, since the path no longer
//! reaches them. Files are opened lazily: [`Fs::open`] only checks that the file is there,
//! so opening a log does not open its old segments until something reads them.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::fs::{Fs, StorageFile};
use crate::metrics;

/// Files closed in one go when the bound is passed, at most: one scan of the open files
/// pays for several opens.
const EVICT_BATCH: usize = 64;

/// An [`Fs`] that keeps at most about `capacity` files open (see the module docs).
pub struct BoundedFs {
    inner: Arc<dyn Fs>,
    cache: Arc<Cache>,
}

struct Cache {
    capacity: usize,
    clock: AtomicU64,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Every live handle, by its current path (ordered: the files under a directory are
    /// one range).
    by_path: BTreeMap<PathBuf, Vec<Weak<CachedFile>>>,
    /// Handles with an open descriptor now.
    open: usize,
    /// Descriptors closed since start.
    evictions: u64,
    /// After a scan that could not get back under the bound (every file dirty or busy),
    /// the next scan waits until this many are open, so opens do not each scan in vain.
    next_scan_at: usize,
}

/// One handle of [`BoundedFs`].
pub struct CachedFile {
    inner_fs: Arc<dyn Fs>,
    cache: Arc<Cache>,
    last_used: AtomicU64,
    state: Mutex<FileState>,
}

struct FileState {
    path: PathBuf,
    file: Option<Arc<dyn StorageFile>>,
    /// Writes since the start; a sync that began at `writes == n` makes the file clean only
    /// if no write came after it.
    writes: u64,
    /// `writes` when the last successful sync began.
    synced_at: u64,
    /// A sync failed: dirty for good.
    failed: bool,
    /// A sync through this handle succeeded, or it created the file. Until then an fsync
    /// must really run even with nothing written through it: the file may hold writes of
    /// an earlier process that never reached the disk (recovery syncs what it keeps).
    verified: bool,
    /// The path no longer names this file (unlinked or renamed over): never closed again.
    unreachable: bool,
}

impl CacheState {
    fn opened(&mut self) {
        self.open += 1;
        metrics::OPEN_FILES.fetch_add(1, Ordering::Relaxed);
    }

    fn closed(&mut self, n: usize) {
        self.open = self.open.saturating_sub(n);
        metrics::OPEN_FILES.fetch_sub(n as u64, Ordering::Relaxed);
    }
}

impl FileState {
    fn clean(&self) -> bool {
        !self.failed && self.writes == self.synced_at
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl fmt::Debug for BoundedFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.cache.state);
        f.debug_struct("BoundedFs")
            .field("inner", &self.inner)
            .field("capacity", &self.cache.capacity)
            .field("open", &s.open)
            .finish()
    }
}

impl fmt::Debug for CachedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("CachedFile")
            .field("path", &s.path)
            .field("open", &s.file.is_some())
            .finish()
    }
}

impl BoundedFs {
    /// Wrap `inner`, keeping about `capacity` (at least 1) files open.
    pub fn new(inner: Arc<dyn Fs>, capacity: usize) -> BoundedFs {
        BoundedFs {
            inner,
            cache: Arc::new(Cache {
                capacity: capacity.max(1),
                clock: AtomicU64::new(0),
                state: Mutex::new(CacheState::default()),
            }),
        }
    }

    /// Files with an open descriptor now.
    pub fn open_files(&self) -> usize {
        lock(&self.cache.state).open
    }

    /// Descriptors closed to stay within the bound, since start.
    pub fn evictions(&self) -> u64 {
        lock(&self.cache.state).evictions
    }

    fn wrap(
        &self,
        path: &Path,
        file: Option<Arc<dyn StorageFile>>,
        created: bool,
    ) -> Arc<CachedFile> {
        let is_open = file.is_some();
        let handle = Arc::new(CachedFile {
            inner_fs: Arc::clone(&self.inner),
            cache: Arc::clone(&self.cache),
            last_used: AtomicU64::new(self.cache.tick()),
            state: Mutex::new(FileState {
                path: path.to_path_buf(),
                file,
                writes: created as u64,
                synced_at: 0,
                failed: false,
                verified: created,
                unreachable: false,
            }),
        });
        {
            let mut s = lock(&self.cache.state);
            let list = s.by_path.entry(path.to_path_buf()).or_default();
            // Dead entries go (no strong reference is taken, so no handle drops here).
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&handle));
            if is_open {
                s.opened();
            }
        }
        if is_open {
            self.cache.evict_if_over(Arc::as_ptr(&handle));
        }
        handle
    }

    /// Handles whose path is `path` or (with `below`) under it.
    fn handles(&self, path: &Path, below: bool) -> Vec<Arc<CachedFile>> {
        let weak: Vec<Weak<CachedFile>> = {
            let s = lock(&self.cache.state);
            if below {
                s.by_path
                    .range(path.to_path_buf()..)
                    .take_while(|(p, _)| p.starts_with(path))
                    .flat_map(|(_, l)| l.iter().cloned())
                    .collect()
            } else {
                s.by_path.get(path).cloned().unwrap_or_default()
            }
        };
        weak.iter().filter_map(Weak::upgrade).collect()
    }

    /// Before `path` stops naming its file: open its closed handles, keep them open.
    fn pin_before_unlink(&self, path: &Path, below: bool) -> io::Result<()> {
        for h in self.handles(path, below) {
            let mut st = lock(&h.state);
            if st.file.is_none() {
                st.file = Some(h.inner_fs.open(&st.path)?);
                lock(&self.cache.state).opened();
            }
            st.unreachable = true;
        }
        Ok(())
    }

    fn forget(&self, path: &Path, below: bool) {
        let mut s = lock(&self.cache.state);
        if below {
            let keys: Vec<PathBuf> = s
                .by_path
                .range(path.to_path_buf()..)
                .take_while(|(p, _)| p.starts_with(path))
                .map(|(p, _)| p.clone())
                .collect();
            for k in keys {
                s.by_path.remove(&k);
            }
        } else {
            s.by_path.remove(path);
        }
    }
}

impl Cache {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Close the least recently used clean files while more than `capacity` are open, and a
    /// batch more so the next opens need no scan (never `keep`, never one busy right now).
    fn evict_if_over(&self, keep: *const CachedFile) {
        // Weak references are collected under the lock and upgraded outside it: dropping
        // the last strong reference of a handle takes the lock (`Drop`).
        let (weak, mut to_close) = {
            let s = lock(&self.state);
            if s.open <= self.capacity || s.open < s.next_scan_at {
                return;
            }
            let batch = (self.capacity / 16)
                .clamp(1, 1 << 16)
                .max(EVICT_BATCH.min(self.capacity));
            let weak: Vec<Weak<CachedFile>> = s.by_path.values().flatten().cloned().collect();
            (weak, s.open - self.capacity + batch)
        };
        let mut all: Vec<(u64, Arc<CachedFile>)> = weak
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|h| !std::ptr::eq(Arc::as_ptr(h), keep))
            .map(|h| (h.last_used.load(Ordering::Relaxed), h))
            .collect();
        if all.len() > to_close * 2 {
            all.select_nth_unstable_by_key(to_close * 2, |(t, _)| *t);
            all.truncate(to_close * 2);
        }
        all.sort_unstable_by_key(|(t, _)| *t);
        let mut closed = 0usize;
        for (_, h) in &all {
            if to_close == 0 {
                break;
            }
            let Ok(mut st) = h.state.try_lock() else {
                continue;
            };
            if st.file.is_some() && st.clean() && !st.unreachable {
                // Dropping our reference closes the descriptor once no read holds it.
                st.file = None;
                closed += 1;
                to_close -= 1;
            }
        }
        let mut s = lock(&self.state);
        if closed > 0 {
            s.closed(closed);
            s.evictions += closed as u64;
            metrics::FILE_EVICTIONS.fetch_add(closed as u64, Ordering::Relaxed);
        }
        s.next_scan_at = if s.open > self.capacity {
            s.open + EVICT_BATCH.min(self.capacity)
        } else {
            0
        };
    }
}

impl CachedFile {
    /// The open file, opening it by path first if it was closed (then true).
    fn file(self: &CachedFile, st: &mut FileState) -> io::Result<(Arc<dyn StorageFile>, bool)> {
        self.last_used.store(self.cache.tick(), Ordering::Relaxed);
        if let Some(f) = &st.file {
            return Ok((Arc::clone(f), false));
        }
        let f = self.inner_fs.open(&st.path)?;
        st.file = Some(Arc::clone(&f));
        lock(&self.cache.state).opened();
        Ok((f, true))
    }

    fn reading(&self) -> io::Result<Arc<dyn StorageFile>> {
        let (f, opened) = {
            let mut st = lock(&self.state);
            self.file(&mut st)?
        };
        self.after_open(opened);
        Ok(f)
    }

    /// The file for a write: counted dirty before the write, so it cannot be closed under it.
    fn writing(&self) -> io::Result<Arc<dyn StorageFile>> {
        let (f, opened) = {
            let mut st = lock(&self.state);
            st.writes += 1;
            self.file(&mut st)?
        };
        self.after_open(opened);
        Ok(f)
    }

    /// Only an open that just happened can pass the bound: the hot path (a file already
    /// open) takes no shared lock.
    fn after_open(&self, opened: bool) {
        if opened {
            self.cache.evict_if_over(self);
        }
    }

    fn sync(&self, f: impl FnOnce(&dyn StorageFile) -> io::Result<()>) -> io::Result<()> {
        let (file, opened, began) = {
            let mut st = lock(&self.state);
            if st.clean() && st.verified {
                // Nothing written since the last good sync: nothing to do, open or not.
                return Ok(());
            }
            // Dirty files are never closed; an unverified one may be, and is reopened.
            let (file, opened) = self.file(&mut st)?;
            (file, opened, st.writes)
        };
        self.after_open(opened);
        let result = f(&*file);
        let mut st = lock(&self.state);
        match &result {
            Ok(()) => {
                st.synced_at = st.synced_at.max(began);
                st.verified = true;
            }
            Err(_) => st.failed = true,
        }
        drop(st);
        if result.is_ok() {
            // A file just became closable: the next open may scan again.
            lock(&self.cache.state).next_scan_at = 0;
        }
        result
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.file.take().is_some() {
            let mut s = lock(&self.cache.state);
            s.closed(1);
        }
    }
}

impl StorageFile for CachedFile {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.reading()?.read_exact_at(buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.writing()?.write_all_at(buf, pos)
    }
    fn len_bytes(&self) -> io::Result<u64> {
        let (open, path) = {
            let st = lock(&self.state);
            (st.file.clone(), st.path.clone())
        };
        match open {
            Some(f) => f.len_bytes(),
            // A closed file is clean and unchanged since it was closed: its length on disk.
            None => self.inner_fs.file_len(&path)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is gone", path.display()),
                )
            }),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writing()?.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync(|f| f.sync_data())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.sync(|f| f.sync_all())
    }
    fn preallocate(&self, len: u64) -> io::Result<()> {
        self.writing()?.preallocate(len)
    }
    fn release_preallocated(&self) -> io::Result<()> {
        self.writing()?.release_preallocated()
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        // The descriptor may be closed at any time: hand out `pinned` instead.
        None
    }
    fn pinned(self: Arc<Self>) -> io::Result<Arc<dyn StorageFile>> {
        let f = self.reading()?;
        f.pinned()
    }
}

impl Fs for BoundedFs {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        // Lazily: only check that it is there (and a file).
        if self.inner.file_len(path)?.is_none() {
            // Let the inner file system say what is wrong (NotFound, a directory...).
            let f = self.inner.open(path)?;
            return Ok(self.wrap(path, Some(f), false));
        }
        Ok(self.wrap(path, None, false))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = self.inner.create_new(path)?;
        Ok(self.wrap(path, Some(f), true))
    }
    fn create_truncate(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = self.inner.create_truncate(path)?;
        Ok(self.wrap(path, Some(f), true))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<Option<u64>> {
        self.inner.file_len(path)
    }
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read_file(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.pin_before_unlink(path, false)?;
        self.inner.remove_file(path)?;
        self.forget(path, false);
        Ok(())
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.pin_before_unlink(dir, true)?;
        self.inner.remove_dir_all(dir)?;
        self.forget(dir, true);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.pin_before_unlink(to, false)?;
        self.inner.rename(from, to)?;
        self.forget(to, false);
        let moved = {
            let mut s = lock(&self.cache.state);
            s.by_path.remove(from).unwrap_or_default()
        };
        for h in moved.iter().filter_map(Weak::upgrade).collect::<Vec<_>>() {
            lock(&h.state).path = to.to_path_buf();
        }
        lock(&self.cache.state)
            .by_path
            .entry(to.to_path_buf())
            .or_default()
            .extend(moved);
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    fn fs(dir: &Path, capacity: usize) -> (BoundedFs, Vec<Arc<dyn StorageFile>>) {
        let fs = BoundedFs::new(Arc::new(StdFs), capacity);
        let files = (0..10)
            .map(|i| {
                let f = fs.create_new(&dir.join(format!("f{i}"))).unwrap();
                f.write_all_at(format!("file {i}").as_bytes(), 0).unwrap();
                f
            })
            .collect();
        (fs, files)
    }

    #[test]
    fn dirty_files_stay_open_and_clean_ones_are_closed_past_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let (fs, files) = fs(tmp.path(), 3);
        assert_eq!(fs.open_files(), 10, "nothing synced: nothing may be closed");
        for f in &files {
            f.sync_data().unwrap();
        }
        // The next open passes the bound and closes clean files.
        let extra = fs.create_new(&tmp.path().join("extra")).unwrap();
        extra.write_all_at(b"x", 0).unwrap();
        assert!(fs.open_files() <= 4, "open: {}", fs.open_files());
        assert!(fs.evictions() >= 7);
        // Every file still reads (reopened by path), and a closed clean file syncs.
        for (i, f) in files.iter().enumerate() {
            let mut buf = vec![0; 6];
            f.read_exact_at(&mut buf, 0).unwrap();
            assert_eq!(buf, format!("file {i}").as_bytes());
            f.sync_data().unwrap();
            assert_eq!(f.len_bytes().unwrap(), format!("file {i}").len() as u64);
        }
        // Within the bound, plus at most one batch of opens between two scans.
        assert!(fs.open_files() <= 3 + 3 + 1, "open: {}", fs.open_files());
    }

    #[test]
    fn handles_follow_renames_and_survive_unlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let (fs, files) = fs(tmp.path(), 1);
        for f in &files {
            f.sync_data().unwrap();
        }
        let _trigger = fs.create_new(&tmp.path().join("t")).unwrap();
        // f0 is closed now; renamed, it still reads through its handle.
        fs.rename(&tmp.path().join("f0"), &tmp.path().join("g0"))
            .unwrap();
        let mut buf = vec![0; 6];
        files[0].read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file 0");
        // f1 renamed over f2: f2's handle keeps reading the old f2.
        fs.rename(&tmp.path().join("f1"), &tmp.path().join("f2"))
            .unwrap();
        files[2].read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file 2");
        files[1].read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file 1");
        // Unlinked, f3 still reads, as an open descriptor would.
        fs.remove_file(&tmp.path().join("f3")).unwrap();
        files[3].read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file 3");
        fs.remove_dir_all(tmp.path()).unwrap();
        files[4].read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"file 4");
    }

    #[test]
    fn a_pinned_handle_is_the_open_file_and_lazy_open_opens_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (fs, files) = fs(tmp.path(), 2);
        for f in &files {
            f.sync_data().unwrap();
        }
        drop(files);
        assert_eq!(fs.open_files(), 0);
        let f = fs.open(&tmp.path().join("f5")).unwrap();
        assert_eq!(fs.open_files(), 0, "open is lazy");
        assert_eq!(f.len_bytes().unwrap(), 6);
        let pinned = f.clone().pinned().unwrap();
        assert!(pinned.fd().is_some());
        assert!(fs.open("nope".as_ref()).is_err());
    }
}
