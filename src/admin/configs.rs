//! Configs: describe, alter (whole set), alter incrementally.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::{check, keyed, AdminClient, Answer, CONTROLLER_RETRY};
use crate::error::{Error, Result};
use crate::protocol::messages::describe_configs_request::DescribeConfigsResource;
use crate::protocol::messages::{
    alter_configs_request, incremental_alter_configs_request, AlterConfigsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use crate::protocol::Request;

/// What kind of thing a [`ConfigResource`] is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigResourceType {
    /// A topic; the name is the topic name.
    Topic,
    /// A broker; the name is its node id (`"1"`), or empty for the
    /// cluster-wide dynamic defaults.
    Broker,
    /// A broker's log4j loggers; the name is the broker's node id.
    BrokerLogger,
    /// A consumer group (KIP-848 group configs, Kafka 3.8+).
    Group,
}

impl ConfigResourceType {
    /// The wire value (2, 4, 8, 32).
    pub fn as_i8(self) -> i8 {
        match self {
            ConfigResourceType::Topic => 2,
            ConfigResourceType::Broker => 4,
            ConfigResourceType::BrokerLogger => 8,
            ConfigResourceType::Group => 32,
        }
    }

    /// The type for a wire value, if it is one of these.
    pub fn from_i8(v: i8) -> Option<ConfigResourceType> {
        match v {
            2 => Some(ConfigResourceType::Topic),
            4 => Some(ConfigResourceType::Broker),
            8 => Some(ConfigResourceType::BrokerLogger),
            32 => Some(ConfigResourceType::Group),
            _ => None,
        }
    }
}

/// Something with configs: a topic, a broker, a broker's loggers, a group.
///
/// ```
/// use kafka_blocking::admin::{ConfigResource, ConfigResourceType};
///
/// let topic = ConfigResource::topic("orders");
/// let broker = ConfigResource::broker(1);
/// assert_eq!(broker.resource_type, ConfigResourceType::Broker);
/// assert_eq!(broker.name, "1");
/// assert_eq!(topic.to_string(), "topic `orders`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigResource {
    /// What kind of resource.
    pub resource_type: ConfigResourceType,
    /// Its name (a topic name, a broker id, a group id).
    pub name: String,
}

impl ConfigResource {
    /// A resource of `resource_type` named `name`.
    pub fn new(resource_type: ConfigResourceType, name: impl Into<String>) -> ConfigResource {
        ConfigResource {
            resource_type,
            name: name.into(),
        }
    }

    /// The topic `name`.
    pub fn topic(name: impl Into<String>) -> ConfigResource {
        ConfigResource::new(ConfigResourceType::Topic, name)
    }

    /// The broker with node id `id`.
    pub fn broker(id: i32) -> ConfigResource {
        ConfigResource::new(ConfigResourceType::Broker, id.to_string())
    }

    /// The loggers of the broker with node id `id`.
    pub fn broker_logger(id: i32) -> ConfigResource {
        ConfigResource::new(ConfigResourceType::BrokerLogger, id.to_string())
    }

    /// The consumer group `group_id`.
    pub fn group(group_id: impl Into<String>) -> ConfigResource {
        ConfigResource::new(ConfigResourceType::Group, group_id)
    }

    /// The broker that must answer for this resource: brokers and broker
    /// loggers answer for themselves; anything else goes anywhere.
    fn broker_id(&self) -> Result<Option<i32>> {
        match self.resource_type {
            ConfigResourceType::Broker | ConfigResourceType::BrokerLogger
                if !self.name.is_empty() =>
            {
                self.name.parse::<i32>().map(Some).map_err(|_| {
                    Error::invalid_argument(format!(
                        "{self}: a broker resource is named by its node id (e.g. \"1\")"
                    ))
                })
            }
            _ => Ok(None),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.resource_type {
            ConfigResourceType::Topic => "topic",
            ConfigResourceType::Broker => "broker",
            ConfigResourceType::BrokerLogger => "broker logger",
            ConfigResourceType::Group => "group",
        };
        if self.name.is_empty() {
            write!(f, "{kind} defaults")
        } else {
            write!(f, "{kind} `{}`", self.name)
        }
    }
}

/// Where a config value comes from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopicConfig,
    /// Set dynamically on this broker.
    DynamicBrokerConfig,
    /// Set dynamically as the default for every broker.
    DynamicDefaultBrokerConfig,
    /// From the broker's `server.properties`.
    StaticBrokerConfig,
    /// Kafka's built-in default.
    DefaultConfig,
    /// Set dynamically on a broker logger.
    DynamicBrokerLoggerConfig,
    /// A client-metrics subscription.
    ClientMetricsConfig,
    /// Set on the group.
    GroupConfig,
    /// A source this client does not know (the wire value).
    Unknown(i8),
}

impl ConfigSource {
    fn from_i8(v: i8) -> ConfigSource {
        match v {
            1 => ConfigSource::DynamicTopicConfig,
            2 => ConfigSource::DynamicBrokerConfig,
            3 => ConfigSource::DynamicDefaultBrokerConfig,
            4 => ConfigSource::StaticBrokerConfig,
            5 => ConfigSource::DefaultConfig,
            6 => ConfigSource::DynamicBrokerLoggerConfig,
            7 => ConfigSource::ClientMetricsConfig,
            8 => ConfigSource::GroupConfig,
            other => ConfigSource::Unknown(other),
        }
    }
}

/// The type of a config value (DescribeConfigs v3+).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigType {
    /// `true`/`false`.
    Boolean,
    /// Text.
    String,
    /// A 32-bit integer.
    Int,
    /// A 16-bit integer.
    Short,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list.
    List,
    /// A Java class name.
    Class,
    /// A secret.
    Password,
    /// Not reported (older brokers) or not known to this client.
    Unknown,
}

impl ConfigType {
    fn from_i8(v: i8) -> ConfigType {
        match v {
            1 => ConfigType::Boolean,
            2 => ConfigType::String,
            3 => ConfigType::Int,
            4 => ConfigType::Short,
            5 => ConfigType::Long,
            6 => ConfigType::Double,
            7 => ConfigType::List,
            8 => ConfigType::Class,
            9 => ConfigType::Password,
            _ => ConfigType::Unknown,
        }
    }
}

/// Another source's value for the same config (see
/// [`AdminClient::describe_configs`]' `include_synonyms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The config name at that level (e.g. `log.retention.ms` for a
    /// topic's `retention.ms`).
    pub name: String,
    /// Its value; `None` when sensitive.
    pub value: Option<String>,
    /// Where it comes from.
    pub source: ConfigSource,
}

/// One config of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The config name.
    pub name: String,
    /// Its value; `None` when sensitive or unset.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed.
    pub is_read_only: bool,
    /// Whether it holds a secret (its value is then hidden).
    pub is_sensitive: bool,
    /// Whether the value is the default (no override anywhere).
    pub is_default: bool,
    /// The values at other levels, most specific first (when asked for).
    pub synonyms: Vec<ConfigSynonym>,
    /// The value's type (Kafka 2.6+).
    pub config_type: ConfigType,
    /// The config's documentation (when asked for, Kafka 2.6+).
    pub documentation: Option<String>,
}

/// How [`AlterConfigOp`] changes a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlterConfigOpType {
    /// Set the value.
    Set,
    /// Remove the override (back to the default).
    Delete,
    /// Add to a list config.
    Append,
    /// Remove from a list config.
    Subtract,
}

impl AlterConfigOpType {
    /// The wire value (0 to 3).
    pub fn as_i8(self) -> i8 {
        match self {
            AlterConfigOpType::Set => 0,
            AlterConfigOpType::Delete => 1,
            AlterConfigOpType::Append => 2,
            AlterConfigOpType::Subtract => 3,
        }
    }
}

/// One change for [`AdminClient::incremental_alter_configs`].
///
/// ```
/// use kafka_blocking::admin::AlterConfigOp;
///
/// let ops = vec![
///     AlterConfigOp::set("retention.ms", "3600000"),
///     AlterConfigOp::delete("segment.bytes"),
///     AlterConfigOp::append("cleanup.policy", "compact"),
/// ];
/// # let _ = ops;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlterConfigOp {
    /// The config name.
    pub name: String,
    /// What to do.
    pub op: AlterConfigOpType,
    /// The value (`None` for [`AlterConfigOpType::Delete`]).
    pub value: Option<String>,
}

impl AlterConfigOp {
    /// Sets `name` to `value`.
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Set,
            value: Some(value.into()),
        }
    }

    /// Removes the override of `name`.
    pub fn delete(name: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Delete,
            value: None,
        }
    }

    /// Adds `value` to the list config `name`.
    pub fn append(name: impl Into<String>, value: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Append,
            value: Some(value.into()),
        }
    }

    /// Removes `value` from the list config `name`.
    pub fn subtract(name: impl Into<String>, value: impl Into<String>) -> AlterConfigOp {
        AlterConfigOp {
            name: name.into(),
            op: AlterConfigOpType::Subtract,
            value: Some(value.into()),
        }
    }
}

/// Resources by the broker that must answer for them (`None`: any
/// broker, or the controller for changes).
type Routed<'a> = BTreeMap<Option<i32>, Vec<&'a ConfigResource>>;

/// Groups `resources` by the broker that must answer for them; resources
/// that name no valid broker come back as errors.
fn by_broker(resources: &[ConfigResource]) -> (Routed<'_>, Vec<(ConfigResource, Error)>) {
    let mut groups: Routed<'_> = BTreeMap::new();
    let mut bad = Vec::new();
    for r in resources {
        match r.broker_id() {
            Ok(b) => groups.entry(b).or_default().push(r),
            Err(e) => bad.push((r.clone(), e)),
        }
    }
    (groups, bad)
}

/// Matches a resource in an answer back to the one asked for.
fn answered(kind: i8, name: &str) -> Option<ConfigResource> {
    ConfigResourceType::from_i8(kind).map(|t| ConfigResource::new(t, name))
}

impl AdminClient {
    /// The configs of each resource. A broker (or broker logger) resource
    /// is asked of that broker; the others of any broker. With
    /// `include_synonyms` each entry lists the values at other levels; with
    /// `include_documentation` (Kafka 2.6+) its documentation.
    pub fn describe_configs(
        &self,
        resources: impl IntoIterator<Item = ConfigResource>,
        include_synonyms: bool,
        include_documentation: bool,
    ) -> Result<Vec<(ConfigResource, Result<Vec<ConfigEntry>>)>> {
        let resources: Vec<ConfigResource> = resources.into_iter().collect();
        let dl = self.deadline(None);
        self.run_items(resources, &dl, &[], |pending| {
            let (groups, bad) = by_broker(pending);
            // With one destination, a failed request fails the attempt as
            // a whole (an unsupported API is then the call's error).
            let single = groups.len() == 1 && bad.is_empty();
            let mut out: Vec<(ConfigResource, Answer<Vec<ConfigEntry>>)> = bad
                .into_iter()
                .map(|(r, e)| (r, Answer::Final(Err(e))))
                .collect();
            for (broker, resources) in groups {
                match self.describe_configs_on(
                    broker,
                    &resources,
                    include_synonyms,
                    include_documentation,
                    &dl,
                ) {
                    Ok(answers) => out.extend(answers),
                    Err(e) if single => return Err(e),
                    Err(e) => out.extend(
                        resources
                            .into_iter()
                            .map(|r| (r.clone(), Answer::from_result(Err(e.clone()), &[]))),
                    ),
                }
            }
            Ok(out)
        })
    }

    fn describe_configs_on(
        &self,
        broker: Option<i32>,
        resources: &[&ConfigResource],
        include_synonyms: bool,
        include_documentation: bool,
        dl: &super::Deadline,
    ) -> Result<Vec<(ConfigResource, Answer<Vec<ConfigEntry>>)>> {
        let id = match broker {
            Some(id) => id,
            None => self.any_broker()?,
        };
        let version = self.version::<DescribeConfigsRequest>(id)?;
        let request = DescribeConfigsRequest {
            resources: resources
                .iter()
                .map(|r| DescribeConfigsResource {
                    resource_type: r.resource_type.as_i8(),
                    resource_name: r.name.clone(),
                    configuration_keys: None,
                    ..Default::default()
                })
                .collect(),
            include_synonyms: include_synonyms && version >= 1,
            include_documentation: include_documentation && version >= 3,
            ..Default::default()
        };
        let response = self.send_to(id, &request, dl.attempt_timeout())?;
        Ok(response
            .results
            .into_iter()
            .filter_map(|r| {
                let resource = answered(r.resource_type, &r.resource_name)?;
                let result = check(
                    r.error_code,
                    r.error_message.as_deref(),
                    format_args!("describing the configs of {resource}"),
                )
                .map(|()| {
                    r.configs
                        .into_iter()
                        .map(|c| {
                            // v0 has only `is_default`; v1+ has the source.
                            let source = if version == 0 {
                                if c.is_default {
                                    ConfigSource::DefaultConfig
                                } else {
                                    ConfigSource::Unknown(-1)
                                }
                            } else {
                                ConfigSource::from_i8(c.config_source)
                            };
                            ConfigEntry {
                                name: c.name,
                                value: c.value,
                                is_default: if version == 0 {
                                    c.is_default
                                } else {
                                    source == ConfigSource::DefaultConfig
                                },
                                source,
                                is_read_only: c.read_only,
                                is_sensitive: c.is_sensitive,
                                synonyms: c
                                    .synonyms
                                    .into_iter()
                                    .map(|s| ConfigSynonym {
                                        name: s.name,
                                        value: s.value,
                                        source: ConfigSource::from_i8(s.source),
                                    })
                                    .collect(),
                                config_type: ConfigType::from_i8(c.config_type),
                                documentation: c.documentation,
                            }
                        })
                        .collect()
                });
                Some((resource, Answer::from_result(result, &[])))
            })
            .collect())
    }

    /// Replaces the whole set of dynamic configs of each resource (the
    /// legacy AlterConfigs API: configs left out return to their
    /// defaults). Prefer [`incremental_alter_configs`](Self::incremental_alter_configs)
    /// on Kafka 2.3+.
    pub fn alter_configs(
        &self,
        resources: impl IntoIterator<Item = (ConfigResource, Vec<(String, String)>)>,
        validate_only: bool,
    ) -> Result<Vec<(ConfigResource, Result<()>)>> {
        self.alter_each(
            resources,
            |resources, wanted| AlterConfigsRequest {
                resources: resources
                    .iter()
                    .map(|r| alter_configs_request::AlterConfigsResource {
                        resource_type: r.resource_type.as_i8(),
                        resource_name: r.name.clone(),
                        configs: wanted
                            .get(*r)
                            .into_iter()
                            .flatten()
                            .map(|(k, v)| alter_configs_request::AlterableConfig {
                                name: k.clone(),
                                value: Some(v.clone()),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                validate_only,
                ..Default::default()
            },
            |response| {
                response
                    .responses
                    .into_iter()
                    .map(|r| {
                        (
                            r.resource_type,
                            r.resource_name,
                            r.error_code,
                            r.error_message,
                        )
                    })
                    .collect()
            },
        )
    }

    /// Changes configs one by one (set, delete, append to or subtract from
    /// a list), leaving the others alone (Kafka 2.3+).
    ///
    /// ```no_run
    /// use kafka_blocking::admin::{AdminClient, AlterConfigOp, ConfigResource};
    ///
    /// # fn main() -> kafka_blocking::Result<()> {
    /// let admin = AdminClient::builder().bootstrap_servers("127.0.0.1:9092").build()?;
    /// let results = admin.incremental_alter_configs(
    ///     [(ConfigResource::topic("orders"), vec![AlterConfigOp::set("retention.ms", "3600000")])],
    ///     false,
    /// )?;
    /// for (resource, result) in results {
    ///     result?;
    ///     println!("changed {resource}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn incremental_alter_configs(
        &self,
        resources: impl IntoIterator<Item = (ConfigResource, Vec<AlterConfigOp>)>,
        validate_only: bool,
    ) -> Result<Vec<(ConfigResource, Result<()>)>> {
        use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        self.alter_each(
            resources,
            |resources, wanted| IncrementalAlterConfigsRequest {
                resources: resources
                    .iter()
                    .map(|r| AlterConfigsResource {
                        resource_type: r.resource_type.as_i8(),
                        resource_name: r.name.clone(),
                        configs: wanted
                            .get(*r)
                            .into_iter()
                            .flatten()
                            .map(|op| AlterableConfig {
                                name: op.name.clone(),
                                config_operation: op.op.as_i8(),
                                value: op.value.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                validate_only,
                ..Default::default()
            },
            |response| {
                response
                    .responses
                    .into_iter()
                    .map(|r| {
                        (
                            r.resource_type,
                            r.resource_name,
                            r.error_code,
                            r.error_message,
                        )
                    })
                    .collect()
            },
        )
    }

    /// The two alter calls: each resource goes to its broker (a broker or
    /// broker-logger resource) or the controller; `request` builds one
    /// request for a group of resources out of what is `wanted` for each,
    /// `answers` lists (resource type, name, error code, message) of the
    /// response. Retried per resource within the admin timeout.
    fn alter_each<W, R: Request>(
        &self,
        resources: impl IntoIterator<Item = (ConfigResource, W)>,
        request: impl Fn(&[&ConfigResource], &HashMap<ConfigResource, W>) -> R,
        answers: impl Fn(R::Response) -> Vec<(i8, String, i16, Option<String>)>,
    ) -> Result<Vec<(ConfigResource, Result<()>)>> {
        let (order, wanted) = keyed(resources);
        let dl = self.deadline(None);
        self.run_items(order, &dl, CONTROLLER_RETRY, |pending| {
            let (groups, bad) = by_broker(pending);
            // With one destination, a failed request fails the attempt as
            // a whole (an unsupported API is then the call's error).
            let single = groups.len() == 1 && bad.is_empty();
            let mut out: Vec<(ConfigResource, Answer<()>)> = bad
                .into_iter()
                .map(|(r, e)| (r, Answer::Final(Err(e))))
                .collect();
            for (broker, resources) in groups {
                let request = request(&resources, &wanted);
                let sent = broker
                    .map_or_else(|| self.controller(), Ok)
                    .and_then(|id| self.send_to(id, &request, dl.attempt_timeout()));
                match sent {
                    Ok(response) => {
                        for (kind, name, code, message) in answers(response) {
                            if let Some(resource) = answered(kind, &name) {
                                let result = check(
                                    code,
                                    message.as_deref(),
                                    format_args!("altering the configs of {resource}"),
                                );
                                out.push((resource, Answer::from_result(result, CONTROLLER_RETRY)));
                            }
                        }
                    }
                    Err(e) if single => return Err(e),
                    Err(e) => out.extend(resources.into_iter().map(|r| {
                        (
                            r.clone(),
                            Answer::from_result(Err(e.clone()), CONTROLLER_RETRY),
                        )
                    })),
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_round_trip() {
        for t in [
            ConfigResourceType::Topic,
            ConfigResourceType::Broker,
            ConfigResourceType::BrokerLogger,
            ConfigResourceType::Group,
        ] {
            assert_eq!(ConfigResourceType::from_i8(t.as_i8()), Some(t));
        }
        assert_eq!(ConfigResourceType::from_i8(0), None);
    }

    #[test]
    fn broker_resources_route_to_their_broker() {
        assert_eq!(ConfigResource::broker(3).broker_id().unwrap(), Some(3));
        assert_eq!(
            ConfigResource::broker_logger(7).broker_id().unwrap(),
            Some(7)
        );
        assert_eq!(
            ConfigResource::new(ConfigResourceType::Broker, "")
                .broker_id()
                .unwrap(),
            None
        );
        assert_eq!(ConfigResource::topic("t").broker_id().unwrap(), None);
        let e = ConfigResource::new(ConfigResourceType::Broker, "one")
            .broker_id()
            .unwrap_err();
        assert!(e.to_string().contains("broker `one`"), "{e}");
    }

    #[test]
    fn sources_and_types_decode() {
        assert_eq!(ConfigSource::from_i8(1), ConfigSource::DynamicTopicConfig);
        assert_eq!(ConfigSource::from_i8(5), ConfigSource::DefaultConfig);
        assert_eq!(ConfigSource::from_i8(42), ConfigSource::Unknown(42));
        assert_eq!(ConfigType::from_i8(5), ConfigType::Long);
        assert_eq!(ConfigType::from_i8(0), ConfigType::Unknown);
        assert_eq!(AlterConfigOp::delete("x").op.as_i8(), 1);
        assert_eq!(AlterConfigOp::subtract("x", "y").op.as_i8(), 3);
    }
}
