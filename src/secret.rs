//! Keeping secrets (passwords, keys, tokens) out of EXPLAIN, Debug output, errors and logs.

use std::collections::BTreeMap;
use std::fmt;

/// Text shown in place of a secret value.
pub const REDACTED: &str = "***";

/// True when a client property of this name carries a secret (password, key, token, credentials).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "creds",
        "nkey",
        "seed",
        "key.pem",
        "keystore",
        "private",
    ]
    .iter()
    .any(|needle| k.contains(needle))
        || k == "sasl.oauthbearer.config"
        || k == "ssl.key.location"
}

/// Client properties (librdkafka or NATS settings) whose Debug output hides secret values.
#[derive(Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub struct ClientProperties(BTreeMap<String, String>);

#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
impl ClientProperties {
    /// An empty set of properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one property, replacing an earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// Reads one property.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates over all properties, secrets included (for building client configs only).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Replaces every secret value that occurs in `text` with `***`, for client error messages.
    pub fn scrub(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        for (k, v) in &self.0 {
            if is_secret_key(k) && v.len() >= 3 {
                text = text.replace(v.as_str(), REDACTED);
            }
        }
        text
    }

    /// The properties as `key=value` pairs with secrets replaced, for display.
    pub fn redacted(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) {
                    REDACTED.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

impl FromIterator<(String, String)> for ClientProperties {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "ssl.key.pem",
            "sasl.jaas.config",
            "token",
            "creds",
        ] {
            assert!(is_secret_key(k), "{k} should be secret");
        }
        for k in [
            "bootstrap.servers",
            "security.protocol",
            "sasl.mechanism",
            "sasl.username",
        ] {
            assert!(!is_secret_key(k), "{k} should not be secret");
        }
    }

    #[test]
    fn debug_and_scrub_hide_secrets() {
        let mut p = ClientProperties::new();
        p.set("sasl.username", "alice");
        p.set("sasl.password", "hunter2-very-secret");
        let dbg = format!("{p:?}");
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
        let scrubbed = p.scrub("auth failed for alice with hunter2-very-secret");
        assert_eq!(scrubbed, "auth failed for alice with ***");
    }
}
