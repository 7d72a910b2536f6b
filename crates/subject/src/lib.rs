//! NATS subjects: validation, wildcard matching and the subscription index.
//!
//! * [`token`]: validity rules and a naive reference matcher.
//! * [`Sublist`]: a trie over subject tokens with `*` / `>` slots and queue groups, and a
//!   generation counter bumped by every change.
//! * [`MatchCache`]: a bounded `subject → result` cache that a reader owns privately and
//!   that throws itself away when the Sublist's generation moves.

mod cache;
mod hash;
mod mapping;
mod sublist;
pub mod token;

pub use cache::{Admission, MatchCache};
pub use mapping::StrictMapping;
pub use sublist::{InvalidSubject, Sublist, SublistResult};
pub use token::{is_subset, is_valid_literal_subject, is_valid_subject, matches, subjects_collide};
