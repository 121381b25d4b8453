//! [`AdminClient`]: manage topics, configs, consumer groups, records and
//! ACLs, in the spirit of kafka-python's `KafkaAdminClient` and the Java
//! `Admin`.
//!
//! Every operation routes its requests to the broker that must answer them
//! (any broker, the controller, a group's coordinator, a partition's
//! leader), retries retriable failures (`NOT_CONTROLLER`,
//! `NOT_COORDINATOR`, `COORDINATOR_LOAD_IN_PROGRESS`, lost connections,
//! ...) with `retry_backoff_ms` pauses until the operation's timeout, and
//! answers **per item**: one topic that cannot be created does not hide
//! the others. Each item's error names the resource and carries the Kafka
//! error code and the broker's message.
//!
//! The outer `Result` of an operation fails only when nothing could be
//! asked at all (an invalid argument, no broker reachable for the
//! metadata, an API the broker does not support).

mod acls;
mod configs;
mod groups;
mod records;
mod topics;
mod transactions;

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};
pub use configs::{
    AlterConfigOp, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigResourceType,
    ConfigSource, ConfigSynonym, ConfigType,
};
pub use groups::{ConsumerGroupDescription, ConsumerGroupListing, GroupState, MemberDescription};
pub use records::ClusterDescription;
pub use topics::{NewPartitions, NewTopic, PartitionDescription, TopicDescription};
pub use transactions::{TransactionDescription, TransactionListing};

use crate::cluster::{Cluster, ClusterMetadata, Purpose, TopicSelection};
use crate::config::{client_options, ClientConfig, ClientConfigBuilder};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{ErrorCode, Request};

pub use crate::partition::{OffsetAndMetadata, TopicPartition};

/// A Kafka admin client. Cheap to clone, `Send + Sync`; clones share the
/// metadata and the broker connections.
///
/// ```no_run
/// use std::time::Duration;
/// use kafka_blocking::admin::{AdminClient, ConfigResource, NewTopic};
///
/// # fn main() -> kafka_blocking::Result<()> {
/// let admin = AdminClient::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .client_id("ops")
///     .build()?;
///
/// // Create two topics; each gets its own answer.
/// let created = admin.create_topics(
///     [
///         NewTopic::new("orders", 6, 1).config("retention.ms", "86400000"),
///         NewTopic::new("audit", 1, 1),
///     ],
///     false,
///     Some(Duration::from_secs(10)),
/// )?;
/// for (topic, result) in created {
///     match result {
///         Ok(()) => println!("created {topic}"),
///         Err(e) => println!("{topic}: {e}"), // e.g. TOPIC_ALREADY_EXISTS
///     }
/// }
///
/// for (name, described) in admin.describe_topics(["orders"])? {
///     for p in described?.partitions {
///         println!("{name}-{}: leader {:?}, isr {:?}", p.partition, p.leader, p.isr);
///     }
/// }
///
/// let configs = admin.describe_configs([ConfigResource::topic("orders")], false, false)?;
/// for (resource, entries) in configs {
///     for entry in entries? {
///         println!("{} {} = {:?}", resource.name, entry.name, entry.value);
///     }
/// }
///
/// for group in admin.list_consumer_groups()? {
///     let offsets = admin.list_consumer_group_offsets(&group.group_id, None)?;
///     println!("{}: {} committed partitions", group.group_id, offsets.len());
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AdminClient {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Arc<Cluster>,
    default_api_timeout: Duration,
    /// Group id → coordinator node id, forgotten on coordinator errors.
    coordinators: Mutex<HashMap<String, i32>>,
    /// Rotates "any broker" requests so a retry goes elsewhere.
    next_broker: AtomicUsize,
}

/// Builds an [`AdminClient`]: the shared client options (kafka-python's
/// names) plus `default_api_timeout_ms`.
#[derive(Debug, Clone, Default)]
pub struct AdminClientBuilder {
    client: ClientConfigBuilder,
    default_api_timeout_ms: Option<i64>,
}

impl AdminClientBuilder {
    client_options!();

    /// `default_api_timeout_ms`: how long an operation that takes no
    /// `timeout` argument may retry before giving up (default:
    /// `request_timeout_ms`).
    pub fn default_api_timeout_ms(mut self, ms: i64) -> Self {
        self.default_api_timeout_ms = Some(ms);
        self
    }

    /// Checks the options and makes the client (it connects lazily).
    pub fn build(self) -> Result<AdminClient> {
        let config = self.client.build()?;
        let timeout = match self.default_api_timeout_ms {
            None => config.request_timeout,
            Some(ms) if ms >= 1 => Duration::from_millis(ms as u64),
            Some(ms) => {
                return Err(Error::config(
                    "default_api_timeout_ms",
                    format!("{ms} is below the minimum 1"),
                ))
            }
        };
        Ok(AdminClient::with_parts(config, timeout))
    }
}

/// The time budget of one operation.
pub(crate) struct Deadline {
    at: Instant,
    timeout: Duration,
    backoff: Duration,
    request_timeout: Duration,
}

impl Deadline {
    fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// How long one request may wait for its answer.
    fn attempt_timeout(&self) -> Duration {
        self.remaining()
            .min(self.request_timeout)
            .max(Duration::from_millis(1))
    }

    /// The `timeout_ms` to send to a broker that waits for the operation
    /// to finish (create/delete topics, ...): what is left, minus a margin
    /// so that the broker's own answer arrives before ours times out.
    fn broker_timeout_ms(&self) -> i32 {
        let left = self.remaining();
        let left = if left > Duration::from_secs(1) {
            left - Duration::from_millis(500)
        } else {
            left
        };
        i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1)
    }

    /// How long a request carrying [`broker_timeout_ms`](Self::broker_timeout_ms)
    /// may wait for its answer.
    fn long_attempt_timeout(&self) -> Duration {
        self.remaining().max(Duration::from_millis(1))
    }

    /// Sleeps `retry_backoff_ms` (capped by what is left); `false` when no
    /// time is left for another attempt.
    fn pause(&self) -> bool {
        let left = self.remaining();
        if left <= Duration::from_millis(1) {
            return false;
        }
        std::thread::sleep(self.backoff.min(left));
        !self.remaining().is_zero()
    }

    /// Adds "gave up after N ms" to the last error of an item.
    fn gave_up(&self, e: Error) -> Error {
        if e.is_retriable() {
            e.context(format_args!(
                "still failing after retrying for {} ms",
                self.timeout.as_millis()
            ))
        } else {
            e
        }
    }
}

/// An error from a broker's error code, naming what it concerns and
/// carrying the broker's message when it sent one.
pub(crate) fn broker_error(code: ErrorCode, message: Option<&str>, what: fmt::Arguments) -> Error {
    match message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(m) => Error::broker(code, format!("{what}: {m}")),
        None => Error::broker(code, format!("{what} failed")),
    }
}

/// `Ok(())` for `NONE`, otherwise [`broker_error`].
pub(crate) fn check(code: i16, message: Option<&str>, what: fmt::Arguments) -> Result<()> {
    let code = ErrorCode(code);
    if code.is_ok() {
        Ok(())
    } else {
        Err(broker_error(code, message, what))
    }
}

/// The items of `items` in order, without repeats.
fn dedup<K: Clone + Eq + Hash>(items: impl IntoIterator<Item = K>) -> Vec<K> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

/// The keys of `items` in the order given (repeats kept: `run_items`
/// answers each), and the value of each key's first occurrence.
fn keyed<K: Clone + Eq + Hash, V>(
    items: impl IntoIterator<Item = (K, V)>,
) -> (Vec<K>, HashMap<K, V>) {
    let mut values = HashMap::new();
    let mut order = Vec::new();
    for (k, v) in items {
        order.push(k.clone());
        values.entry(k).or_insert(v);
    }
    (order, values)
}

impl AdminClient {
    /// A builder with kafka-python's names and defaults.
    pub fn builder() -> AdminClientBuilder {
        AdminClientBuilder::default()
    }

    /// An admin client for `config` (operations without a `timeout`
    /// argument get `request_timeout_ms`). Connects lazily.
    pub fn new(config: ClientConfig) -> Result<AdminClient> {
        let timeout = config.request_timeout;
        Ok(AdminClient::with_parts(config, timeout))
    }

    fn with_parts(config: ClientConfig, default_api_timeout: Duration) -> AdminClient {
        AdminClient {
            inner: Arc::new(Inner {
                cluster: Cluster::new(config, false),
                default_api_timeout,
                coordinators: Mutex::new(HashMap::new()),
                next_broker: AtomicUsize::new(0),
            }),
        }
    }

    /// Closes every connection. Operations afterwards reconnect.
    pub fn close(&self) {
        self.inner.cluster.close();
    }

    fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    fn deadline(&self, timeout: Option<Duration>) -> Deadline {
        let timeout = timeout.unwrap_or(self.inner.default_api_timeout);
        let config = self.cluster().config();
        Deadline {
            at: Instant::now() + timeout,
            timeout,
            backoff: config.retry_backoff.max(Duration::from_millis(10)),
            request_timeout: config.request_timeout,
        }
    }

    /// Fetches the broker list and controller (no topics).
    fn refresh(&self) -> Result<Arc<ClusterMetadata>> {
        self.cluster().refresh(TopicSelection::Interest)
    }

    /// The snapshot, fetched first when it lists no broker yet.
    fn metadata(&self) -> Result<Arc<ClusterMetadata>> {
        let snap = self.cluster().metadata();
        if snap.brokers.is_empty() {
            self.refresh()
        } else {
            Ok(snap)
        }
    }

    /// Some broker; successive calls rotate through the cluster so that a
    /// retry after a failure asks another broker.
    fn any_broker(&self) -> Result<i32> {
        let snap = self.metadata()?;
        let n = snap.brokers.len();
        if n == 0 {
            return Err(Error::protocol("the cluster metadata lists no broker"));
        }
        let i = self.inner.next_broker.fetch_add(1, Ordering::Relaxed) % n;
        snap.brokers
            .keys()
            .nth(i)
            .copied()
            .ok_or_else(|| Error::protocol("the cluster metadata lists no broker"))
    }

    /// The controller when the cluster reports one, else any broker (a
    /// KRaft broker forwards controller requests itself).
    fn controller(&self) -> Result<i32> {
        let snap = self.metadata()?;
        match snap.controller_id.filter(|c| snap.broker(*c).is_some()) {
            Some(c) => Ok(c),
            None => self.any_broker(),
        }
    }

    /// Sends `request` to broker `id`, waiting at most `wait` for the answer.
    fn send_to<R: Request>(&self, id: i32, request: &R, wait: Duration) -> Result<R::Response> {
        self.cluster().ensure_broker_known(id)?;
        let conn = self.cluster().connection(id, Purpose::General)?;
        conn.send_with_timeout(request, wait).map_err(|e| {
            if e.is_retriable() || e.kind() == ErrorKind::Closed {
                // The broker may have moved or died: look again next time.
                self.cluster().request_update();
            }
            e
        })
    }

    /// The version of `R` that broker `id` and this client will use.
    fn version<R: Request>(&self, id: i32) -> Result<i16> {
        self.cluster().ensure_broker_known(id)?;
        self.cluster()
            .connection(id, Purpose::General)?
            .versions()?
            .negotiate::<R>()
    }

    /// Whether an error means the metadata (controller, leaders, brokers)
    /// should be fetched again before retrying.
    fn wants_refresh(e: &Error) -> bool {
        e.kafka_code().is_some_and(|c| c.is_stale_metadata())
            || matches!(
                e.kind(),
                ErrorKind::Io | ErrorKind::Disconnected | ErrorKind::Closed
            )
    }

    /// Reacts to a retriable error before trying again: refreshes metadata
    /// when the controller or a leader moved, forgets `group`'s coordinator
    /// when it moved, is loading or could not be reached.
    fn note(&self, e: &Error, group: Option<&str>) {
        if Self::wants_refresh(e) {
            self.cluster().request_update();
            let _ = self.refresh();
        }
        if let Some(g) = group {
            self.forget_coordinator(g, e);
        }
    }

    /// Forgets `group`'s coordinator when `e` says it moved, is loading or
    /// could not be reached.
    fn forget_coordinator(&self, group: &str, e: &Error) {
        let trouble = matches!(
            e.kind(),
            ErrorKind::Io | ErrorKind::Disconnected | ErrorKind::Timeout | ErrorKind::Closed
        ) || e.kafka_code().is_some_and(|c| c.is_coordinator_error());
        if trouble {
            self.inner.coordinators.lock().remove(group);
        }
    }

    /// Runs a per-item operation. `attempt` is called with the items still
    /// pending and answers per item; an item answered with
    /// [`Answer::Retry`] is tried again after `retry_backoff_ms` until the
    /// deadline. A failed attempt as a whole (no broker reachable) is
    /// retried when it is a connection failure or a code in `retry_codes`.
    ///
    /// Answers come back in the order of `items`, one per distinct item.
    /// Fails as a whole only when no attempt got any answer at all.
    fn run_items<K, V>(
        &self,
        items: Vec<K>,
        deadline: &Deadline,
        retry_codes: &[ErrorCode],
        mut attempt: impl FnMut(&[K]) -> Result<Vec<(K, Answer<V>)>>,
    ) -> Result<Vec<(K, Result<V>)>>
    where
        K: Clone + Eq + Hash + fmt::Debug,
    {
        let items = dedup(items);
        let mut done: HashMap<K, Result<V>> = HashMap::new();
        let mut last: HashMap<K, Error> = HashMap::new();
        let mut pending = items.clone();
        let mut answered_once = false;
        let mut whole: Option<Error> = None;
        while !pending.is_empty() {
            let mut refresh = false;
            match attempt(&pending) {
                Ok(answers) => {
                    answered_once = true;
                    let mut answered = std::collections::HashSet::new();
                    for (k, a) in answers {
                        if !pending.contains(&k) || !answered.insert(k.clone()) {
                            continue;
                        }
                        match a {
                            Answer::Retry(e) => {
                                refresh |= Self::wants_refresh(&e);
                                last.insert(k, e);
                            }
                            Answer::Final(r) => {
                                last.remove(&k);
                                done.insert(k, r);
                            }
                        }
                    }
                    for k in &pending {
                        if !answered.contains(k) {
                            done.insert(
                                k.clone(),
                                Err(Error::protocol(format!(
                                    "the broker's answer left out {k:?}"
                                ))),
                            );
                        }
                    }
                }
                Err(e) if should_retry(&e, retry_codes) => {
                    refresh |= Self::wants_refresh(&e);
                    for k in &pending {
                        last.insert(k.clone(), e.clone());
                    }
                    whole = Some(e);
                }
                Err(e) => {
                    if !answered_once {
                        return Err(e);
                    }
                    for k in &pending {
                        done.insert(k.clone(), Err(e.clone()));
                    }
                }
            }
            pending.retain(|k| !done.contains_key(k));
            if pending.is_empty() {
                break;
            }
            if refresh {
                self.cluster().request_update();
                let _ = self.refresh();
            }
            if !deadline.pause() {
                break;
            }
        }
        if !answered_once {
            if let Some(e) = whole {
                return Err(deadline.gave_up(e));
            }
        }
        Ok(items
            .into_iter()
            .map(|k| {
                let r = match done.remove(&k) {
                    Some(r) => r,
                    None => Err(deadline.gave_up(last.remove(&k).unwrap_or_else(|| {
                        Error::timeout(format!(
                            "{k:?}: no answer within {} ms",
                            deadline.timeout.as_millis()
                        ))
                    }))),
                };
                (k, r)
            })
            .collect())
    }

    /// Runs `attempt` until it succeeds, fails for good, or the deadline
    /// passes. Connection failures and the codes in `retry_codes` are
    /// retried after `retry_backoff_ms`; `group` names the group whose
    /// coordinator to forget on coordinator errors.
    fn retry<T>(
        &self,
        deadline: &Deadline,
        retry_codes: &[ErrorCode],
        group: Option<&str>,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(e) if should_retry(&e, retry_codes) => {
                    self.note(&e, group);
                    if !deadline.pause() {
                        return Err(deadline.gave_up(e));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What one attempt concluded about one item.
pub(crate) enum Answer<V> {
    /// The item's final result.
    Final(Result<V>),
    /// Try the item again (after a backoff), unless time is up; the error
    /// is its result then.
    Retry(Error),
}

impl<V> Answer<V> {
    /// Retries `r` when it failed with a connection error or a code in
    /// `retry_codes`; otherwise it is final.
    fn from_result(r: Result<V>, retry_codes: &[ErrorCode]) -> Answer<V> {
        match r {
            Err(e) if should_retry(&e, retry_codes) => Answer::Retry(e),
            r => Answer::Final(r),
        }
    }
}

/// Codes worth retrying on an operation sent to the controller.
pub(crate) const CONTROLLER_RETRY: &[ErrorCode] = &[ErrorCode::NOT_CONTROLLER];

/// Codes worth retrying on an operation sent to a group coordinator.
pub(crate) const COORDINATOR_RETRY: &[ErrorCode] = &[
    ErrorCode::NOT_COORDINATOR,
    ErrorCode::COORDINATOR_NOT_AVAILABLE,
    ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
];

/// Whether `e` is worth another attempt: a connection-level failure
/// (refused, reset, timed out) or a broker code in `retry_codes`.
fn should_retry(e: &Error, retry_codes: &[ErrorCode]) -> bool {
    match e.kafka_code() {
        Some(code) => retry_codes.contains(&code),
        None => matches!(
            e.kind(),
            ErrorKind::Io | ErrorKind::Disconnected | ErrorKind::Timeout
        ),
    }
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field(
                "bootstrap_servers",
                &self.cluster().config().bootstrap_servers(),
            )
            .field("default_api_timeout", &self.inner.default_api_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_client_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<AdminClient>();
    }

    #[test]
    fn builder_checks_the_admin_timeout() {
        let e = AdminClient::builder()
            .default_api_timeout_ms(0)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("`default_api_timeout_ms`"), "{e}");
        let e = AdminClient::builder()
            .bootstrap_servers("h:x")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("`bootstrap_servers`"), "{e}");
        let a = AdminClient::builder()
            .request_timeout_ms(1234)
            .build()
            .unwrap();
        assert_eq!(a.inner.default_api_timeout, Duration::from_millis(1234));
    }

    fn client() -> AdminClient {
        AdminClient::builder()
            .retry_backoff_ms(1)
            .default_api_timeout_ms(200)
            .build()
            .unwrap()
    }

    #[test]
    fn run_items_retries_only_retriable_items_and_keeps_order() {
        let admin = client();
        let dl = admin.deadline(Some(Duration::from_secs(5)));
        let mut calls = 0;
        let out = admin
            .run_items(vec!["a", "b", "c", "a"], &dl, &[], |pending: &[&str]| {
                calls += 1;
                Ok(pending
                    .iter()
                    .map(|k| {
                        let r = match (*k, calls) {
                            ("a", _) => Ok(1),
                            ("b", 1) => Err(Error::broker(ErrorCode::NOT_CONTROLLER, "b")),
                            ("b", _) => Ok(2),
                            _ => Err(Error::broker(ErrorCode::TOPIC_ALREADY_EXISTS, "c")),
                        };
                        (*k, Answer::from_result(r, CONTROLLER_RETRY))
                    })
                    .collect())
            })
            .unwrap();
        assert_eq!(calls, 2);
        let keys: Vec<&str> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(*out[0].1.as_ref().unwrap(), 1);
        assert_eq!(*out[1].1.as_ref().unwrap(), 2);
        assert_eq!(
            out[2].1.as_ref().unwrap_err().kafka_code(),
            Some(ErrorCode::TOPIC_ALREADY_EXISTS)
        );
    }

    #[test]
    fn run_items_gives_up_at_the_deadline_with_the_last_error() {
        let admin = client();
        let dl = admin.deadline(Some(Duration::from_millis(50)));
        let out = admin
            .run_items(vec!["x"], &dl, &[], |p: &[&str]| {
                Ok(p.iter()
                    .map(|k| {
                        let e = Error::broker(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS, "loading");
                        (*k, Answer::<()>::from_result(Err(e), COORDINATOR_RETRY))
                    })
                    .collect())
            })
            .unwrap();
        let e = out[0].1.as_ref().unwrap_err();
        assert_eq!(
            e.kafka_code(),
            Some(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
        );
        assert!(e.to_string().contains("after retrying"), "{e}");
    }

    #[test]
    fn run_items_fails_whole_when_nothing_ever_answered() {
        let admin = client();
        let dl = admin.deadline(Some(Duration::from_millis(30)));
        let mut calls = 0;
        let e = admin
            .run_items(
                vec!["x", "y"],
                &dl,
                &[],
                |_: &[&str]| -> Result<Vec<(&str, Answer<()>)>> {
                    calls += 1;
                    Err(Error::new(ErrorKind::Io, "refused"))
                },
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(calls > 1, "connection errors are retried");
        // A non-retriable failure is not retried.
        let mut calls = 0;
        let e = admin
            .run_items(
                vec!["x"],
                &dl,
                &[],
                |_: &[&str]| -> Result<Vec<(&str, Answer<()>)>> {
                    calls += 1;
                    Err(Error::new(ErrorKind::UnsupportedVersion, "no"))
                },
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
        assert_eq!(calls, 1);
    }

    #[test]
    fn run_items_reports_items_the_broker_left_out() {
        let admin = client();
        let dl = admin.deadline(None);
        let out = admin
            .run_items(vec!["x", "y"], &dl, &[], |_: &[&str]| {
                Ok(vec![("x", Answer::Final(Ok(())))])
            })
            .unwrap();
        assert!(out[0].1.is_ok());
        assert_eq!(out[1].1.as_ref().unwrap_err().kind(), ErrorKind::Protocol);
    }

    #[test]
    fn only_connection_errors_and_listed_codes_are_retried() {
        assert!(should_retry(&Error::new(ErrorKind::Disconnected, "x"), &[]));
        assert!(!should_retry(&Error::new(ErrorKind::Protocol, "x"), &[]));
        let unknown = Error::broker(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, "x");
        assert!(unknown.is_retriable() && !should_retry(&unknown, CONTROLLER_RETRY));
        let moved = Error::broker(ErrorCode::NOT_COORDINATOR, "x");
        assert!(should_retry(&moved, COORDINATOR_RETRY));
    }

    #[test]
    fn broker_errors_name_the_resource_and_carry_the_message() {
        let e = check(
            36,
            Some("Topic 'x' already exists."),
            format_args!("creating topic `x`"),
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("creating topic `x`: Topic 'x' already exists."),
            "{s}"
        );
        assert!(s.contains("TOPIC_ALREADY_EXISTS"), "{s}");
        assert!(check(0, None, format_args!("x")).is_ok());
        let e = check(38, None, format_args!("creating topic `y`")).unwrap_err();
        assert!(e.to_string().contains("creating topic `y` failed"), "{e}");
    }
}
