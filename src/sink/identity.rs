//! Deterministic message identities for exactly-once writes: `<query>-<batch>-<content
//! hash>-<n>`, where n counts identical messages within the batch. The identity depends on
//! what a batch writes, not on the order it is written in, so a replayed batch (whose rows
//! may come out in another order) produces the same set of identities.

use std::collections::HashMap;

use super::encode::OutgoingMessage;

/// FNV-1a, 128 bits: stable across builds and platforms (unlike `std`'s hashers).
pub(crate) fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for part in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        for b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= *b as u128;
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

fn content_hash(m: &OutgoingMessage) -> u128 {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(6 + 2 * m.headers.len());
    let partition = m.partition.map(|p| p.to_le_bytes());
    let timestamp = m.timestamp.map(|t| t.to_le_bytes());
    parts.push(m.value.as_deref().unwrap_or(b"\xff-none"));
    parts.push(m.key.as_deref().unwrap_or(b"\xff-none"));
    parts.push(partition.as_ref().map_or(&b"\xff-none"[..], |p| &p[..]));
    parts.push(timestamp.as_ref().map_or(&b"\xff-none"[..], |t| &t[..]));
    parts.push(
        m.subject
            .as_deref()
            .map_or(&b"\xff-none"[..], str::as_bytes),
    );
    for (name, value) in &m.headers {
        parts.push(name.as_bytes());
        parts.push(value);
    }
    fnv1a_128(&parts)
}

/// The identity prefix of every message batch `batch` of query `query_id` writes.
pub fn batch_prefix(query_id: &str, batch: u64) -> String {
    format!("{query_id}-{batch}-")
}

/// One identity per message, in the messages' order.
pub fn identities(query_id: &str, batch: u64, messages: &[OutgoingMessage]) -> Vec<String> {
    let prefix = batch_prefix(query_id, batch);
    let mut seen: HashMap<u128, u32> = HashMap::with_capacity(messages.len());
    messages
        .iter()
        .map(|m| {
            let hash = content_hash(m);
            let n = seen.entry(hash).or_default();
            let id = format!("{prefix}{hash:032x}-{n}");
            *n += 1;
            id
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(v: &str) -> OutgoingMessage {
        OutgoingMessage {
            value: Some(v.as_bytes().to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn order_independent_and_duplicates_counted() {
        let a = [msg("x"), msg("y"), msg("x")];
        let b = [msg("y"), msg("x"), msg("x")];
        let mut ia = identities("q", 3, &a);
        let mut ib = identities("q", 3, &b);
        assert_eq!(ia.len(), 3);
        assert!(ia[0] != ia[2], "duplicates get distinct identities");
        ia.sort();
        ib.sort();
        assert_eq!(ia, ib);
        assert!(ia.iter().all(|i| i.starts_with("q-3-")));
        assert_ne!(identities("q", 4, &a)[0], identities("q", 3, &a)[0]);
        // Where the bytes split matters.
        let mut split = msg("ab");
        split.key = Some(b"c".to_vec());
        let mut other = msg("a");
        other.key = Some(b"bc".to_vec());
        assert_ne!(content_hash(&split), content_hash(&other));
    }
}
