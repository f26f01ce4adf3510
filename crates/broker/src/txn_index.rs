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
//! matches the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::producer_state::AbortedTxn;

/// Not `*.index`: the log treats those as offset indexes and removes ones without a segment.
pub const TXN_INDEX_FILE: &str = "aborted.txnindex";
const ENTRY_LEN: usize = 34;

pub struct TxnIndex {
    path: PathBuf,
    file: Option<File>,
    /// Sorted by last offset (markers are appended in offset order).
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Read the index in `dir`, keeping only entries whose marker is below `log_end_offset`
    /// and at or past `log_start_offset` (rewriting the file if any were dropped). A torn
    /// last entry is dropped too.
    pub fn open(dir: &Path, log_start_offset: i64, log_end_offset: i64) -> std::io::Result<Self> {
        let path = dir.join(TXN_INDEX_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
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
            path,
            file: None,
            entries,
        };
        if !valid {
            idx.rewrite()?;
        }
        Ok(idx)
    }

    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            bytes.extend_from_slice(&encode(e));
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::broker::write_atomically(dir, TXN_INDEX_FILE, &bytes)
            .map_err(std::io::Error::other)?;
        self.file = None;
        Ok(())
    }

    /// Add an abort (its marker must be past every entry's). Entries already present (a
    /// marker replayed by the scan at open) are ignored.
    pub fn append(&mut self, e: AbortedTxn) -> std::io::Result<()> {
        if self
            .entries
            .last()
            .is_some_and(|l| l.last_offset >= e.last_offset)
        {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        self.file
            .as_mut()
            .expect("opened above")
            .write_all(&encode(&e))?;
        self.entries.push(e);
        Ok(())
    }

    /// fsync what was appended.
    pub fn sync(&self) -> std::io::Result<()> {
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
    pub fn remove_markers(&mut self, marker_offsets: &[i64]) -> std::io::Result<()> {
        let before = self.entries.len();
        self.entries
            .retain(|e| !marker_offsets.contains(&e.last_offset));
        if self.entries.len() != before {
            self.rewrite()?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

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
        let mut idx = TxnIndex::open(dir.path(), 0, 0).unwrap();
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
        let idx = TxnIndex::open(dir.path(), 0, 15).unwrap();
        assert_eq!(idx.len(), 2);
        let idx = TxnIndex::open(dir.path(), 0, 15).unwrap();
        assert_eq!(idx.len(), 2, "the cut was written back");
    }

    #[test]
    fn a_torn_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::open(dir.path(), 0, 0).unwrap();
        idx.append(abort(1, 0, 5)).unwrap();
        idx.append(abort(1, 6, 8)).unwrap();
        drop(idx);
        let path = dir.path().join(TXN_INDEX_FILE);
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..ENTRY_LEN + 10]).unwrap();
        let idx = TxnIndex::open(dir.path(), 0, 100).unwrap();
        assert_eq!(idx.overlapping(0, 100), vec![(1, 0)]);
    }

    #[test]
    fn removed_markers_leave_the_index_for_good_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TxnIndex::open(dir.path(), 0, 0).unwrap();
        idx.append(abort(1, 0, 5)).unwrap();
        idx.append(abort(2, 3, 9)).unwrap();
        idx.remove_markers(&[5, 7]).unwrap();
        assert_eq!(idx.overlapping(0, 100), vec![(2, 3)]);
        idx.append(abort(1, 10, 20)).unwrap();
        idx.sync().unwrap();
        drop(idx);
        let idx = TxnIndex::open(dir.path(), 0, 100).unwrap();
        assert_eq!(idx.overlapping(0, 100), vec![(2, 3), (1, 10)]);
    }
}
