//! Continuous queries: `INSERT INTO sink SELECT … FROM topic tables` run as checkpointed
//! micro-batches with exactly-once output.
//!
//! [`compile`](ContinuousQuery::from_sql) takes the SQL in; `plan` decides each batch's ranges;
//! `run` is the trigger loop with recovery; `batch` runs, writes and commits one batch.

mod batch;
mod compile;
mod plan;
mod positions;
mod progress;
mod run;
mod stateful;
#[cfg(test)]
mod tests;
mod trigger;

pub use crate::scan::Limits;
pub use compile::ContinuousQuery;
pub use progress::{BatchProgress, SourceRead, StateProgress, ranges_text};
pub use run::RunOptions;
pub use stateful::{OutputMode, UpdateOutput};
pub use trigger::Trigger;
