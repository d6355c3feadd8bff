//! Creating a missing topic (`'topic.create' 'true'`), so a table can be declared before the
//! first message is written to it.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::config::KafkaConfig;
use crate::error::Result;

/// How to create the topic when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicCreation {
    /// Number of partitions (`topic.partitions`).
    pub partitions: i32,
    /// Replication factor (`topic.replication-factor`).
    pub replication: i32,
}

/// Creates the topic of `config` unless it exists; true when it was created.
pub async fn create_topic_if_missing(config: &KafkaConfig, spec: TopicCreation) -> Result<bool> {
    let admin: AdminClient<DefaultClientContext> = config
        .base_config()
        .create()
        .map_err(|e| config.client_error("creating an admin client", e))?;
    let topic = NewTopic::new(
        &config.topic,
        spec.partitions,
        TopicReplication::Fixed(spec.replication),
    );
    let wait = config.timeout.max(Duration::from_millis(1));
    let options = AdminOptions::new()
        .operation_timeout(Some(wait))
        .request_timeout(Some(wait));
    let action = format!("creating topic '{}'", config.topic);
    let results = match tokio::time::timeout(wait, admin.create_topics([&topic], &options)).await {
        Err(_) => return Err(config.unreachable(&action, "no answer")),
        Ok(Err(e)) => return Err(config.unreachable(&action, e)),
        Ok(Ok(results)) => results,
    };
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((_, code))) => Err(config.client_error(action, code)),
        None => Err(config.client_error(action, "the broker returned no result")),
    }
}
