//! The one integration-test binary: everything here talks to a real
//! Kafka-compatible broker over TCP (Tansu started on a free port by the
//! testkit, or `KAFKA_BOOTSTRAP_SERVERS`), plus fault-injection fakes.

mod admin;
mod consumer;
mod consumer_faults;
mod faults;
mod group;
mod group_faults;
mod group_kip848;
mod harness;
mod producer;
mod producer_faults;
mod raw_protocol;
mod sasl;
mod tls;
mod transaction_faults;
mod transactions;
