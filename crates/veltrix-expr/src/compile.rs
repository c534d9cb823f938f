//! Name resolution, type checking and compilation in one pass over the
//! syntax tree.
//!
//! Each node compiles to a [`Node`] whose variant is its static type. A node
//! that failed to check compiles to `None` after its error has been recorded;
//! parents then stay silent about it, so one mistake gives one error while
//! independent mistakes are all reported.
//!
//! Values are typed closures returning `Option<T>`: `None` is a missing value
//! (absent optional field, or an evaluation error such as overflow). Typed
//! closures avoid a dynamic value enum and any type test at evaluation time.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::parser::{BinaryOp, Expr, ExprKind, UnaryOp};
use crate::suggest;
use crate::{
    Context, EventTypeDecl, ExprError, FieldType, Output, Period, Requirements, Schema, Span, Type,
    Value, parse_duration,
};

/// A compiled value-producing closure; `None` is a missing value.
type Eval<T> = Box<dyn Fn(&dyn Context) -> Option<T> + Send + Sync>;
type BoolFn = Eval<bool>;
type IntFn = Eval<i64>;
type DoubleFn = Eval<f64>;

/// A literal, kept as data so that comparisons with a constant can capture
/// the value instead of calling a closure for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
}

impl Lit {
    fn ty(&self) -> Type {
        match self {
            Lit::Bool(_) => Type::Bool,
            Lit::Int(_) => Type::Int,
            Lit::Double(_) => Type::Double,
            Lit::Str(_) => Type::String,
        }
    }
}

/// A compiled expression node; the variant is the static type.
pub(crate) enum Node {
    Const(Lit),
    Bool(BoolFn),
    Int(IntFn),
    Double(DoubleFn),
    Str(StrNode),
}

/// String-valued nodes are data rather than closures: they return text
/// borrowed from the context or from the compiled literal, which a boxed
/// closure cannot express (its result may not borrow from itself).
pub(crate) enum StrNode {
    Lit(Box<str>),
    Field(u16),
    EventType,
    EventPlayer,
    EventId,
    Concat(Box<StrNode>, Box<StrNode>),
    Cond(BoolFn, Box<StrNode>, Box<StrNode>),
}

impl StrNode {
    fn eval<'a>(&'a self, ctx: &'a dyn Context) -> Option<Cow<'a, str>> {
        match self {
            StrNode::Lit(s) => Some(Cow::Borrowed(s)),
            StrNode::Field(slot) => match ctx.field(*slot) {
                Value::Str(s) => Some(Cow::Borrowed(s)),
                _ => None,
            },
            StrNode::EventType => Some(Cow::Borrowed(ctx.event_type())),
            StrNode::EventPlayer => Some(Cow::Borrowed(ctx.event_player())),
            StrNode::EventId => Some(Cow::Borrowed(ctx.event_id())),
            StrNode::Concat(a, b) => {
                let a = a.eval(ctx)?;
                let b = b.eval(ctx)?;
                let mut joined = String::with_capacity(a.len() + b.len());
                joined.push_str(&a);
                joined.push_str(&b);
                Some(Cow::Owned(joined))
            }
            StrNode::Cond(cond, a, b) => {
                if cond(ctx).unwrap_or(false) {
                    a.eval(ctx)
                } else {
                    b.eval(ctx)
                }
            }
        }
    }
}

impl Node {
    pub(crate) fn ty(&self) -> Type {
        match self {
            Node::Const(lit) => lit.ty(),
            Node::Bool(_) => Type::Bool,
            Node::Int(_) => Type::Int,
            Node::Double(_) => Type::Double,
            Node::Str(_) => Type::String,
        }
    }

    pub(crate) fn eval_condition(&self, ctx: &dyn Context) -> bool {
        match self {
            Node::Bool(f) => f(ctx) == Some(true),
            Node::Const(Lit::Bool(b)) => *b,
            _ => false,
        }
    }

    pub(crate) fn eval(&self, ctx: &dyn Context) -> Output {
        let output = match self {
            Node::Const(Lit::Bool(b)) => Some(Output::Bool(*b)),
            Node::Const(Lit::Int(i)) => Some(Output::Int(*i)),
            Node::Const(Lit::Double(d)) => Some(Output::Double(*d)),
            Node::Const(Lit::Str(s)) => Some(Output::Str(s.to_string())),
            Node::Bool(f) => f(ctx).map(Output::Bool),
            Node::Int(f) => f(ctx).map(Output::Int),
            Node::Double(f) => f(ctx).map(Output::Double),
            Node::Str(s) => s.eval(ctx).map(|s| Output::Str(s.into_owned())),
        };
        output.unwrap_or(Output::Missing)
    }

    // The conversions below are called only after the caller has checked
    // `ty()`. A mismatch would be a bug in this module, not bad input; they
    // then yield "missing" rather than panic, as the crate never panics.

    fn into_bool(self) -> BoolFn {
        match self {
            Node::Bool(f) => f,
            Node::Const(Lit::Bool(b)) => Box::new(move |_| Some(b)),
            _ => Box::new(|_| None),
        }
    }

    fn into_int(self) -> Operand<i64> {
        match self {
            Node::Int(f) => Operand::Dyn(f),
            Node::Const(Lit::Int(i)) => Operand::Const(i),
            _ => Operand::Dyn(Box::new(|_| None)),
        }
    }

    /// Ints are promoted (`as f64`), as CEL-style mixed arithmetic does.
    fn into_double(self) -> Operand<f64> {
        match self {
            Node::Double(f) => Operand::Dyn(f),
            Node::Const(Lit::Double(d)) => Operand::Const(d),
            Node::Const(Lit::Int(i)) => Operand::Const(i as f64),
            Node::Int(f) => Operand::Dyn(Box::new(move |ctx| f(ctx).map(|i| i as f64))),
            _ => Operand::Dyn(Box::new(|_| None)),
        }
    }

    fn into_str(self) -> StrNode {
        match self {
            Node::Str(s) => s,
            Node::Const(Lit::Str(s)) => StrNode::Lit(s),
            _ => StrNode::Cond(
                Box::new(|_| None),
                Box::new(StrNode::Lit("".into())),
                Box::new(StrNode::Lit("".into())),
            ),
        }
    }
}

/// An operand of a comparison or arithmetic: a constant or a closure.
enum Operand<T> {
    Const(T),
    Dyn(Eval<T>),
}

impl<T: Copy + Send + Sync + 'static> Operand<T> {
    fn into_fn(self) -> Eval<T> {
        match self {
            Operand::Const(c) => Box::new(move |_| Some(c)),
            Operand::Dyn(f) => f,
        }
    }
}

/// A comparison operator as a type, so that each comparison closure is
/// monomorphised with its test inlined.
trait Pred: 'static {
    fn test(ordering: Option<Ordering>) -> bool;
}

macro_rules! pred {
    ($name:ident, $pattern:pat) => {
        struct $name;
        impl Pred for $name {
            #[inline(always)]
            fn test(ordering: Option<Ordering>) -> bool {
                matches!(ordering, $pattern)
            }
        }
    };
}

pred!(PLt, Some(Ordering::Less));
pred!(PLe, Some(Ordering::Less | Ordering::Equal));
pred!(PGt, Some(Ordering::Greater));
pred!(PGe, Some(Ordering::Greater | Ordering::Equal));
pred!(PEq, Some(Ordering::Equal));
pred!(PNe, Some(Ordering::Less | Ordering::Greater));

/// Runs `$body` with `$p` bound to the predicate type of `$op`.
macro_rules! with_pred {
    ($op:expr, $p:ident => $body:expr) => {
        match $op {
            BinaryOp::Lt => {
                type $p = PLt;
                $body
            }
            BinaryOp::Le => {
                type $p = PLe;
                $body
            }
            BinaryOp::Gt => {
                type $p = PGt;
                $body
            }
            BinaryOp::Ge => {
                type $p = PGe;
                $body
            }
            BinaryOp::Eq => {
                type $p = PEq;
                $body
            }
            _ => {
                type $p = PNe;
                $body
            }
        }
    };
}

/// A comparison with a missing operand is false, whatever the operator.
fn compare<T, P>(a: Operand<T>, b: Operand<T>) -> BoolFn
where
    T: PartialOrd + Copy + Send + Sync + 'static,
    P: Pred,
{
    match (a, b) {
        (Operand::Dyn(a), Operand::Const(c)) => {
            Box::new(move |ctx| Some(a(ctx).is_some_and(|x| P::test(x.partial_cmp(&c)))))
        }
        (Operand::Const(c), Operand::Dyn(b)) => {
            Box::new(move |ctx| Some(b(ctx).is_some_and(|y| P::test(c.partial_cmp(&y)))))
        }
        (Operand::Dyn(a), Operand::Dyn(b)) => Box::new(move |ctx| {
            Some(match (a(ctx), b(ctx)) {
                (Some(x), Some(y)) => P::test(x.partial_cmp(&y)),
                _ => false,
            })
        }),
        (Operand::Const(x), Operand::Const(y)) => {
            let result = P::test(x.partial_cmp(&y));
            Box::new(move |_| Some(result))
        }
    }
}

fn compare_int_double<P: Pred>(a: IntFn, b: DoubleFn, int_on_left: bool) -> BoolFn {
    Box::new(move |ctx| {
        Some(match (a(ctx), b(ctx)) {
            (Some(i), Some(d)) => {
                let ordering = cmp_int_double(i, d);
                P::test(if int_on_left {
                    ordering
                } else {
                    ordering.map(Ordering::reverse)
                })
            }
            _ => false,
        })
    })
}

fn compare_str<P: Pred>(a: StrNode, b: StrNode) -> BoolFn {
    Box::new(move |ctx| {
        Some(match (a.eval(ctx), b.eval(ctx)) {
            (Some(x), Some(y)) => P::test(Some(x.as_ref().cmp(y.as_ref()))),
            _ => false,
        })
    })
}

/// Exact numeric comparison of an int with a double: converting the int to
/// f64 would make `9007199254740993 == 9007199254740992.0` true.
pub(crate) fn cmp_int_double(i: i64, d: f64) -> Option<Ordering> {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if d.is_nan() {
        return None;
    }
    if d >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if d < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let whole = d.trunc();
    // In range by the checks above, so the cast is exact.
    match i.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(d - whole)),
        other => Some(other),
    }
}

/// Largest magnitude up to which every integer is exactly an f64.
const EXACT_INT_IN_DOUBLE: i64 = 1 << 53;

fn finite(d: f64) -> Option<f64> {
    d.is_finite().then_some(d)
}

fn type_pair_ty(a: Type, b: Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a),
        (Type::Int, Type::Double) | (Type::Double, Type::Int) => Some(Type::Double),
        _ => None,
    }
}

const BUILTINS: [&str; 7] = [
    "count",
    "sum",
    "streak",
    "has_badge",
    "stage_done",
    "has",
    "size",
];
const METHODS: [&str; 4] = ["startsWith", "endsWith", "contains", "size"];
const RESERVED_EVENT_FIELDS: [&str; 4] = ["ts", "type", "player", "id"];

struct Compiler<'s> {
    schema: &'s Schema,
    trigger: &'s EventTypeDecl,
    errors: Vec<ExprError>,
    requirements: Requirements,
}

pub(crate) fn compile(
    expr: &Expr,
    schema: &Schema,
    trigger: u16,
    expected: Option<Type>,
) -> Result<(Node, Requirements), Vec<ExprError>> {
    let Some(trigger_decl) = schema.event_types.get(usize::from(trigger)) else {
        return Err(vec![ExprError::new(
            0..0,
            format!("internal: trigger event type index {trigger} is not in the schema"),
            None,
        )]);
    };
    let mut compiler = Compiler {
        schema,
        trigger: trigger_decl,
        errors: Vec::new(),
        requirements: Requirements::default(),
    };
    let node = compiler.expr(expr);
    let node = node.and_then(|node| compiler.expect_result(node, expected, &expr.span));
    match node {
        Some(node) if compiler.errors.is_empty() => Ok((node, compiler.requirements)),
        _ => Err(compiler.errors),
    }
}

impl<'s> Compiler<'s> {
    fn error(&mut self, span: Span, message: impl Into<String>, help: Option<String>) {
        self.errors.push(ExprError::new(span, message, help));
    }

    fn mismatch(&mut self, span: Span, want: Type, found: Type, help: Option<String>) {
        self.error(span, format!("expected {want}, found {found}"), help);
    }

    fn expect_result(&mut self, node: Node, expected: Option<Type>, span: &Span) -> Option<Node> {
        let found = node.ty();
        match expected {
            None => Some(node),
            Some(want) if want == found => Some(node),
            Some(Type::Double) if found == Type::Int => Some(match node.into_double() {
                Operand::Const(d) => Node::Const(Lit::Double(d)),
                Operand::Dyn(f) => Node::Double(f),
            }),
            Some(want) => {
                let help = (want == Type::Bool).then(|| {
                    "a condition must be true or false, e.g. `event.amount >= 10`".to_string()
                });
                self.mismatch(span.clone(), want, found, help);
                None
            }
        }
    }

    fn expr(&mut self, e: &Expr) -> Option<Node> {
        match &e.kind {
            ExprKind::Int(i) => Some(Node::Const(Lit::Int(*i))),
            ExprKind::Double(d) => Some(Node::Const(Lit::Double(*d))),
            ExprKind::Str(s) => Some(Node::Const(Lit::Str(s.as_str().into()))),
            ExprKind::Bool(b) => Some(Node::Const(Lit::Bool(*b))),
            ExprKind::List(items) => {
                self.error(
                    e.span.clone(),
                    "a list literal can only be the right operand of `in`",
                    Some("e.g. `event.item in ['map', 'key']`".into()),
                );
                items.iter().for_each(|item| {
                    self.expr(item);
                });
                None
            }
            ExprKind::Ident(name) => {
                self.bare_name(name, e.span.clone());
                None
            }
            ExprKind::Member(target, name) => self.member(e, target, name),
            ExprKind::Call(name, name_span, args) => self.call(e, name, name_span, args),
            ExprKind::Method(target, name, name_span, args) => {
                self.method(e, target, name, name_span, args)
            }
            ExprKind::Unary(op, operand) => self.unary(e, *op, operand),
            ExprKind::Binary(op, a, b) => self.binary(e, *op, a, b),
            ExprKind::Ternary(c, a, b) => self.ternary(e, c, a, b),
        }
    }

    fn bare_name(&mut self, name: &str, span: Span) {
        if name == "event" || name == "player" {
            let example = if name == "event" {
                "event.ts"
            } else {
                "player.points"
            };
            self.error(
                span,
                format!("`{name}` is not a value on its own"),
                Some(format!("read one of its fields, e.g. {example}")),
            );
            return;
        }
        let is_event_field = RESERVED_EVENT_FIELDS.contains(&name)
            || self.trigger.fields.iter().any(|f| f.name == name);
        let help = if is_event_field {
            Some(format!("did you mean \"event.{name}\"?"))
        } else if name == "points" || self.schema.currencies.iter().any(|c| c == name) {
            Some(format!("did you mean \"player.{name}\"?"))
        } else if BUILTINS.contains(&name) {
            Some(format!("`{name}` is a function; call it with arguments"))
        } else {
            suggest::help(name, &["event", "player"])
        };
        self.error(span, format!("unknown name \"{name}\""), help);
    }

    // ----- names -----

    fn member(&mut self, e: &Expr, target: &Expr, name: &str) -> Option<Node> {
        match &target.kind {
            ExprKind::Ident(root) if root == "event" => self.event_member(e.span.clone(), name),
            ExprKind::Ident(root) if root == "player" => self.player_member(e.span.clone(), name),
            ExprKind::Member(inner, middle)
                if middle == "balances"
                    && matches!(&inner.kind, ExprKind::Ident(r) if r == "player") =>
            {
                let currency = self.currency(name, e.span.clone())?;
                self.requirements.uses_player = true;
                Some(Node::Int(Box::new(move |ctx| Some(ctx.balance(currency)))))
            }
            _ => {
                let target_node = self.expr(target)?;
                self.error(
                    e.span.clone(),
                    format!("a {} value has no field \"{name}\"", target_node.ty()),
                    Some("only `event` and `player` have fields".into()),
                );
                None
            }
        }
    }

    fn event_member(&mut self, span: Span, name: &str) -> Option<Node> {
        // Reserved names win over data fields (the configuration layer
        // forbids data fields with these names anyway).
        match name {
            "ts" => return Some(Node::Int(Box::new(|ctx| Some(ctx.event_ts())))),
            "type" => return Some(Node::Str(StrNode::EventType)),
            "player" => return Some(Node::Str(StrNode::EventPlayer)),
            "id" => return Some(Node::Str(StrNode::EventId)),
            _ => {}
        }
        let (slot, ty) = self.event_field(name, span)?;
        Some(match ty {
            FieldType::Bool => Node::Bool(Box::new(move |ctx| match ctx.field(slot) {
                Value::Bool(b) => Some(b),
                _ => None,
            })),
            FieldType::Int => Node::Int(Box::new(move |ctx| match ctx.field(slot) {
                Value::Int(i) => Some(i),
                _ => None,
            })),
            // A JSON number without a fraction may reach us as an Int.
            FieldType::Double => Node::Double(Box::new(move |ctx| match ctx.field(slot) {
                Value::Double(d) => Some(d),
                Value::Int(i) => Some(i as f64),
                _ => None,
            })),
            FieldType::String => Node::Str(StrNode::Field(slot)),
        })
    }

    /// Slot and type of a data field of the triggering event type.
    fn event_field(&mut self, name: &str, span: Span) -> Option<(u16, FieldType)> {
        let fields = &self.trigger.fields;
        if let Some(index) = fields.iter().position(|f| f.name == name) {
            let slot = self.index(index, span, "fields")?;
            return Some((slot, fields[index].ty));
        }
        let mut candidates: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        candidates.extend(RESERVED_EVENT_FIELDS);
        let help = suggest::help(name, &candidates);
        self.error(
            span,
            format!(
                "unknown field \"{name}\" of event type \"{}\"",
                self.trigger.name
            ),
            help,
        );
        None
    }

    fn player_member(&mut self, span: Span, name: &str) -> Option<Node> {
        match name {
            "points" => {
                self.requirements.uses_player = true;
                return Some(Node::Int(Box::new(|ctx| Some(ctx.points()))));
            }
            "badges" => {
                self.error(
                    span,
                    "`player.badges` can only be used as the right operand of `in`",
                    Some("e.g. `'navigator' in player.badges` or has_badge('navigator')".into()),
                );
                return None;
            }
            "balances" => {
                self.error(
                    span,
                    "`player.balances` needs a currency",
                    Some("e.g. player.balances.coins".into()),
                );
                return None;
            }
            _ => {}
        }
        if let Some(index) = self.schema.currencies.iter().position(|c| c == name) {
            let currency = self.index(index, span, "currencies")?;
            self.requirements.uses_player = true;
            return Some(Node::Int(Box::new(move |ctx| Some(ctx.balance(currency)))));
        }
        let mut candidates = vec!["points", "badges", "balances"];
        candidates.extend(self.schema.currencies.iter().map(String::as_str));
        let help = suggest::help(name, &candidates);
        self.error(span, format!("unknown player property \"{name}\""), help);
        None
    }

    fn index(&mut self, index: usize, span: Span, what: &str) -> Option<u16> {
        match u16::try_from(index) {
            Ok(i) => Some(i),
            Err(_) => {
                self.error(
                    span,
                    format!("too many {what} to address (the limit is {})", u16::MAX),
                    None,
                );
                None
            }
        }
    }

    fn lookup(&mut self, kind: &str, name: &str, names: &[&str], span: Span) -> Option<u16> {
        if let Some(index) = names.iter().position(|n| *n == name) {
            return self.index(index, span, kind);
        }
        let help = suggest::help(name, names);
        self.error(span, format!("unknown {kind} \"{name}\""), help);
        None
    }

    fn currency(&mut self, name: &str, span: Span) -> Option<u16> {
        let names: Vec<&str> = self.schema.currencies.iter().map(String::as_str).collect();
        self.lookup("currency", name, &names, span)
    }

    fn event_type(&mut self, name: &str, span: Span) -> Option<u16> {
        let names: Vec<&str> = self
            .schema
            .event_types
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        self.lookup("event type", name, &names, span)
    }

    fn badge(&mut self, name: &str, span: Span) -> Option<u16> {
        let names: Vec<&str> = self.schema.badges.iter().map(String::as_str).collect();
        self.lookup("badge", name, &names, span)
    }

    // ----- calls -----

    fn call(&mut self, e: &Expr, name: &str, name_span: &Span, args: &[Expr]) -> Option<Node> {
        let (arity, params) = match name {
            "count" => (2, "(type, window)"),
            "sum" => (3, "(type, field, window)"),
            "streak" => (2, "(type, period)"),
            "has_badge" => (1, "(name)"),
            "stage_done" => (2, "(hunt, stage)"),
            "has" => (1, "(event.field)"),
            "size" => (1, "(string)"),
            _ => {
                let help = if METHODS.contains(&name) {
                    Some(format!("`{name}` is a method: write `text.{name}(...)`"))
                } else {
                    suggest::help(name, &BUILTINS)
                };
                self.error(
                    name_span.clone(),
                    format!("unknown function \"{name}\""),
                    help,
                );
                return None;
            }
        };
        if args.len() != arity {
            let plural = if arity == 1 { "" } else { "s" };
            self.error(
                e.span.clone(),
                format!(
                    "{name} expects {arity} argument{plural} {params}, found {}",
                    args.len()
                ),
                None,
            );
            return None;
        }
        match name {
            "count" => {
                let ty = self.event_type_arg(name, &args[0]);
                let window = self.window_arg(name, &args[1]);
                let (ty, window) = (ty?, window?);
                push_unique(&mut self.requirements.counts, (ty, window));
                Some(Node::Int(Box::new(move |ctx| Some(ctx.count(ty, window)))))
            }
            "sum" => {
                let ty = self.event_type_arg(name, &args[0]);
                let field = self.literal_arg(name, "field", &args[1]);
                let window = self.window_arg(name, &args[2]);
                let slot = self.sum_field(ty?, field?)?;
                let (ty, window) = (ty?, window?);
                push_unique(&mut self.requirements.sums, (ty, slot, window));
                Some(Node::Double(Box::new(move |ctx| {
                    finite(ctx.sum(ty, slot, window))
                })))
            }
            "streak" => {
                let ty = self.event_type_arg(name, &args[0]);
                let period = self.period_arg(&args[1]);
                let (ty, period) = (ty?, period?);
                push_unique(&mut self.requirements.streaks, (ty, period));
                Some(Node::Int(Box::new(move |ctx| Some(ctx.streak(ty, period)))))
            }
            "has_badge" => {
                let (badge, span) = self.literal_arg(name, "badge name", &args[0])?;
                let badge = self.badge(badge, span)?;
                self.requirements.uses_player = true;
                Some(Node::Bool(Box::new(move |ctx| Some(ctx.has_badge(badge)))))
            }
            "stage_done" => self.stage_done(&args[0], &args[1]),
            "has" => self.has(&args[0]),
            _ => {
                // "size"
                let arg = self.expr(&args[0])?;
                if arg.ty() != Type::String {
                    self.mismatch(
                        args[0].span.clone(),
                        Type::String,
                        arg.ty(),
                        Some("size() measures a string".into()),
                    );
                    return None;
                }
                let text = arg.into_str();
                Some(Node::Int(Box::new(move |ctx| {
                    text.eval(ctx).map(|s| char_count(&s))
                })))
            }
        }
    }

    /// A string literal argument with its span, or an error.
    fn literal_arg<'e>(
        &mut self,
        call: &str,
        what: &str,
        arg: &'e Expr,
    ) -> Option<(&'e str, Span)> {
        match &arg.kind {
            ExprKind::Str(s) => Some((s.as_str(), arg.span.clone())),
            _ => {
                self.error(
                    arg.span.clone(),
                    format!("the {what} argument of {call}() must be a string literal"),
                    Some("names and windows are resolved when the configuration is checked".into()),
                );
                None
            }
        }
    }

    fn event_type_arg(&mut self, call: &str, arg: &Expr) -> Option<u16> {
        let (name, span) = self.literal_arg(call, "event type", arg)?;
        self.event_type(name, span)
    }

    fn window_arg(&mut self, call: &str, arg: &Expr) -> Option<i64> {
        let (text, span) = self.literal_arg(call, "window", arg)?;
        match parse_duration(text) {
            Ok(ms) => Some(ms),
            Err(message) => {
                self.error(
                    span,
                    format!("invalid window: {message}"),
                    Some("e.g. '10m', '1h30m', '7d'".into()),
                );
                None
            }
        }
    }

    fn period_arg(&mut self, arg: &Expr) -> Option<Period> {
        let (text, span) = self.literal_arg("streak", "period", arg)?;
        match text {
            "1d" => Some(Period::Day),
            "1w" => Some(Period::Week),
            other => {
                self.error(
                    span,
                    format!("unsupported streak period \"{other}\""),
                    Some("use '1d' (UTC days) or '1w' (ISO weeks)".into()),
                );
                None
            }
        }
    }

    fn sum_field(&mut self, ty: u16, (field, span): (&str, Span)) -> Option<u16> {
        let decl = self.schema.event_types.get(usize::from(ty))?;
        let Some(index) = decl.fields.iter().position(|f| f.name == field) else {
            let names: Vec<&str> = decl.fields.iter().map(|f| f.name.as_str()).collect();
            let help = suggest::help(field, &names);
            self.error(
                span,
                format!("unknown field \"{field}\" of event type \"{}\"", decl.name),
                help,
            );
            return None;
        };
        let field_ty = decl.fields[index].ty;
        if !matches!(field_ty, FieldType::Int | FieldType::Double) {
            let found = match field_ty {
                FieldType::Bool => "boolean",
                _ => "string",
            };
            let type_name = decl.name.clone();
            self.error(
                span,
                format!("sum() needs a number or integer field; \"{field}\" of event type \"{type_name}\" is a {found}"),
                Some("use count() to count events".into()),
            );
            return None;
        }
        self.index(index, span, "fields")
    }

    fn stage_done(&mut self, hunt_arg: &Expr, stage_arg: &Expr) -> Option<Node> {
        let hunt = self.literal_arg("stage_done", "hunt", hunt_arg);
        let stage = self.literal_arg("stage_done", "stage", stage_arg);
        let (hunt_name, hunt_span) = hunt?;
        let hunts: Vec<&str> = self.schema.hunts.iter().map(|h| h.name.as_str()).collect();
        let hunt = self.lookup("hunt", hunt_name, &hunts, hunt_span)?;
        let (stage_name, stage_span) = stage?;
        let decl = self.schema.hunts.get(usize::from(hunt))?;
        let stages: Vec<&str> = decl.stages.iter().map(String::as_str).collect();
        let stage = match stages.iter().position(|s| *s == stage_name) {
            Some(index) => self.index(index, stage_span, "stages")?,
            None => {
                let help = suggest::help(stage_name, &stages);
                let message = format!("unknown stage \"{stage_name}\" of hunt \"{}\"", decl.name);
                self.error(stage_span, message, help);
                return None;
            }
        };
        self.requirements.uses_player = true;
        Some(Node::Bool(Box::new(move |ctx| {
            Some(ctx.stage_done(hunt, stage))
        })))
    }

    fn has(&mut self, arg: &Expr) -> Option<Node> {
        let name = match &arg.kind {
            ExprKind::Member(target, name) if matches!(&target.kind, ExprKind::Ident(r) if r == "event") => {
                name
            }
            _ => {
                self.error(
                    arg.span.clone(),
                    "has() takes a field of the triggering event",
                    Some("e.g. has(event.currency)".into()),
                );
                return None;
            }
        };
        if RESERVED_EVENT_FIELDS.contains(&name.as_str()) {
            return Some(Node::Const(Lit::Bool(true)));
        }
        let (slot, _) = self.event_field(name, arg.span.clone())?;
        Some(Node::Bool(Box::new(move |ctx| {
            Some(!matches!(ctx.field(slot), Value::Missing))
        })))
    }

    fn method(
        &mut self,
        e: &Expr,
        target: &Expr,
        name: &str,
        name_span: &Span,
        args: &[Expr],
    ) -> Option<Node> {
        if !METHODS.contains(&name) {
            let help = if BUILTINS.contains(&name) {
                Some(format!("`{name}` is a function: write `{name}(...)`"))
            } else {
                suggest::help(name, &METHODS)
            };
            self.error(
                name_span.clone(),
                format!("unknown method \"{name}\""),
                help,
            );
            // Still check the receiver and arguments for their own errors.
            self.expr(target);
            args.iter().for_each(|a| {
                self.expr(a);
            });
            return None;
        }
        let receiver = self.expr(target);
        let compiled_args: Vec<Option<Node>> = args.iter().map(|a| self.expr(a)).collect();
        let receiver = receiver?;
        if receiver.ty() != Type::String {
            self.mismatch(
                target.span.clone(),
                Type::String,
                receiver.ty(),
                Some(format!("{name}() is a string method")),
            );
            return None;
        }
        let want = if name == "size" { 0 } else { 1 };
        if args.len() != want {
            let params = if want == 0 {
                "no arguments"
            } else {
                "1 argument"
            };
            self.error(
                e.span.clone(),
                format!("{name} expects {params}, found {}", args.len()),
                None,
            );
            return None;
        }
        let text = receiver.into_str();
        let Some(arg) = compiled_args.into_iter().next() else {
            return Some(Node::Int(Box::new(move |ctx| {
                text.eval(ctx).map(|s| char_count(&s))
            })));
        };
        let arg = arg?;
        if arg.ty() != Type::String {
            self.mismatch(args[0].span.clone(), Type::String, arg.ty(), None);
            return None;
        }
        let needle = arg.into_str();
        let f: fn(&str, &str) -> bool = match name {
            "startsWith" => |s, x| s.starts_with(x),
            "endsWith" => |s, x| s.ends_with(x),
            _ => |s, x| s.contains(x),
        };
        Some(Node::Bool(Box::new(move |ctx| {
            let s = text.eval(ctx)?;
            let x = needle.eval(ctx)?;
            Some(f(&s, &x))
        })))
    }

    // ----- operators -----

    fn unary(&mut self, e: &Expr, op: UnaryOp, operand: &Expr) -> Option<Node> {
        let node = self.expr(operand)?;
        match (op, node.ty()) {
            (UnaryOp::Not, Type::Bool) => {
                let f = node.into_bool();
                Some(Node::Bool(Box::new(move |ctx| {
                    Some(!f(ctx).unwrap_or(false))
                })))
            }
            (UnaryOp::Not, found) => {
                self.mismatch(
                    operand.span.clone(),
                    Type::Bool,
                    found,
                    Some("`!` negates a bool".into()),
                );
                None
            }
            (UnaryOp::Neg, Type::Int) => {
                let f = node.into_int().into_fn();
                Some(Node::Int(Box::new(move |ctx| f(ctx)?.checked_neg())))
            }
            (UnaryOp::Neg, Type::Double) => {
                let f = node.into_double().into_fn();
                Some(Node::Double(Box::new(move |ctx| f(ctx).map(|d| -d))))
            }
            (UnaryOp::Neg, found) => {
                self.error(e.span.clone(), format!("cannot negate a {found}"), None);
                None
            }
        }
    }

    fn binary(&mut self, e: &Expr, op: BinaryOp, a: &Expr, b: &Expr) -> Option<Node> {
        if op == BinaryOp::In {
            return self.in_op(a, b);
        }
        let left = self.expr(a);
        let right = self.expr(b);
        let (left, right) = (left?, right?);
        match op {
            BinaryOp::And | BinaryOp::Or => self.logical(op, left, right, a, b),
            BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::Eq
            | BinaryOp::Ne => self.comparison(e, op, left, right),
            _ => self.arithmetic(e, op, left, right),
        }
    }

    fn logical(
        &mut self,
        op: BinaryOp,
        left: Node,
        right: Node,
        a: &Expr,
        b: &Expr,
    ) -> Option<Node> {
        let help = || Some(format!("both operands of `{}` must be bool", op.symbol()));
        let mut ok = true;
        for (node, expr) in [(&left, a), (&right, b)] {
            if node.ty() != Type::Bool {
                self.mismatch(expr.span.clone(), Type::Bool, node.ty(), help());
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let (l, r) = (left.into_bool(), right.into_bool());
        // Missing counts as false; evaluation short-circuits left to right.
        Some(Node::Bool(if op == BinaryOp::And {
            Box::new(move |ctx| Some(l(ctx).unwrap_or(false) && r(ctx).unwrap_or(false)))
        } else {
            Box::new(move |ctx| Some(l(ctx).unwrap_or(false) || r(ctx).unwrap_or(false)))
        }))
    }

    fn comparison(&mut self, e: &Expr, op: BinaryOp, left: Node, right: Node) -> Option<Node> {
        let ordering = !matches!(op, BinaryOp::Eq | BinaryOp::Ne);
        let f = match (left.ty(), right.ty()) {
            (Type::Int, Type::Int) => {
                let (l, r) = (left.into_int(), right.into_int());
                with_pred!(op, P => compare::<i64, P>(l, r))
            }
            (Type::Double, Type::Double) => {
                let (l, r) = (left.into_double(), right.into_double());
                with_pred!(op, P => compare::<f64, P>(l, r))
            }
            (Type::Int, Type::Double) | (Type::Double, Type::Int) => {
                mixed_comparison(op, left, right)
            }
            (Type::String, Type::String) => {
                let (l, r) = (left.into_str(), right.into_str());
                with_pred!(op, P => compare_str::<P>(l, r))
            }
            (Type::Bool, Type::Bool) if !ordering => {
                let (l, r) = (
                    Operand::Dyn(left.into_bool()),
                    Operand::Dyn(right.into_bool()),
                );
                with_pred!(op, P => compare::<bool, P>(l, r))
            }
            (Type::Bool, Type::Bool) => {
                self.error(
                    e.span.clone(),
                    format!("cannot order bool values with `{}`", op.symbol()),
                    None,
                );
                return None;
            }
            (l, r) => {
                self.error(e.span.clone(), format!("cannot compare {l} with {r}"), None);
                return None;
            }
        };
        Some(Node::Bool(f))
    }

    fn arithmetic(&mut self, e: &Expr, op: BinaryOp, left: Node, right: Node) -> Option<Node> {
        match (left.ty(), right.ty()) {
            (Type::Int, Type::Int) => {
                let (l, r) = (left.into_int().into_fn(), right.into_int().into_fn());
                Some(Node::Int(int_arithmetic(op, l, r)))
            }
            (Type::Int | Type::Double, Type::Int | Type::Double) => {
                if op == BinaryOp::Rem {
                    self.error(
                        e.span.clone(),
                        "`%` needs int operands, found double",
                        Some("the remainder is defined for integers only".into()),
                    );
                    return None;
                }
                let (l, r) = (left.into_double().into_fn(), right.into_double().into_fn());
                Some(Node::Double(double_arithmetic(op, l, r)))
            }
            (Type::String, Type::String) if op == BinaryOp::Add => {
                let (l, r) = (left.into_str(), right.into_str());
                Some(Node::Str(StrNode::Concat(Box::new(l), Box::new(r))))
            }
            (l, r) => {
                self.error(
                    e.span.clone(),
                    format!("cannot apply `{}` to {l} and {r}", op.symbol()),
                    None,
                );
                None
            }
        }
    }

    fn ternary(&mut self, e: &Expr, c: &Expr, a: &Expr, b: &Expr) -> Option<Node> {
        let cond = self.expr(c);
        let then = self.expr(a);
        let otherwise = self.expr(b);
        let (cond, then, otherwise) = (cond?, then?, otherwise?);
        if cond.ty() != Type::Bool {
            self.mismatch(
                c.span.clone(),
                Type::Bool,
                cond.ty(),
                Some("the condition of `?:` must be bool".into()),
            );
            return None;
        }
        let Some(ty) = type_pair_ty(then.ty(), otherwise.ty()) else {
            let message = format!(
                "the branches of `?:` have different types: {} and {}",
                then.ty(),
                otherwise.ty()
            );
            self.error(e.span.clone(), message, None);
            return None;
        };
        let cond = cond.into_bool();
        // A missing condition counts as false, like in `&&` and `||`.
        Some(match ty {
            Type::Bool => {
                let (t, o) = (then.into_bool(), otherwise.into_bool());
                Node::Bool(Box::new(move |ctx| {
                    if cond(ctx).unwrap_or(false) {
                        t(ctx)
                    } else {
                        o(ctx)
                    }
                }))
            }
            Type::Int => {
                let (t, o) = (then.into_int().into_fn(), otherwise.into_int().into_fn());
                Node::Int(Box::new(move |ctx| {
                    if cond(ctx).unwrap_or(false) {
                        t(ctx)
                    } else {
                        o(ctx)
                    }
                }))
            }
            Type::Double => {
                let (t, o) = (
                    then.into_double().into_fn(),
                    otherwise.into_double().into_fn(),
                );
                Node::Double(Box::new(move |ctx| {
                    if cond(ctx).unwrap_or(false) {
                        t(ctx)
                    } else {
                        o(ctx)
                    }
                }))
            }
            Type::String => Node::Str(StrNode::Cond(
                cond,
                Box::new(then.into_str()),
                Box::new(otherwise.into_str()),
            )),
        })
    }

    fn in_op(&mut self, a: &Expr, b: &Expr) -> Option<Node> {
        let is_badges = matches!(&b.kind, ExprKind::Member(t, name)
            if name == "badges" && matches!(&t.kind, ExprKind::Ident(r) if r == "player"));
        if is_badges {
            return self.in_badges(a);
        }
        let left = self.expr(a);
        let ExprKind::List(items) = &b.kind else {
            if let Some(right) = self.expr(b) {
                self.error(
                    b.span.clone(),
                    format!("the right operand of `in` must be a list literal or player.badges, found {}", right.ty()),
                    Some("e.g. `event.item in ['map', 'key']`".into()),
                );
            }
            return None;
        };
        let left = left?;
        let lhs_ty = left.ty();
        let mut elements = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let lit = match &item.kind {
                ExprKind::Int(i) => Lit::Int(*i),
                ExprKind::Double(d) => Lit::Double(*d),
                ExprKind::Str(s) => Lit::Str(s.as_str().into()),
                ExprKind::Bool(v) => Lit::Bool(*v),
                _ => {
                    self.error(item.span.clone(), "list elements must be literals", None);
                    ok = false;
                    continue;
                }
            };
            if type_pair_ty(lhs_ty, lit.ty()).is_none() {
                self.error(
                    item.span.clone(),
                    format!("cannot compare {lhs_ty} with {}", lit.ty()),
                    Some(format!("the left operand of `in` is {lhs_ty}")),
                );
                ok = false;
                continue;
            }
            elements.push(lit);
        }
        if !ok {
            return None;
        }
        Some(Node::Bool(in_list(left, elements)))
    }

    fn in_badges(&mut self, a: &Expr) -> Option<Node> {
        self.requirements.uses_player = true;
        if let ExprKind::Str(name) = &a.kind {
            let badge = self.badge(name, a.span.clone())?;
            return Some(Node::Bool(Box::new(move |ctx| Some(ctx.has_badge(badge)))));
        }
        let left = self.expr(a)?;
        if left.ty() != Type::String {
            self.mismatch(
                a.span.clone(),
                Type::String,
                left.ty(),
                Some("badges are named by strings".into()),
            );
            return None;
        }
        let name = left.into_str();
        Some(Node::Bool(Box::new(move |ctx| {
            Some(name.eval(ctx).is_some_and(|n| ctx.has_badge_named(&n)))
        })))
    }
}

fn mixed_comparison(op: BinaryOp, left: Node, right: Node) -> BoolFn {
    // The common `event.amount >= 50` (double field, int literal) becomes a
    // double comparison with a constant when the literal converts exactly.
    let exact_const =
        |node: &Node| matches!(node, Node::Const(Lit::Int(i)) if i.abs() <= EXACT_INT_IN_DOUBLE);
    if exact_const(&left) || exact_const(&right) {
        let (l, r) = (left.into_double(), right.into_double());
        return with_pred!(op, P => compare::<f64, P>(l, r));
    }
    let int_on_left = left.ty() == Type::Int;
    let (int_node, double_node) = if int_on_left {
        (left, right)
    } else {
        (right, left)
    };
    let (i, d) = (
        int_node.into_int().into_fn(),
        double_node.into_double().into_fn(),
    );
    with_pred!(op, P => compare_int_double::<P>(i, d, int_on_left))
}

fn int_arithmetic(op: BinaryOp, l: IntFn, r: IntFn) -> IntFn {
    macro_rules! checked {
        ($f:path) => {
            Box::new(move |ctx| $f(l(ctx)?, r(ctx)?))
        };
    }
    match op {
        BinaryOp::Add => checked!(i64::checked_add),
        BinaryOp::Sub => checked!(i64::checked_sub),
        BinaryOp::Mul => checked!(i64::checked_mul),
        BinaryOp::Div => checked!(i64::checked_div),
        _ => checked!(i64::checked_rem),
    }
}

/// Non-finite results (division by zero, overflow to infinity) are
/// evaluation errors, hence missing: infinities and NaN never leak into
/// comparisons.
fn double_arithmetic(op: BinaryOp, l: DoubleFn, r: DoubleFn) -> DoubleFn {
    macro_rules! arith {
        ($op:tt) => {
            Box::new(move |ctx| finite(l(ctx)? $op r(ctx)?))
        };
    }
    match op {
        BinaryOp::Add => arith!(+),
        BinaryOp::Sub => arith!(-),
        BinaryOp::Mul => arith!(*),
        _ => arith!(/),
    }
}

fn in_list(left: Node, elements: Vec<Lit>) -> BoolFn {
    let mut ints = Vec::new();
    let mut doubles = Vec::new();
    let mut strs = Vec::new();
    let mut bools = Vec::new();
    for element in elements {
        match element {
            Lit::Int(i) => ints.push(i),
            Lit::Double(d) => doubles.push(d),
            Lit::Str(s) => strs.push(s),
            Lit::Bool(b) => bools.push(b),
        }
    }
    match left.ty() {
        Type::Int => {
            let f = left.into_int().into_fn();
            Box::new(move |ctx| {
                Some(f(ctx).is_some_and(|x| {
                    ints.contains(&x)
                        || doubles
                            .iter()
                            .any(|d| cmp_int_double(x, *d) == Some(Ordering::Equal))
                }))
            })
        }
        Type::Double => {
            let f = left.into_double().into_fn();
            Box::new(move |ctx| {
                Some(f(ctx).is_some_and(|x| {
                    doubles.contains(&x)
                        || ints
                            .iter()
                            .any(|i| cmp_int_double(*i, x) == Some(Ordering::Equal))
                }))
            })
        }
        Type::String => {
            let s = left.into_str();
            Box::new(move |ctx| Some(s.eval(ctx).is_some_and(|x| strs.iter().any(|e| **e == *x))))
        }
        _ => {
            let f = left.into_bool();
            Box::new(move |ctx| Some(f(ctx).is_some_and(|x| bools.contains(&x))))
        }
    }
}

/// CEL's size() counts Unicode code points, not bytes.
fn char_count(s: &str) -> i64 {
    i64::try_from(s.chars().count()).unwrap_or(i64::MAX)
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_double_ordering_is_exact() {
        assert_eq!(cmp_int_double(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_double(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_double(2, 1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_double(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_double(-2, -1.5), Some(Ordering::Less));
        assert_eq!(
            cmp_int_double(9_007_199_254_740_993, 9_007_199_254_740_992.0),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp_int_double(i64::MAX, 9.3e18), Some(Ordering::Less));
        assert_eq!(cmp_int_double(i64::MIN, -9.3e18), Some(Ordering::Greater));
        assert_eq!(
            cmp_int_double(i64::MIN, -9_223_372_036_854_775_808.0),
            Some(Ordering::Equal)
        );
        assert_eq!(cmp_int_double(0, f64::NAN), None);
        assert_eq!(cmp_int_double(0, -0.0), Some(Ordering::Equal));
    }
}
