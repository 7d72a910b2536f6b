//! [`Data`], the bytes of a proposal: serialized as one byte string rather than serde's
//! default for `Vec<u8>`, a sequence visited one byte at a time (several passes over
//! every replicated message: the log, the transport and the machine). Postcard writes both
//! the same way (a varint length, then the bytes), so logs written before read back.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes a group's machine encodes: a proposal, or a part of one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Data(pub Vec<u8>);

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Self {
        Data(v)
    }
}

impl std::ops::Deref for Data {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_byte_buf(BytesVisitor).map(Data)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    /// Self-describing formats (JSON) write bytes as a sequence of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The size hint comes from the input: capped, as any number from outside.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_writes_data_as_it_wrote_a_byte_vector() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let v: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let old = postcard::to_stdvec(&v).unwrap();
            let new = postcard::to_stdvec(&Data(v.clone())).unwrap();
            assert_eq!(old, new, "len {len}");
            assert_eq!(postcard::from_bytes::<Data>(&old).unwrap(), Data(v));
        }
        // Inside other types too (an option, a tuple).
        let t = (String::from("s"), Some(vec![1u8, 2]), vec![3u8]);
        let d = (String::from("s"), Some(Data(vec![1, 2])), Data(vec![3]));
        assert_eq!(
            postcard::to_stdvec(&t).unwrap(),
            postcard::to_stdvec(&d).unwrap()
        );
    }

    #[test]
    fn json_round_trips_and_a_truncated_input_is_an_error() {
        let d = Data(vec![0, 255, 7]);
        let j = serde_json::to_vec(&d).unwrap();
        assert_eq!(serde_json::from_slice::<Data>(&j).unwrap(), d);
        let p = postcard::to_stdvec(&Data(vec![9; 40])).unwrap();
        assert!(postcard::from_bytes::<Data>(&p[..20]).is_err());
    }
}
