//! Key layout of the embedded log's one sled tree, and the record encoding.
//!
//! Everything lives in one tree so that a group commit is one atomic
//! `apply_batch`: records, compaction index and consumer positions move
//! together or not at all.
//!
//! - `L` topic_id partition offset -> record
//! - `C` topic_id partition record-key -> offset (compacted topics: latest per key)
//! - `O` group 0x00 topic_id partition -> next offset (consumer group positions)
//! - `T` topic name -> "id partitions compacted"
//! - `R` topic name -> retention in ms (topics with `retention_ms` only)

use domain::Header;

use crate::{LogError, Record};

pub(crate) const LOG: u8 = b'L';
pub(crate) const COMPACTION: u8 = b'C';
pub(crate) const GROUP: u8 = b'O';
pub(crate) const TOPIC: u8 = b'T';
pub(crate) const RETENTION: u8 = b'R';

pub(crate) fn partition_prefix(tag: u8, topic_id: u32, partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(tag);
    key.extend_from_slice(&topic_id.to_be_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

pub(crate) fn log_key(topic_id: u32, partition: u32, offset: u64) -> Vec<u8> {
    let mut key = partition_prefix(LOG, topic_id, partition);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

pub(crate) fn offset_of_log_key(key: &[u8]) -> Result<u64, LogError> {
    key.get(9..17)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| LogError::Corrupt("short log key".into()))
}

pub(crate) fn compaction_key(topic_id: u32, partition: u32, record_key: &[u8]) -> Vec<u8> {
    let mut key = partition_prefix(COMPACTION, topic_id, partition);
    key.extend_from_slice(record_key);
    key
}

pub(crate) fn group_key(group: &str, topic_id: u32, partition: u32) -> Vec<u8> {
    let mut key = vec![GROUP];
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(&topic_id.to_be_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

pub(crate) fn retention_key(name: &str) -> Vec<u8> {
    let mut key = vec![RETENTION];
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn topic_key(name: &str) -> Vec<u8> {
    let mut key = vec![TOPIC];
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn u64_value(bytes: &[u8]) -> Result<u64, LogError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| LogError::Corrupt("bad u64 value".into()))
}

/// timestamp, key, value (flag + bytes), headers; lengths as u32 big endian.
pub(crate) fn encode_record(record: &Record) -> Vec<u8> {
    let headers_len: usize = record
        .headers
        .iter()
        .map(|h| 8 + h.key.len() + h.value.len())
        .sum();
    let value_len = record.value.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(25 + record.key.len() + value_len + headers_len);
    out.extend_from_slice(&record.timestamp_ms.to_be_bytes());
    put_bytes(&mut out, &record.key);
    match &record.value {
        Some(value) => {
            out.push(1);
            put_bytes(&mut out, value);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&(record.headers.len() as u32).to_be_bytes());
    for header in &record.headers {
        put_bytes(&mut out, header.key.as_bytes());
        put_bytes(&mut out, &header.value);
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LogError> {
        if self.0.len() < n {
            return Err(LogError::Corrupt("truncated record".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, LogError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, LogError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
}

/// A stored record's timestamp (its first 8 bytes), without decoding the rest.
pub(crate) fn timestamp_of_record(bytes: &[u8]) -> Result<i64, LogError> {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| LogError::Corrupt("truncated record".into()))
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<Record, LogError> {
    let mut r = Reader(bytes);
    let ts = r.take(8)?;
    let timestamp_ms =
        i64::from_be_bytes(ts.try_into().map_err(|_| LogError::Corrupt("ts".into()))?);
    let key = r.bytes()?;
    let value = match r.take(1)?[0] {
        0 => None,
        _ => Some(r.bytes()?),
    };
    let count = r.u32()?;
    let mut headers = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        let key =
            String::from_utf8(r.bytes()?).map_err(|_| LogError::Corrupt("header key".into()))?;
        headers.push(Header {
            key,
            value: r.bytes()?,
        });
    }
    Ok(Record {
        key,
        value,
        headers,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = Record {
            key: b"k".to_vec(),
            value: Some(vec![1, 2, 3]),
            headers: vec![Header::new("ce_id", "x"), Header::new("empty", "")],
            timestamp_ms: -5,
        };
        assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
        let tombstone = Record {
            value: None,
            headers: vec![],
            ..record
        };
        assert_eq!(
            decode_record(&encode_record(&tombstone)).unwrap(),
            tombstone
        );
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let bytes = encode_record(&Record {
            key: b"key".to_vec(),
            value: Some(b"value".to_vec()),
            headers: vec![Header::new("h", "v")],
            timestamp_ms: 1,
        });
        for n in 0..bytes.len() {
            assert!(decode_record(&bytes[..n]).is_err());
        }
    }
}
