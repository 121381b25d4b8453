//! The producer against a fake broker ([`FakeCluster`]) whose topic takes
//! at most a few records per batch (a `max.message.bytes` below the
//! producer's batch): Tansu does not enforce that limit.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use kafka_blocking::protocol::messages::*;
use kafka_blocking::protocol::{ApiKey, ErrorCode, Uuid};
use kafka_blocking::records::{ReadOptions, RecordBatches};

use crate::faults::{fake_api_versions, fake_metadata, FakeCluster, FakeReq};

const TOPIC: &str = "small-batches";
/// The most records the fake takes in one batch.
const MAX_RECORDS: usize = 8;

/// The fake partition: the values it stored, and the idempotence state.
#[derive(Default)]
struct Log {
    values: Vec<Vec<u8>>,
    /// (producer epoch, next expected sequence) once an idempotent batch
    /// was stored.
    sequence: Option<(i16, i32)>,
    refused: usize,
}

/// Stores `batch` bytes (one record batch) in `log`, as a broker with a
/// small max.message.bytes would: the error code and base offset.
fn append(log: &mut Log, data: kafka_blocking::Bytes) -> (i16, i64) {
    let mut batches = RecordBatches::new(data, ReadOptions::default());
    let Some(Ok(batch)) = batches.next() else {
        return (ErrorCode::CORRUPT_MESSAGE.0, -1);
    };
    let records: Vec<_> = batch.records().filter_map(|r| r.ok()).collect();
    if records.len() > MAX_RECORDS {
        log.refused += 1;
        return (ErrorCode::MESSAGE_TOO_LARGE.0, -1);
    }
    if batch.producer_id() >= 0 {
        let epoch = batch.producer_epoch();
        let expected = match log.sequence {
            Some((e, next)) if e == epoch => next,
            Some((e, _)) if e > epoch => return (ErrorCode::INVALID_PRODUCER_EPOCH.0, -1),
            _ => 0, // a new epoch starts at 0
        };
        if batch.base_sequence() != expected {
            return (ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER.0, -1);
        }
        log.sequence = Some((epoch, expected + records.len() as i32));
    }
    let base = log.values.len() as i64;
    for r in records {
        log.values
            .push(r.value.map(|v| v.to_vec()).unwrap_or_default());
    }
    (0, base)
}

fn small_batch_broker() -> (FakeCluster, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    let epochs = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&log);
    let cluster = FakeCluster::start(1, move |req: &FakeReq| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(
            req,
            &[
                (ApiKey::API_VERSIONS, 3),
                (ApiKey::METADATA, 12),
                (ApiKey::PRODUCE, 9),
                (ApiKey::INIT_PRODUCER_ID, 4),
            ],
        ),
        ApiKey::METADATA => fake_metadata(req, &[(TOPIC, Uuid([5; 16]), 1, 1)]),
        ApiKey::INIT_PRODUCER_ID => {
            let epoch = epochs.fetch_add(1, SeqCst) as i16;
            req.answer::<InitProducerIdRequest>(|_| InitProducerIdResponse {
                producer_id: 7,
                producer_epoch: epoch,
                ..Default::default()
            })
        }
        ApiKey::PRODUCE => req.answer::<ProduceRequest>(|r| {
            let mut log = l.lock().unwrap();
            ProduceResponse {
                responses: r
                    .topic_data
                    .iter()
                    .map(|t| TopicProduceResponse {
                        name: t.name.clone(),
                        partition_responses: t
                            .partition_data
                            .iter()
                            .map(|p| {
                                let (error_code, base_offset) = match &p.records {
                                    Some(data) => append(&mut log, data.clone()),
                                    None => (ErrorCode::CORRUPT_MESSAGE.0, -1),
                                };
                                PartitionProduceResponse {
                                    index: p.index,
                                    error_code,
                                    base_offset,
                                    log_append_time_ms: -1,
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }
        }),
        _ => None,
    });
    (cluster, log)
}

/// Sends 100 records that the producer puts in one batch; the broker
/// refuses batches over [`MAX_RECORDS`] records.
fn batches_refused_as_too_large_are_split(idempotent: bool) {
    let (cluster, log) = small_batch_broker();
    let producer = Producer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .enable_idempotence(idempotent)
        .acks(if idempotent { "all" } else { "1" })
        .linger_ms(200)
        .compression_type("lz4")
        .delivery_timeout_ms(20_000)
        .request_timeout_ms(5_000)
        .build()
        .expect("producer");
    let sent: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
    let futures: Vec<_> = sent
        .iter()
        .enumerate()
        .map(|(i, v)| {
            producer
                .send(
                    Record::new(TOPIC)
                        .partition(0)
                        .key(format!("k{i}"))
                        .value(v.clone())
                        .header("n", i.to_string()),
                )
                .expect("send")
        })
        .collect();
    let mut offsets = Vec::new();
    for f in &futures {
        let md = f.get(Duration::from_secs(30)).expect("delivered");
        assert_eq!(md.partition(), 0);
        offsets.push(md.offset());
    }
    producer.close(Duration::from_secs(5)).expect("close");
    let log = log.lock().unwrap();
    assert!(log.refused >= 1, "the batch was never refused");
    // Every record stored once, in send order, and each future names the
    // offset its record got.
    assert_eq!(log.values, sent);
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
}

#[test]
fn too_large_batches_are_split_and_keep_order() {
    batches_refused_as_too_large_are_split(false);
}

#[test]
fn too_large_idempotent_batches_are_split_and_keep_order() {
    batches_refused_as_too_large_are_split(true);
}
