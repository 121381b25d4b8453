//! The connection loop of a chaos node: read a request, decide (forward,
//! refuse as the wrong node, inject an error, cut), answer, repeat.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::protocol::messages::api_versions_response::ApiVersion;
use crate::protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use crate::protocol::messages::{
    ApiVersionsRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, SyncGroupRequest,
};
use crate::protocol::{
    read_frame, ApiKey, Decoder, ErrorCode, Message, Request, RequestHeader, ResponseHeader, Uuid,
    DEFAULT_MAX_FRAME_BYTES,
};
use crate::Bytes;

use super::answers::{
    fetch_error, group_error, list_offsets_error, produce_error, rewrite_cluster,
    rewrite_coordinator, rewrite_metadata,
};
use super::{coordinator_of, place, Inner};

pub(super) fn spawn_accept(inner: &Arc<Inner>, node: i32, listener: TcpListener) -> JoinHandle<()> {
    let inner = Arc::clone(inner);
    std::thread::Builder::new()
        .name(format!("chaos-accept-{node}"))
        .spawn(move || {
            for client in listener.incoming() {
                let alive = {
                    let st = inner.state.lock();
                    st.nodes.iter().any(|n| n.id == node && n.alive)
                };
                if !alive || inner.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) =
                    TcpStream::connect_timeout(&inner.upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    continue;
                };
                let conn_id = {
                    let mut st = inner.state.lock();
                    st.next_conn += 1;
                    let id = st.next_conn;
                    match st.nodes.iter_mut().find(|n| n.id == node) {
                        Some(n) => {
                            n.conns.insert(id, (c2, u2));
                        }
                        None => continue,
                    }
                    id
                };
                inner.stats.connections.fetch_add(1, Ordering::Relaxed);
                let inner2 = Arc::clone(&inner);
                let spawned = std::thread::Builder::new()
                    .name(format!("chaos-conn-{node}"))
                    .spawn(move || serve(&inner2, node, conn_id, client, upstream));
                if spawned.is_err() {
                    let mut st = inner.state.lock();
                    if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
                        if let Some((c, u)) = n.conns.remove(&conn_id) {
                            let _ = c.shutdown(Shutdown::Both);
                            let _ = u.shutdown(Shutdown::Both);
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|_| std::thread::spawn(|| {}))
}

enum Outcome {
    Answer(Vec<u8>),
    NoAnswer,
    Close,
}

fn serve(inner: &Inner, node: i32, conn_id: u64, mut client: TcpStream, mut upstream: TcpStream) {
    while let Ok(frame) = read_frame(&mut client, DEFAULT_MAX_FRAME_BYTES) {
        let (alive, silent, delay) = {
            let st = inner.state.lock();
            st.nodes
                .iter()
                .find(|n| n.id == node)
                .map_or((false, false, 0), |n| (n.alive, n.silent, n.delay_ms))
        };
        if !alive {
            break;
        }
        if silent {
            continue;
        }
        let outcome =
            handle(inner, node, Bytes::from(frame), &mut upstream).unwrap_or(Outcome::Close);
        match outcome {
            Outcome::Answer(body) => {
                if delay > 0 {
                    std::thread::sleep(Duration::from_millis(delay));
                }
                let mut out = Vec::with_capacity(body.len() + 4);
                out.extend_from_slice(&(body.len() as i32).to_be_bytes());
                out.extend_from_slice(&body);
                if client.write_all(&out).is_err() {
                    break;
                }
            }
            Outcome::NoAnswer => {}
            Outcome::Close => break,
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let mut st = inner.state.lock();
    if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
        n.conns.remove(&conn_id);
    }
}

fn roll(inner: &Inner) -> u32 {
    // xorshift64: a cheap, good-enough source for choosing cuts.
    let mut x = inner.rng.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    inner.rng.store(x, Ordering::Relaxed);
    (x % 2000) as u32
}

fn forward(inner: &Inner, frame: &[u8], upstream: &mut TcpStream) -> Result<Bytes> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    upstream
        .write_all(&out)
        .map_err(|e| Error::io("forwarding to the real broker", e))?;
    inner.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from(read_frame(upstream, DEFAULT_MAX_FRAME_BYTES)?))
}

pub(super) fn decode_request<R: Request>(
    frame: &Bytes,
    version: i16,
) -> Result<(RequestHeader, R)> {
    let mut d = Decoder::new(frame);
    let h = RequestHeader::decode(&mut d, R::request_header_version(version))?;
    let r = R::decode(&mut d, version)?;
    Ok((h, r))
}

pub(super) fn decode_response<R: Request>(
    answer: &Bytes,
    version: i16,
) -> Result<(ResponseHeader, R::Response)> {
    let mut d = Decoder::new(answer);
    let h = ResponseHeader::decode(&mut d, R::response_header_version(version))?;
    let r = <R::Response as Message>::decode(&mut d, version)?;
    Ok((h, r))
}

pub(super) fn encode_response<R: Request>(
    header: &ResponseHeader,
    body: &R::Response,
    version: i16,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    header.encode(&mut out, R::response_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out)
}

fn encode_request_frame<R: Request>(
    header: &RequestHeader,
    body: &R,
    version: i16,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    header.encode(&mut out, R::request_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out)
}

fn handle(inner: &Inner, node: i32, frame: Bytes, upstream: &mut TcpStream) -> Result<Outcome> {
    if frame.len() < 8 {
        return Ok(Outcome::Close);
    }
    let s = frame.as_slice();
    let api = ApiKey(i16::from_be_bytes([s[0], s[1]]));
    let version = i16::from_be_bytes([s[2], s[3]]);
    let correlation_id = i32::from_be_bytes([s[4], s[5], s[6], s[7]]);
    let header = ResponseHeader {
        correlation_id,
        ..ResponseHeader::default()
    };

    let cut = inner.cut_per_mille.load(Ordering::Relaxed);
    let mut cut_after = false;
    if cut > 0 {
        let r = roll(inner);
        if r < cut {
            inner.stats.cut.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Close);
        } else if r < 2 * cut {
            cut_after = true;
        }
    }

    let injected = {
        let mut st = inner.state.lock();
        match st.injections.get_mut(&api.0) {
            Some((code, left)) if *left > 0 => {
                *left -= 1;
                Some(*code)
            }
            _ => None,
        }
    };

    let answer = match api {
        ApiKey::METADATA => {
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_metadata(inner, node, &raw, version).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::FIND_COORDINATOR => {
            let keys = match decode_request::<FindCoordinatorRequest>(&frame, version) {
                Ok((_, r)) if version >= 4 => r.coordinator_keys,
                Ok((_, r)) => vec![r.key],
                Err(_) => Vec::new(),
            };
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_coordinator(inner, &raw, version, &keys).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::DESCRIBE_CLUSTER => {
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_cluster(inner, &raw, version).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::PRODUCE => match decode_request::<ProduceRequest>(&frame, version) {
            Ok((_, req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    req.topic_data.iter().any(|t| {
                        t.partition_data
                            .iter()
                            .any(|p| place(&mut st, &t.name, p.index).leader != node)
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => encode_response::<ProduceRequest>(
                        &header,
                        &produce_error(&req, code),
                        version,
                    )?,
                    None if req.acks == 0 => {
                        forward_no_answer(inner, frame.as_slice(), upstream)?;
                        return Ok(Outcome::NoAnswer);
                    }
                    None => forward(inner, frame.as_slice(), upstream)?.to_vec(),
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::FETCH => match decode_request::<FetchRequest>(&frame, version) {
            Ok((h, mut req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    let st = &mut *st;
                    req.topics.iter().any(|t| {
                        let name = topic_name(&st.topic_names, &t.topic, t.topic_id);
                        name.is_some_and(|name| {
                            t.partitions
                                .iter()
                                .any(|p| place(st, &name, p.partition).leader != node)
                        })
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => {
                        encode_response::<FetchRequest>(&header, &fetch_error(&req, code), version)?
                    }
                    None => {
                        let epochs = req.topics.iter_mut().flat_map(|t| t.partitions.iter_mut());
                        let cleared = clear_epochs(epochs.map(|p| &mut p.current_leader_epoch));
                        forward_maybe_changed(
                            inner,
                            &frame,
                            cleared.then_some((&h, &req)),
                            version,
                            upstream,
                        )?
                    }
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::API_VERSIONS => {
            let raw = forward(inner, frame.as_slice(), upstream)?;
            offer_epoch_ends(inner, raw, version)
        }
        ApiKey::OFFSET_FOR_LEADER_EPOCH if inner.state.lock().emulate_epoch_ends => {
            match decode_request::<OffsetForLeaderEpochRequest>(&frame, version) {
                Ok((_, req)) => {
                    let answer = epoch_ends(inner, &req);
                    encode_response::<OffsetForLeaderEpochRequest>(&header, &answer, version)?
                }
                Err(_) => return Ok(Outcome::Close),
            }
        }
        ApiKey::OFFSET_FOR_LEADER_EPOCH => {
            match decode_request::<OffsetForLeaderEpochRequest>(&frame, version) {
                Ok((h, mut req)) => {
                    let asked: Vec<(String, i32, i32)> = req
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (t.topic.clone(), p.partition, p.leader_epoch))
                        })
                        .collect();
                    let epochs = req.topics.iter_mut().flat_map(|t| t.partitions.iter_mut());
                    let cleared = clear_epochs(epochs.map(|p| &mut p.current_leader_epoch));
                    let changed = cleared.then_some((&h, &req));
                    let answer = forward_maybe_changed(inner, &frame, changed, version, upstream)?;
                    diverge(inner, answer, &asked, version)
                }
                Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
            }
        }
        ApiKey::LIST_OFFSETS => match decode_request::<ListOffsetsRequest>(&frame, version) {
            Ok((h, mut req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    req.topics.iter().any(|t| {
                        t.partitions
                            .iter()
                            .any(|p| place(&mut st, &t.name, p.partition_index).leader != node)
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => encode_response::<ListOffsetsRequest>(
                        &header,
                        &list_offsets_error(&req, code),
                        version,
                    )?,
                    None => {
                        let epochs = req.topics.iter_mut().flat_map(|t| t.partitions.iter_mut());
                        let cleared = clear_epochs(epochs.map(|p| &mut p.current_leader_epoch));
                        forward_maybe_changed(
                            inner,
                            &frame,
                            cleared.then_some((&h, &req)),
                            version,
                            upstream,
                        )?
                    }
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::JOIN_GROUP
        | ApiKey::SYNC_GROUP
        | ApiKey::HEARTBEAT
        | ApiKey::LEAVE_GROUP
        | ApiKey::OFFSET_COMMIT
        | ApiKey::OFFSET_FETCH => {
            match group_refusal(inner, node, api, &frame, version, &header, injected) {
                Some(Ok(answer)) => answer,
                Some(Err(e)) => return Err(e),
                None if api == ApiKey::OFFSET_COMMIT => {
                    let answer = forward(inner, frame.as_slice(), upstream)?;
                    remember_commit(inner, &frame, &answer, version);
                    answer.to_vec()
                }
                None if api == ApiKey::OFFSET_FETCH => {
                    let answer = forward(inner, frame.as_slice(), upstream)?;
                    restore_epochs(inner, &frame, answer, version)
                }
                None => forward(inner, frame.as_slice(), upstream)?.to_vec(),
            }
        }
        _ => forward(inner, frame.as_slice(), upstream)?.to_vec(),
    };
    if cut_after {
        inner.stats.cut.fetch_add(1, Ordering::Relaxed);
        return Ok(Outcome::Close);
    }
    Ok(Outcome::Answer(answer))
}

fn forward_no_answer(inner: &Inner, frame: &[u8], upstream: &mut TcpStream) -> Result<()> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    upstream
        .write_all(&out)
        .map_err(|e| Error::io("forwarding to the real broker", e))?;
    inner.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The error code to answer with instead of forwarding, if any: an
/// injected one wins over the wrong-node one.
fn refusal(
    inner: &Inner,
    wrong: bool,
    injected: Option<i16>,
    wrong_code: ErrorCode,
) -> Option<i16> {
    if let Some(code) = injected {
        inner.stats.injected.fetch_add(1, Ordering::Relaxed);
        return Some(code);
    }
    if wrong {
        inner.stats.wrong_node.fetch_add(1, Ordering::Relaxed);
        return Some(wrong_code.0);
    }
    None
}

fn topic_name(names: &HashMap<Uuid, String>, topic: &str, id: Uuid) -> Option<String> {
    if !topic.is_empty() {
        return Some(topic.to_owned());
    }
    names.get(&id).cloned()
}

/// `Some(answer)` when a group request must not reach the real broker.
fn group_refusal(
    inner: &Inner,
    node: i32,
    api: ApiKey,
    frame: &Bytes,
    version: i16,
    header: &ResponseHeader,
    injected: Option<i16>,
) -> Option<Result<Vec<u8>>> {
    // The group id, where every request of these APIs keeps it.
    fn group_of<R: Request>(
        frame: &Bytes,
        version: i16,
        id: impl Fn(R) -> String,
    ) -> Option<String> {
        decode_request::<R>(frame, version).ok().map(|(_, r)| id(r))
    }
    let group = match api {
        ApiKey::JOIN_GROUP => group_of(frame, version, |r: JoinGroupRequest| r.group_id)?,
        ApiKey::SYNC_GROUP => group_of(frame, version, |r: SyncGroupRequest| r.group_id)?,
        ApiKey::HEARTBEAT => group_of(frame, version, |r: HeartbeatRequest| r.group_id)?,
        ApiKey::LEAVE_GROUP => group_of(frame, version, |r: LeaveGroupRequest| r.group_id)?,
        ApiKey::OFFSET_COMMIT => group_of(frame, version, |r: OffsetCommitRequest| r.group_id)?,
        _ => {
            let r = decode_request::<OffsetFetchRequest>(frame, version).ok()?.1;
            if version >= 8 {
                r.groups.first()?.group_id.clone()
            } else {
                r.group_id
            }
        }
    };
    let wrong = {
        let mut st = inner.state.lock();
        coordinator_of(&mut st, &group) != node
    };
    let code = refusal(inner, wrong, injected, ErrorCode::NOT_COORDINATOR)?;
    Some(group_error(api, frame, version, header, code))
}

/// Sets every leader epoch to -1 ("unknown": the real broker skips its
/// check; the front's epochs are invented); whether any changed.
fn clear_epochs<'a>(epochs: impl Iterator<Item = &'a mut i32>) -> bool {
    let mut changed = false;
    for e in epochs {
        if *e != -1 {
            *e = -1;
            changed = true;
        }
    }
    changed
}

/// Forwards the re-encoded request when there is one, else the client's
/// bytes unchanged.
fn forward_maybe_changed<R: Request>(
    inner: &Inner,
    frame: &Bytes,
    changed: Option<(&RequestHeader, &R)>,
    version: i16,
    upstream: &mut TcpStream,
) -> Result<Vec<u8>> {
    match changed {
        Some((h, req)) => {
            let f = encode_request_frame(h, req, version)?;
            Ok(forward(inner, &f, upstream)?.to_vec())
        }
        None => Ok(forward(inner, frame.as_slice(), upstream)?.to_vec()),
    }
}

/// Replaces the broker's `OffsetForLeaderEpoch` answers for partitions
/// given a divergence (`ChaosCluster::set_divergence`): the epoch asked
/// about ends at the divergence offset. Other answers pass unchanged.
fn diverge(inner: &Inner, answer: Vec<u8>, asked: &[(String, i32, i32)], version: i16) -> Vec<u8> {
    let found: Vec<(String, i32, i32, i64)> = {
        let st = inner.state.lock();
        if st.divergences.is_empty() {
            return answer;
        }
        asked
            .iter()
            .filter_map(|(t, p, e)| {
                let end = st.divergences.get(&(t.clone(), *p))?;
                Some((t.clone(), *p, *e, *end))
            })
            .collect()
    };
    if found.is_empty() {
        return answer;
    }
    let raw = Bytes::from(answer);
    let Ok((h, mut resp)) = decode_response::<OffsetForLeaderEpochRequest>(&raw, version) else {
        return raw.to_vec();
    };
    for t in &mut resp.topics {
        for p in &mut t.partitions {
            let hit = found
                .iter()
                .find(|(topic, part, _, _)| *topic == t.topic && *part == p.partition);
            if let Some((_, _, epoch, end)) = hit {
                p.error_code = 0;
                p.leader_epoch = *epoch;
                p.end_offset = *end;
                inner
                    .stats
                    .divergent_answers
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    encode_response::<OffsetForLeaderEpochRequest>(&h, &resp, version)
        .unwrap_or_else(|_| raw.to_vec())
}

/// Notes the leader epochs of an accepted `OffsetCommit` (v6+ carries
/// them), for brokers that drop them (Tansu answers -1 in `OffsetFetch`).
fn remember_commit(inner: &Inner, frame: &Bytes, answer: &Bytes, version: i16) {
    if version < 6 {
        return;
    }
    let Ok((_, req)) = decode_request::<OffsetCommitRequest>(frame, version) else {
        return;
    };
    let Ok((_, resp)) = decode_response::<OffsetCommitRequest>(answer, version) else {
        return;
    };
    let accepted = |topic: &str, partition: i32| {
        resp.topics.iter().any(|t| {
            t.name == topic
                && t.partitions
                    .iter()
                    .any(|p| p.partition_index == partition && p.error_code == 0)
        })
    };
    let mut st = inner.state.lock();
    for t in &req.topics {
        for p in &t.partitions {
            if !accepted(&t.name, p.partition_index) {
                continue;
            }
            let key = (req.group_id.clone(), t.name.clone(), p.partition_index);
            if p.committed_leader_epoch >= 0 {
                st.committed_epochs
                    .insert(key, (p.committed_offset, p.committed_leader_epoch));
            } else {
                st.committed_epochs.remove(&key);
            }
        }
    }
}

/// Puts the leader epochs noted by [`remember_commit`] back into an
/// `OffsetFetch` answer (v5+) where the broker gave -1 for the same offset;
/// other answers pass unchanged.
fn restore_epochs(inner: &Inner, frame: &Bytes, answer: Bytes, version: i16) -> Vec<u8> {
    if version < 5 || inner.state.lock().committed_epochs.is_empty() {
        return answer.to_vec();
    }
    let Ok((_, req)) = decode_request::<OffsetFetchRequest>(frame, version) else {
        return answer.to_vec();
    };
    let Ok((h, mut resp)) = decode_response::<OffsetFetchRequest>(&answer, version) else {
        return answer.to_vec();
    };
    let st = inner.state.lock();
    let mut restored = 0u64;
    let mut fill = |group: &str, topic: &str, partition: i32, offset: i64, epoch: &mut i32| {
        if *epoch >= 0 {
            return;
        }
        let key = (group.to_owned(), topic.to_owned(), partition);
        if let Some((o, e)) = st.committed_epochs.get(&key) {
            if *o == offset {
                *epoch = *e;
                restored += 1;
            }
        }
    };
    if version >= 8 {
        for g in &mut resp.groups {
            for t in &mut g.topics {
                for p in &mut t.partitions {
                    let (pi, off) = (p.partition_index, p.committed_offset);
                    fill(&g.group_id, &t.name, pi, off, &mut p.committed_leader_epoch);
                }
            }
        }
    } else {
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                let (pi, off) = (p.partition_index, p.committed_offset);
                fill(
                    &req.group_id,
                    &t.name,
                    pi,
                    off,
                    &mut p.committed_leader_epoch,
                );
            }
        }
    }
    drop(st);
    if restored == 0 {
        return answer.to_vec();
    }
    inner
        .stats
        .epochs_restored
        .fetch_add(restored, Ordering::Relaxed);
    encode_response::<OffsetFetchRequest>(&h, &resp, version).unwrap_or_else(|_| answer.to_vec())
}

/// The highest `OffsetForLeaderEpoch` version the front answers itself.
const EPOCH_ENDS_MAX_VERSION: i16 = 4;

/// Adds `OffsetForLeaderEpoch` to an `ApiVersions` answer that lacks it
/// (the front then answers it: [`epoch_ends`]), so that clients validate
/// positions (KIP-320) through the front even over a broker without it.
fn offer_epoch_ends(inner: &Inner, raw: Bytes, version: i16) -> Vec<u8> {
    let Ok((h, mut resp)) = decode_response::<ApiVersionsRequest>(&raw, version) else {
        return raw.to_vec();
    };
    if resp.error_code != 0
        || resp
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::OFFSET_FOR_LEADER_EPOCH.0)
    {
        return raw.to_vec();
    }
    resp.api_keys.push(ApiVersion {
        api_key: ApiKey::OFFSET_FOR_LEADER_EPOCH.0,
        min_version: 0,
        max_version: EPOCH_ENDS_MAX_VERSION,
        ..Default::default()
    });
    resp.api_keys.sort_by_key(|k| k.api_key);
    match encode_response::<ApiVersionsRequest>(&h, &resp, version) {
        Ok(out) => {
            inner.state.lock().emulate_epoch_ends = true;
            out
        }
        Err(_) => raw.to_vec(),
    }
}

/// The front's own `OffsetForLeaderEpoch` answer (the broker has none):
/// every epoch asked about ends at the divergence offset given with
/// `ChaosCluster::set_divergence`; without one, "undefined" (-1: the front
/// keeps no epoch history, and Tansu's `ListOffsets` end is wrong after a
/// many-record batch, so it does not guess an end).
fn epoch_ends(inner: &Inner, req: &OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let st = inner.state.lock();
    let topics = req
        .topics
        .iter()
        .map(|t| OffsetForLeaderTopicResult {
            topic: t.topic.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let end = st.divergences.get(&(t.topic.clone(), p.partition));
                    if end.is_some() {
                        inner
                            .stats
                            .divergent_answers
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    EpochEndOffset {
                        partition: p.partition,
                        leader_epoch: if end.is_some() { p.leader_epoch } else { -1 },
                        end_offset: end.copied().unwrap_or(-1),
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    OffsetForLeaderEpochResponse {
        topics,
        ..Default::default()
    }
}
