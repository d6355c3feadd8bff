//! The `avro` format, decoded by arrow-avro: plain Avro datums with a schema from the
//! options, or the Confluent wire format whose schema ids are resolved through the schema
//! registry. The table's reader schema decides the columns; every writer schema is resolved
//! against it (Avro schema evolution), so messages written with older or newer schemas
//! decode into the same columns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{Fields, Schema, SchemaRef};
use arrow_avro::reader::{Decoder as ArrowAvroDecoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use arrow_avro::writer::WriterBuilder;
use arrow_avro::writer::format::AvroBinaryFormat;

use super::registry::SchemaType;
use super::{DecodeError, Decoder, Encoder, Framing, SchemaRegistry, Side, confluent};
use crate::error::{Result, TopicsError};

/// The id plain (unframed) datums are decoded under: arrow-avro's decoder only reads framed
/// datums, so each plain one gets this header. An unlikely id, because bytes left over after a
/// datum that spell a known header are taken for the next datum's (see `ends_in_header`).
const PLAIN_ID: u32 = 0x7A5C_3E19;

const LEFT_OVER: &str = "bytes left over after the Avro datum";

/// Parses Avro schema JSON given in `option`.
pub(super) fn parse_schema(text: &[u8], option: &str) -> Result<AvroSchema> {
    let text = std::str::from_utf8(text).map_err(|e| {
        crate::error::TopicsError::invalid_option(option, "(schema)", &format!("not UTF-8: {e}"))
    })?;
    serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
        crate::error::TopicsError::invalid_option(
            option,
            text,
            &format!("not an Avro schema (JSON): {e}"),
        )
    })?;
    let schema = AvroSchema::new(text.to_string());
    // Building a decoder checks the schema itself.
    let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
    store
        .set(Fingerprint::Id(PLAIN_ID), schema.clone())
        .and_then(|_| {
            ReaderBuilder::new()
                .with_writer_schema_store(store)
                .build_decoder()
        })
        .map_err(|e| {
            crate::error::TopicsError::invalid_option(
                option,
                text,
                &format!("not an Avro schema: {e}"),
            )
        })?;
    Ok(schema)
}

/// What resolving an Avro format starts from.
pub(super) struct AvroSetup {
    pub reader: Option<AvroSchema>,
    pub writer: Option<AvroSchema>,
    pub declared: Fields,
    pub framing: Framing,
    pub registry: Option<Arc<SchemaRegistry>>,
    pub subject: String,
    pub side: Side,
}

/// A resolved Avro format.
pub(super) struct AvroFormat {
    reader: AvroSchema,
    /// The writer schema of plain datums (the reader schema unless set).
    writer: AvroSchema,
    fields: Fields,
    framing: Framing,
    registry: Option<Arc<SchemaRegistry>>,
    subject: String,
}

fn avro_error(what: &str, e: impl std::fmt::Display) -> TopicsError {
    TopicsError::InvalidSchema(format!("{what}: {e}"))
}

impl AvroFormat {
    /// Picks the reader schema (given, derived from declared columns, or the subject's latest
    /// version in the registry) and works out its columns.
    pub(super) async fn resolve(setup: AvroSetup) -> Result<Self> {
        let p = setup.side.name();
        let reader = match (setup.reader, setup.declared.is_empty()) {
            (Some(schema), _) => schema,
            (None, false) => {
                AvroSchema::try_from(&Schema::new(setup.declared.clone())).map_err(|e| {
                    avro_error(
                        &format!("cannot derive an Avro schema from the declared {p} columns"),
                        e,
                    )
                })?
            }
            (None, true) => match (&setup.registry, setup.framing) {
                (Some(registry), Framing::Confluent) => {
                    let latest = registry.latest(&setup.subject).await?;
                    if latest.schema_type != SchemaType::Avro {
                        return Err(TopicsError::InvalidSchema(format!(
                            "the latest schema of subject '{}' is {:?}, not Avro",
                            setup.subject, latest.schema_type
                        )));
                    }
                    AvroSchema::new(latest.text.clone())
                }
                _ => {
                    return Err(TopicsError::InvalidSchema(format!(
                        "{p}.format avro needs a schema: set '{p}.avro.schema' or '{p}.avro.schema-file', declare the {p} columns, or set 'schema-registry.url'"
                    )));
                }
            },
        };
        let writer = setup.writer.unwrap_or_else(|| reader.clone());
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        store
            .set(Fingerprint::Id(PLAIN_ID), writer.clone())
            .map_err(|e| avro_error("bad Avro schema", e))?;
        let probe = ReaderBuilder::new()
            .with_reader_schema(reader.clone())
            .with_writer_schema_store(store)
            .build_decoder()
            .map_err(|e| {
                avro_error(
                    &format!("the {p} writer schema cannot be read as the reader schema"),
                    e,
                )
            })?;
        // Every column is nullable: a tombstone or a dead letter is a row of nulls.
        let fields = nullable_fields(probe.schema().fields());
        Ok(Self {
            reader,
            writer,
            fields,
            framing: setup.framing,
            registry: setup.registry,
            subject: setup.subject,
        })
    }

    /// The columns the reader schema yields.
    pub(super) fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Fetches the writer schemas of the framed messages in `values` that are not cached. An
    /// id the registry does not know is left for the decoder to report as a bad message.
    pub(super) async fn prefetch(&self, values: &BinaryArray) -> Result<()> {
        let (Framing::Confluent, Some(registry)) = (self.framing, &self.registry) else {
            return Ok(());
        };
        let ids: BTreeSet<u32> = values
            .iter()
            .flatten()
            .filter_map(confluent::schema_id)
            .filter(|id| registry.cached(*id).is_none())
            .collect();
        for id in ids {
            match registry.by_id(id).await {
                Ok(_) => {}
                Err(TopicsError::Registry { detail, .. }) if detail.contains("HTTP 404") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(super) fn decoder(&self, projected: &SchemaRef, batch_rows: usize) -> Result<AvroDecoder> {
        let projection = projected
            .fields()
            .iter()
            .map(|f| self.fields.find(f.name()).map(|(i, _)| i))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TopicsError::internal("projection of an unknown Avro field"))?;
        let mut decoder = AvroDecoder {
            target: projected.fields().clone(),
            reader: self.reader.clone(),
            projection,
            framing: self.framing,
            registry: self.registry.clone(),
            writers: BTreeMap::new(),
            unusable: BTreeMap::new(),
            batch_rows: batch_rows + 1,
            decoder: None,
        };
        if self.framing == Framing::None {
            decoder.writers.insert(PLAIN_ID, self.writer.clone());
        }
        Ok(decoder)
    }

    /// An encoder for this schema; with the Confluent wire format the schema is registered
    /// under the table's subject first (the registry returns the existing id if it is there).
    pub(super) async fn encoder(&self, fields: &Fields) -> Result<AvroEncoder> {
        let id = match (self.framing, &self.registry) {
            (Framing::None, _) => None,
            (Framing::Confluent, Some(registry)) => Some(
                registry
                    .register(
                        &self.subject,
                        SchemaType::Avro,
                        &self.reader.json_string,
                        &[],
                    )
                    .await?,
            ),
            (Framing::Confluent, None) => {
                return Err(TopicsError::OptionConflict {
                    key: "value.framing".into(),
                    reason: "writing the Confluent wire format needs 'schema-registry.url'".into(),
                });
            }
        };
        let mut metadata = std::collections::HashMap::new();
        metadata.insert(
            arrow_avro::schema::SCHEMA_METADATA_KEY.to_string(),
            self.reader.json_string.clone(),
        );
        Ok(AvroEncoder {
            schema: Schema::new_with_metadata(fields.clone(), metadata),
            id,
        })
    }
}

/// Decodes Avro datums batch-wise; one arrow-avro decoder holds a resolution of every writer
/// schema seen so far against the reader schema.
pub(super) struct AvroDecoder {
    /// The table's (nullable) columns the output must have.
    target: Fields,
    reader: AvroSchema,
    projection: Vec<usize>,
    framing: Framing,
    registry: Option<Arc<SchemaRegistry>>,
    /// Writer schemas the current decoder resolves, by id.
    writers: BTreeMap<u32, AvroSchema>,
    /// Ids whose schema cannot be used, and why.
    unusable: BTreeMap<u32, String>,
    batch_rows: usize,
    decoder: Option<ArrowAvroDecoder>,
}

const PLAIN_PREFIX: [u8; 5] = [0, 0x7A, 0x5C, 0x3E, 0x19];

impl AvroDecoder {
    fn build(
        &self,
        writers: &BTreeMap<u32, AvroSchema>,
    ) -> std::result::Result<ArrowAvroDecoder, String> {
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        for (id, schema) in writers {
            store
                .set(Fingerprint::Id(*id), schema.clone())
                .map_err(|e| e.to_string())?;
        }
        ReaderBuilder::new()
            .with_reader_schema(self.reader.clone())
            .with_projection(self.projection.clone())
            .with_writer_schema_store(store)
            .with_batch_size(self.batch_rows)
            .build_decoder()
            .map_err(|e| e.to_string())
    }

    /// Makes sure the decoder resolves every writer schema `values` name (framed messages).
    fn learn_ids(&mut self, values: &BinaryArray) -> Result<()> {
        if self.framing == Framing::Confluent {
            let fresh: BTreeSet<u32> = values
                .iter()
                .flatten()
                .filter_map(confluent::schema_id)
                .filter(|id| !self.writers.contains_key(id) && !self.unusable.contains_key(id))
                .collect();
            for id in fresh {
                let schema = self.registry.as_ref().and_then(|r| r.cached(id));
                let why = match schema {
                    None => format!("schema id {id} is not in the schema registry"),
                    Some(s) if s.schema_type != SchemaType::Avro => {
                        format!("schema id {id} is a {:?} schema, not Avro", s.schema_type)
                    }
                    Some(s) => {
                        let candidate = AvroSchema::new(s.text.clone());
                        let mut one = BTreeMap::new();
                        one.insert(id, candidate.clone());
                        match self.build(&one) {
                            Ok(_) => {
                                self.writers.insert(id, candidate);
                                self.decoder = None;
                                continue;
                            }
                            Err(e) => format!(
                                "writer schema id {id} cannot be read with the table's schema: {e}"
                            ),
                        }
                    }
                };
                self.unusable.insert(id, why);
            }
        }
        if self.decoder.is_none() && !self.writers.is_empty() {
            self.decoder = Some(
                self.build(&self.writers)
                    .map_err(|e| avro_error("Avro decoder", e))?,
            );
        }
        Ok(())
    }

    /// Decodes one datum into `decoder`, flushing into `pieces` when a schema switch needs it.
    fn push(
        decoder: &mut ArrowAvroDecoder,
        prefix: &[u8],
        body: &[u8],
        pieces: &mut Vec<RecordBatch>,
    ) -> std::result::Result<(), String> {
        if decoder.decode(prefix).map_err(|e| e.to_string())? != prefix.len() {
            return Err("the datum's header was not accepted".into());
        }
        if decoder.batch_is_full() {
            // A new writer schema after rows of another: the decoder flushes first.
            if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
                pieces.push(batch);
            }
        }
        if body.is_empty() {
            return Err("empty Avro datum".into());
        }
        let before = decoder.capacity();
        let used = decoder.decode(body).map_err(|e| e.to_string())?;
        // arrow-avro's decoder reads on after the datum: bytes left over that look like a
        // header start another datum, so a message must add exactly one row and use all of
        // its bytes, and must not end in a header the decoder now waits to complete.
        let rows = before - decoder.capacity();
        if rows == 0 {
            return Err("truncated Avro datum".into());
        }
        if rows > 1 || used != body.len() {
            return Err(LEFT_OVER.into());
        }
        Ok(())
    }
}

impl Decoder for AvroDecoder {
    fn decode(&mut self, values: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        if values.len() + 1 > self.batch_rows {
            self.batch_rows = values.len() + 1;
            self.decoder = None;
        }
        self.learn_ids(values)?;
        let mut pieces = Vec::new();
        for i in 0..values.len() {
            if values.is_null(i) {
                continue;
            }
            let bytes = values.value(i);
            let (prefix, body) = match self.framing {
                Framing::None => (&PLAIN_PREFIX[..], bytes),
                Framing::Confluent => match confluent::split(bytes) {
                    Ok((id, body)) => match self.unusable.get(&id) {
                        Some(why) => {
                            let why = why.clone();
                            return Err(self.fail(i, why));
                        }
                        None => (&bytes[..confluent::HEADER_LEN], body),
                    },
                    Err(why) => return Err(self.fail(i, why)),
                },
            };
            let Some(decoder) = self.decoder.as_mut() else {
                return Err(DecodeError::bad(i, "no usable writer schema"));
            };
            if let Err(why) = Self::push(decoder, prefix, body, &mut pieces) {
                return Err(self.fail(i, why));
            }
            if self.ends_in_header(prefix, body) {
                return Err(self.fail(i, LEFT_OVER));
            }
        }
        if let Some(decoder) = self.decoder.as_mut()
            && let Some(batch) = decoder.flush().map_err(|e| avro_error("Avro flush", e))?
        {
            pieces.push(batch);
        }
        let schema = match pieces.first() {
            Some(b) => b.schema(),
            None => {
                let fields: Vec<_> = self
                    .projection
                    .iter()
                    .map(|&i| self.reader_fields()[i].clone())
                    .collect();
                Arc::new(Schema::new(fields))
            }
        };
        let batch = arrow::compute::concat_batches(&schema, &pieces)?;
        let columns = batch
            .columns()
            .iter()
            .zip(self.target.iter())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(Arc::clone(c))
                } else {
                    arrow::compute::cast(c, f.data_type())
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        super::spread_over_tombstones(&columns, values)
    }
}

/// The same fields with every field, struct member, list item and map value nullable.
pub(super) fn nullable_fields(fields: &Fields) -> Fields {
    fields
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(nullable_type(f.data_type()))
                .with_nullable(true)
        })
        .collect()
}

fn nullable_type(dt: &arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::{DataType, Field};
    let item = |f: &Arc<Field>| {
        Arc::new(
            f.as_ref()
                .clone()
                .with_data_type(nullable_type(f.data_type()))
                .with_nullable(true),
        )
    };
    match dt {
        DataType::Struct(fields) => DataType::Struct(nullable_fields(fields)),
        DataType::List(f) => DataType::List(item(f)),
        DataType::LargeList(f) => DataType::LargeList(item(f)),
        DataType::Map(entries, sorted) => {
            // Map keys stay non-null; values become nullable.
            let DataType::Struct(kv) = entries.data_type() else {
                return dt.clone();
            };
            let kv: Fields = kv
                .iter()
                .enumerate()
                .map(|(i, f)| if i == 0 { Arc::clone(f) } else { item(f) })
                .collect();
            DataType::Map(
                Arc::new(
                    entries
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Struct(kv)),
                ),
                *sorted,
            )
        }
        other => other.clone(),
    }
}

impl AvroDecoder {
    /// Reports message `row` bad; the decoder is rebuilt, as it may hold rows of this call or
    /// a half-decoded datum.
    fn fail(&mut self, row: usize, why: impl ToString) -> DecodeError {
        self.decoder = None;
        DecodeError::bad(row, why)
    }

    /// Whether `body` is a datum followed by a header the decoder knows: the decoder then
    /// took the header as the next datum's and waits for its body, which counting rows and
    /// bytes cannot tell from a datum that happens to end in those bytes. A fresh decoder
    /// tells: the datum alone ends where the header starts. Rare (the header must spell a
    /// known schema id), so the cost of building one does not matter.
    fn ends_in_header(&self, prefix: &[u8], body: &[u8]) -> bool {
        let Some(at) = body.len().checked_sub(confluent::HEADER_LEN) else {
            return false;
        };
        let Ok((id, [])) = confluent::split(&body[at..]) else {
            return false;
        };
        if !self.writers.contains_key(&id) {
            return false;
        }
        let Ok(mut fresh) = self.build(&self.writers) else {
            return false;
        };
        let mut pieces = Vec::new();
        Self::push(&mut fresh, prefix, &body[..at], &mut pieces).is_ok()
    }

    fn reader_fields(&self) -> Fields {
        let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
        let _ = store.set(Fingerprint::Id(PLAIN_ID), self.reader.clone());
        ReaderBuilder::new()
            .with_reader_schema(self.reader.clone())
            .with_writer_schema_store(store)
            .build_decoder()
            .map(|d| d.schema().fields().clone())
            .unwrap_or_default()
    }
}

/// Encodes rows as Avro datums with the table's schema, behind a Confluent header when the
/// table uses the wire format.
pub(super) struct AvroEncoder {
    schema: Schema,
    id: Option<u32>,
}

impl Encoder for AvroEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let columns = super::columns_by_name(batch, &self.schema)?
            .columns()
            .to_vec();
        let batch = RecordBatch::try_new(Arc::new(self.schema.clone()), columns)?;
        let mut encoder = WriterBuilder::new(self.schema.clone())
            .build_encoder::<AvroBinaryFormat>()
            .map_err(|e| avro_error("cannot encode Avro with the table's schema", e))?;
        encoder
            .encode(&batch)
            .map_err(|e| avro_error("Avro encoding failed", e))?;
        let rows = encoder.flush();
        Ok(rows
            .iter()
            .map(|datum| {
                let mut out = Vec::with_capacity(datum.len() + confluent::HEADER_LEN);
                if let Some(id) = self.id {
                    confluent::write_header(id, &mut out);
                }
                out.extend_from_slice(&datum);
                Some(out)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"x","type":"double"}]}"#;

    fn decoder() -> AvroDecoder {
        let format = futures::executor::block_on(AvroFormat::resolve(AvroSetup {
            reader: Some(parse_schema(SCHEMA.as_bytes(), "test").unwrap()),
            writer: None,
            declared: Fields::empty(),
            framing: Framing::None,
            registry: None,
            subject: "t-value".into(),
            side: Side::Value,
        }))
        .unwrap();
        let schema = Arc::new(Schema::new(format.fields().clone()));
        format.decoder(&schema, 8).unwrap()
    }

    /// id = 3 (zig-zag 6), x = 0.0 (eight zero bytes).
    const DATUM: [u8; 9] = [6, 0, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn one_message_is_one_datum() {
        let mut d = decoder();
        let good = BinaryArray::from(vec![Some(&DATUM[..]), None, Some(&DATUM[..])]);
        let cols = d.decode(&good).unwrap();
        assert_eq!(cols[0].len(), 3);
        assert_eq!(cols[0].null_count(), 1);
        let two: Vec<u8> = [&DATUM[..], &PLAIN_PREFIX[..], &DATUM[..]].concat();
        let tail: Vec<u8> = [&DATUM[..], &PLAIN_PREFIX[..]].concat();
        for bad in [
            &two[..],
            &tail[..],
            &DATUM[..4],
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 7][..],
        ] {
            let values = BinaryArray::from(vec![Some(&DATUM[..]), Some(bad), Some(&DATUM[..])]);
            match d.decode(&values) {
                Err(DecodeError::Bad { row, .. }) => assert_eq!(row, 1, "{bad:?}"),
                Err(DecodeError::Failed(e)) => panic!("{e}"),
                Ok(c) => panic!("{bad:?} decoded into {} rows", c[0].len()),
            }
            // The next batch decodes cleanly, one row per message.
            assert_eq!(d.decode(&good).unwrap()[0].len(), 3);
        }
    }
}
