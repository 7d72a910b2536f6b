//! JetStream for Petrel (work in progress: see the crate's issue).

pub mod port;

pub use port::{Port, SubId};
