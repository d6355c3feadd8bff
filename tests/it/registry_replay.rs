//! The schema registry of the format tests: a real one when there is one (Apicurio Registry,
//! started by the test support when `scripts/install-brokers.sh` could install it, or
//! `SCHEMA_REGISTRY_URL`), else a stand-in that answers with a real registry's recorded
//! answers (`tests/fixtures/registry/karapace-3.16.0.json`, recorded from Karapace 3.16.0 by
//! `record.py`) over a real HTTP connection. A request the recording does not hold answers
//! 500, so an unexpected request fails a test.

use std::sync::{Arc, Mutex};

use datafusion_topics::{SchemaRegistry, SchemaType};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A real registry, or a running replay server.
pub struct RegistryReplay {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests received, as `METHOD path` (replay only).
    requests: Option<Arc<Mutex<Vec<String>>>>,
}

fn exchanges() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/registry/karapace-3.16.0.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("recording")).expect("json")
}

/// Whether a POSTed schema is the recorded one (schemas compared as JSON when they are).
fn same_schema(recorded: &Value, sent: &Value) -> bool {
    let parse = |v: &Value| {
        let text = v["schema"].as_str().unwrap_or_default().to_string();
        serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text))
    };
    parse(recorded) == parse(sent)
}

impl RegistryReplay {
    /// The real registry of the test support (Apicurio, or `SCHEMA_REGISTRY_URL`) when there
    /// is one; else starts the replay server on a free loopback port.
    pub async fn start() -> Self {
        if let Some(registry) = dft_test_support::registry() {
            return Self {
                url: registry.url.clone(),
                requests: None,
            };
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let recorded = Arc::new(exchanges());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (recorded, seen) = (Arc::clone(&recorded), Arc::clone(&seen));
                tokio::spawn(async move {
                    let _ = serve(socket, &recorded, &seen).await;
                });
            }
        });
        Self {
            url,
            requests: Some(requests),
        }
    }

    /// The requests received so far; `None` against a real registry.
    pub fn requests(&self) -> Option<Vec<String>> {
        self.requests.as_ref().map(|r| r.lock().unwrap().clone())
    }

    /// Registers a schema (as a producer would have) and returns its id.
    pub async fn register(&self, subject: &str, schema_type: SchemaType, text: &str) -> u32 {
        SchemaRegistry::new(&self.url, None, std::time::Duration::from_secs(10))
            .unwrap()
            .register(subject, schema_type, text, &[])
            .await
            .unwrap_or_else(|e| panic!("registering under {subject}: {e}"))
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    recorded: &[Value],
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(socket);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        seen.lock().unwrap().push(format!("{method} {path}"));
        let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let answer = recorded.iter().find(|e| {
            e["method"] == method.as_str()
                && e["path"] == path.as_str()
                && (method != "POST" || same_schema(&e["request"], &sent))
        });
        let (status, text) = match answer {
            Some(e) => (
                e["status"].as_u64().unwrap_or(500),
                e["response"].to_string(),
            ),
            None => (
                500,
                format!(
                    r#"{{"error_code":50000,"message":"not in the recording: {method} {path}"}}"#
                ),
            ),
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        reader.get_mut().write_all(response.as_bytes()).await?;
    }
}
