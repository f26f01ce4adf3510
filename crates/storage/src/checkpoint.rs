//! Per-partition checkpoint files, written atomically (tmp, fsync, rename, fsync dir) so a
//! crash leaves either the old or the new version, never a mix. Text, first line = version.

use std::io;
use std::path::Path;

use crate::fs::{write_atomic, Fs};

/// `recovery_point` and `log_start_offset`.
pub(crate) const LOG_CHECKPOINT_FILE: &str = "log-checkpoint";
/// Leader epoch -> start offset (Kafka's leader-epoch-checkpoint format, version 0).
pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// The recovery point when the log went offline after a failed write or fsync: at the next
/// open everything from there on is discarded (see `write_offline_checkpoint`).
pub(crate) const OFFLINE_CHECKPOINT_FILE: &str = "offline-checkpoint";
/// Suffix of files being written; leftovers are deleted at open.
pub(crate) use crate::fs::TMP_SUFFIX;
/// The cleaner's progress: offsets below `clean_offset` have been compacted.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";
/// Present only while a clean is being swapped in: its commit record (see
/// docs/storage.md, "Compaction: crash safety").
pub(crate) const CLEAN_SWAP_FILE: &str = "cleaner-swap";

const LOG_CHECKPOINT_VERSION: u32 = 1;
const OFFLINE_CHECKPOINT_VERSION: u32 = 1;
const LEADER_EPOCH_CHECKPOINT_VERSION: u32 = 0;
const CLEANER_CHECKPOINT_VERSION: u32 = 1;
const CLEAN_SWAP_VERSION: u32 = 1;
/// Checkpoints are tiny; anything larger is not ours and is not read into memory.
const CHECKPOINT_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogCheckpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

/// The cleaner's progress in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerCheckpoint {
    /// Offsets below this have been compacted (the "clean" section); the rest is dirty.
    pub clean_offset: i64,
    /// Earliest delete horizon (KIP-534) of a batch in the clean section that still holds a
    /// tombstone, -1 if none: from then on a clean pass removes tombstones even with no
    /// dirty data.
    pub delete_horizon_ms: i64,
}

/// The commit record of a clean being swapped in: the new cleaner checkpoint and, per
/// cleaned group, the base offset of its new segment (`<base>.log.cleaned` until renamed)
/// and the end offset of the segments it replaces (`[base, end)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CleanSwap {
    pub checkpoint: CleanerCheckpoint,
    pub groups: Vec<(i64, i64)>,
}

pub(crate) fn write_log_checkpoint(fs: &dyn Fs, dir: &Path, ck: LogCheckpoint) -> io::Result<()> {
    let text = format!(
        "{LOG_CHECKPOINT_VERSION}\nrecovery_point {}\nlog_start_offset {}\n",
        ck.recovery_point, ck.log_start_offset
    );
    write_atomic(fs, dir, LOG_CHECKPOINT_FILE, text.as_bytes())
}

pub(crate) fn write_leader_epochs(
    fs: &dyn Fs,
    dir: &Path,
    epochs: &[(i32, i64)],
) -> io::Result<()> {
    let mut text = format!("{LEADER_EPOCH_CHECKPOINT_VERSION}\n{}\n", epochs.len());
    for (epoch, start_offset) in epochs {
        text.push_str(&format!("{epoch} {start_offset}\n"));
    }
    write_atomic(fs, dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())
}

pub(crate) fn write_cleaner_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    ck: CleanerCheckpoint,
) -> io::Result<()> {
    write_atomic(
        fs,
        dir,
        CLEANER_CHECKPOINT_FILE,
        cleaner_checkpoint_text(ck).as_bytes(),
    )
}

pub(crate) fn cleaner_checkpoint_text(ck: CleanerCheckpoint) -> String {
    format!(
        "{CLEANER_CHECKPOINT_VERSION}\nclean_offset {}\ndelete_horizon_ms {}\n",
        ck.clean_offset, ck.delete_horizon_ms
    )
}

/// Ok(None) if absent or malformed (warned): everything is then dirty, which costs one
/// full clean and is otherwise harmless.
pub(crate) fn read_cleaner_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
) -> io::Result<Option<CleanerCheckpoint>> {
    let Some(text) = read_small(fs, dir, CLEANER_CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let parsed = parse_cleaner_checkpoint(&mut text.lines());
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), file = CLEANER_CHECKPOINT_FILE,
            "unreadable cleaner checkpoint ignored; the whole log counts as dirty");
    }
    Ok(parsed)
}

fn parse_cleaner_checkpoint<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
) -> Option<CleanerCheckpoint> {
    let version: u32 = lines.next()?.trim().parse().ok()?;
    let field = |line: Option<&str>, name: &str| -> Option<i64> {
        let (key, value) = line?.split_once(' ')?;
        (key == name).then_some(())?;
        value.trim().parse().ok()
    };
    let clean_offset = field(lines.next(), "clean_offset")?;
    let delete_horizon_ms = field(lines.next(), "delete_horizon_ms")?;
    (version == CLEANER_CHECKPOINT_VERSION && clean_offset >= 0).then_some(CleanerCheckpoint {
        clean_offset,
        delete_horizon_ms,
    })
}

/// Write the commit record of a clean (atomically: the clean is committed once this
/// returns).
pub(crate) fn write_clean_swap(fs: &dyn Fs, dir: &Path, swap: &CleanSwap) -> io::Result<()> {
    let mut text = format!("{CLEAN_SWAP_VERSION}\n");
    text.push_str(&cleaner_checkpoint_text(swap.checkpoint));
    for (base, end) in &swap.groups {
        text.push_str(&format!("group {base} {end}\n"));
    }
    write_atomic(fs, dir, CLEAN_SWAP_FILE, text.as_bytes())
}

/// The commit record of an interrupted swap, if any. It is written atomically, so a
/// malformed one was damaged outside weir: that is an error (the open fails) rather than a
/// guess, since ignoring it could leave a half-swapped clean.
pub(crate) fn read_clean_swap(fs: &dyn Fs, dir: &Path) -> io::Result<Option<CleanSwap>> {
    let Some(text) = read_small(fs, dir, CLEAN_SWAP_FILE)? else {
        return Ok(None);
    };
    let parsed = (|| {
        let mut lines = text.lines();
        let version: u32 = lines.next()?.trim().parse().ok()?;
        if version != CLEAN_SWAP_VERSION {
            return None;
        }
        let checkpoint = parse_cleaner_checkpoint(&mut lines)?;
        let mut groups = Vec::new();
        for line in lines {
            let mut words = line.split(' ');
            let (tag, base, end) = (words.next()?, words.next()?, words.next()?);
            let (base, end): (i64, i64) = (base.parse().ok()?, end.parse().ok()?);
            if tag != "group" || words.next().is_some() || base < 0 || end <= base {
                return None;
            }
            // The cleaner writes its groups in offset order, each one after the last: a
            // record whose groups overlap would make the replay remove a segment twice,
            // or rename a cleaned file over one another group just installed.
            if groups.last().is_some_and(|&(_, last_end)| base < last_end) {
                return None;
            }
            groups.push((base, end));
        }
        Some(CleanSwap { checkpoint, groups })
    })();
    match parsed {
        Some(swap) => Ok(Some(swap)),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} in {} is malformed; cannot tell how far the interrupted clean got",
                CLEAN_SWAP_FILE,
                dir.display()
            ),
        )),
    }
}

/// Ok(None) if absent or unreadable as a checkpoint (warned): the caller then recovers as
/// if nothing was ever checkpointed, which is slower but safe.
pub(crate) fn read_log_checkpoint(fs: &dyn Fs, dir: &Path) -> io::Result<Option<LogCheckpoint>> {
    let Some(text) = read_small(fs, dir, LOG_CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let parsed = (|| {
        let mut lines = text.lines();
        let version: u32 = lines.next()?.trim().parse().ok()?;
        if version != LOG_CHECKPOINT_VERSION {
            return None;
        }
        let mut recovery_point = None;
        let mut log_start_offset = None;
        for line in lines {
            let (key, value) = line.split_once(' ')?;
            let value: i64 = value.trim().parse().ok()?;
            match key {
                "recovery_point" => recovery_point = Some(value),
                "log_start_offset" => log_start_offset = Some(value),
                _ => return None,
            }
        }
        let ck = LogCheckpoint {
            recovery_point: recovery_point?,
            log_start_offset: log_start_offset?,
        };
        (ck.recovery_point >= 0 && ck.log_start_offset >= 0).then_some(ck)
    })();
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), file = LOG_CHECKPOINT_FILE,
            "unreadable log checkpoint ignored; the whole log will be scanned");
    }
    Ok(parsed)
}

/// Record, without fsync, that nothing at or past `recovery_point` can be trusted.
///
/// After a failed fsync the kernel may have dropped the dirty pages it could not write
/// while they stay readable in the page cache: a reopen in the same boot would read them,
/// find them valid, fsync "successfully" and build on a hole that the next power loss
/// reveals. This file tells that reopen to cut them. No fsync is needed (or possible, on a
/// failing disk): without a power loss the page cache shows the file; after one, the page
/// cache is gone and the CRC scan sees what the disk really holds.
pub(crate) fn write_offline_checkpoint(
    fs: &dyn Fs,
    dir: &Path,
    recovery_point: i64,
) -> io::Result<()> {
    let text = format!("{OFFLINE_CHECKPOINT_VERSION}\nrecovery_point {recovery_point}\n");
    let f = fs.create_truncate(&dir.join(OFFLINE_CHECKPOINT_FILE))?;
    f.write_all_at(text.as_bytes(), 0)
}

/// The recovery point of an offline checkpoint, None if absent. A malformed one can only
/// come from a power loss that tore it, and then the page cache it guarded is gone too: it
/// is ignored (warned). The final newline is required: a torn prefix such as
/// "recovery_point 1" of "recovery_point 104" must not parse.
pub(crate) fn read_offline_checkpoint(fs: &dyn Fs, dir: &Path) -> io::Result<Option<i64>> {
    let Some(text) = read_small(fs, dir, OFFLINE_CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let parsed = (|| {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        let version: u32 = lines.next()?.parse().ok()?;
        let (key, value) = lines.next()?.split_once(' ')?;
        let rp: i64 = value.parse().ok()?;
        let whole = lines.next().is_none();
        (whole && version == OFFLINE_CHECKPOINT_VERSION && key == "recovery_point" && rp >= 0)
            .then_some(rp)
    })();
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), file = OFFLINE_CHECKPOINT_FILE,
            "unreadable offline checkpoint ignored (torn by a power loss)");
    }
    Ok(parsed)
}

/// Ok(None) if absent or malformed (warned); the caller rebuilds from batch headers.
pub(crate) fn read_leader_epochs(fs: &dyn Fs, dir: &Path) -> io::Result<Option<Vec<(i32, i64)>>> {
    let Some(text) = read_small(fs, dir, LEADER_EPOCH_CHECKPOINT_FILE)? else {
        return Ok(None);
    };
    let parsed = (|| {
        let mut lines = text.lines();
        let version: u32 = lines.next()?.trim().parse().ok()?;
        if version != LEADER_EPOCH_CHECKPOINT_VERSION {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut epochs: Vec<(i32, i64)> = Vec::new();
        for line in lines {
            let (epoch, offset) = line.trim().split_once(' ')?;
            let entry: (i32, i64) = (epoch.parse().ok()?, offset.trim().parse().ok()?);
            if let Some(last) = epochs.last() {
                // Epochs strictly grow, start offsets never go back.
                if entry.0 <= last.0 || entry.1 < last.1 {
                    return None;
                }
            }
            epochs.push(entry);
        }
        (epochs.len() == count).then_some(epochs)
    })();
    if parsed.is_none() {
        tracing::warn!(dir = %dir.display(), file = LEADER_EPOCH_CHECKPOINT_FILE,
            "unreadable leader-epoch checkpoint ignored; rebuilding it from batch headers");
    }
    Ok(parsed)
}

fn read_small(fs: &dyn Fs, dir: &Path, name: &str) -> io::Result<Option<String>> {
    let path = dir.join(name);
    let Some(len) = fs.file_len(&path)? else {
        return Ok(None);
    };
    if len > CHECKPOINT_MAX_BYTES {
        tracing::warn!(path = %path.display(), len, "checkpoint file too large, ignored");
        return Ok(None);
    }
    match fs.read_file(&path) {
        Ok(bytes) => Ok(String::from_utf8(bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    #[test]
    fn checkpoints_round_trip_and_reject_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let (fs, dir) = (&StdFs, tmp.path());
        assert_eq!(read_log_checkpoint(fs, dir).unwrap(), None);
        let ck = LogCheckpoint {
            recovery_point: 42,
            log_start_offset: 7,
        };
        write_log_checkpoint(fs, dir, ck).unwrap();
        assert_eq!(read_log_checkpoint(fs, dir).unwrap(), Some(ck));
        write_leader_epochs(fs, dir, &[(0, 0), (3, 10)]).unwrap();
        assert_eq!(
            read_leader_epochs(fs, dir).unwrap(),
            Some(vec![(0, 0), (3, 10)])
        );
        std::fs::write(dir.join(LOG_CHECKPOINT_FILE), "2\nrecovery_point 1\n").unwrap();
        assert_eq!(read_log_checkpoint(fs, dir).unwrap(), None);
        std::fs::write(dir.join(LEADER_EPOCH_CHECKPOINT_FILE), "0\n2\n3 5\n1 9\n").unwrap();
        assert_eq!(read_leader_epochs(fs, dir).unwrap(), None);
        assert_eq!(read_offline_checkpoint(fs, dir).unwrap(), None);
        write_offline_checkpoint(fs, dir, 17).unwrap();
        assert_eq!(read_offline_checkpoint(fs, dir).unwrap(), Some(17));
        assert_eq!(read_cleaner_checkpoint(fs, dir).unwrap(), None);
        let cc = CleanerCheckpoint {
            clean_offset: 40,
            delete_horizon_ms: -1,
        };
        write_cleaner_checkpoint(fs, dir, cc).unwrap();
        assert_eq!(read_cleaner_checkpoint(fs, dir).unwrap(), Some(cc));
        assert_eq!(read_clean_swap(fs, dir).unwrap(), None);
        let swap = CleanSwap {
            checkpoint: cc,
            groups: vec![(0, 10), (10, 30)],
        };
        write_clean_swap(fs, dir, &swap).unwrap();
        assert_eq!(read_clean_swap(fs, dir).unwrap(), Some(swap));
        std::fs::write(dir.join(CLEAN_SWAP_FILE), "1\nclean_offset 4\n").unwrap();
        assert!(read_clean_swap(fs, dir).is_err());
        let overlapping = "1\nclean_offset 30\ndelete_horizon_ms -1\ngroup 0 20\ngroup 10 30\n";
        std::fs::write(dir.join(CLEAN_SWAP_FILE), overlapping).unwrap();
        assert!(read_clean_swap(fs, dir).is_err(), "overlapping groups");
        for torn in [
            "1\nrecovery_po",
            "1\nrecovery_point 1",
            "1\nrecovery_point 17\n\0\0",
        ] {
            std::fs::write(dir.join(OFFLINE_CHECKPOINT_FILE), torn).unwrap();
            assert_eq!(read_offline_checkpoint(fs, dir).unwrap(), None, "{torn:?}");
        }
    }
}
