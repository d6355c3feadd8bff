//! The interactive shell and the `-c` / `-f` modes: datafusion-cli's session with topic
//! tables registered, run by datafusion-cli's own REPL and printers.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryPool, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::ExplainFormat;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_cli::catalog::DynamicObjectStoreCatalog;
use datafusion_cli::exec;
use datafusion_cli::functions::{
    ListFilesCacheFunc, MetadataCacheFunc, ParquetMetadataFunc, StatisticsCacheFunc,
};
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::object_storage::{StdinCarriesCommands, is_stdin_location};
use datafusion_cli::pool_type::PoolType;
use datafusion_cli::print_options::PrintOptions;

use super::args::Args;
use super::namespaces::register_option_namespaces;
use super::registry::BrokerAwareRegistry;

/// Runs the shell as datafusion-cli would: rc files then the REPL, or the `-f` files then
/// the `-c` commands.
pub async fn run(args: Args) -> Result<()> {
    if !args.quiet {
        println!(
            "datafusion-topics v{} (DataFusion CLI v{}): STORED AS KAFKA | NATS",
            env!("CARGO_PKG_VERSION"),
            datafusion_cli::DATAFUSION_CLI_VERSION
        );
    }
    if let Some(dir) = &args.data_path {
        std::env::set_current_dir(dir)
            .map_err(|e| DataFusionError::Execution(format!("cannot enter '{dir}': {e}")))?;
    }
    let (ctx, registry) = session(&args).await?;
    if super::progress_bar::wanted(args.quiet) {
        super::progress_bar::spawn();
    }
    let mut print_options = PrintOptions {
        format: args.format,
        quiet: args.quiet,
        maxrows: args.maxrows,
        color: args.color,
        instrumented_registry: registry,
    };

    if args.repl_mode() {
        let rc = args.rc.clone().unwrap_or_else(default_rc);
        if !rc.is_empty() {
            exec::exec_from_files(&ctx, rc, &print_options).await?;
        }
        return exec::exec_from_repl(&ctx, &mut print_options)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)));
    }
    if !args.file.is_empty() {
        exec::exec_from_files(&ctx, args.file.clone(), &print_options).await?;
    }
    if !args.command.is_empty() {
        exec::exec_from_commands(&ctx, args.command.clone(), &print_options).await?;
    }
    Ok(())
}

fn default_rc() -> Vec<String> {
    std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".datafusionrc"))
        .filter(|rc| rc.is_file())
        .map(|rc| vec![rc.to_string_lossy().into_owned()])
        .unwrap_or_default()
}

/// The shell's session: datafusion-cli's configuration and functions, topic-table factories,
/// option namespaces, and an object-store registry that accepts broker locations.
pub async fn session(
    args: &Args,
) -> Result<(SessionContext, Arc<InstrumentedObjectStoreRegistry>)> {
    session_with(args, args.workers.as_deref()).await
}

/// [`session`], its plans run on `workers` when given (`host:port,host:port`).
pub async fn session_with(
    args: &Args,
    workers: Option<&str>,
) -> Result<(SessionContext, Arc<InstrumentedObjectStoreRegistry>)> {
    let config = session_config(args)?;
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = args.memory_limit {
        runtime = runtime.with_memory_pool(memory_pool(
            limit,
            &args.mem_pool_type,
            args.top_memory_consumers,
        ));
    }
    if let Some(limit) = args.disk_limit {
        runtime = runtime.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::OsTmpDirectory)
                .with_max_temp_directory_size(limit as u64),
        );
    }
    let instrumented = Arc::new(
        InstrumentedObjectStoreRegistry::new().with_profile_mode(args.object_store_profiling),
    );
    runtime = runtime.with_object_store_registry(Arc::new(BrokerAwareRegistry::new(Arc::clone(
        &instrumented,
    ))));
    let builder =
        crate::session::session_state_builder(config).with_runtime_env(runtime.build_arc()?);
    let state = match workers {
        None => builder.build(),
        #[cfg(feature = "distributed")]
        Some(list) => {
            crate::distributed::with_workers(builder, crate::distributed::parse_workers(list)?)
                .build()
        }
        #[cfg(not(feature = "distributed"))]
        Some(_) => return Err(super::no_distributed()),
    };
    let ctx = SessionContext::new_with_state(state).enable_url_table();
    ctx.refresh_catalogs().await?;
    ctx.register_catalog_list(Arc::new(DynamicObjectStoreCatalog::new(
        ctx.state().catalog_list().clone(),
        ctx.state_weak_ref(),
    )));
    ctx.register_udtf("parquet_metadata", Arc::new(ParquetMetadataFunc {}));
    let cache = ctx.task_ctx().runtime_env().cache_manager.clone();
    ctx.register_udtf(
        "metadata_cache",
        Arc::new(MetadataCacheFunc::new(cache.clone())),
    );
    ctx.register_udtf(
        "statistics_cache",
        Arc::new(StatisticsCacheFunc::new(cache.clone())),
    );
    ctx.register_udtf("list_files_cache", Arc::new(ListFilesCacheFunc::new(cache)));
    register_option_namespaces(&ctx);
    Ok((ctx, instrumented))
}

/// datafusion-cli's configuration (environment variables, tree EXPLAIN, `NULL` shown) with
/// the streaming adjustments of [`crate::streaming_config`] unless the environment sets them.
fn session_config(args: &Args) -> Result<SessionConfig> {
    let mut options = ConfigOptions::from_env()?;
    if let Some(size) = args.batch_size {
        options.execution.batch_size =
            datafusion::common::config::ConfigNonZeroUsize::try_new(size)?;
    }
    if std::env::var_os("DATAFUSION_EXPLAIN_FORMAT").is_none() {
        options.explain.format = ExplainFormat::Tree;
    }
    if std::env::var_os("DATAFUSION_FORMAT_NULL").is_none() {
        options.format.null = "NULL".to_string();
    }
    for (key, value) in crate::session::STREAMING_SETTINGS {
        let env = key.to_ascii_uppercase().replace('.', "_");
        if std::env::var_os(env).is_none() {
            options.set(key, value)?;
        }
    }
    let mut config = SessionConfig::from(options).with_information_schema(true);
    if args.repl_mode() || args.file.iter().any(|f| is_stdin_location(f)) {
        config = config.with_extension(Arc::new(StdinCarriesCommands));
    }
    Ok(config)
}

fn memory_pool(limit: usize, kind: &PoolType, top_consumers: usize) -> Arc<dyn MemoryPool> {
    match (kind, NonZeroUsize::new(top_consumers)) {
        (PoolType::Fair, None) => Arc::new(FairSpillPool::new(limit)),
        (PoolType::Fair, Some(n)) => {
            Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), n))
        }
        (PoolType::Greedy, None) => Arc::new(GreedyMemoryPool::new(limit)),
        (PoolType::Greedy, Some(n)) => {
            Arc::new(TrackConsumersPool::new(GreedyMemoryPool::new(limit), n))
        }
    }
}
