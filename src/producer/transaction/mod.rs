//! Transactions: the state machine ([`state`]) and the requests to the
//! transaction coordinator (FindCoordinator with key type 1,
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and to the
//! group coordinator (TxnOffsetCommit).
//!
//! [`Transactions`] is shared by the user's threads (init, begin, commit,
//! abort, offsets: they block up to the timeout given) and the sender
//! thread (which reads the producer id, adds partitions to the open
//! transaction before their first batch, batched per drain, and reports
//! batches that failed). `send` only reads an atomic copy of the state: no
//! lock per record.
//!
//! Two transaction protocols, chosen at `init_transactions` from the
//! coordinator's ApiVersions answer as the Java 4.0 client does
//! ([`speaks_protocol_v2`]), and looked at again at the end of every
//! transaction (a cluster that finalized the feature since is seen on a new
//! connection; the move to v2 bumps the epoch first):
//! - version 1 (every broker since 0.11): AddPartitionsToTxn before a
//!   partition's first batch, AddOffsetsToTxn before TxnOffsetCommit, one
//!   epoch for the producer's life (bumped only to recover, KIP-360); the
//!   requests are capped at the versions before KIP-890 part 2 (Produce
//!   v11, TxnOffsetCommit v4, EndTxn v4), which such brokers would read as
//!   version 2;
//! - version 2 (KIP-890 part 2: Kafka 4.0+ with the finalized feature
//!   `transaction.version` at 2 or more): Produce v12+ adds a batch's
//!   partition to the transaction, TxnOffsetCommit v5+ adds the group, and
//!   EndTxn v5+ bumps the epoch at the end of every transaction (its answer
//!   carries the producer id and epoch the next transaction uses).

pub(crate) mod state;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::group::{find_coordinator_of, CoordinatorKey};
use crate::net::{decode_response, Reply};
use crate::protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use crate::protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use crate::protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest,
    TxnOffsetCommitRequest,
};
use crate::protocol::{ApiKey, BrokerVersions, ErrorCode, Request};
use crate::{OffsetAndMetadata, TopicPartition};

pub use state::TransactionState;
use state::{Call, Machine, Step};

/// What `send_offsets_to_transaction` needs to know about the consumer
/// whose offsets it commits (the Java client's `ConsumerGroupMetadata`):
/// the broker refuses offsets from a member that is no longer in the
/// group's current generation (KIP-447).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation (classic protocol) or member epoch (KIP-848); -1
    /// when unknown (then only the group id is checked).
    pub generation_id: i32,
    /// The member id ("" when unknown).
    pub member_id: String,
    /// The static member's `group_instance_id`, if any.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata naming only the group (no generation check), as the Java
    /// client's `new ConsumerGroupMetadata(groupId)`.
    pub fn new(group_id: impl Into<String>) -> ConsumerGroupMetadata {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// A producer id and epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProducerId {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

/// The short pause before retrying CONCURRENT_TRANSACTIONS (the Java
/// client's 20 ms: the previous transaction's markers are being written).
const CONCURRENT_BACKOFF: Duration = Duration::from_millis(20);

/// AddPartitionsToTxn v4 and later are for brokers only (KIP-890).
const ADD_PARTITIONS_CLIENT_MAX: i16 = 3;

/// The last versions before transaction protocol v2: a broker that offers
/// v2 reads anything newer as a request of protocol v2.
const PRODUCE_V1_MAX: i16 = 11;
const TXN_OFFSET_COMMIT_V1_MAX: i16 = 4;
const END_TXN_V1_MAX: i16 = 4;

/// The first versions of transaction protocol v2 (KIP-890 part 2).
const PRODUCE_V2_MIN: i16 = 12;
const TXN_OFFSET_COMMIT_V2_MIN: i16 = 5;
const END_TXN_V2_MIN: i16 = 5;

/// Whether a coordinator that answered ApiVersions with `versions` speaks
/// transaction protocol v2: the cluster finalized `transaction.version` 2
/// or more (as the Java 4.0 client checks), and the broker offers the
/// requests that carry it (Produce v12, TxnOffsetCommit v5, EndTxn v5).
pub(crate) fn speaks_protocol_v2(versions: &BrokerVersions) -> bool {
    let offers = |key: ApiKey, min: i16| versions.max_version(key).is_some_and(|v| v >= min);
    versions
        .finalized_feature("transaction.version")
        .is_some_and(|level| level >= 2)
        && offers(ApiKey::PRODUCE, PRODUCE_V2_MIN)
        && offers(ApiKey::TXN_OFFSET_COMMIT, TXN_OFFSET_COMMIT_V2_MIN)
        && offers(ApiKey::END_TXN, END_TXN_V2_MIN)
}

/// Transaction state shared by the producer handle and its sender thread.
pub(crate) struct Transactions {
    id: String,
    timeout_ms: i32,
    cluster: Arc<Cluster>,
    /// A copy of the state for `send` (no lock per record).
    hot: AtomicU8,
    /// Transaction protocol v2 (KIP-890 part 2) is in use; set by
    /// `init_transactions` and at a transaction's end (never while one is
    /// open), read by the sender for each Produce.
    v2: AtomicBool,
    inner: Mutex<Inner>,
}

/// What the lock guards.
pub(crate) struct Inner {
    machine: Machine,
    pid: Option<ProducerId>,
    /// The epoch must be bumped before the next transaction (a batch with
    /// a sequence failed, so the partition's sequence has a gap).
    need_bump: bool,
    txn_coordinator: Option<i32>,
    /// Partitions added to the open transaction.
    pub(crate) partitions: HashSet<(Arc<str>, i32)>,
    /// AddOffsetsToTxn succeeded in the open transaction.
    offsets_added: bool,
}

impl Inner {
    /// The producer id and epoch the transaction's batches carry.
    pub(crate) fn producer_id(&self) -> Option<ProducerId> {
        self.pid
    }

    /// Whether the coordinator knows of the open transaction (something
    /// was added to it); an empty transaction ends without EndTxn.
    fn started(&self) -> bool {
        self.offsets_added || !self.partitions.is_empty()
    }
}

impl Transactions {
    pub(crate) fn new(id: String, timeout_ms: i32, cluster: Arc<Cluster>) -> Transactions {
        Transactions {
            id,
            timeout_ms,
            cluster,
            hot: AtomicU8::new(TransactionState::Uninitialized.as_u8()),
            v2: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                machine: Machine::new(),
                pid: None,
                need_bump: false,
                txn_coordinator: None,
                partitions: HashSet::new(),
                offsets_added: false,
            }),
        }
    }

    /// The transactional id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether transaction protocol v2 (KIP-890 part 2) is in use.
    pub(crate) fn protocol_v2(&self) -> bool {
        self.v2.load(Ordering::Acquire)
    }

    /// The highest Produce version the transaction's batches may go in:
    /// v12 and later mean protocol v2 to a broker that offers it.
    pub(crate) fn produce_max_version(&self) -> i16 {
        if self.protocol_v2() {
            i16::MAX
        } else {
            PRODUCE_V1_MAX
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> TransactionState {
        TransactionState::from_u8(self.hot.load(Ordering::Acquire))
    }

    /// Locks the shared state (the sender holds it while draining, so a
    /// transaction cannot end between its look at the added partitions and
    /// the drain).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    fn publish(&self, inner: &Inner) {
        self.hot
            .store(inner.machine.state().as_u8(), Ordering::Release);
    }

    fn transition(&self, to: TransactionState) -> Result<()> {
        let mut inner = self.inner.lock();
        inner.machine.transition(to)?;
        self.publish(&inner);
        Ok(())
    }

    /// Records a failure of the open transaction (see [`Machine::fail`]).
    pub(crate) fn fail(&self, e: Error) {
        let mut inner = self.inner.lock();
        inner.machine.fail(e);
        self.publish(&inner);
    }

    /// A batch of the transaction failed; `sequenced` when it had a
    /// sequence number (its partition now has a gap: bump the epoch).
    pub(crate) fn batch_failed(&self, e: &Error, sequenced: bool) {
        let mut inner = self.inner.lock();
        if sequenced {
            inner.need_bump = true;
        }
        // INVALID_PRODUCER_EPOCH on a record means the coordinator bumped
        // the epoch (the transaction timed out): abortable, as the Java
        // client has it since KIP-588; from a coordinator it is fatal.
        let e = match e.kafka_code() {
            Some(code) if is_fatal(code) && code != ErrorCode::INVALID_PRODUCER_EPOCH => {
                e.clone().with_kind(ErrorKind::TransactionFatal)
            }
            _ => e.clone(),
        };
        inner.machine.fail(e);
        self.publish(&inner);
    }

    /// The error that sends get now, `None` inside an open transaction.
    #[inline]
    pub(crate) fn check_send(&self) -> Result<()> {
        if self.hot.load(Ordering::Acquire) == TransactionState::InTransaction.as_u8() {
            return Ok(());
        }
        self.check_send_slow()
    }

    #[cold]
    fn check_send_slow(&self) -> Result<()> {
        self.inner.lock().machine.check(Call::Send).map(|_| ())
    }

    /// The producer id batches are stamped with (after init).
    pub(crate) fn producer_id(&self) -> Option<ProducerId> {
        self.inner.lock().pid
    }

    /// Whether queued batches must fail instead of going out: the
    /// transaction is being aborted or cannot commit (as the Java client's
    /// `abortUndrainedBatches`). Returns the error to fail them with.
    pub(crate) fn undrained_error(&self) -> Option<Error> {
        let inner = self.inner.lock();
        match inner.machine.state() {
            TransactionState::AbortableError | TransactionState::FatalError => Some(
                inner
                    .machine
                    .error()
                    .cloned()
                    .unwrap_or_else(|| Error::new(ErrorKind::TransactionAbortable, "aborted")),
            ),
            TransactionState::Aborting => Some(Error::new(
                ErrorKind::TransactionAbortable,
                "the transaction was aborted before the record was sent",
            )),
            _ => None,
        }
    }

    // ---- user calls -------------------------------------------------

    /// `init_transactions`: gets a producer id and epoch for the
    /// transactional id, fencing older producers with the same id and
    /// letting the coordinator finish (abort) their open transaction.
    pub(crate) fn init(&self, timeout: Duration) -> Result<()> {
        let step = self.inner.lock().machine.check(Call::Init)?;
        if let Step::Start(to) = step {
            self.transition(to)?;
        }
        let deadline = deadline(timeout);
        match self.init_producer_id(deadline, None) {
            Ok(pid) => {
                let v2 = self.coordinator_speaks_v2();
                self.v2.store(v2, Ordering::Release);
                let mut inner = self.inner.lock();
                inner.pid = Some(pid);
                inner.need_bump = false;
                inner.machine.transition(TransactionState::Ready)?;
                self.publish(&inner);
                log::info!(
                    "transactional id `{}`: producer id {} epoch {}, transaction protocol v{}",
                    self.id,
                    pid.id,
                    pid.epoch,
                    if v2 { 2 } else { 1 }
                );
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::Timeout => Err(e),
            Err(e) => {
                let e = e.with_kind(ErrorKind::TransactionFatal);
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    /// `begin_transaction`: local only, as in the Java client.
    pub(crate) fn begin(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        if let Step::Start(to) = inner.machine.check(Call::Begin)? {
            inner.machine.transition(to)?;
            inner.partitions.clear();
            inner.offsets_added = false;
        }
        self.publish(&inner);
        Ok(())
    }

    /// `send_offsets_to_transaction`: AddOffsetsToTxn to the transaction
    /// coordinator, then TxnOffsetCommit to the group's coordinator (with
    /// protocol v2, TxnOffsetCommit alone: it adds the group).
    pub(crate) fn send_offsets(
        &self,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()> {
        let pid = {
            let inner = self.inner.lock();
            inner.machine.check(Call::SendOffsets)?;
            inner
                .pid
                .ok_or_else(|| Error::new(ErrorKind::InvalidState, "no producer id"))?
        };
        let deadline = deadline(timeout);
        let added = if self.protocol_v2() {
            // The coordinator may know of the transaction from here on,
            // whatever the answer: it must end with EndTxn.
            self.inner.lock().offsets_added = true;
            Ok(())
        } else {
            self.add_offsets(pid, &group.group_id, deadline)
        };
        let result = added.and_then(|()| self.txn_offset_commit(pid, offsets, group, deadline));
        self.settle(result, "send_offsets_to_transaction()")
    }

    /// `commit_transaction`: `flush` waits for every record of the
    /// transaction; then EndTxn(commit). A timeout leaves the state at
    /// `Committing`, and calling it again resumes.
    pub(crate) fn commit(
        &self,
        timeout: Duration,
        flush: impl FnOnce(Duration) -> Result<()>,
    ) -> Result<()> {
        let deadline = self.start_ending(Call::Commit, timeout, flush)?;
        // A record that failed moved the state to AbortableError.
        {
            let inner = self.inner.lock();
            if inner.machine.state() != TransactionState::Committing {
                return inner.machine.check(Call::Commit).map(|_| ());
            }
        }
        let result = if self.inner.lock().started() {
            self.end_txn(true, deadline).map(|_| ())
        } else {
            Ok(())
        };
        if result.is_ok() {
            self.maybe_switch_protocol(deadline);
        }
        self.finish_end(result, "commit_transaction()")
    }

    /// `abort_transaction`: fails what is not sent yet, waits for what is
    /// in flight, EndTxn(abort), and bumps the epoch when a batch with a
    /// sequence failed (protocol v2: EndTxn bumped it). A timeout leaves
    /// the state at `Aborting`.
    pub(crate) fn abort(
        &self,
        timeout: Duration,
        flush: impl FnOnce(Duration) -> Result<()>,
    ) -> Result<()> {
        // The sender fails queued batches now (state Aborting); in-flight
        // ones finish either way.
        let deadline = self.start_ending(Call::Abort, timeout, flush)?;
        let result = if self.inner.lock().started() {
            self.end_txn(false, deadline)
        } else {
            // The coordinator knows of no transaction: nothing to end.
            Ok(false)
        };
        let result = result.and_then(|bumped| {
            if bumped {
                // Protocol v2: EndTxn gave a new epoch, the partitions
                // start again at sequence 0.
                self.inner.lock().need_bump = false;
            }
            if !self.inner.lock().need_bump {
                return Ok(());
            }
            let pid = self.inner.lock().pid;
            let new = self.init_producer_id(deadline, pid)?;
            let mut inner = self.inner.lock();
            inner.pid = Some(new);
            inner.need_bump = false;
            log::info!(
                "transactional id `{}`: epoch bumped to {} after a failed batch",
                self.id,
                new.epoch
            );
            Ok(())
        });
        if result.is_ok() {
            self.maybe_switch_protocol(deadline);
        }
        self.finish_end(result, "abort_transaction()")
    }

    /// The first steps of a commit or abort: enter Committing/Aborting (or
    /// resume there) and wait for the transaction's records. Returns the
    /// call's deadline.
    fn start_ending(
        &self,
        call: Call,
        timeout: Duration,
        flush: impl FnOnce(Duration) -> Result<()>,
    ) -> Result<Instant> {
        let step = self.inner.lock().machine.check(call)?;
        if let Step::Start(to) = step {
            self.transition(to)?;
        }
        let deadline = deadline(timeout);
        match flush(left(deadline)) {
            Err(e) if e.kind() == ErrorKind::Timeout => Err(e.context(format_args!(
                "{} timed out waiting for the transaction's records; call it again to resume",
                call.name()
            ))),
            other => other.map(|()| deadline),
        }
    }

    /// After EndTxn: `Ready` on success; a timeout keeps the state (the
    /// call resumes); other errors are classified.
    fn finish_end(&self, result: Result<()>, what: &str) -> Result<()> {
        match result {
            Ok(()) => {
                let mut inner = self.inner.lock();
                inner.machine.transition(TransactionState::Ready)?;
                inner.partitions.clear();
                inner.offsets_added = false;
                self.publish(&inner);
                Ok(())
            }
            Err(e) => self.settle(Err(e), what),
        }
    }

    /// Passes timeouts through (the call may be repeated) and records
    /// other errors in the state machine.
    fn settle(&self, result: Result<()>, what: &str) -> Result<()> {
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Timeout => {
                Err(e.context(format_args!("{what} timed out; call it again to resume")))
            }
            Err(e) => {
                self.fail(e.clone());
                let inner = self.inner.lock();
                Err(inner.machine.error().cloned().unwrap_or(e))
            }
        }
    }

    // ---- the sender's call ------------------------------------------

    /// AddPartitionsToTxn for the partitions about to get their first
    /// batch of the transaction (the sender calls this once per drain).
    /// On success they count as added; failures move the transaction to
    /// an abortable or fatal error. With protocol v2 no request: the
    /// batch's Produce adds its partition, so they count as added at once.
    pub(crate) fn add_partitions(
        &self,
        parts: &[(Arc<str>, i32)],
        timeout: Duration,
    ) -> Result<()> {
        let Some(pid) = self.producer_id() else {
            return Err(Error::new(ErrorKind::InvalidState, "no producer id"));
        };
        if self.protocol_v2() {
            let mut inner = self.inner.lock();
            // Only while the transaction is open or committing (a drain
            // may race its end).
            if matches!(
                inner.machine.state(),
                TransactionState::InTransaction | TransactionState::Committing
            ) {
                inner.partitions.extend(parts.iter().cloned());
            }
            return Ok(());
        }
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in parts {
            match topics.iter_mut().find(|x| x.name == **t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(AddPartitionsToTxnTopic {
                    name: t.to_string(),
                    partitions: vec![*p],
                    ..Default::default()
                }),
            }
        }
        let request = AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: self.id.clone(),
            v3_and_below_producer_id: pid.id,
            v3_and_below_producer_epoch: pid.epoch,
            v3_and_below_topics: topics,
            ..Default::default()
        };
        let result = self.txn_call(
            "AddPartitionsToTxn",
            deadline(timeout),
            ADD_PARTITIONS_CLIENT_MAX,
            |_| request.clone(),
            |r| {
                if r.error_code != 0 {
                    return ErrorCode(r.error_code);
                }
                // The first partition error stands for all (the broker
                // fails the others with OPERATION_NOT_ATTEMPTED).
                r.results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .map(|p| ErrorCode(p.partition_error_code))
                    .find(|c| c.is_err() && *c != ErrorCode::OPERATION_NOT_ATTEMPTED)
                    .unwrap_or(ErrorCode::NONE)
            },
        );
        match result {
            Ok(_) => {
                let mut inner = self.inner.lock();
                inner.partitions.extend(parts.iter().cloned());
                Ok(())
            }
            Err(e) => {
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    // ---- requests ---------------------------------------------------

    fn init_producer_id(&self, deadline: Instant, bump: Option<ProducerId>) -> Result<ProducerId> {
        let timeout_ms = self.timeout_ms;
        let id = self.id.clone();
        let r = self.txn_call(
            "InitProducerId",
            deadline,
            i16::MAX,
            |v| {
                let mut request = InitProducerIdRequest {
                    transactional_id: Some(id.clone()),
                    transaction_timeout_ms: timeout_ms,
                    ..Default::default()
                };
                // KIP-360: bump our own epoch (v3+); older brokers give a
                // new epoch to a plain InitProducerId as well.
                if let (Some(pid), true) = (bump, v >= 3) {
                    request.producer_id = pid.id;
                    request.producer_epoch = pid.epoch;
                }
                request
            },
            |r| ErrorCode(r.error_code),
        )?;
        Ok(ProducerId {
            id: r.producer_id,
            epoch: r.producer_epoch,
        })
    }

    fn add_offsets(&self, pid: ProducerId, group_id: &str, deadline: Instant) -> Result<()> {
        let request = AddOffsetsToTxnRequest {
            transactional_id: self.id.clone(),
            producer_id: pid.id,
            producer_epoch: pid.epoch,
            group_id: group_id.to_owned(),
            ..Default::default()
        };
        self.txn_call(
            "AddOffsetsToTxn",
            deadline,
            i16::MAX,
            |_| request.clone(),
            |r| ErrorCode(r.error_code),
        )?;
        self.inner.lock().offsets_added = true;
        Ok(())
    }

    fn txn_offset_commit(
        &self,
        pid: ProducerId,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
        group: &ConsumerGroupMetadata,
        deadline: Instant,
    ) -> Result<()> {
        let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
        for (tp, om) in offsets {
            let partition = TxnOffsetCommitRequestPartition {
                partition_index: tp.partition,
                committed_offset: om.offset,
                committed_leader_epoch: om.leader_epoch.unwrap_or(-1),
                committed_metadata: Some(om.metadata.clone()),
                ..Default::default()
            };
            match topics.iter_mut().find(|t| t.name == *tp.topic) {
                Some(t) => t.partitions.push(partition),
                None => topics.push(TxnOffsetCommitRequestTopic {
                    name: tp.topic.to_string(),
                    partitions: vec![partition],
                    ..Default::default()
                }),
            }
        }
        let build = |v: i16| {
            let mut topics = topics.clone();
            if v < 2 {
                for p in topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                    p.committed_leader_epoch = -1;
                }
            }
            let mut r = TxnOffsetCommitRequest {
                transactional_id: self.id.clone(),
                group_id: group.group_id.clone(),
                producer_id: pid.id,
                producer_epoch: pid.epoch,
                topics,
                ..Default::default()
            };
            // KIP-447: the member's identity (v3+), so offsets from a
            // member that left the generation are refused.
            if v >= 3 {
                r.generation_id = group.generation_id;
                r.member_id = group.member_id.clone();
                r.group_instance_id = group.group_instance_id.clone();
            }
            r
        };
        let max_version = if self.protocol_v2() {
            i16::MAX
        } else {
            TXN_OFFSET_COMMIT_V1_MAX
        };
        self.call(
            CoordinatorKey::Group(&group.group_id),
            "TxnOffsetCommit",
            deadline,
            max_version,
            build,
            |r| {
                r.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| ErrorCode(p.error_code))
                    .find(|c| c.is_err())
                    .unwrap_or(ErrorCode::NONE)
            },
        )
        .map(|_| ())
    }

    /// EndTxn; returns whether the answer carried a new producer id and
    /// epoch (protocol v2, EndTxn v5+), which the next transaction uses.
    fn end_txn(&self, commit: bool, deadline: Instant) -> Result<bool> {
        let Some(pid) = self.producer_id() else {
            return Err(Error::new(ErrorKind::InvalidState, "no producer id"));
        };
        let request = EndTxnRequest {
            transactional_id: self.id.clone(),
            producer_id: pid.id,
            producer_epoch: pid.epoch,
            committed: commit,
            ..Default::default()
        };
        let max_version = if self.protocol_v2() {
            i16::MAX
        } else {
            END_TXN_V1_MAX
        };
        let r = self.txn_call(
            "EndTxn",
            deadline,
            max_version,
            |_| request.clone(),
            |r| ErrorCode(r.error_code),
        )?;
        // v4 and older answer -1 (the field's default).
        if r.producer_id < 0 || r.producer_epoch < 0 {
            return Ok(false);
        }
        let new = ProducerId {
            id: r.producer_id,
            epoch: r.producer_epoch,
        };
        // The sender follows the change: the next transaction's batches
        // carry the new epoch, from sequence 0.
        self.inner.lock().pid = Some(new);
        log::debug!(
            "transactional id `{}`: EndTxn gave producer id {} epoch {}",
            self.id,
            new.id,
            new.epoch
        );
        Ok(true)
    }

    /// At a transaction's end, as the Java 4.0 client: if the coordinator's
    /// answer to ApiVersions now says otherwise than at init (the cluster
    /// finalized `transaction.version` 2 since, seen on a new connection),
    /// the next transaction uses the other protocol. Moving to v2 first
    /// bumps the epoch (InitProducerId with the current one, KIP-360), so
    /// nothing of a v1 transaction counts in a v2 one; if that fails the
    /// producer stays on v1 and tries again at the next end.
    fn maybe_switch_protocol(&self, deadline: Instant) {
        let now_v2 = self.coordinator_speaks_v2();
        if now_v2 == self.protocol_v2() {
            return;
        }
        if now_v2 {
            let pid = self.inner.lock().pid;
            match self.init_producer_id(deadline, pid) {
                Ok(new) => self.inner.lock().pid = Some(new),
                Err(e) => {
                    log::warn!(
                        "transactional id `{}`: the coordinator now offers transaction protocol v2, but the epoch bump before it failed: {e}",
                        self.id
                    );
                    return;
                }
            }
        }
        self.v2.store(now_v2, Ordering::Release);
        log::info!(
            "transactional id `{}`: transaction protocol v{} from the next transaction",
            self.id,
            if now_v2 { 2 } else { 1 }
        );
    }

    /// Whether the transaction coordinator speaks protocol v2 (see
    /// [`speaks_protocol_v2`]); false when it cannot be asked.
    fn coordinator_speaks_v2(&self) -> bool {
        let Some(node) = self.inner.lock().txn_coordinator else {
            return false;
        };
        self.cluster
            .connection(node, Purpose::General)
            .and_then(|c| c.versions())
            .is_ok_and(|v| speaks_protocol_v2(&v))
    }

    fn txn_call<R: Request>(
        &self,
        what: &str,
        deadline: Instant,
        max_version: i16,
        build: impl Fn(i16) -> R,
        code: impl Fn(&R::Response) -> ErrorCode,
    ) -> Result<R::Response> {
        self.call(
            CoordinatorKey::Transaction(&self.id),
            what,
            deadline,
            max_version,
            build,
            code,
        )
    }

    /// Sends a request to the coordinator of `of` until it succeeds, fails
    /// for good, or `deadline` passes. Coordinator errors and lost
    /// connections look the coordinator up again; CONCURRENT_TRANSACTIONS
    /// waits 20 ms; COORDINATOR_LOAD_IN_PROGRESS waits `retry_backoff_ms`.
    fn call<R: Request>(
        &self,
        of: CoordinatorKey<'_>,
        what: &str,
        deadline: Instant,
        max_version: i16,
        build: impl Fn(i16) -> R,
        code: impl Fn(&R::Response) -> ErrorCode,
    ) -> Result<R::Response> {
        let backoff = self
            .cluster
            .config()
            .retry_backoff()
            .max(Duration::from_millis(10));
        let request_timeout = self.cluster.config().request_timeout;
        let mut last: Option<Error> = None;
        loop {
            let remaining = left(deadline);
            if remaining.is_zero() {
                let why = last.map_or_else(String::new, |e| format!("; last error: {e}"));
                return Err(Error::timeout(format!(
                    "{what} for transactional id `{}` did not finish in time{why}",
                    self.id
                )));
            }
            let node = match self.coordinator(of, remaining) {
                Ok(n) => n,
                Err(e) if e.is_retriable() => {
                    last = Some(e);
                    pause(backoff, deadline);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let answer =
                self.send_capped(node, max_version, &build, remaining.min(request_timeout));
            let response = match answer {
                Ok(r) => r,
                Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                    log::debug!("{what} to coordinator {node} failed: {e}");
                    self.forget_coordinator(of);
                    last = Some(e);
                    pause(backoff, deadline);
                    continue;
                }
                Err(e) => return Err(e.context(what)),
            };
            let c = code(&response);
            if c.is_ok() {
                return Ok(response);
            }
            let e = Error::broker(c, format!("{what} for transactional id `{}`", self.id));
            match c {
                ErrorCode::NOT_COORDINATOR | ErrorCode::COORDINATOR_NOT_AVAILABLE => {
                    self.forget_coordinator(of);
                    pause(backoff, deadline);
                }
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => pause(backoff, deadline),
                ErrorCode::CONCURRENT_TRANSACTIONS => pause(CONCURRENT_BACKOFF, deadline),
                c if is_fatal(c) => return Err(e.with_kind(ErrorKind::TransactionFatal)),
                c if c.is_retriable() => pause(backoff, deadline),
                _ => return Err(e.with_kind(ErrorKind::TransactionAbortable)),
            }
            last = Some(e);
        }
    }

    fn coordinator(&self, of: CoordinatorKey<'_>, timeout: Duration) -> Result<i32> {
        if let CoordinatorKey::Transaction(_) = of {
            if let Some(n) = self.inner.lock().txn_coordinator {
                return Ok(n);
            }
        }
        let node = find_coordinator_of(&self.cluster, of, timeout)?;
        if let CoordinatorKey::Transaction(_) = of {
            self.inner.lock().txn_coordinator = Some(node);
        }
        Ok(node)
    }

    fn forget_coordinator(&self, of: CoordinatorKey<'_>) {
        if let CoordinatorKey::Transaction(_) = of {
            self.inner.lock().txn_coordinator = None;
        }
    }

    /// Sends to `node` in the highest version both sides support, at most
    /// `max_version`.
    fn send_capped<R: Request>(
        &self,
        node: i32,
        max_version: i16,
        build: &impl Fn(i16) -> R,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.cluster.ensure_broker_known(node)?;
        let conn = self.cluster.connection(node, Purpose::General)?;
        let version = conn.versions()?.pick(
            R::API_KEY,
            (R::MIN_VERSION, R::MAX_VERSION.min(max_version)),
        )?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        conn.submit(
            &build(version),
            Some(version),
            true,
            timeout,
            Reply::new(tx, 0),
        )?;
        // The connection's reader enforces `timeout`; the extra second
        // only guards against a reply that never comes.
        let body = match rx.recv_timeout(timeout + Duration::from_secs(1)) {
            Ok(c) => c.result?,
            Err(_) => {
                return Err(Error::timeout(format!(
                    "no answer to {} from broker {node}",
                    R::API_KEY.name()
                )))
            }
        };
        decode_response::<R>(&body, version)
    }
}

/// Errors after which the transactional producer cannot go on (the Java
/// client's fatal errors).
pub(crate) fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::PRODUCER_FENCED
            | ErrorCode::INVALID_PRODUCER_EPOCH
            | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
            | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT
            | ErrorCode::UNSUPPORTED_VERSION
            | ErrorCode::INVALID_TXN_STATE
            | ErrorCode::INVALID_TRANSACTION_TIMEOUT
            | ErrorCode::TRANSACTION_COORDINATOR_FENCED
    )
}

fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn pause(d: Duration, deadline: Instant) {
    std::thread::sleep(d.min(left(deadline)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Kafka 4.0 coordinator's ranges for the APIs that carry the
    /// protocol, with `transaction.version` finalized at `level` (`None`:
    /// not reported, as before Kafka 3.8 or on Tansu).
    fn coordinator(
        produce: i16,
        txn_offset_commit: i16,
        end_txn: i16,
        level: Option<i16>,
    ) -> BrokerVersions {
        BrokerVersions::new([
            (ApiKey::PRODUCE.0, 3, produce),
            (ApiKey::TXN_OFFSET_COMMIT.0, 0, txn_offset_commit),
            (ApiKey::END_TXN.0, 0, end_txn),
        ])
        .with_finalized_features(level.map(|l| ("transaction.version".to_owned(), l)))
    }

    #[test]
    fn protocol_v2_needs_the_feature_and_the_versions_that_carry_it() {
        assert!(speaks_protocol_v2(&coordinator(12, 5, 5, Some(2))));
        assert!(speaks_protocol_v2(&coordinator(13, 5, 5, Some(3))));
        // Kafka 4.0 with transaction.version left at 0 or 1 (an upgraded
        // cluster that has not finalized it): protocol v1.
        assert!(!speaks_protocol_v2(&coordinator(12, 5, 5, Some(1))));
        assert!(!speaks_protocol_v2(&coordinator(12, 5, 5, Some(0))));
        assert!(!speaks_protocol_v2(&coordinator(12, 5, 5, None)));
        // Tansu 0.6 (Produce v11, TxnOffsetCommit v4, EndTxn v4), Kafka 3.9.
        assert!(!speaks_protocol_v2(&coordinator(11, 4, 4, None)));
        assert!(!speaks_protocol_v2(&coordinator(11, 4, 4, Some(2))));
        // The feature without one of the requests that carry it.
        assert!(!speaks_protocol_v2(&coordinator(11, 5, 5, Some(2))));
        assert!(!speaks_protocol_v2(&coordinator(12, 4, 5, Some(2))));
        assert!(!speaks_protocol_v2(&coordinator(12, 5, 4, Some(2))));
        // Another feature's level does not count.
        let other = BrokerVersions::new([
            (ApiKey::PRODUCE.0, 3, 12),
            (ApiKey::TXN_OFFSET_COMMIT.0, 0, 5),
            (ApiKey::END_TXN.0, 0, 5),
        ])
        .with_finalized_features([("group.version".to_owned(), 2)]);
        assert!(!speaks_protocol_v2(&other));
    }
}
