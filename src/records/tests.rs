//! Cross-module tests: golden bytes from kafka-python, round trips, and
//! hostile input.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::bytes::Bytes;
use crate::error::ErrorKind;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../tests/fixtures/records/", $name)) as &[u8])),*]
    };
}

/// Made by kafka-python 2.0.2; see tests/fixtures/records/README.md.
const FIXTURES: &[(&str, &[u8])] = fixtures!(
    "v0_gzip.bin",
    "v0_lz4.bin",
    "v0_none.bin",
    "v0_snappy.bin",
    "v1_gzip.bin",
    "v1_gzip_log_append.bin",
    "v1_lz4.bin",
    "v1_none.bin",
    "v1_snappy.bin",
    "v2_gzip.bin",
    "v2_lz4.bin",
    "v2_none.bin",
    "v2_snappy.bin",
    "v2_txn.bin",
    "v2_zstd.bin",
);

const EXPECTED: &str = include_str!("../../tests/fixtures/records/expected.json");

fn fixture(name: &str) -> Bytes {
    let (_, data) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
    Bytes::from(data.to_vec())
}

fn expected() -> Value {
    serde_json::from_str(EXPECTED).unwrap()
}

fn hex(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    Some(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect(),
    )
}

fn read_all(data: Bytes, options: ReadOptions) -> Result<Vec<(Batch, Vec<Record>)>, crate::Error> {
    let mut out = Vec::new();
    for batch in RecordBatches::new(data, options) {
        let batch = batch?;
        let records = batch.records().collect::<Result<Vec<_>, _>>()?;
        out.push((batch, records));
    }
    Ok(out)
}

fn owned_headers(r: &Record) -> Vec<(String, Option<Vec<u8>>)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_vec())))
        .collect()
}

#[test]
fn golden_fixtures_decode_exactly() {
    let expected = expected();
    let all = expected["fixtures"].as_object().unwrap();
    assert_eq!(all.len(), FIXTURES.len());
    for (name, data) in FIXTURES {
        let want = all[*name].as_array().unwrap();
        let got = read_all(Bytes::from(data.to_vec()), ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}: batch count");
        for ((batch, records), want) in got.iter().zip(want) {
            assert_eq!(
                i64::from(batch.compression().id()),
                want["compression"].as_i64().unwrap(),
                "{name}"
            );
            let want = want["records"].as_array().unwrap();
            assert_eq!(records.len(), want.len(), "{name}: record count");
            assert_eq!(batch.record_count() as usize, records.len(), "{name}");
            assert_eq!(batch.base_offset(), records[0].offset, "{name}");
            assert_eq!(
                batch.last_offset(),
                records.last().unwrap().offset,
                "{name}"
            );
            for (r, w) in records.iter().zip(want) {
                let ctx = format!("{name} offset {}", r.offset);
                assert_eq!(r.offset, w["offset"].as_i64().unwrap(), "{ctx}");
                assert_eq!(r.timestamp, w["timestamp"].as_i64().unwrap_or(-1), "{ctx}");
                assert_eq!(r.key.as_ref().map(|k| k.to_vec()), hex(&w["key"]), "{ctx}");
                assert_eq!(
                    r.value.as_ref().map(|k| k.to_vec()),
                    hex(&w["value"]),
                    "{ctx}"
                );
                let headers: Vec<_> = w["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().to_owned(), hex(&h[1])))
                    .collect();
                assert_eq!(owned_headers(r), headers, "{ctx}");
            }
        }
    }
}

#[test]
fn golden_batch_headers() {
    let (b, _) = &read_all(fixture("v2_txn.bin"), ReadOptions::default()).unwrap()[0];
    assert_eq!(b.magic(), 2);
    assert!(b.is_transactional() && !b.is_control());
    assert_eq!(
        (b.producer_id(), b.producer_epoch(), b.base_sequence()),
        (12345, 7, 42)
    );
    assert_eq!(b.timestamp_type(), Some(TimestampType::CreateTime));
    assert_eq!(b.base_timestamp(), 1_700_000_000_000);
    assert_eq!(b.max_timestamp(), 1_700_000_000_021);
    assert_eq!(
        (b.base_offset(), b.last_offset(), b.next_offset()),
        (0, 11, 12)
    );

    let (b, _) = &read_all(fixture("v2_zstd.bin"), ReadOptions::default()).unwrap()[0];
    assert_eq!(b.compression(), Compression::Zstd);
    assert!(!b.is_transactional());
    assert_eq!(
        (b.producer_id(), b.producer_epoch(), b.base_sequence()),
        (-1, -1, -1)
    );
    assert_eq!(b.partition_leader_epoch(), 0); // kafka-python writes 0

    let got = read_all(fixture("v1_gzip_log_append.bin"), ReadOptions::default()).unwrap();
    let (b, records) = &got[0];
    assert_eq!(b.timestamp_type(), Some(TimestampType::LogAppendTime));
    assert!(records.iter().all(|r| r.timestamp == 1_700_000_099_999));

    let got = read_all(fixture("v0_none.bin"), ReadOptions::default()).unwrap();
    assert_eq!(got.len(), 8, "one batch per uncompressed legacy message");
    assert!(got
        .iter()
        .all(|(b, _)| b.magic() == 0 && b.timestamp_type().is_none()));
    assert_eq!(got[0].0.producer_id(), -1);
}

/// Our uncompressed output is byte-identical to kafka-python's
/// DefaultRecordBatchBuilder for the same records and header fields.
#[test]
fn writer_matches_kafka_python_byte_for_byte() {
    let expected = expected();
    let inputs = expected["inputs"]["v2"].as_array().unwrap();
    for (name, options) in [
        (
            "v2_none.bin",
            BatchOptions {
                partition_leader_epoch: 0,
                ..BatchOptions::default()
            },
        ),
        (
            "v2_txn.bin",
            BatchOptions {
                partition_leader_epoch: 0,
                producer_id: 12345,
                producer_epoch: 7,
                base_sequence: 42,
                transactional: true,
                ..BatchOptions::default()
            },
        ),
    ] {
        let mut b = RecordBatchBuilder::new();
        for (i, rec) in inputs.iter().enumerate() {
            let key = hex(&rec["key"]);
            let value = hex(&rec["value"]);
            let headers: Vec<(String, Option<Vec<u8>>)> = rec["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().to_owned(), hex(&h[1])))
                .collect();
            let delta = b
                .append(
                    rec["timestamp"].as_i64().unwrap(),
                    key.as_deref(),
                    value.as_deref(),
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
                )
                .unwrap();
            assert_eq!(delta as usize, i);
        }
        let ours = b.build(&options).unwrap();
        assert_eq!(ours.as_slice(), fixture(name).as_slice(), "{name}");
    }
}

/// Our compressed batches decode to the same records kafka-python wrote.
#[test]
fn every_codec_round_trips_the_golden_records() {
    let plain = read_all(fixture("v2_none.bin"), ReadOptions::default()).unwrap();
    let want = &plain[0].1;
    for codec in Compression::ALL {
        let mut b = RecordBatchBuilder::new();
        for r in want {
            let headers: Vec<(String, Option<Bytes>)> =
                r.headers.iter().map(|(k, v)| (k.to_owned(), v)).collect();
            b.append(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            )
            .unwrap();
        }
        let uncompressed = b.size_estimate();
        let built = b
            .build(&BatchOptions {
                base_offset: 0,
                compression: codec,
                ..BatchOptions::default()
            })
            .unwrap();
        if codec != Compression::None {
            assert!(
                built.len() < uncompressed / 2,
                "{codec}: {} bytes",
                built.len()
            );
        }
        let got = read_all(built, ReadOptions::default()).unwrap();
        assert_eq!(got[0].0.compression(), codec);
        assert_eq!(&got[0].1, want, "{codec}");
    }
}

#[test]
fn keys_and_values_are_views_into_the_fetched_buffer() {
    let data = fixture("v2_none.bin");
    let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    let batch = RecordBatches::new(data.clone(), ReadOptions::default())
        .next()
        .unwrap()
        .unwrap();
    for r in batch.records() {
        let r = r.unwrap();
        for b in [&r.key, &r.value]
            .into_iter()
            .flatten()
            .filter(|b| !b.is_empty())
        {
            assert!(range.contains(&(b.as_ptr() as usize)));
        }
    }
}

#[test]
fn several_batches_of_mixed_magic_in_one_blob() {
    let mut blob = Vec::new();
    for name in [
        "v0_none.bin",
        "v1_gzip.bin",
        "v2_lz4.bin",
        "v0_snappy.bin",
        "v2_txn.bin",
    ] {
        blob.extend_from_slice(&fixture(name));
    }
    let got = read_all(Bytes::from(blob), ReadOptions::default()).unwrap();
    let magics: Vec<i8> = got.iter().map(|(b, _)| b.magic()).collect();
    assert_eq!(magics, [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 2]);
    let records: usize = got.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(records, 8 + 8 + 12 + 8 + 12);
}

#[test]
fn partial_trailing_batch_ends_without_error() {
    let first = fixture("v2_gzip.bin");
    let second = fixture("v2_none.bin");
    for cut in 0..second.len() {
        let mut blob = first.to_vec();
        blob.extend_from_slice(&second[..cut]);
        let mut it = RecordBatches::new(Bytes::from(blob), ReadOptions::default());
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().is_none(), "cut at {cut}");
        assert_eq!(it.position(), first.len());
    }
}

/// Every prefix of every fixture, with its length field left alone (a
/// partial batch) or patched to match (a batch whose body is cut short):
/// errors, never panics.
#[test]
fn every_truncation_is_handled() {
    for (name, data) in FIXTURES {
        for cut in 0..data.len() {
            let prefix = Bytes::from(data[..cut].to_vec());
            let _ = read_all(prefix, ReadOptions::default());
            if cut >= 12 {
                let mut patched = data[..cut].to_vec();
                patched[8..12].copy_from_slice(&((cut - 12) as i32).to_be_bytes());
                for check_crcs in [true, false] {
                    let options = ReadOptions {
                        check_crcs,
                        ..ReadOptions::default()
                    };
                    let r = read_all(Bytes::from(patched.clone()), options);
                    if check_crcs && data[16] == 2 && cut < data.len() && cut >= 61 {
                        let e = r.err().unwrap_or_else(|| panic!("{name} cut {cut}"));
                        assert_eq!(e.kind(), ErrorKind::Corrupt, "{name} cut {cut}");
                    }
                }
            }
        }
    }
}

#[test]
fn crc_mismatch_is_corrupt_with_the_base_offset() {
    for name in ["v2_none.bin", "v2_zstd.bin", "v1_gzip.bin", "v0_none.bin"] {
        let mut data = fixture(name).to_vec();
        data[0..8].copy_from_slice(&77i64.to_be_bytes()); // not covered by the CRC
        let first_end = 12 + i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
        data[first_end - 1] ^= 0x01;
        let e = read_all(Bytes::from(data.clone()), ReadOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{name}: {e}");
        assert!(e.to_string().contains("77"), "{name}: {e}");
        // Without CRC checks the flipped byte reads through or fails as
        // malformed, never as corrupt.
        let options = ReadOptions {
            check_crcs: false,
            ..ReadOptions::default()
        };
        if let Err(e) = read_all(Bytes::from(data), options) {
            assert_ne!(e.kind(), ErrorKind::Corrupt, "{name}");
        }
    }
    // An inner legacy message with a bad CRC is caught too.
    let mut b = RecordBatchBuilder::new();
    b.append(0, None, Some("x".as_bytes()), []).unwrap();
    let ok = b.build(&BatchOptions::default()).unwrap();
    let mut bad = ok.to_vec();
    bad[CRC_BYTE] ^= 0xff;
    let e = read_all(Bytes::from(bad), ReadOptions::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
}

const CRC_BYTE: usize = 18;

#[test]
fn errors_end_the_iteration() {
    let mut blob = fixture("v2_none.bin").to_vec();
    blob[30] ^= 0xff;
    blob.extend_from_slice(&fixture("v2_none.bin"));
    let mut it = RecordBatches::new(Bytes::from(blob), ReadOptions::default());
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());

    let mut bad_len = vec![0u8; 12];
    bad_len[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    let e = RecordBatches::new(Bytes::from(bad_len), ReadOptions::default())
        .next()
        .unwrap();
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Protocol);

    let mut magic3 = fixture("v2_none.bin").to_vec();
    magic3[16] = 3;
    let e = RecordBatches::new(Bytes::from(magic3), ReadOptions::default())
        .next()
        .unwrap();
    assert!(e.unwrap_err().to_string().contains("magic 3"));
}

#[test]
fn malformed_records_are_protocol_errors() {
    // A record length claiming more than the batch holds, with a valid CRC.
    let mut b = RecordBatchBuilder::new();
    b.append(0, Some("k".as_bytes()), Some("v".as_bytes()), [])
        .unwrap();
    let mut data = b
        .build(&BatchOptions {
            base_offset: 9,
            ..BatchOptions::default()
        })
        .unwrap()
        .to_vec();
    data[61] = 0x7e; // record length 63
    recrc(&mut data);
    let batch = RecordBatches::new(Bytes::from(data), ReadOptions::default())
        .next()
        .unwrap()
        .unwrap();
    let mut records = batch.records();
    let e = records.next().unwrap().unwrap_err();
    assert_eq!((e.kind(), e.offset()), (ErrorKind::Protocol, Some(9)));
    assert!(records.next().is_none());

    // Bytes left over after the declared records.
    let mut b = RecordBatchBuilder::new();
    b.append(0, None, None, []).unwrap();
    b.append(0, None, None, []).unwrap();
    let mut data = b.build(&BatchOptions::default()).unwrap().to_vec();
    data[60] = 1; // record count 2 -> 1
    recrc(&mut data);
    let batch = RecordBatches::new(Bytes::from(data), ReadOptions::default())
        .next()
        .unwrap()
        .unwrap();
    let results: Vec<_> = batch.records().collect();
    assert!(results[0].is_ok());
    assert!(results[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("after the last record"));

    // A header key that is not UTF-8.
    let mut b = RecordBatchBuilder::new();
    b.append(0, None, None, [("ab", None)]).unwrap();
    let mut data = b.build(&BatchOptions::default()).unwrap().to_vec();
    let at = data.windows(2).position(|w| w == b"ab").unwrap();
    data[at] = 0xff;
    recrc(&mut data);
    let batch = RecordBatches::new(Bytes::from(data), ReadOptions::default())
        .next()
        .unwrap()
        .unwrap();
    assert!(batch.records().next().unwrap().is_err());
}

fn recrc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn empty_batch_left_by_compaction_reads_as_no_records() {
    let mut b = RecordBatchBuilder::new();
    b.append(5, None, None, []).unwrap();
    let full = b
        .build(&BatchOptions {
            base_offset: 100,
            ..BatchOptions::default()
        })
        .unwrap();
    let mut data = full[..61].to_vec();
    data[8..12].copy_from_slice(&49i32.to_be_bytes());
    data[57..61].copy_from_slice(&0i32.to_be_bytes());
    recrc(&mut data);
    let got = read_all(Bytes::from(data), ReadOptions::default()).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0.record_count(), got[0].1.len()), (0, 0));
    assert_eq!(got[0].0.next_offset(), 101);
}

#[test]
fn log_append_time_overrides_record_timestamps() {
    let mut b = RecordBatchBuilder::new();
    b.append(10, None, None, []).unwrap();
    b.append(5, None, None, []).unwrap();
    let t = 1_800_000_000_000;
    let data = b
        .build(&BatchOptions {
            log_append_time: Some(t),
            ..BatchOptions::default()
        })
        .unwrap();
    let (batch, records) = read_all(data, ReadOptions::default()).unwrap().remove(0);
    assert_eq!(batch.timestamp_type(), Some(TimestampType::LogAppendTime));
    assert_eq!((batch.base_timestamp(), batch.max_timestamp()), (10, t));
    assert!(records.iter().all(|r| r.timestamp == t));
}

#[test]
fn create_time_deltas_may_be_negative_or_huge() {
    let stamps = [1_700_000_000_000, 0, -1, 1_700_000_000_001, i64::MAX / 2];
    let mut b = RecordBatchBuilder::new();
    for t in stamps {
        b.append(t, None, None, []).unwrap();
    }
    assert_eq!(
        (b.base_timestamp(), b.max_timestamp()),
        (stamps[0], i64::MAX / 2)
    );
    let (batch, records) = read_all(
        b.build(&BatchOptions::default()).unwrap(),
        ReadOptions::default(),
    )
    .unwrap()
    .remove(0);
    assert_eq!(batch.max_timestamp(), i64::MAX / 2);
    let got: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
    assert_eq!(got, stamps);
}

#[test]
fn control_batches_round_trip() {
    for kind in [ControlType::Abort, ControlType::Commit] {
        let marker = ControlRecord {
            kind,
            coordinator_epoch: 42,
        };
        let opts = BatchOptions {
            base_offset: 7,
            producer_id: 99,
            producer_epoch: 3,
            compression: Compression::Gzip, // ignored: markers are never compressed
            ..BatchOptions::default()
        };
        let data = build_control_batch(marker, 1234, &opts).unwrap();
        let (batch, records) = read_all(data, ReadOptions::default()).unwrap().remove(0);
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(batch.compression(), Compression::None);
        assert_eq!((batch.producer_id(), batch.producer_epoch()), (99, 3));
        assert_eq!(batch.control_record().unwrap(), Some(marker));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].offset, 7);
    }
    let unknown = ControlRecord {
        kind: ControlType::Unknown(5),
        coordinator_epoch: 0,
    };
    assert!(build_control_batch(unknown, 0, &BatchOptions::default()).is_err());

    // A data batch has no control record.
    let (batch, _) = read_all(fixture("v2_txn.bin"), ReadOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(batch.control_record().unwrap(), None);
}

#[test]
fn set_producer_state_rewrites_and_recomputes_the_crc() {
    let mut b = RecordBatchBuilder::new();
    b.append(1, Some("k".as_bytes()), Some("v".as_bytes()), [])
        .unwrap();
    let built = b
        .build(&BatchOptions {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
            compression: Compression::Snappy,
            transactional: true,
            ..BatchOptions::default()
        })
        .unwrap();
    let keep = built.clone(); // a second view forces a copy
    let rewritten = set_producer_state(built, 1, 1, 500).unwrap();
    let (batch, records) = read_all(rewritten, ReadOptions::default())
        .unwrap()
        .remove(0);
    assert_eq!(
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence()
        ),
        (1, 1, 500)
    );
    assert!(batch.is_transactional());
    assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
    assert_eq!(
        read_all(keep, ReadOptions::default()).unwrap()[0]
            .0
            .producer_epoch(),
        0
    );

    for bad in [
        fixture("v1_gzip.bin"),
        fixture("v2_none.bin").slice(..100),
        Bytes::new(),
    ] {
        let e = set_producer_state(bad, 1, 1, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}

#[test]
fn empty_builder_cannot_build() {
    let e = RecordBatchBuilder::new()
        .build(&BatchOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn decompression_bombs_are_capped_in_the_reader() {
    let zeros = vec![0u8; 4 << 20];
    let options = ReadOptions {
        max_decompressed_bytes: 1 << 20,
        ..ReadOptions::default()
    };
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = RecordBatchBuilder::new();
        b.append(0, None, Some(&zeros), []).unwrap();
        let data = b
            .build(&BatchOptions {
                base_offset: 3,
                compression: codec,
                ..BatchOptions::default()
            })
            .unwrap();
        assert!(data.len() < 300_000, "{codec}");
        let batch = RecordBatches::new(data, options).next().unwrap().unwrap();
        let e = batch.records().next().unwrap().unwrap_err();
        assert_eq!(
            (e.kind(), e.offset()),
            (ErrorKind::Compression, Some(3)),
            "{codec}: {e}"
        );
    }
    // A legacy wrapper too: the kafka-python gzip set with a tiny cap.
    let options = ReadOptions {
        max_decompressed_bytes: 100,
        ..ReadOptions::default()
    };
    let e = RecordBatches::new(fixture("v1_gzip.bin"), options)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Compression);
}

#[test]
fn headers_view() {
    let data = fixture("v2_none.bin");
    let batch = RecordBatches::new(data, ReadOptions::default())
        .next()
        .unwrap()
        .unwrap();
    let first = batch.records().next().unwrap().unwrap();
    let h = &first.headers;
    assert_eq!(h.len(), 3);
    assert_eq!(h.last("h1"), Some(Some(Bytes::from("v1"))));
    assert_eq!(h.last("empty"), Some(Some(Bytes::new())));
    assert_eq!(h.last("null"), Some(None));
    assert_eq!(h.last("nope"), None);
    assert_eq!(
        format!("{h:?}"),
        r#"[("h1", Some(b"v1")), ("empty", Some(b"")), ("null", None)]"#
    );
    let n = (&first.headers).into_iter().count();
    assert_eq!(n, 3);
}

fn header_strategy() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
    proptest::collection::vec(
        (
            ".{0,8}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
        ),
        0..4,
    )
}

type TestRecord = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

fn record_strategy() -> impl Strategy<Value = TestRecord> {
    (
        any::<i64>(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        header_strategy(),
    )
}

fn append(b: &mut RecordBatchBuilder, r: &TestRecord) -> i32 {
    b.append(
        r.0,
        r.1.as_deref(),
        r.2.as_deref(),
        r.3.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_records_round_trip(
        records in proptest::collection::vec(record_strategy(), 1..30),
        codec in 0u8..5,
        base_offset in 0i64..1 << 40,
        transactional in any::<bool>(),
    ) {
        let codec = Compression::from_id(codec).unwrap();
        let mut b = RecordBatchBuilder::new();
        for r in &records {
            let before = b.size_estimate();
            let predicted = b.record_size(
                r.0,
                r.1.as_ref().map(Vec::len),
                r.2.as_ref().map(Vec::len),
                r.3.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            );
            append(&mut b, r);
            prop_assert_eq!(b.size_estimate() - before, predicted);
        }
        let opts = BatchOptions { base_offset, compression: codec, transactional, ..BatchOptions::default() };
        let uncompressed = b.size_estimate();
        let data = b.build(&opts).unwrap();
        if codec == Compression::None {
            prop_assert_eq!(data.len(), uncompressed);
        }
        let got = read_all(data, ReadOptions::default()).unwrap();
        prop_assert_eq!(got.len(), 1);
        let (batch, read) = &got[0];
        prop_assert_eq!(batch.is_transactional(), transactional);
        prop_assert_eq!(batch.last_offset(), base_offset + records.len() as i64 - 1);
        prop_assert_eq!(batch.max_timestamp(), records.iter().map(|r| r.0).max().unwrap());
        for (i, (r, w)) in read.iter().zip(&records).enumerate() {
            prop_assert_eq!(r.offset, base_offset + i as i64);
            prop_assert_eq!(r.timestamp, w.0);
            prop_assert_eq!(r.key.as_ref().map(|k| k.to_vec()), w.1.clone());
            prop_assert_eq!(r.value.as_ref().map(|k| k.to_vec()), w.2.clone());
            prop_assert_eq!(owned_headers(r), w.3.clone());
        }
    }

    #[test]
    fn would_fit_is_exact(
        records in proptest::collection::vec(record_strategy(), 1..40),
        limit in 61usize..4000,
    ) {
        let mut b = RecordBatchBuilder::new();
        for r in &records {
            let fits = b.would_fit(
                limit,
                r.0,
                r.1.as_ref().map(Vec::len),
                r.2.as_ref().map(Vec::len),
                r.3.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
            );
            if !fits {
                prop_assert!(!b.is_empty());
                let mut probe = b.clone();
                append(&mut probe, r);
                prop_assert!(probe.size_estimate() > limit);
                break;
            }
            let first = b.is_empty();
            append(&mut b, r);
            prop_assert!(first || b.size_estimate() <= limit);
        }
        let size = b.size_estimate();
        prop_assert_eq!(b.build(&BatchOptions::default()).unwrap().len(), size);
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_all(Bytes::from(data), ReadOptions::default());
    }

    /// Random bodies behind a plausible header, with a valid CRC so that
    /// the record decoder (or decompressor) sees them.
    #[test]
    fn random_bodies_behind_valid_headers_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        magic in 0u8..3,
        attributes in any::<u8>(),
        count in -2i32..50,
    ) {
        let mut data = vec![0u8; 61];
        data.extend_from_slice(&body);
        let len = (data.len() - 12) as i32;
        data[8..12].copy_from_slice(&len.to_be_bytes());
        data[16] = magic;
        if magic == 2 {
            data[22] = attributes;
            data[57..61].copy_from_slice(&count.to_be_bytes());
            recrc(&mut data);
        } else {
            data[17] = magic;
            data[18] = attributes;
        }
        for check_crcs in [true, false] {
            let options = ReadOptions { check_crcs, max_decompressed_bytes: 1 << 16 };
            if let Ok(all) = read_all(Bytes::from(data.clone()), options) {
                for (b, rs) in all {
                    let _ = b.control_record();
                    for r in rs {
                        let _ = r.headers.iter().count();
                    }
                }
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut data = FIXTURES[which].1.to_vec();
        for (at, x) in flips {
            let n = data.len();
            data[at % n] ^= x | 1;
        }
        if data[16] == 2 {
            recrc(&mut data);
        }
        let options = ReadOptions { check_crcs: false, max_decompressed_bytes: 1 << 20 };
        let _ = read_all(Bytes::from(data), options);
    }
}

/// The producer and consumer move these across threads.
#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RecordBatchBuilder>();
    check::<RecordBatches>();
    check::<Batch>();
    check::<Records>();
    check::<Record>();
    check::<Headers>();
    check::<HeaderIter<'_>>();
    check::<BatchOptions>();
    check::<ReadOptions>();
}
