//! The node's write-ahead journal: one fdatasync per round makes the appends of every
//! partition durable (Apache BookKeeper's journal; the design and its measurements are in
//! docs/storage.md, "What one flush costs with many partitions").
//!
//! Partition segments are written as before but fsync'd lazily; what makes an append
//! durable, and so acknowledgeable, is its copy in the journal. A round writes everything
//! queued since the previous round with one `pwrite` into the active journal file and one
//! `fdatasync`. After a crash, [`Journal::open`] hands every record it finds, in order, to
//! the caller, which puts back into the segments whatever they lost.
//!
//! # Files
//! `journal/<seq>.journal`, `seq` a 20-digit decimal that grows by one per file. A file is
//! created at its full size (`file_bytes`), written with zeros and fsync'd once, so a
//! round's fdatasync writes data blocks only, never file-system metadata. Rounds go to the
//! newest file; a round that does not fit starts the next file, so every file but the
//! newest was complete and fsync'd before the next one got a byte. A file is reused (renamed
//! to the next `seq`) once every partition with records in it has its segments durable past
//! them ([`Journal::reclaim`]).
//!
//! # Records
//! ```text
//! len u32 | crc u32 | file_seq u64 | topic_id [16] | partition i32 | base_offset i64 | end_offset i64 | batches [len]
//! ```
//! Big-endian. `crc` is CRC-32C of `len` and of everything after `crc`. `file_seq` is the
//! file's own sequence number: the records a reused file still holds from its previous life
//! carry an older one, so a scan never takes them for new. A file's records end at the first
//! one that is zero, torn, fails its CRC or names another file: a crash mid-round leaves
//! exactly that, and nothing after it in that file was acknowledged.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{Fs, StorageFile};
use crate::log::StorageError;

/// Bytes before a record's batches.
pub const RECORD_HEADER_LEN: usize = 4 + 4 + 8 + 16 + 4 + 8 + 8;

const SUFFIX: &str = ".journal";

/// One partition as the journal names it: topic id and partition index (a topic deleted
/// and created again under its name has a new id, so old records never reach it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// The topic's id (KIP-516 UUID, as a number).
    pub topic_id: u128,
    /// The partition index.
    pub partition: i32,
}

/// One partition's appends in a round: whole batches, offsets `base_offset..end_offset`.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    /// Whose batches.
    pub key: PartitionKey,
    /// The first batch's base offset.
    pub base_offset: i64,
    /// The offset after the last record.
    pub end_offset: i64,
    /// The batches as the segment holds them.
    pub batches: &'a [u8],
}

/// Sizes of the journal.
#[derive(Debug, Clone, Copy)]
pub struct JournalConfig {
    /// Size of each journal file; one round's entries, and the largest single entry, must
    /// fit in one.
    pub file_bytes: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            file_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct JournalFile {
    seq: u64,
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    /// Where the next record goes.
    pos: u64,
    /// Per partition, the end offset of its newest record in this file: the file can be
    /// reused once each of them is durable in the partition's segments.
    pins: HashMap<PartitionKey, i64>,
}

/// The open journal of one data directory. Not thread-safe: the broker runs its rounds on
/// one writer.
#[derive(Debug)]
pub struct Journal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    config: JournalConfig,
    /// Oldest first; the last is the one rounds go to.
    live: VecDeque<JournalFile>,
    /// Files whose records are all durable elsewhere, ready to be renamed and reused.
    spare: Vec<JournalFile>,
    next_seq: u64,
    buf: Vec<u8>,
    failed: bool,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalRecovery {
    /// Journal files found.
    pub files: usize,
    /// Records handed to the caller.
    pub records: usize,
    /// Their batch bytes.
    pub bytes: u64,
}

/// One record found by [`Journal::open`].
#[derive(Debug)]
pub struct JournalRecord<'a> {
    /// Whose batches.
    pub key: PartitionKey,
    /// The first batch's base offset.
    pub base_offset: i64,
    /// The offset after the last record.
    pub end_offset: i64,
    /// The batches.
    pub batches: &'a [u8],
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> StorageError {
    move |source| StorageError::Io { context, source }
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn crc(record: &[u8]) -> u32 {
    let c = crc32c::crc32c(&record[..4]);
    crc32c::crc32c_append(c, &record[8..])
}

/// The record at the start of `rest`, if it is whole, valid and of file `seq`.
fn parse_record(rest: &[u8], seq: u64) -> Option<(JournalRecord<'_>, usize)> {
    let header = rest.get(..RECORD_HEADER_LEN)?;
    let int = |at: usize, n: usize| {
        header[at..at + n]
            .iter()
            .fold(0u128, |a, &b| a << 8 | b as u128)
    };
    let len = int(0, 4) as usize;
    if len == 0 {
        return None;
    }
    let total = RECORD_HEADER_LEN.checked_add(len)?;
    let record = rest.get(..total)?;
    if int(4, 4) as u32 != crc(record) || int(8, 8) as u64 != seq {
        return None;
    }
    let base_offset = int(36, 8) as u64 as i64;
    let end_offset = int(44, 8) as u64 as i64;
    if base_offset < 0 || end_offset <= base_offset {
        return None;
    }
    Some((
        JournalRecord {
            key: PartitionKey {
                topic_id: int(16, 16),
                partition: int(32, 4) as u32 as i32,
            },
            base_offset,
            end_offset,
            batches: &record[RECORD_HEADER_LEN..],
        },
        total,
    ))
}

fn put_record(buf: &mut Vec<u8>, seq: u64, e: &JournalEntry<'_>) {
    let start = buf.len();
    buf.extend_from_slice(&(e.batches.len() as u32).to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&e.key.topic_id.to_be_bytes());
    buf.extend_from_slice(&e.key.partition.to_be_bytes());
    buf.extend_from_slice(&e.base_offset.to_be_bytes());
    buf.extend_from_slice(&e.end_offset.to_be_bytes());
    buf.extend_from_slice(e.batches);
    let c = crc(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&c.to_be_bytes());
}

impl Journal {
    /// Open (or create) the journal in `dir`, handing every record it holds to `replay`, in
    /// the order they were written. Whatever `replay` returns as an error stops the open.
    /// The records stay pinned (not reused) until [`Journal::reclaim`] sees their partitions
    /// durable past them: the caller syncs the segments it replayed into, then reclaims.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: &Path,
        config: JournalConfig,
        mut replay: impl FnMut(&JournalRecord<'_>) -> Result<(), StorageError>,
    ) -> Result<(Journal, JournalRecovery), StorageError> {
        if config.file_bytes < (RECORD_HEADER_LEN as u64) * 2 {
            return Err(StorageError::Io {
                context: format!("journal in {}", dir.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, "journal files too small"),
            });
        }
        fs.create_dir_all(dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent)
                .map_err(io_err(format!("fsync {}", parent.display())))?;
        }
        let mut seqs: Vec<u64> = fs
            .list_dir(dir)
            .map_err(io_err(format!("listing {}", dir.display())))?
            .iter()
            .filter_map(|n| parse_name(n))
            .collect();
        seqs.sort_unstable();
        let mut recovery = JournalRecovery {
            files: seqs.len(),
            ..Default::default()
        };
        let mut live = VecDeque::new();
        for &seq in &seqs {
            let path = dir.join(file_name(seq));
            let file = fs
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            let len = file
                .len_bytes()
                .map_err(io_err(format!("reading {}", path.display())))?;
            // Files are created at `file_bytes`; a longer one (the size was lowered since) is
            // still read whole, a huge one is not ours.
            if len > config.file_bytes.max(1 << 32) {
                return Err(StorageError::Io {
                    context: format!("opening {}", path.display()),
                    source: io::Error::new(io::ErrorKind::InvalidData, "journal file too long"),
                });
            }
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(io_err(format!("reading {}", path.display())))?;
            let mut pos = 0usize;
            let mut pins = HashMap::new();
            while let Some((record, n)) = parse_record(&bytes[pos..], seq) {
                replay(&record)?;
                recovery.records += 1;
                recovery.bytes += record.batches.len() as u64;
                let pin = pins.entry(record.key).or_insert(record.end_offset);
                *pin = (*pin).max(record.end_offset);
                pos += n;
            }
            live.push_back(JournalFile {
                seq,
                path,
                file,
                pos: pos as u64,
                pins,
            });
        }
        let next_seq = seqs.last().map_or(0, |s| s + 1);
        let mut journal = Journal {
            fs,
            dir: dir.to_path_buf(),
            config,
            live,
            spare: Vec::new(),
            next_seq,
            buf: Vec::new(),
            failed: false,
        };
        // Rounds never go on in a file a crash may have cut: the next round starts a new
        // one, and what the cut file holds stays as the scan found it.
        if let Some(last) = journal.live.back_mut() {
            last.pos = journal.config.file_bytes;
        }
        Ok((journal, recovery))
    }

    /// Write `entries` and fdatasync them: once this returns Ok, they survive a crash.
    /// After an error the journal refuses further rounds (fail-stop, as a log after a
    /// failed fsync): nothing written since the last good round can be trusted.
    pub fn write_round(&mut self, entries: &[JournalEntry<'_>]) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::Offline(self.dir.clone()));
        }
        let result = self.try_round(entries);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn try_round(&mut self, entries: &[JournalEntry<'_>]) -> Result<(), StorageError> {
        let room = self.config.file_bytes;
        let mut i = 0;
        while i < entries.len() {
            let need = |e: &JournalEntry<'_>| (RECORD_HEADER_LEN + e.batches.len()) as u64;
            if need(&entries[i]) > room {
                return Err(StorageError::Io {
                    context: format!("journal in {}", self.dir.display()),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "an append of {} bytes does not fit in a journal file of {room} bytes",
                            entries[i].batches.len()
                        ),
                    ),
                });
            }
            if self
                .live
                .back()
                .is_none_or(|f| f.pos + need(&entries[i]) > room)
            {
                self.start_file()?;
            }
            let active = self.live.back_mut().expect("started above");
            self.buf.clear();
            let mut end = active.pos;
            while i < entries.len() && end + need(&entries[i]) <= room {
                let e = &entries[i];
                put_record(&mut self.buf, active.seq, e);
                let pin = active.pins.entry(e.key).or_insert(e.end_offset);
                *pin = (*pin).max(e.end_offset);
                end += need(e);
                i += 1;
            }
            let path = active.path.display().to_string();
            active
                .file
                .write_all_at(&self.buf, active.pos)
                .map_err(io_err(format!("writing {path}")))?;
            active
                .file
                .sync_data()
                .map_err(io_err(format!("fsync {path}")))?;
            active.pos = end;
        }
        Ok(())
    }

    /// Make the next file the active one: a spare renamed, or a new file of zeros.
    fn start_file(&mut self) -> Result<(), StorageError> {
        let seq = self.next_seq;
        let path = self.dir.join(file_name(seq));
        let file = match self.spare.pop() {
            Some(old) => {
                self.fs
                    .rename(&old.path, &path)
                    .map_err(io_err(format!("renaming {}", old.path.display())))?;
                old.file
            }
            None => {
                let f = self
                    .fs
                    .create_new(&path)
                    .map_err(io_err(format!("creating {}", path.display())))?;
                let zeros = vec![0u8; 1 << 20];
                let mut at = 0u64;
                while at < self.config.file_bytes {
                    let n = (self.config.file_bytes - at).min(zeros.len() as u64) as usize;
                    f.write_all_at(&zeros[..n], at)
                        .map_err(io_err(format!("writing {}", path.display())))?;
                    at += n as u64;
                }
                f.sync_all()
                    .map_err(io_err(format!("fsync {}", path.display())))?;
                f
            }
        };
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err(format!("fsync {}", self.dir.display())))?;
        self.next_seq += 1;
        self.live.push_back(JournalFile {
            seq,
            path,
            file,
            pos: 0,
            pins: HashMap::new(),
        });
        Ok(())
    }

    /// Retire the oldest files none of whose records is still needed: `durable` says how
    /// far a partition's segments are durable (its recovery point), `None` for a partition
    /// that no longer exists. The newest file is never retired. Returns how many were.
    pub fn reclaim(&mut self, durable: impl Fn(&PartitionKey) -> Option<i64>) -> usize {
        let mut n = 0;
        while self.live.len() > 1 {
            let oldest = &self.live[0];
            let needed = oldest
                .pins
                .iter()
                .any(|(k, &end)| durable(k).is_some_and(|d| d < end));
            if needed {
                break;
            }
            let mut f = self.live.pop_front().expect("len > 1");
            f.pins.clear();
            self.spare.push(f);
            n += 1;
        }
        n
    }

    /// The partitions whose segments must become durable before the oldest file can be
    /// retired, with the end offset each must reach: the broker syncs them when the journal
    /// grows past what it wants to keep.
    pub fn oldest_pins(&self) -> Vec<(PartitionKey, i64)> {
        match self.live.front() {
            Some(f) if self.live.len() > 1 => f.pins.iter().map(|(k, &e)| (*k, e)).collect(),
            _ => Vec::new(),
        }
    }

    /// Journal files in use (records that may still be needed), the active one included.
    pub fn live_files(&self) -> usize {
        self.live.len()
    }

    /// Bytes of journal files on disk (live and spare).
    pub fn disk_bytes(&self) -> u64 {
        (self.live.len() + self.spare.len()) as u64 * self.config.file_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simfs::SimFs;

    const DIR: &str = "/journal";

    /// A record as the scan returned it: key, base offset, end offset, batches.
    type Seen = (PartitionKey, i64, i64, Vec<u8>);

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic_id: 0x1234_5678_9abc_def0_1122_3344_5566_7788,
            partition: p,
        }
    }

    fn open(fs: &Arc<dyn Fs>, file_bytes: u64) -> (Journal, Vec<Seen>) {
        let mut seen = Vec::new();
        let (j, rec) = Journal::open(
            fs.clone(),
            Path::new(DIR),
            JournalConfig { file_bytes },
            |r| {
                seen.push((r.key, r.base_offset, r.end_offset, r.batches.to_vec()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(rec.records, seen.len());
        (j, seen)
    }

    fn entry(p: i32, base: i64, bytes: &[u8]) -> JournalEntry<'_> {
        JournalEntry {
            key: key(p),
            base_offset: base,
            end_offset: base + 1,
            batches: bytes,
        }
    }

    #[test]
    fn records_come_back_in_order_across_files() {
        let sim = Arc::new(SimFs::new(1));
        let fs: Arc<dyn Fs> = sim.clone();
        let (mut j, seen) = open(&fs, 4096);
        assert!(seen.is_empty());
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 300 + i as usize]).collect();
        for (i, chunk) in payloads.chunks(3).enumerate() {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(k, b)| entry(k as i32, i as i64, b))
                .collect();
            j.write_round(&entries).unwrap();
        }
        assert!(j.live_files() > 3, "4 KiB files hold a few records each");
        sim.crash();
        sim.restart();
        let (_, seen) = open(&fs, 4096);
        let got: Vec<Vec<u8>> = seen.into_iter().map(|s| s.3).collect();
        assert_eq!(got, payloads);
    }

    #[test]
    fn a_reused_file_never_yields_its_old_records() {
        let sim = Arc::new(SimFs::new(2));
        let fs: Arc<dyn Fs> = sim.clone();
        let (mut j, _) = open(&fs, 2048);
        for i in 0..20 {
            j.write_round(&[entry(0, i, &[i as u8; 500])]).unwrap();
            // Partition 0 is durable up to i + 1 right away: everything older is reusable.
            j.reclaim(|_| Some(i + 1));
        }
        assert!(j.disk_bytes() <= 3 * 2048, "files are reused, not added");
        sim.crash();
        sim.restart();
        let (_, seen) = open(&fs, 2048);
        // Only what was written after the last reuse, never a record of a file's earlier life.
        let bases: Vec<i64> = seen.iter().map(|s| s.1).collect();
        assert!(!bases.is_empty());
        assert!(bases.windows(2).all(|w| w[0] < w[1]), "{bases:?}");
        assert_eq!(*bases.last().unwrap(), 19);
        for s in &seen {
            assert_eq!(s.3, vec![s.1 as u8; 500]);
        }
    }

    #[test]
    fn reclaim_waits_for_every_partition_in_the_oldest_file() {
        let fs: Arc<dyn Fs> = Arc::new(SimFs::new(3));
        let (mut j, _) = open(&fs, 1024);
        j.write_round(&[entry(0, 0, &[1; 400]), entry(1, 0, &[2; 400])])
            .unwrap();
        j.write_round(&[entry(0, 1, &[3; 400])]).unwrap();
        assert_eq!(j.live_files(), 2);
        assert_eq!(j.reclaim(|k| Some(if k.partition == 0 { 5 } else { 0 })), 0);
        let mut pins = j.oldest_pins();
        pins.sort();
        assert_eq!(pins, vec![(key(0), 1), (key(1), 1)]);
        // A deleted partition does not hold the file.
        assert_eq!(
            j.reclaim(|k| if k.partition == 0 { Some(5) } else { None }),
            1
        );
        assert!(j.oldest_pins().is_empty());
    }

    /// A crash at every file operation of a round: what the scan returns is every round that
    /// completed (its fdatasync returned) and possibly the one in flight, in order, never
    /// anything torn or foreign.
    #[test]
    fn a_crash_anywhere_keeps_every_completed_round() {
        let payload = |r: i64| vec![(r % 251) as u8; 200 + (r as usize * 37) % 700];
        let rounds = 30i64;
        // Count the operations of a full run first.
        let total_ops = {
            let sim = Arc::new(SimFs::new(9));
            let fs: Arc<dyn Fs> = sim.clone();
            let (mut j, _) = open(&fs, 4096);
            for r in 0..rounds {
                let p = payload(r);
                j.write_round(&[entry((r % 3) as i32, r, &p)]).unwrap();
                j.reclaim(|_| Some(r - 5));
            }
            sim.op_count()
        };
        for crash_at in (1..total_ops).step_by(3) {
            for torn in [false, true] {
                let sim = Arc::new(SimFs::new(crash_at * 2 + torn as u64));
                let fs: Arc<dyn Fs> = sim.clone();
                let mut done = -1i64;
                {
                    let Ok((mut j, _)) = Journal::open(
                        fs.clone(),
                        Path::new(DIR),
                        JournalConfig { file_bytes: 4096 },
                        |_| Ok(()),
                    ) else {
                        continue;
                    };
                    sim.crash_at_op(sim.op_count() + crash_at);
                    for r in 0..rounds {
                        let p = payload(r);
                        if j.write_round(&[entry((r % 3) as i32, r, &p)]).is_err() {
                            break;
                        }
                        done = r;
                        j.reclaim(|_| Some(r - 5));
                    }
                }
                if torn {
                    sim.crash_torn();
                } else {
                    sim.crash();
                }
                sim.restart();
                let (_, seen) = open(&fs, 4096);
                let bases: Vec<i64> = seen.iter().map(|s| s.1).collect();
                // Reclaimed rounds (older than done - 5) may be gone; from the first one
                // found, every round is there in order up to at least `done`.
                if let Some(&first) = bases.first() {
                    let want: Vec<i64> = (first..first + bases.len() as i64).collect();
                    assert_eq!(bases, want, "crash at op {crash_at} torn={torn}");
                    assert!(
                        first <= (done - 5).max(0),
                        "crash at op {crash_at}: lost rounds before {first}, done {done}"
                    );
                }
                assert!(
                    bases.last().copied().unwrap_or(-1) >= done,
                    "crash at op {crash_at} torn={torn}: round {done} completed but the journal ends at {:?}",
                    bases.last()
                );
                for s in &seen {
                    assert_eq!(
                        s.3,
                        payload(s.1),
                        "crash at op {crash_at}: record {} damaged",
                        s.1
                    );
                }
            }
        }
    }
}
