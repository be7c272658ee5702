//! Test-only crate: see `tests/core_faults.rs` and `Cargo.toml` for why it exists.
