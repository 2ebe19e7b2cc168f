//! Placeholder: the adapter lands with its own issue.
#![forbid(unsafe_code)]
