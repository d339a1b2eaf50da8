//! Reading Redis replies without trusting their shape.
//!
//! Whatever is in Redis may have been written by another version, by hand,
//! or half-lost: a reply of an unexpected shape is an error for the caller
//! to report, and a malformed entry is skipped, never a panic.

use redis::Value;

/// The bytes of a string reply, `None` for nil or anything else.
pub(crate) fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// An integer reply (or a string holding one).
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

/// A number parsed from a string reply.
pub(crate) fn parse<T: std::str::FromStr>(value: &Value) -> Option<T> {
    std::str::from_utf8(bytes(value)?).ok()?.parse().ok()
}

/// The elements of an array or set reply.
pub(crate) fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// The field-value pairs of a hash reply (a RESP3 map, or a RESP2 flat
/// array of field, value, field, value...).
pub(crate) fn pairs(value: &Value) -> Option<Vec<(&Value, &Value)>> {
    match value {
        Value::Map(pairs) => Some(pairs.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(flat) if flat.len() % 2 == 0 => {
            Some(flat.chunks_exact(2).filter_map(|kv| Some((kv.first()?, kv.get(1)?))).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn shapes() {
        assert_eq!(int(&Value::Int(3)), Some(3));
        assert_eq!(int(&s("12")), Some(12));
        assert_eq!(int(&Value::Nil), None);
        assert_eq!(parse::<u16>(&s("70000")), None);
        assert_eq!(pairs(&Value::Array(vec![s("1"), s("2")])).map(|p| p.len()), Some(1));
        assert!(pairs(&Value::Array(vec![s("1")])).is_none());
        assert!(items(&Value::Okay).is_none());
    }
}
