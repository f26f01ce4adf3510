//! The error codes each response carries (top level, and per topic, partition, group or
//! resource), counted by API for the admin exporter's `weir_response_errors_total`: what a
//! client was told, not whether the request itself failed. One relaxed add per error, a
//! walk over the response's entries otherwise. Only the response sent is encoded, so a
//! long poll that read several times counts once; Produce counts in its handler, because
//! acks=0 gets no response.

use kafka_protocol::messages::*;

/// Calls `f` with every error code in the response (zeros included; the counter skips them).
pub trait ResponseErrors {
    fn each_error(&self, f: &mut dyn FnMut(i16));
}

macro_rules! counted_by_handler {
    ($($t:ty),*) => {$(
        impl ResponseErrors for $t {
            fn each_error(&self, _: &mut dyn FnMut(i16)) {}
        }
    )*};
}
counted_by_handler!(ProduceResponse);

/// Responses whose only error code is the top-level `error_code`.
macro_rules! top_level {
    ($($t:ty),*) => {$(
        impl ResponseErrors for $t {
            fn each_error(&self, f: &mut dyn FnMut(i16)) {
                f(self.error_code);
            }
        }
    )*};
}
top_level!(
    ApiVersionsResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    ListGroupsResponse,
    InitProducerIdResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    ListTransactionsResponse,
    DescribeClusterResponse
);

impl ResponseErrors for FetchResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.responses {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for MetadataResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            f(t.error_code);
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for ListOffsetsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for CreateTopicsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.topics.iter().for_each(|t| f(t.error_code));
    }
}

impl ResponseErrors for DeleteTopicsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|t| f(t.error_code));
    }
}

impl ResponseErrors for CreatePartitionsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|t| f(t.error_code));
    }
}

impl ResponseErrors for DescribeConfigsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|r| f(r.error_code));
    }
}

impl ResponseErrors for AlterConfigsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|r| f(r.error_code));
    }
}

impl ResponseErrors for IncrementalAlterConfigsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.responses.iter().for_each(|r| f(r.error_code));
    }
}

impl ResponseErrors for FindCoordinatorResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        // v0-3 answer at the top level, v4 per key.
        if self.coordinators.is_empty() {
            f(self.error_code);
        }
        self.coordinators.iter().for_each(|c| f(c.error_code));
    }
}

impl ResponseErrors for LeaveGroupResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.members.iter().for_each(|m| f(m.error_code));
    }
}

impl ResponseErrors for OffsetCommitResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for TxnOffsetCommitResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for OffsetFetchResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        // v0-7 answer one group at the top level, v8 a list of groups.
        if self.groups.is_empty() {
            f(self.error_code);
        }
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
        for g in &self.groups {
            f(g.error_code);
            for t in &g.topics {
                t.partitions.iter().for_each(|p| f(p.error_code));
            }
        }
    }
}

impl ResponseErrors for OffsetDeleteResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for DescribeGroupsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.groups.iter().for_each(|g| f(g.error_code));
    }
}

impl ResponseErrors for DeleteGroupsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.results.iter().for_each(|g| f(g.error_code));
    }
}

impl ResponseErrors for AddPartitionsToTxnResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        for t in &self.results_by_topic_v3_and_below {
            t.results_by_partition
                .iter()
                .for_each(|p| f(p.partition_error_code));
        }
    }
}

impl ResponseErrors for DeleteRecordsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for DescribeLogDirsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        f(self.error_code);
        self.results.iter().for_each(|r| f(r.error_code));
    }
}

impl ResponseErrors for DescribeProducersResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        for t in &self.topics {
            t.partitions.iter().for_each(|p| f(p.error_code));
        }
    }
}

impl ResponseErrors for DescribeTransactionsResponse {
    fn each_error(&self, f: &mut dyn FnMut(i16)) {
        self.transaction_states.iter().for_each(|s| f(s.error_code));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes<R: ResponseErrors>(r: &R) -> Vec<i16> {
        let mut v = Vec::new();
        r.each_error(&mut |c| v.push(c));
        v
    }

    #[test]
    fn nested_and_versioned_error_codes_are_all_found() {
        let r = OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_error_code(16)
                .with_topics(vec![
                    offset_fetch_response::OffsetFetchResponseTopics::default().with_partitions(
                        vec![
                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                .with_error_code(3),
                        ],
                    ),
                ]),
        ]);
        assert_eq!(codes(&r), vec![16, 3]);
        let v3 = OffsetFetchResponse::default().with_error_code(15);
        assert_eq!(codes(&v3), vec![15]);
        let fc = FindCoordinatorResponse::default().with_coordinators(vec![
            find_coordinator_response::Coordinator::default().with_error_code(15),
        ]);
        assert_eq!(codes(&fc), vec![15], "v4: the top-level code is not sent");
    }
}
