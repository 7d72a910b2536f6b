//! Client operations produced by the parser.

use bytes::Bytes;

/// One operation sent by a client.
///
/// All byte fields are zero-copy slices of the connection's read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// `CONNECT {json}`: the raw JSON text.
    Connect(Bytes),
    /// `PUB subject [reply] size` + payload.
    Pub {
        /// Subject published to (not yet validated).
        subject: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// Message body.
        payload: Bytes,
    },
    /// `HPUB subject [reply] hdr_size total_size` + headers + payload.
    HPub {
        /// Subject published to (not yet validated).
        subject: Bytes,
        /// Optional reply subject.
        reply: Option<Bytes>,
        /// Header block followed by the payload (`total_size` bytes).
        data: Bytes,
        /// Length of the header block at the start of `data`.
        hdr_len: usize,
    },
    /// `SUB subject [queue] sid`.
    Sub {
        /// Subject filter (not yet validated).
        subject: Bytes,
        /// Queue group.
        queue: Option<Bytes>,
        /// Client-chosen subscription id.
        sid: Bytes,
    },
    /// `UNSUB sid [max]`.
    Unsub {
        /// Subscription id.
        sid: Bytes,
        /// Remove after this many messages in total.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
    /// `+OK` (tolerated from clients, ignored).
    Ok,
    /// `-ERR` (tolerated from clients, ignored).
    Err,
    /// `INFO` (tolerated from clients, ignored).
    Info,
}
