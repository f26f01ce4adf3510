//! Kafka error codes, in one place (values from the Kafka protocol guide).

/// 0: success; the response carries no error.
pub const NONE: i16 = 0;
/// -1: an unexpected server error; the catch-all when nothing more specific fits.
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// 1: the requested offset is outside `[log_start_offset, log_end_offset]` of the partition.
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
/// 2: a record batch failed its CRC check, exceeds the valid size, or is otherwise corrupt.
pub const CORRUPT_MESSAGE: i16 = 2;
/// 3: the topic or partition does not exist on this broker.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// 5: the partition has no leader right now; retriable.
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// 6: this broker is not the leader (or not a replica) of the partition; retriable.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// 7: the request did not complete within its timeout (e.g. a produce waiting for acks).
pub const REQUEST_TIMED_OUT: i16 = 7;
/// 10: a record batch is larger than the maximum message size the broker accepts.
pub const MESSAGE_TOO_LARGE: i16 = 10;
/// 17: the topic name is invalid, or the operation is not allowed on this topic.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// 21: a Produce request asked for an `acks` value other than -1, 0 or 1.
pub const INVALID_REQUIRED_ACKS: i16 = 21;
/// 37: the requested partition count is invalid (below 1, or not above the current count).
pub const INVALID_PARTITIONS: i16 = 37;
/// 38: the replication factor is below 1 or above the number of brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// 39: an explicit replica assignment is invalid.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// 40: a configuration name or value is invalid.
pub const INVALID_CONFIG: i16 = 40;
/// 42: the request is malformed or not valid for this broker.
pub const INVALID_REQUEST: i16 = 42;
/// 43: the broker's message format version does not support the request.
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
/// 36: a topic with this name already exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// 32: a record's timestamp is outside the topic's window, or its timestamp type is not
/// the producer's to set.
pub const INVALID_TIMESTAMP: i16 = 32;
/// 35: the broker does not support this API version.
pub const UNSUPPORTED_VERSION: i16 = 35;
/// 56: a disk error while accessing the log; the partition is failed-stop until reopened.
pub const KAFKA_STORAGE_ERROR: i16 = 56;
/// 87: a record batch failed the broker's validation and was rejected.
pub const INVALID_RECORD: i16 = 87;
/// 100: this broker does not host a topic with this topic ID.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// 53: the client is not authorized for this transactional id.
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
/// 59: the broker has no state for this producer id (e.g. its records were all removed by retention).
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
/// 12: the metadata string of an offset commit is too large.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// 14: the coordinator is still loading its state and cannot serve yet; retriable.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// 15: the group or transaction coordinator is not available; retriable.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// 16: this broker is not the coordinator for the group or transactional id.
pub const NOT_COORDINATOR: i16 = 16;
/// 22: the request's generation id is not the group's current generation.
pub const ILLEGAL_GENERATION: i16 = 22;
/// 23: the member's protocol type or protocols are incompatible with the group's, or empty.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// 24: the group id is invalid (e.g. empty).
pub const INVALID_GROUP_ID: i16 = 24;
/// 25: the coordinator does not know this member id in this group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// 26: the session timeout is outside `group.min.session.timeout.ms..=group.max.session.timeout.ms`.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// 27: the group is rebalancing; the member must rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// 68: the group still has members, so it cannot be deleted.
pub const NON_EMPTY_GROUP: i16 = 68;
/// 69: the group id does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// 79: the member must rejoin with the member id the coordinator just assigned (KIP-394).
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// 81: the group already has `group.max.size` members.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// 82: another member with the same `group.instance.id` has registered with a different member id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// 86: offsets of a topic cannot be deleted while the group is subscribed to it.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// 128: a subscription's regular expression does not compile.
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
/// 110: the consumer group member's epoch is not the coordinator's: it must rejoin.
pub const FENCED_MEMBER_EPOCH: i16 = 110;
/// 111: the static member's instance id is still held by a member that has not left.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
/// 112: the server assignor asked for is not one of the coordinator's.
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
/// 113: an offset commit or fetch with a member epoch that is not the member's current one.
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// 45: the producer's sequence number is not the next one expected for its producer id and partition.
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// 47: the producer epoch is older than the current one for this producer id.
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
/// 48: the transactional operation is not valid in the transaction's current state.
pub const INVALID_TXN_STATE: i16 = 48;
/// 49: the producer id is not the one currently assigned to this transactional id.
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
/// 50: the transaction timeout exceeds `transaction.max.timeout.ms`.
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
/// 51: another operation on the same transaction is in progress (e.g. its commit); retriable.
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
/// 55: not attempted because another part of the same batched request failed.
pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
/// 88: a transactional offset commit for this partition is still pending; retriable.
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// 90: a newer producer with the same transactional id has fenced this one.
pub const PRODUCER_FENCED: i16 = 90;
/// 105: the transactional id is not known to the coordinator.
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError as E;

    /// The table above is written by hand; this pins every constant to the code
    /// `kafka-protocol` gives the same Kafka error, so a typo cannot ship.
    #[test]
    fn every_constant_matches_kafka_protocol() {
        assert_eq!(E::try_from_code(NONE), None);
        let table = [
            (UNKNOWN_SERVER_ERROR, E::UnknownServerError),
            (OFFSET_OUT_OF_RANGE, E::OffsetOutOfRange),
            (CORRUPT_MESSAGE, E::CorruptMessage),
            (UNKNOWN_TOPIC_OR_PARTITION, E::UnknownTopicOrPartition),
            (LEADER_NOT_AVAILABLE, E::LeaderNotAvailable),
            (NOT_LEADER_OR_FOLLOWER, E::NotLeaderOrFollower),
            (REQUEST_TIMED_OUT, E::RequestTimedOut),
            (MESSAGE_TOO_LARGE, E::MessageTooLarge),
            (INVALID_TOPIC_EXCEPTION, E::InvalidTopicException),
            (INVALID_REQUIRED_ACKS, E::InvalidRequiredAcks),
            (INVALID_PARTITIONS, E::InvalidPartitions),
            (INVALID_REPLICATION_FACTOR, E::InvalidReplicationFactor),
            (INVALID_REPLICA_ASSIGNMENT, E::InvalidReplicaAssignment),
            (INVALID_CONFIG, E::InvalidConfig),
            (INVALID_REQUEST, E::InvalidRequest),
            (
                UNSUPPORTED_FOR_MESSAGE_FORMAT,
                E::UnsupportedForMessageFormat,
            ),
            (TOPIC_ALREADY_EXISTS, E::TopicAlreadyExists),
            (UNSUPPORTED_VERSION, E::UnsupportedVersion),
            (INVALID_TIMESTAMP, E::InvalidTimestamp),
            (KAFKA_STORAGE_ERROR, E::KafkaStorageError),
            (INVALID_RECORD, E::InvalidRecord),
            (UNKNOWN_TOPIC_ID, E::UnknownTopicId),
            (
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                E::TransactionalIdAuthorizationFailed,
            ),
            (UNKNOWN_PRODUCER_ID, E::UnknownProducerId),
            (OFFSET_METADATA_TOO_LARGE, E::OffsetMetadataTooLarge),
            (COORDINATOR_LOAD_IN_PROGRESS, E::CoordinatorLoadInProgress),
            (COORDINATOR_NOT_AVAILABLE, E::CoordinatorNotAvailable),
            (NOT_COORDINATOR, E::NotCoordinator),
            (ILLEGAL_GENERATION, E::IllegalGeneration),
            (INCONSISTENT_GROUP_PROTOCOL, E::InconsistentGroupProtocol),
            (INVALID_GROUP_ID, E::InvalidGroupId),
            (UNKNOWN_MEMBER_ID, E::UnknownMemberId),
            (INVALID_SESSION_TIMEOUT, E::InvalidSessionTimeout),
            (REBALANCE_IN_PROGRESS, E::RebalanceInProgress),
            (NON_EMPTY_GROUP, E::NonEmptyGroup),
            (GROUP_ID_NOT_FOUND, E::GroupIdNotFound),
            (MEMBER_ID_REQUIRED, E::MemberIdRequired),
            (GROUP_MAX_SIZE_REACHED, E::GroupMaxSizeReached),
            (FENCED_INSTANCE_ID, E::FencedInstanceId),
            (GROUP_SUBSCRIBED_TO_TOPIC, E::GroupSubscribedToTopic),
            (FENCED_MEMBER_EPOCH, E::FencedMemberEpoch),
            (UNRELEASED_INSTANCE_ID, E::UnreleasedInstanceId),
            (UNSUPPORTED_ASSIGNOR, E::UnsupportedAssignor),
            (STALE_MEMBER_EPOCH, E::StaleMemberEpoch),
            (INVALID_REGULAR_EXPRESSION, E::InvalidRegularExpression),
            (OUT_OF_ORDER_SEQUENCE_NUMBER, E::OutOfOrderSequenceNumber),
            (INVALID_PRODUCER_EPOCH, E::InvalidProducerEpoch),
            (INVALID_TXN_STATE, E::InvalidTxnState),
            (INVALID_PRODUCER_ID_MAPPING, E::InvalidProducerIdMapping),
            (INVALID_TRANSACTION_TIMEOUT, E::InvalidTransactionTimeout),
            (CONCURRENT_TRANSACTIONS, E::ConcurrentTransactions),
            (OPERATION_NOT_ATTEMPTED, E::OperationNotAttempted),
            (UNSTABLE_OFFSET_COMMIT, E::UnstableOffsetCommit),
            (PRODUCER_FENCED, E::ProducerFenced),
            (TRANSACTIONAL_ID_NOT_FOUND, E::TransactionalIdNotFound),
        ];
        for (constant, kafka) in table {
            assert_eq!(constant, kafka.code(), "{kafka:?}");
        }
    }
}
