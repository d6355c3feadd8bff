//! The bad-message policy (`value.on-error`): fail, skip, or keep bad messages as dead
//! letters. Decoding stays batch-wise: a bad message splits its batch into the good run
//! before it (decoded in one call) and the rest (decoded in the next), so a few corrupt
//! messages among thousands cost a few extra decoder calls, not a per-message fallback.

use arrow::array::{Array, ArrayRef, BinaryArray, new_null_array};
use arrow::datatypes::Fields;

use super::{DecodeError, Decoder};
use crate::error::{Result, TopicsError};

/// What a scan does with a message its key or value format cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorPolicy {
    /// Fail the query; the error names topic, partition, offset and the decoder's complaint.
    #[default]
    Fail,
    /// Leave the message out and count it in the `messages_bad` metric.
    Skip,
    /// Keep the message as a row whose decoded columns are null, with `_error` (the
    /// complaint) and `_raw` (the bytes that failed) set.
    DeadLetter,
}

impl ErrorPolicy {
    /// Parses `fail`, `skip` or `dead-letter`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "fail" => Some(Self::Fail),
            "skip" | "ignore" => Some(Self::Skip),
            "dead-letter" | "dead_letter" | "dlq" => Some(Self::DeadLetter),
            _ => None,
        }
    }
}

/// Columns decoded under a lenient policy, with the rows that failed.
#[derive(Debug)]
pub struct Decoded {
    /// The decoded columns; rows of bad messages are null.
    pub columns: Vec<ArrayRef>,
    /// Bad messages: row and the decoder's complaint, in row order.
    pub bad: Vec<(usize, String)>,
}

/// Decodes `bytes` into columns of `fields`. With `fail_fast` the first bad message is
/// returned as `Err(Bad)`; otherwise every bad message becomes a null row listed in `bad`.
pub fn decode_with_policy(
    decoder: &mut dyn Decoder,
    bytes: &BinaryArray,
    fields: &Fields,
    fail_fast: bool,
) -> std::result::Result<Decoded, DecodeError> {
    let first = match decoder.decode(bytes) {
        Ok(columns) => {
            return Ok(Decoded {
                columns,
                bad: Vec::new(),
            });
        }
        Err(DecodeError::Bad { .. }) if fail_fast => return Err(first_error(decoder, bytes)),
        Err(e) => e,
    };
    // Pieces in row order: decoded runs of good messages and single bad rows.
    let mut pieces: Vec<Piece> = Vec::new();
    let mut bad = Vec::new();
    // Work in reverse row order (a stack): runs [start, end) to decode, and bad rows.
    let mut pending: Vec<Pending> = Vec::new();
    let mut failure = Some((0, bytes.len(), first));
    loop {
        if let Some((start, end, error)) = failure.take() {
            let DecodeError::Bad { row, reason } = error else {
                return Err(error);
            };
            let at = start + row;
            if at >= end {
                return Err(DecodeError::Failed(TopicsError::internal(format!(
                    "decoder reported row {row} of a run of {} messages",
                    end - start
                ))));
            }
            if at + 1 < end {
                pending.push(Pending::Run(at + 1, end));
            }
            pending.push(Pending::Bad);
            bad.push((at, reason));
            if at > start {
                pending.push(Pending::Run(start, at));
            }
        }
        let (start, end) = match pending.pop() {
            None => break,
            Some(Pending::Bad) => {
                pieces.push(Piece::Bad);
                continue;
            }
            Some(Pending::Run(start, end)) => (start, end),
        };
        match decoder.decode(&bytes.slice(start, end - start)) {
            Ok(columns) => pieces.push(Piece::Good(columns)),
            Err(e) => failure = Some((start, end, e)),
        }
    }
    let columns = fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let parts: Vec<ArrayRef> = pieces
                .iter()
                .map(|p| match p {
                    Piece::Good(columns) => columns[i].clone(),
                    Piece::Bad => new_null_array(field.data_type(), 1),
                })
                .collect();
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            arrow::compute::concat(&refs)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // A run that fails again reports rows before ones found earlier.
    bad.sort_by_key(|(row, _)| *row);
    Ok(Decoded { columns, bad })
}

enum Pending {
    Run(usize, usize),
    Bad,
}

/// The first bad message of `bytes`, by row: the decoder may report a later row first when
/// its errors surface at different stages, so narrow down to the earliest.
fn first_error(decoder: &mut dyn Decoder, bytes: &BinaryArray) -> DecodeError {
    let mut best: Option<DecodeError> = None;
    let mut end = bytes.len();
    while end > 0 {
        match decoder.decode(&bytes.slice(0, end)) {
            Ok(_) => break,
            Err(DecodeError::Bad { row, reason }) => {
                end = row;
                best = Some(DecodeError::Bad { row, reason });
            }
            Err(e) => return e,
        }
    }
    best.unwrap_or_else(|| DecodeError::bad(0, "the batch failed to decode"))
}

enum Piece {
    Good(Vec<ArrayRef>),
    Bad,
}

/// Checks that a batch of decoded columns is row-aligned with its input.
pub(crate) fn check_rows(columns: &[ArrayRef], rows: usize) -> Result<()> {
    match columns.iter().find(|c| c.len() != rows) {
        Some(c) => Err(TopicsError::internal(format!(
            "a decoder returned {} rows for {rows} messages",
            c.len()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type};

    use super::*;

    /// Decodes ASCII digits; anything else is bad.
    struct Digits;

    impl Decoder for Digits {
        fn decode(
            &mut self,
            bytes: &BinaryArray,
        ) -> std::result::Result<Vec<ArrayRef>, DecodeError> {
            let mut out = Vec::new();
            for (row, b) in bytes.iter().enumerate() {
                let text = std::str::from_utf8(b.unwrap_or(b"0")).unwrap_or("x");
                out.push(text.parse::<i64>().map_err(|e| DecodeError::bad(row, e))?);
            }
            Ok(vec![Arc::new(Int64Array::from(out))])
        }
    }

    fn input(items: &[&str]) -> BinaryArray {
        BinaryArray::from_iter_values(items.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn bad_rows_become_nulls_in_place() {
        let fields = Fields::from(vec![Field::new("n", DataType::Int64, true)]);
        let bytes = input(&["1", "x", "3", "4", "y", "z", "7"]);
        let d = decode_with_policy(&mut Digits, &bytes, &fields, false).unwrap();
        let n = d.columns[0].as_primitive::<Int64Type>();
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            vec![Some(1), None, Some(3), Some(4), None, None, Some(7)]
        );
        assert_eq!(
            d.bad.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            vec![1, 4, 5]
        );
        assert!(d.bad[0].1.contains("invalid digit"), "{:?}", d.bad);
        let d = decode_with_policy(&mut Digits, &input(&["x"]), &fields, false).unwrap();
        assert_eq!(d.columns[0].null_count(), 1);
        match decode_with_policy(&mut Digits, &bytes, &fields, true) {
            Err(DecodeError::Bad { row, .. }) => assert_eq!(row, 1),
            other => panic!("{other:?}"),
        }
    }
}
