//! The `datafusion-topics` command-line shell: datafusion-cli (REPL, `-c`, `-f`, `--format`,
//! `\d` meta commands, object-store URLs) with `STORED AS KAFKA | NATS` tables.

pub mod args;
pub mod namespaces;
pub mod registry;
pub mod run;
pub mod shell;

pub use args::Args;
