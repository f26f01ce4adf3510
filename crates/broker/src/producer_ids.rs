//! Producer ids for idempotent producers: unique for the life of the data directory, never
//! reused across restarts or crashes.
//!
//! Ids are handed out from blocks. Before the first id of a block is given to a client, the
//! block's end is written durably to `<data-dir>/producer-ids.json` (through the storage
//! [`Fs`]: temp file, fsync, rename, fsync dir); a restart continues from the recorded end.
//! A crash may waste the rest of a block, never repeat an id.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use weir_storage::{read_optional, write_atomic, Fs};

use crate::error::MetadataError;

const FILE: &str = "producer-ids.json";
const BLOCK_SIZE: i64 = 1000;
/// The file is a few dozen bytes.
const FILE_MAX_BYTES: u64 = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct IdFile {
    version: u32,
    /// Every id below this may have been handed out.
    next_block_start: i64,
}

/// Hands out producer ids, each exactly once.
#[derive(Debug)]
pub struct ProducerIdManager {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    /// (next id to give, end of the durable block).
    state: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// Continue from the block end recorded in `dir` (0 if there is none).
    pub fn open(fs: Arc<dyn Fs>, dir: &Path) -> Result<ProducerIdManager, MetadataError> {
        let path = dir.join(FILE);
        let start = match read_optional(&*fs, &path, FILE_MAX_BYTES)
            .map_err(MetadataError::io(format!("reading {}", path.display())))?
        {
            Some(bytes) => {
                let f: IdFile =
                    serde_json::from_slice(&bytes).map_err(|e| MetadataError::Corrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                f.next_block_start
            }
            None => 0,
        };
        Ok(ProducerIdManager {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new((start, start)),
        })
    }

    /// A new producer id; writes the next block durably when the current one is used up.
    pub fn next_id(&self) -> Result<i64, MetadataError> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 >= s.1 {
            let end = s.0 + BLOCK_SIZE;
            let file = IdFile {
                version: 1,
                next_block_start: end,
            };
            let json = serde_json::to_vec(&file).expect("the id file always serializes");
            write_atomic(&*self.fs, &self.dir, FILE, &json).map_err(MetadataError::io(format!(
                "writing {}",
                self.dir.join(FILE).display()
            )))?;
            s.1 = end;
        }
        let id = s.0;
        s.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_storage::{SimFs, StdFs};

    #[test]
    fn ids_are_never_reused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || ProducerIdManager::open(Arc::new(StdFs), dir.path()).unwrap();
        let m = open();
        let first: Vec<i64> = (0..5).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        drop(m); // a crash: the rest of the block is wasted
        let m = open();
        assert_eq!(m.next_id().unwrap(), BLOCK_SIZE);
        for _ in 0..BLOCK_SIZE {
            m.next_id().unwrap();
        }
        let m2 = open();
        assert_eq!(m2.next_id().unwrap(), 3 * BLOCK_SIZE);
    }

    /// A power loss at any file operation of a block allocation: no id handed out before
    /// the crash is ever handed out again.
    #[test]
    fn a_crash_at_every_operation_never_repeats_an_id() {
        let dir = Path::new("/data");
        let mut op = 0;
        loop {
            let fs = SimFs::new(op);
            fs.create_dir_all(dir).unwrap();
            fs.sync_dir(Path::new("/")).unwrap();
            let base = fs.op_count();
            fs.crash_at_op(base + op);
            let m = ProducerIdManager::open(Arc::new(fs.clone()), dir).unwrap();
            let mut given = Vec::new();
            // Two blocks' worth: the second allocation crashes too, at later ops.
            for _ in 0..2 * BLOCK_SIZE {
                match m.next_id() {
                    Ok(id) => given.push(id),
                    Err(_) => break,
                }
            }
            let crashed = fs.is_down();
            if op % 2 == 0 {
                fs.crash();
            } else {
                fs.crash_torn();
            }
            let m = ProducerIdManager::open(Arc::new(fs.clone()), dir).unwrap();
            let next = m.next_id().unwrap();
            assert!(
                given.iter().all(|&id| id < next),
                "op {op}: id {next} handed out again after a crash (given up to {:?})",
                given.last()
            );
            if !crashed {
                break;
            }
            op += 1;
        }
        assert!(op > 4, "the crash points covered the allocations ({op})");
    }
}
