//! The produce request, encoded by hand as frame parts so that record
//! batches go to the socket without being copied into the request buffer.
//!
//! The generated `ProduceRequest` is the reference: a test checks that the
//! parts concatenated are byte-identical to its encoding in every version
//! this producer uses (3..=11).

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::net::FramePart;
use crate::protocol::messages::ProduceRequest;
use crate::protocol::{Encoder, Message, Request, RequestHeader};

/// One partition's batch in a produce request.
pub(crate) struct PartitionBatch<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) records: &'a Bytes,
}

/// Encodes a produce request frame (size prefix, header v1/v2, body) with
/// the record batches as shared parts. `batches` must be grouped by topic
/// (consecutive entries of one topic form its entry in the request).
/// `transactional_id` is the transactional producer's id: Kafka refuses
/// transactional batches in a request without it
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and with transaction protocol
/// v2 it is what the broker adds the partitions to.
pub(crate) fn produce_frame(
    version: i16,
    client_id: &str,
    transactional_id: Option<&str>,
    acks: i16,
    timeout_ms: i32,
    batches: &[PartitionBatch<'_>],
) -> Result<(Vec<u8>, Vec<FramePart>)> {
    if !(3..=ProduceRequest::MAX_VERSION).contains(&version) {
        return Err(Error::protocol(format!(
            "this producer encodes Produce v3..=v{}, not v{version}",
            ProduceRequest::MAX_VERSION
        )));
    }
    let flexible = ProduceRequest::is_flexible(version);
    let mut head = Vec::with_capacity(128 + 32 * batches.len());
    head.extend_from_slice(&[0; 4]);
    RequestHeader {
        api_key: ProduceRequest::API_KEY.0,
        api_version: version,
        correlation_id: 0,
        client_id: Some(client_id.to_owned()),
        unknown_tagged_fields: Vec::new(),
    }
    .encode(&mut head, ProduceRequest::request_header_version(version))?;

    let mut parts: Vec<FramePart> = Vec::with_capacity(2 * batches.len() + 1);
    let mut cur = head;
    let mut total = 0usize;
    let flush =
        |cur: &mut Vec<u8>, parts: &mut Vec<FramePart>, total: &mut usize, next: Vec<u8>| {
            *total += cur.len();
            let done = std::mem::replace(cur, next);
            parts.push(FramePart::Owned(done));
        };

    // transactional_id, acks, timeout_ms
    if flexible {
        cur.put_compact_nullable_string(transactional_id)?;
    } else {
        cur.put_nullable_string(transactional_id)?;
    }
    cur.put_i16(acks);
    cur.put_i32(timeout_ms);

    // Topics: runs of consecutive batches with the same topic.
    let mut runs: Vec<&[PartitionBatch<'_>]> = Vec::new();
    let mut start = 0;
    for i in 1..=batches.len() {
        if i == batches.len() || batches[i].topic != batches[start].topic {
            runs.push(&batches[start..i]);
            start = i;
        }
    }
    put_len(&mut cur, runs.len(), flexible)?;
    for run in runs {
        let topic = run.first().map_or("", |b| b.topic);
        if flexible {
            cur.put_compact_string(topic)?;
        } else {
            cur.put_string(topic)?;
        }
        put_len(&mut cur, run.len(), flexible)?;
        for b in run {
            cur.put_i32(b.partition);
            let n = b.records.len();
            if flexible {
                let n = u32::try_from(n)
                    .ok()
                    .filter(|n| *n < u32::MAX)
                    .ok_or_else(|| Error::protocol("record batch too large"))?;
                cur.put_uvarint(n + 1);
            } else {
                cur.put_i32(
                    i32::try_from(n).map_err(|_| Error::protocol("record batch too large"))?,
                );
            }
            flush(&mut cur, &mut parts, &mut total, Vec::with_capacity(64));
            total += n;
            parts.push(FramePart::Shared(b.records.clone()));
            if flexible {
                cur.put_uvarint(0); // partition tagged fields
            }
        }
        if flexible {
            cur.put_uvarint(0); // topic tagged fields
        }
    }
    if flexible {
        cur.put_uvarint(0); // request tagged fields
    }
    total += cur.len();
    parts.push(FramePart::Owned(cur));

    let len = i32::try_from(total - 4).map_err(|_| Error::protocol("request larger than 2 GiB"))?;
    let mut parts = parts.into_iter();
    let Some(FramePart::Owned(mut first)) = parts.next() else {
        return Err(Error::protocol("produce frame without a header"));
    };
    first[..4].copy_from_slice(&len.to_be_bytes());
    Ok((first, parts.collect()))
}

fn put_len(out: &mut Vec<u8>, n: usize, flexible: bool) -> Result<()> {
    if flexible {
        out.put_compact_array_len(Some(n))
    } else {
        out.put_array_len(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_request;
    use crate::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    #[test]
    fn parts_match_the_generated_encoding_in_every_version() {
        let b1 = Bytes::from(vec![1u8; 70]);
        let b2 = Bytes::from(vec![2u8; 300]);
        let b3 = Bytes::from(vec![3u8; 5]);
        let batches = [
            PartitionBatch {
                topic: "alpha",
                partition: 0,
                records: &b1,
            },
            PartitionBatch {
                topic: "alpha",
                partition: 3,
                records: &b2,
            },
            PartitionBatch {
                topic: "beta",
                partition: 1,
                records: &b3,
            },
        ];
        let request = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topic_data: vec![
                TopicProduceData {
                    name: "alpha".into(),
                    partition_data: vec![
                        PartitionProduceData {
                            index: 0,
                            records: Some(b1.clone()),
                            ..Default::default()
                        },
                        PartitionProduceData {
                            index: 3,
                            records: Some(b2.clone()),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
                TopicProduceData {
                    name: "beta".into(),
                    partition_data: vec![PartitionProduceData {
                        index: 1,
                        records: Some(b3.clone()),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let transactional = ProduceRequest {
            transactional_id: Some("txn-7".into()),
            ..request.clone()
        };
        for version in 3..=ProduceRequest::MAX_VERSION {
            for (request, id) in [(&request, None), (&transactional, Some("txn-7"))] {
                let mut want = Vec::new();
                encode_request(&mut want, request, version, 0, Some("me")).unwrap();
                let (first, rest) = produce_frame(version, "me", id, -1, 30_000, &batches).unwrap();
                let mut got = first;
                for p in &rest {
                    got.extend_from_slice(p.as_slice());
                }
                assert_eq!(got, want, "Produce v{version}, transactional id {id:?}");
            }
        }
        assert!(produce_frame(2, "me", None, 1, 1, &batches).is_err());
    }
}
