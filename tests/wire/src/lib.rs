//! Test-only crate: see `tests/wire.rs`.
