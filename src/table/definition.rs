//! A table's location and options, parsed through its connector: the step before the table's
//! formats are resolved (and, for `CREATE EXTERNAL TABLE`, before missing columns are inferred).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use crate::connector::{Connector, ConnectorTable, connector_for_location};
use crate::error::{Result, TopicsError};
use crate::options::scan::SCAN_OPTIONS;
use crate::options::{BoundedMode, OptionBag, OptionDecl, ScanOptions, StartupMode};
use crate::source::TopicSelector;

/// A parsed table definition: which connector, its connection, the table's options and its
/// declared value columns.
#[derive(Debug, Clone)]
pub struct TableDefinition {
    /// The connector serving the location.
    pub connector: &'static dyn Connector,
    /// The table's connection (nothing is contacted yet).
    pub connection: Arc<dyn ConnectorTable>,
    /// The options every table takes.
    pub scan: ScanOptions,
    /// The declared value columns (empty for raw and string values, or to be inferred).
    pub value_schema: SchemaRef,
    /// The location as written.
    pub location: String,
    /// The options as written (secrets included: never shown or shipped, see
    /// [`TableOrigin`](crate::table::TableOrigin)).
    pub options: HashMap<String, String>,
}

impl TableDefinition {
    /// Parses `options` for the topic at `location`, with the connector its scheme names.
    pub fn parse(
        location: &str,
        value_schema: SchemaRef,
        options: &HashMap<String, String>,
    ) -> Result<Self> {
        Self::parse_with(
            connector_for_location(location)?,
            location,
            value_schema,
            options,
        )
    }

    /// Parses `options` for the topic at `location` with `connector`. Every option must be
    /// one the connector or every table takes; the error for another lists them.
    pub fn parse_with(
        connector: &'static dyn Connector,
        location: &str,
        value_schema: SchemaRef,
        options: &HashMap<String, String>,
    ) -> Result<Self> {
        let mut bag = OptionBag::new(options);
        let group = connector.take_group(&mut bag)?;
        let scan = ScanOptions::parse(&mut bag, &value_schema, group.as_deref())?;
        let connection = connector.configure(location, &mut bag, &scan)?;
        let valid: Vec<&OptionDecl> = SCAN_OPTIONS
            .iter()
            .chain(connector.options())
            .copied()
            .collect();
        bag.finish(&valid)?;
        check_several_topics(connection.topics(), &scan)?;
        Ok(Self {
            connector,
            connection,
            scan,
            value_schema,
            location: location.to_string(),
            options: options.clone(),
        })
    }
}

/// Refuses what a table over several topics (or a pattern) cannot mean: offsets per partition
/// number alone, and creating topics a pattern only describes.
fn check_several_topics(topics: &TopicSelector, scan: &ScanOptions) -> Result<()> {
    let several = !matches!(topics, TopicSelector::Named(n) if n.len() == 1);
    if !several {
        return Ok(());
    }
    let refuse = |key: &str, reason: &str| {
        Err(TopicsError::OptionConflict {
            key: key.to_string(),
            reason: format!("the table reads several topics ({topics}): {reason}"),
        })
    };
    if matches!(scan.startup, StartupMode::SpecificOffsets(_)) {
        return refuse(
            "scan.startup.specific-offsets",
            "offsets per partition number would apply to every topic; declare one table per topic",
        );
    }
    if matches!(scan.bounded, BoundedMode::SpecificOffsets(_)) {
        return refuse(
            "scan.bounded.specific-offsets",
            "offsets per partition number would apply to every topic; declare one table per topic",
        );
    }
    if scan.create_topic && matches!(topics, TopicSelector::Pattern(_)) {
        return refuse("topic.create", "a pattern names no topic to create");
    }
    Ok(())
}
