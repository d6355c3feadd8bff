//! The `csv` format: each message is one CSV record whose fields are the declared columns
//! in order, decoded by arrow-csv's push decoder.
//!
//! Fast path as for JSON: every message is pushed into one decoder, checked to add exactly
//! one record, and the batch is parsed once at flush. Parse errors surface at flush; then the
//! batch is parsed message by message to find the bad one.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch};
use arrow::csv::reader::Decoder as ArrowCsvDecoder;
use arrow::csv::{ReaderBuilder, WriterBuilder};
use arrow::datatypes::{Fields, Schema, SchemaRef};

use super::{CsvOptions, DecodeError, Decoder, Encoder};
use crate::error::{Result, TopicsError};

/// Decodes CSV records into the projected columns.
pub(super) struct CsvDecoder {
    all: SchemaRef,
    projection: Vec<usize>,
    options: CsvOptions,
    batch_rows: usize,
    decoder: ArrowCsvDecoder,
}

impl CsvDecoder {
    /// A decoder for records with the columns of `all`, building those of `projected`.
    pub(super) fn try_new(
        all: SchemaRef,
        projected: &SchemaRef,
        options: CsvOptions,
        batch_rows: usize,
    ) -> Result<Self> {
        let projection = projected
            .fields()
            .iter()
            .map(|f| all.index_of(f.name()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let decoder = new_decoder(&all, &projection, &options, batch_rows)?;
        Ok(Self {
            all,
            projection,
            options,
            batch_rows,
            decoder,
        })
    }

    fn reset(&mut self, batch_rows: usize) -> Result<()> {
        self.batch_rows = batch_rows;
        self.decoder = new_decoder(&self.all, &self.projection, &self.options, batch_rows)?;
        Ok(())
    }

    /// Pushes one record; fails unless it adds exactly one complete record.
    fn push(decoder: &mut ArrowCsvDecoder, bytes: &[u8]) -> std::result::Result<(), String> {
        let before = decoder.capacity();
        let failed = |e: arrow::error::ArrowError| without_line_numbers(e.to_string());
        let mut fed = decoder.decode(bytes).map_err(failed)?;
        if !bytes.ends_with(b"\n") {
            fed += decoder.decode(b"\n").map_err(failed)?;
            if fed != bytes.len() + 1 {
                return Err("more than one CSV record in one message".into());
            }
        } else if fed != bytes.len() {
            return Err("more than one CSV record in one message".into());
        }
        match before - decoder.capacity() {
            1 => Ok(()),
            0 => Err("no complete CSV record (empty, or an unterminated quote)".into()),
            _ => Err("more than one CSV record in one message".into()),
        }
    }

    fn locate_failure(&self, values: &BinaryArray, rows: &[usize]) -> Option<(usize, String)> {
        rows.iter().find_map(|&i| {
            let mut single = new_decoder(&self.all, &self.projection, &self.options, 1).ok()?;
            let failed = Self::push(&mut single, values.value(i)).and_then(|_| {
                single
                    .flush()
                    .map(|_| ())
                    .map_err(|e| without_line_numbers(e.to_string()))
            });
            failed.err().map(|reason| (i, reason))
        })
    }
}

/// arrow-csv counts lines across everything its decoder saw; a message is one record, so the
/// count says nothing to the reader and is dropped.
fn without_line_numbers(reason: String) -> String {
    static LINE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r" (for|at) line \d+").expect("static pattern")
    });
    LINE.replace_all(&reason, "").into_owned()
}

fn new_decoder(
    all: &SchemaRef,
    projection: &[usize],
    options: &CsvOptions,
    batch_rows: usize,
) -> Result<ArrowCsvDecoder> {
    let mut builder = ReaderBuilder::new(Arc::clone(all))
        .with_header(false)
        .with_delimiter(options.delimiter)
        .with_quote(options.quote)
        .with_batch_size(batch_rows + 1)
        .with_projection(projection.to_vec());
    if let Some(escape) = options.escape {
        builder = builder.with_escape(escape);
    }
    if !options.null_literal.is_empty() {
        // The empty field stays NULL too (as without a literal).
        let pattern = format!("^$|^{}$", regex::escape(&options.null_literal));
        let regex = regex::Regex::new(&pattern)
            .map_err(|e| TopicsError::InvalidSchema(format!("csv.null-literal: {e}")))?;
        builder = builder.with_null_regex(regex);
    }
    Ok(builder.build_decoder())
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, values: &BinaryArray) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
        if values.len() > self.batch_rows {
            self.reset(values.len())?;
        }
        // Tombstones have no record: they become null rows after the flush.
        let present: Vec<usize> = (0..values.len()).filter(|&i| values.is_valid(i)).collect();
        for &i in &present {
            if let Err(reason) = Self::push(&mut self.decoder, values.value(i)) {
                self.reset(self.batch_rows)?;
                return Err(DecodeError::bad(i, reason));
            }
        }
        let batch = match self.decoder.flush() {
            Ok(Some(batch)) => batch,
            Ok(None) => RecordBatch::new_empty(Arc::new(self.all.project(&self.projection)?)),
            Err(e) => {
                self.reset(self.batch_rows)?;
                let (row, reason) = self
                    .locate_failure(values, &present)
                    .unwrap_or((0, without_line_numbers(e.to_string())));
                return Err(DecodeError::bad(row, reason));
            }
        };
        super::spread_over_tombstones(batch.columns(), values)
    }
}

/// Writes each row as one CSV record (no header, no line terminator).
pub(super) struct CsvEncoder {
    schema: SchemaRef,
    options: CsvOptions,
}

impl CsvEncoder {
    /// An encoder for rows with the columns `fields`, in that order.
    pub(super) fn new(fields: Fields, options: CsvOptions) -> Self {
        Self {
            schema: Arc::new(Schema::new(fields)),
            options,
        }
    }
}

impl Encoder for CsvEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let projected = super::columns_by_name(batch, &self.schema)?;
        (0..projected.num_rows())
            .map(|row| {
                let mut buf = Vec::with_capacity(64);
                let mut builder = WriterBuilder::new()
                    .with_header(false)
                    .with_delimiter(self.options.delimiter)
                    .with_quote(self.options.quote)
                    .with_null(self.options.null_literal.clone());
                if let Some(escape) = self.options.escape {
                    builder = builder.with_escape(escape).with_double_quote(false);
                }
                builder.build(&mut buf).write(&projected.slice(row, 1))?;
                if buf.ends_with(b"\n") {
                    buf.pop();
                }
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
                Ok(Some(buf))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]))
    }

    #[test]
    fn decodes_records_with_projection_and_tombstones() {
        let projected = Arc::new(schema().project(&[1, 0]).unwrap());
        let mut d = CsvDecoder::try_new(schema(), &projected, CsvOptions::default(), 8).unwrap();
        let values = BinaryArray::from(vec![
            Some(&b"1,\"a, quoted\",0.5"[..]),
            None,
            Some(b"3,c,\n"),
            Some(b"4,,1e3"),
        ]);
        let cols = d.decode(&values).unwrap();
        let names = cols[0].as_string::<i32>();
        let ids = cols[1].as_primitive::<Int64Type>();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            vec![Some("a, quoted"), None, Some("c"), None]
        );
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![Some(1), None, Some(3), Some(4)]
        );
    }

    #[test]
    fn bad_records_are_attributed() {
        let mut d = CsvDecoder::try_new(schema(), &schema(), CsvOptions::default(), 8).unwrap();
        for (bad, why) in [
            (&b"2,b"[..], "fields"),
            (b"2,b,1\n3,c,2", "more than one"),
            (b"x,b,1", "x"),
            (b"2,\"b,1", "unterminated"),
            (b"", "empty"),
        ] {
            let values = BinaryArray::from(vec![Some(&b"1,a,1"[..]), Some(bad), Some(b"3,c,3")]);
            match d.decode(&values) {
                Err(DecodeError::Bad { row, reason }) => {
                    assert_eq!(row, 1, "{reason}");
                    assert!(reason.contains(why), "{why}: {reason}");
                }
                Err(DecodeError::Failed(e)) => panic!("{e}"),
                Ok(_) => panic!("{bad:?} decoded"),
            }
            // The decoder recovers for the next batch.
            let good = BinaryArray::from(vec![Some(&b"5,e,5"[..])]);
            assert_eq!(d.decode(&good).unwrap()[0].len(), 1);
        }
    }

    #[test]
    fn encodes_what_it_decodes() {
        let options = CsvOptions {
            delimiter: b';',
            null_literal: "NULL".into(),
            ..Default::default()
        };
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![Some("a;b \"q\""), Some("")])),
                Arc::new(arrow::array::Float64Array::from(vec![Some(0.25), None])),
            ],
        )
        .unwrap();
        let encoded = CsvEncoder::new(schema().fields().clone(), options.clone())
            .encode(&batch)
            .unwrap();
        assert_eq!(
            encoded[0].as_deref(),
            Some(&b"1;\"a;b \"\"q\"\"\";0.25"[..])
        );
        let values = BinaryArray::from_iter(encoded);
        let mut d = CsvDecoder::try_new(schema(), &schema(), options, 8).unwrap();
        let cols = d.decode(&values).unwrap();
        let back = RecordBatch::try_new(schema(), cols).unwrap();
        assert_eq!(back.column(0), batch.column(0));
        assert_eq!(back.column(1).as_string::<i32>().value(0), "a;b \"q\"");
        assert_eq!(back.column(2), batch.column(2));
    }
}
