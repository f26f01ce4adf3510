//! One segment: a `.log` file of whole batches plus its sparse `.index` and `.timeindex`,
//! kept in memory and written to disk at roll and close (see docs/storage.md).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::batch::{check_header, BatchHeader, BATCH_HEADER_LEN, CRC_COVERED_FROM};
use crate::fs::{Fs, StorageFile};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// A segment written by the cleaner, not yet swapped in (see docs/storage.md, "Compaction").
pub(crate) const CLEANED_SUFFIX: &str = ".log.cleaned";
/// Added to the names of a deleted segment's files while `file.delete.delay.ms` runs (Kafka's
/// suffix); such files are removed at the next open if the broker stopped before.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// Source of `Segment::id`: unique in the process, so a segment replaced by another with
/// the same base offset (a clean, a truncation) is told apart from it.
static NEXT_SEGMENT_ID: AtomicU64 = AtomicU64::new(1);

const OFFSET_INDEX_MAGIC: &[u8; 4] = b"WOFX";
const TIME_INDEX_MAGIC: &[u8; 4] = b"WTIX";
const INDEX_VERSION: u32 = 1;
/// magic 4 + version 4 + crc 4 + log_size_bytes 8 + next_offset 8.
const OFFSET_INDEX_HEADER_BYTES: usize = 28;
/// magic 4 + version 4 + crc 4 + log_size_bytes 8.
const TIME_INDEX_HEADER_BYTES: usize = 20;
const OFFSET_INDEX_ENTRY_BYTES: usize = 8;
const TIME_INDEX_ENTRY_BYTES: usize = 12;
/// Chunk size for streaming CRC checks during recovery (bounded memory).
pub(crate) const SCAN_CHUNK_BYTES: usize = 64 * 1024;

pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Base offset from a `.log` file name, if it is one of ours.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) struct Segment {
    /// Identity of this in-memory segment (see `NEXT_SEGMENT_ID`): a clean planned against
    /// it is installed only if the log still holds this very segment.
    pub id: u64,
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub file: Arc<dyn StorageFile>,
    pub size_bytes: u64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    /// (relative offset of a batch's base offset, file position of that batch).
    pub offset_index: Vec<(u32, u32)>,
    /// (running max timestamp, relative base offset of the batch that set it).
    pub time_index: Vec<(i64, u32)>,
    pub bytes_since_index_entry: u64,
    /// Largest batch max_timestamp in the segment, -1 if none.
    pub max_timestamp: i64,
    /// Base offset of the batch holding `max_timestamp`, -1 if none.
    pub offset_of_max_timestamp: i64,
    /// Wall time (caller's now_ms) of the first append since creation or open: segment.ms
    /// ages from here.
    pub first_append_ms: Option<i64>,
    /// The index files on disk describe exactly the current contents.
    pub indexes_on_disk: bool,
}

/// What a batch-by-batch walk of a segment found.
pub(crate) struct ScanOutcome {
    pub batches: u64,
    /// Why the walk stopped before the end of the file (the file is valid up to size_bytes).
    pub failure: Option<String>,
}

impl Segment {
    pub fn create(fs: &dyn Fs, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = fs.create_new(&log_path)?;
        Ok(Segment::new(base_offset, log_path, file, 0))
    }

    pub fn open(fs: &dyn Fs, dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = fs.open(&log_path)?;
        let size_bytes = file.len_bytes()?;
        Ok(Segment::new(base_offset, log_path, file, size_bytes))
    }

    /// An empty segment at `base_offset` written through `file` (a cleaner's `.log.cleaned`
    /// file) that will be renamed to its `.log` name in `dir`.
    pub fn for_cleaned(dir: &Path, base_offset: i64, file: Arc<dyn StorageFile>) -> Segment {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        Segment::new(base_offset, log_path, file, 0)
    }

    fn new(
        base_offset: i64,
        log_path: PathBuf,
        file: Arc<dyn StorageFile>,
        size_bytes: u64,
    ) -> Segment {
        Segment {
            id: NEXT_SEGMENT_ID.fetch_add(1, Ordering::Relaxed),
            base_offset,
            log_path,
            file,
            size_bytes,
            next_offset: base_offset,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
            indexes_on_disk: false,
        }
    }

    pub fn index_path(&self, suffix: &str) -> PathBuf {
        self.log_path
            .with_file_name(file_name(self.base_offset, suffix))
    }

    pub fn relative(&self, offset: i64) -> u32 {
        debug_assert!(
            offset >= self.base_offset && offset - self.base_offset <= u32::MAX as i64,
            "offset {offset} not addressable in segment {}",
            self.base_offset
        );
        (offset - self.base_offset) as u32
    }

    /// Account for a batch just written (or found by a scan) at `pos`.
    pub fn track_batch(&mut self, h: &BatchHeader, pos: u64, index_interval_bytes: u64) {
        debug_assert_eq!(h.base_offset, self.next_offset, "offsets must be dense");
        debug_assert_eq!(pos, self.size_bytes, "batches are appended at the end");
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.base_offset;
        }
        if self.bytes_since_index_entry >= index_interval_bytes {
            self.offset_index
                .push((self.relative(h.base_offset), pos as u32));
            self.bytes_since_index_entry = 0;
            self.push_time_entry_if_grown();
        }
        self.bytes_since_index_entry += h.total_len() as u64;
        self.next_offset = h.last_offset() + 1;
        self.size_bytes = pos + h.total_len() as u64;
        self.indexes_on_disk = false;
    }

    /// Add a time index entry if the running max grew since the last one. Called at index
    /// points and when sealing (roll, close), so the last entry is the segment's max.
    pub fn push_time_entry_if_grown(&mut self) {
        if self.offset_of_max_timestamp < 0 {
            return;
        }
        let grown = self
            .time_index
            .last()
            .is_none_or(|&(ts, _)| self.max_timestamp > ts);
        if grown {
            let rel = self.relative(self.offset_of_max_timestamp);
            self.time_index.push((self.max_timestamp, rel));
        }
    }

    fn reset_indexes(&mut self) {
        self.size_bytes = 0;
        self.next_offset = self.base_offset;
        self.offset_index.clear();
        self.time_index.clear();
        self.bytes_since_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.indexes_on_disk = false;
    }

    /// File position to start walking from to find `offset`: the largest index entry at or
    /// below it, else the start of the segment.
    pub fn lookup_position(&self, offset: i64) -> u64 {
        if offset <= self.base_offset {
            return 0;
        }
        let rel = (offset - self.base_offset).min(u32::MAX as i64) as u32;
        let i = self.offset_index.partition_point(|&(r, _)| r <= rel);
        if i == 0 {
            0
        } else {
            self.offset_index[i - 1].1 as u64
        }
    }

    /// Offset to start a timestamp search from: after every batch known (through the time
    /// index) to have max_timestamp < `timestamp`.
    pub fn lookup_time(&self, timestamp: i64) -> i64 {
        let i = self.time_index.partition_point(|&(ts, _)| ts < timestamp);
        if i == 0 {
            self.base_offset
        } else {
            self.base_offset + self.time_index[i - 1].1 as i64
        }
    }

    /// Read and sanity-check the batch header at `pos` (one small pread).
    pub fn read_header(&self, pos: u64) -> io::Result<BatchHeader> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        let available = self.header_room(pos)?;
        self.file.read_exact_at(&mut buf, pos)?;
        let h = BatchHeader::parse(&buf).expect("buffer holds a full header");
        self.check_read_header(h, available, pos)
    }

    /// As [`Segment::read_header`], for a walk over consecutive batches: headers of small
    /// batches come out of one read-ahead buffer instead of one pread each, while a large
    /// batch costs one header-sized read (its records are never read).
    pub(crate) fn read_header_ahead(
        &self,
        pos: u64,
        ahead: &mut HeaderReadAhead,
    ) -> io::Result<BatchHeader> {
        let available = self.header_room(pos)?;
        let held =
            pos >= ahead.at && pos + BATCH_HEADER_LEN as u64 <= ahead.at + ahead.buf.len() as u64;
        if !held {
            let want = (ahead.next_read as u64)
                .clamp(BATCH_HEADER_LEN as u64, available)
                .min(READ_AHEAD_BYTES as u64) as usize;
            ahead.buf.resize(want.max(BATCH_HEADER_LEN), 0);
            self.file.read_exact_at(&mut ahead.buf, pos)?;
            ahead.at = pos;
        }
        let from = (pos - ahead.at) as usize;
        let h = BatchHeader::parse(&ahead.buf[from..]).expect("buffer holds a full header");
        let h = self.check_read_header(h, available, pos)?;
        ahead.next_read = if h.total_len() < SMALL_BATCH_BYTES {
            READ_AHEAD_BYTES
        } else {
            BATCH_HEADER_LEN
        };
        Ok(h)
    }

    /// Bytes from `pos` to the end, if a whole header fits there.
    fn header_room(&self, pos: u64) -> io::Result<u64> {
        let available = self.size_bytes.saturating_sub(pos);
        if available < BATCH_HEADER_LEN as u64 {
            return Err(self.corrupt(pos, "a torn batch header".into()));
        }
        Ok(available)
    }

    fn check_read_header(
        &self,
        h: BatchHeader,
        available: u64,
        pos: u64,
    ) -> io::Result<BatchHeader> {
        check_header(&h, available, pos).map_err(|e| self.corrupt(pos, e.to_string()))?;
        if let Some(what) = offsets_overflow(&h) {
            return Err(self.corrupt(pos, what));
        }
        Ok(h)
    }

    /// `len` bytes from `pos`, which must lie within the segment (a batch found by
    /// `read_header`).
    pub fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        if pos.saturating_add(len as u64) > self.size_bytes {
            return Err(self.corrupt(pos, format!("{len} bytes past the end")));
        }
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    pub fn corrupt(&self, pos: u64, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} at position {pos}: {what}", self.log_path.display()),
        )
    }

    /// Rebuild everything in memory by walking the file from position 0, batch by batch,
    /// with bounded memory. `verify_crc` also checks each batch's CRC-32C. Stops at the
    /// first batch that is torn, corrupt or not at the expected offset; `size_bytes` is then
    /// the valid prefix. `on_batch` sees every valid batch (leader-epoch rebuild). Batches
    /// holding `stop_at` or later offsets are not accepted either (i64::MAX: no limit).
    pub fn scan(
        &mut self,
        verify_crc: bool,
        index_interval_bytes: u64,
        stop_at: i64,
        chunk: &mut Vec<u8>,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<ScanOutcome> {
        let file_len = self.file.len_bytes()?;
        self.reset_indexes();
        let mut batches = 0u64;
        let mut pos = 0u64;
        let mut header = [0u8; BATCH_HEADER_LEN];
        let failure = loop {
            if pos == file_len {
                break None;
            }
            let available = file_len - pos;
            if available < BATCH_HEADER_LEN as u64 {
                break Some(format!(
                    "torn batch header ({available} bytes) at position {pos}"
                ));
            }
            self.file.read_exact_at(&mut header, pos)?;
            let h = BatchHeader::parse(&header).expect("buffer holds a full header");
            if let Err(e) = check_header(&h, available, pos) {
                break Some(format!("{e} (file position {pos})"));
            }
            if let Some(what) = offsets_overflow(&h) {
                break Some(format!("{what} (file position {pos})"));
            }
            if h.base_offset != self.next_offset {
                break Some(format!(
                    "batch at position {pos} has base offset {}, expected {}",
                    h.base_offset, self.next_offset
                ));
            }
            if h.last_offset() >= stop_at {
                break Some(format!(
                    "batch at position {pos} (offsets {}..={}) is past offset {stop_at}, the \
                     recovery point when the log went offline",
                    h.base_offset,
                    h.last_offset()
                ));
            }
            if h.last_offset() - self.base_offset > u32::MAX as i64
                || pos + h.total_len() as u64 > u32::MAX as u64
            {
                break Some(format!(
                    "batch at position {pos} (offset {}) is not addressable by the index",
                    h.base_offset
                ));
            }
            if verify_crc {
                let computed = self.crc_of(pos, h.total_len() as u64, chunk)?;
                if computed != h.crc {
                    break Some(format!(
                        "crc mismatch at offset {} position {pos}: stored {:#010x}, computed {computed:#010x}",
                        h.base_offset, h.crc
                    ));
                }
            }
            self.track_batch(&h, pos, index_interval_bytes);
            on_batch(&h);
            batches += 1;
            pos += h.total_len() as u64;
        };
        debug_assert_eq!(self.size_bytes, pos);
        Ok(ScanOutcome { batches, failure })
    }

    /// CRC-32C of the batch at `pos` (bytes 21..total), streamed through `chunk`.
    fn crc_of(&self, pos: u64, total_bytes: u64, chunk: &mut Vec<u8>) -> io::Result<u32> {
        chunk.resize(SCAN_CHUNK_BYTES, 0);
        let mut crc = 0u32;
        let mut at = pos + CRC_COVERED_FROM as u64;
        let end = pos + total_bytes;
        while at < end {
            let n = ((end - at) as usize).min(SCAN_CHUNK_BYTES);
            self.file.read_exact_at(&mut chunk[..n], at)?;
            crc = crc32c::crc32c_append(crc, &chunk[..n]);
            at += n as u64;
        }
        Ok(crc)
    }

    /// Cheap check for a trusted segment with loaded indexes: walk headers from the last
    /// index entry to the end; they must be contiguous and end exactly at the file end and
    /// at `next_offset`.
    pub fn tail_is_consistent(&self) -> io::Result<bool> {
        let (mut expected, mut pos) = match self.offset_index.last() {
            Some(&(rel, pos)) => (self.base_offset + rel as i64, pos as u64),
            None => (self.base_offset, 0),
        };
        while pos < self.size_bytes {
            let h = match self.read_header(pos) {
                Ok(h) => h,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(false),
                Err(e) => return Err(e),
            };
            if h.base_offset != expected {
                return Ok(false);
            }
            expected = h.last_offset() + 1;
            pos += h.total_len() as u64;
        }
        Ok(pos == self.size_bytes && expected == self.next_offset)
    }

    /// Load `.index` and `.timeindex` if they exist, are intact (magic, version, CRC) and
    /// describe exactly the current `.log` size. Returns false (nothing changed) otherwise.
    pub fn load_indexes(&mut self, fs: &dyn Fs) -> io::Result<bool> {
        let max_entries = self.size_bytes / BATCH_HEADER_LEN as u64 + 1;
        let Some(ox) = read_index_file(
            fs,
            &self.index_path(INDEX_SUFFIX),
            OFFSET_INDEX_MAGIC,
            OFFSET_INDEX_HEADER_BYTES,
            OFFSET_INDEX_ENTRY_BYTES,
            max_entries,
        )?
        else {
            return Ok(false);
        };
        let Some(tx) = read_index_file(
            fs,
            &self.index_path(TIME_INDEX_SUFFIX),
            TIME_INDEX_MAGIC,
            TIME_INDEX_HEADER_BYTES,
            TIME_INDEX_ENTRY_BYTES,
            max_entries,
        )?
        else {
            return Ok(false);
        };
        if u64_at(&ox, 12) != self.size_bytes || u64_at(&tx, 12) != self.size_bytes {
            return Ok(false);
        }
        let next_offset = u64_at(&ox, 20) as i64;
        if next_offset < self.base_offset
            || next_offset - self.base_offset > u32::MAX as i64 + 1
            || (self.size_bytes == 0) != (next_offset == self.base_offset)
        {
            return Ok(false);
        }
        let span = (next_offset - self.base_offset) as u64;
        let mut offset_index = Vec::new();
        for e in ox[OFFSET_INDEX_HEADER_BYTES..].chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            let ordered = offset_index
                .last()
                .is_none_or(|&(r, p): &(u32, u32)| rel > r && pos > p);
            if !ordered || rel as u64 >= span || pos as u64 >= self.size_bytes {
                return Ok(false);
            }
            offset_index.push((rel, pos));
        }
        let mut time_index = Vec::new();
        for e in tx[TIME_INDEX_HEADER_BYTES..].chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let ts = u64_at(e, 0) as i64;
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            let ordered = time_index
                .last()
                .is_none_or(|&(t, r): &(i64, u32)| ts > t && rel >= r);
            if !ordered || rel as u64 >= span {
                return Ok(false);
            }
            time_index.push((ts, rel));
        }
        self.next_offset = next_offset;
        self.bytes_since_index_entry =
            self.size_bytes - offset_index.last().map_or(0, |&(_, p)| p as u64);
        (self.max_timestamp, self.offset_of_max_timestamp) = match time_index.last() {
            Some(&(ts, rel)) => (ts, self.base_offset + rel as i64),
            None => (-1, -1),
        };
        self.offset_index = offset_index;
        self.time_index = time_index;
        self.indexes_on_disk = true;
        Ok(true)
    }

    /// Write both index files (sealing the time index first) and fsync them.
    pub fn write_indexes(&mut self, fs: &dyn Fs) -> io::Result<()> {
        self.push_time_entry_if_grown();
        let mut ox = Vec::with_capacity(
            OFFSET_INDEX_HEADER_BYTES + self.offset_index.len() * OFFSET_INDEX_ENTRY_BYTES,
        );
        ox.extend_from_slice(OFFSET_INDEX_MAGIC);
        ox.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        ox.extend_from_slice(&[0; 4]);
        ox.extend_from_slice(&self.size_bytes.to_be_bytes());
        ox.extend_from_slice(&self.next_offset.to_be_bytes());
        for &(rel, pos) in &self.offset_index {
            ox.extend_from_slice(&rel.to_be_bytes());
            ox.extend_from_slice(&pos.to_be_bytes());
        }
        let mut tx = Vec::with_capacity(
            TIME_INDEX_HEADER_BYTES + self.time_index.len() * TIME_INDEX_ENTRY_BYTES,
        );
        tx.extend_from_slice(TIME_INDEX_MAGIC);
        tx.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        tx.extend_from_slice(&[0; 4]);
        tx.extend_from_slice(&self.size_bytes.to_be_bytes());
        for &(ts, rel) in &self.time_index {
            tx.extend_from_slice(&ts.to_be_bytes());
            tx.extend_from_slice(&rel.to_be_bytes());
        }
        // A torn index write is caught by this CRC at the next open and rebuilt from the
        // .log, so no tmp+rename dance is needed here.
        for (buf, suffix) in [(&mut ox, INDEX_SUFFIX), (&mut tx, TIME_INDEX_SUFFIX)] {
            let crc = crc32c::crc32c(&buf[12..]);
            buf[8..12].copy_from_slice(&crc.to_be_bytes());
            let path = self.index_path(suffix);
            let f = fs.create_truncate(&path)?;
            f.write_all_at(buf, 0)?;
            f.sync_all()?;
        }
        self.indexes_on_disk = true;
        Ok(())
    }

    /// Cut the `.log` at `size_bytes` (after a scan found the valid prefix) and fsync it.
    pub fn truncate_file(&mut self) -> io::Result<()> {
        self.file.set_len(self.size_bytes)?;
        self.file.sync_all()
    }

    /// Remove the index files (they describe contents the `.log` no longer has).
    pub fn remove_index_files(&mut self, fs: &dyn Fs) -> io::Result<()> {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match fs.remove_file(&self.index_path(suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.indexes_on_disk = false;
        Ok(())
    }

    /// Rename the three files to `<name>.deleted` (the .log first: from then on the segment
    /// is no longer part of the log for a recovery, and its indexes are orphans it removes).
    /// Returns the new paths of the files that existed.
    pub fn rename_deleted(self, fs: &dyn Fs) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let paths = [
            self.log_path.clone(),
            self.index_path(INDEX_SUFFIX),
            self.index_path(TIME_INDEX_SUFFIX),
        ];
        for (i, path) in paths.into_iter().enumerate() {
            let mut to = path.clone().into_os_string();
            to.push(DELETED_SUFFIX);
            let to = PathBuf::from(to);
            match fs.rename(&path, &to) {
                Ok(()) => out.push(to),
                // Index files are optional; a missing .log means the partition went.
                Err(e) if e.kind() == io::ErrorKind::NotFound && i > 0 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Remove the three files (the .log last, so a crash midway leaves a .log that the next
    /// recovery sees again rather than an orphan index that looks valid).
    pub fn delete_files(mut self, fs: &dyn Fs) -> io::Result<()> {
        self.remove_index_files(fs)?;
        fs.remove_file(&self.log_path)
    }
}

/// The index file's bytes if present, well-formed (magic, version, CRC, whole entries) and
/// not larger than `max_entries` entries; None otherwise.
fn read_index_file(
    fs: &dyn Fs,
    path: &Path,
    magic: &[u8; 4],
    header_bytes: usize,
    entry_bytes: usize,
    max_entries: u64,
) -> io::Result<Option<Vec<u8>>> {
    let Some(len) = fs.file_len(path)? else {
        return Ok(None);
    };
    // Whole entries only (written as `x / n * n != x` to stay within MSRV 1.85).
    let body_bytes = len.saturating_sub(header_bytes as u64);
    let entry_bytes = entry_bytes as u64;
    if len < header_bytes as u64
        || body_bytes / entry_bytes * entry_bytes != body_bytes
        || body_bytes / entry_bytes > max_entries
    {
        return Ok(None);
    }
    let buf = fs.read_file(path)?;
    if buf.len() as u64 != len
        || &buf[0..4] != magic
        || u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != INDEX_VERSION
        || u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) != crc32c::crc32c(&buf[12..])
    {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// A stored batch whose offsets, and the offset after it, do not fit in an i64 (a corrupt or
/// forged file: the log never assigns them). Checked before anything computes
/// `last_offset() + 1`.
/// A batch smaller than this makes the next header read a read-ahead.
const SMALL_BATCH_BYTES: usize = 1024;
/// How much a read-ahead of headers reads.
const READ_AHEAD_BYTES: usize = 16 * 1024;

/// The buffer of [`Segment::read_header_ahead`]: bytes of the segment from `at`.
#[derive(Debug, Default)]
pub(crate) struct HeaderReadAhead {
    buf: Vec<u8>,
    at: u64,
    next_read: usize,
}

fn offsets_overflow(h: &BatchHeader) -> Option<String> {
    h.base_offset
        .checked_add(h.last_offset_delta as i64 + 1)
        .is_none()
        .then(|| {
            format!(
                "batch at offset {} with last_offset_delta {} runs past the largest offset",
                h.base_offset, h.last_offset_delta
            )
        })
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}
