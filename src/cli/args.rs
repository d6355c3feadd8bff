//! Command-line arguments: datafusion-cli's, unchanged in meaning, so scripts written for
//! `datafusion-cli` run under `datafusion-topics`.

use std::path::Path;

use clap::{Parser, Subcommand};
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreMode;
use datafusion_cli::pool_type::PoolType;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::MaxRows;

/// datafusion-cli with Kafka topics and NATS JetStream streams as tables
/// (`CREATE EXTERNAL TABLE … STORED AS KAFKA | NATS`).
#[derive(Debug, Parser)]
#[command(name = "datafusion-topics", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `run`: a continuous query; without a subcommand, the SQL shell.
    #[command(subcommand)]
    pub subcommand: Option<Commands>,

    /// Path to your data, default to current directory.
    #[arg(short = 'p', long, value_parser = valid_dir)]
    pub data_path: Option<String>,

    /// The batch size of each query, or use DataFusion default.
    #[arg(short = 'b', long, value_parser = positive)]
    pub batch_size: Option<usize>,

    /// Execute the given command string(s), then exit.
    #[arg(short = 'c', long, num_args = 0.., value_parser = non_empty)]
    pub command: Vec<String>,

    /// The memory pool limitation (e.g. '10g'), default to None (no limit).
    #[arg(short = 'm', long, value_parser = |s: &str| byte_size(s, "memory pool size"))]
    pub memory_limit: Option<usize>,

    /// Execute commands from file(s), then exit.
    #[arg(short = 'f', long, num_args = 0.., value_parser = valid_file)]
    pub file: Vec<String>,

    /// Run the provided files on startup instead of ~/.datafusionrc.
    #[arg(short = 'r', long, num_args = 0.., value_parser = valid_file, conflicts_with = "file")]
    pub rc: Option<Vec<String>>,

    /// Output format; `automatic` streams the rows of unbounded queries as they arrive.
    #[arg(long, value_enum, default_value_t = PrintFormat::Automatic)]
    pub format: PrintFormat,

    /// Reduce printing other than the results and work quietly.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Specify the memory pool type 'greedy' or 'fair'.
    #[arg(long, default_value_t = PoolType::Greedy)]
    pub mem_pool_type: PoolType,

    /// The number of top memory consumers to display when a query fails for lack of memory
    /// (0 disables tracking).
    #[arg(long, default_value = "3")]
    pub top_memory_consumers: usize,

    /// The max number of rows to display for 'Table' format (a number, or 'inf').
    #[arg(long, default_value = "40")]
    pub maxrows: MaxRows,

    /// Enables console syntax highlighting.
    #[arg(long)]
    pub color: bool,

    /// Available disk space for spilling queries (e.g. '10g').
    #[arg(short = 'd', long, value_parser = |s: &str| byte_size(s, "disk limit"))]
    pub disk_limit: Option<usize>,

    /// Object store profiling mode: disabled, summary or trace.
    #[arg(long, default_value_t = InstrumentedObjectStoreMode::Disabled)]
    pub object_store_profiling: InstrumentedObjectStoreMode,

    /// Run bounded queries on these datafusion-distributed workers (host:port,host:port; see
    /// `datafusion-topics worker`): each reads its share of a topic's partitions.
    #[arg(long)]
    pub workers: Option<String>,
}

/// Subcommands beyond the shell.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a continuous query: the file holds the DDL and one INSERT INTO … SELECT …; each
    /// micro-batch's offset ranges are checkpointed, and the output is written exactly once.
    Run(RunArgs),
    /// Show a continuous query's recent batches from its checkpoint (also while it runs):
    /// ranges, rows, lag, timings, state.
    Status(StatusArgs),
    /// Serve as a datafusion-distributed worker: run the parts of plans (topic scans and what
    /// follows them) that a shell or `run` with `--workers` sends here.
    Worker(WorkerArgs),
}

/// Arguments of `datafusion-topics worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The address to serve on, e.g. 127.0.0.1:7001 (workers take plain gRPC: keep them on a
    /// private network; secrets never travel, see docs/distributed.md).
    #[arg(long)]
    pub listen: std::net::SocketAddr,

    /// Serve Prometheus metrics (messages and bytes read per topic) at http://ADDR/metrics.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Arguments of `datafusion-topics status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The checkpoint: file:///dir, s3://bucket/prefix (AWS_* variables), or a local directory.
    #[arg(long)]
    pub checkpoint: String,

    /// How many recent batches to show.
    #[arg(long, default_value_t = crate::observe::DEFAULT_BATCHES)]
    pub batches: u64,

    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
}

/// How `status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// An aligned table.
    Table,
    /// One JSON object per batch, one per line.
    Json,
    /// CSV with a header.
    Csv,
}

/// How `run` reports each batch on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressFormat {
    /// A line for people: `batch 3 orders[0:[30,40)] rows=10 lag=0 in 12ms (checkpoint 1.2ms)`.
    Human,
    /// One JSON object per batch, for log shippers.
    Json,
}

/// Arguments of `datafusion-topics run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Checkpoint location: file:///dir, s3://bucket/prefix (AWS_* variables), memory://name,
    /// or a local directory.
    #[arg(long)]
    pub checkpoint: String,

    /// When batches run: an interval (500ms, 10s, 1m) or once / available-now (process what
    /// exists, then stop).
    #[arg(long, default_value = "1s")]
    pub trigger: crate::query::Trigger,

    /// At most this many offsets per partition per batch.
    #[arg(long)]
    pub max_records_per_partition: Option<u64>,

    /// About this many bytes per partition per batch (e.g. 8m), estimated from the average
    /// message size of the previous batch.
    #[arg(long, value_parser = |s: &str| byte_size(s, "max bytes per partition"))]
    pub max_bytes_per_partition: Option<usize>,

    /// Stop after this many batches.
    #[arg(long)]
    pub max_batches: Option<u64>,

    /// After each batch, commit the Kafka sources' end offsets to this consumer group so lag
    /// dashboards see progress (recovery never reads them).
    #[arg(long)]
    pub commit_group: Option<String>,

    /// How an aggregating query writes: append (each window once, when the watermark passes
    /// its end) or update (every changed group after each batch). Default: append for
    /// GROUP BY date_bin(…) over a table's event-time column, update otherwise.
    #[arg(long)]
    pub output_mode: Option<crate::query::OutputMode>,

    /// The SQL file: DDL statements and one INSERT INTO … SELECT ….
    #[arg(short = 'f', long, value_parser = valid_file)]
    pub file: String,

    /// Print only errors, not a line per batch.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// How each batch is reported on stdout: human (a line) or json (an object per line).
    #[arg(long, value_enum, default_value_t = ProgressFormat::Human)]
    pub progress: ProgressFormat,

    /// Serve Prometheus metrics (offsets, lag, throughput, batch timings, state) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Run each batch's reading and stateless processing on these datafusion-distributed
    /// workers (host:port,host:port); the checkpoint and the sink stay here.
    #[arg(long)]
    pub workers: Option<String>,
}

impl Args {
    /// Without `-c` or `-f` the shell reads SQL from stdin (interactive or piped).
    pub fn repl_mode(&self) -> bool {
        self.command.is_empty() && self.file.is_empty()
    }
}

fn valid_file(path: &str) -> Result<String, String> {
    if Path::new(path).is_file() {
        Ok(path.to_string())
    } else {
        Err(format!("Invalid file '{path}'"))
    }
}

fn valid_dir(path: &str) -> Result<String, String> {
    if Path::new(path).is_dir() {
        Ok(path.to_string())
    } else {
        Err(format!("Invalid data directory '{path}'"))
    }
}

fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("Invalid batch size '{text}'")),
    }
}

fn non_empty(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("-c flag expects only non empty commands".to_string())
    } else {
        Ok(text.to_string())
    }
}

/// Parses `512`, `64k`, `10m`, `2g`, `1t` (optionally with a trailing `b`) into bytes.
pub fn byte_size(text: &str, label: &str) -> Result<usize, String> {
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.chars().take_while(|c| c.is_ascii_digit()).count();
    let (number, unit) = lower.split_at(digits);
    let number: usize = number
        .parse()
        .map_err(|_| format!("Invalid {label} '{text}'"))?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        _ => return Err(format!("Invalid {label} '{text}'")),
    };
    number
        .checked_mul(1usize << shift)
        .ok_or_else(|| format!("{label} '{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("512", "x"), Ok(512));
        assert_eq!(byte_size("64k", "x"), Ok(64 << 10));
        assert_eq!(byte_size("10MB", "x"), Ok(10 << 20));
        assert_eq!(byte_size("2g", "x"), Ok(2 << 30));
        assert!(byte_size("g", "x").is_err());
        assert!(byte_size("1x", "x").is_err());
        assert!(byte_size("-1", "x").is_err());
        assert!(byte_size("99999999999999999999t", "x").is_err());
    }
}
