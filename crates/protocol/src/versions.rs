//! Checking a request's API and version against the table of what weir advertises.
//!
//! The table is passed in, so the check does not depend on where the table is kept.
//! ApiVersions answers from the same table, so what is advertised is exactly what is handled.

use kafka_protocol::messages::ApiKey;

/// One advertised API: (api, min version, max version).
pub type ApiVersionRange = (ApiKey, i16, i16);

/// (api, min version, max version). Produce advertises min 0 although v0-2 are refused by
/// the codec (KIP-896): librdkafka before 2.11.1 only compresses when Produce v0 is listed.
pub const SUPPORTED_APIS: &[ApiVersionRange] = &[
    (ApiKey::Produce, 0, 10),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
];

/// The range `table` advertises for `api`, or None if it is not there.
pub fn supported_range(table: &[ApiVersionRange], api: ApiKey) -> Option<(i16, i16)> {
    table
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// The range the dispatcher actually accepts: the advertised one narrowed to what the codec
/// can decode. The two differ where a client needs a version listed that the codec refuses:
/// Produce advertises min 0 although v0-2 cannot be decoded (KIP-896), because librdkafka
/// before 2.11.1 only compresses when Produce v0 is listed.
pub fn accepted_range(table: &[ApiVersionRange], api: ApiKey) -> Option<(i16, i16)> {
    let (min, max) = supported_range(table, api)?;
    let codec = api.valid_versions();
    Some((min.max(codec.min), max.min(codec.max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_TABLE: &[ApiVersionRange] = &[(ApiKey::Produce, 0, 10), (ApiKey::Metadata, 0, 12)];

    #[test]
    fn accepted_range_is_the_advertised_one_narrowed_to_the_codec() {
        assert_eq!(supported_range(TEST_TABLE, ApiKey::Produce), Some((0, 10)));
        assert_eq!(accepted_range(TEST_TABLE, ApiKey::Produce), Some((3, 10)));
        assert_eq!(accepted_range(TEST_TABLE, ApiKey::Metadata), Some((0, 12)));
    }

    #[test]
    fn an_api_missing_from_the_table_is_not_accepted() {
        assert_eq!(supported_range(TEST_TABLE, ApiKey::Fetch), None);
        assert_eq!(accepted_range(TEST_TABLE, ApiKey::Fetch), None);
    }

    #[test]
    fn table_is_sorted_by_api_key() {
        let keys: Vec<i16> = SUPPORTED_APIS.iter().map(|(k, _, _)| *k as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn every_advertised_max_is_decodable() {
        for &(api, _, max) in SUPPORTED_APIS {
            assert!(api.valid_versions().max >= max, "{api:?}");
        }
    }
}
