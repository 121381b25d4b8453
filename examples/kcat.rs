//! A small console tool in the spirit of kcat (and Kafka's
//! `kafka-console-producer`/`kafka-console-consumer`): list metadata,
//! produce lines from stdin, consume a topic, or consume as a member of a
//! group. Run `kcat -h` for the options.
//!
//! ```text
//! cargo build --release --example kcat
//! K=target/release/examples/kcat
//! $K -b 127.0.0.1:9092 -L
//! printf 'k1:hello\nk2:world\n' | $K -b 127.0.0.1:9092 -P -t greetings -K: -H origin=shell -z lz4
//! $K -b 127.0.0.1:9092 -C -t greetings -o beginning -e -f '%t [%p] @%o %k=%s %h\n'
//! $K -b 127.0.0.1:9092 -G readers greetings -o beginning -e -X session.timeout.ms=6000
//! ```
//!
//! Exit codes: 0 success, 1 a runtime error (the broker, the network, a
//! failed delivery), 2 a usage error. Errors are one line on stderr,
//! `kcat: <error>`; progress notes start with `% ` and go to stderr too
//! (`-q` silences them), so stdout carries only records.
//!
//! Without `-e` or `-c`, `-C` and `-G` read until interrupted. Ctrl-C (or
//! SIGTERM) ends the read as `-e` does: the offsets read are committed and
//! the consumer leaves its group at once, so the others get its partitions
//! now rather than after `session_timeout_ms`. A second Ctrl-C exits
//! without waiting (exit code 130).
//!
//! `-P -X transactional.id=ID` produces all of stdin in one transaction:
//! committed at end of input, aborted on a failed delivery or on Ctrl-C
//! (then nothing of it reaches a `read_committed` reader).

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_blocking::consumer::{Consumer, ConsumerBuilder, Message, RebalanceListener};
use kafka_blocking::producer::{Producer, ProducerBuilder, Record};
use kafka_blocking::protocol::ErrorCode;
use kafka_blocking::{Bytes, Client, ClientConfig, ClientConfigBuilder, TopicPartition};

const USAGE: &str = "\
Usage: kcat <mode> [options]

Modes:
  -L                     list brokers, topics and partitions (leader, replicas, ISR)
  -P -t <topic>          produce one message per line of stdin
  -C -t <topic>          consume a topic (all partitions, or -p)
  -G <group> <topic>...  consume as a member of a consumer group

Options:
  -b <brokers>           bootstrap servers, host[:port][,...]
                         (default: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)
  -t <topic>             topic to produce to or consume from (-L: list only this one)
  -p <partition>         partition (-P: send every message there; -C: read only it)
  -K <delim>             key delimiter: -P splits each line at its first <delim>
                         into key and value; -C prints key<delim>value
  -k <key>               -P: the key of every message
  -H <name=value>        -P: add a header to every message (repeatable)
  -z <codec>             -P: compression: none, gzip, snappy, lz4, zstd
  -Z                     -P: send empty lines as null values (tombstones)
  -o <offset>            -C: beginning (default), end, stored (needs -X group.id),
                         <n> (absolute), -<n> (n before the end)
                         -G: beginning or end, where the group has no offset yet
  -c <count>             stop after <count> messages
  -e                     -C/-G: exit once every partition is read to its end
  -f <format>            -C/-G: output format; %t topic, %p partition, %o offset,
                         %k key, %K key length, %s value, %S value length,
                         %T timestamp (ms), %h headers (n=v,...), %% and \\n \\t \\\\
                         (default %s\\n, or %k<delim>%s\\n with -K)
  -X <key=value>         a client option by its kafka-python or Java name, e.g.
                         -X client.id=me -X linger.ms=20 -X session.timeout.ms=6000
                         (-C/-G do not create missing topics unless
                         -X allow.auto.create.topics=true)

  -q                     no progress notes on stderr
  -h                     this help

Security (-X, kafka-python or Java/librdkafka names):
  security.protocol=PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL
  ssl.ca.location=<pem>              CA certificates (ssl_cafile; default: the
                                     system trust store)
  ssl.certificate.location=<pem>     client certificate for mTLS (ssl_certfile)
  ssl.key.location=<pem>             its private key (ssl_keyfile)
  ssl.key.password=<password>        opens an encrypted PKCS#8 key (ssl_password)
  ssl.crl.location=<pem>             certificate revocation lists (ssl_crlfile)
  ssl.cipher.suites=<a:b:...>        cipher suites, most preferred first
                                     (ssl_ciphers; IANA or OpenSSL names)
  ssl.endpoint.identification.algorithm=https|none
                                     check the broker's host name (default https;
                                     same as ssl_check_hostname=true|false)
  sasl.mechanism=<m>                 PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
                                     (also sasl.mechanisms; sasl_mechanism)
  sasl.username=<user>               (sasl_plain_username)
  sasl.password=<password>           never printed (sasl_plain_password)

Exit codes: 0 success, 1 runtime error, 2 usage error.";

/// How the program ends when it does not succeed.
enum Fail {
    /// A bad command line (exit code 2).
    Usage(String),
    /// Anything that went wrong at run time (exit code 1).
    Run(String),
    /// stdout was closed (`kcat ... | head`): stop quietly.
    BrokenPipe,
}

impl From<kafka_blocking::Error> for Fail {
    fn from(e: kafka_blocking::Error) -> Fail {
        Fail::Run(e.to_string())
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Fail::BrokenPipe
        } else {
            Fail::Run(format!("i/o error: {e}"))
        }
    }
}

fn usage<T>(message: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(message.into()))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    List,
    Produce,
    Consume,
    Group,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Offset {
    Beginning,
    End,
    Stored,
    At(i64),
    BeforeEnd(i64),
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    brokers: String,
    topic: Option<String>,
    partition: Option<i32>,
    key_delimiter: Option<String>,
    key: Option<String>,
    headers: Vec<(String, Option<String>)>,
    codec: Option<String>,
    null_empty: bool,
    offset: Option<Offset>,
    count: Option<u64>,
    exit_at_end: bool,
    format: Option<String>,
    group: Option<String>,
    group_topics: Vec<String>,
    /// `-X`: (normalized name, value, the name as given).
    options: Vec<(String, String, String)>,
    quiet: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&argv).and_then(|args| match args {
        None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(args) => match args.mode {
            Mode::List => list(&args),
            Mode::Produce => produce(&args),
            Mode::Consume | Mode::Group => consume(&args),
        },
    });
    match result {
        Ok(()) | Err(Fail::BrokenPipe) => ExitCode::SUCCESS,
        Err(Fail::Run(e)) => {
            eprintln!("kcat: {e}");
            ExitCode::from(1)
        }
        Err(Fail::Usage(e)) => {
            eprintln!("kcat: {e} (see kcat -h)");
            ExitCode::from(2)
        }
    }
}

// ---- the command line ------------------------------------------------

/// Parses the arguments getopt-style (`-t topic`, `-ttopic`, `-Ce`);
/// `None` for `-h`.
fn parse(argv: &[String]) -> Result<Option<Args>, Fail> {
    let mut mode = None;
    let mut a = Args {
        mode: Mode::List,
        brokers: std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "localhost:9092".into()),
        topic: None,
        partition: None,
        key_delimiter: None,
        key: None,
        headers: Vec::new(),
        codec: None,
        null_empty: false,
        offset: None,
        count: None,
        exit_at_end: false,
        format: None,
        group: None,
        group_topics: Vec::new(),
        options: Vec::new(),
        quiet: false,
    };
    let mut set_mode = |m: Mode| -> Result<(), Fail> {
        match mode {
            Some(old) if old != m => usage("give only one of -L, -P, -C, -G"),
            _ => {
                mode = Some(m);
                Ok(())
            }
        }
    };
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            a.group_topics.push(arg.clone());
            continue;
        };
        for (at, flag) in flags.char_indices() {
            let takes_value = "btpKkHzocfXG".contains(flag);
            if !takes_value {
                match flag {
                    'L' => set_mode(Mode::List)?,
                    'P' => set_mode(Mode::Produce)?,
                    'C' => set_mode(Mode::Consume)?,
                    'e' => a.exit_at_end = true,
                    'Z' => a.null_empty = true,
                    'q' => a.quiet = true,
                    'h' => return Ok(None),
                    other => return usage(format!("unknown option -{other}")),
                }
                continue;
            }
            // The value is the rest of this argument, or the next one.
            let rest = &flags[at + flag.len_utf8()..];
            let value = if !rest.is_empty() {
                rest.to_owned()
            } else if i < argv.len() {
                i += 1;
                argv[i - 1].clone()
            } else {
                return usage(format!("-{flag} needs a value"));
            };
            match flag {
                'b' => a.brokers = value,
                't' => a.topic = Some(value),
                'p' => {
                    let p = number(flag, &value)?;
                    a.partition = (p >= 0).then_some(p as i32);
                }
                'K' => a.key_delimiter = Some(unescape(&value)),
                'k' => a.key = Some(value),
                'H' => a.headers.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (value, None),
                }),
                'z' => a.codec = Some(value),
                'o' => a.offset = Some(parse_offset(&value)?),
                'c' => a.count = Some(number(flag, &value)?.max(0) as u64),
                'f' => a.format = Some(value),
                'X' => match value.split_once('=') {
                    Some((k, v)) => a.options.push((option_name(k), v.to_owned(), k.to_owned())),
                    None => return usage(format!("-X {value}: expected key=value")),
                },
                'G' => {
                    set_mode(Mode::Group)?;
                    a.group = Some(value);
                }
                _ => unreachable!("every flag with a value is matched"),
            }
            break;
        }
    }
    a.mode = mode.ok_or_else(|| Fail::Usage("give a mode: -L, -P, -C or -G".into()))?;
    match a.mode {
        Mode::Group => {
            a.group_topics.extend(a.topic.take());
            if a.group_topics.is_empty() {
                return usage("-G <group> needs at least one topic");
            }
            if matches!(
                a.offset,
                Some(Offset::At(_) | Offset::BeforeEnd(_) | Offset::Stored)
            ) {
                return usage("-G takes -o beginning or -o end (the group's offsets come first)");
            }
        }
        _ if !a.group_topics.is_empty() => {
            return usage(format!("unexpected argument `{}`", a.group_topics[0]))
        }
        Mode::Produce | Mode::Consume if a.topic.is_none() => {
            return usage(format!("-{} needs -t <topic>", mode_flag(a.mode)))
        }
        _ => {}
    }
    Ok(Some(a))
}

fn mode_flag(m: Mode) -> char {
    match m {
        Mode::List => 'L',
        Mode::Produce => 'P',
        Mode::Consume => 'C',
        Mode::Group => 'G',
    }
}

fn number(flag: char, value: &str) -> Result<i64, Fail> {
    value
        .trim()
        .parse()
        .or_else(|_| usage(format!("-{flag} {value}: expected a number")))
}

fn parse_offset(value: &str) -> Result<Offset, Fail> {
    Ok(match value {
        "beginning" | "earliest" | "smallest" => Offset::Beginning,
        "end" | "latest" | "largest" => Offset::End,
        "stored" => Offset::Stored,
        v => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Offset::At(n),
            Ok(n) => Offset::BeforeEnd(n.unsigned_abs() as i64),
            Err(_) => {
                return usage(format!(
                    "-o {v}: expected beginning, end, stored, <n> or -<n>"
                ))
            }
        },
    })
}

/// `client.id`, `client-id` and `client_id` all name `client_id`.
fn option_name(key: &str) -> String {
    key.trim().replace(['.', '-'], "_").to_ascii_lowercase()
}

/// `\n`, `\t`, `\r`, `\\` in delimiters and formats.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

// ---- -X options --------------------------------------------------------

fn int(key: &str, value: &str) -> Result<i64, Fail> {
    value
        .trim()
        .parse()
        .or_else(|_| usage(format!("-X {key}={value}: expected a number")))
}

fn boolean(key: &str, value: &str) -> Result<bool, Fail> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => usage(format!("-X {key}={value}: expected true or false")),
    }
}

/// librdkafka's `ssl.endpoint.identification.algorithm`: `https` checks the
/// host name, `none` (or empty) does not.
fn endpoint_identification(key: &str, value: &str) -> Result<bool, Fail> {
    match value.trim().to_ascii_lowercase().as_str() {
        "https" => Ok(true),
        "none" | "" => Ok(false),
        _ => usage(format!("-X {key}={value}: expected https or none")),
    }
}

/// The options every client has; anything else is a usage error.
macro_rules! client_option {
    ($builder:expr, $key:expr, $value:expr, $given:expr, $what:expr) => {
        match $key {
            "bootstrap_servers" => $builder.bootstrap_servers($value),
            "client_id" => $builder.client_id($value),
            "request_timeout_ms" => $builder.request_timeout_ms(int($given, $value)?),
            "metadata_max_age_ms" => $builder.metadata_max_age_ms(int($given, $value)?),
            "retry_backoff_ms" => $builder.retry_backoff_ms(int($given, $value)?),
            "reconnect_backoff_ms" => $builder.reconnect_backoff_ms(int($given, $value)?),
            "reconnect_backoff_max_ms" => $builder.reconnect_backoff_max_ms(int($given, $value)?),
            "connections_max_idle_ms" => $builder.connections_max_idle_ms(int($given, $value)?),
            "socket_connection_setup_timeout_ms" => {
                $builder.socket_connection_setup_timeout_ms(int($given, $value)?)
            }
            "max_in_flight_requests_per_connection" => {
                $builder.max_in_flight_requests_per_connection(int($given, $value)?)
            }
            "receive_message_max_bytes" => $builder.receive_message_max_bytes(int($given, $value)?),
            "api_version" => $builder.api_version($value),
            "security_protocol" => $builder.security_protocol($value),
            "sasl_mechanism" | "sasl_mechanisms" => $builder.sasl_mechanism($value),
            "sasl_username" | "sasl_plain_username" => $builder.sasl_plain_username($value),
            "sasl_password" | "sasl_plain_password" => $builder.sasl_plain_password($value),
            "ssl_cafile" | "ssl_ca_location" => $builder.ssl_cafile($value),
            "ssl_certfile" | "ssl_certificate_location" => $builder.ssl_certfile($value),
            "ssl_keyfile" | "ssl_key_location" => $builder.ssl_keyfile($value),
            "ssl_password" | "ssl_key_password" => $builder.ssl_password($value),
            "ssl_crlfile" | "ssl_crl_location" => $builder.ssl_crlfile($value),
            "ssl_ciphers" | "ssl_cipher_suites" => $builder.ssl_ciphers($value),
            "ssl_check_hostname" => $builder.ssl_check_hostname(boolean($given, $value)?),
            "ssl_endpoint_identification_algorithm" => {
                $builder.ssl_check_hostname(endpoint_identification($given, $value)?)
            }
            _ => return usage(format!("-X {}: not a {} option", $given, $what)),
        }
    };
}

fn client_options(a: &Args) -> Result<ClientConfigBuilder, Fail> {
    let mut b = ClientConfig::builder().bootstrap_servers(&a.brokers);
    for (k, v, given) in &a.options {
        b = client_option!(b, k.as_str(), v.as_str(), given, "client");
    }
    Ok(b)
}

fn producer_options(a: &Args) -> Result<ProducerBuilder, Fail> {
    let mut b = ProducerBuilder::default().bootstrap_servers(&a.brokers);
    if let Some(codec) = &a.codec {
        b = b.compression_type(codec.as_str());
    }
    for (k, v, given) in &a.options {
        let (k, v) = (k.as_str(), v.as_str());
        b = match k {
            "acks" | "request_required_acks" => b.acks(v),
            "enable_idempotence" => b.enable_idempotence(boolean(given, v)?),
            "compression_type" | "compression_codec" => b.compression_type(v),
            "batch_size" => b.batch_size(int(given, v)?),
            "linger_ms" => b.linger_ms(int(given, v)?),
            "buffer_memory" => b.buffer_memory(int(given, v)?),
            "max_block_ms" => b.max_block_ms(int(given, v)?),
            "max_request_size" => b.max_request_size(int(given, v)?),
            "delivery_timeout_ms" => b.delivery_timeout_ms(int(given, v)?),
            "retries" => b.retries(int(given, v)?),
            "transactional_id" => b.transactional_id(v),
            "transaction_timeout_ms" => b.transaction_timeout_ms(int(given, v)?),
            _ => client_option!(b, k, v, given, "producer"),
        };
    }
    Ok(b)
}

fn consumer_options(a: &Args) -> Result<ConsumerBuilder, Fail> {
    // Reading a topic that does not exist is an error, not a way to
    // create it (-X allow.auto.create.topics=true to change that).
    let mut b = ConsumerBuilder::default()
        .bootstrap_servers(&a.brokers)
        .allow_auto_create_topics(false)
        .enable_auto_commit(a.group.is_some());
    if let Some(group) = &a.group {
        b = b.group_id(group.as_str());
    }
    match a.offset {
        Some(Offset::Beginning) => b = b.auto_offset_reset("earliest"),
        Some(Offset::End) => b = b.auto_offset_reset("latest"),
        _ => {}
    }
    for (k, v, given) in &a.options {
        let (k, v) = (k.as_str(), v.as_str());
        b = match k {
            "group_id" if a.mode == Mode::Group => {
                return usage("-X group.id: the group is -G's argument")
            }
            "group_id" => b.group_id(v),
            "group_instance_id" => b.group_instance_id(v),
            "auto_offset_reset" => b.auto_offset_reset(v),
            "enable_auto_commit" => b.enable_auto_commit(boolean(given, v)?),
            "auto_commit_interval_ms" => b.auto_commit_interval_ms(int(given, v)?),
            "fetch_min_bytes" => b.fetch_min_bytes(int(given, v)?),
            "fetch_max_wait_ms" => b.fetch_max_wait_ms(int(given, v)?),
            "fetch_max_bytes" => b.fetch_max_bytes(int(given, v)?),
            "max_partition_fetch_bytes" => b.max_partition_fetch_bytes(int(given, v)?),
            "max_poll_records" => b.max_poll_records(int(given, v)?),
            "max_poll_interval_ms" => b.max_poll_interval_ms(int(given, v)?),
            "session_timeout_ms" => b.session_timeout_ms(int(given, v)?),
            "heartbeat_interval_ms" => b.heartbeat_interval_ms(int(given, v)?),
            "partition_assignment_strategy" => b.partition_assignment_strategy([v]),
            "isolation_level" => b.isolation_level(v),
            "check_crcs" => b.check_crcs(boolean(given, v)?),
            "group_protocol" => b.group_protocol(v),
            "group_remote_assignor" => b.group_remote_assignor(v),
            "client_rack" => b.client_rack(v),
            "allow_auto_create_topics" => b.allow_auto_create_topics(boolean(given, v)?),
            _ => client_option!(b, k, v, given, "consumer"),
        };
    }
    Ok(b)
}

// ---- -L ------------------------------------------------------------------

fn list(a: &Args) -> Result<(), Fail> {
    let client = Client::new(client_options(a)?.build()?)?;
    let md = match &a.topic {
        Some(t) => client.refresh_metadata(Some(&[t.as_str()]))?,
        None => client.refresh_metadata(None)?,
    };
    let out = &mut BufWriter::new(io::stdout().lock());
    writeln!(
        out,
        "Metadata for {} (cluster {}):",
        a.topic
            .as_ref()
            .map_or_else(|| "all topics".to_owned(), |t| format!("topic \"{t}\"")),
        md.cluster_id.as_deref().unwrap_or("-")
    )?;
    writeln!(out, " {} brokers:", md.brokers.len())?;
    for b in md.brokers.values() {
        let controller = if md.controller_id == Some(b.id) {
            " (controller)"
        } else {
            ""
        };
        writeln!(
            out,
            "  broker {} at {}:{}{controller}",
            b.id, b.host, b.port
        )?;
    }
    let mut topics: Vec<_> = md
        .topics
        .values()
        .filter(|t| a.topic.as_ref().map_or(true, |name| *name == t.name))
        .collect();
    topics.sort_by(|x, y| x.name.cmp(&y.name));
    writeln!(out, " {} topics:", topics.len())?;
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for t in topics {
        if t.error != ErrorCode::NONE {
            writeln!(out, "  topic \"{}\" error: {}", t.name, t.error.name())?;
            continue;
        }
        let internal = if t.is_internal { " (internal)" } else { "" };
        writeln!(
            out,
            "  topic \"{}\" with {} partitions{internal}:",
            t.name,
            t.partitions.len()
        )?;
        for p in &t.partitions {
            write!(
                out,
                "    partition {}, leader {}, replicas: {}, isrs: {}",
                p.partition,
                p.leader,
                ids(&p.replicas),
                ids(&p.isr)
            )?;
            if p.error != ErrorCode::NONE {
                write!(out, ", error: {}", p.error.name())?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

// ---- -P ------------------------------------------------------------------

/// What the delivery callbacks saw.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

fn produce(a: &Args) -> Result<(), Fail> {
    let topic = a.topic.as_deref().unwrap_or_default();
    let producer = producer_options(a)?.build()?;
    let transactional = producer.config().transactional_id().is_some();
    let t = Duration::from_secs(60);
    if transactional {
        producer.init_transactions(t)?;
        producer.begin_transaction()?;
        // Ctrl-C while reading stdin: abort, so no part of the input is
        // ever committed.
        let p = producer.clone();
        let handler = ctrlc::set_handler(move || {
            if INTERRUPTED.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            let aborted = p.abort_transaction(Duration::from_secs(10));
            eprintln!("% interrupted: the transaction was aborted ({aborted:?})");
            std::process::exit(130);
        });
        if let Err(e) = handler {
            eprintln!("% cannot handle Ctrl-C ({e}): an interrupted transaction stays open until transaction_timeout_ms");
        }
    }
    let result = produce_lines(a, topic, &producer);
    if transactional {
        match &result {
            Ok(()) => producer.commit_transaction(t)?,
            Err(_) => {
                if let Err(e) = producer.abort_transaction(t) {
                    eprintln!("% aborting the transaction failed: {e}");
                }
            }
        }
    }
    let closed = producer.close(Duration::from_secs(5));
    result?;
    closed?;
    Ok(())
}

/// Sends stdin's lines and waits for their deliveries.
fn produce_lines(a: &Args, topic: &str, producer: &Producer) -> Result<(), Fail> {
    let deliveries = Arc::new(Deliveries::default());
    let delimiter = a.key_delimiter.as_deref().map(str::as_bytes);
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut sent = 0u64;
    while a.count.map_or(true, |c| sent < c) {
        line.clear();
        if stdin.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        // "key<delim>value"; a line without the delimiter is all value.
        let (key, value): (Option<&[u8]>, &[u8]) = match delimiter {
            Some(d) => match find(&line, d) {
                Some(at) => (Some(&line[..at]), &line[at + d.len()..]),
                None => (None, &line[..]),
            },
            None => (a.key.as_deref().map(str::as_bytes), &line[..]),
        };
        let mut record = Record::new(topic);
        if let Some(p) = a.partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if !(value.is_empty() && a.null_empty) {
            record = record.value(value);
        }
        for (name, v) in &a.headers {
            record = match v {
                Some(v) => record.header(name.as_str(), v.as_str()),
                None => record.null_header(name.as_str()),
            };
        }
        let d = Arc::clone(&deliveries);
        producer.send_with_callback(record, move |result| match result {
            Ok(_) => {
                d.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                d.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = d.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        })?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    let failed = deliveries.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = deliveries
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        return Err(Fail::Run(format!(
            "{failed} of {sent} messages were not delivered; the first error: {first}"
        )));
    }
    if !a.quiet {
        eprintln!(
            "% {} messages delivered to topic {topic}",
            deliveries.ok.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---- -C and -G -------------------------------------------------------------

/// Prints the group's assignments as they change (`-G`).
struct Notes;

impl RebalanceListener for Notes {
    fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            eprintln!(
                "% Group rebalanced: assigned {}",
                list_partitions(partitions)
            );
        }
    }

    fn on_partitions_revoked(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            eprintln!(
                "% Group rebalanced: revoked {}",
                list_partitions(partitions)
            );
        }
    }
}

fn list_partitions(partitions: &[TopicPartition]) -> String {
    partitions
        .iter()
        .map(|tp| format!("{} [{}]", tp.topic, tp.partition))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Set by the first Ctrl-C/SIGTERM: the read loop stops and closes cleanly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn consume(a: &Args) -> Result<(), Fail> {
    let mut consumer = consumer_options(a)?.build()?;
    // Without a handler, Ctrl-C kills the process inside poll() and the
    // group waits session_timeout_ms for the member to time out.
    let handler = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    });
    if let Err(e) = handler {
        eprintln!("% cannot handle Ctrl-C ({e}): it will not leave the group");
    }
    if a.mode == Mode::Group {
        consumer.subscribe(&a.group_topics)?;
        if !a.quiet {
            consumer.set_rebalance_listener(Notes);
        }
    } else {
        assign(a, &mut consumer)?;
    }
    let format = match (&a.format, &a.key_delimiter) {
        (Some(f), _) => unescape(f),
        (None, Some(d)) => format!("%k{d}%s\n"),
        (None, None) => "%s\n".to_owned(),
    };
    let result = read(a, &mut consumer, &format);
    // Commits (with a group) and leaves the group at once.
    let closed = consumer.close(a.group.is_some());
    result?;
    closed?;
    Ok(())
}

/// `-C`: the partitions, and where to start in each.
fn assign(a: &Args, consumer: &mut Consumer) -> Result<(), Fail> {
    let topic = a.topic.as_deref().unwrap_or_default();
    let mut partitions: Vec<TopicPartition> = consumer
        .partitions_for_topic(topic)?
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    if partitions.is_empty() {
        return Err(Fail::Run(format!("topic {topic} does not exist")));
    }
    if let Some(p) = a.partition {
        if !partitions.iter().any(|tp| tp.partition == p) {
            let n = partitions.len();
            return Err(Fail::Run(format!(
                "topic {topic} has no partition {p} (it has {n})"
            )));
        }
        partitions = vec![TopicPartition::new(topic, p)];
    }
    consumer.assign(&partitions)?;
    match a.offset.unwrap_or(Offset::Beginning) {
        Offset::Beginning => consumer.seek_to_beginning(&partitions)?,
        Offset::End => consumer.seek_to_end(&partitions)?,
        Offset::Stored if consumer.config().group_id().is_none() => {
            return usage("-o stored needs -X group.id=<group>")
        }
        Offset::Stored => {} // the committed offsets, then auto_offset_reset
        Offset::At(n) => {
            for tp in &partitions {
                consumer.seek(tp, n)?;
            }
        }
        Offset::BeforeEnd(n) => {
            let begin = consumer.beginning_offsets(&partitions)?;
            let end = consumer.end_offsets(&partitions)?;
            for tp in &partitions {
                let (b, e) = (begin.get(tp).copied(), end.get(tp).copied());
                consumer.seek(tp, (e.unwrap_or(0) - n).max(b.unwrap_or(0)))?;
            }
        }
    }
    Ok(())
}

/// Prints messages until `-c` is reached, every partition is at its end
/// (`-e`), or forever.
fn read(a: &Args, consumer: &mut Consumer, format: &str) -> Result<(), Fail> {
    let out = &mut BufWriter::new(io::stdout().lock());
    let mut printed = 0u64;
    let mut at_end: BTreeSet<TopicPartition> = BTreeSet::new();
    loop {
        if INTERRUPTED.load(Ordering::Relaxed) {
            if !a.quiet {
                eprintln!("% Interrupted: committing and leaving");
            }
            return Ok(());
        }
        let records = consumer.poll(Duration::from_millis(200))?;
        for msg in &records {
            if a.count.is_some_and(|c| printed >= c) {
                break;
            }
            write_message(out, format, msg)?;
            at_end.remove(&msg.topic_partition());
            printed += 1;
        }
        out.flush()?;
        if a.count.is_some_and(|c| printed >= c) {
            return Ok(());
        }
        if a.exit_at_end && all_at_end(a, consumer, &mut at_end) {
            return Ok(());
        }
    }
}

/// Whether every assigned partition's position has reached the high
/// watermark of its last fetch; notes each partition as it gets there.
fn all_at_end(a: &Args, consumer: &mut Consumer, at_end: &mut BTreeSet<TopicPartition>) -> bool {
    let assignment = consumer.assignment();
    if assignment.is_empty() {
        return false; // still joining the group
    }
    let mut all = true;
    for tp in assignment {
        let end = consumer.highwater(&tp);
        match (consumer.position(&tp), end) {
            (Ok(pos), Some(end)) if pos >= end => {
                if at_end.insert(tp.clone()) && !a.quiet {
                    eprintln!(
                        "% Reached end of topic {} [{}] at offset {pos}",
                        tp.topic, tp.partition
                    );
                }
            }
            _ => all = false,
        }
    }
    all
}

fn write_message(out: &mut impl Write, format: &str, msg: &Message) -> io::Result<()> {
    fn bytes(b: Option<&Bytes>) -> &[u8] {
        b.map_or(&[], |b| b.as_slice())
    }
    fn len(b: Option<&Bytes>) -> i64 {
        b.map_or(-1, |b| b.len() as i64)
    }
    let mut literal_from = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        out.write_all(&format.as_bytes()[literal_from..i])?;
        let directive = chars.next();
        literal_from = chars.peek().map_or(format.len(), |(j, _)| *j);
        match directive.map(|(_, c)| c) {
            Some('t') => out.write_all(msg.topic().as_bytes())?,
            Some('p') => write!(out, "{}", msg.partition())?,
            Some('o') => write!(out, "{}", msg.offset())?,
            Some('k') => out.write_all(bytes(msg.key()))?,
            Some('K') => write!(out, "{}", len(msg.key()))?,
            Some('s') => out.write_all(bytes(msg.value()))?,
            Some('S') => write!(out, "{}", len(msg.value()))?,
            Some('T') => write!(out, "{}", msg.timestamp())?,
            Some('h') => {
                for (n, (name, value)) in msg.headers().iter().enumerate() {
                    if n > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(name.as_bytes())?;
                    if let Some(v) = value {
                        out.write_all(b"=")?;
                        out.write_all(&v)?;
                    }
                }
            }
            Some('%') => out.write_all(b"%")?,
            Some(other) => write!(out, "%{other}")?,
            None => out.write_all(b"%")?,
        }
    }
    out.write_all(&format.as_bytes()[literal_from..])
}
