//! # kafka-blocking
//!
//! A blocking, pure-Rust Apache Kafka client for programs that do not want
//! an async runtime: CLI tools, batch jobs, embedded services, threads
//! sharing one producer. Calls block the calling thread; every broker
//! connection is served by its own I/O threads fed by crossbeam channels.
//!
//! * [Quickstart](#quickstart)
//! * [Producing](#producing)
//! * [Consuming](#consuming)
//! * [Consumer groups](#consumer-groups)
//! * [Admin](#admin)
//! * [Raw protocol](#raw-protocol)
//! * [Configuration](#configuration)
//! * [Errors](#errors)
//! * [Threading model](#threading-model)
//! * [Testing against a broken cluster](#testing-against-a-broken-cluster)
//! * [Compared with other clients](#compared-with-other-clients)
//! * [Modules and features](#modules-and-features)
//!
//! ## Quickstart
//!
//! Create a topic, write to it, read it back in a consumer group:
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::admin::{AdminClient, NewTopic};
//! use kafka_blocking::consumer::Consumer;
//! use kafka_blocking::producer::{Producer, Record};
//!
//! fn main() -> kafka_blocking::Result<()> {
//!     let servers = "127.0.0.1:9092";
//!
//!     // Each topic gets its own answer: one failure hides no other.
//!     let admin = AdminClient::builder().bootstrap_servers(servers).build()?;
//!     for (topic, result) in admin.create_topics([NewTopic::new("greetings", 3, 1)], false, None)? {
//!         match result {
//!             Ok(()) => println!("created {topic}"),
//!             Err(e) => println!("{topic}: {e}"), // e.g. TOPIC_ALREADY_EXISTS on a rerun
//!         }
//!     }
//!
//!     // send() queues the record and returns a future; flush() waits for all.
//!     let producer = Producer::builder().bootstrap_servers(servers).build()?;
//!     for i in 0..10 {
//!         let _future = producer.send(Record::new("greetings").key(format!("user-{i}")).value("hello"))?;
//!     }
//!     producer.flush(Duration::from_secs(10))?;
//!
//!     // Iterate like kafka-python's KafkaConsumer; stop after 5 s without records.
//!     let mut consumer = Consumer::builder()
//!         .bootstrap_servers(servers)
//!         .group_id("greeters")
//!         .auto_offset_reset("earliest")
//!         .consumer_timeout_ms(5_000)
//!         .build()?;
//!     consumer.subscribe(["greetings"])?;
//!     for msg in &mut consumer {
//!         let msg = msg?;
//!         let key: Option<&str> = msg.key_as()?;
//!         let value: &str = msg.value_as()?; // borrowed from the fetched buffer
//!         println!("{}-{}@{} {key:?}: {value}", msg.topic(), msg.partition(), msg.offset());
//!     }
//!     consumer.close(true) // commit and leave the group now
//! }
//! ```
//!
//! `cargo run --release --example quickstart` does the same at scale
//! against a local broker it starts itself: 1,000,000 records from 4
//! threads, read back by a group member, every record accounted for.
//!
//! ## Producing
//!
//! A [`Producer`] is `Clone + Send + Sync`: clones share one sender thread,
//! one buffer and one set of connections, so hand a clone to every thread.
//! [`send`](Producer::send) appends the record to its partition's batch in
//! the calling thread and returns a [`DeliveryFuture`](producer::DeliveryFuture)
//! at once (it blocks only while the buffer is full or the topic's metadata
//! is unknown, up to `max_block_ms`); the sender thread compresses, sends and
//! retries batches. Three ways to learn the outcome:
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::producer::{Producer, Record};
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let producer = Producer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .compression_type("zstd")
//!     .linger_ms(10)
//!     .build()?;
//!
//! // 1. Wait for this record's acknowledgement.
//! let meta = producer.send(Record::new("orders").key("o-17").value("{\"total\":42}"))?.wait()?;
//! println!("stored at {}-{}@{}", meta.topic(), meta.partition(), meta.offset());
//!
//! // 2. A callback, run on the producer's sender thread (keep it short).
//! producer.send_with_callback(
//!     Record::new("orders").value("no key").header("source", "web"),
//!     |outcome| if let Err(e) = outcome { eprintln!("lost a record: {e}") },
//! )?;
//!
//! // 3. Fire and forget, then flush: waits for everything sent before it.
//! for i in 0..1_000 {
//!     let _ = producer.send(Record::new("clicks").partition(i % 3).value(i as u64))?;
//! }
//! producer.flush(Duration::from_secs(30))?;
//! producer.close(Duration::from_secs(5))?; // or let the last clone drop
//! # Ok(())
//! # }
//! ```
//!
//! Keys and values are anything [`IntoPayload`](producer::IntoPayload):
//! `&str`, `String`, byte slices, [`Bytes`], and integers or floats
//! (big-endian, as the Java client's serializers). For kafka-python's
//! `key_serializer`/`value_serializer`, attach [`Serializer`](producer::Serializer)s
//! with [`Producer::typed`], which gives a [`TypedProducer`](producer::TypedProducer);
//! JSON comes with the `json` feature (`producer::JsonSerializer`). Records
//! with a key go to `murmur2(key) % partitions` (the Java client's choice, so
//! both clients agree); records without one stick to a partition until its
//! batch is sent ([`Partitioner`](producer::Partitioner) has the others).
//! Idempotence is on by default (`acks=all`, sequence numbers per
//! partition): retries do not duplicate or reorder records.
//!
//! ## Consuming
//!
//! A [`Consumer`] reads assigned partitions, or joins a group (next
//! section). Iterate it (`for msg in &mut consumer`; iteration ends after
//! `consumer_timeout_ms` without records, or never by default) or
//! [`poll`](Consumer::poll) it for batches. Each [`Message`]'s key, value and
//! headers are views into the fetched buffer: nothing is copied until you
//! ask for an owned type.
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::consumer::Consumer;
//! use kafka_blocking::TopicPartition;
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let mut consumer = Consumer::builder().bootstrap_servers("127.0.0.1:9092").build()?;
//! let p0 = TopicPartition::new("sensors", 0);
//! consumer.assign([p0.clone()])?;
//! consumer.seek(&p0, 1_000)?; // or seek_to_beginning / seek_to_end / offsets_for_times
//! loop {
//!     let records = consumer.poll(Duration::from_millis(500))?;
//!     if records.is_empty() {
//!         break;
//!     }
//!     for msg in &records {
//!         let celsius: f64 = msg.value_as()?; // 8 bytes, big-endian
//!         println!("{}@{}: {celsius}", msg.partition(), msg.offset());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Typed access: [`Message::key_as`]/[`Message::value_as`] decode
//! [`FromPayload`](consumer::FromPayload) types (`&str`, `String`, `&[u8]`,
//! `Bytes`, big-endian numbers, `Option` of those for nulls);
//! [`Message::value_with`] takes any [`Deserializer`](consumer::Deserializer),
//! and a closure `Fn(&str, Option<&Bytes>) -> Result<T>` is one (kafka-python's
//! `value_deserializer`). Behind the scenes a fetch thread keeps one Fetch in
//! flight per leader (with incremental fetch sessions when the broker offers
//! them), so the next batch arrives while you process this one.
//!
//! ## Consumer groups
//!
//! With a `group_id`, [`subscribe`](Consumer::subscribe) (or
//! [`subscribe_pattern`](Consumer::subscribe_pattern)) joins the group; the
//! group hands out partitions and moves them when members come and go.
//! Offsets are committed every `auto_commit_interval_ms` by default, before
//! partitions are revoked, and on [`close`](Consumer::close). For
//! at-least-once processing commit yourself after processing:
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::consumer::{Consumer, RebalanceListener};
//! use kafka_blocking::TopicPartition;
//!
//! struct Log;
//! impl RebalanceListener for Log {
//!     fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
//!         println!("now reading {partitions:?}");
//!     }
//! }
//!
//! # fn store(_: &kafka_blocking::Message) {}
//! # fn main() -> kafka_blocking::Result<()> {
//! let mut consumer = Consumer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .group_id("billing")
//!     .enable_auto_commit(false)
//!     .auto_offset_reset("earliest")
//!     .build()?;
//! consumer.set_rebalance_listener(Log);
//! consumer.subscribe(["orders", "refunds"])?;
//! loop {
//!     let records = consumer.poll(Duration::from_secs(1))?;
//!     for msg in &records {
//!         store(msg);
//!     }
//!     consumer.commit()?; // the positions after the records returned so far
//! }
//! # }
//! ```
//!
//! A group thread heartbeats on its own connection, so slow processing does
//! not cost the membership (up to `max_poll_interval_ms` between polls).
//! Assignors: `range` and `cooperative-sticky` by default (as the Java
//! client 4.x), `roundrobin` and `sticky` too. `group_instance_id` makes the
//! member static (a restart within `session_timeout_ms` keeps its
//! partitions). `group_protocol("consumer")` uses the KIP-848 protocol,
//! where the broker computes assignments (brokers that enable it; on by
//! default from Kafka 4.0). Rebalance and `commit_async` callbacks
//! run on the consumer's thread, inside `poll`/`next()`.
//!
//! ## Admin
//!
//! [`AdminClient`] (kafka-python's `KafkaAdminClient`): topics (create,
//! delete, list, describe, add partitions), configs (describe, alter,
//! incremental alter), consumer groups (list, describe, delete, list/alter/delete
//! offsets), delete records, describe cluster, ACLs. Each request goes to
//! the broker that must answer it (controller, coordinator, leader),
//! retriable errors are retried within the operation's timeout, and
//! results come **per item**:
//!
//! ```no_run
//! use kafka_blocking::admin::{AdminClient, ConfigResource};
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let admin = AdminClient::builder().bootstrap_servers("127.0.0.1:9092").build()?;
//! for (resource, entries) in admin.describe_configs([ConfigResource::topic("orders")], false, false)? {
//!     match entries {
//!         Ok(entries) => {
//!             for e in entries.iter().filter(|e| !e.is_default) {
//!                 println!("{resource}: {} = {:?}", e.name, e.value);
//!             }
//!         }
//!         Err(e) => eprintln!("{resource}: {e}"),
//!     }
//! }
//! for group in admin.list_consumer_groups()? {
//!     println!("group {} ({:?})", group.group_id, group.state);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Raw protocol
//!
//! [`Client`] sends any request of [`protocol::messages`] — generated from
//! Apache Kafka's message schemas, every version, flexible versions with
//! tagged fields — to any broker, at the highest version both sides
//! support, and returns the typed response:
//!
//! ```no_run
//! use kafka_blocking::protocol::messages::{DescribeClusterRequest, MetadataRequest};
//! use kafka_blocking::{Client, ClientConfig};
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let client = Client::new(ClientConfig::builder().bootstrap_servers("127.0.0.1:9092").build()?)?;
//! let metadata = client.send_any(&MetadataRequest::default())?; // topics: None = all
//! for b in &metadata.brokers {
//!     let cluster = client.send_to(b.node_id, &DescribeClusterRequest::default())?;
//!     println!("broker {} says the controller is {}", b.node_id, cluster.controller_id);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Configuration
//!
//! Builders take kafka-python's names (`snake_case`; the Java names with
//! `.` → `_`) and check every value in `build()`, failing with
//! [`ErrorKind::Config`] and the key's name. The options shared by every
//! client are also on [`ClientConfigBuilder`]. Every key of kafka-python
//! 3.0's `KafkaProducer` (P), `KafkaConsumer` (C) and `KafkaAdminClient`
//! (A), and what this crate does with it:
//!
//! | kafka-python key | in | here | default here | note |
//! |---|---|---|---|---|
//! | `bootstrap_servers` | PCA | `bootstrap_servers` | `localhost:9092` | `host[:port]`, comma-separated |
//! | `client_id` | PCA | `client_id` | `kafka-blocking-<version>` | |
//! | `request_timeout_ms` | PCA | `request_timeout_ms` | 30000 | |
//! | `metadata_max_age_ms` | PCA | `metadata_max_age_ms` | 300000 | |
//! | `retry_backoff_ms` | PCA | `retry_backoff_ms` | 100 | |
//! | `reconnect_backoff_ms` | PCA | `reconnect_backoff_ms` | 50 | doubles per failure |
//! | `reconnect_backoff_max_ms` | PCA | `reconnect_backoff_max_ms` | 1000 | as the Java client; kafka-python: 30000 |
//! | `connections_max_idle_ms` | PCA | `connections_max_idle_ms` | 540000 | `-1`: never close |
//! | `max_in_flight_requests_per_connection` | PCA | `max_in_flight_requests_per_connection` | 5 | |
//! | `receive_message_max_bytes` | PCA | `receive_message_max_bytes` | 104857600 (100 MiB) | kafka-python: 100000000 |
//! | `api_version` | PCA | `api_version` | negotiated | only used when a broker refuses ApiVersions: then that release's API versions are assumed |
//! | `security_protocol` | PCA | `security_protocol` | `PLAINTEXT` | `SSL` (feature `tls`), `SASL_PLAINTEXT`, `SASL_SSL` (feature `tls`) |
//! | `ssl_cafile` | PCA | `ssl_cafile` | system trust store | PEM bundle of the CAs that signed the brokers' certificates |
//! | `ssl_certfile` | PCA | `ssl_certfile` | none | client certificate (PEM) for mTLS; may also hold the key |
//! | `ssl_keyfile` | PCA | `ssl_keyfile` | the key in `ssl_certfile` | PKCS#8, PKCS#1 or SEC1 PEM |
//! | `ssl_password` | PCA | `ssl_password` | none | opens an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2/AES); never shown in `Debug` or errors |
//! | `ssl_check_hostname` | PCA | `ssl_check_hostname` | `true` | `false` still checks the chain, dates and CRLs |
//! | `ssl_crlfile` | PCA | `ssl_crlfile` | none | PEM CRLs; a listed broker certificate is refused |
//! | `ssl_context` | PCA | `ssl_context` | | an `Arc<rustls::ClientConfig>` used as is (not combinable with the other `ssl_*`) |
//! | `ssl_ciphers` | PCA | `ssl_ciphers` | AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 (TLS 1.3, then 1.2) | `:`-separated IANA or OpenSSL suite names, most preferred first; also covers TLS 1.3 |
//! | `sasl_mechanism` | PCA | `sasl_mechanism` | none (required with `SASL_*`) | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (feature `scram`), `OAUTHBEARER`; `GSSAPI`, `AWS_MSK_IAM` fail at `build()` saying what to use instead |
//! | `sasl_plain_username`, `sasl_plain_password` | PCA | `sasl_plain_username`, `sasl_plain_password` | | PLAIN and SCRAM; the password never appears in `Debug`, errors or logs |
//! | `sasl_oauth_token_provider` | PCA | `sasl_oauth_token_provider` | | an [`OAuthBearerTokenProvider`]; [`UnsecuredJwtProvider`] for development brokers only; asked again at 80 % of a token's lifetime |
//! | `sasl_kerberos_name`, `sasl_kerberos_service_name`, `sasl_kerberos_domain_name` | PCA | — | | GSSAPI is not supported (no system Kerberos library in a pure-Rust client) |
//! | *(Java)* `connections.max.reauth.ms` (broker) | | — | | sessions the broker bounds are re-authenticated in place (KIP-368) |
//! | `proxy_url`, `socks5_proxy` | PCA | — | | not yet |
//! | `client_dns_lookup` | PCA | — | `use_all_dns_ips` | every resolved address is tried in turn |
//! | `bootstrap_timeout_ms` | PCA | — | | no separate bound: a first metadata lookup is bounded by `max_block_ms` (producer) or the call's timeout |
//! | `receive_buffer_bytes`, `send_buffer_bytes` | PCA | — | OS default | |
//! | `socket_options` | PCA | — | `TCP_NODELAY` | |
//! | `metric_reporters`, `metrics_enabled`, `metrics_num_samples`, `metrics_sample_window_ms`, `metric_group_prefix` | PCA | — | | counters are always kept: `Producer::metrics`, `Consumer::metrics` |
//! | `selector`, `kafka_client` | PCA | — | | not applicable: threads and blocking sockets |
//! | *(Java)* `socket.connection.setup.timeout.ms` | | `socket_connection_setup_timeout_ms` | 10000 | TCP connect + ApiVersions handshake |
//! | `key_serializer`, `value_serializer` | P | [`Producer::typed`] | none (bytes) | or `Record::key_with`/`value_with` |
//! | `acks` | P | `acks` | `all` | `0`, `1`, `all`/`-1` |
//! | `enable_idempotence` | P | `enable_idempotence` | `true` | turned off implicitly by `acks` ≠ `all` or `retries=0` when not set |
//! | `transactional_id`, `transaction_timeout_ms` | P | `transactional_id`, `transaction_timeout_ms` | none, 60000 | transactions: [`Producer::init_transactions`]; implies idempotence |
//! | `delivery_timeout_ms` | P | `delivery_timeout_ms` | 120000 | |
//! | `compression_type` | P | `compression_type` | none | `gzip`, `snappy`, `lz4`, `zstd` |
//! | `retries` | P | `retries` | 2147483647 | kafka-python: infinite; `delivery_timeout_ms` is the real bound |
//! | `batch_size` | P | `batch_size` | 16384 | |
//! | `linger_ms` | P | `linger_ms` | 5 | as the Java client 4.x; kafka-python: 0 |
//! | `partitioner` | P | `partitioner` | murmur2 + sticky | kafka-python: murmur2 + random per record ([`Partitioner::Random`](producer::Partitioner::Random)) |
//! | `max_block_ms` | P | `max_block_ms` | 60000 | |
//! | `max_request_size` | P | `max_request_size` | 1048576 | |
//! | `allow_auto_create_topics` | P | — | on | the producer's metadata requests allow it (the broker decides) |
//! | *(Java)* `buffer.memory` | | `buffer_memory` | 33554432 | `send` blocks when this much waits |
//! | `group_id` | C | `group_id` | none | |
//! | `group_instance_id` | C | `group_instance_id` | none | static membership |
//! | `key_deserializer`, `value_deserializer` | C | [`Message::key_with`]/[`Message::value_with`] | | or `key_as`/`value_as` |
//! | `auto_offset_reset` | C | `auto_offset_reset` | `latest` | `earliest`, `latest`, `none` |
//! | `enable_auto_commit` | C | `enable_auto_commit` | `true` (with a group) | |
//! | `auto_commit_interval_ms` | C | `auto_commit_interval_ms` | 5000 | |
//! | `default_offset_commit_callback` | C | — | | a callback per [`commit_async`](Consumer::commit_async) call |
//! | `enable_incremental_fetch_sessions` | C | — | on | used whenever the broker offers them |
//! | `fetch_min_bytes` | C | `fetch_min_bytes` | 1 | |
//! | `fetch_max_wait_ms` | C | `fetch_max_wait_ms` | 500 | |
//! | `fetch_max_bytes` | C | `fetch_max_bytes` | 52428800 | |
//! | `max_partition_fetch_bytes` | C | `max_partition_fetch_bytes` | 1048576 | |
//! | `max_poll_records` | C | `max_poll_records` | 500 | |
//! | `max_poll_interval_ms` | C | `max_poll_interval_ms` | 300000 | |
//! | `session_timeout_ms` | C | `session_timeout_ms` | 45000 | classic protocol |
//! | `heartbeat_interval_ms` | C | `heartbeat_interval_ms` | 3000 | classic protocol |
//! | `partition_assignment_strategy` | C | `partition_assignment_strategy` | `range`, `cooperative-sticky` | as the Java client 4.x; kafka-python: range, roundrobin |
//! | `check_crcs` | C | `check_crcs` | `true` | |
//! | *(none)* | | `max_decompressed_bytes` (consumer) | 67108864 (64 MiB) | the most one compressed batch may decompress to; a batch over it is a `Compression` error naming this setting |
//! | `isolation_level` | C | `isolation_level` | `read_uncommitted` | |
//! | `allow_auto_create_topics` | C | `allow_auto_create_topics` | `true` | |
//! | `exclude_internal_topics` | C | `exclude_internal_topics` | `true` | |
//! | `consumer_timeout_ms` | C | `consumer_timeout_ms` | forever | iteration only; counted from the first assignment |
//! | `client_rack` | C | `client_rack` | none | fetch from the closest replica (KIP-392) |
//! | *(Java)* `group.protocol`, `group.remote.assignor` | | `group_protocol`, `group_remote_assignor` | `classic` | `consumer`: KIP-848 |
//! | *(Java)* `default.api.timeout.ms` | | `default_api_timeout_ms` (admin) | `request_timeout_ms` | bounds an admin operation's retries |
//!
//! ## Errors
//!
//! Every call returns [`Result<T>`](Result) with one opaque [`Error`]. Its
//! `Display` is a sentence to act on: what failed, the Kafka error name and
//! description when a broker answered with one, and the topic, partition
//! and offset concerned. To decide in code:
//!
//! * [`Error::kind`] — an [`ErrorKind`]: `Config` and `InvalidArgument`
//!   (fix the program), `Io`/`Disconnected`/`Timeout` (the network),
//!   `Tls` (certificates, or `security_protocol` not matching the listener;
//!   not retriable), `Broker` (see the code), `MessageTooLarge`, `BufferExhausted`,
//!   `Serialization`, `NoOffset`, `Rebalance`, `Closed`, `Authentication`
//!   (the SASL login failed: [`Error::is_auth`]) and `Authorization` (an
//!   ACL is missing: [`Error::is_authorization`]), ...
//! * [`Error::kafka_code`] — the broker's [`ErrorCode`](protocol::ErrorCode)
//!   (`TOPIC_ALREADY_EXISTS`, `NOT_LEADER_OR_FOLLOWER`, ...), when there is one.
//! * [`Error::is_retriable`] — whether the same call may succeed later.
//!
//! The clients already retry what is retriable inside their own bounds
//! (the producer until `delivery_timeout_ms`, the consumer's fetch thread
//! as long as it runs, an admin operation until its timeout), so a retriable error
//! that reaches you means that bound ran out: retry later, or report it.
//!
//! ```no_run
//! use kafka_blocking::producer::{Producer, Record};
//! use kafka_blocking::protocol::ErrorCode;
//! use kafka_blocking::ErrorKind;
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! # let producer = Producer::builder().build()?;
//! match producer.send(Record::new("audit").value("login"))?.wait() {
//!     Ok(meta) => println!("offset {}", meta.offset()),
//!     Err(e) if e.kind() == ErrorKind::MessageTooLarge => eprintln!("too big, dropped: {e}"),
//!     Err(e) if e.is_authorization() => {
//!         // TOPIC_AUTHORIZATION_FAILED here; the error names the topic.
//!         assert_eq!(e.kafka_code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
//!         eprintln!("ask for write access to `audit`: {e}")
//!     }
//!     Err(e) if e.is_retriable() => eprintln!("cluster unavailable for 2 minutes: {e}"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Threading model
//!
//! No async runtime: each call blocks the thread that makes it, and
//! background work runs on named std threads.
//!
//! | thread | started by | does |
//! |---|---|---|
//! | `kafka-io-…`, `kafka-rd-…` | each broker connection | connect and handshake, write requests in order (`io`); read answers and match them to callers (`rd`) |
//! | `kafka-producer-sender` | each [`Producer`] (shared by its clones) | drains ready batches, compresses, sends, retries, completes futures, runs delivery callbacks |
//! | `kafka-consumer-fetch` | each [`Consumer`] | keeps Fetch requests in flight and queues the answers |
//! | `kafka-consumer-group` | each [`Consumer`] with a `group_id` | joins, syncs and heartbeats with the coordinator |
//!
//! Connections are pooled per broker and purpose (metadata/admin, produce,
//! fetch, group), so a long-poll fetch never delays a heartbeat or a
//! produce. [`AdminClient`] and [`Client`] start no thread of their own;
//! their calls wait on the connection threads.
//!
//! [`Producer`], [`AdminClient`] and [`Client`] are `Clone + Send + Sync`:
//! share them. A [`Consumer`] is `Send` but not `Sync`: one thread owns
//! it (move it into a thread to read there). Messages and futures can go
//! anywhere:
//!
//! ```
//! fn send_sync<T: Send + Sync>() {}
//! send_sync::<kafka_blocking::Producer>();
//! send_sync::<kafka_blocking::AdminClient>();
//! send_sync::<kafka_blocking::Client>();
//! send_sync::<kafka_blocking::Message>();
//! send_sync::<kafka_blocking::producer::DeliveryFuture>();
//! send_sync::<kafka_blocking::Error>();
//!
//! fn send<T: Send>() {}
//! send::<kafka_blocking::Consumer>();
//! ```
//!
//! Callbacks: producer delivery callbacks run on the sender thread (calling
//! `flush` there is refused); rebalance and `commit_async` callbacks run on
//! the consumer's own thread, inside `poll`/`next()`.
//!
//! ## Testing against a broken cluster
//!
//! With feature `testkit`, `testkit::ChaosCluster`
//! makes one real broker look like a cluster of N brokers on N local ports,
//! so that your own tests can move partition leaders, kill and revive
//! brokers, slow them down or silence them, cut connections at random and
//! inject error codes while your producers and consumers run. It rewrites
//! the cluster's shape in `Metadata`, `FindCoordinator` and
//! `DescribeCluster` answers, answers `NOT_LEADER_OR_FOLLOWER` and
//! `NOT_COORDINATOR` on the wrong node, and forwards everything else to the
//! real broker unchanged:
//!
//! ```no_run
//! # #[cfg(feature = "testkit")]
//! # fn main() -> kafka_blocking::Result<()> {
//! use std::time::Duration;
//! use kafka_blocking::producer::{Producer, Record};
//! use kafka_blocking::testkit::{ChaosCluster, LocalBroker};
//!
//! let broker = LocalBroker::start()?;
//! let cluster = ChaosCluster::start(broker.bootstrap_servers(), 3)?;
//! let producer = Producer::builder()
//!     .bootstrap_servers(cluster.bootstrap_servers())
//!     .build()?;
//! let pending = producer.send(Record::new("events").partition(0).value("a"))?;
//! cluster.move_leader("events", 0, 2)?; // bumps the leader epoch
//! cluster.kill(3); // port closed, connections cut, its partitions move
//! cluster.set_cut_per_mille(10); // 1 request in 100 loses its connection
//! pending.get(Duration::from_secs(30))?;
//! cluster.revive(3)?;
//! println!("{:?}", cluster.stats());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testkit"))]
//! # fn main() {}
//! ```
//!
//! The crate's own chaos tests (`tests/it/chaos.rs`) use it: an idempotent
//! producer loses, duplicates and reorders nothing while leaders move every
//! 200 ms and a node dies; a consumer group of three loses nothing.
//!
//! ## Compared with other clients
//!
//! From each project's documentation and source at the versions named
//! (the peer benchmark's versions); "—" means no.
//!
//! | | kafka-blocking | kafka-python 3.0.12 | confluent-kafka 2.16.1 (Python) | rdkafka 0.38 (Rust) | kafka 0.10 (Rust) |
//! |---|---|---|---|---|---|
//! | API | blocking | blocking | blocking, poll-driven callbacks | poll-based `Base*` and futures-based `FutureProducer`/`StreamConsumer` | blocking |
//! | threads | per-connection I/O threads, producer sender, consumer fetch and group threads | an I/O thread (selector loop), a producer sender thread | librdkafka's (a main thread and one per broker) | librdkafka's | none: requests run in the calling thread |
//! | C code | no librdkafka; the lz4 and zstd codecs compile their bundled C sources with `cc` | none required (optional C crc32c) | librdkafka 2.16.0, bundled in the wheel | librdkafka 2.10.0 (built with cmake, or a system library) | OpenSSL with the default `security` feature |
//! | protocol versions | negotiated per broker (ApiVersions); every schema version of 42 APIs, flexible versions | negotiated; messages from the JSON schemas, flexible versions | negotiated by librdkafka | negotiated by librdkafka | v0 requests only (OffsetCommit up to v2), magic-0 message sets |
//! | idempotent producer | yes, default | yes, default | yes | yes | — |
//! | transactions | yes (protocol v1; `read_committed` consuming) | yes | yes | yes | — |
//! | consumer groups | classic: range, roundrobin, sticky, cooperative-sticky; static membership | classic: range, roundrobin, sticky, cooperative-sticky | classic: range, roundrobin, cooperative-sticky | classic: range, roundrobin, cooperative-sticky | offset storage for a named group only; no membership (partitions chosen by the caller) |
//! | KIP-848 (`group.protocol=consumer`) | yes | — | yes (GA since librdkafka 2.12) | preview in librdkafka 2.10 | — |
//! | compression | gzip, snappy, lz4, zstd | gzip; snappy, lz4, zstd with optional packages | gzip, snappy, lz4, zstd | gzip, snappy, lz4; zstd with the `zstd` feature | gzip, snappy |
//! | admin client | topics, partitions, configs, groups and offsets, records, cluster, ACLs | yes (`KafkaAdminClient`) | yes (`AdminClient`) | yes (`AdminClient`, async) | — |
//! | TLS / SASL | TLS (rustls, feature `tls`); SASL: PLAIN, SCRAM-SHA-256/512, OAUTHBEARER, re-authentication (KIP-368) | yes | yes | yes (`ssl`, `gssapi` features) | TLS (OpenSSL); no SASL |
//!
//! The peer benchmark (`../shared/bench/peers`) found that kafka 0.10
//! cannot produce to or consume from a current broker that stores v2
//! record batches (Tansu), and that librdkafka 2.0.2 fails Tansu's
//! ApiVersions v3 answer; see its README.
//!
//! ## Modules and features
//!
//! * [`producer`], [`consumer`], [`admin`] — the three clients, with their
//!   builders, records and results.
//! * [`Client`] and [`protocol`] — raw requests; [`records`] — record
//!   batches (v2, legacy v0/v1) and the codecs; [`cluster`] — the metadata
//!   snapshot.
//! * [`ClientConfig`] — the options every client shares.
//! * Feature `json` — `producer::JsonSerializer` (serde_json).
//! * Feature `scram` — SASL SCRAM-SHA-256/512 (RustCrypto's `sha2`, `hmac`,
//!   `pbkdf2` and `getrandom`; pure Rust). PLAIN and OAUTHBEARER need no
//!   feature.
//! * Feature `testkit` — `testkit::LocalBroker`, a throw-away local broker
//!   (Tansu) for tests and examples; honours `KAFKA_BOOTSTRAP_SERVERS`.
//!   `testkit::SaslFront` puts a SASL listener in front of it, to test a
//!   SASL setup without a secured cluster.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod bytes;
mod client;
pub mod cluster;
mod config;
pub mod consumer;
mod error;
mod group;
mod hash;
mod net;
mod partition;
pub mod producer;
pub mod protocol;
pub mod records;
#[cfg(feature = "testkit")]
pub mod testkit;
mod validate;

/// The rustls version this crate is built with (feature `tls`), for
/// [`ClientConfigBuilder::ssl_context`].
#[cfg(feature = "tls")]
pub use rustls;

pub use crate::admin::AdminClient;
pub use crate::bytes::Bytes;
pub use crate::client::{Client, VersionInfo};
pub use crate::config::{
    BrokerAddress, ClientConfig, ClientConfigBuilder, SecurityProtocol, DEFAULT_PORT,
};
pub use crate::consumer::{Consumer, Message};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::net::sasl::{
    OAuthBearerToken, OAuthBearerTokenProvider, SaslMechanism, UnsecuredJwtProvider,
};
pub use crate::partition::{OffsetAndMetadata, TopicPartition};
pub use crate::producer::{Producer, Record};
