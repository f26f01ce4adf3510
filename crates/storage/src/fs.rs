//! The file-system operations the log uses, behind two small traits, so that a test can
//! lose unsynced data, tear a write or fail an fsync on purpose (see [`crate::SimFs`]).
//!
//! [`StdFs`] is the real implementation (`std::fs`, `pread`/`pwrite`). Every byte the log
//! stores or reads goes through [`Fs`] and [`StorageFile`]: segments, indexes and
//! checkpoints alike. Nothing here decides what is durable: that is the log's protocol
//! (docs/storage.md); these traits only say which calls make what durable:
//! - file contents (and length) are durable after `sync_data`/`sync_all` of that file;
//! - a directory entry (create, rename, remove) is durable after `sync_dir` of its directory.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// One open file: positional reads and writes, no cursor (so handles can be shared).
///
/// Methods take `&self`: a handle is shared between the log and the fsyncs it hands out
/// ([`crate::SyncTarget`]), which run on another thread.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Fill `buf` from position `pos`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Write all of `buf` at position `pos` (extending the file if needed). Not durable
    /// until `sync_data`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Current length of the file in bytes (what has been written, durable or not).
    fn len_bytes(&self) -> io::Result<u64>;
    /// Truncate or extend (with zeros) to `len` bytes. Not durable until `sync_data`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: contents and length durable. After an error nothing written since the
    /// last successful sync can be trusted, and a retry proves nothing: never retry.
    fn sync_data(&self) -> io::Result<()>;
    /// fsync: as `sync_data`, plus metadata such as times.
    fn sync_all(&self) -> io::Result<()>;
    /// `preallocate`: reserve disk blocks for the first `len` bytes without changing the
    /// file's length (fallocate with KEEP_SIZE), so a segment is laid out in one piece and
    /// its space is held. A file system that cannot do it is not an error.
    fn preallocate(&self, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Give back the blocks reserved past the file's length (at a segment's roll).
    fn release_preallocated(&self) -> io::Result<()> {
        Ok(())
    }
    /// The descriptor of a real file, so its bytes can go to a socket straight from the page
    /// cache (sendfile); `None` for a simulated one, whose bytes must be read.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// The handle to keep for reading this file later, outside the log's lock (a fetch's
    /// sendfile): the file itself, or for a [`crate::BoundedFs`] handle the open file under
    /// it, so the descriptor stays open while it is held.
    fn pinned(self: Arc<Self>) -> io::Result<Arc<dyn StorageFile>>;
}

/// A file system without fallocate (or its flag) is not an error for preallocation.
fn unsupported_is_fine(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => Ok(()),
        r => r.map_err(io::Error::from),
    }
}

/// The directory and file operations of one storage root. Paths are absolute or relative to
/// the process's directory, as with `std::fs`.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Open an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Create a new empty file for reading and writing; `AlreadyExists` if there is one.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Create a file, or truncate an existing one to zero bytes, for writing.
    fn create_truncate(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether anything (file or directory) exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Length of the file at `path`, None if there is no such file.
    fn file_len(&self, path: &Path) -> io::Result<Option<u64>>;
    /// The whole file (callers check `file_len` first: only for small files).
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Names (not paths) of the entries of a directory, in no particular order.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Create `dir` and any missing ancestors. Their entries are durable only after
    /// `sync_dir` of each parent.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Unlink a file; the removal is durable only after `sync_dir` of its directory.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Remove `dir` and everything below it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Atomically replace `to` with `from` (same directory).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync a directory: its entries (creates, renames, removes) become durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Suffix of a file being replaced by [`write_atomic`]; a leftover is the remains of a
/// write that a crash interrupted, and is never read.
pub const TMP_SUFFIX: &str = ".tmp";

/// Replace `dir/name` atomically and durably: write `dir/name.tmp`, fsync it, rename it over
/// `dir/name`, fsync `dir`. A crash at any point leaves either the old or the new contents
/// under `name` (and maybe a `.tmp` leftover), never a mix.
pub fn write_atomic(fs: &dyn Fs, dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let f = fs.create_truncate(&tmp)?;
    f.write_all_at(contents, 0)?;
    f.sync_all()?;
    drop(f);
    fs.rename(&tmp, &dir.join(name))?;
    fs.sync_dir(dir)
}

/// The whole file at `path`, None if there is none. A file larger than `max_bytes` is an
/// error (`InvalidData`): these are small metadata files, never read into memory unbounded.
pub fn read_optional(fs: &dyn Fs, path: &Path, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
    let Some(len) = fs.file_len(path)? else {
        return Ok(None);
    };
    if len > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, more than the {max_bytes} expected at most",
                path.display()
            ),
        ));
    }
    match fs.read_file(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl StorageFile for File {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, pos)
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, pos)
    }
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        crate::metrics::timed_fsync(|| File::sync_data(self))
    }
    fn sync_all(&self) -> io::Result<()> {
        crate::metrics::timed_fsync(|| File::sync_all(self))
    }
    fn preallocate(&self, len: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        if len == 0 {
            return Ok(());
        }
        unsupported_is_fine(fallocate(self, FallocateFlags::KEEP_SIZE, 0, len))
    }
    fn release_preallocated(&self) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        let len = self.metadata()?.len();
        let rest = (i64::MAX as u64).saturating_sub(len);
        unsupported_is_fine(fallocate(
            self,
            FallocateFlags::KEEP_SIZE | FallocateFlags::PUNCH_HOLE,
            len,
            rest,
        ))
    }
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
    fn pinned(self: Arc<Self>) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self)
    }
}

impl Fs for StdFs {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(f))
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(f))
    }
    fn create_truncate(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(f))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn file_len(&self, path: &Path) -> io::Result<Option<u64>> {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let d = File::open(dir)?;
        crate::metrics::timed_fsync(|| d.sync_all())
    }
}
