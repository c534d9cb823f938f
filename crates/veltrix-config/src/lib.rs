//! Veltrix configuration: TOML sources in, a checked [`Config`] or every
//! diagnostic out. The crate takes `(name, text)` pairs and never touches the
//! filesystem; callers read the files.

mod compile;
mod diag;
mod model;
mod schema;
mod walk;

pub use compile::compile;
pub use diag::{Diagnostic, Severity, Source, did_you_mean, line_column};
pub use model::*;
pub use schema::json_schema;
pub use veltrix_expr;
pub use veltrix_puzzles;
pub use veltrix_puzzles::{answer_digest, normalize_answer};
