//! Producer ids for idempotent producers: unique for the life of the data directory, never
//! reused across restarts or crashes.
//!
//! Ids are handed out from blocks. Before the first id of a block is given to a client, the
//! block's end is written durably to `<data-dir>/producer-ids.json` (temp file, fsync,
//! rename, fsync dir); a restart continues from the recorded end. A crash may waste the rest
//! of a block, never repeat an id.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::broker::{anyhow_like, write_atomically};

const FILE: &str = "producer-ids.json";
const BLOCK_SIZE: i64 = 1000;

#[derive(Serialize, Deserialize)]
struct IdFile {
    version: u32,
    /// Every id below this may have been handed out.
    next_block_start: i64,
}

pub struct ProducerIdManager {
    dir: PathBuf,
    /// (next id to give, end of the durable block).
    state: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn open(dir: &Path) -> anyhow_like::Result<ProducerIdManager> {
        let path = dir.join(FILE);
        let start = match std::fs::read(&path) {
            Ok(bytes) => {
                let f: IdFile = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                f.next_block_start
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("read {}: {e}", path.display()).into()),
        };
        Ok(ProducerIdManager {
            dir: dir.to_path_buf(),
            state: Mutex::new((start, start)),
        })
    }

    /// A new producer id; writes the next block durably when the current one is used up.
    pub fn next_id(&self) -> anyhow_like::Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 >= s.1 {
            let end = s.0 + BLOCK_SIZE;
            let file = IdFile {
                version: 1,
                next_block_start: end,
            };
            let json = serde_json::to_vec(&file).map_err(|e| e.to_string())?;
            write_atomically(&self.dir, FILE, &json)?;
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

    #[test]
    fn ids_are_never_reused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..5).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        drop(m); // a crash: the rest of the block is wasted
        let m = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(m.next_id().unwrap(), BLOCK_SIZE);
        for _ in 0..BLOCK_SIZE {
            m.next_id().unwrap();
        }
        let m2 = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(m2.next_id().unwrap(), 3 * BLOCK_SIZE);
    }
}
