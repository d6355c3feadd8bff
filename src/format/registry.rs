//! A client for the Confluent Schema Registry REST API, with a cache: a schema id is asked
//! for once per table, whichever partition meets it first.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, TopicsError};

/// The kind of schema the registry holds under an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Avro (the registry's default when `schemaType` is absent).
    Avro,
    /// Protobuf `.proto` source.
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    fn parse(name: Option<&str>) -> Self {
        match name {
            Some("PROTOBUF") => Self::Protobuf,
            Some("JSON") => Self::Json,
            _ => Self::Avro,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Protobuf => "PROTOBUF",
            Self::Json => "JSON",
        }
    }
}

/// A schema another schema imports (protobuf imports), by subject and version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SchemaReference {
    /// The import name (for protobuf: the imported file name).
    pub name: String,
    /// The subject holding it.
    pub subject: String,
    /// Its version under the subject.
    pub version: i64,
}

/// A schema as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The global id messages name it by.
    pub id: u32,
    /// What kind of schema it is.
    pub schema_type: SchemaType,
    /// The schema text (Avro JSON, `.proto` source or JSON Schema).
    pub text: String,
    /// Schemas it imports.
    pub references: Vec<SchemaReference>,
}

#[derive(Deserialize)]
struct SchemaResponse {
    id: Option<u32>,
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error_code: Option<i64>,
    message: Option<String>,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A schema registry client shared by the decoders and encoders of a table.
#[derive(Debug)]
pub struct SchemaRegistry {
    base: String,
    auth: Option<(String, String)>,
    http: reqwest::Client,
    by_id: RwLock<HashMap<u32, Arc<RegisteredSchema>>>,
    /// Held while an id is fetched, so partitions meeting the same new id ask once.
    fetching: tokio::sync::Mutex<()>,
}

impl SchemaRegistry {
    /// A client for the registry at `url` (http or https), with optional basic
    /// authentication; requests time out after `timeout`.
    pub fn new(url: &str, auth: Option<(String, String)>, timeout: Duration) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            crate::error::TopicsError::invalid_option(
                "schema-registry.url",
                url,
                &format!("not a URL: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(crate::error::TopicsError::invalid_option(
                "schema-registry.url",
                url,
                "expected an http:// or https:// URL",
            ));
        }
        if parsed.scheme() == "https" {
            crate::tls::install_crypto_provider();
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| TopicsError::Registry {
                url: url.to_string(),
                detail: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            auth,
            http,
            by_id: RwLock::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Adds a schema to the cache as if the registry had answered with it (for offline use:
    /// fuzzing, or schemas known in advance).
    pub fn preload(&self, schema: RegisteredSchema) {
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(schema.id, Arc::new(schema));
        }
    }

    /// The schema with `id` if it was fetched before.
    pub fn cached(&self, id: u32) -> Option<Arc<RegisteredSchema>> {
        self.by_id.read().ok()?.get(&id).cloned()
    }

    /// The schema with `id`, from the cache or the registry.
    pub async fn by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let r: SchemaResponse = self.get(&format!("/schemas/ids/{id}")).await?;
        Ok(self.remember(id, r))
    }

    /// The latest version registered under `subject`.
    pub async fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>> {
        self.version(subject, "latest").await
    }

    /// Version `version` (a number or `latest`) of `subject`.
    pub async fn version(&self, subject: &str, version: &str) -> Result<Arc<RegisteredSchema>> {
        let path = format!(
            "/subjects/{}/versions/{version}",
            url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
        );
        let r: SchemaResponse = self.get(&path).await?;
        let id = r.id.ok_or_else(|| TopicsError::Registry {
            url: format!("{}{path}", self.base),
            detail: "the answer has no schema id".into(),
        })?;
        Ok(self.remember(id, r))
    }

    /// Registers `text` under `subject` (the registry answers with the existing id when the
    /// schema is already there) and returns its id.
    pub async fn register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        text: &str,
        references: &[SchemaReference],
    ) -> Result<u32> {
        let path = format!(
            "/subjects/{}/versions",
            url::form_urlencoded::byte_serialize(subject.as_bytes()).collect::<String>()
        );
        let mut body = serde_json::json!({ "schema": text });
        if schema_type != SchemaType::Avro {
            body["schemaType"] = schema_type.name().into();
        }
        if !references.is_empty() {
            body["references"] = serde_json::to_value(references).unwrap_or_default();
        }
        let url = format!("{}{path}", self.base);
        let request = self
            .http
            .post(&url)
            .header("Content-Type", CONTENT_TYPE)
            .body(body.to_string());
        let r: IdResponse = self.send(request, &url).await?;
        Ok(r.id)
    }

    fn remember(&self, id: u32, r: SchemaResponse) -> Arc<RegisteredSchema> {
        let schema = Arc::new(RegisteredSchema {
            id,
            schema_type: SchemaType::parse(r.schema_type.as_deref()),
            text: r.schema,
            references: r.references,
        });
        if let Ok(mut cache) = self.by_id.write() {
            cache.insert(id, Arc::clone(&schema));
        }
        schema
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let request = self.http.get(&url).header("Accept", CONTENT_TYPE);
        self.send(request, &url).await
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T> {
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let fail = |detail: String| TopicsError::Registry {
            url: url.to_string(),
            detail,
        };
        // Every request made here is idempotent (reads, and registering a schema, which
        // answers with the same id when it is already there): one that got no answer or no
        // connection is sent once more before the error.
        let retry = request.try_clone();
        let first = request.send().await;
        let response = match (first, retry) {
            (Err(e), Some(retry)) if e.is_timeout() || e.is_connect() => {
                log::warn!("schema registry {url}: {e}; asking once more");
                retry.send().await
            }
            (outcome, _) => outcome,
        };
        let response = response.map_err(|e| {
            fail(if e.is_timeout() {
                format!("no answer in time ({e}); is the registry running?")
            } else {
                format!("request failed: {e}")
            })
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(format!("reading the answer failed: {e}")))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .map(|e| {
                    format!(
                        "{} (error code {})",
                        e.message.unwrap_or_default(),
                        e.error_code.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(fail(format!("HTTP {status}: {why}")));
        }
        serde_json::from_slice(&body).map_err(|e| {
            fail(format!(
                "unexpected answer ({e}): {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))
        })
    }
}
