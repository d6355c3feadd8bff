//! PostgreSQL from Debian's package (`scripts/install-brokers.sh` installs it): a fresh
//! cluster initialised in the run directory and served on a free loopback port, for the
//! own-sink example and its test.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Ready, Service, start};

/// The directory holding `initdb` and `postgres` (the newest of /usr/lib/postgresql/*/bin,
/// else PATH).
fn server_bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    match dirs.pop() {
        Some((_, dir)) => dir,
        None => crate::find_binary("initdb")
            .parent()
            .expect("initdb lives in a directory")
            .to_path_buf(),
    }
}

/// PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the
/// Debian package creates. Returns its uid and gid, or `None` when not root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions; getpwnam returns a pointer into static storage,
    // read at once, and this runs before any other thread of the test support calls it.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "PostgreSQL cannot run as root and there is no postgres user: install Debian's \
             postgresql package (scripts/install-brokers.sh does)"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

/// Initialises a cluster under `dir/postgres` and starts it on a free loopback port (Unix
/// socket in the data directory, trust authentication for the `postgres` role).
pub fn start_postgres(dir: &Path) -> Service {
    let bin = server_bin_dir();
    let user = server_user();
    let home = dir.join("postgres");
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&home, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", home.display()));
    }
    let data = home.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    as_server_user(&mut initdb, user);
    let out = initdb
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.join("initdb").display()));
    assert!(
        out.status.success(),
        "initdb {} failed:\n{}{}",
        data.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    start(
        "postgres",
        &dir.join("postgres.log"),
        Ready::LogLine("database system is ready to accept connections"),
        Duration::from_secs(60),
        |port| {
            let mut cmd = Command::new(bin.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-k"])
                .arg(&data)
                .args(["-c", "listen_addresses=127.0.0.1"])
                // The tests kill the client, not the server: durability is not what they test.
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            as_server_user(&mut cmd, user);
            cmd
        },
    )
}
