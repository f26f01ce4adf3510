//! The aborted-transaction index of one partition: every transaction aborted in it, so a
//! read_committed Fetch can tell the client which producers' records to drop in the range
//! it returns (Kafka's `.txnindex`, one per partition here rather than one per segment).
//!
//! File `aborted.txnindex` in the partition directory: entries of 34 bytes in Kafka's
//! layout (i16 version 0, i64 producer id, i64 first offset, i64 last offset, i64 last
//! stable offset), in marker order. Appended under the log lock when an abort marker is
//! appended; fsync'd before every producer-state snapshot, so every abort below a snapshot's
//! offset is on disk. At open, entries whose marker is past the log end (cut by recovery)
//! are dropped, and the scan from the snapshot adds the aborts after it, so the index always
//! matches the log. Every byte goes through the storage [`Fs`], so crash tests on `SimFs`
//! cover it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_storage::{read_optional, write_atomic, Fs, StorageFile};

use crate::producer_state::AbortedTxn;

/// Not `*.index`: the log treats those as offset indexes and removes ones without a segment.
pub const TXN_INDEX_FILE: &str = "aborted.txnindex";
const ENTRY_LEN: usize = 34;

/// The index holds one entry per aborted transaction still in the log: a million is 34 MB.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The aborted transactions of one partition, in memory and in `aborted.txnindex`.
pub struct TxnIndex {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// Open for appends once the first entry is added after open or a rewrite.
    file: Option<Arc<dyn StorageFile>>,
    /// Bytes of whole entries in the file: where the next entry goes (a torn append is
    /// overwritten by the next one).
    file_len: u64,
    /// Sorted by last offset (markers are appended in offset order).
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Read the index in `dir`, keeping only entries whose marker is below `log_end_offset`
    /// and at or past `log_start_offset` (rewriting the file if any were dropped). A torn
    /// last entry is dropped too.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        log_start_offset: i64,
        log_end_offset: i64,
    ) -> io::Result<Self> {
        let data =
            read_optional(&*fs, &dir.join(TXN_INDEX_FILE), MAX_FILE_BYTES)?.unwrap_or_default();
        let mut entries = Vec::with_capacity(data.len() / ENTRY_LEN);
        let mut valid = true;
        for c in data.chunks(ENTRY_LEN) {
            let Some(e) = decode(c) else {
                valid = false;
                break;
            };
            if e.last_offset >= log_end_offset || e.last_offset < log_start_offset {
                valid = false;
                continue;
            }
            if entries
                .last()
                .is_some_and(|l: &AbortedTxn| l.last_offset >= e.last_offset)
            {
                valid = false;
                continue;
            }
            entries.push(e);
        }
        let mut idx = TxnIndex {
            fs,
            dir: dir.to_path_buf(),
            file: None,
            file_len: data.len() as u64,
            entries,
        };
        if !valid {
            idx.rewrite()?;
        }
        Ok(idx)
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            bytes.extend_from_slice(&encode(e));
        }
        // The old handle points at the replaced file: appends reopen the new one.
        self.file = None;
        write_atomic(&*self.fs, &self.dir, TXN_INDEX_FILE, &bytes)?;
        self.file_len = bytes.len() as u64;
        Ok(())
    }

    /// Add an abort (its marker must be past every entry's). Entries already present (a
    /// marker replayed by the scan at open) are ignored.
    pub fn append(&mut self, e: AbortedTxn) -> io::Result<()> {
        if self
            .entries
            .last()
            .is_some_and(|l| l.last_offset >= e.last_offset)
        {
            return Ok(());
        }
        let file = match &self.file {
            Some(f) => Arc::clone(f),
            None => {
                let path = self.dir.join(TXN_INDEX_FILE);
                let f = match self.fs.open(&path) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => self.fs.create_new(&path)?,
                    other => other?,
                };
                self.file = Some(Arc::clone(&f));
                f
            }
        };
        file.write_all_at(&encode(&e), self.file_len)?;
        self.file_len += ENTRY_LEN as u64;
        self.entries.push(e);
        Ok(())
    }

    /// The file to fsync to make every entry appended so far durable (None: nothing was
    /// appended since the open or the last rewrite, which were durable). Fsync'd by the
    /// caller, outside the partition's locks.
    pub fn sync_handle(&self) -> Option<Arc<dyn StorageFile>> {
        self.file.clone()
    }

    /// fsync what was appended (here, under whatever lock the caller holds).
    pub fn sync(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Aborted transactions overlapping `[from, upper)`: (producer id, first offset), in
    /// the order of their first offsets, as Fetch reports them.
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<(i64, i64)> {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        let mut v: Vec<(i64, i64)> = self.entries[start..]
            .iter()
            .filter(|e| e.first_offset < upper)
            .map(|e| (e.producer_id, e.first_offset))
            .collect();
        v.sort_by_key(|&(_, first)| first);
        v
    }

    /// Every aborted transaction (for the cleaner, which removes their records).
    pub fn all(&self) -> Vec<AbortedTxn> {
        self.entries.clone()
    }

    /// Forget aborts whose marker is below the log start offset (retention deleted them).
    /// In memory only: the file keeps them until the next rewrite, and `open` drops them.
    pub fn prune_below(&mut self, log_start_offset: i64) {
        let n = self
            .entries
            .partition_point(|e| e.last_offset < log_start_offset);
        self.entries.drain(..n);
    }

    /// Forget the aborts whose markers are at `marker_offsets` (the cleaner removes them
    /// once no record of their transaction is left), rewriting the file atomically.
    pub fn remove_markers(&mut self, marker_offsets: &[i64]) -> io::Result<()> {
        let before = self.entries.len();
        self.entries
            .retain(|e| !marker_offsets.contains(&e.last_offset));
        if self.entries.len() != before {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Aborted transactions indexed (one entry each).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No aborted transaction is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn encode(e: &AbortedTxn) -> [u8; ENTRY_LEN] {
    let mut b = [0u8; ENTRY_LEN];
    b[2..10].copy_from_slice(&e.producer_id.to_be_bytes());
    b[10..18].copy_from_slice(&e.first_offset.to_be_bytes());
    b[18..26].copy_from_slice(&e.last_offset.to_be_bytes());
    b[26..34].copy_from_slice(&e.last_stable_offset.to_be_bytes());
    b
}

fn decode(c: &[u8]) -> Option<AbortedTxn> {
    if c.len() != ENTRY_LEN || c[0..2] != [0, 0] {
        return None;
    }
    let i = |r: std::ops::Range<usize>| i64::from_be_bytes(c[r].try_into().unwrap());
    let e = AbortedTxn {
        producer_id: i(2..10),
        first_offset: i(10..18),
        last_offset: i(18..26),
        last_stable_offset: i(26..34),
    };
    (e.producer_id >= 0 && e.first_offset >= 0 && e.first_offset <= e.last_offset).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::StdFs;

    fn open(dir: &Path, start: i64, end: i64) -> TxnIndex {
        TxnIndex::open(Arc::new(StdFs), dir, start, end).unwrap()
    }

    fn abort(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: first,
        }
    }

    #[test]
    fn entries_survive_reopen_and_recovery_cuts_drop_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = open(dir.path(), 0, 0);
        idx.append(abort(1, 0, 5)).unwrap();
        idx.append(abort(2, 3, 9)).unwrap();
        idx.append(abort(1, 10, 20)).unwrap();
        idx.append(abort(1, 10, 20)).unwrap(); // replayed: ignored
        idx.sync().unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.overlapping(6, 100), vec![(2, 3), (1, 10)]);
        assert_eq!(idx.overlapping(0, 3), vec![(1, 0)]);
        assert_eq!(idx.overlapping(21, 100), vec![]);
        drop(idx);
        // The log was cut at 15: the abort at 20 is gone with its marker.
        let idx = open(dir.path(), 0, 15);
        assert_eq!(idx.len(), 2);
        let idx = open(dir.path(), 0, 15);
        assert_eq!(idx.len(), 2, "the cut was written back");
    }

    #[test]
    fn a_torn_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = open(dir.path(), 0, 0);
        idx.append(abort(1, 0, 5)).unwrap();
        idx.append(abort(1, 6, 8)).unwrap();
        drop(idx);
        let path = dir.path().join(TXN_INDEX_FILE);
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..ENTRY_LEN + 10]).unwrap();
        let idx = open(dir.path(), 0, 100);
        assert_eq!(idx.overlapping(0, 100), vec![(1, 0)]);
    }

    #[test]
    fn removed_markers_leave_the_index_for_good_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = open(dir.path(), 0, 0);
        idx.append(abort(1, 0, 5)).unwrap();
        idx.append(abort(2, 3, 9)).unwrap();
        idx.remove_markers(&[5, 7]).unwrap();
        assert_eq!(idx.overlapping(0, 100), vec![(2, 3)]);
        idx.append(abort(1, 10, 20)).unwrap();
        idx.sync().unwrap();
        drop(idx);
        let idx = open(dir.path(), 0, 100);
        assert_eq!(idx.overlapping(0, 100), vec![(2, 3), (1, 10)]);
    }
}
