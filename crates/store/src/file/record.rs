//! Self-checking block records (see FORMAT.md): encode, decode with every check, and erase
//! in place. A message record's headers and payload may be stored Snappy-compressed (S2
//! streams, `Kind::Compressed`): the CRC covers the compressed bytes, so corruption is
//! detected before anything is decompressed.
//!
//! ```text
//! len u32 | seq u64 | ts i64 | flags u8 | subj_len u16 | hdr_len u32 | subject | headers | payload | crc32 u32
//! ```
//! Little-endian; `len` counts the whole record including itself and the CRC; the CRC-32
//! (IEEE) covers every byte before it, the length included, so an all-zero record fails.

/// Bytes before the subject.
pub(crate) const HEADER_LEN: usize = 27;
/// Header plus trailing CRC: the size of a record with no subject, headers or payload.
pub(crate) const OVERHEAD: usize = HEADER_LEN + 4;
/// Largest record accepted (a sanity bound against corrupt lengths).
pub(crate) const MAX_RECORD_LEN: usize = 256 << 20;

const FLAG_ERASED: u8 = 0x01;
const FLAG_TOMBSTONE: u8 = 0x02;
const FLAG_FLOOR: u8 = 0x04;
const FLAG_COMPRESSED: u8 = 0x08;
/// Bodies (headers + payload) shorter than this are never compressed: too small to gain.
pub(crate) const COMPRESS_MIN: usize = 64;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message (`flags = 0`).
    Msg,
    /// A message whose subject, headers and payload were overwritten with zeros; deleted.
    Erased,
    /// Delete marker for the message `seq` (no body).
    Tombstone,
    /// Every message below `seq` is deleted (purge/compact/first_seq/limits); no body.
    Floor,
    /// A message whose headers and payload are one Snappy (raw) block; `hdr_len` is the
    /// uncompressed header length (`flags = 0x08`).
    Compressed,
}

impl Kind {
    /// A message record, plain or compressed.
    pub(crate) fn is_msg(self) -> bool {
        matches!(self, Kind::Msg | Kind::Compressed)
    }
}

impl Kind {
    fn flags(self) -> u8 {
        match self {
            Kind::Msg => 0,
            Kind::Erased => FLAG_ERASED,
            Kind::Tombstone => FLAG_TOMBSTONE,
            Kind::Floor => FLAG_FLOOR,
            Kind::Compressed => FLAG_COMPRESSED,
        }
    }

    fn from_flags(flags: u8) -> Option<Kind> {
        match flags {
            0 => Some(Kind::Msg),
            FLAG_ERASED => Some(Kind::Erased),
            FLAG_TOMBSTONE => Some(Kind::Tombstone),
            FLAG_FLOOR => Some(Kind::Floor),
            FLAG_COMPRESSED => Some(Kind::Compressed),
            _ => None,
        }
    }
}

/// A decoded, verified record borrowing its buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub(crate) seq: u64,
    pub(crate) ts: i64,
    pub(crate) kind: Kind,
    pub(crate) subject: &'a [u8],
    /// Plain records: the headers. Compressed: empty.
    pub(crate) headers: &'a [u8],
    /// Plain records: the payload. Compressed: the compressed headers and payload.
    pub(crate) payload: &'a [u8],
    /// Lengths of the headers and payload once decompressed.
    pub(crate) plain: (usize, usize),
}

impl RecordRef<'_> {
    /// The headers and payload as stored by the publisher: borrowed, or decompressed.
    pub(crate) fn body(&self) -> Result<(Vec<u8>, usize), &'static str> {
        if self.kind != Kind::Compressed {
            let mut v = Vec::with_capacity(self.headers.len() + self.payload.len());
            v.extend_from_slice(self.headers);
            v.extend_from_slice(self.payload);
            return Ok((v, self.headers.len()));
        }
        let v = snap::raw::Decoder::new()
            .decompress_vec(self.payload)
            .map_err(|_| "bad compressed body")?;
        if v.len() != self.plain.0 + self.plain.1 {
            return Err("bad compressed body");
        }
        Ok((v, self.plain.0))
    }
}

/// Snappy-compresses `headers ‖ payload` when that saves space; `None` otherwise.
pub(crate) fn compress(headers: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    let n = headers.len() + payload.len();
    if n < COMPRESS_MIN {
        return None;
    }
    let mut plain = Vec::with_capacity(n);
    plain.extend_from_slice(headers);
    plain.extend_from_slice(payload);
    let packed = snap::raw::Encoder::new().compress_vec(&plain).ok()?;
    (packed.len() < n).then_some(packed)
}

/// Size of the encoded record.
pub(crate) fn encoded_len(subject: usize, headers: usize, payload: usize) -> usize {
    OVERHEAD + subject + headers + payload
}

/// Appends one record to `out`. The caller guarantees the length bounds
/// (`subject <= u16::MAX`, total `<= MAX_RECORD_LEN`).
#[cfg(test)]
pub(crate) fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    kind: Kind,
    subject: &[u8],
    headers: &[u8],
    payload: &[u8],
) {
    encode_parts(
        out,
        seq,
        ts,
        kind,
        subject,
        headers.len(),
        &[headers, payload],
    );
}

/// Appends one record whose `hdr_len` field is `hdr_len` and whose body after the subject
/// is `parts` (a compressed record: the uncompressed header length and the blob).
pub(crate) fn encode_parts(
    out: &mut Vec<u8>,
    seq: u64,
    ts: i64,
    kind: Kind,
    subject: &[u8],
    hdr_len: usize,
    parts: &[&[u8]],
) {
    let start = out.len();
    let len = OVERHEAD + subject.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.push(kind.flags());
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(hdr_len as u32).to_le_bytes());
    out.extend_from_slice(subject);
    for p in parts {
        out.extend_from_slice(p);
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Reads and sanity-checks the length field from the first 4 bytes of a record.
pub(crate) fn read_len(head: &[u8]) -> Result<usize, &'static str> {
    if head.len() < 4 {
        return Err("truncated length");
    }
    let len = u32_at(head, 0) as usize;
    if len < OVERHEAD {
        return Err("length below minimum");
    }
    if len > MAX_RECORD_LEN {
        return Err("length above maximum");
    }
    Ok(len)
}

/// Decodes a whole record (`rec` is exactly one record) and runs every check: length field,
/// CRC, flags, inner lengths, empty body for markers.
pub(crate) fn decode(rec: &[u8]) -> Result<RecordRef<'_>, &'static str> {
    let len = read_len(rec)?;
    if len != rec.len() {
        return Err("length mismatch");
    }
    let body_end = len - 4;
    if crc32fast::hash(&rec[..body_end]) != u32_at(rec, body_end) {
        return Err("crc mismatch");
    }
    let seq = u64_at(rec, 4);
    let ts = u64_at(rec, 12) as i64;
    let kind = Kind::from_flags(rec[20]).ok_or("unknown flags")?;
    let subj_len = u16_at(rec, 21) as usize;
    let hdr_len = u32_at(rec, 23) as usize;
    if matches!(kind, Kind::Tombstone | Kind::Floor) && len != OVERHEAD {
        return Err("marker with a body");
    }
    if matches!(kind, Kind::Msg | Kind::Erased | Kind::Compressed) && subj_len == 0 {
        return Err("message without subject");
    }
    let s = HEADER_LEN;
    let h = s + subj_len;
    if kind == Kind::Compressed {
        let Some(blob_len) = (len - OVERHEAD).checked_sub(subj_len) else {
            return Err("inner lengths exceed record");
        };
        let blob = &rec[h..h + blob_len];
        let total = snap::raw::decompress_len(blob).map_err(|_| "bad compressed length")?;
        if hdr_len > total || total > MAX_RECORD_LEN {
            return Err("bad compressed length");
        }
        return Ok(RecordRef {
            seq,
            ts,
            kind,
            subject: &rec[s..h],
            headers: &[],
            payload: blob,
            plain: (hdr_len, total - hdr_len),
        });
    }
    let Some(payload_len) = (len - OVERHEAD)
        .checked_sub(subj_len)
        .and_then(|r| r.checked_sub(hdr_len))
    else {
        return Err("inner lengths exceed record");
    };
    let p = h + hdr_len;
    Ok(RecordRef {
        seq,
        ts,
        kind,
        subject: &rec[s..h],
        headers: &rec[h..p],
        payload: &rec[p..p + payload_len],
        plain: (hdr_len, payload_len),
    })
}

/// Turns a verified message record into an erased one in place: subject, headers and payload
/// become zeros, the flags say `Erased`, and the CRC is recomputed so the record stays valid.
pub(crate) fn erase(rec: &mut [u8]) -> Result<(), &'static str> {
    let kind = decode(rec)?.kind;
    if !kind.is_msg() {
        return Err("not a message record");
    }
    let body_end = rec.len() - 4;
    rec[20] = FLAG_ERASED;
    if kind == Kind::Compressed {
        // The uncompressed header length no longer fits the zeroed body's lengths.
        rec[23..27].fill(0);
    }
    rec[HEADER_LEN..body_end].fill(0);
    let crc = crc32fast::hash(&rec[..body_end]);
    rec[body_end..].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        encode(
            &mut v,
            7,
            99,
            Kind::Msg,
            b"a.b",
            b"NATS/1.0\r\n\r\n",
            b"hello",
        );
        v
    }

    #[test]
    fn roundtrip() {
        let v = sample();
        assert_eq!(v.len(), encoded_len(3, 12, 5));
        let r = decode(&v).unwrap();
        assert_eq!((r.seq, r.ts, r.kind), (7, 99, Kind::Msg));
        assert_eq!(r.subject, b"a.b");
        assert_eq!(r.headers, b"NATS/1.0\r\n\r\n");
        assert_eq!(r.payload, b"hello");
    }

    #[test]
    fn zeroed_record_fails() {
        let v = sample();
        assert!(decode(&vec![0u8; v.len()]).is_err());
        // Even with a plausible length, zeros elsewhere fail the CRC (it covers the length).
        let mut z = vec![0u8; v.len()];
        z[..4].copy_from_slice(&(v.len() as u32).to_le_bytes());
        assert_eq!(decode(&z).unwrap_err(), "crc mismatch");
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let v = sample();
        for i in 0..v.len() {
            for bit in 0..8 {
                let mut c = v.clone();
                c[i] ^= 1 << bit;
                assert!(decode(&c).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn erase_keeps_record_valid() {
        let mut v = sample();
        erase(&mut v).unwrap();
        let r = decode(&v).unwrap();
        assert_eq!(r.kind, Kind::Erased);
        assert_eq!(r.seq, 7);
        assert!(r.payload.iter().all(|b| *b == 0));
        assert!(r.subject.iter().all(|b| *b == 0));
    }

    fn compressed_sample() -> Vec<u8> {
        let headers = b"NATS/1.0\r\nA: b\r\n\r\n";
        let payload = br#"{"patient":"p-1","status":"ok","patient2":"p-1","status2":"ok"}"#;
        let blob = compress(headers, payload).expect("compressible");
        let mut v = Vec::new();
        encode_parts(
            &mut v,
            8,
            5,
            Kind::Compressed,
            b"a.b",
            headers.len(),
            &[&blob],
        );
        v
    }

    #[test]
    fn compressed_roundtrip_erase_and_corruption() {
        let v = compressed_sample();
        let r = decode(&v).unwrap();
        assert_eq!((r.kind, r.plain.0), (Kind::Compressed, 18));
        let (body, h) = r.body().unwrap();
        assert_eq!(&body[..h], b"NATS/1.0\r\nA: b\r\n\r\n");
        assert!(body[h..].starts_with(b"{\"patient\""));
        for i in 0..v.len() {
            let mut c = v.clone();
            c[i] ^= 0x10;
            assert!(decode(&c).is_err(), "byte {i}");
        }
        let mut e = v.clone();
        erase(&mut e).unwrap();
        let r = decode(&e).unwrap();
        assert_eq!(r.kind, Kind::Erased);
        // Incompressible or tiny bodies stay plain.
        assert!(compress(b"", b"tiny").is_none());
        let noise: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(compress(b"", &noise).is_none());
    }

    #[test]
    fn markers_have_no_body() {
        let mut v = Vec::new();
        encode(&mut v, 5, 1, Kind::Tombstone, b"", b"", b"");
        assert_eq!(v.len(), OVERHEAD);
        assert_eq!(decode(&v).unwrap().kind, Kind::Tombstone);
        let mut w = Vec::new();
        encode(&mut w, 5, 1, Kind::Floor, b"x", b"", b"");
        assert_eq!(decode(&w).unwrap_err(), "marker with a body");
    }
}
