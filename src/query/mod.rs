//! Continuous queries: `INSERT INTO sink SELECT … FROM topic tables` run as checkpointed
//! micro-batches with exactly-once output.

pub mod batch_plan;
mod runner;
pub mod trigger;

pub use batch_plan::Limits;
pub use runner::{BatchProgress, ContinuousQuery, RunOptions};
pub use trigger::Trigger;
