//! Integration tests of petrel-jetstream through a fake port: the server's view of it.

mod harness;
mod msgs;
mod publish;
mod recovery;
mod streams;
