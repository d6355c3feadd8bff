//! `datafusion-topics run`: a continuous query from a SQL file, with a progress line per batch.

use std::io::Write;

use datafusion::error::{DataFusionError, Result};

use super::args::{Args, ProgressFormat, RunArgs};
use crate::query::{ContinuousQuery, Limits, RunOptions};

/// Runs the continuous query of `run` until it finishes (available-now, `--max-batches`),
/// fails, or Ctrl-C stops it.
pub async fn run(shell: &Args, run: &RunArgs) -> Result<()> {
    let sql = std::fs::read_to_string(&run.file)
        .map_err(|e| DataFusionError::Execution(format!("cannot read {}: {e}", run.file)))?;
    if let Some(addr) = run.metrics_addr {
        crate::observe::serve_prometheus(addr)?;
    }
    let (ctx, _) = super::shell::session_with(shell, run.workers.as_deref()).await?;
    let query = ContinuousQuery::from_sql(ctx, &sql).await?;
    let options = RunOptions {
        checkpoint: run.checkpoint.clone(),
        trigger: run.trigger,
        limits: Limits {
            max_records: run.max_records_per_partition,
            max_bytes: run.max_bytes_per_partition.map(|b| b as u64),
        },
        max_batches: run.max_batches,
        commit_group: run.commit_group.clone(),
        output_mode: run.output_mode,
    };
    let json = run.progress == ProgressFormat::Json;
    if !run.quiet && !json {
        println!(
            "running {} into {}, checkpoint {}, trigger {}",
            run.file,
            query.sink(),
            run.checkpoint,
            run.trigger
        );
    }
    let quiet = run.quiet;
    let work = query.run(&options, |p| {
        if quiet {
            return;
        }
        if json {
            match serde_json::to_string(p) {
                Ok(line) => println!("{line}"),
                Err(e) => log::warn!("batch {}: cannot write its progress as JSON: {e}", p.batch),
            }
        } else {
            println!("{p}");
        }
        let _ = std::io::stdout().flush();
    });
    tokio::select! {
        done = work => {
            let batches = done?;
            if !quiet && !json {
                println!("finished after {batches} batch(es)");
            }
        }
        _ = tokio::signal::ctrl_c() => {
            println!("stopped; a batch in flight is replayed by the next run");
        }
    }
    Ok(())
}
