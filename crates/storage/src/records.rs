//! Walking the records inside a stored batch, for the few places where Kafka's semantics are
//! per record rather than per batch (ListOffsets by timestamp and by max timestamp).
//!
//! Only each record's timestamp and offset delta are read; keys, values and headers are
//! skipped. Compressed batches are decompressed as a stream, never whole, and the work done
//! on one batch is bounded by [`MAX_DECOMPRESSED_BYTES`], so a batch that inflates without
//! limit (a decompression bomb) costs bounded memory and time and is reported as an error.

use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;

use crate::batch::{BatchHeader, BATCH_HEADER_LEN};

/// Upper bound on the decompressed bytes read from one batch.
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 * 1024 * 1024;

/// Largest zstd window accepted: a frame may ask for more, but no Kafka client compressing
/// one batch needs it, and the window is allocated up front.
const MAX_ZSTD_WINDOW: u64 = 16 * 1024 * 1024;

/// snappy-java's "xerial" stream header, which Java clients put before snappy blocks.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// One record's position and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTime {
    /// Absolute offset of the record.
    pub offset: i64,
    /// Absolute timestamp (the batch's max timestamp under LogAppendTime).
    pub timestamp: i64,
    /// Length of its key; -1 for a null key (compacted topics refuse those).
    pub key_len: i64,
}

/// Call `f` with the offset and timestamp of every record of `batch` (a whole batch: header
/// and records), in order, until it breaks. Errors if the records do not parse, do not
/// decompress, or inflate past [`MAX_DECOMPRESSED_BYTES`].
pub fn for_each_record_time(
    batch: &[u8],
    mut f: impl FnMut(RecordTime) -> ControlFlow<()>,
) -> io::Result<()> {
    let header = BatchHeader::parse(batch).ok_or_else(|| invalid("batch shorter than a header"))?;
    let records = batch
        .get(BATCH_HEADER_LEN..header.total_len())
        .ok_or_else(|| invalid("batch shorter than its length"))?;
    let stream = decompressed(header.compression(), records)?;
    let mut input = BufReader::new(stream.take(MAX_DECOMPRESSED_BYTES));
    for _ in 0..header.record_count.max(0) {
        let len = read_varint(&mut input)?;
        if len < 0 {
            return Err(invalid("negative record length"));
        }
        let mut counted = CountingReader {
            inner: &mut input,
            count: 0,
        };
        let mut attributes = [0u8; 1];
        counted.read_exact(&mut attributes)?;
        let timestamp_delta = read_varlong(&mut counted)?;
        let offset_delta = read_varint(&mut counted)?;
        let key_len = read_varint(&mut counted)?;
        let used = counted.count;
        let rest = (len as u64)
            .checked_sub(used)
            .ok_or_else(|| invalid("record shorter than its fields"))?;
        let skipped = io::copy(&mut (&mut input).take(rest), &mut io::sink())?;
        if skipped != rest {
            return Err(eof_or_bomb());
        }
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        let at = RecordTime {
            offset: header.base_offset.saturating_add(offset_delta as i64),
            timestamp,
            key_len: key_len as i64,
        };
        if f(at).is_break() {
            return Ok(());
        }
    }
    Ok(())
}

pub(crate) fn decompressed<'a>(codec: i16, data: &'a [u8]) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match codec {
        0 => Box::new(data),
        1 => Box::new(flate2::read::MultiGzDecoder::new(data)),
        2 => Box::new(SnappyReader::new(data)?),
        3 => Box::new(lz4_flex::frame::FrameDecoder::new(data)),
        4 => Box::new(
            ruzstd::decoding::StreamingDecoder::new_with_max_window_size(data, MAX_ZSTD_WINDOW)
                .map_err(|e| invalid(&format!("zstd: {e}")))?,
        ),
        other => return Err(invalid(&format!("unknown compression codec {other}"))),
    })
}

/// Kafka's snappy: either one raw snappy block, or snappy-java's xerial framing (a 16-byte
/// header, then blocks each preceded by its big-endian u32 length). Decoded block by block,
/// each block's declared size checked before its buffer is allocated.
struct SnappyReader<'a> {
    blocks: Option<&'a [u8]>,
    current: io::Cursor<Vec<u8>>,
    decoder: snap::raw::Decoder,
    budget: u64,
}

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8]) -> io::Result<Self> {
        let mut r = SnappyReader {
            blocks: None,
            current: io::Cursor::new(Vec::new()),
            decoder: snap::raw::Decoder::new(),
            budget: MAX_DECOMPRESSED_BYTES,
        };
        if data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC) {
            r.blocks = Some(&data[XERIAL_HEADER_LEN..]);
        } else {
            r.decode_block(data)?;
        }
        Ok(r)
    }

    fn decode_block(&mut self, block: &[u8]) -> io::Result<()> {
        let len = snap::raw::decompress_len(block).map_err(|e| invalid(&format!("snappy: {e}")))?;
        if len as u64 > self.budget {
            return Err(eof_or_bomb());
        }
        self.budget -= len as u64;
        let mut out = vec![0u8; len];
        self.decoder
            .decompress(block, &mut out)
            .map_err(|e| invalid(&format!("snappy: {e}")))?;
        self.current = io::Cursor::new(out);
        Ok(())
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(rest) = self.blocks.filter(|b| !b.is_empty()) else {
                return Ok(0);
            };
            if rest.len() < 4 {
                return Err(invalid("snappy: torn xerial block length"));
            }
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let block = rest
                .get(4..4 + len)
                .ok_or_else(|| invalid("snappy: xerial block past the end"))?;
            self.blocks = Some(&rest[4 + len..]);
            self.decode_block(block)?;
        }
    }
}

struct CountingReader<'a, R> {
    inner: &'a mut R,
    count: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn read_byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(b[0]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(eof_or_bomb()),
        Err(e) => Err(e),
    }
}

/// Zigzag varlong as Kafka encodes record fields (at most 10 bytes).
fn read_varlong(r: &mut impl Read) -> io::Result<i64> {
    let mut raw = 0u64;
    for i in 0..10 {
        let b = read_byte(r)?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    Err(invalid("varlong longer than 10 bytes"))
}

fn read_varint(r: &mut impl Read) -> io::Result<i32> {
    let v = read_varlong(r)?;
    i32::try_from(v).map_err(|_| invalid("varint out of range"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn eof_or_bomb() -> io::Error {
    invalid("records end early, or inflate past the decompression bound")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::record_batch;

    fn times(batch: &[u8]) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for_each_record_time(batch, |r| {
            out.push((r.offset, r.timestamp));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn uncompressed_records_have_their_own_offsets_and_timestamps() {
        let mut b = record_batch(4, 10, 1_000);
        b[..8].copy_from_slice(&40i64.to_be_bytes());
        assert_eq!(
            times(&b),
            vec![(40, 1_000), (41, 1_001), (42, 1_002), (43, 1_003)]
        );
    }

    #[test]
    fn stops_when_told() {
        let b = record_batch(5, 1, 0);
        let mut seen = 0;
        for_each_record_time(&b, |_| {
            seen += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn garbage_records_are_an_error_not_a_panic() {
        let mut b = record_batch(3, 10, 0);
        b[BATCH_HEADER_LEN..].fill(0xff);
        assert!(for_each_record_time(&b, |_| ControlFlow::Continue(())).is_err());
        // Every codec over garbage bytes.
        for codec in 1..=4u8 {
            let mut c = b.clone();
            c[22] = (c[22] & !0x7) | codec;
            assert!(for_each_record_time(&c, |_| ControlFlow::Continue(())).is_err());
        }
    }

    #[test]
    fn snappy_bomb_is_refused_before_allocating() {
        // A raw snappy block whose varint preamble claims 4 GiB.
        let mut b = record_batch(1, 1, 0);
        b.truncate(BATCH_HEADER_LEN);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[22] = (b[22] & !0x7) | 2;
        let err = for_each_record_time(&b, |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;
    use crate::testkit::record_batch;

    /// Found by fuzzing (fuzz/regressions/record_batch): a batch based at i64::MAX.
    #[test]
    fn record_offsets_past_i64_max_do_not_overflow() {
        let mut b = record_batch(3, 1, 0);
        b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let mut offsets = Vec::new();
        for_each_record_time(&b, |r| {
            offsets.push(r.offset);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(offsets, vec![i64::MAX; 3]);
    }
}
