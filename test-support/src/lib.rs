//! Real brokers on loopback for datafusion-topics' tests, benchmarks and demo.
//!
//! [`brokers`] starts Apache Kafka (KRaft) and nats-server once per process on free loopback
//! ports, or takes them from `KAFKA_BOOTSTRAP` / `NATS_URL`; [`s3`] starts an S3 server and
//! [`postgres`] a PostgreSQL server on first use. Services die with the process that started them (see [`process`]); their logs
//! and data live in one run directory ([`run_dir`]), printed on start. The binaries and jars
//! come from the cache `scripts/install-brokers.sh` fills (`DFT_CACHE`, default
//! `~/.cache/datafusion-topics`).

pub mod kafka;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod registry;
pub mod s3;
pub mod streams;
pub mod tables;
pub mod topics;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use kafka::{group_offsets, kafka_tool};
pub use process::Service;
pub use streams::*;
pub use tables::*;
pub use topics::*;

/// The brokers everything talks to.
#[derive(Debug)]
pub struct Brokers {
    /// Kafka bootstrap servers (`host:port`).
    pub kafka: String,
    /// NATS server URL (`nats://host:port`).
    pub nats: String,
    /// True when Kafka came from `KAFKA_BOOTSTRAP` rather than being started here.
    pub external_kafka: bool,
    /// True when NATS came from `NATS_URL`.
    pub external_nats: bool,
    /// The Kafka process started here (None when external).
    pub kafka_service: Option<Service>,
    /// The nats-server process started here (None when external).
    pub nats_service: Option<Service>,
}

/// The cache the install script fills.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("DFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".cache/datafusion-topics")
        })
}

/// A binary from the cache's `bin/`, else from PATH.
pub fn find_binary(name: &str) -> PathBuf {
    let cached = cache_dir().join("bin").join(name);
    if cached.exists() {
        return cached;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "{name} is not installed ({} nor PATH): run scripts/install-brokers.sh",
            cached.display()
        )
    })
}

/// This process's directory for broker data and logs (created on first use). Directories
/// left by earlier processes that are no longer running are removed.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let pid = std::process::id();
        remove_stale_run_dirs(&tmp);
        let dir = tmp.join(format!("dft-brokers-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    })
}

fn remove_stale_run_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("dft-brokers-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The brokers, started on first use (each one only when its environment variable is unset).
/// When starting them fails, every caller fails with the same message (no second attempt).
pub fn brokers() -> &'static Brokers {
    static BROKERS: OnceLock<Result<Brokers, String>> = OnceLock::new();
    let started = BROKERS.get_or_init(|| {
        std::panic::catch_unwind(start_brokers).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "starting the brokers panicked".into())
        })
    });
    match started {
        Ok(brokers) => brokers,
        Err(why) => panic!("the test brokers could not start: {why}"),
    }
}

fn start_brokers() -> Brokers {
    {
        let kafka_env = std::env::var("KAFKA_BOOTSTRAP")
            .ok()
            .filter(|v| !v.is_empty());
        let nats_env = std::env::var("NATS_URL").ok().filter(|v| !v.is_empty());
        let started = std::time::Instant::now();
        // Kafka's JVM starts in a few seconds; start nats-server meanwhile.
        let kafka = match &kafka_env {
            Some(_) => None,
            None => Some(std::thread::spawn(|| kafka::start_kafka(run_dir()))),
        };
        let nats_service = nats_env.is_none().then(|| nats::start_nats(run_dir()));
        let kafka_service = kafka.map(|h| match h.join() {
            Ok(service) => service,
            Err(panic) => std::panic::resume_unwind(panic),
        });
        let brokers = Brokers {
            kafka: kafka_env.clone().unwrap_or_else(|| {
                format!("127.0.0.1:{}", kafka_service.as_ref().map_or(0, |s| s.port))
            }),
            nats: nats_env.clone().unwrap_or_else(|| {
                format!(
                    "nats://127.0.0.1:{}",
                    nats_service.as_ref().map_or(0, |s| s.port)
                )
            }),
            external_kafka: kafka_env.is_some(),
            external_nats: nats_env.is_some(),
            kafka_service,
            nats_service,
        };
        if brokers.kafka_service.is_some() || brokers.nats_service.is_some() {
            eprintln!(
                "brokers: Apache Kafka {} at {}, nats-server at {} (started in {:.1?}; logs in {})",
                kafka::KAFKA_VERSION,
                brokers.kafka,
                brokers.nats,
                started.elapsed(),
                run_dir().display()
            );
        }
        brokers
    }
}

/// An S3-compatible server for checkpoint tests.
#[derive(Debug)]
pub struct S3 {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    /// The process (None when `DFT_S3_ENDPOINT` named an external one).
    pub service: Option<Service>,
}

impl S3 {
    /// Sends one bare HTTP request (bucket creation, listing); returns the response.
    pub fn http(&self, method: &str, path: &str) -> String {
        s3::http(&self.endpoint, method, path)
    }

    /// The environment variables that point object_store's S3 client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

/// The S3 server, started on first use (or `DFT_S3_ENDPOINT`).
pub fn s3() -> &'static S3 {
    static S3_SERVER: OnceLock<S3> = OnceLock::new();
    S3_SERVER.get_or_init(|| match std::env::var("DFT_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => S3 {
            endpoint,
            service: None,
        },
        _ => {
            let service = s3::start_s3(run_dir());
            S3 {
                endpoint: format!("http://127.0.0.1:{}", service.port),
                service: Some(service),
            }
        }
    })
}

/// A PostgreSQL server for the own-sink example and test.
#[derive(Debug)]
pub struct Postgres {
    /// `postgresql://postgres@127.0.0.1:port/postgres`, for tokio-postgres and psql.
    pub url: String,
    /// The process (None when `DFT_POSTGRES_URL` named an external server).
    pub service: Option<Service>,
}

/// PostgreSQL, started on first use (or `DFT_POSTGRES_URL`).
pub fn postgres() -> &'static Postgres {
    static POSTGRES: OnceLock<Postgres> = OnceLock::new();
    POSTGRES.get_or_init(|| match std::env::var("DFT_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Postgres { url, service: None },
        _ => {
            let service = postgres::start_postgres(run_dir());
            Postgres {
                url: format!("postgresql://postgres@127.0.0.1:{}/postgres", service.port),
                service: Some(service),
            }
        }
    })
}

/// A Confluent-compatible schema registry for the format tests.
#[derive(Debug)]
pub struct Registry {
    /// The base URL of the Confluent-compatible API (`…/apis/ccompat/v7` for Apicurio).
    pub url: String,
    /// The process (None when `SCHEMA_REGISTRY_URL` named an external registry).
    pub service: Option<Service>,
}

/// A real schema registry: `SCHEMA_REGISTRY_URL`, else Apicurio Registry started on first use
/// when installed; `None` when neither is available (tests then replay recorded answers).
pub fn registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| match std::env::var("SCHEMA_REGISTRY_URL") {
            Ok(url) if !url.is_empty() => Some(Registry { url, service: None }),
            _ => registry::start_registry(run_dir()).map(|service| Registry {
                url: format!("http://127.0.0.1:{}/apis/ccompat/v7", service.port),
                service: Some(service),
            }),
        })
        .as_ref()
}
