//! Drives every handler through `api::dispatch` with requests encoded at every advertised
//! version, and decodes every response at that version. This catches a response field set
//! that a client's version cannot carry (the codec refuses to encode it), which would
//! otherwise close real clients' connections.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use weir_broker::api::SUPPORTED_APIS;
use weir_broker::Broker;

#[tokio::test]
async fn every_api_answers_at_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();

    for v in range(ApiKey::ApiVersions) {
        let r: ApiVersionsResponse = call(
            &broker,
            ApiKey::ApiVersions,
            v,
            &ApiVersionsRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.error_code, 0);
        assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
    }

    for v in range(ApiKey::CreateTopics) {
        let name = format!("t{v}");
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(3)
                .with_replication_factor(1),
        ]);
        let r: CreateTopicsResponse = call(&broker, ApiKey::CreateTopics, v, &req).await.unwrap();
        assert_eq!(
            r.topics[0].error_code, 0,
            "v{v}: {:?}",
            r.topics[0].error_message
        );
        let again: CreateTopicsResponse =
            call(&broker, ApiKey::CreateTopics, v, &req).await.unwrap();
        assert_eq!(again.topics[0].error_code, 36);
    }

    for v in range(ApiKey::Metadata) {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(topic_name(&format!("auto{v}"))))]))
            .with_allow_auto_topic_creation(true);
        let r: MetadataResponse = call(&broker, ApiKey::Metadata, v, &req).await.unwrap();
        assert_eq!(r.brokers.len(), 1);
        assert_eq!(r.topics[0].error_code, 0, "v{v}");
        assert_eq!(
            r.topics[0].partitions.len(),
            2,
            "auto-created with num.partitions"
        );
        if v >= 10 {
            assert!(!r.topics[0].topic_id.is_nil());
        }
    }

    // From v13 Produce and Fetch name topics by id only.
    let t2_id = broker.topic("t2").unwrap().id;
    for v in range(ApiKey::Produce) {
        let topic = if v >= 13 {
            produce_request::TopicProduceData::default().with_topic_id(t2_id)
        } else {
            produce_request::TopicProduceData::default().with_name(topic_name("t2"))
        };
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![topic.with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&["a", "b"]))),
            ])]);
        let r: ProduceResponse = call(&broker, ApiKey::Produce, v, &req).await.unwrap();
        let pr = &r.responses[0].partition_responses[0];
        assert_eq!(pr.error_code, 0, "v{v}: {:?}", pr.error_message);
        assert_eq!(pr.base_offset, 2 * (v as i64 - 3));
        if v >= 13 {
            assert_eq!(r.responses[0].topic_id, t2_id);
        }
    }
    let produced = 2 * (range(ApiKey::Produce).end() - 2) as i64;

    for v in range(ApiKey::Fetch) {
        let topic = if v >= 13 {
            fetch_request::FetchTopic::default().with_topic_id(t2_id)
        } else {
            fetch_request::FetchTopic::default().with_topic(topic_name("t2"))
        };
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![topic.with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(1)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let r: FetchResponse = call(&broker, ApiKey::Fetch, v, &req).await.unwrap();
        let pd = &r.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0, "fetch v{v}: {pd:?}");
        assert_eq!(pd.high_watermark, produced);
        let records = pd.records.clone().unwrap();
        // Fetching offset 1 returns whole batches, starting with the one holding offset 1.
        let first = weir_storage::BatchHeader::parse(&records).unwrap();
        assert!(
            first.base_offset <= 1 && first.last_offset() >= 1,
            "{first:?}"
        );
        let batches = weir_storage::batch::validate_record_set(&records, usize::MAX).unwrap();
        assert_eq!(
            batches.last().unwrap().last_offset(),
            produced - 1,
            "up to the high watermark"
        );
    }

    for v in range(ApiKey::ListOffsets) {
        let req = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic_name("t2"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2),
                ]),
        ]);
        let r: ListOffsetsResponse = call(&broker, ApiKey::ListOffsets, v, &req).await.unwrap();
        assert_eq!(r.topics[0].partitions[0].offset, produced);
        assert_eq!(r.topics[0].partitions[1].offset, 0);
    }

    for v in range(ApiKey::DescribeConfigs) {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t2")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0")),
            ]);
        let r: DescribeConfigsResponse = call(&broker, ApiKey::DescribeConfigs, v, &req)
            .await
            .unwrap();
        assert!(r.results.iter().all(|x| x.error_code == 0));
        assert!(
            r.results[0]
                .configs
                .iter()
                .any(|c| c.name.as_str() == "segment.bytes"
                    && c.value.as_ref().unwrap().as_str() == "1073741824"),
            "v{v}: {:?}",
            r.results[0]
        );
    }

    for v in range(ApiKey::DescribeTopicPartitions) {
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(topic_name("t2")),
            ])
            .with_response_partition_limit(1);
        let r: DescribeTopicPartitionsResponse =
            call(&broker, ApiKey::DescribeTopicPartitions, v, &req)
                .await
                .unwrap();
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].topic_id, t2_id);
        assert_eq!(r.topics[0].partitions.len(), 1);
        assert_eq!(r.next_cursor.as_ref().unwrap().partition_index, 1);
    }

    for v in range(ApiKey::ListConfigResources) {
        let req = ListConfigResourcesRequest::default();
        let r: ListConfigResourcesResponse = call(&broker, ApiKey::ListConfigResources, v, &req)
            .await
            .unwrap();
        assert_eq!(r.error_code, 0);
        let topics = r
            .config_resources
            .iter()
            .filter(|c| c.resource_type == 2 && c.resource_name.as_str() == "t2")
            .count();
        assert_eq!(topics, if v == 0 { 0 } else { 1 }, "v{v}");
    }

    for v in range(ApiKey::DescribeCluster) {
        let r: DescribeClusterResponse = call(
            &broker,
            ApiKey::DescribeCluster,
            v,
            &DescribeClusterRequest::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.error_code, 0);
        assert_eq!(r.brokers.len(), 1);
    }

    for v in range(ApiKey::FindCoordinator) {
        let keys = ["g1", ""];
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_coordinator_keys(keys.iter().map(|k| StrBytes::from_static_str(k)).collect())
        } else {
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1"))
        };
        let r: FindCoordinatorResponse = call(&broker, ApiKey::FindCoordinator, v, &req)
            .await
            .unwrap();
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert_eq!(r.coordinators[0].error_code, 0);
            assert_eq!(r.coordinators[0].port, 9092);
            assert_eq!(r.coordinators[1].error_code, 42, "empty key is invalid");
        } else {
            assert_eq!((r.error_code, r.node_id.0, r.port), (0, 0, 9092), "v{v}");
        }
        if v >= 1 {
            let bad = if v >= 4 {
                FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![StrBytes::from_static_str("t")])
            } else {
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("t"))
            }
            .with_key_type(7);
            let r: FindCoordinatorResponse = call(&broker, ApiKey::FindCoordinator, v, &bad)
                .await
                .unwrap();
            let code = if v >= 4 {
                r.coordinators[0].error_code
            } else {
                r.error_code
            };
            assert_eq!(code, 42, "v{v}: unknown key type");
        }
    }

    for v in range(ApiKey::CreatePartitions) {
        let req = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic_name("t3"))
                .with_count(4 + v as i32),
        ]);
        let r: CreatePartitionsResponse = call(&broker, ApiKey::CreatePartitions, v, &req)
            .await
            .unwrap();
        assert_eq!(
            r.results[0].error_code, 0,
            "v{v}: {:?}",
            r.results[0].error_message
        );
    }

    for v in range(ApiKey::DeleteTopics) {
        let name = format!("t{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(topic_name(&name)))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![topic_name(&name)])
        };
        let r: DeleteTopicsResponse = call(&broker, ApiKey::DeleteTopics, v, &req).await.unwrap();
        assert_eq!(r.responses[0].error_code, 0, "v{v} {name}");
        assert!(broker.topic(&name).is_none());
        assert!(!dir.path().join(format!("{name}-0")).exists());
    }
    broker.shutdown().unwrap();
}

/// Clamp `v` into the advertised range of `key`.
fn at(key: ApiKey, v: i16) -> i16 {
    let r = range(key);
    v.clamp(*r.start(), *r.end())
}

/// One consumer's whole life in a group, once per version of every group API: join (with
/// MEMBER_ID_REQUIRED from v4), sync as leader, heartbeat, commit, fetch, describe, list,
/// leave, delete offsets and delete the group.
#[tokio::test]
async fn group_apis_answer_at_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(config(dir.path())).await.unwrap();
    broker
        .create_topic("gt", 2, 1, Default::default())
        .await
        .unwrap();
    for v in 0..=9i16 {
        let group = format!("group-{v}");
        let g = || GroupId(StrBytes::from_string(group.clone()));
        let jv = at(ApiKey::JoinGroup, v);
        let join = |member: &str| {
            JoinGroupRequest::default()
                .with_group_id(g())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if jv >= 1 { 10_000 } else { -1 })
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"sub"))])
        };
        let mut r: JoinGroupResponse = call(&broker, ApiKey::JoinGroup, jv, &join(""))
            .await
            .unwrap();
        if jv >= 4 {
            assert_eq!(r.error_code, 79, "v{jv}: MEMBER_ID_REQUIRED");
            let id = r.member_id.to_string();
            r = call(&broker, ApiKey::JoinGroup, jv, &join(&id))
                .await
                .unwrap();
        }
        assert_eq!(r.error_code, 0, "JoinGroup v{jv}");
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.members[0].metadata, Bytes::from_static(b"sub"));
        let member = r.member_id.clone();

        let sv = at(ApiKey::SyncGroup, v);
        let sync = SyncGroupRequest::default()
            .with_group_id(g())
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(member.clone())
                    .with_assignment(Bytes::from_static(b"assigned")),
            ]);
        let s: SyncGroupResponse = call(&broker, ApiKey::SyncGroup, sv, &sync).await.unwrap();
        assert_eq!(s.error_code, 0, "SyncGroup v{sv}");
        assert_eq!(s.assignment, Bytes::from_static(b"assigned"));

        let hv = at(ApiKey::Heartbeat, v);
        let hb = HeartbeatRequest::default()
            .with_group_id(g())
            .with_generation_id(1)
            .with_member_id(member.clone());
        let h: HeartbeatResponse = call(&broker, ApiKey::Heartbeat, hv, &hb).await.unwrap();
        assert_eq!(h.error_code, 0, "Heartbeat v{hv}");
        let h: HeartbeatResponse = call(
            &broker,
            ApiKey::Heartbeat,
            hv,
            &hb.clone().with_generation_id(9),
        )
        .await
        .unwrap();
        assert_eq!(h.error_code, 22, "Heartbeat v{hv}: ILLEGAL_GENERATION");

        let cv = at(ApiKey::OffsetCommit, v);
        let commit = OffsetCommitRequest::default()
            .with_group_id(g())
            .with_generation_id_or_member_epoch(1)
            .with_member_id(member.clone())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic_name("gt"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(42 + v as i64)
                            .with_committed_metadata(Some(StrBytes::from_static_str("meta"))),
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(7)
                            .with_committed_offset(1),
                    ]),
            ]);
        let c: OffsetCommitResponse = call(&broker, ApiKey::OffsetCommit, cv, &commit)
            .await
            .unwrap();
        let codes: Vec<i16> = c.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, 3], "OffsetCommit v{cv}");

        let fv = at(ApiKey::OffsetFetch, v);
        let fetch = if fv >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(g())
                    .with_topics(None),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(g())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic_name("gt"))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        };
        let f: OffsetFetchResponse = call(&broker, ApiKey::OffsetFetch, fv, &fetch)
            .await
            .unwrap();
        let got: Vec<(i32, i64, String)> = if fv >= 8 {
            f.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.metadata.as_deref().unwrap_or("").to_string(),
                    )
                })
                .collect()
        } else {
            f.topics[0]
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.metadata.as_deref().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        let want_committed = (1, 42 + v as i64, "meta".to_string());
        if fv >= 8 {
            assert_eq!(got, vec![want_committed], "OffsetFetch v{fv}");
        } else {
            assert_eq!(
                got,
                vec![(0, -1, String::new()), want_committed],
                "OffsetFetch v{fv}"
            );
        }

        let dv = at(ApiKey::DescribeGroups, v);
        let d: DescribeGroupsResponse = call(
            &broker,
            ApiKey::DescribeGroups,
            dv,
            &DescribeGroupsRequest::default()
                .with_groups(vec![g(), GroupId(StrBytes::from_static_str("nope"))]),
        )
        .await
        .unwrap();
        assert_eq!(
            d.groups[0].group_state.as_str(),
            "Stable",
            "DescribeGroups v{dv}"
        );
        assert_eq!(
            d.groups[0].members[0].member_assignment,
            Bytes::from_static(b"assigned")
        );
        assert_eq!(d.groups[1].group_state.as_str(), "Dead");

        let lv = at(ApiKey::ListGroups, v);
        let l: ListGroupsResponse = call(
            &broker,
            ApiKey::ListGroups,
            lv,
            &ListGroupsRequest::default(),
        )
        .await
        .unwrap();
        assert!(
            l.groups.iter().any(|x| x.group_id.as_str() == group),
            "ListGroups v{lv}"
        );

        let lev = at(ApiKey::LeaveGroup, v);
        let leave = if lev >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(g())
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(member.clone())
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(g())
                .with_member_id(member.clone())
        };
        let lr: LeaveGroupResponse = call(&broker, ApiKey::LeaveGroup, lev, &leave)
            .await
            .unwrap();
        assert_eq!(lr.error_code, 0, "LeaveGroup v{lev}");
        if lev >= 3 {
            assert_eq!(lr.members[0].error_code, 0);
        }

        // Nobody consumes "gt" any more: its committed offsets can be deleted.
        let od = OffsetDeleteRequest::default()
            .with_group_id(g())
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(topic_name("gt"))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(1),
                    ]),
            ]);
        let o: OffsetDeleteResponse = call(&broker, ApiKey::OffsetDelete, 0, &od).await.unwrap();
        assert_eq!((o.error_code, o.topics[0].partitions[0].error_code), (0, 0));

        let gv = at(ApiKey::DeleteGroups, v);
        let del: DeleteGroupsResponse = call(
            &broker,
            ApiKey::DeleteGroups,
            gv,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![g(), GroupId(StrBytes::from_static_str("nope"))]),
        )
        .await
        .unwrap();
        let codes: Vec<i16> = del.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![0, 69], "DeleteGroups v{gv}");
    }
}
