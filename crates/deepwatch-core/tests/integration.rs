//! deepwatch-core's integration tests, one binary (ARCHITECTURE.md, Conventions).

mod https;
mod promtext_roundtrip;
