//! The one integration-test binary: everything here talks to a real
//! Kafka-compatible broker over TCP (Tansu started on a free port by the
//! testkit, or `KAFKA_BOOTSTRAP_SERVERS`), plus fault-injection fakes.

mod admin;
// Needs the SASL config keys of the `sasl` work and a SASL broker.
#[cfg(kafka_sasl)]
mod admin_sasl_acls;
mod bad_input;
mod chaos;
mod consumer;
mod consumer_faults;
mod faults;
mod fetch_sessions;
mod group;
mod group_faults;
mod group_kip848;
mod group_mixed;
mod harness;
mod producer;
mod producer_faults;
mod raw_protocol;
mod sasl;
mod tls;
mod transaction_faults;
mod transactions;
mod truncation;
