//! The `protobuf` format: messages of one type, described by a `.proto` file, a compiled
//! descriptor set, or the schema registry (Confluent wire format), decoded straight into
//! Arrow builders ([`decode`]). Protobuf evolves by field numbers, so
//! messages written with an older or newer version of the type decode with the table's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{Fields, SchemaRef};
use prost_reflect::{DescriptorPool, MessageDescriptor};

mod decode;
mod encode;
mod schema;
#[cfg(test)]
mod tests;

use super::registry::SchemaType;
use super::{
    DecodeError, Decoder, Encoder, Framing, SchemaRegistry, SchemaSource, Side, confluent,
};
use crate::error::{Result, TopicsError};
use decode::ProtoDecoder;

/// What resolving a protobuf format starts from.
pub(super) struct ProtobufSetup {
    /// The schema file's bytes and where they came from.
    pub schema: Option<(Vec<u8>, SchemaSource)>,
    pub message: Option<String>,
    pub framing: Framing,
    pub registry: Option<Arc<SchemaRegistry>>,
    pub subject: String,
    pub side: Side,
}

/// A resolved protobuf format.
pub(super) struct ProtobufFormat {
    message: MessageDescriptor,
    /// The message's index path within its file (Confluent framing).
    path: Vec<usize>,
    fields: Fields,
    framing: Framing,
    registry: Option<Arc<SchemaRegistry>>,
    subject: String,
    /// The `.proto` source, when known, for registering it.
    source: Option<String>,
    /// The registry id of the table's schema when it came from the registry.
    registered_id: Option<u32>,
}

fn schema_error(what: impl std::fmt::Display) -> TopicsError {
    TopicsError::InvalidSchema(what.to_string())
}

/// A file resolver serving `.proto` sources held in memory (the registry's schema and its
/// references), then the well-known `google/protobuf/*` files.
struct MemoryFiles(HashMap<String, String>);

impl protox::file::FileResolver for MemoryFiles {
    fn open_file(&self, name: &str) -> std::result::Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(source) => protox::file::File::from_source(name, source),
            None => protox::file::GoogleFileResolver::new().open_file(name),
        }
    }
}

fn compile_sources(main: &str, files: HashMap<String, String>) -> Result<DescriptorPool> {
    let mut compiler = protox::Compiler::with_file_resolver(MemoryFiles(files));
    compiler.include_imports(true);
    compiler
        .open_file(main)
        .map_err(|e| schema_error(format!("cannot compile the protobuf schema: {e}")))?;
    Ok(compiler.descriptor_pool())
}

impl ProtobufFormat {
    /// Loads the descriptors and picks the message type.
    pub(super) async fn resolve(setup: ProtobufSetup) -> Result<Self> {
        let p = setup.side.name();
        let (pool, main_file, source, registered_id) = match (&setup.schema, &setup.registry) {
            (Some((bytes, origin)), _) => {
                let option = format!("{p}.protobuf.schema-file");
                let path = match origin {
                    SchemaSource::File(path) => path.clone(),
                    SchemaSource::Inline(_) => "inline.proto".to_string(),
                };
                if let Ok(pool) = DescriptorPool::decode(bytes.as_slice()) {
                    (pool, None, None, None)
                } else {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        crate::error::TopicsError::invalid_option(
                            &option,
                            &path,
                            "neither a descriptor set nor a UTF-8 .proto file",
                        )
                    })?;
                    let name = Path::new(&path)
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_else(|| "schema.proto".into());
                    let mut files = HashMap::new();
                    files.insert(name.clone(), text.to_string());
                    // Imports are looked up beside the file.
                    if let Some(dir) = Path::new(&path).parent() {
                        add_imports(dir, text, &mut files);
                    }
                    let pool = compile_sources(&name, files).map_err(|e| {
                        crate::error::TopicsError::invalid_option(&option, &path, &e.to_string())
                    })?;
                    (pool, Some(name), Some(text.to_string()), None)
                }
            }
            (None, Some(registry)) if setup.framing == Framing::Confluent => {
                let latest = registry.latest(&setup.subject).await?;
                if latest.schema_type != SchemaType::Protobuf {
                    return Err(schema_error(format!(
                        "the latest schema of subject '{}' is {:?}, not protobuf",
                        setup.subject, latest.schema_type
                    )));
                }
                let mut files = HashMap::new();
                let mut pending = latest.references.clone();
                while let Some(r) = pending.pop() {
                    if files.contains_key(&r.name) {
                        continue;
                    }
                    let s = registry.version(&r.subject, &r.version.to_string()).await?;
                    pending.extend(s.references.iter().cloned());
                    files.insert(r.name.clone(), s.text.clone());
                }
                let main = format!("{}.proto", setup.subject);
                files.insert(main.clone(), latest.text.clone());
                let pool = compile_sources(&main, files)?;
                (pool, Some(main), Some(latest.text.clone()), Some(latest.id))
            }
            _ => {
                return Err(schema_error(format!(
                    "{p}.format protobuf needs '{p}.protobuf.schema-file' (a .proto file or a descriptor set), or 'schema-registry.url'"
                )));
            }
        };
        let message = match &setup.message {
            Some(name) => pool.get_message_by_name(name).ok_or_else(|| {
                let known: Vec<_> = pool
                    .all_messages()
                    .map(|m| m.full_name().to_string())
                    .take(20)
                    .collect();
                crate::error::TopicsError::invalid_option(
                    &format!("{p}.protobuf.message"),
                    name,
                    &format!("no such message type; the schema has {}", known.join(", ")),
                )
            })?,
            None => {
                let in_main = main_file
                    .as_ref()
                    .and_then(|f| pool.get_file_by_name(f))
                    .and_then(|f| f.messages().next());
                match in_main {
                    Some(m) => m,
                    None => {
                        let mut all = pool
                            .all_messages()
                            .filter(|m| !m.full_name().starts_with("google.protobuf."));
                        match (all.next(), all.next()) {
                            (Some(m), None) => m,
                            _ => {
                                return Err(TopicsError::OptionConflict {
                                    key: format!("{p}.protobuf.message"),
                                    reason: "is needed: the schema has several message types"
                                        .into(),
                                });
                            }
                        }
                    }
                }
            }
        };
        let fields = schema::message_fields(&message).map_err(schema_error)?;
        Ok(Self {
            path: index_path(&message),
            message,
            fields,
            framing: setup.framing,
            registry: setup.registry,
            subject: setup.subject,
            source,
            registered_id,
        })
    }

    /// The columns of the message type.
    pub(super) fn fields(&self) -> &Fields {
        &self.fields
    }

    pub(super) fn decoder(&self, projected: &SchemaRef) -> Result<ProtobufDecoder> {
        Ok(ProtobufDecoder {
            decoder: ProtoDecoder::try_new(self.message.clone(), Arc::clone(projected))
                .map_err(schema_error)?,
            framing: self.framing,
            path: self.path.clone(),
            name: self.message.full_name().to_string(),
        })
    }

    /// An encoder; with the Confluent wire format the schema is registered under the table's
    /// subject first (or its registry id reused when it came from the registry).
    pub(super) async fn encoder(&self) -> Result<ProtobufEncoder> {
        let id = match (self.framing, &self.registry) {
            (Framing::None, _) => None,
            (Framing::Confluent, _) if self.registered_id.is_some() => self.registered_id,
            (Framing::Confluent, Some(registry)) => {
                let source = self.source.as_ref().ok_or_else(|| {
                    schema_error("writing the Confluent wire format registers the .proto source; a compiled descriptor set has none: point protobuf.schema-file at the .proto file")
                })?;
                Some(
                    registry
                        .register(&self.subject, SchemaType::Protobuf, source, &[])
                        .await?,
                )
            }
            (Framing::Confluent, None) => {
                return Err(schema_error(
                    "writing the Confluent wire format needs 'schema-registry.url'",
                ));
            }
        };
        Ok(ProtobufEncoder {
            message: self.message.clone(),
            id,
            path: self.path.clone(),
        })
    }
}

/// Reads the files a `.proto` source imports from `dir` (recursively), leaving the
/// well-known `google/protobuf/*` imports to the compiler.
fn add_imports(dir: &Path, text: &str, files: &mut HashMap<String, String>) {
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("import") else {
            continue;
        };
        let Some(name) = rest.split('"').nth(1) else {
            continue;
        };
        if name.starts_with("google/protobuf/") || files.contains_key(name) {
            continue;
        }
        if let Ok(source) = std::fs::read_to_string(dir.join(name)) {
            files.insert(name.to_string(), source.clone());
            add_imports(dir, &source, files);
        }
    }
}

/// The message's position within its file: index among the file's top-level messages, then
/// among each enclosing message's nested messages.
fn index_path(message: &MessageDescriptor) -> Vec<usize> {
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        match current.parent_message() {
            Some(parent) => {
                let i = parent
                    .child_messages()
                    .position(|m| m.full_name() == current.full_name())
                    .unwrap_or(0);
                path.push(i);
                current = parent;
            }
            None => {
                let i = current
                    .parent_file()
                    .messages()
                    .position(|m| m.full_name() == current.full_name())
                    .unwrap_or(0);
                path.push(i);
                break;
            }
        }
    }
    path.reverse();
    path
}

/// Decodes protobuf messages of one type.
pub(super) struct ProtobufDecoder {
    decoder: ProtoDecoder,
    framing: Framing,
    path: Vec<usize>,
    name: String,
}

impl ProtobufDecoder {
    fn payload<'a>(&self, bytes: &'a [u8]) -> std::result::Result<&'a [u8], String> {
        match self.framing {
            Framing::None => Ok(bytes),
            Framing::Confluent => {
                let (_, payload) = confluent::split(bytes)?;
                let (path, body) = confluent::split_message_indexes(payload)?;
                if path != self.path {
                    return Err(format!(
                        "the message names type index path {path:?} of its schema, but the table reads {} (path {:?})",
                        self.name, self.path
                    ));
                }
                Ok(body)
            }
        }
    }
}

impl ProtobufDecoder {
    fn append(&mut self, values: &BinaryArray, i: usize) -> std::result::Result<(), String> {
        if values.is_null(i) {
            self.decoder.append(None)
        } else {
            let body = self.payload(values.value(i))?;
            self.decoder.append(Some(body))
        }
    }
}

impl Decoder for ProtobufDecoder {
    fn decode(&mut self, values: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        // Pieces exist only when a batch outgrows Arrow's 32-bit offsets.
        let mut pieces: Vec<Vec<ArrayRef>> = Vec::new();
        for i in 0..values.len() {
            let mut appended = self.append(values, i);
            if matches!(&appended, Err(reason) if reason.starts_with("batch full")) {
                pieces.push(self.decoder.finish());
                appended = self.append(values, i);
            }
            if let Err(reason) = appended {
                self.decoder.finish(); // drop the rows before it; the caller re-decodes them
                return Err(DecodeError::bad(i, reason));
            }
        }
        let last = self.decoder.finish();
        if pieces.is_empty() {
            return Ok(last);
        }
        pieces.push(last);
        (0..pieces[0].len())
            .map(|c| {
                let parts: Vec<&dyn Array> = pieces.iter().map(|p| p[c].as_ref()).collect();
                arrow::compute::concat(&parts).map_err(Into::into)
            })
            .collect()
    }
}

/// Encodes rows as protobuf messages of the table's type.
pub(super) struct ProtobufEncoder {
    message: MessageDescriptor,
    id: Option<u32>,
    path: Vec<usize>,
}

impl Encoder for ProtobufEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let encoded = encode::encode_rows(&self.message, batch).map_err(schema_error)?;
        Ok(encoded
            .into_iter()
            .map(|body| {
                let Some(id) = self.id else {
                    return Some(body);
                };
                let mut out = Vec::with_capacity(body.len() + 8);
                confluent::write_header(id, &mut out);
                confluent::write_message_indexes(&self.path, &mut out);
                out.extend_from_slice(&body);
                Some(out)
            })
            .collect())
    }
}
