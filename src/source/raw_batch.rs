//! Columnar raw messages: offsets, timestamps, keys, values and headers of one partition,
//! appended into Arrow builders (contiguous buffers, no allocation per message).

use arrow::array::{
    Array, ArrayBuilder, BinaryArray, BinaryBuilder, Int64Array, Int64Builder, MapArray,
    MapBuilder, StringArray, StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use arrow::datatypes::DataType;

/// Which raw columns a scan needs; the others are never built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnNeeds {
    /// `_timestamp`.
    pub timestamp: bool,
    /// `_key`.
    pub key: bool,
    /// The value bytes (needed by any value column).
    pub value: bool,
    /// `_headers`.
    pub headers: bool,
    /// `_subject` (NATS).
    pub subject: bool,
}

impl ColumnNeeds {
    /// Every column.
    pub fn all() -> Self {
        Self {
            timestamp: true,
            key: true,
            value: true,
            headers: true,
            subject: true,
        }
    }
}

/// A batch of raw messages from one partition, in offset order.
#[derive(Debug, Clone)]
pub struct RawBatch {
    /// The partition the messages come from.
    pub partition: i32,
    /// Message offsets (always present).
    pub offsets: Int64Array,
    /// Message timestamps in milliseconds (null where the broker has none).
    pub timestamps: Option<TimestampMillisecondArray>,
    /// Message keys (null for no key).
    pub keys: Option<BinaryArray>,
    /// Message values (null for tombstones).
    pub values: Option<BinaryArray>,
    /// Message headers.
    pub headers: Option<MapArray>,
    /// NATS subjects.
    pub subjects: Option<StringArray>,
    /// Key, value and header bytes received for these messages.
    pub bytes: u64,
    /// Offsets skipped before these messages because they were removed (data loss allowed).
    pub skipped: u64,
    /// The newest message timestamp among these messages (ms), whether or not the query
    /// reads `_timestamp`: how far behind the log's head a reader is, in time.
    pub newest_ms: Option<i64>,
}

impl RawBatch {
    /// Number of messages.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// The Arrow type of the `_headers` column: map from header name to bytes.
pub fn headers_data_type() -> DataType {
    new_headers_builder(0).finish().data_type().clone()
}

fn new_headers_builder(capacity: usize) -> MapBuilder<StringBuilder, BinaryBuilder> {
    MapBuilder::new(
        None,
        StringBuilder::with_capacity(capacity, 0),
        BinaryBuilder::new(),
    )
}

/// Builds a [`RawBatch`] message by message, materialising only the needed columns.
pub struct RawBatchBuilder {
    partition: i32,
    offsets: Int64Builder,
    timestamps: Option<TimestampMillisecondBuilder>,
    keys: Option<BinaryBuilder>,
    values: Option<BinaryBuilder>,
    headers: Option<MapBuilder<StringBuilder, BinaryBuilder>>,
    subjects: Option<StringBuilder>,
    bytes: u64,
    skipped: u64,
    newest_ms: Option<i64>,
    capacity: usize,
}

impl RawBatchBuilder {
    /// A builder for up to `capacity` messages of `partition`.
    pub fn new(partition: i32, needs: ColumnNeeds, capacity: usize) -> Self {
        Self {
            partition,
            offsets: Int64Builder::with_capacity(capacity),
            timestamps: needs
                .timestamp
                .then(|| TimestampMillisecondBuilder::with_capacity(capacity)),
            keys: needs.key.then(|| BinaryBuilder::with_capacity(capacity, 0)),
            values: needs
                .value
                .then(|| BinaryBuilder::with_capacity(capacity, capacity * 64)),
            headers: needs.headers.then(|| new_headers_builder(capacity)),
            subjects: needs
                .subject
                .then(|| StringBuilder::with_capacity(capacity, 0)),
            bytes: 0,
            skipped: 0,
            newest_ms: None,
            capacity,
        }
    }

    /// Appends one message; `headers` is only iterated when headers are needed.
    pub fn append<'a, H, I>(
        &mut self,
        offset: i64,
        timestamp_ms: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) where
        H: FnOnce() -> I,
        I: Iterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        self.offsets.append_value(offset);
        self.bytes += (key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len)) as u64;
        if let Some(t) = timestamp_ms {
            self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
        }
        if let Some(b) = &mut self.timestamps {
            b.append_option(timestamp_ms);
        }
        if let Some(b) = &mut self.keys {
            b.append_option(key);
        }
        if let Some(b) = &mut self.values {
            b.append_option(value);
        }
        if let Some(b) = &mut self.headers {
            for (name, v) in headers() {
                self.bytes += (name.len() + v.map_or(0, <[u8]>::len)) as u64;
                b.keys().append_value(name);
                b.values().append_option(v);
            }
            // A map row is always valid; appending to a fresh builder cannot fail.
            let _ = b.append(true);
        }
    }

    /// Appends the NATS subject of the message just appended.
    pub fn append_subject(&mut self, subject: &str) {
        if let Some(b) = &mut self.subjects {
            b.append_value(subject);
        }
    }

    /// Records offsets skipped because they were removed; reported with the next batch.
    pub fn skip(&mut self, offsets: u64) {
        self.skipped += offsets;
    }

    /// True when there is something to report: messages or skipped offsets.
    pub fn has_news(&self) -> bool {
        !self.is_empty() || self.skipped > 0
    }

    /// Messages appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when nothing was appended since the last [`Self::finish`].
    pub fn is_empty(&self) -> bool {
        self.offsets.len() == 0
    }

    /// True when the batch reached its capacity.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// The last offset appended, if any.
    pub fn last_offset(&self) -> Option<i64> {
        self.offsets.values_slice().last().copied()
    }

    /// Takes the appended messages as a batch and resets the builder.
    pub fn finish(&mut self) -> RawBatch {
        let batch = RawBatch {
            partition: self.partition,
            offsets: self.offsets.finish(),
            timestamps: self
                .timestamps
                .as_mut()
                .map(|b| b.finish().with_timezone("UTC")),
            keys: self.keys.as_mut().map(BinaryBuilder::finish),
            values: self.values.as_mut().map(BinaryBuilder::finish),
            headers: self.headers.as_mut().map(MapBuilder::finish),
            subjects: self.subjects.as_mut().map(StringBuilder::finish),
            bytes: self.bytes,
            skipped: self.skipped,
            newest_ms: self.newest_ms.take(),
        };
        self.bytes = 0;
        self.skipped = 0;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn builds_only_needed_columns() {
        let needs = ColumnNeeds {
            key: true,
            headers: true,
            ..Default::default()
        };
        let mut b = RawBatchBuilder::new(3, needs, 4);
        b.append(10, Some(5), Some(b"k"), Some(b"v"), || {
            [("h", Some(&b"x"[..])), ("n", None)].into_iter()
        });
        b.append(11, None, None, None, std::iter::empty);
        assert_eq!(b.last_offset(), Some(11));
        let batch = b.finish();
        assert_eq!(batch.len(), 2);
        assert!(batch.values.is_none() && batch.timestamps.is_none());
        let keys = batch.keys.unwrap();
        assert_eq!(keys.value(0), b"k");
        assert!(keys.is_null(1));
        let headers = batch.headers.unwrap();
        assert_eq!(headers.value_length(0), 2);
        assert_eq!(headers.value_length(1), 0);
        assert_eq!(headers.data_type(), &headers_data_type());
        assert_eq!(batch.bytes, 1 + 1 + 2 + 1);
    }
}
