//! The format options, declared once for both sides of a message: `value.<suffix>` and
//! `key.<suffix>`.

use super::decl::OptionDecl;

/// Declares each format option once for the value side and once for the key side
/// (`value.<suffix>` / `key.<suffix>`), and the list of suffixes the format parser takes.
macro_rules! format_options {
    ($($name:ident: $suffix:literal, $values:literal, $default:literal, $doc:literal;)*) => {
        /// The `value.*` format options.
        pub mod value_format {
            use super::OptionDecl;
            $(
                #[doc = concat!("`value.", $suffix, "`")]
                pub const $name: OptionDecl = OptionDecl {
                    key: concat!("value.", $suffix),
                    values: $values,
                    default: $default,
                    doc: $doc,
                };
            )*
            /// Every `value.*` format option, with its suffix.
            pub const ALL: &[(&str, &OptionDecl)] = &[$(($suffix, &$name)),*];
        }
        /// The `key.*` format options (the same as `value.*`, applied to message keys).
        pub mod key_format {
            use super::OptionDecl;
            $(
                #[doc = concat!("`key.", $suffix, "`")]
                pub const $name: OptionDecl = OptionDecl {
                    key: concat!("key.", $suffix),
                    values: $values,
                    default: "as for the value",
                    doc: concat!("As `value.", $suffix, "`, for message keys."),
                };
            )*
            /// Every `key.*` format option, with its suffix.
            pub const ALL: &[(&str, &OptionDecl)] = &[$(($suffix, &$name)),*];
        }
    };
}

format_options! {
    FORMAT: "format", "raw | string | json | csv | avro | protobuf",
        "json with a column list, raw without (keys: json for a STRUCT `_key`, string for VARCHAR, else raw)",
        "How messages are decoded into columns (and encoded by INSERT).";
    AVRO_SCHEMA: "avro.schema", "Avro schema JSON", "",
        "The reader schema of an avro format; its fields are the columns.";
    AVRO_SCHEMA_FILE: "avro.schema-file", "path of an .avsc file", "",
        "The reader schema, from a file.";
    AVRO_WRITER_SCHEMA: "avro.writer-schema", "Avro schema JSON", "the reader schema",
        "The schema plain (unframed) Avro messages were written with, when it differs from the reader schema; Avro schema resolution maps it to the reader's columns.";
    AVRO_WRITER_SCHEMA_FILE: "avro.writer-schema-file", "path of an .avsc file", "",
        "The writer schema, from a file.";
    PROTOBUF_SCHEMA_FILE: "protobuf.schema-file", "path of a .proto file or a compiled descriptor set", "",
        "The message types of a protobuf format; imports are looked up beside the file.";
    PROTOBUF_MESSAGE: "protobuf.message", "fully qualified message name", "the first message of the file",
        "Which message type the messages hold.";
    CSV_DELIMITER: "csv.delimiter", "one character", ",",
        "The CSV field separator; each message is one record whose fields are the declared columns in order.";
    CSV_QUOTE: "csv.quote", "one character", "\"",
        "CSV quote character.";
    CSV_ESCAPE: "csv.escape", "one character", "none (quotes are doubled)",
        "CSV escape character inside quotes.";
    CSV_NULL_LITERAL: "csv.null-literal", "text", "the empty field",
        "The CSV field text that stands for NULL.";
    FRAMING: "framing", "none | confluent", "confluent for avro and protobuf when schema-registry.url is set, else none",
        "Confluent's wire format: magic byte, 4-byte schema id (protobuf: message-index path), then the payload. Writer schemas are looked up by id, so schema changes mid-stream decode into the table's columns.";
    SUBJECT: "subject", "registry subject", "<topic>-value / <topic>-key",
        "The subject whose latest schema is the reader schema when no schema option is given, and under which INSERT registers the schema it writes.";
}
