//! An S3-compatible server (moto's server mode) for checkpoints on S3.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Ready, Service, start};

/// Starts moto's S3 server on a free loopback port.
pub fn start_s3(dir: &Path) -> Service {
    let bin = crate::find_binary("moto_server");
    start(
        "moto_server (S3)",
        &dir.join("s3.log"),
        Ready::Listening,
        Duration::from_secs(60),
        |port| {
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            cmd
        },
    )
}

/// Sends one bare HTTP/1.1 request to `endpoint` (moto accepts unsigned bucket operations) and
/// returns the whole response.
pub fn http(endpoint: &str, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the S3 server");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
}
