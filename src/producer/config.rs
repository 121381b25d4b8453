//! Producer configuration: kafka-python's names and defaults, checked at
//! build time.

use std::time::Duration;

use crate::config::{client_options, ClientConfig, ClientConfigBuilder};
use crate::error::{Error, Result};
use crate::records::Compression;

use super::partitioner::Partitioner;

/// How many acknowledgements the leader must gather before answering
/// (kafka-python's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `0`: do not wait for the broker at all (no offsets, no retries).
    None,
    /// `1`: the leader wrote the record.
    Leader,
    /// `all` / `-1`: every in-sync replica has it (the default).
    All,
}

impl Acks {
    /// The wire value (0, 1 or -1).
    pub fn as_i16(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// A value for [`ProducerBuilder::acks`]: `0`, `1`, `-1`, `"all"`, `"0"`,
/// `"1"`, `"-1"`, or an [`Acks`].
#[derive(Debug, Clone)]
pub struct AcksSetting(std::result::Result<Acks, String>);

impl From<Acks> for AcksSetting {
    fn from(a: Acks) -> Self {
        AcksSetting(Ok(a))
    }
}

impl From<i32> for AcksSetting {
    fn from(v: i32) -> Self {
        AcksSetting(match v {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            -1 => Ok(Acks::All),
            other => Err(other.to_string()),
        })
    }
}

impl From<&str> for AcksSetting {
    fn from(v: &str) -> Self {
        AcksSetting(match v.trim().to_ascii_lowercase().as_str() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(v.to_owned()),
        })
    }
}

/// A validated producer configuration.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub(crate) client: ClientConfig,
    pub(crate) acks: Acks,
    pub(crate) enable_idempotence: bool,
    pub(crate) compression: Compression,
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) buffer_memory: usize,
    pub(crate) max_block: Duration,
    pub(crate) max_request_size: usize,
    pub(crate) delivery_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) partitioner: Partitioner,
    pub(crate) transactional_id: Option<String>,
    pub(crate) transaction_timeout_ms: i32,
}

impl ProducerConfig {
    /// The shared client options.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }

    /// `acks`.
    pub fn acks(&self) -> Acks {
        self.acks
    }

    /// Whether the producer is idempotent.
    pub fn enable_idempotence(&self) -> bool {
        self.enable_idempotence
    }

    /// `compression_type`.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// `batch_size` in bytes.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// `linger_ms`.
    pub fn linger(&self) -> Duration {
        self.linger
    }

    /// `max_request_size` in bytes.
    pub fn max_request_size(&self) -> usize {
        self.max_request_size
    }

    /// `delivery_timeout_ms`.
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout
    }

    /// `transactional_id`, when the producer is transactional.
    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    /// `transaction_timeout_ms`.
    pub fn transaction_timeout(&self) -> Duration {
        Duration::from_millis(self.transaction_timeout_ms.max(0) as u64)
    }
}

/// Builds a [`Producer`](super::Producer). Setters take kafka-python's
/// names; [`build`](ProducerBuilder::build) checks every value and names
/// the first bad key.
///
/// | key | default | note |
/// |---|---|---|
/// | `acks` | `all` | `0`, `1`, `all`/`-1` |
/// | `enable_idempotence` | `true` | needs `acks=all`, `retries > 0`, `max_in_flight_requests_per_connection <= 5` |
/// | `compression_type` | none | `gzip`, `snappy`, `lz4`, `zstd` |
/// | `batch_size` | 16384 | bytes per partition batch (uncompressed) |
/// | `linger_ms` | 5 | as the Java client 4.x (kafka-python: 0) |
/// | `buffer_memory` | 33554432 | bytes of unsent batches before `send` blocks |
/// | `max_block_ms` | 60000 | how long `send` may block (full buffer, metadata) |
/// | `max_request_size` | 1048576 | largest record/request |
/// | `request_timeout_ms` | 30000 | per produce request |
/// | `delivery_timeout_ms` | 120000 | upper bound on a record's delivery, retries included |
/// | `retries` | 2147483647 | as the Java client; `delivery_timeout_ms` is the real bound |
/// | `retry_backoff_ms` | 100 | |
/// | `max_in_flight_requests_per_connection` | 5 | |
/// | `partitioner` | murmur2 + sticky | [`Partitioner`] |
/// | `transactional_id` | none | makes the producer transactional (implies idempotence) |
/// | `transaction_timeout_ms` | 60000 | the broker aborts a transaction left open longer |
///
/// When `enable_idempotence` is left at its default and `acks` is not
/// `all` (or `retries` is 0), idempotence is turned off, as the Java
/// client does; setting both explicitly in conflict is an error.
#[derive(Debug, Clone, Default)]
pub struct ProducerBuilder {
    pub(crate) client: ClientConfigBuilder,
    acks: Option<AcksSetting>,
    enable_idempotence: Option<bool>,
    compression_type: Option<String>,
    batch_size: Option<i64>,
    linger_ms: Option<i64>,
    buffer_memory: Option<i64>,
    max_block_ms: Option<i64>,
    max_request_size: Option<i64>,
    delivery_timeout_ms: Option<i64>,
    retries: Option<i64>,
    partitioner: Option<Partitioner>,
    transactional_id: Option<String>,
    transaction_timeout_ms: Option<i64>,
}

impl ProducerBuilder {
    client_options!();

    /// `acks`: `0`, `1` or `"all"` (default `"all"`).
    pub fn acks(mut self, acks: impl Into<AcksSetting>) -> Self {
        self.acks = Some(acks.into());
        self
    }

    /// `enable_idempotence` (default `true`).
    pub fn enable_idempotence(mut self, on: bool) -> Self {
        self.enable_idempotence = Some(on);
        self
    }

    /// `compression_type`: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub fn compression_type(mut self, codec: impl Into<String>) -> Self {
        self.compression_type = Some(codec.into());
        self
    }

    /// `batch_size`: bytes of records per partition batch (default 16384).
    pub fn batch_size(mut self, bytes: i64) -> Self {
        self.batch_size = Some(bytes);
        self
    }

    /// `linger_ms`: how long a batch waits for more records (default 5).
    pub fn linger_ms(mut self, ms: i64) -> Self {
        self.linger_ms = Some(ms);
        self
    }

    /// `buffer_memory`: bytes of unsent records before `send` blocks
    /// (default 32 MiB).
    pub fn buffer_memory(mut self, bytes: i64) -> Self {
        self.buffer_memory = Some(bytes);
        self
    }

    /// `max_block_ms`: how long `send` may block waiting for buffer space
    /// or topic metadata (default 60000).
    pub fn max_block_ms(mut self, ms: i64) -> Self {
        self.max_block_ms = Some(ms);
        self
    }

    /// `max_request_size`: the largest record and produce request in bytes
    /// (default 1048576).
    pub fn max_request_size(mut self, bytes: i64) -> Self {
        self.max_request_size = Some(bytes);
        self
    }

    /// `delivery_timeout_ms`: the longest a record may take from `send` to
    /// its acknowledgement, retries included (default 120000; at least
    /// `linger_ms + request_timeout_ms`).
    pub fn delivery_timeout_ms(mut self, ms: i64) -> Self {
        self.delivery_timeout_ms = Some(ms);
        self
    }

    /// `retries`: how often a failed batch is re-sent (default 2147483647).
    pub fn retries(mut self, n: i64) -> Self {
        self.retries = Some(n);
        self
    }

    /// `partitioner`: how records without a partition are spread.
    pub fn partitioner(mut self, p: Partitioner) -> Self {
        self.partitioner = Some(p);
        self
    }

    /// `transactional_id`: makes the producer transactional (see
    /// [`Producer::init_transactions`](super::Producer::init_transactions)).
    /// Implies idempotence: `enable_idempotence=false`, `acks` other than
    /// `all`, `retries=0` or more than 5 requests in flight fail at build.
    pub fn transactional_id(mut self, id: impl Into<String>) -> Self {
        self.transactional_id = Some(id.into());
        self
    }

    /// `transaction_timeout_ms` (default 60000): how long the coordinator
    /// lets a transaction stay open before it aborts it (at most the
    /// broker's `transaction.max.timeout.ms`).
    pub fn transaction_timeout_ms(mut self, ms: i64) -> Self {
        self.transaction_timeout_ms = Some(ms);
        self
    }

    /// The options without starting a producer.
    pub fn config(self) -> Result<ProducerConfig> {
        let client = self.client.build()?;
        let acks = match self.acks {
            None => Acks::All,
            Some(AcksSetting(Ok(a))) => a,
            Some(AcksSetting(Err(v))) => {
                return Err(Error::config(
                    "acks",
                    format!("`{v}`: expected 0, 1 or \"all\""),
                ))
            }
        };
        let retries = match self.retries {
            None => i32::MAX as u32,
            Some(n) if (0..=i32::MAX as i64).contains(&n) => n as u32,
            Some(n) => return Err(Error::config("retries", format!("{n} is negative"))),
        };
        let compression = match &self.compression_type {
            None => Compression::None,
            Some(c) => c.parse::<Compression>().map_err(|_| {
                Error::config(
                    "compression_type",
                    format!("`{c}`: expected none, gzip, snappy, lz4 or zstd"),
                )
            })?,
        };
        let positive =
            |key: &str, v: Option<i64>, default: i64, min: i64, max: i64| -> Result<i64> {
                match v {
                    None => Ok(default),
                    Some(v) if (min..=max).contains(&v) => Ok(v),
                    Some(v) => Err(Error::config(key, format!("{v} is outside {min}..={max}"))),
                }
            };
        let batch_size =
            positive("batch_size", self.batch_size, 16_384, 0, i32::MAX as i64)? as usize;
        let linger =
            Duration::from_millis(positive("linger_ms", self.linger_ms, 5, 0, 86_400_000)? as u64);
        let buffer_memory = positive(
            "buffer_memory",
            self.buffer_memory,
            32 * 1024 * 1024,
            1024,
            i64::MAX,
        )? as usize;
        let max_block =
            Duration::from_millis(
                positive("max_block_ms", self.max_block_ms, 60_000, 0, i64::MAX)? as u64,
            );
        let max_request_size = positive(
            "max_request_size",
            self.max_request_size,
            1_048_576,
            128,
            i32::MAX as i64,
        )? as usize;
        let delivery_timeout = Duration::from_millis(positive(
            "delivery_timeout_ms",
            self.delivery_timeout_ms,
            120_000,
            1,
            i64::MAX,
        )? as u64);
        if delivery_timeout < linger + client.request_timeout {
            return Err(Error::config(
                "delivery_timeout_ms",
                format!(
                    "{} ms is less than linger_ms + request_timeout_ms ({} ms)",
                    delivery_timeout.as_millis(),
                    (linger + client.request_timeout).as_millis()
                ),
            ));
        }
        if buffer_memory < max_request_size.min(batch_size) {
            return Err(Error::config(
                "buffer_memory",
                "must be at least batch_size (or max_request_size when smaller)",
            ));
        }
        let max_in_flight = client.max_in_flight_requests_per_connection;
        let enable_idempotence = match self.enable_idempotence {
            Some(true) => {
                if acks != Acks::All {
                    return Err(Error::config(
                        "enable_idempotence",
                        "requires acks=\"all\"; set acks=\"all\" or enable_idempotence=false",
                    ));
                }
                if retries == 0 {
                    return Err(Error::config(
                        "enable_idempotence",
                        "requires retries > 0; raise retries or set enable_idempotence=false",
                    ));
                }
                if max_in_flight > 5 {
                    return Err(Error::config(
                        "max_in_flight_requests_per_connection",
                        format!("{max_in_flight} is more than the 5 idempotence allows"),
                    ));
                }
                true
            }
            Some(false) => false,
            None => acks == Acks::All && retries > 0 && max_in_flight <= 5,
        };
        let transaction_timeout = positive(
            "transaction_timeout_ms",
            self.transaction_timeout_ms,
            60_000,
            1,
            i32::MAX as i64,
        )? as i32;
        if let Some(id) = &self.transactional_id {
            if id.is_empty() {
                return Err(Error::config("transactional_id", "is empty"));
            }
            let conflict = if self.enable_idempotence == Some(false) {
                Some(("enable_idempotence", "false".to_owned()))
            } else if acks != Acks::All {
                Some(("acks", acks.as_i16().to_string()))
            } else if retries == 0 {
                Some(("retries", "0".to_owned()))
            } else if max_in_flight > 5 {
                Some((
                    "max_in_flight_requests_per_connection",
                    max_in_flight.to_string(),
                ))
            } else {
                None
            };
            if let Some((key, value)) = conflict {
                return Err(Error::config(
                    key,
                    format!(
                        "{value} contradicts transactional_id, which needs an idempotent producer (enable_idempotence=true, acks=\"all\", retries > 0, max_in_flight_requests_per_connection <= 5)"
                    ),
                ));
            }
        }
        Ok(ProducerConfig {
            client,
            acks,
            enable_idempotence,
            compression,
            batch_size,
            linger,
            buffer_memory,
            max_block,
            max_request_size,
            delivery_timeout,
            retries,
            partitioner: self.partitioner.unwrap_or_default(),
            transactional_id: self.transactional_id,
            transaction_timeout_ms: transaction_timeout,
        })
    }

    /// Checks the options and starts the producer (it connects lazily).
    pub fn build(self) -> Result<super::Producer> {
        super::Producer::from_config(self.config()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_match_the_documented_table() {
        let c = ProducerBuilder::default().config().unwrap();
        assert_eq!(c.acks, Acks::All);
        assert!(c.enable_idempotence);
        assert_eq!(c.batch_size, 16_384);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.buffer_memory, 32 << 20);
        assert_eq!(c.max_request_size, 1_048_576);
        assert_eq!(c.delivery_timeout, Duration::from_millis(120_000));
        assert_eq!(c.compression, Compression::None);
    }

    #[test]
    fn acks_spellings() {
        for (v, want) in [
            ("all", Acks::All),
            ("-1", Acks::All),
            ("1", Acks::Leader),
            ("0", Acks::None),
        ] {
            let c = ProducerBuilder::default()
                .acks(v)
                .enable_idempotence(false)
                .config()
                .unwrap();
            assert_eq!(c.acks, want);
        }
        let c = ProducerBuilder::default().acks(1).config().unwrap();
        assert_eq!(c.acks, Acks::Leader);
        assert!(
            !c.enable_idempotence,
            "implicit idempotence yields to acks=1"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(ProducerBuilder, &str)> = vec![
            (ProducerBuilder::default().acks("most"), "acks"),
            (ProducerBuilder::default().acks(2), "acks"),
            (
                ProducerBuilder::default().compression_type("brotli"),
                "compression_type",
            ),
            (ProducerBuilder::default().linger_ms(-1), "linger_ms"),
            (ProducerBuilder::default().batch_size(-1), "batch_size"),
            (ProducerBuilder::default().retries(-1), "retries"),
            (
                ProducerBuilder::default().delivery_timeout_ms(1000),
                "delivery_timeout_ms",
            ),
            (
                ProducerBuilder::default().acks(1).enable_idempotence(true),
                "enable_idempotence",
            ),
            (
                ProducerBuilder::default()
                    .retries(0)
                    .enable_idempotence(true),
                "enable_idempotence",
            ),
            (
                ProducerBuilder::default()
                    .max_in_flight_requests_per_connection(6)
                    .enable_idempotence(true),
                "max_in_flight_requests_per_connection",
            ),
            (
                ProducerBuilder::default().transactional_id(""),
                "transactional_id",
            ),
            (
                ProducerBuilder::default()
                    .transactional_id("tx")
                    .enable_idempotence(false),
                "enable_idempotence",
            ),
            (
                ProducerBuilder::default().transactional_id("tx").acks(1),
                "acks",
            ),
            (
                ProducerBuilder::default().transactional_id("tx").retries(0),
                "retries",
            ),
            (
                ProducerBuilder::default()
                    .transactional_id("tx")
                    .max_in_flight_requests_per_connection(6),
                "max_in_flight_requests_per_connection",
            ),
            (
                ProducerBuilder::default()
                    .transactional_id("tx")
                    .transaction_timeout_ms(0),
                "transaction_timeout_ms",
            ),
            (
                ProducerBuilder::default().bootstrap_servers("h:x"),
                "bootstrap_servers",
            ),
        ];
        for (b, key) in cases {
            let e = b.config().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{key}`")), "{key}: {e}");
        }
        let c = ProducerBuilder::default()
            .transactional_id("tx")
            .config()
            .unwrap();
        assert!(c.enable_idempotence());
        assert_eq!(c.transactional_id(), Some("tx"));
        assert_eq!(c.transaction_timeout(), Duration::from_secs(60));
    }
}
