//! Live (unbounded, uncheckpointed) queries over tables that declare a watermark: a windowed
//! aggregation emits each window once the table's watermark passes its end, idle partitions
//! included, without `WITH ORDER`.

mod rule;
#[cfg(test)]
mod tests;
mod window_exec;

pub use rule::WatermarkWindows;
pub use window_exec::WatermarkWindowExec;
