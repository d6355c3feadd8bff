//! The options describing one side's format (`value.*` or `key.*`), and their resolution into
//! a [`Format`]: schema files are read and the schema registry asked here, once per table.

use std::sync::Arc;

use arrow::datatypes::{DataType, Fields};

use super::{Detail, Format, FormatKind, SchemaRegistry, avro, protobuf};
use crate::error::{Result, TopicsError};

fn invalid(key: &str, value: &str, reason: &str) -> TopicsError {
    TopicsError::invalid_option(key, value, reason)
}

/// Which part of a message a format applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The message key.
    Key,
    /// The message value.
    Value,
}

impl Side {
    /// "key" or "value": the option prefix and the word used in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Value => "value",
        }
    }
}

/// How a message frames its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// The payload alone.
    #[default]
    None,
    /// Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, (protobuf: the
    /// message-index path,) then the payload.
    Confluent,
}

/// Where a schema's text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    /// Given inline in the option.
    Inline(String),
    /// Read from this file when the table is created.
    File(String),
}

impl SchemaSource {
    /// The schema text, reading the file if there is one; `option` names the option in errors.
    pub fn read(&self, option: &str) -> Result<Vec<u8>> {
        match self {
            Self::Inline(text) => Ok(text.clone().into_bytes()),
            Self::File(path) => std::fs::read(path)
                .map_err(|e| invalid(option, path, &format!("cannot read the schema file: {e}"))),
        }
    }
}

/// The CSV dialect of a `csv` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field separator (`csv.delimiter`, default `,`).
    pub delimiter: u8,
    /// Quote character (`csv.quote`, default `"`).
    pub quote: u8,
    /// Escape character inside quotes (`csv.escape`; default: quotes are doubled).
    pub escape: Option<u8>,
    /// Text that stands for NULL (`csv.null-literal`; default: the empty field).
    pub null_literal: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            escape: None,
            null_literal: String::new(),
        }
    }
}

/// The options of one side's format as written in the table's OPTIONS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatSpec {
    /// `format`; `None` picks a default from the declared columns.
    pub kind: Option<FormatKind>,
    /// `avro.schema` / `avro.schema-file`: the reader schema.
    pub avro_schema: Option<SchemaSource>,
    /// `avro.writer-schema` / `avro.writer-schema-file`: the schema plain Avro was written
    /// with, when it differs from the reader schema.
    pub avro_writer_schema: Option<SchemaSource>,
    /// `protobuf.schema-file`: a `.proto` file or a compiled descriptor set.
    pub protobuf_schema: Option<SchemaSource>,
    /// `protobuf.message`: the fully qualified message name.
    pub protobuf_message: Option<String>,
    /// `csv.*`: the CSV dialect.
    pub csv: CsvOptions,
    /// `framing`; `None` means Confluent when the table has a schema registry and the format
    /// is avro or protobuf, plain otherwise.
    pub framing: Option<Framing>,
    /// `subject`: the registry subject (default `<topic>-key` / `<topic>-value`).
    pub subject: Option<String>,
}

fn single_byte(key: &str, value: &str) -> Result<u8> {
    match value.as_bytes() {
        [b] if b.is_ascii() => Ok(*b),
        _ if value == "\\t" => Ok(b'\t'),
        _ => Err(invalid(key, value, "expected a single ASCII character")),
    }
}

impl FormatSpec {
    /// Takes the option `key` (already stripped of `key.`/`value.`; `full` is the whole key for
    /// errors) if it belongs to a format; returns false for keys it does not know.
    pub fn apply(&mut self, key: &str, full: &str, value: &str) -> Result<bool> {
        match key {
            "format" => {
                self.kind = Some(FormatKind::from_name(value).ok_or_else(|| {
                    invalid(
                        full,
                        value,
                        "expected raw, string, json, csv, avro or protobuf",
                    )
                })?)
            }
            "avro.schema" => self.avro_schema = Some(SchemaSource::Inline(value.to_string())),
            "avro.schema-file" => self.avro_schema = Some(SchemaSource::File(value.to_string())),
            "avro.writer-schema" => {
                self.avro_writer_schema = Some(SchemaSource::Inline(value.to_string()))
            }
            "avro.writer-schema-file" => {
                self.avro_writer_schema = Some(SchemaSource::File(value.to_string()))
            }
            "protobuf.schema-file" => {
                self.protobuf_schema = Some(SchemaSource::File(value.to_string()))
            }
            "protobuf.message" => self.protobuf_message = Some(value.trim().to_string()),
            "csv.delimiter" => self.csv.delimiter = single_byte(full, value)?,
            "csv.quote" => self.csv.quote = single_byte(full, value)?,
            "csv.escape" => self.csv.escape = Some(single_byte(full, value)?),
            "csv.null-literal" => self.csv.null_literal = value.to_string(),
            "framing" => {
                self.framing = Some(match value.to_ascii_lowercase().as_str() {
                    "none" | "plain" => Framing::None,
                    "confluent" => Framing::Confluent,
                    _ => return Err(invalid(full, value, "expected none or confluent")),
                })
            }
            "subject" => self.subject = Some(value.trim().to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The kind, defaulting from the declared type: a value with columns or a key declared as
    /// a struct is JSON, a key declared as text is a string, anything else is raw.
    pub fn kind_or_default(&self, declared: &Fields, side: Side) -> FormatKind {
        self.kind.unwrap_or(match side {
            Side::Value if !declared.is_empty() => FormatKind::Json,
            Side::Key => match declared.first().map(|f| f.data_type()) {
                Some(DataType::Struct(_)) => FormatKind::Json,
                Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) => {
                    FormatKind::String
                }
                _ => FormatKind::Raw,
            },
            Side::Value => FormatKind::Raw,
        })
    }

    /// Checks the options that do not need files or the registry: that the keys given fit
    /// the format, so mistakes surface at DDL time with the option named.
    pub fn check(&self, side: Side, declared: &Fields, has_registry: bool) -> Result<()> {
        let kind = self.kind_or_default(declared, side);
        let p = side.name();
        let misplaced = |what: &str, wants: &str| {
            Err(TopicsError::OptionConflict {
                key: format!("{p}.{what}"),
                reason: format!("only applies to {p}.format {wants}, not {kind}"),
            })
        };
        if kind != FormatKind::Avro
            && (self.avro_schema.is_some() || self.avro_writer_schema.is_some())
        {
            return misplaced("avro.schema", "avro");
        }
        if kind != FormatKind::Protobuf
            && (self.protobuf_schema.is_some() || self.protobuf_message.is_some())
        {
            return misplaced("protobuf.*", "protobuf");
        }
        if kind != FormatKind::Csv && self.csv != CsvOptions::default() {
            return misplaced("csv.*", "csv");
        }
        if kind.is_single_column() {
            let one = if kind == FormatKind::Raw {
                Format::raw()
            } else {
                Format::string()
            };
            check_single_column(side, kind, declared, one.fields())?;
        }
        let framing = self.framing(kind, has_registry);
        if framing == Framing::Confluent && kind.is_single_column() {
            return misplaced("framing", "json, avro or protobuf");
        }
        if framing == Framing::Confluent && kind == FormatKind::Csv {
            return misplaced("framing", "json, avro or protobuf");
        }
        if framing == Framing::Confluent
            && !has_registry
            && match kind {
                FormatKind::Avro => self.avro_schema.is_none(),
                FormatKind::Protobuf => self.protobuf_schema.is_none(),
                _ => false,
            }
        {
            return Err(TopicsError::OptionConflict {
                key: format!("{p}.framing"),
                reason: "the Confluent wire format names writer schemas by registry id: set 'schema-registry.url'".into(),
            });
        }
        Ok(())
    }

    /// The framing in effect: as set, else Confluent for avro and protobuf when the table has
    /// a schema registry.
    pub fn framing(&self, kind: FormatKind, has_registry: bool) -> Framing {
        self.framing.unwrap_or(
            if has_registry && matches!(kind, FormatKind::Avro | FormatKind::Protobuf) {
                Framing::Confluent
            } else {
                Framing::None
            },
        )
    }

    /// Resolves the spec for `side` of `topic`: `declared` are the declared columns (value
    /// columns, or the fields of a declared `_key` struct).
    pub async fn resolve(
        &self,
        topic: &str,
        side: Side,
        declared: &Fields,
        registry: Option<&Arc<SchemaRegistry>>,
    ) -> Result<Format> {
        self.check(side, declared, registry.is_some())?;
        let kind = self.kind_or_default(declared, side);
        let framing = self.framing(kind, registry.is_some());
        let subject = self
            .subject
            .clone()
            .unwrap_or_else(|| format!("{topic}-{}", side.name()));
        let p = side.name();
        let needs_columns = |what: &str| {
            TopicsError::InvalidSchema(format!("{p}.format {kind} needs the {p} columns: {what}"))
        };
        let no_columns = || {
            TopicsError::InvalidSchema(format!(
                "{p}.format {kind} takes its columns from the schema; remove the declared {p} columns or the schema option"
            ))
        };
        let (fields, detail) = match kind {
            FormatKind::Raw | FormatKind::String => {
                return Ok(if kind == FormatKind::Raw {
                    Format::raw()
                } else {
                    Format::string()
                });
            }
            FormatKind::Json => {
                if declared.is_empty() {
                    return Err(needs_columns(
                        "declare them, or let CREATE EXTERNAL TABLE infer them from a sample",
                    ));
                }
                (declared.clone(), Detail::Json(framing))
            }
            FormatKind::Csv => {
                if declared.is_empty() {
                    return Err(needs_columns("declare them in the order of the CSV fields"));
                }
                (declared.clone(), Detail::Csv(self.csv.clone()))
            }
            FormatKind::Avro => {
                let reader = match (&self.avro_schema, declared.is_empty()) {
                    (Some(_), false) => return Err(no_columns()),
                    (Some(source), true) => Some(avro::parse_schema(
                        &source.read(&format!("{p}.avro.schema"))?,
                        &format!("{p}.avro.schema"),
                    )?),
                    (None, _) => None,
                };
                let writer = match &self.avro_writer_schema {
                    Some(source) => Some(avro::parse_schema(
                        &source.read(&format!("{p}.avro.writer-schema"))?,
                        &format!("{p}.avro.writer-schema"),
                    )?),
                    None => None,
                };
                let format = avro::AvroFormat::resolve(avro::AvroSetup {
                    reader,
                    writer,
                    declared: declared.clone(),
                    framing,
                    registry: registry.cloned(),
                    subject,
                    side,
                })
                .await?;
                (format.fields().clone(), Detail::Avro(format))
            }
            FormatKind::Protobuf => {
                if !declared.is_empty() {
                    return Err(no_columns());
                }
                let format = protobuf::ProtobufFormat::resolve(protobuf::ProtobufSetup {
                    schema: self
                        .protobuf_schema
                        .as_ref()
                        .map(|s| {
                            Ok::<_, TopicsError>((
                                s.read(&format!("{p}.protobuf.schema-file"))?,
                                s.clone(),
                            ))
                        })
                        .transpose()?,
                    message: self.protobuf_message.clone(),
                    framing,
                    registry: registry.cloned(),
                    subject,
                    side,
                })
                .await?;
                (format.fields().clone(), Detail::Protobuf(format))
            }
        };
        Ok(Format {
            kind,
            fields,
            detail: Arc::new(detail),
        })
    }
}

/// Raw and string formats have one column; a declaration may only restate it.
fn check_single_column(
    side: Side,
    kind: FormatKind,
    declared: &Fields,
    expected: &Fields,
) -> Result<()> {
    let want = expected[0].data_type();
    let fits = |dt: &DataType| match want {
        DataType::Binary => matches!(
            dt,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ),
        _ => matches!(
            dt,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
    };
    let ok = match (side, declared.as_ref()) {
        (_, []) => true,
        (Side::Value, [one]) => one.name() == "value" && fits(one.data_type()),
        (Side::Key, [one]) => fits(one.data_type()),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let sql = if kind == FormatKind::Raw {
        "BYTEA"
    } else {
        "VARCHAR"
    };
    Err(TopicsError::InvalidSchema(match side {
        Side::Value => format!(
            "value.format '{kind}' has a single column `value {sql}`; declare only that, remove the column list, or use value.format 'json'"
        ),
        Side::Key => format!(
            "key.format '{kind}' makes `_key` a {sql} column; declare `_key {sql}`, or a STRUCT with key.format json or csv"
        ),
    }))
}
