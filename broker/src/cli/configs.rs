//! `klamm configs describe|alter` for a topic or a broker: DescribeConfigs (every entry
//! with where its value comes from) and IncrementalAlterConfigs (set / delete). The
//! helpers are shared with `klamm topics`.

use anyhow::anyhow;
use clap::{Args, Subcommand};
use klamm_protocol::messages::describe_configs_request::DescribeConfigsResource;
use klamm_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use klamm_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use serde_json::{json, Value};

use super::client::{Cluster, Target};
use super::key_value;
use super::output::{kafka_message, Report, Table};

/// DescribeConfigs / IncrementalAlterConfigs resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

#[derive(Subcommand, Debug)]
pub enum ConfigsCommand {
    /// Every config of the entity with its value and source.
    Describe {
        #[command(flatten)]
        entity: Entity,
    },
    /// Set or remove configs (IncrementalAlterConfigs).
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Set a config (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// Remove a config, back to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// A topic or a broker.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Entity {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// A broker id.
    #[arg(long)]
    broker: Option<i32>,
}

impl Entity {
    /// Resource type, name, and the broker to ask (a broker's own configs come from it).
    fn resource(&self) -> (i8, String, Target) {
        match (&self.topic, self.broker) {
            (Some(t), _) => (RESOURCE_TOPIC, t.clone(), Target::Any),
            (None, Some(b)) => (RESOURCE_BROKER, b.to_string(), Target::Node(b)),
            (None, None) => unreachable!("clap requires --topic or --broker"),
        }
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub is_default: bool,
    pub read_only: bool,
    pub sensitive: bool,
}

impl ConfigEntry {
    /// Kafka's `ConfigSource` names.
    pub fn source_name(&self) -> &'static str {
        match self.source {
            1 => "DYNAMIC_TOPIC_CONFIG",
            2 => "DYNAMIC_BROKER_CONFIG",
            3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            4 => "STATIC_BROKER_CONFIG",
            5 => "DEFAULT_CONFIG",
            6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
            7 => "CLIENT_METRICS_CONFIG",
            8 => "GROUP_CONFIG",
            _ => "UNKNOWN",
        }
    }
}

pub async fn describe_configs(cluster: &mut Cluster, resource_type: i8, name: &str, target: Target) -> anyhow::Result<Vec<ConfigEntry>> {
    let request = DescribeConfigsRequest {
        resources: vec![DescribeConfigsResource { resource_type, resource_name: name.to_string(), configuration_keys: None, ..Default::default() }],
        include_synonyms: false,
        include_documentation: false,
        ..Default::default()
    };
    // v1+ reports each entry's source.
    let reply = cluster.send(target, &request, (1, 4)).await?;
    let result = reply.body.results.into_iter().next().ok_or_else(|| anyhow!("DescribeConfigs answered no resource"))?;
    if result.error_code != 0 {
        let what = if resource_type == RESOURCE_TOPIC { format!("topic '{name}'") } else { format!("broker {name}") };
        let what = if result.error_code == 3 { format!("{what} does not exist") } else { format!("describe the configs of {what}") };
        return Err(anyhow!(kafka_message(result.error_code, &what, result.error_message.as_deref())));
    }
    let mut entries: Vec<ConfigEntry> = result
        .configs
        .into_iter()
        .map(|c| ConfigEntry {
            name: c.name,
            value: c.value,
            source: c.config_source,
            is_default: c.is_default,
            read_only: c.read_only,
            sensitive: c.is_sensitive,
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

pub async fn alter_configs(
    cluster: &mut Cluster,
    resource_type: i8,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
    target: Target,
) -> anyhow::Result<()> {
    let mut configs: Vec<AlterableConfig> =
        set.iter().map(|(k, v)| AlterableConfig { name: k.clone(), config_operation: 0, value: Some(v.clone()), ..Default::default() }).collect();
    configs.extend(delete.iter().map(|k| AlterableConfig { name: k.clone(), config_operation: 1, value: None, ..Default::default() }));
    let request = IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource { resource_type, resource_name: name.to_string(), configs, ..Default::default() }],
        validate_only: false,
        ..Default::default()
    };
    let reply = cluster.send(target, &request, (0, 1)).await?;
    for r in reply.body.responses {
        if r.error_code != 0 {
            let what = if resource_type == RESOURCE_TOPIC { format!("topic '{name}'") } else { format!("broker {name}") };
            let what = if r.error_code == 3 { format!("{what} does not exist") } else { format!("alter the configs of {what}") };
            return Err(anyhow!(kafka_message(r.error_code, &what, r.error_message.as_deref())));
        }
    }
    Ok(())
}

pub async fn run(cluster: &mut Cluster, command: ConfigsCommand) -> anyhow::Result<Report> {
    match command {
        ConfigsCommand::Describe { entity } => {
            let (kind, name, target) = entity.resource();
            let entries = describe_configs(cluster, kind, &name, target).await?;
            let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
            let mut json = Vec::new();
            for e in &entries {
                let shown = match (&e.value, e.sensitive) {
                    (_, true) => "[hidden]".to_string(),
                    (Some(v), false) => v.clone(),
                    (None, false) => "null".to_string(),
                };
                table.row(vec![e.name.clone(), shown, e.source_name().into(), if e.read_only { "yes".into() } else { "".into() }]);
                json.push(json!({"name": e.name, "value": if e.sensitive { Value::Null } else { json!(e.value) }, "source": e.source_name(), "default": e.source == 5 || e.is_default, "read_only": e.read_only, "sensitive": e.sensitive}));
            }
            let entity = if kind == RESOURCE_TOPIC { json!({"topic": name}) } else { json!({"broker": name.parse::<i32>().ok()}) };
            Ok(Report::new(json!({"entity": entity, "configs": json}), table.render()))
        }
        ConfigsCommand::Alter { entity, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
            }
            let (kind, name, target) = entity.resource();
            alter_configs(cluster, kind, &name, &set, &delete, target).await?;
            let what = if kind == RESOURCE_TOPIC { format!("topic '{name}'") } else { format!("broker {name}") };
            let mut text = String::new();
            for (k, v) in &set {
                text.push_str(&format!("Set {k}={v} on {what}.\n"));
            }
            for k in &delete {
                text.push_str(&format!("Removed {k} from {what}.\n"));
            }
            let set_json: serde_json::Map<String, Value> = set.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            Ok(Report::new(json!({"entity": what, "set": set_json, "deleted": delete}), text))
        }
    }
}
