//! Streams that source other streams (`sources`): the configuration and its checks
//! (`config`), and one task per source moving messages (`task`). Mirrors, and sources in
//! another domain or account, come later.

pub mod config;
pub(crate) mod task;

pub use config::StreamSource;
