//! Why the transaction coordinator refused or could not finish a request. Each error carries
//! its Kafka error code as data ([`TxnError::code`]): handlers answer with that code, and the
//! coordinator's logs carry the context.

use crate::error_codes as ec;
use crate::internal_topic::InternalTopicError;

/// A transaction coordinator request that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// `transaction.timeout.ms` not positive or above `transaction.max.timeout.ms`.
    #[error("transaction timeout {timeout_ms} ms is not within 1..={max_timeout_ms} ms")]
    InvalidTransactionTimeout {
        /// What the producer asked for.
        timeout_ms: i32,
        /// `transaction.max.timeout.ms`.
        max_timeout_ms: i32,
    },
    /// The transactional id is unknown, or has another producer id.
    #[error("{0}")]
    InvalidProducerIdMapping(&'static str),
    /// The producer's epoch is not the transactional id's (PRODUCER_FENCED: the request
    /// versions that know that code, KIP-588).
    #[error("{0}")]
    ProducerFenced(&'static str),
    /// The producer's epoch is not the transactional id's (older request versions).
    #[error("{0}")]
    InvalidProducerEpoch(&'static str),
    /// A completion (or an expiry) of the transactional id is in flight; retriable.
    #[error("another operation on the transactional id is in progress")]
    ConcurrentTransactions,
    /// The request does not fit the transaction's state.
    #[error("{0}")]
    InvalidTxnState(&'static str),
    /// A producer id block could not be allocated (a durable file write).
    #[error("allocating a producer id failed: {0}")]
    ProducerIdsUnavailable(String),
    /// A transaction marker could not be written or made durable; the Prepare state stays
    /// and the timer retries.
    #[error("transaction markers not written: {0}")]
    MarkersNotWritten(String),
    /// The transactional id left the coordinator while its request was in flight.
    #[error("the transactional id is no longer known to the coordinator")]
    Vanished,
    /// A `__transaction_state` record could not be appended or made durable.
    #[error(transparent)]
    StateTopic(#[from] InternalTopicError),
}

impl TxnError {
    /// The Kafka error code the client is answered with.
    pub fn code(&self) -> i16 {
        match self {
            TxnError::InvalidTransactionTimeout { .. } => ec::INVALID_TRANSACTION_TIMEOUT,
            TxnError::InvalidProducerIdMapping(_) => ec::INVALID_PRODUCER_ID_MAPPING,
            TxnError::ProducerFenced(_) => ec::PRODUCER_FENCED,
            TxnError::InvalidProducerEpoch(_) => ec::INVALID_PRODUCER_EPOCH,
            TxnError::ConcurrentTransactions => ec::CONCURRENT_TRANSACTIONS,
            TxnError::InvalidTxnState(_) => ec::INVALID_TXN_STATE,
            TxnError::ProducerIdsUnavailable(_)
            | TxnError::MarkersNotWritten(_)
            | TxnError::Vanished => ec::COORDINATOR_NOT_AVAILABLE,
            TxnError::StateTopic(e) => e.code(),
        }
    }

    /// A fixed description, for the partition's KIP-890 check (whose refusals carry a
    /// `&'static str`).
    pub fn reason(&self) -> &'static str {
        match self {
            TxnError::InvalidProducerIdMapping(r)
            | TxnError::ProducerFenced(r)
            | TxnError::InvalidProducerEpoch(r)
            | TxnError::InvalidTxnState(r) => r,
            TxnError::InvalidTransactionTimeout { .. } => "invalid transaction timeout",
            TxnError::ConcurrentTransactions => {
                "another operation on the transactional id is in progress"
            }
            TxnError::ProducerIdsUnavailable(_) => "allocating a producer id failed",
            TxnError::MarkersNotWritten(_) => "transaction markers not written",
            TxnError::Vanished => "the transactional id is no longer known",
            TxnError::StateTopic(_) => "the transaction state could not be written",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_with_the_kafka_code_clients_expect() {
        let topic = InternalTopicError::NotAvailable {
            topic: "__transaction_state",
            reason: "offline".into(),
        };
        let cases = [
            (
                TxnError::InvalidTransactionTimeout {
                    timeout_ms: 0,
                    max_timeout_ms: 1,
                },
                50,
            ),
            (TxnError::InvalidProducerIdMapping("x"), 49),
            (TxnError::ProducerFenced("x"), 90),
            (TxnError::InvalidProducerEpoch("x"), 47),
            (TxnError::ConcurrentTransactions, 51),
            (TxnError::InvalidTxnState("x"), 48),
            (TxnError::ProducerIdsUnavailable("disk".into()), 15),
            (TxnError::MarkersNotWritten("disk".into()), 15),
            (TxnError::Vanished, 15),
            (TxnError::StateTopic(topic), 15),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error:?}");
        }
    }
}
