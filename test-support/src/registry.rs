//! Apicurio Registry (its Confluent-compatible API) as the schema registry of the format
//! tests, when the install script could fetch it and a Java 21+ runtime is present.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Ready, Service, free_port, start};

/// The Apicurio Registry version the install script fetches.
pub const APICURIO_VERSION: &str = "3.3.3";

/// Where the install script unpacks the registry.
pub fn apicurio_home() -> PathBuf {
    crate::cache_dir().join("apicurio").join(APICURIO_VERSION)
}

/// A `java` of version 21 or later (Apicurio 3 needs it): `DFT_JAVA21`, `JAVA_HOME`, or a JDK
/// under /usr/lib/jvm whose `release` file says so.
pub fn java21() -> Option<PathBuf> {
    if let Some(java) = std::env::var_os("DFT_JAVA21") {
        return Some(PathBuf::from(java));
    }
    let mut homes: Vec<PathBuf> = std::env::var_os("JAVA_HOME")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/jvm") {
        let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        found.sort();
        found.reverse();
        homes.extend(found);
    }
    homes
        .into_iter()
        .find(|home| major_version(home).is_some_and(|v| v >= 21) && home.join("bin/java").exists())
        .map(|home| home.join("bin/java"))
}

fn major_version(home: &Path) -> Option<u32> {
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    let line = release.lines().find(|l| l.starts_with("JAVA_VERSION="))?;
    line.trim_start_matches("JAVA_VERSION=")
        .trim_matches('"')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Starts the registry on a free loopback port (in-memory storage); `None` when it is not
/// installed or no Java 21+ runtime exists.
pub fn start_registry(dir: &Path) -> Option<Service> {
    let home = apicurio_home();
    let jar = home.join("quarkus-run.jar");
    let java = java21()?;
    if !jar.exists() {
        return None;
    }
    Some(start(
        "Apicurio Registry",
        &dir.join("registry.log"),
        Ready::LogLine("Listening on"),
        Duration::from_secs(120),
        |port| {
            let mut cmd = Command::new(&java);
            cmd.current_dir(&home)
                .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
                .arg("-Dquarkus.http.host=127.0.0.1")
                .arg(format!("-Dquarkus.http.port={port}"))
                .arg("-Dquarkus.management.host=127.0.0.1")
                .arg(format!("-Dquarkus.management.port={}", free_port()))
                .args([
                    "-Dapicurio.storage.kind=sql",
                    "-Dapicurio.storage.sql.kind=h2",
                ])
                .args(["-jar", "quarkus-run.jar"]);
            cmd
        },
    ))
}
