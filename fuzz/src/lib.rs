//! Helpers shared by the fuzz targets: splitting one input into several files, repairing
//! the checksums a mutation breaks (so the fuzzer gets past CRC checks to the logic behind
//! them), and reading a whole `Log` back while checking what must always hold.

use std::ops::ControlFlow;

use weir_storage::batch::{batch_crc, BatchHeader, BATCH_HEADER_LEN, CRC_OFFSET, MIN_BATCH_LENGTH};
use weir_storage::Log;

/// Separates the files packed into one input of the file-based targets. The byte after it
/// says what the next file is (see each target). Listed in the targets' dictionaries.
pub const FILE_SEP: &[u8] = b"\n--file:";

/// Split `data` at every [`FILE_SEP`]: the first part, then (tag byte, contents) pairs.
pub fn split_files(data: &[u8]) -> (&[u8], Vec<(u8, &[u8])>) {
    let mut cuts = Vec::new();
    let mut i = 0;
    while i + FILE_SEP.len() <= data.len() {
        if &data[i..i + FILE_SEP.len()] == FILE_SEP {
            cuts.push(i);
            i += FILE_SEP.len();
        } else {
            i += 1;
        }
    }
    let first_end = cuts.first().copied().unwrap_or(data.len());
    let mut parts = Vec::new();
    for (k, &at) in cuts.iter().enumerate() {
        let start = at + FILE_SEP.len();
        let end = cuts.get(k + 1).copied().unwrap_or(data.len());
        if start < end {
            parts.push((data[start], &data[start + 1..end]));
        } else {
            parts.push((0, &data[0..0]));
        }
    }
    (&data[..first_end], parts)
}

/// Walk the batches at the front of `buf` as far as they are structurally whole (header,
/// magic 2, a sane length inside the buffer), calling `f(position, batch)`.
pub fn walk_batches(buf: &mut [u8], mut f: impl FnMut(usize, &mut [u8])) -> usize {
    let mut pos = 0usize;
    while let Some(h) = BatchHeader::parse(&buf[pos..]) {
        if h.magic != 2 || h.batch_length < MIN_BATCH_LENGTH {
            break;
        }
        let total = h.total_len();
        if total > buf.len() - pos {
            break;
        }
        f(pos, &mut buf[pos..pos + total]);
        pos += total;
    }
    pos
}

/// Recompute the CRC-32C of every structurally whole batch at the front of `buf`.
pub fn fix_batch_crcs(buf: &mut [u8]) {
    walk_batches(buf, |_, b| {
        let crc = batch_crc(b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    });
}

/// Rewrite base offsets so the batches at the front of `buf` are dense from `base`; returns
/// the offset after the last one (what the next segment must start at).
pub fn rebase_batches(buf: &mut [u8], base: i64) -> i64 {
    let mut next = base;
    walk_batches(buf, |_, b| {
        b[0..8].copy_from_slice(&next.to_be_bytes());
        let delta = i32::from_be_bytes(b[23..27].try_into().unwrap());
        next = next.saturating_add(delta.max(0) as i64).saturating_add(1);
    });
    next
}

/// The offset after the last structurally whole batch (base offsets taken as written).
pub fn next_offset_after(buf: &[u8], base: i64) -> i64 {
    let mut next = base;
    let mut copy = buf.to_vec();
    walk_batches(&mut copy, |_, b| {
        let h = BatchHeader::parse(b).unwrap();
        next = h
            .base_offset
            .saturating_add(h.last_offset_delta.max(0) as i64)
            .saturating_add(1);
    });
    next
}

/// Index files carry a CRC-32C of bytes 12.. at 8..12: recompute it.
pub fn fix_index_crc(buf: &mut [u8]) {
    if buf.len() >= 12 {
        let crc = crc32c::crc32c(&buf[12..]);
        buf[8..12].copy_from_slice(&crc.to_be_bytes());
    }
}

/// One batch as `read_everything` returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: Vec<u8>,
}

/// Read the whole log from its start, batch by batch, checking the read contract: whole
/// batches only, each holding the offset asked for or the next one, offsets increasing,
/// never past the log end, and progress until the log end. Also walks every batch's records
/// (must not panic, bounded) and asks the offset-by-time lookups a few questions.
pub fn read_everything(log: &Log) -> Vec<ReadBatch> {
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "log start {start} past log end {end}");
    let mut out: Vec<ReadBatch> = Vec::new();
    let mut offset = start;
    let mut rounds = 0u32;
    while offset < end {
        rounds += 1;
        assert!(rounds < 100_000, "reading the log does not progress");
        let bytes = match log.read(offset, 64 * 1024, end) {
            Ok(b) => b,
            Err(e) => panic!("read at offset {offset} of [{start}, {end}) failed: {e}"),
        };
        assert!(
            !bytes.is_empty(),
            "read at offset {offset} returned nothing, log end {end}"
        );
        let mut pos = 0usize;
        while pos < bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).expect("read returned a torn header");
            assert_eq!(h.magic, 2);
            let total = h.total_len();
            assert!(pos + total <= bytes.len(), "read returned a torn batch");
            let last = h.last_offset();
            assert!(
                last >= offset,
                "batch {}..={last} is before offset {offset}",
                h.base_offset
            );
            assert!(
                last < end,
                "batch {}..={last} is past the log end {end}",
                h.base_offset
            );
            if let Some(prev) = out.last() {
                assert!(
                    h.base_offset > prev.last_offset,
                    "batches out of order: {} after {}",
                    h.base_offset,
                    prev.last_offset
                );
            }
            let batch = &bytes[pos..pos + total];
            let mut n = 0u32;
            let _ = weir_storage::records::for_each_record_time(batch, |_| {
                n += 1;
                if n > 10_000 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            out.push(ReadBatch {
                base_offset: h.base_offset,
                last_offset: last,
                bytes: batch.to_vec(),
            });
            offset = last + 1;
            pos += total;
        }
    }
    // The offsets these return come from the records' own offset deltas, which nothing
    // validates; only "no panic, bounded" is checked here.
    for ts in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }
    let _ = log.max_timestamp();
    out
}

/// A valid uncompressed batch of `records` records (base offset 0, timestamps from `ts`).
pub fn valid_batch(records: usize, value_len: usize, ts: i64) -> Vec<u8> {
    weir_storage::testkit::record_batch(records.max(1), value_len, ts)
}

/// Is `buf` at least a batch header? (Re-exported length for targets.)
pub const HEADER_LEN: usize = BATCH_HEADER_LEN;
