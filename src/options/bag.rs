//! The options of one table, consumed as they are parsed.

use std::collections::{BTreeMap, HashMap};

use super::decl::OptionDecl;
use crate::error::{Result, TopicsError};

/// A table's `OPTIONS`, taken one declared option at a time; [`OptionBag::finish`] turns
/// whatever nobody took into the unknown-option error.
///
/// Keys are compared lower-cased (as `CREATE EXTERNAL TABLE` delivers them) and DataFusion's
/// `format.` prefix (added to keys without a dot) is ignored.
#[derive(Debug, Clone, Default)]
pub struct OptionBag {
    entries: BTreeMap<String, String>,
}

impl OptionBag {
    /// The options of a table, as given.
    pub fn new(options: &HashMap<String, String>) -> Self {
        Self {
            entries: options
                .iter()
                .map(|(k, v)| {
                    let key = k.strip_prefix("format.").unwrap_or(k).to_ascii_lowercase();
                    (key, v.clone())
                })
                .collect(),
        }
    }

    /// Takes the value of a plain option.
    pub fn take(&mut self, decl: &OptionDecl) -> Option<String> {
        self.entries.remove(decl.key)
    }

    /// Takes and parses the value of a plain option; `parse` gets the key and the value.
    pub fn take_with<T>(
        &mut self,
        decl: &OptionDecl,
        parse: impl FnOnce(&str, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        self.take(decl).map(|v| parse(decl.key, &v)).transpose()
    }

    /// Takes every option of a `prefix.*` family, as (rest of the key, value) pairs.
    pub fn take_family(&mut self, decl: &OptionDecl) -> Vec<(String, String)> {
        let Some(prefix) = decl.prefix() else {
            return self
                .take(decl)
                .map(|v| (String::new(), v))
                .into_iter()
                .collect();
        };
        let keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| decl.matches(k))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let value = self.entries.remove(&k)?;
                Some((k[prefix.len()..].to_string(), value))
            })
            .collect()
    }

    /// True when the option was given (without taking it).
    pub fn has(&self, decl: &OptionDecl) -> bool {
        self.entries.keys().any(|k| decl.matches(k))
    }

    /// The first key (in sorted order) that starts with `prefix`, without taking it.
    pub fn first_with_prefix(&self, prefix: &str) -> Option<&str> {
        self.entries
            .keys()
            .find(|k| k.starts_with(prefix))
            .map(String::as_str)
    }

    /// Fails with the unknown-option error if anything was not taken; `valid` lists every
    /// option the table type accepts.
    pub fn finish(self, valid: &[&OptionDecl]) -> Result<()> {
        match self.entries.into_keys().next() {
            None => Ok(()),
            Some(key) => Err(TopicsError::UnknownOption {
                key,
                valid: valid.iter().map(|d| d.key).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: OptionDecl = OptionDecl {
        key: "scan.startup.mode",
        values: "",
        default: "",
        doc: "",
    };
    const FAMILY: OptionDecl = OptionDecl {
        key: "client.*",
        values: "",
        default: "",
        doc: "",
    };

    #[test]
    fn options_are_consumed_and_leftovers_are_unknown() {
        let given: HashMap<String, String> = [
            ("format.scan.startup.mode", "latest"),
            ("client.fetch.max.bytes", "1"),
            ("client.rack.id", "r"),
            ("no.such", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut bag = OptionBag::new(&given);
        assert_eq!(bag.take(&PLAIN).as_deref(), Some("latest"));
        assert_eq!(bag.take(&PLAIN), None);
        let family = bag.take_family(&FAMILY);
        assert_eq!(
            family,
            vec![
                ("fetch.max.bytes".to_string(), "1".to_string()),
                ("rack.id".to_string(), "r".to_string())
            ]
        );
        let err = bag.finish(&[&PLAIN, &FAMILY]).unwrap_err().to_string();
        assert!(
            err.contains("'no.such'") && err.contains("scan.startup.mode, client.*"),
            "{err}"
        );
    }
}
