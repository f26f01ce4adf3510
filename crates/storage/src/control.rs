//! Transaction control batches (Kafka's commit and abort markers): one control record whose
//! key is (i16 version 0, i16 type) and whose value is (i16 version 0, i32 coordinator
//! epoch), in a batch with the transactional and control attributes set.

use crate::batch::BatchHeader;
use crate::record_codec::{encode_batch, parse_records, put_record, records_section};

/// Control record type of an abort marker (Kafka's `ControlRecordType.ABORT`).
pub const MARKER_ABORT: i16 = 0;
/// Control record type of a commit marker (Kafka's `ControlRecordType.COMMIT`).
pub const MARKER_COMMIT: i16 = 1;

/// Batch attributes: transactional (bit 4) and control (bit 5).
const TRANSACTIONAL: i16 = 0x10;
const CONTROL: i16 = 0x20;

/// A commit or abort control batch for `producer_id` at `epoch`, base offset 0 (the log
/// stamps the real one).
pub fn encode_marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let kind = if commit { MARKER_COMMIT } else { MARKER_ABORT };
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut records = Vec::with_capacity(24);
    put_record(&mut records, 0, 0, Some(&key), Some(&value), &[]);
    let header = BatchHeader {
        base_offset: 0,
        batch_length: 0,
        partition_leader_epoch: -1,
        magic: 2,
        crc: 0,
        attributes: TRANSACTIONAL | CONTROL,
        last_offset_delta: 0,
        base_timestamp: now_ms,
        max_timestamp: now_ms,
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
        record_count: 1,
    };
    encode_batch(&header, 1, &records).expect("an uncompressed marker always encodes")
}

/// The type of a control record's key ([`MARKER_ABORT`], [`MARKER_COMMIT`]), None if the
/// key is too short to hold one.
pub fn marker_type_of_key(key: &[u8]) -> Option<i16> {
    let k = key.get(..4)?;
    Some(i16::from_be_bytes([k[2], k[3]]))
}

/// The marker type of a whole control batch, None if it is not a readable marker.
pub fn marker_type(batch: &[u8]) -> Option<i16> {
    let h = BatchHeader::parse(batch).filter(BatchHeader::is_control)?;
    let data = records_section(batch).ok()?;
    let records = parse_records(&h, &data).ok()?;
    marker_type_of_key(records.first()?.key?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_record_set;

    #[test]
    fn markers_are_valid_control_batches_and_read_back() {
        for commit in [false, true] {
            let b = encode_marker(42, 7, commit, 3, 1_000);
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.record_count),
                (42, 7, 1)
            );
            validate_record_set(&b, usize::MAX).expect("a valid batch with a good CRC");
            let want = if commit { MARKER_COMMIT } else { MARKER_ABORT };
            assert_eq!(marker_type(&b), Some(want));
        }
    }

    #[test]
    fn data_batches_and_damage_are_not_markers() {
        let data = crate::testkit::record_batch(3, 10, 0);
        assert_eq!(marker_type(&data), None);
        let marker = encode_marker(1, 0, true, 0, 0);
        assert_eq!(marker_type(&marker[..marker.len() - 3]), None);
        assert_eq!(marker_type_of_key(&[0, 0, 0]), None);
    }
}
