//! The seam between the generic table and the brokers: a [`Connector`] per broker (one folder
//! each under `connectors/`), found by its `STORED AS` name or its location scheme in the one
//! registry, [`connectors`]. Nothing outside `connectors/` branches on a broker.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Result, TopicsError};
use crate::options::{OptionBag, OptionDecl, ScanOptions};
use crate::sink::MessageWriter;
use crate::source::{LogSource, TableSource, TopicSelector};
use crate::table::MetadataColumn;

/// A kind of broker: its name, location scheme, metadata columns and options, and how to
/// turn a location and options into a [`ConnectorTable`].
pub trait Connector: Send + Sync + Debug {
    /// The `STORED AS` name, upper case (`KAFKA`).
    fn name(&self) -> &'static str;

    /// The location schemes it serves (`kafka`; NATS also takes `tls`).
    fn schemes(&self) -> &'static [&'static str];

    /// The metadata columns its rows carry, in schema order.
    fn metadata_columns(&self) -> &'static [MetadataColumn];

    /// Its own options (besides those every table takes), in documentation order.
    fn options(&self) -> &'static [&'static OptionDecl];

    /// The consumer group named in the options (Kafka: `properties.group.id`), which the
    /// start position `group-offsets` needs; taken before the scan options are parsed, and
    /// found again in [`ScanOptions::group_id`].
    fn take_group(&self, bag: &mut OptionBag) -> Result<Option<String>> {
        let _ = bag;
        Ok(None)
    }

    /// Parses `location` and takes its own options from `bag`; `scan` are the table's
    /// connector-independent options, for checks that involve both.
    fn configure(
        &self,
        location: &str,
        bag: &mut OptionBag,
        scan: &ScanOptions,
    ) -> Result<Arc<dyn ConnectorTable>>;
}

/// One table's connection: what it reads, how it writes, how dead letters leave.
#[async_trait]
pub trait ConnectorTable: Send + Sync + Debug {
    /// The topics (streams) the table reads: the location's list, or `topic.pattern`.
    fn topics(&self) -> &TopicSelector;

    /// Creates the topic (stream) when it is missing and the options asked for that
    /// (`topic.create`); true when it was created.
    async fn create_if_missing(&self) -> Result<bool>;

    /// What scans read.
    fn source(&self) -> Result<TableSource>;

    /// The log view of the topic, for reading back what a sink wrote, even when scans read it
    /// as a queue. An error for a table over several topics.
    fn log(&self) -> Result<Arc<dyn LogSource>>;

    /// The writer `INSERT INTO` and continuous-query sinks use (an error for a table over
    /// several topics).
    fn writer(&self) -> Result<Arc<dyn MessageWriter>>;

    /// A writer of dead letters to `destination` (a topic on the same brokers, or a subject
    /// of the same stream).
    fn dead_letter_writer(&self, destination: &str) -> Arc<dyn MessageWriter>;
}

/// Every connector this build has, in documentation order: the one list.
pub fn connectors() -> &'static [&'static dyn Connector] {
    &[
        #[cfg(feature = "kafka")]
        &crate::connectors::kafka::KafkaConnector,
        #[cfg(feature = "nats")]
        &crate::connectors::nats::NatsConnector,
        &crate::connectors::memory::MemoryConnector,
    ]
}

/// The connector for a `STORED AS` name (case-insensitive).
pub fn connector_named(name: &str) -> Option<&'static dyn Connector> {
    connectors()
        .iter()
        .copied()
        .find(|c| c.name().eq_ignore_ascii_case(name))
}

/// The connector whose scheme the location has (`kafka://…`).
pub fn connector_for_location(location: &str) -> Result<&'static dyn Connector> {
    let scheme = location
        .split_once("://")
        .map(|(s, _)| s)
        .unwrap_or_default();
    connectors()
        .iter()
        .copied()
        .find(|c| c.schemes().contains(&scheme))
        .ok_or_else(|| TopicsError::InvalidLocation {
            location: location.to_string(),
            reason: format!(
                "no connector serves '{scheme}://' locations; this build has: {}",
                connectors()
                    .iter()
                    .flat_map(|c| c.schemes())
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Every scheme a connector serves (for the CLI's object-store registry).
pub fn connector_schemes() -> Vec<&'static str> {
    connectors()
        .iter()
        .flat_map(|c| c.schemes())
        .copied()
        .collect()
}
