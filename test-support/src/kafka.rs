//! Apache Kafka 4.4 in KRaft mode (one process is broker and controller), from the jars
//! `scripts/install-brokers.sh` puts in the cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{Ready, Service, free_port, start};

/// The Kafka version the install script fetches.
pub const KAFKA_VERSION: &str = "4.4.0";

/// The directory holding the broker's jars.
pub fn kafka_libs() -> PathBuf {
    crate::cache_dir()
        .join("kafka")
        .join(KAFKA_VERSION)
        .join("libs")
}

/// The `java` to run the broker with: `$JAVA_HOME/bin/java`, else `java` from PATH.
fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("java"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("java"))
}

fn classpath() -> String {
    let libs = kafka_libs();
    assert!(
        libs.join(format!("kafka_2.13-{KAFKA_VERSION}.jar"))
            .exists(),
        "Apache Kafka {KAFKA_VERSION} is not installed in {}: run scripts/install-brokers.sh \
         (or point KAFKA_BOOTSTRAP at a running broker)",
        libs.display()
    );
    format!("{}/*", libs.display())
}

/// A `java` command with the broker's classpath and a log4j2 configuration writing to stdout.
fn java_command(dir: &Path, heap: &str) -> Command {
    let mut cmd = Command::new(java());
    cmd.current_dir(dir)
        .arg(format!("-Xmx{heap}"))
        .arg(format!("-Xms{heap}"))
        .args([
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            dir.join("log4j2.xml").display()
        ))
        .arg("-cp")
        .arg(classpath());
    cmd
}

/// Runs one of Kafka's command-line tools (a class such as
/// `org.apache.kafka.tools.consumer.group.ConsumerGroupCommand`) with the broker's jars.
pub fn kafka_tool(class: &str, args: &[&str]) -> Output {
    let dir = crate::run_dir();
    write_log_config(dir);
    java_command(dir, "256m")
        .arg(class)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {class}: {e}"))
}

fn write_log_config(dir: &Path) {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
    <Root level="WARN"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"#;
    std::fs::write(dir.join("log4j2.xml"), xml).expect("write log4j2.xml");
}

/// A random Kafka cluster id: 16 random bytes, base64url without padding.
fn cluster_id() -> String {
    let mut bytes = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut bits = 0u32;
    let mut n = 0;
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(ALPHABET[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(ALPHABET[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

/// The broker's settings: single node, loopback only, small internal topics, fast cleanup.
fn server_properties(data: &Path, port: u16, controller: u16) -> String {
    format!(
        "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.ms=-1
log.retention.check.interval.ms=1000
log.cleaner.backoff.ms=500
log.segment.delete.delay.ms=0
",
        data = data.display()
    )
}

/// Formats a fresh storage directory and starts the broker on free loopback ports.
pub fn start_kafka(dir: &Path) -> Service {
    write_log_config(dir);
    static ATTEMPT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    start(
        "Apache Kafka",
        &dir.join("kafka.log"),
        Ready::LogLine("Kafka Server started"),
        Duration::from_secs(90),
        |port| {
            let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let home = dir.join(format!("kafka-{attempt}"));
            let data = home.join("data");
            std::fs::create_dir_all(&data).expect("create the Kafka data directory");
            let config = home.join("server.properties");
            std::fs::write(&config, server_properties(&data, port, free_port()))
                .expect("write server.properties");
            let config_arg = config.display().to_string();
            let format = java_command(dir, "256m")
                .args(["kafka.tools.StorageTool", "format", "--standalone", "-t"])
                .arg(cluster_id())
                .args(["-c", &config_arg])
                .output()
                .expect("run kafka.tools.StorageTool");
            assert!(
                format.status.success(),
                "formatting Kafka storage in {} failed:\n{}{}",
                data.display(),
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            );
            let heap = std::env::var("DFT_KAFKA_HEAP").unwrap_or_else(|_| "512m".into());
            let mut cmd = java_command(dir, &heap);
            cmd.arg("kafka.Kafka").arg(&config_arg);
            cmd
        },
    )
}

/// One partition of a consumer group as Kafka's own `kafka-consumer-groups --describe` shows
/// it: (current offset, log-end offset, lag), as printed.
pub type GroupPartition = (String, String, String);

/// What Kafka's consumer-group tool says about `group`: per (topic, partition), the committed
/// offset, the log-end offset and the lag. Panics with the tool's output when it fails.
pub fn group_offsets(
    bootstrap: &str,
    group: &str,
) -> std::collections::BTreeMap<(String, String), GroupPartition> {
    let out = kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG …
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 5 && f[0] == group)
        .map(|f| {
            (
                (f[1].to_string(), f[2].to_string()),
                (f[3].to_string(), f[4].to_string(), f[5].to_string()),
            )
        })
        .collect()
}
