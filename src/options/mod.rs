//! Table options: each option declared once ([`OptionDecl`]: key, accepted values, default,
//! meaning), parsed by consuming it from an [`OptionBag`] (so whatever is left over is the
//! unknown-option error, listing the valid keys), and documented from the same declarations
//! (`docs/options.md` is generated from them; a test checks it).
//!
//! Key names follow Flink's Kafka SQL connector where one exists. Options every table takes
//! live in [`scan`]; each connector declares its own beside its code.

mod bag;
mod decl;
#[cfg(test)]
pub(crate) mod docs;
mod format;
pub mod scan;
pub mod topics;
mod values;
pub mod watermark;

use std::collections::HashMap;

pub use bag::OptionBag;
pub use decl::OptionDecl;
pub use scan::{BoundedMode, ScanOptions, StartupMode};
pub use topics::{MinPartitions, OnDeleted, TopicOptions};
pub use watermark::WatermarkSpec;
// Each connector takes the parsers it needs; a build without some connectors leaves some
// unused.
#[allow(unused_imports)]
pub(crate) use values::{
    existing_file, missing, missing_pair, non_empty, parse_bool, parse_count, parse_duration,
    parse_duration_allow_zero,
};

/// Builds an options map from `(key, value)` pairs, for code that creates tables directly.
pub fn options_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> HashMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
