//! Lookups that do not move positions: `beginning_offsets`,
//! `end_offsets`, `offsets_for_times`, `highwater`, `topics`,
//! `partitions_for_topic`, and `metrics`.

use std::collections::{BTreeSet, HashMap};

use super::offsets::{list_offsets, EARLIEST, LATEST};
use super::{check_topic, Consumer, ConsumerMetrics, OffsetAndTimestamp, TopicPartition};
use crate::cluster::{PartitionMetadata, TopicSelection};
use crate::error::{Error, Result};
use crate::protocol::ErrorCode;

impl Consumer {
    fn lookup(
        &self,
        partitions: Vec<TopicPartition>,
        ts: i64,
    ) -> Result<HashMap<TopicPartition, i64>> {
        let query: Vec<(TopicPartition, i64)> = partitions.into_iter().map(|tp| (tp, ts)).collect();
        let found = list_offsets(
            &self.cluster,
            self.cfg.isolation_level.as_i8(),
            &query,
            self.cfg.client.request_timeout(),
        )?;
        Ok(found
            .into_iter()
            .filter_map(|(tp, o)| Some((tp, o?.offset)))
            .collect())
    }

    /// The first offset of each partition (any partitions, assigned or not).
    pub fn beginning_offsets<I, T>(&self, partitions: I) -> Result<HashMap<TopicPartition, i64>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.lookup(partitions.into_iter().map(Into::into).collect(), EARLIEST)
    }

    /// The offset after the last record of each partition (the last stable
    /// offset with `read_committed`).
    pub fn end_offsets<I, T>(&self, partitions: I) -> Result<HashMap<TopicPartition, i64>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.lookup(partitions.into_iter().map(Into::into).collect(), LATEST)
    }

    /// For each `(partition, timestamp ms)`, the first record whose
    /// timestamp is at or after it (`None`: there is none).
    pub fn offsets_for_times<I, T>(
        &self,
        query: I,
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>>
    where
        I: IntoIterator<Item = (T, i64)>,
        T: Into<TopicPartition>,
    {
        let query: Vec<(TopicPartition, i64)> =
            query.into_iter().map(|(t, ts)| (t.into(), ts)).collect();
        for (tp, ts) in &query {
            if *ts < 0 {
                return Err(Error::invalid_argument(format!(
                    "timestamp {ts} for {tp} is negative"
                )));
            }
        }
        list_offsets(
            &self.cluster,
            self.cfg.isolation_level.as_i8(),
            &query,
            self.cfg.client.request_timeout(),
        )
    }

    /// The last high watermark seen by fetches of `partition` (`None`
    /// before the first fetch answer).
    pub fn highwater(&self, partition: impl Into<TopicPartition>) -> Option<i64> {
        self.fetcher
            .watermarks(&partition.into())
            .map(|w| w.0)
            .filter(|hw| *hw >= 0)
    }

    /// Every topic in the cluster (without internal topics when
    /// `exclude_internal_topics`).
    pub fn topics(&self) -> Result<BTreeSet<String>> {
        let snap = self.cluster.refresh(TopicSelection::All)?;
        Ok(snap
            .topics
            .values()
            .filter(|t| t.error.is_ok())
            .filter(|t| !(self.cfg.exclude_internal_topics && t.is_internal))
            .map(|t| t.name.clone())
            .collect())
    }

    /// The partitions of `topic` (empty when the topic does not exist).
    pub fn partitions_for_topic(&self, topic: &str) -> Result<Vec<PartitionMetadata>> {
        check_topic(topic)?;
        self.cluster.add_interest([topic]);
        let snap = self.cluster.refresh(TopicSelection::Interest)?;
        match snap.topic(topic) {
            Some(t) if t.error.is_ok() => Ok(t.partitions.clone()),
            Some(t) if t.error == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => Ok(Vec::new()),
            Some(t) if t.error.is_retriable() => Ok(Vec::new()),
            Some(t) => Err(Error::broker(t.error, "looking up partitions").with_topic(topic)),
            None => Ok(Vec::new()),
        }
    }

    /// What [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction)
    /// needs to commit this member's offsets in a transaction: group id,
    /// generation (member epoch with KIP-848), member id and group instance
    /// id, read now. `None` without `group_id`.
    pub fn group_metadata(&self) -> Option<crate::producer::ConsumerGroupMetadata> {
        let m = self.group.as_ref()?.member();
        Some(crate::producer::ConsumerGroupMetadata {
            group_id: m.group_id,
            generation_id: m.generation,
            member_id: m.member_id,
            group_instance_id: m.instance_id,
        })
    }

    /// A snapshot of the consumer's counters.
    pub fn metrics(&self) -> ConsumerMetrics {
        let mut m = self.metrics.snapshot();
        m.records_consumed = self.records_consumed;
        m.bytes_consumed = self.bytes_consumed;
        m.assigned_partitions = self.assignment.len();
        let cursor = self.cursor.as_ref().map(|c| (&c.tp, c.position));
        let mut lag = 0;
        for (tp, hw) in self.fetcher.high_watermarks() {
            let pos = match cursor {
                Some((ctp, p)) if *ctp == tp => Some(p),
                _ => self.assignment.get(&tp).and_then(|p| p.position),
            };
            if let (Some(pos), true) = (pos, hw >= 0) {
                lag = lag.max(hw - pos);
            }
        }
        m.records_lag_max = lag;
        m
    }
}
