//! The Veltrix expression language: a strict, documented subset of CEL used
//! for `when = "..."` conditions.
//!
//! An expression goes through three steps, all in [`compile`]:
//! 1. **parse** (hand-written Pratt parser, byte span on every node),
//! 2. **check** names and types against a [`Schema`] and the triggering event
//!    type, collecting every error rather than stopping at the first,
//! 3. **compile** into a tree of closures, so that evaluating an event never
//!    touches text again.
//!
//! The engine supplies the data at evaluation time through [`Context`]; all
//! names are resolved to indices at compile time. See `README.md` for the
//! grammar and the exact semantics of missing values.
//!
//! ```
//! use veltrix_expr::{compile_condition, EventTypeDecl, FieldDecl, FieldType, Schema};
//! let schema = Schema {
//!     event_types: vec![EventTypeDecl {
//!         name: "purchase".into(),
//!         fields: vec![FieldDecl { name: "amount".into(), ty: FieldType::Double, optional: false }],
//!     }],
//!     ..Schema::default()
//! };
//! let errors = compile_condition("event.amout >= 50", &schema, 0).unwrap_err();
//! assert_eq!(errors[0].message, "unknown field \"amout\" of event type \"purchase\"");
//! assert_eq!(errors[0].help.as_deref(), Some("did you mean \"amount\"?"));
//! ```

use std::fmt;
use std::sync::Arc;

mod compile;
mod duration;
mod lexer;
mod parser;
mod suggest;

pub use duration::parse_duration;

/// Byte range in the expression source.
pub type Span = std::ops::Range<usize>;

/// Longest accepted expression source, in bytes. Conditions are one-liners;
/// the bound keeps hostile configurations from costing time or memory.
pub const MAX_SOURCE_LEN: usize = 4096;

/// Deepest accepted nesting (parser recursion and syntax-tree height).
/// Bounds every recursive pass (check, compile, evaluation, drop), so no input
/// can overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Type of an event data field, as declared in the configuration
/// (`number` is [`FieldType::Double`], `integer` is [`FieldType::Int`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Bool,
    Int,
    Double,
    String,
}

/// One data field of an event type. Its slot is its index in
/// [`EventTypeDecl::fields`]; [`Context::field`] is called with that slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDecl {
    pub name: String,
    pub ty: FieldType,
    /// An optional field may be absent at runtime ([`Value::Missing`]).
    pub optional: bool,
}

/// An event type. Its index in [`Schema::event_types`] is the index passed to
/// [`Context::count`], [`Context::sum`] and [`Context::streak`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeDecl {
    pub name: String,
    pub fields: Vec<FieldDecl>,
}

/// A hunt and its stage ids, in configuration order (indices for
/// [`Context::stage_done`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HuntDecl {
    pub name: String,
    pub stages: Vec<String>,
}

/// Every name an expression may refer to. Indices into these vectors are what
/// the compiled expression passes to [`Context`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub event_types: Vec<EventTypeDecl>,
    pub currencies: Vec<String>,
    pub badges: Vec<String>,
    pub hunts: Vec<HuntDecl>,
}

/// A diagnostic: where, what, and optionally how to fix it. Rendering (source
/// line, underline, colours) is left to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Byte range in the expression source of the offending node. For an
    /// unknown member such as `event.amout` it covers the whole member access.
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl ExprError {
    pub(crate) fn new(span: Span, message: impl Into<String>, help: Option<String>) -> Self {
        ExprError {
            span,
            message: message.into(),
            help,
        }
    }
}

/// A value handed to the expression by the engine ([`Context::field`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// An optional field that the event does not carry.
    Missing,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
}

/// Result of [`Compiled::eval`]. Owned, because string concatenation builds
/// strings that exist only during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A missing optional field, or an evaluation error (overflow, division by
    /// zero) that propagated to the result.
    Missing,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

/// Static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    Double,
    String,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Double => "double",
            Type::String => "string",
        })
    }
}

/// Period of `streak(type, period)`: UTC days, or ISO weeks starting Monday
/// 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day,
    Week,
}

/// What a compiled expression reads from the engine at evaluation time.
/// Indices refer to the [`Schema`]. The engine calls only these methods with
/// indices that appear in the expression, and for `count`, `sum`, `streak`
/// only with the arguments listed in [`Compiled::requirements`].
pub trait Context {
    /// Data field `slot` of the triggering event, [`Value::Missing`] if absent.
    fn field(&self, slot: u16) -> Value<'_>;
    /// Event time, milliseconds since the Unix epoch.
    fn event_ts(&self) -> i64;
    fn event_type(&self) -> &str;
    fn event_player(&self) -> &str;
    fn event_id(&self) -> &str;
    /// The player's points before the triggering event has any effect.
    fn points(&self) -> i64;
    fn balance(&self, currency: u16) -> i64;
    fn has_badge(&self, badge: u16) -> bool;
    /// For `x in player.badges` where `x` is not a literal; `name` may be any
    /// string, including one that is not a declared badge.
    fn has_badge_named(&self, name: &str) -> bool;
    /// Events of `event_type` whose event time is in `(t - window_ms, t]`.
    fn count(&self, event_type: u16, window_ms: i64) -> i64;
    fn sum(&self, event_type: u16, field: u16, window_ms: i64) -> f64;
    fn streak(&self, event_type: u16, period: Period) -> i64;
    fn stage_done(&self, hunt: u16, stage: u16) -> bool;
}

/// What an expression needs the engine to keep, deduplicated and in order of
/// first appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// `(event type, window ms)` of every `count`.
    pub counts: Vec<(u16, i64)>,
    /// `(event type, field slot, window ms)` of every `sum`.
    pub sums: Vec<(u16, u16, i64)>,
    /// `(event type, period)` of every `streak`.
    pub streaks: Vec<(u16, Period)>,
    /// True when the expression reads player state: points, balances, badges
    /// or stage progress (`count`, `sum`, `streak` are listed separately).
    pub uses_player: bool,
}

/// A checked and compiled expression. Cheap to clone (shared), `Send + Sync`.
#[derive(Clone)]
pub struct Compiled {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    root: compile::Node,
    requirements: Requirements,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("source", &self.inner.source)
            .field("type", &self.ty())
            .field("requirements", &self.inner.requirements)
            .finish()
    }
}

impl Compiled {
    /// Evaluates a condition: true only if the expression yields `true`
    /// (missing and evaluation errors count as false).
    #[inline]
    pub fn eval_condition(&self, ctx: &dyn Context) -> bool {
        self.inner.root.eval_condition(ctx)
    }

    /// Evaluates to a value of [`Compiled::ty`], or [`Output::Missing`].
    pub fn eval(&self, ctx: &dyn Context) -> Output {
        self.inner.root.eval(ctx)
    }

    pub fn requirements(&self) -> &Requirements {
        &self.inner.requirements
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Static result type.
    pub fn ty(&self) -> Type {
        self.inner.root.ty()
    }
}

/// Parses, checks and compiles a `when` condition: the result must be bool.
///
/// `trigger` is the index in [`Schema::event_types`] of the event type the
/// condition runs on; `event.<field>` resolves against its fields. On failure
/// returns every error found (a syntax error stops at the first).
pub fn compile_condition(
    source: &str,
    schema: &Schema,
    trigger: u16,
) -> Result<Compiled, Vec<ExprError>> {
    compile(source, schema, trigger, Some(Type::Bool))
}

/// Like [`compile_condition`] with a chosen result type, or any type when
/// `expected` is `None`. An int result is promoted when a double is expected.
/// (Lists exist only as the right operand of `in`, so no expression has a
/// list type.)
pub fn compile(
    source: &str,
    schema: &Schema,
    trigger: u16,
    expected: Option<Type>,
) -> Result<Compiled, Vec<ExprError>> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(vec![ExprError::new(
            0..source.len(),
            format!(
                "expression is too long ({} bytes; the limit is {MAX_SOURCE_LEN})",
                source.len()
            ),
            None,
        )]);
    }
    let expr = parser::parse(source).map_err(|e| vec![e])?;
    let (root, requirements) = compile::compile(&expr, schema, trigger, expected)?;
    Ok(Compiled {
        inner: Arc::new(Inner {
            source: source.to_string(),
            root,
            requirements,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone + fmt::Debug + 'static>() {}
        assert_traits::<Compiled>();
    }
}
