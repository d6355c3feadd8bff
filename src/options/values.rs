//! Parsers of option values shared by every table type: each error names the option.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::{Result, TopicsError};

fn invalid(key: &str, value: &str, reason: &str) -> TopicsError {
    TopicsError::invalid_option(key, value, reason)
}

/// Parses `partition:0,offset:42;partition:1,offset:7`.
pub(crate) fn parse_specific_offsets(key: &str, value: &str) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    let expected = "expected 'partition:<p>,offset:<o>' entries separated by ';'";
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for part in entry.split(',').map(str::trim) {
            match part.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("partition", p)) => partition = p.parse::<i32>().ok().filter(|p| *p >= 0),
                Some(("offset", o)) => offset = o.parse::<i64>().ok().filter(|o| *o >= 0),
                _ => {
                    return Err(invalid(
                        key,
                        value,
                        &format!("bad entry '{entry}': {expected}"),
                    ));
                }
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) => {
                if out.insert(p, o).is_some() {
                    return Err(invalid(
                        key,
                        value,
                        &format!("partition {p} is listed twice"),
                    ));
                }
            }
            _ => {
                return Err(invalid(
                    key,
                    value,
                    &format!("bad entry '{entry}': {expected}"),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(invalid(key, value, expected));
    }
    Ok(out)
}

/// Parses a positive duration such as `250ms`, `10s` or `2m`.
pub(crate) fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let d = parse_duration_allow_zero(key, value)?;
    if d.is_zero() {
        return Err(invalid(
            key,
            value,
            "the duration must be greater than zero",
        ));
    }
    Ok(d)
}

/// Parses a duration such as `0s`, `250ms`, `10s`, `2m` or `1h`.
pub(crate) fn parse_duration_allow_zero(key: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(key, value, "expected a duration such as 500ms, 10s or 2m"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(invalid(
                key,
                value,
                "expected a duration such as 500ms, 10s or 2m",
            ));
        }
    };
    Ok(d)
}

/// Parses an integer.
pub(crate) fn parse_i64(key: &str, value: &str) -> Result<i64> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "expected an integer"))
}

/// Parses a count from 1 to `max`.
pub(crate) fn parse_count(key: &str, value: &str, max: i32) -> Result<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| invalid(key, value, &format!("expected a number from 1 to {max}")))
}

/// Parses `true` or `false`.
pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// A value that must not be empty.
#[cfg_attr(not(any(feature = "kafka", feature = "nats")), allow(dead_code))]
pub(crate) fn non_empty(key: &str, value: &str) -> Result<String> {
    if value.trim().is_empty() {
        Err(invalid(key, value, "must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

/// The path of a file that exists.
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) fn existing_file(key: &str, value: &str) -> Result<String> {
    if std::path::Path::new(value).is_file() {
        Ok(value.to_string())
    } else {
        Err(invalid(key, value, "no such file"))
    }
}

/// An option another option's value requires.
pub(crate) fn missing(key: &str, mode_key: &str, mode: &str) -> TopicsError {
    TopicsError::InvalidOption {
        key: key.to_string(),
        value: String::new(),
        reason: format!("required when '{mode_key}' is '{mode}'"),
    }
}

/// Two options that only work together.
pub(crate) fn missing_pair(a: &str, b: &str) -> TopicsError {
    TopicsError::InvalidOption {
        key: a.to_string(),
        value: String::new(),
        reason: format!("'{a}' and '{b}' go together"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("k", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("k", "3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("k", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        assert!(parse_duration("k", "0s").is_err());
        assert!(parse_duration("k", "5").is_err());
    }

    #[test]
    fn secret_values_never_echoed() {
        let e = invalid("sasl.password", "hunter2", "bad").to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn specific_offsets() {
        assert_eq!(
            parse_specific_offsets("k", "partition:0,offset:42;partition:1,offset:7;").unwrap(),
            [(0, 42), (1, 7)].into()
        );
        let e = parse_specific_offsets("k", "partition:x,offset:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("partition:x"), "{e}");
    }
}
