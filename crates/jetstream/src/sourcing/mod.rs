//! Streams that source or mirror other streams: the configuration and its checks
//! (`config`), one task per source moving messages (`task`), and mirrors answering their
//! origin's direct gets (`direct`). Sources in another domain or account come with
//! accounts.

pub mod config;
pub(crate) mod direct;
pub(crate) mod task;

pub use config::StreamSource;
