//! JSON as nats-server writes it: Go's encoder escapes `<`, `>` and `&` (and U+2028/U+2029)
//! inside strings, so `orders.>` goes out as `"orders.\u003e"`. Field order is the order of
//! the Rust structs, which mirror the Go structs.

use std::io;

use bytes::Bytes;
use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// A compact formatter with Go's HTML-safe string escaping.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serializes `value` the way nats-server would. Serialization of our own response types
/// cannot fail; should it ever, the result is a generic 500 error object, never a panic.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    let mut ser = Serializer::with_formatter(&mut out, GoFormatter);
    match value.serialize(&mut ser) {
        Ok(()) => Bytes::from(out),
        Err(e) => {
            tracing::error!(error = %e, "jetstream: response serialization failed");
            Bytes::from_static(
                br#"{"error":{"code":500,"err_code":10051,"description":"internal error"}}"#,
            )
        }
    }
}

/// Whether a field holds its zero value: `skip_serializing_if` for Go's `omitempty`.
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Deserializes a field that Go would accept as `null` (leaving its zero value).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"s": ["orders.>", "a<b&c", "plain"]});
        assert_eq!(
            &encode(&v)[..],
            br#"{"s":["orders.\u003e","a\u003cb\u0026c","plain"]}"#
        );
    }
}
