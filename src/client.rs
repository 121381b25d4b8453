//! [`Client`]: the raw protocol client — send any request to any broker.

use std::sync::Arc;

use crate::cluster::{Cluster, ClusterMetadata, TopicSelection};
use crate::config::ClientConfig;
use crate::error::Result;
use crate::protocol::{BrokerVersions, Request};

/// A low-level client that sends protocol requests and returns the typed
/// responses, in the spirit of kafka-python's `KafkaClient`.
///
/// It keeps the cluster metadata and one connection per broker, negotiates
/// versions with each broker, and is `Send + Sync`. Use it for requests the
/// high-level clients do not wrap.
///
/// ```no_run
/// use kafka_blocking::protocol::messages::MetadataRequest;
/// use kafka_blocking::{Client, ClientConfig};
///
/// # fn main() -> kafka_blocking::Result<()> {
/// let client = Client::new(ClientConfig::builder().bootstrap_servers("127.0.0.1:9092").build()?)?;
/// let info = client.check_version()?;
/// println!("broker speaks Kafka {:?}", info.kafka_version);
///
/// let answer = client.send_any(&MetadataRequest::default())?;
/// for b in &answer.brokers {
///     println!("broker {} at {}:{}", b.node_id, b.host, b.port);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    cluster: Arc<Cluster>,
}

/// What [`Client::check_version`] found out about a broker.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The broker that answered.
    pub broker_id: Option<i32>,
    /// The API versions it supports.
    pub api_versions: BrokerVersions,
    /// The best guess of its Apache Kafka release, e.g. `(3, 7, 0)`.
    pub kafka_version: (u16, u16, u16),
}

impl Client {
    /// A client for `config`. Connects lazily, on the first request.
    pub fn new(config: ClientConfig) -> Result<Client> {
        Ok(Client {
            cluster: Cluster::new(config, false),
        })
    }

    /// Sends `request` to whichever broker answers first (connected brokers,
    /// then the bootstrap list) and returns its response.
    pub fn send_any<R: Request>(&self, request: &R) -> Result<R::Response> {
        self.cluster.send_any(request)
    }

    /// Sends `request` to the broker with node id `broker_id`.
    pub fn send_to<R: Request>(&self, broker_id: i32, request: &R) -> Result<R::Response> {
        self.cluster.send_to(broker_id, request)
    }

    /// The API versions of one broker (`None`: any broker) and a best guess
    /// of its Kafka release, like kafka-python's `check_version()`.
    pub fn check_version(&self) -> Result<VersionInfo> {
        let snap = self.refresh_metadata(None)?;
        let id = snap.brokers.keys().next().copied();
        let api_versions = match id {
            Some(id) => self
                .cluster
                .connection(id, crate::cluster::Purpose::General)?
                .versions()?,
            None => {
                return Err(crate::Error::protocol(
                    "the cluster metadata lists no broker",
                ))
            }
        };
        Ok(VersionInfo {
            broker_id: id,
            kafka_version: api_versions.guess_kafka_version(),
            api_versions: (*api_versions).clone(),
        })
    }

    /// The API versions of broker `broker_id`.
    pub fn api_versions(&self, broker_id: i32) -> Result<BrokerVersions> {
        self.cluster.ensure_broker_known(broker_id)?;
        let conn = self
            .cluster
            .connection(broker_id, crate::cluster::Purpose::General)?;
        Ok((*conn.versions()?).clone())
    }

    /// The current metadata snapshot, without any I/O.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.cluster.metadata()
    }

    /// Fetches fresh metadata for `topics` (`None`: every topic).
    pub fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<Arc<ClusterMetadata>> {
        match topics {
            None => self.cluster.refresh(TopicSelection::All),
            Some(t) => {
                self.cluster.add_interest(t.iter().copied());
                self.cluster.refresh(TopicSelection::Interest)
            }
        }
    }

    /// Closes every connection. Requests made afterwards reconnect.
    pub fn close(&self) {
        self.cluster.close();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field(
                "bootstrap_servers",
                &self.cluster.config().bootstrap_servers(),
            )
            .finish()
    }
}
