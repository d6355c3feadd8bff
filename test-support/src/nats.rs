//! nats-server with JetStream, from the cache (`scripts/install-brokers.sh`) or PATH.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Ready, Service, start};

/// Starts nats-server with JetStream on a free loopback port; state in `dir/nats`.
pub fn start_nats(dir: &Path) -> Service {
    let bin = crate::find_binary("nats-server");
    let store = dir.join("nats");
    start(
        "nats-server",
        &dir.join("nats.log"),
        Ready::LogLine("Server is ready"),
        Duration::from_secs(30),
        |port| {
            // Client port only: monitoring, cluster, gateway, leafnode and websocket listeners
            // stay off unless configured.
            let mut cmd = Command::new(&bin);
            cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(&store)
                .args(["--name", &format!("dft-{port}")]);
            cmd
        },
    )
}
