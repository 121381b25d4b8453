//! The transaction state machine, as the Java client's `TransactionManager`
//! has it: which state may follow which, and what each user call may do in
//! each state. Pure: no I/O, no clock, no locks (the caller holds one).
//!
//! ```text
//! Uninitialized ─init─► Initializing ─► Ready ─begin─► InTransaction ─commit─► Committing ─► Ready
//!                            ▲                             │    │                  │
//!                            │ (epoch bump)           abort│    │error             │error
//!                            │                             ▼    ▼                  ▼
//!                       Aborting ◄──────abort────── AbortableError ◄───────────────┘
//!                            │
//!                            └──► Ready
//! any state ─fatal error─► FatalError (final)
//! ```

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// Where a transactional producer is (the Java client's states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// `init_transactions` has not been called yet.
    Uninitialized,
    /// `init_transactions` is running (or timed out and may be called again).
    Initializing,
    /// No transaction open; `begin_transaction` may be called.
    Ready,
    /// A transaction is open: sends and `send_offsets_to_transaction` go
    /// into it.
    InTransaction,
    /// `commit_transaction` is running (or timed out: call it again).
    Committing,
    /// `abort_transaction` is running (or timed out: call it again).
    Aborting,
    /// The open transaction cannot commit; only `abort_transaction` helps.
    AbortableError,
    /// The producer cannot go on; close it.
    FatalError,
}

impl TransactionState {
    /// Every state, for tests and tables.
    pub const ALL: [TransactionState; 8] = [
        TransactionState::Uninitialized,
        TransactionState::Initializing,
        TransactionState::Ready,
        TransactionState::InTransaction,
        TransactionState::Committing,
        TransactionState::Aborting,
        TransactionState::AbortableError,
        TransactionState::FatalError,
    ];

    /// Whether `self` may be followed by `to` (the Java client's
    /// `isTransitionValid`).
    pub fn may_become(self, to: TransactionState) -> bool {
        use TransactionState::*;
        match to {
            Uninitialized => false,
            // First init, or an epoch bump after an abort (KIP-360).
            Initializing => matches!(self, Uninitialized | Aborting),
            Ready => matches!(self, Initializing | Committing | Aborting),
            InTransaction => self == Ready,
            Committing => self == InTransaction,
            Aborting => matches!(self, InTransaction | AbortableError),
            AbortableError => matches!(
                self,
                InTransaction | Committing | AbortableError | Initializing
            ),
            FatalError => true,
        }
    }

    /// A small number for the lock-free copy `send` reads.
    pub(crate) fn as_u8(self) -> u8 {
        self as u8
    }

    /// The inverse of [`as_u8`](Self::as_u8).
    pub(crate) fn from_u8(v: u8) -> TransactionState {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(TransactionState::FatalError)
    }
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            TransactionState::Uninitialized => "uninitialized",
            TransactionState::Initializing => "initializing",
            TransactionState::Ready => "ready",
            TransactionState::InTransaction => "in transaction",
            TransactionState::Committing => "committing",
            TransactionState::Aborting => "aborting",
            TransactionState::AbortableError => "abortable error",
            TransactionState::FatalError => "fatal error",
        };
        f.write_str(s)
    }
}

/// A user call, for the rules of what each may do in each state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Init,
    Begin,
    Send,
    SendOffsets,
    Commit,
    Abort,
}

impl Call {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Call::Init => "init_transactions()",
            Call::Begin => "begin_transaction()",
            Call::Send => "send()",
            Call::SendOffsets => "send_offsets_to_transaction()",
            Call::Commit => "commit_transaction()",
            Call::Abort => "abort_transaction()",
        }
    }
}

/// What a call does in the current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Move to this state and do the call's work.
    Start(TransactionState),
    /// A previous call of the same kind timed out: do the rest of its work.
    Resume,
    /// Nothing to do (send and offsets within an open transaction).
    Go,
}

/// The state machine: the state and the error that put it there.
#[derive(Debug)]
pub(crate) struct Machine {
    state: TransactionState,
    error: Option<Error>,
}

impl Machine {
    pub(crate) fn new() -> Machine {
        Machine {
            state: TransactionState::Uninitialized,
            error: None,
        }
    }

    pub(crate) fn state(&self) -> TransactionState {
        self.state
    }

    /// The error that made the state abortable or fatal.
    pub(crate) fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Moves to `to`, or says why not (a bug in the caller, never the
    /// broker's doing).
    pub(crate) fn transition(&mut self, to: TransactionState) -> Result<()> {
        if !self.state.may_become(to) {
            return Err(Error::new(
                ErrorKind::InvalidState,
                format!("the transaction cannot go from {} to {to}", self.state),
            ));
        }
        if matches!(
            to,
            TransactionState::Ready | TransactionState::InTransaction
        ) {
            self.error = None;
        }
        self.state = to;
        Ok(())
    }

    /// What `call` does now; an `Err` is returned to the user as it is.
    pub(crate) fn check(&self, call: Call) -> Result<Step> {
        use TransactionState::*;
        let step = match (self.state, call) {
            (FatalError, _) => return Err(self.sticky_error(call)),
            (Uninitialized, Call::Init) => Step::Start(Initializing),
            (Initializing, Call::Init) => Step::Resume,
            (Ready, Call::Begin) => Step::Start(InTransaction),
            (InTransaction, Call::Send | Call::SendOffsets) => Step::Go,
            (InTransaction, Call::Commit) => Step::Start(Committing),
            (Committing, Call::Commit) => Step::Resume,
            (InTransaction | AbortableError, Call::Abort) => Step::Start(Aborting),
            (Aborting, Call::Abort) => Step::Resume,
            (AbortableError, _) => return Err(self.sticky_error(call)),
            (Committing, Call::Abort) => return Err(self.wrong_state(
                call,
                "a commit_transaction() timed out: call commit_transaction() again to finish it",
            )),
            (Aborting, _) => {
                return Err(self.wrong_state(
                    call,
                    "an abort_transaction() timed out: call abort_transaction() again to finish it",
                ))
            }
            (Uninitialized, _) => {
                return Err(self.wrong_state(call, "call init_transactions() first"))
            }
            (Initializing, _) => {
                return Err(
                    self.wrong_state(call, "init_transactions() did not finish: call it again")
                )
            }
            (Ready, _) => return Err(self.wrong_state(call, "call begin_transaction() first")),
            (InTransaction, _) | (Committing, _) => {
                return Err(self.wrong_state(call, "a transaction is already open"))
            }
        };
        Ok(step)
    }

    /// Records a failure of the open transaction: fatal errors are final,
    /// abortable ones move an open (or committing) transaction to
    /// `AbortableError`. Errors while aborting change nothing: the abort
    /// goes on.
    pub(crate) fn fail(&mut self, e: Error) {
        match e.kind() {
            ErrorKind::TransactionFatal => {
                self.state = TransactionState::FatalError;
                self.error = Some(e);
            }
            _ if self.state.may_become(TransactionState::AbortableError)
                && self.state != TransactionState::AbortableError =>
            {
                self.state = TransactionState::AbortableError;
                self.error = Some(e.with_kind(ErrorKind::TransactionAbortable));
            }
            _ => {}
        }
    }

    fn sticky_error(&self, call: Call) -> Error {
        let kind = if self.state == TransactionState::FatalError {
            ErrorKind::TransactionFatal
        } else {
            ErrorKind::TransactionAbortable
        };
        let advice = if kind == ErrorKind::TransactionFatal {
            "the producer must be closed"
        } else {
            "call abort_transaction() and begin a new transaction"
        };
        match &self.error {
            Some(e) => e
                .clone()
                .with_kind(kind)
                .context(format_args!("{}: {advice}", call.name())),
            None => Error::new(kind, format!("{}: {advice}", call.name())),
        }
    }

    fn wrong_state(&self, call: Call, fix: &str) -> Error {
        Error::new(
            ErrorKind::InvalidState,
            format!(
                "{} is not allowed in transaction state `{}`: {fix}",
                call.name(),
                self.state
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::TransactionState::*;
    use super::*;

    #[test]
    fn every_transition_follows_the_java_table() {
        let allowed: &[(TransactionState, TransactionState)] = &[
            (Uninitialized, Initializing),
            (Aborting, Initializing),
            (Initializing, Ready),
            (Committing, Ready),
            (Aborting, Ready),
            (Ready, InTransaction),
            (InTransaction, Committing),
            (InTransaction, Aborting),
            (AbortableError, Aborting),
            (InTransaction, AbortableError),
            (Committing, AbortableError),
            (AbortableError, AbortableError),
            (Initializing, AbortableError),
        ];
        for from in TransactionState::ALL {
            for to in TransactionState::ALL {
                let want = to == FatalError || allowed.contains(&(from, to));
                assert_eq!(from.may_become(to), want, "{from} -> {to}");
                let mut m = Machine {
                    state: from,
                    error: None,
                };
                assert_eq!(m.transition(to).is_ok(), want, "{from} -> {to}");
                assert_eq!(m.state(), if want { to } else { from });
            }
        }
    }

    #[test]
    fn the_state_survives_a_round_trip_through_u8() {
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_u8(s.as_u8()), s);
        }
        assert_eq!(TransactionState::from_u8(200), FatalError);
    }

    fn at(state: TransactionState) -> Machine {
        Machine { state, error: None }
    }

    #[test]
    fn what_each_call_does_in_each_state() {
        use Call::*;
        let go = |s: TransactionState, c: Call| at(s).check(c).map_err(|e| e.kind());
        assert_eq!(go(Uninitialized, Init), Ok(Step::Start(Initializing)));
        assert_eq!(go(Initializing, Init), Ok(Step::Resume));
        assert_eq!(go(Ready, Begin), Ok(Step::Start(InTransaction)));
        assert_eq!(go(InTransaction, Send), Ok(Step::Go));
        assert_eq!(go(InTransaction, SendOffsets), Ok(Step::Go));
        assert_eq!(go(InTransaction, Commit), Ok(Step::Start(Committing)));
        assert_eq!(go(Committing, Commit), Ok(Step::Resume));
        assert_eq!(go(InTransaction, Abort), Ok(Step::Start(Aborting)));
        assert_eq!(go(AbortableError, Abort), Ok(Step::Start(Aborting)));
        assert_eq!(go(Aborting, Abort), Ok(Step::Resume));
        // A timed-out commit must be finished, not turned into an abort.
        assert_eq!(go(Committing, Abort), Err(ErrorKind::InvalidState));
        for c in [Begin, Send, SendOffsets, Commit] {
            assert_eq!(go(AbortableError, c), Err(ErrorKind::TransactionAbortable));
            assert_eq!(go(Aborting, c), Err(ErrorKind::InvalidState));
            assert_eq!(go(Uninitialized, c), Err(ErrorKind::InvalidState));
        }
        for c in [Init, Begin, Send, SendOffsets, Commit, Abort] {
            assert_eq!(go(FatalError, c), Err(ErrorKind::TransactionFatal));
        }
        for c in [Send, SendOffsets, Commit, Abort, Init] {
            assert_eq!(go(Ready, c), Err(ErrorKind::InvalidState));
        }
        assert_eq!(go(InTransaction, Begin), Err(ErrorKind::InvalidState));
        assert_eq!(go(InTransaction, Init), Err(ErrorKind::InvalidState));
    }

    #[test]
    fn failures_are_sticky_and_say_which_kind_they_are() {
        let mut m = at(InTransaction);
        let broker = Error::broker(crate::protocol::ErrorCode::MESSAGE_TOO_LARGE, "rejected");
        m.fail(broker);
        assert_eq!(m.state(), AbortableError);
        let e = m.check(Call::Commit).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TransactionAbortable);
        assert_eq!(
            e.kafka_code(),
            Some(crate::protocol::ErrorCode::MESSAGE_TOO_LARGE)
        );
        assert!(e.to_string().contains("abort_transaction"), "{e}");
        // Aborting ignores further batch failures; the abort goes on.
        m.transition(Aborting).unwrap();
        m.fail(Error::timeout("late batch"));
        assert_eq!(m.state(), Aborting);
        m.transition(Ready).unwrap();
        assert!(m.error().is_none());
        // A fatal error ends everything, whatever the state.
        m.fail(Error::new(ErrorKind::TransactionFatal, "fenced"));
        assert_eq!(m.state(), FatalError);
        assert_eq!(
            m.check(Call::Abort).unwrap_err().kind(),
            ErrorKind::TransactionFatal
        );
        m.fail(Error::timeout("later"));
        assert_eq!(m.state(), FatalError);
    }
}
