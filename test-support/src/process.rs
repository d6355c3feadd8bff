//! Service processes that cannot outlive the process that started them.
//!
//! Every service is spawned by one long-lived thread with `PR_SET_PDEATHSIG = SIGKILL`: Linux
//! kills the child when that thread (and so this process) ends, however it ends — a finished
//! `cargo test`, a panic, Ctrl-C or SIGKILL. No watchdog, no pid files.

use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// The thread every service is spawned from; it lives as long as the process.
fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("dft-service-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The senders live in a static: the loop above never ends, so this thread (the
                // children's death signal) lasts as long as the process.
            })
            .expect("start the service spawner thread");
        Mutex::new(tx)
    })
}

/// A service process started by [`start`]. Dropping it does not stop it; [`Service::stop`] does.
#[derive(Debug)]
pub struct Service {
    /// Short name used in messages (`kafka`, `nats-server`, …).
    pub name: String,
    /// Loopback port the service listens on.
    pub port: u16,
    /// Where its output goes.
    pub log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Service {
    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Child::id)
    }

    /// Stops the service with SIGKILL and waits for it.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// How a service tells it is ready.
pub enum Ready<'a> {
    /// It accepts TCP connections on its port.
    Listening,
    /// Its log contains this text (and it accepts connections).
    LogLine(&'a str),
}

/// Starts `cmd` (output to `log`) and waits until it is ready; on a port clash, `build` is
/// asked for a command on another port (three attempts). `build` gets the port to use.
pub fn start(
    name: &str,
    log: &Path,
    ready: Ready<'_>,
    timeout: Duration,
    mut build: impl FnMut(u16) -> Command,
) -> Service {
    let mut last_error = String::new();
    for _attempt in 0..3 {
        let port = free_port();
        let mut cmd = build(port);
        let out = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() == 1 {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((cmd, tx))
            .expect("service spawner thread is gone");
        let mut child = rx
            .recv()
            .expect("service spawner thread is gone")
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        match wait_ready(&mut child, port, log, &ready, timeout) {
            Ok(()) => {
                return Service {
                    name: name.to_string(),
                    port,
                    log: log.to_path_buf(),
                    child: Mutex::new(Some(child)),
                };
            }
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let clash = text.contains("Address already in use")
                    || text.contains("address already in use")
                    || text.contains("BindException");
                last_error = format!(
                    "{name} {why}; last lines of {}:\n{}",
                    log.display(),
                    tail(&text, 25)
                );
                if !clash {
                    break;
                }
            }
        }
    }
    panic!("{last_error}")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn wait_ready(
    child: &mut Child,
    port: u16,
    log: &Path,
    ready: &Ready<'_>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited during startup ({status})"));
        }
        let logged = match ready {
            Ready::Listening => true,
            Ready::LogLine(marker) => std::fs::read_to_string(log)
                .map(|t| t.contains(marker))
                .unwrap_or(false),
        };
        if logged
            && listens(child.id(), port)
            && TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
                .is_ok()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "was not ready on 127.0.0.1:{port} within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when process `pid` itself holds a listening TCP socket on `port` (so another process
/// that grabbed the same port is never mistaken for ours). IPv4 and IPv6 tables are both
/// searched: a JVM binds 127.0.0.1 through a dual-stack socket. Without /proc, true.
fn listens(pid: u32, port: u16) -> bool {
    let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .collect();
    if tables.is_empty() {
        return true;
    }
    let port_hex = format!(":{port:04X}");
    let inodes: Vec<String> = tables
        .iter()
        .flat_map(|t| t.lines().skip(1))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1].ends_with(&port_hex) && f[3] == "0A")
        .map(|f| f[9].to_string())
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|l| l.to_str().map(str::to_string))
            .and_then(|l| {
                l.strip_prefix("socket:[")
                    .map(|s| s.trim_end_matches(']').to_string())
            })
            .is_some_and(|inode| inodes.contains(&inode))
    })
}
