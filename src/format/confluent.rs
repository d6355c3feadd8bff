//! Confluent's wire format: magic byte `0`, a 4-byte big-endian schema id, then the payload
//! (protobuf payloads start with the index path of the message type within its file).

/// Bytes before the payload: magic byte and schema id.
pub(super) const HEADER_LEN: usize = 5;

/// Splits a framed message into its schema id and payload.
pub(super) fn split(bytes: &[u8]) -> Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [m, ..] if bytes.len() >= HEADER_LEN => Err(format!(
            "not in the Confluent wire format: magic byte is {m}, not 0"
        )),
        _ => Err(format!(
            "not in the Confluent wire format: {} bytes is shorter than its 5-byte header",
            bytes.len()
        )),
    }
}

/// The schema id of a framed message, if it has a header.
pub(super) fn schema_id(bytes: &[u8]) -> Option<u32> {
    split(bytes).ok().map(|(id, _)| id)
}

/// Appends the header naming schema `id`.
pub(super) fn write_header(id: u32, out: &mut Vec<u8>) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

/// Reads a zig-zag varint (as the protobuf message-index path is written).
fn read_zigzag(bytes: &[u8]) -> Result<(i64, usize), String> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((((value >> 1) as i64) ^ -((value & 1) as i64), i + 1));
        }
    }
    Err("malformed message-index varint in the Confluent protobuf header".into())
}

fn write_zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Splits a protobuf payload into its message-index path (`[0]` = the file's first message)
/// and the message bytes.
pub(super) fn split_message_indexes(payload: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let (count, mut at) = read_zigzag(payload)?;
    if count == 0 {
        return Ok((vec![0], &payload[at..]));
    }
    if !(1..=64).contains(&count) {
        return Err(format!(
            "message-index path of length {count} in the Confluent protobuf header"
        ));
    }
    let mut path = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (index, n) = read_zigzag(&payload[at..])?;
        let index = usize::try_from(index).map_err(|_| {
            format!("negative message index {index} in the Confluent protobuf header")
        })?;
        path.push(index);
        at += n;
    }
    Ok((path, &payload[at..]))
}

/// Appends the message-index path (the single `0` byte for `[0]`).
pub(super) fn write_message_indexes(path: &[usize], out: &mut Vec<u8>) {
    if path == [0] {
        out.push(0);
        return;
    }
    write_zigzag(path.len() as i64, out);
    for &i in path {
        write_zigzag(i as i64, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_indexes_round_trip() {
        let mut out = Vec::new();
        write_header(0x01020304, &mut out);
        write_message_indexes(&[1, 2], &mut out);
        out.extend_from_slice(b"body");
        let (id, payload) = split(&out).unwrap();
        assert_eq!(id, 0x01020304);
        let (path, body) = split_message_indexes(payload).unwrap();
        assert_eq!((path, body), (vec![1, 2], &b"body"[..]));
        let (path, body) = split_message_indexes(&[0, 7]).unwrap();
        assert_eq!((path, body), (vec![0], &[7u8][..]));
        assert!(split(&[1, 0, 0, 0, 1]).unwrap_err().contains("magic"));
        assert!(split(&[0, 0]).unwrap_err().contains("shorter"));
        assert!(split_message_indexes(&[0xff; 11]).is_err());
        assert!(split_message_indexes(&[0x7e]).is_err());
    }
}
