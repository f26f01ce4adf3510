//! Per-partition checkpoint files, written atomically (tmp, fsync, rename, fsync dir) so a
//! crash leaves either the old or the new version, never a mix. Text, first line = version.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// `recovery_point` and `log_start_offset`.
pub(crate) const LOG_CHECKPOINT_FILE: &str = "log-checkpoint";
/// Leader epoch -> start offset (Kafka's leader-epoch-checkpoint format, version 0).
pub(crate) const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Suffix of files being written; leftovers are deleted at open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

const LOG_CHECKPOINT_VERSION: u32 = 1;
const LEADER_EPOCH_CHECKPOINT_VERSION: u32 = 0;
/// Checkpoints are tiny; anything larger is not ours and is not read into memory.
const CHECKPOINT_MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogCheckpoint {
    pub recovery_point: i64,
    pub log_start_offset: i64,
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replace `dir/name` atomically and durably.
pub(crate) fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    fsync_dir(dir)
}

pub(crate) fn write_log_checkpoint(dir: &Path, ck: LogCheckpoint) -> io::Result<()> {
    let text = format!(
        "{LOG_CHECKPOINT_VERSION}\nrecovery_point {}\nlog_start_offset {}\n",
        ck.recovery_point, ck.log_start_offset
    );
    write_atomic(dir, LOG_CHECKPOINT_FILE, text.as_bytes())
}

pub(crate) fn write_leader_epochs(dir: &Path, epochs: &[(i32, i64)]) -> io::Result<()> {
    let mut text = format!("{LEADER_EPOCH_CHECKPOINT_VERSION}\n{}\n", epochs.len());
    for (epoch, start_offset) in epochs {
        text.push_str(&format!("{epoch} {start_offset}\n"));
    }
    write_atomic(dir, LEADER_EPOCH_CHECKPOINT_FILE, text.as_bytes())
}

/// Ok(None) if absent or unreadable as a checkpoint (warned): the caller then recovers as
/// if nothing was ever checkpointed, which is slower but safe.
pub(crate) fn read_log_checkpoint(dir: &Path) -> io::Result<Option<LogCheckpoint>> {
    let Some(text) = read_small(dir, LOG_CHECKPOINT_FILE)? else {
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

/// Ok(None) if absent or malformed (warned); the caller rebuilds from batch headers.
pub(crate) fn read_leader_epochs(dir: &Path) -> io::Result<Option<Vec<(i32, i64)>>> {
    let Some(text) = read_small(dir, LEADER_EPOCH_CHECKPOINT_FILE)? else {
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

fn read_small(dir: &Path, name: &str) -> io::Result<Option<String>> {
    let path = dir.join(name);
    let len = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > CHECKPOINT_MAX_BYTES {
        tracing::warn!(path = %path.display(), len, "checkpoint file too large, ignored");
        return Ok(None);
    }
    match fs::read(&path) {
        Ok(bytes) => Ok(String::from_utf8(bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_log_checkpoint(dir.path()).unwrap(), None);
        let ck = LogCheckpoint {
            recovery_point: 42,
            log_start_offset: 7,
        };
        write_log_checkpoint(dir.path(), ck).unwrap();
        assert_eq!(read_log_checkpoint(dir.path()).unwrap(), Some(ck));
        write_leader_epochs(dir.path(), &[(0, 0), (3, 10)]).unwrap();
        assert_eq!(
            read_leader_epochs(dir.path()).unwrap(),
            Some(vec![(0, 0), (3, 10)])
        );
        fs::write(
            dir.path().join(LOG_CHECKPOINT_FILE),
            "2\nrecovery_point 1\n",
        )
        .unwrap();
        assert_eq!(read_log_checkpoint(dir.path()).unwrap(), None);
        fs::write(
            dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE),
            "0\n2\n3 5\n1 9\n",
        )
        .unwrap();
        assert_eq!(read_leader_epochs(dir.path()).unwrap(), None);
    }
}
