//! evloop-sim: the deterministic simulator that stands in for the operating system under evloop.
//!
//! Not built yet: the simulator is its own issue. This crate exists so the workspace layout is the
//! one DESIGN.md describes.
#![forbid(unsafe_code)]
