//! The NATS client protocol as bytes, with no I/O.
//!
//! * [`Parser`] turns a stream of bytes from a client into [`ClientOp`]s. It is incremental:
//!   however the stream is split into reads, the same ops come out, and payloads are
//!   zero-copy slices ([`bytes::Bytes`]) of the read buffer.
//! * [`encode`] writes server ops (`INFO`, `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`).
//! * [`headers`] builds and reads `NATS/1.0` header blocks.
//! * [`ConnectInfo`] and [`ServerInfo`] are the JSON bodies of `CONNECT` and `INFO`.

pub mod encode;
pub mod headers;
mod info;
pub mod leaf;
mod op;
mod parser;
pub mod route;

pub use info::{ConnectInfo, ServerInfo};
pub use op::ClientOp;
pub use parser::{ParseError, Parser, PubAt};
