//! `datafusion-topics status`: a continuous query's recent batches, read from its checkpoint.

use datafusion::error::{DataFusionError, Result};

use super::args::{StatusArgs, StatusFormat};

/// Prints the checkpoint's query and its recent batches.
pub async fn status(args: &StatusArgs) -> Result<()> {
    let log = crate::checkpoint::CheckpointLog::open(&args.checkpoint)?;
    let batch = crate::observe::checkpoint_progress(&args.checkpoint, args.batches).await?;
    let out = match args.format {
        StatusFormat::Table => {
            if let Some(meta) = log.metadata().await? {
                println!("query {}: {}", meta.query_id, meta.query);
            }
            arrow::util::pretty::pretty_format_batches(&[batch])?.to_string()
        }
        StatusFormat::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(&batch)?;
            writer.finish()?;
            String::from_utf8_lossy(&writer.into_inner())
                .trim_end()
                .to_string()
        }
        StatusFormat::Csv => {
            let mut buf = Vec::new();
            arrow::csv::Writer::new(&mut buf).write(&batch)?;
            String::from_utf8_lossy(&buf).trim_end().to_string()
        }
    };
    println!("{out}");
    Ok::<(), DataFusionError>(())
}
