//! Reading one partition's fetched records on the consumer thread, lazily:
//! batch by batch, record by record, as the application asks for them.
//!
//! Control batches are skipped; with `read_committed`, batches of aborted
//! transactions are skipped too, using the fetch answer's aborted
//! transaction list the way the Java client does.

use std::collections::{HashSet, VecDeque};

use crate::consumer::fetcher::PartitionData;
use crate::consumer::message::Message;
use crate::error::{Error, Result};
use crate::partition::TopicPartition;
use crate::records::{ControlType, ReadOptions, RecordBatches, Records, TimestampType};

/// The unread part of one partition's fetched records.
pub(crate) struct Cursor {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: u64,
    /// The offset of the next record to return.
    pub(crate) position: i64,
    /// The leader epoch of the last record returned.
    pub(crate) last_leader_epoch: Option<i32>,
    /// Where the chunk ends (after its last whole batch).
    next_offset: i64,
    batches: RecordBatches,
    records: Option<Records>,
    batch_next: i64,
    timestamp_type: Option<TimestampType>,
    leader_epoch: Option<i32>,
    read_committed: bool,
    aborted: VecDeque<(i64, i64)>,
    aborted_producers: HashSet<i64>,
    failed: bool,
}

impl Cursor {
    /// A cursor over `data`, which was fetched for `position`.
    pub(crate) fn new(
        data: PartitionData,
        position: i64,
        options: ReadOptions,
        read_committed: bool,
    ) -> Cursor {
        Cursor {
            tp: data.tp,
            epoch: data.epoch,
            position,
            last_leader_epoch: None,
            next_offset: data.next_offset,
            batches: RecordBatches::new(data.records, options),
            records: None,
            batch_next: position,
            timestamp_type: None,
            leader_epoch: None,
            read_committed,
            aborted: data.aborted.into(),
            aborted_producers: HashSet::new(),
            failed: false,
        }
    }

    /// Whether an error stopped this cursor.
    #[cfg(test)]
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    fn fail(&mut self, e: Error) -> Option<Result<Message>> {
        self.failed = true;
        self.records = None;
        Some(Err(e
            .context(format_args!("reading fetched records of {}", self.tp))
            .with_partition(&*self.tp.topic, self.tp.partition)))
    }

    /// The next record, `None` when the chunk is used up. After an `Err`
    /// the cursor yields nothing more and `position` is the first offset
    /// not returned.
    #[inline]
    pub(crate) fn next_message(&mut self) -> Option<Result<Message>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(records) = &mut self.records {
                match records.next() {
                    Some(Ok(r)) => {
                        if r.offset < self.position {
                            continue; // before the fetch offset, in a batch that starts earlier
                        }
                        // Broker bytes: no overflow at i64::MAX.
                        self.position = r.offset.saturating_add(1);
                        self.last_leader_epoch = self.leader_epoch;
                        return Some(Ok(Message {
                            topic: self.tp.topic.clone(),
                            partition: self.tp.partition,
                            offset: r.offset,
                            timestamp: r.timestamp,
                            timestamp_type: self.timestamp_type,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                            leader_epoch: self.leader_epoch,
                        }));
                    }
                    Some(Err(e)) => return self.fail(e),
                    None => {
                        self.records = None;
                        self.position = self.position.max(self.batch_next);
                    }
                }
            }
            match self.batches.next() {
                None => {
                    self.position = self.position.max(self.next_offset);
                    return None;
                }
                Some(Err(e)) => return self.fail(e),
                Some(Ok(batch)) => {
                    let next = batch.next_offset();
                    if next <= self.position {
                        continue;
                    }
                    if self.read_committed && batch.producer_id() >= 0 {
                        while let Some(&(pid, first)) = self.aborted.front() {
                            if first > batch.last_offset() {
                                break;
                            }
                            self.aborted_producers.insert(pid);
                            self.aborted.pop_front();
                        }
                        if batch.is_control() {
                            match batch.control_record() {
                                Ok(Some(c)) if c.kind == ControlType::Abort => {
                                    self.aborted_producers.remove(&batch.producer_id());
                                }
                                Ok(_) => {}
                                Err(e) => return self.fail(e),
                            }
                        } else if batch.is_transactional()
                            && self.aborted_producers.contains(&batch.producer_id())
                        {
                            self.position = next;
                            continue;
                        }
                    }
                    if batch.is_control() {
                        self.position = next;
                        continue;
                    }
                    self.batch_next = next;
                    self.timestamp_type = batch.timestamp_type();
                    let epoch = batch.partition_leader_epoch();
                    self.leader_epoch = (epoch >= 0).then_some(epoch);
                    self.records = Some(batch.records());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Bytes;
    use crate::protocol::ErrorCode;
    use crate::records::{build_control_batch, BatchOptions, ControlRecord, RecordBatchBuilder};
    use crate::ErrorKind;

    fn batch(base: i64, values: &[&str], pid: i64, transactional: bool) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for v in values {
            b.append(5, None, Some(v.as_bytes()), []).unwrap();
        }
        b.build(&BatchOptions {
            base_offset: base,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            transactional,
            ..BatchOptions::default()
        })
        .unwrap()
        .to_vec()
    }

    fn control(base: i64, pid: i64, commit: bool) -> Vec<u8> {
        let kind = if commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        build_control_batch(
            ControlRecord {
                kind,
                coordinator_epoch: 0,
            },
            5,
            &BatchOptions {
                base_offset: base,
                producer_id: pid,
                producer_epoch: 0,
                transactional: true,
                ..BatchOptions::default()
            },
        )
        .unwrap()
        .to_vec()
    }

    fn data(
        blob: Vec<u8>,
        fetch_offset: i64,
        next: i64,
        aborted: Vec<(i64, i64)>,
    ) -> PartitionData {
        PartitionData {
            tp: TopicPartition::new("t", 0),
            epoch: 1,
            fetch_offset,
            next_offset: next,
            records: Bytes::from(blob),
            error: ErrorCode::NONE,
            high_watermark: next,
            aborted,
        }
    }

    fn values(c: &mut Cursor) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = c.next_message() {
            let m = m.unwrap();
            out.push(format!("{}:{}", m.offset(), m.value_as::<&str>().unwrap()));
        }
        out
    }

    #[test]
    fn skips_records_before_the_position_and_control_batches() {
        let mut blob = batch(0, &["a", "b", "c"], -1, false);
        blob.extend(control(3, 9, true));
        blob.extend(batch(4, &["d"], -1, false));
        let mut c = Cursor::new(data(blob, 1, 5, vec![]), 1, ReadOptions::default(), false);
        assert_eq!(values(&mut c), ["1:b", "2:c", "4:d"]);
        assert_eq!(c.position, 5);
    }

    #[test]
    fn read_committed_drops_aborted_transactions() {
        // pid 7 aborts offsets 0-1 (marker at 2); pid 8 commits 3 (marker at 4).
        let mut blob = batch(0, &["x1", "x2"], 7, true);
        blob.extend(control(2, 7, false));
        blob.extend(batch(3, &["ok"], 8, true));
        blob.extend(control(4, 8, true));
        blob.extend(batch(5, &["plain"], -1, false));
        let aborted = vec![(7, 0)];
        let mut c = Cursor::new(
            data(blob.clone(), 0, 6, aborted.clone()),
            0,
            ReadOptions::default(),
            true,
        );
        assert_eq!(values(&mut c), ["3:ok", "5:plain"]);
        assert_eq!(c.position, 6);
        let mut c = Cursor::new(data(blob, 0, 6, aborted), 0, ReadOptions::default(), false);
        assert_eq!(values(&mut c), ["0:x1", "1:x2", "3:ok", "5:plain"]);
    }

    #[test]
    fn a_record_at_i64_max_does_not_overflow_the_position() {
        let mut blob = batch(i64::MAX - 1, &["a", "b"], -1, false);
        // A broker's lie: the header says the batch ends at i64::MAX - 1,
        // so the cursor reads it; its second record is at i64::MAX.
        blob[23..27].copy_from_slice(&0i32.to_be_bytes());
        let options = ReadOptions {
            check_crcs: false,
            ..ReadOptions::default()
        };
        let mut c = Cursor::new(
            data(blob, i64::MAX - 1, i64::MAX, vec![]),
            i64::MAX - 1,
            options,
            false,
        );
        let mut offsets = Vec::new();
        while let Some(m) = c.next_message() {
            offsets.push(m.unwrap().offset());
        }
        assert_eq!(offsets, [i64::MAX - 1, i64::MAX]);
        assert_eq!(c.position, i64::MAX);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_naming_partition_and_offset() {
        let mut blob = batch(0, &["a"], -1, false);
        let mut second = batch(1, &["b", "c"], -1, false);
        let n = second.len();
        second[n - 2] ^= 0x40;
        blob.extend(second);
        let mut c = Cursor::new(data(blob, 0, 3, vec![]), 0, ReadOptions::default(), false);
        assert_eq!(c.next_message().unwrap().unwrap().offset(), 0);
        let e = c.next_message().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt);
        assert_eq!(
            (e.topic(), e.partition(), e.offset()),
            (Some("t"), Some(0), Some(1))
        );
        assert!(c.next_message().is_none());
        assert!(c.failed());
        assert_eq!(c.position, 1, "the position stays at the corrupt batch");
    }
}
