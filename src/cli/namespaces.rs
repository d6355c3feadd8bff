//! Table-option namespaces for datafusion-cli: the CLI checks every `OPTIONS` key of a
//! `CREATE EXTERNAL TABLE` against registered namespaces before the table factory sees it, so
//! each first component of a topic-table key (`value.`, `scan.`, `kafka.` …) is registered
//! here. The namespaces only carry the keys through; the option declarations validate them
//! and report unknown keys together with the list of valid ones.

use std::any::Any;
use std::collections::BTreeMap;

use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

/// Keys of one namespace as the user wrote them (full dotted key → value).
#[derive(Debug, Clone, Default)]
struct Carried(BTreeMap<String, String>);

impl Carried {
    fn entries(&self) -> Vec<ConfigEntry> {
        self.0
            .iter()
            .map(|(key, value)| ConfigEntry {
                key: key.clone(),
                value: Some(if crate::secret::is_secret_key(key) {
                    crate::secret::REDACTED.to_string()
                } else {
                    value.clone()
                }),
                description: "topic table option (see docs/options.md)",
            })
            .collect()
    }
}

macro_rules! namespace {
    ($name:ident, $prefix:literal) => {
        #[doc = concat!("Carries `", $prefix, ".*` table options through the CLI to the topic-table factory.")]
        #[derive(Debug, Clone, Default)]
        pub struct $name(Carried);

        impl ExtensionOptions for $name {
            fn as_any(&self) -> &dyn Any {
                self
            }
            fn as_any_mut(&mut self) -> &mut dyn Any {
                self
            }
            fn cloned(&self) -> Box<dyn ExtensionOptions> {
                Box::new(self.clone())
            }
            fn set(&mut self, key: &str, value: &str) -> Result<()> {
                self.0.0.insert(key.to_string(), value.to_string());
                Ok(())
            }
            fn entries(&self) -> Vec<ConfigEntry> {
                self.0.entries()
            }
        }

        impl ConfigExtension for $name {
            const PREFIX: &'static str = $prefix;
        }
    };
}

/// Declares the namespace types, the list of their prefixes and the registration, once.
macro_rules! namespaces {
    ($($name:ident => $prefix:literal),* $(,)?) => {
        $(namespace!($name, $prefix);)*

        /// The first components the CLI registers (a test checks they cover every declared
        /// option key).
        #[cfg(test)]
        pub const REGISTERED: &[&str] = &[$($prefix),*];

        /// Registers every topic-table option namespace with the session's table options.
        pub fn register_option_namespaces(ctx: &SessionContext) {
            $(ctx.register_table_options_extension($name::default());)*
        }
    };
}

namespaces! {
    ValueOptions => "value",
    KeyOptions => "key",
    ScanOptionsNamespace => "scan",
    SinkOptions => "sink",
    TopicOptions => "topic",
    PropertiesOptions => "properties",
    ConnectOptions => "connect",
    KafkaOptions => "kafka",
    NatsOptions => "nats",
    MemoryOptions => "memory",
    SchemaRegistryOptions => "schema-registry",
    WatermarkOptions => "watermark",
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_option_namespace_is_registered() {
        let mut registered = super::REGISTERED.to_vec();
        registered.sort_unstable();
        assert_eq!(registered, crate::options::docs::namespaces());
    }
}
