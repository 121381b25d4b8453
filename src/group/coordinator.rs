//! FindCoordinator: which broker coordinates a group.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::FindCoordinatorRequest;
use crate::protocol::ErrorCode;

/// Looks up the coordinator of `group_id`; returns its node id (known to
/// the metadata snapshot afterwards).
pub(crate) fn find_coordinator(
    cluster: &Cluster,
    group_id: &str,
    timeout: Duration,
) -> Result<i32> {
    find_coordinator_of(cluster, CoordinatorKey::Group(group_id), timeout)
}

/// What a coordinator is looked up for (FindCoordinator's key type).
#[derive(Clone, Copy, Debug)]
pub(crate) enum CoordinatorKey<'a> {
    /// A consumer group (key type 0).
    Group(&'a str),
    /// A transactional id (key type 1).
    Transaction(&'a str),
}

impl CoordinatorKey<'_> {
    fn parts(self) -> (i8, &'static str) {
        match self {
            CoordinatorKey::Group(_) => (0, "group"),
            CoordinatorKey::Transaction(_) => (1, "transactional id"),
        }
    }

    fn key(&self) -> &str {
        match self {
            CoordinatorKey::Group(k) | CoordinatorKey::Transaction(k) => k,
        }
    }
}

/// Looks up the coordinator of a group or transactional id.
pub(crate) fn find_coordinator_of(
    cluster: &Cluster,
    of: CoordinatorKey<'_>,
    timeout: Duration,
) -> Result<i32> {
    let (key_type, noun) = of.parts();
    let group_id = of.key();
    let deadline = Instant::now() + timeout;
    let backoff = cluster
        .config()
        .retry_backoff()
        .max(Duration::from_millis(10));
    let mut last: Option<Error> = None;
    loop {
        if Instant::now() >= deadline {
            let why = last.map_or_else(String::new, |e| format!(": {e}"));
            return Err(Error::timeout(format!(
                "finding the coordinator of {noun} `{group_id}` did not finish within {} ms{why}",
                timeout.as_millis()
            )));
        }
        let mut ids: Vec<i32> = cluster.metadata().brokers.keys().copied().collect();
        if ids.is_empty() {
            match cluster.refresh(crate::cluster::TopicSelection::Interest) {
                Ok(s) => ids = s.brokers.keys().copied().collect(),
                Err(e) if e.repeats_on_reconnect() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        for id in ids {
            // Each unreachable broker may cost a connect timeout: the
            // deadline is for the whole lookup, not for each broker.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let conn = match cluster.connection(id, Purpose::General) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let mut version = 0;
            let answer = conn.send_versioned(left.max(Duration::from_millis(1)), |v| {
                version = v;
                if v >= 4 {
                    FindCoordinatorRequest {
                        key_type,
                        coordinator_keys: vec![group_id.to_owned()],
                        ..Default::default()
                    }
                } else {
                    FindCoordinatorRequest {
                        key: group_id.to_owned(),
                        key_type,
                        ..Default::default()
                    }
                }
            });
            let r = match answer {
                Ok(r) => r,
                Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e.context(format_args!("finding the {noun} coordinator"))),
            };
            let (code, node, message) = if version >= 4 {
                match r.coordinators.first() {
                    Some(c) => (ErrorCode(c.error_code), c.node_id, c.error_message.clone()),
                    None => (ErrorCode::COORDINATOR_NOT_AVAILABLE, -1, None),
                }
            } else {
                (ErrorCode(r.error_code), r.node_id, r.error_message.clone())
            };
            if code.is_err() {
                let e = Error::broker(
                    code,
                    format!(
                        "finding the coordinator of {noun} `{group_id}`{}",
                        message.map_or_else(String::new, |m| format!(": {m}"))
                    ),
                );
                if code.is_retriable() {
                    last = Some(e);
                    break;
                }
                return Err(e);
            }
            cluster.ensure_broker_known(node)?;
            return Ok(node);
        }
        std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
    }
}
