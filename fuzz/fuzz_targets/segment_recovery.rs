//! Segment recovery scanning: the fuzz input becomes a partition directory on an in-memory
//! `SimFs` (segments, and optionally their index files, the checkpoints and stray files),
//! then `Log::open_in` recovers it, clean or not, and everything is read back.
//!
//! Input: byte 0 = flags, then the first segment's `.log` bytes, then more files, each
//! introduced by `weir_fuzz::FILE_SEP` ("\n--file:") and a tag byte:
//! - `L`: the next segment's `.log`, starting where the previous one's batches end;
//! - `B`: the same with an explicit base offset (8 bytes, big-endian, sign bit dropped);
//! - `I` / `T`: the `.index` / `.timeindex` of the latest segment;
//! - `C` / `E` / `O`: `log-checkpoint` / `leader-epoch-checkpoint` / `offline-checkpoint`;
//! - `X`: a stray file: its name up to the first `/` (must be [A-Za-z0-9._-], 1-60 bytes).
//!
//! Flags: bit 0 = the broker's clean-shutdown marker was present; bit 1 = recompute batch
//! CRCs; bit 2 = recompute index-file CRCs; bit 3 = rewrite base offsets to be dense;
//! bit 4 = LogAppendTime; bit 5 = the first segment's base offset is in bytes 1..9;
//! bits 6-7 = index.interval.bytes: 0, 1, 128, 4096.
//!
//! Checks: no panic, no hang, bounded memory; the recovered log reads back as whole, dense,
//! ordered batches up to its end; it accepts an append; after a clean close it reopens
//! (clean, and as after a crash) with exactly the same contents.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{
    fix_batch_crcs, fix_index_crc, next_offset_after, read_everything, rebase_batches, split_files,
    valid_batch, walk_batches,
};
use weir_storage::{Fs, Log, LogConfig, SimFs};

fn write(fs: &SimFs, path: &Path, bytes: &[u8]) {
    let f = fs.create_truncate(path).expect("create");
    if !bytes.is_empty() {
        f.write_all_at(bytes, 0).expect("write");
    }
    f.sync_all().expect("fsync");
}

fn seg_name(base: i64, suffix: &str) -> String {
    format!("{base:020}{suffix}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let clean = flags & 1 != 0;
    let fix_crcs = flags & 2 != 0;
    let fix_index = flags & 4 != 0;
    let rebase = flags & 8 != 0;
    let mut base: i64 = 0;
    if flags & 0x20 != 0 {
        if rest.len() < 8 {
            return;
        }
        base = i64::from_be_bytes(rest[..8].try_into().unwrap()) & i64::MAX;
        rest = &rest[8..];
    }
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: [0, 1, 128, 4096][(flags >> 6) as usize],
        log_append_time: flags & 0x10 != 0,
        ..LogConfig::default()
    };

    let fs = SimFs::new(7);
    let dir = PathBuf::from("/data/topic-0");
    fs.create_dir_all(&dir).unwrap();
    let (first, parts) = split_files(rest);
    let add_segment = |bytes: &[u8], base: i64| -> i64 {
        let mut log = bytes.to_vec();
        let next = if rebase {
            rebase_batches(&mut log, base)
        } else {
            next_offset_after(&log, base)
        };
        if fix_crcs {
            fix_batch_crcs(&mut log);
        }
        write(&fs, &dir.join(seg_name(base, ".log")), &log);
        next
    };
    let mut next = add_segment(first, base);
    let mut latest = base;
    for (tag, bytes) in parts {
        match tag {
            b'L' => {
                latest = next;
                next = add_segment(bytes, next);
            }
            b'B' if bytes.len() >= 8 => {
                latest = i64::from_be_bytes(bytes[..8].try_into().unwrap()) & i64::MAX;
                next = add_segment(&bytes[8..], latest);
            }
            b'I' | b'T' => {
                let mut index = bytes.to_vec();
                if fix_index {
                    fix_index_crc(&mut index);
                }
                let suffix = if tag == b'I' { ".index" } else { ".timeindex" };
                write(&fs, &dir.join(seg_name(latest, suffix)), &index);
            }
            b'C' => write(&fs, &dir.join("log-checkpoint"), bytes),
            b'E' => write(&fs, &dir.join("leader-epoch-checkpoint"), bytes),
            b'O' => write(&fs, &dir.join("offline-checkpoint"), bytes),
            b'X' => {
                let end = bytes.iter().position(|&b| b == b'/').unwrap_or(bytes.len());
                let name = &bytes[..end];
                let ok = (1..=60).contains(&name.len())
                    && name
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
                    && name != b"."
                    && name != b"..";
                if ok {
                    let name = std::str::from_utf8(name).unwrap();
                    write(&fs, &dir.join(name), &bytes[(end + 1).min(bytes.len())..]);
                }
            }
            _ => {}
        }
    }
    fs.sync_dir(&dir).unwrap();

    let (mut log, _report) = match Log::open_in(Arc::new(fs.clone()), &dir, config.clone(), clean) {
        Ok(opened) => opened,
        // A SimFs never fails an operation here: every error is an input the log refused
        // to open. Acceptable only if it is an I/O-level refusal, not a panic.
        Err(_) => return,
    };
    let leo = log.log_end_offset();
    assert!(log.log_start_offset() <= leo);
    let epochs = log.leader_epochs().to_vec();
    for w in epochs.windows(2) {
        assert!(
            w[0].0 < w[1].0 && w[0].1 <= w[1].1,
            "leader epochs out of order: {epochs:?}"
        );
    }
    assert!(
        epochs.iter().all(|&(_, off)| off < leo),
        "epoch past the log end: {epochs:?}"
    );
    read_everything(&log);
    // The broker rebuilds idempotent producers' state from the recovered batch headers (and
    // its snapshot and aborted-transaction index, absent here) through the same file system.
    let broker_fs: Arc<dyn weir_storage::Fs> = Arc::new(fs.clone());
    let _ = weir_broker::partition::rebuild_producer_state(
        &broker_fs,
        &dir,
        &log,
        1_700_000_000_000,
        86_400_000,
    );

    // The recovered log takes an append, and survives a clean close and reopen intact.
    let mut batch = valid_batch(2, 10, 1_700_000_000_000);
    let appended = log.append(&mut batch, 5, 1_700_000_000_000).is_ok();
    if log.flush().is_err() {
        return;
    }
    let leo = log.log_end_offset();
    let before = read_everything(&log);
    if appended {
        assert_eq!(before.last().map(|b| b.last_offset), Some(leo - 1));
    }
    if log.close().is_err() {
        return;
    }
    // Segments trusted at the first open (clean shutdown, or below the checkpointed recovery
    // point) were never CRC-checked, as in Kafka; a recovering reopen rightly cuts at a
    // corrupt batch among them (even one below the log start offset), and everything after
    // it. Only a directory whose segments are all whole, valid batches must survive it.
    let all_crcs_ok = fs
        .paths()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .all(|p| {
            let mut bytes = fs.contents(p).unwrap_or_default();
            let mut ok = true;
            let end = walk_batches(&mut bytes, |_, b| {
                ok &= weir_storage::batch::batch_crc(b)
                    == u32::from_be_bytes(b[17..21].try_into().unwrap());
            });
            ok && end == bytes.len()
        });
    for (clean, what) in [(true, "clean reopen"), (false, "recovering reopen")] {
        if !clean && !all_crcs_ok {
            continue;
        }
        let (log, report) = Log::open_in(Arc::new(fs.clone()), &dir, config.clone(), clean)
            .unwrap_or_else(|e| panic!("{what} of a cleanly closed log failed: {e}"));
        assert_eq!(report.bytes_truncated, 0, "{what} truncated: {report:?}");
        assert_eq!(log.log_end_offset(), leo, "{what} changed the log end");
        assert_eq!(read_everything(&log), before, "{what} changed the contents");
        drop(log);
    }
});
