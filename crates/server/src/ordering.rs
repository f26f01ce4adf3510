//! Requests on one connection take effect in the order they were sent.
//!
//! Kafka reads one request per connection at a time: it mutes the socket until the response
//! is sent, so a client that pipelines `DeleteRecords` and then `ListOffsets` sees the
//! deletion. weir reads ahead (a reader dispatches, a writer awaits and sends), and many
//! handlers answer [`Response::Later`](weir_broker::api::Response::Later) with their work
//! still to do inside the future: a request dispatched meanwhile would see the state from
//! before the earlier one. The barrier here holds back such a request until the earlier
//! responses it depends on are finished.
//!
//! Three overlaps stay allowed, because they are what pipelining is for and they are safe:
//! a Produce may be dispatched while earlier Produces wait for their fsync (the append
//! itself happens at dispatch, in order; only the durability wait is deferred), an
//! OffsetCommit likewise while earlier OffsetCommits wait for theirs (appended to
//! `__consumer_offsets` at dispatch, in order, and applied by record offset, so a later
//! commit is never overwritten by an earlier one finishing last: what librdkafka's
//! asynchronous commits rely on), and a Fetch may be dispatched while earlier Fetches
//! long-poll (a fetch changes nothing another fetch reads). Everything else waits for every
//! earlier deferred response.
//!
//! I/O-free: the connection's reader asks [`OrderBarrier::must_finish_before`] which
//! sequence number the writer must have finished first, and tells [`OrderBarrier::pending`]
//! about each deferred response it queues.

use std::collections::VecDeque;

use weir_protocol::kafka_protocol::messages::ApiKey;

/// How a request may overlap the deferred responses before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Produce,
    OffsetCommit,
    Fetch,
    Other,
}

impl Class {
    fn of(api: ApiKey) -> Class {
        match api {
            ApiKey::Produce => Class::Produce,
            ApiKey::OffsetCommit => Class::OffsetCommit,
            ApiKey::Fetch => Class::Fetch,
            _ => Class::Other,
        }
    }

    /// Whether a request of class `self` may be dispatched while one of class `earlier`
    /// still has its deferred part to run.
    fn may_overlap(self, earlier: Class) -> bool {
        matches!(
            (self, earlier),
            (Class::Produce, Class::Produce)
                | (Class::OffsetCommit, Class::OffsetCommit)
                | (Class::Fetch, Class::Fetch)
        )
    }
}

/// The deferred responses of one connection whose effects a later request may depend on.
/// Requests are numbered from 1 in the order they are read; the writer finishes them in
/// the same order, so "finished up to n" is one number.
#[derive(Debug, Default)]
pub(crate) struct OrderBarrier {
    /// Deferred responses not yet known to be finished: (sequence number, class), oldest first.
    pending: VecDeque<(u64, Class)>,
}

impl OrderBarrier {
    /// The sequence number the writer must have finished before a request of `api` is
    /// dispatched, given that it has finished everything up to `finished`; 0 when the request
    /// may go at once.
    pub(crate) fn must_finish_before(&mut self, api: ApiKey, finished: u64) -> u64 {
        while self
            .pending
            .front()
            .is_some_and(|(seq, _)| *seq <= finished)
        {
            self.pending.pop_front();
        }
        let class = Class::of(api);
        // The writer finishes in order, so waiting for the newest conflicting response
        // also waits for every older one.
        self.pending
            .iter()
            .rev()
            .find(|(_, earlier)| !class.may_overlap(*earlier))
            .map_or(0, |(seq, _)| *seq)
    }

    /// Request `seq` of `api` was answered with a deferred response.
    pub(crate) fn pending(&mut self, seq: u64, api: ApiKey) {
        debug_assert!(self.pending.back().is_none_or(|(last, _)| *last < seq));
        self.pending.push_back((seq, Class::of(api)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_pending_means_no_wait() {
        let mut b = OrderBarrier::default();
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 0), 0);
        assert_eq!(b.must_finish_before(ApiKey::Produce, 7), 0);
    }

    #[test]
    fn a_request_after_deferred_admin_work_waits_for_it() {
        let mut b = OrderBarrier::default();
        b.pending(1, ApiKey::DeleteRecords);
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 0), 1);
        // Even a Produce or a Fetch waits: neither may overlap admin work.
        assert_eq!(b.must_finish_before(ApiKey::Produce, 0), 1);
        assert_eq!(b.must_finish_before(ApiKey::Fetch, 0), 1);
        // Once the writer has finished it, nothing is left to wait for.
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 1), 0);
    }

    #[test]
    fn produces_pipeline_and_fetches_pipeline() {
        let mut b = OrderBarrier::default();
        b.pending(1, ApiKey::Produce);
        b.pending(2, ApiKey::Produce);
        assert_eq!(b.must_finish_before(ApiKey::Produce, 0), 0);
        assert_eq!(b.must_finish_before(ApiKey::Metadata, 0), 2);
        assert_eq!(b.must_finish_before(ApiKey::Fetch, 0), 2);

        let mut b = OrderBarrier::default();
        b.pending(1, ApiKey::Fetch);
        assert_eq!(b.must_finish_before(ApiKey::Fetch, 0), 0);
        assert_eq!(b.must_finish_before(ApiKey::Produce, 0), 1);
        assert_eq!(b.must_finish_before(ApiKey::OffsetCommit, 0), 1);
    }

    #[test]
    fn offset_commits_pipeline_but_what_reads_offsets_waits() {
        let mut b = OrderBarrier::default();
        b.pending(1, ApiKey::OffsetCommit);
        b.pending(2, ApiKey::OffsetCommit);
        assert_eq!(b.must_finish_before(ApiKey::OffsetCommit, 0), 0);
        assert_eq!(b.must_finish_before(ApiKey::OffsetFetch, 0), 2);
        assert_eq!(b.must_finish_before(ApiKey::Produce, 0), 2);
        assert_eq!(b.must_finish_before(ApiKey::TxnOffsetCommit, 0), 2);
        b.pending(3, ApiKey::JoinGroup);
        // A commit after a JoinGroup is checked against the generation it produced.
        assert_eq!(b.must_finish_before(ApiKey::OffsetCommit, 0), 3);
    }

    #[test]
    fn waits_for_the_newest_conflicting_response_only() {
        let mut b = OrderBarrier::default();
        b.pending(1, ApiKey::OffsetCommit);
        b.pending(2, ApiKey::Produce);
        b.pending(4, ApiKey::Produce);
        // A Produce may overlap 2 and 4 but not the commit (1).
        assert_eq!(b.must_finish_before(ApiKey::Produce, 0), 1);
        // Anything else waits for 4, the newest, which finishes after 1 and 2.
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 0), 4);
        assert_eq!(b.must_finish_before(ApiKey::Produce, 1), 0);
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 2), 4);
        assert_eq!(b.must_finish_before(ApiKey::ListOffsets, 4), 0);
    }
}
