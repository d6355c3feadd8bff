//! Creating a missing stream (`'topic.create' 'true'`), capturing the subjects the table's
//! partition mapping reads.

use async_nats::jetstream::stream::Config;

use super::config::{NatsConfig, NatsPartitioning};
use super::source::{connect_jetstream, get_stream};
use crate::error::{Result, TopicsError};

/// Creates the stream(s) of `config` unless they exist; true when any was created.
///
/// Subjects captured: the `nats.subjects` list or wildcard for subject mappings; the stream's
/// own name for the one-stream mapping and for each stream of a `prefix-0 … prefix-N` family.
pub async fn create_stream_if_missing(config: &NatsConfig) -> Result<bool> {
    let js = connect_jetstream(config).await?;
    let streams: Vec<(String, Vec<String>)> = match &config.partitioning {
        NatsPartitioning::Stream => vec![(config.stream.clone(), vec![config.stream.clone()])],
        NatsPartitioning::Subjects(list) => vec![(config.stream.clone(), list.clone())],
        NatsPartitioning::SubjectWildcard(w) => vec![(config.stream.clone(), vec![w.clone()])],
        NatsPartitioning::Streams(n) => (0..*n as i32)
            .map(|p| (config.stream_of(p), vec![config.stream_of(p)]))
            .collect(),
    };
    let mut created = false;
    for (name, subjects) in streams {
        match get_stream(&js, config, &name).await {
            Ok(_) => continue,
            Err(TopicsError::UnknownTopic { .. }) => {}
            Err(e) => return Err(e),
        }
        js.create_stream(Config {
            name: name.clone(),
            subjects,
            ..Default::default()
        })
        .await
        .map_err(|e| config.client_error(format!("creating stream '{name}'"), e))?;
        created = true;
    }
    Ok(created)
}
