//! The declaration of one table option.

/// One table option, declared once: parsing takes it by this declaration, the unknown-option
/// error lists it, `docs/options.md` and the CLI's option namespaces are generated from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDecl {
    /// The key. A key ending in `.*` declares a family passed through by prefix
    /// (`kafka.*`: any librdkafka property).
    pub key: &'static str,
    /// Accepted values (the option's type, as a user reads it).
    pub values: &'static str,
    /// Default when absent (empty: none).
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

impl OptionDecl {
    /// The prefix of a `prefix.*` family, `None` for a plain key.
    pub fn prefix(&self) -> Option<&'static str> {
        self.key.strip_suffix('*')
    }

    /// Whether `key` is this option (or belongs to this family).
    pub fn matches(&self, key: &str) -> bool {
        match self.prefix() {
            Some(prefix) => key.len() > prefix.len() && key.starts_with(prefix),
            None => key == self.key,
        }
    }

    /// The first dotted component of the key (`scan` for `scan.startup.mode`): the CLI
    /// registers one option namespace per component.
    pub fn namespace(&self) -> &'static str {
        self.key.split('.').next().unwrap_or(self.key)
    }
}
