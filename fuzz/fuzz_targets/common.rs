//! Shared by the decoder fuzz targets: splitting the input into messages, resolving a format,
//! and running the decoder the way a scan does (under the lenient policy, so every
//! re-decoding path of the policy layer runs too).

use std::sync::Arc;

use arrow::array::{Array, BinaryArray};
use arrow::datatypes::Schema;
use datafusion_topics::format::{Format, FormatSpec, SchemaRegistry, Side, decode_with_policy};

/// Splits fuzz input into messages: a length byte then that many bytes; 255 is a tombstone.
pub fn messages(data: &[u8]) -> BinaryArray {
    let mut out: Vec<Option<&[u8]>> = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 255 {
            out.push(None);
            rest = tail;
            continue;
        }
        let n = (len as usize).min(tail.len());
        out.push(Some(&tail[..n]));
        rest = &tail[n..];
    }
    BinaryArray::from(out)
}

/// Resolves `options` (keys without the `value.` prefix) for a value format.
pub fn format(
    options: &[(&str, &str)],
    declared: arrow::datatypes::Fields,
    registry: Option<&Arc<SchemaRegistry>>,
) -> Format {
    let mut spec = FormatSpec::default();
    for (k, v) in options {
        assert!(spec.apply(k, k, v).expect("option"), "unknown option {k}");
    }
    futures::executor::block_on(spec.resolve("fuzz", Side::Value, &declared, registry))
        .expect("resolve")
}

/// Decodes `data` as one batch with every projection the scan could ask for (all columns,
/// and the first column alone), checking that the result is row-aligned, and with `encode`
/// encodes the rows back (framed formats would register their schema with a registry).
pub fn run(format: &Format, data: &[u8], encode: bool) {
    let values = messages(data);
    let all = Arc::new(Schema::new(format.fields().clone()));
    let mut projections = vec![Arc::clone(&all)];
    if let Some(first) = format.fields().first() {
        projections.push(Arc::new(Schema::new(vec![first.as_ref().clone()])));
    }
    for projected in projections {
        let mut decoder = format.decoder(&projected, 16).expect("decoder");
        let decoded = match decode_with_policy(&mut *decoder, &values, projected.fields(), false) {
            Ok(d) => d,
            Err(_) => continue,
        };
        for c in &decoded.columns {
            assert_eq!(c.len(), values.len());
        }
        assert!(decoded.bad.iter().all(|(row, _)| *row < values.len()));
        if encode && projected.fields().len() == format.fields().len() {
            let batch = arrow::array::RecordBatch::try_new(Arc::clone(&projected), decoded.columns)
                .expect("batch");
            let encoder = futures::executor::block_on(format.encoder()).expect("encoder");
            let _ = encoder.encode(&batch);
        }
        // A second call on the same decoder starts clean.
        let _ = decode_with_policy(&mut *decoder, &values, projected.fields(), true);
    }
}
