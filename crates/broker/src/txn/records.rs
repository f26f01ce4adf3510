//! `__transaction_state` records in Kafka's formats (TransactionLogKey v0 and
//! TransactionLogValue v0), so the topic reads the same as Kafka's.
//!
//! Key: i16 version 0, string transactional id.
//! Value: i16 version 0, i64 producer id, i16 producer epoch, i32 transaction timeout ms,
//! i8 status, array of (string topic, array of i32 partition), i64 last update timestamp,
//! i64 start timestamp. A null value (tombstone) removes the transactional id.

use std::collections::BTreeSet;

use super::TxnState;

/// The value of a `__transaction_state` record: one transactional id's state (Kafka's TransactionLogValue v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// The producer id the transactional id holds.
    pub producer_id: i64,
    /// Its current epoch.
    pub epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// Where the transaction is.
    pub state: TxnState,
    /// The partitions in the open transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the state last changed (expiry counts from here).
    pub last_update_ms: i64,
    /// When the open transaction started (-1: none).
    pub start_ms: i64,
}

/// The record key of `transactional_id` (Kafka's TransactionLogKey v0).
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + transactional_id.len());
    b.extend_from_slice(&0i16.to_be_bytes());
    put_str(&mut b, transactional_id);
    b
}

/// The transactional id in a record key.
pub fn decode_key(mut b: &[u8]) -> Result<String, String> {
    let version = get_i16(&mut b)?;
    if version != 0 {
        return Err(format!("transaction log key version {version}"));
    }
    let id = get_str(&mut b)?;
    if !b.is_empty() {
        return Err("trailing bytes after the transaction log key".into());
    }
    Ok(id)
}

/// The record value of a transactional id's state (Kafka's TransactionLogValue v0).
pub fn encode_value(v: &TxnValue) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&v.producer_id.to_be_bytes());
    b.extend_from_slice(&v.epoch.to_be_bytes());
    b.extend_from_slice(&v.timeout_ms.to_be_bytes());
    b.push(v.state as u8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &v.partitions {
        match topics.last_mut() {
            Some((name, parts)) if *name == t.as_str() => parts.push(*p),
            _ => topics.push((t, vec![*p])),
        }
    }
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (t, parts) in topics {
        put_str(&mut b, t);
        b.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            b.extend_from_slice(&p.to_be_bytes());
        }
    }
    b.extend_from_slice(&v.last_update_ms.to_be_bytes());
    b.extend_from_slice(&v.start_ms.to_be_bytes());
    b
}

/// A transactional id's state read back from a record value.
pub fn decode_value(mut b: &[u8]) -> Result<TxnValue, String> {
    let version = get_i16(&mut b)?;
    if version != 0 {
        return Err(format!("transaction log value version {version}"));
    }
    let producer_id = get_i64(&mut b)?;
    let epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    let status = *b.first().ok_or("truncated status")?;
    b = &b[1..];
    let state = TxnState::from_u8(status).ok_or(format!("unknown status {status}"))?;
    let n = get_i32(&mut b)?;
    let mut partitions = BTreeSet::new();
    if n > 0 {
        if n as usize > b.len() {
            return Err("partition count larger than the record".into());
        }
        for _ in 0..n {
            let topic = get_str(&mut b)?;
            let k = get_i32(&mut b)?;
            if k < 0 || k as usize > b.len() / 4 {
                return Err("partition count larger than the record".into());
            }
            for _ in 0..k {
                partitions.insert((topic.clone(), get_i32(&mut b)?));
            }
        }
    }
    let last_update_ms = get_i64(&mut b)?;
    let start_ms = get_i64(&mut b)?;
    Ok(TxnValue {
        producer_id,
        epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err("truncated transaction log record".into());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn get_i16(b: &mut &[u8]) -> Result<i16, String> {
    Ok(i16::from_be_bytes(take(b, 2)?.try_into().unwrap()))
}

fn get_i32(b: &mut &[u8]) -> Result<i32, String> {
    Ok(i32::from_be_bytes(take(b, 4)?.try_into().unwrap()))
}

fn get_i64(b: &mut &[u8]) -> Result<i64, String> {
    Ok(i64::from_be_bytes(take(b, 8)?.try_into().unwrap()))
}

fn get_str(b: &mut &[u8]) -> Result<String, String> {
    let n = get_i16(b)?;
    if n < 0 {
        return Err("null string in the transaction log".into());
    }
    let bytes = take(b, n as usize)?;
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_damage_is_an_error() {
        let v = TxnValue {
            producer_id: 4001,
            epoch: 7,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 3),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_000,
            start_ms: 1_699_999_999_000,
        };
        let bytes = encode_value(&v);
        assert_eq!(decode_value(&bytes), Ok(v));
        for len in 0..bytes.len() {
            assert!(decode_value(&bytes[..len]).is_err(), "{len}");
        }
        assert_eq!(decode_key(&encode_key("tx-1")), Ok("tx-1".to_string()));
    }
}
