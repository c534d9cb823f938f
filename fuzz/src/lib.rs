//! The fuzz targets' bodies (see `targets.rs`), one `pub fn` per target.
mod targets;
pub use targets::*;
