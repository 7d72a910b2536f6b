//! Integration tests of petrel-store, one binary: the shared suite run against every store,
//! file-store specifics (recovery, corruption, durability, checkpoints, compaction), a model
//! proptest, and a corruption fuzz loop.

mod compression;
mod corruption_rounds;
mod file_store;
mod fuzz;
mod harness;
mod model;
mod power_loss;
mod suite;
