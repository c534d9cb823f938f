//! Pratt parser from tokens to an untyped syntax tree with a byte span on
//! every node.
//!
//! Names are not resolved here: `event.amout` parses fine and is reported by
//! the checker, which can then report every unknown name at once.

use crate::lexer::{Tok, Token, tokenize};
use crate::{ExprError, MAX_DEPTH, Span};

#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Int(i64),
    Double(f64),
    Str(String),
    Bool(bool),
    List(Vec<Expr>),
    Ident(String),
    /// `target.name`.
    Member(Box<Expr>, String),
    /// `name(args)`.
    Call(String, Span, Vec<Expr>),
    /// `target.name(args)`.
    Method(Box<Expr>, String, Span, Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// Binding powers, lowest first. Left-associative operators bind their right
/// operand one level tighter. Mirrors CEL: `?:` < `||` < `&&` < relations
/// (including `in`) < `+ -` < `* / %` < unary < member access and calls.
const BP_TERNARY: u8 = 1;
const BP_OR: u8 = 3;
const BP_AND: u8 = 5;
const BP_REL: u8 = 7;
const BP_ADD: u8 = 9;
const BP_MUL: u8 = 11;
const BP_UNARY: u8 = 13;

fn infix(tok: &Tok) -> Option<(BinaryOp, u8)> {
    Some(match tok {
        Tok::OrOr => (BinaryOp::Or, BP_OR),
        Tok::AndAnd => (BinaryOp::And, BP_AND),
        Tok::Lt => (BinaryOp::Lt, BP_REL),
        Tok::Le => (BinaryOp::Le, BP_REL),
        Tok::Gt => (BinaryOp::Gt, BP_REL),
        Tok::Ge => (BinaryOp::Ge, BP_REL),
        Tok::EqEq => (BinaryOp::Eq, BP_REL),
        Tok::Ne => (BinaryOp::Ne, BP_REL),
        Tok::In => (BinaryOp::In, BP_REL),
        Tok::Plus => (BinaryOp::Add, BP_ADD),
        Tok::Minus => (BinaryOp::Sub, BP_ADD),
        Tok::Star => (BinaryOp::Mul, BP_MUL),
        Tok::Slash => (BinaryOp::Div, BP_MUL),
        Tok::Percent => (BinaryOp::Rem, BP_MUL),
        _ => return None,
    })
}

/// Parses a whole expression. Syntax errors stop at the first one: after a
/// syntax error the rest of the token stream rarely means anything.
pub(crate) fn parse(src: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.expr(0)?;
    let next = parser.peek();
    if next.tok != Tok::Eof {
        let help = match next.tok {
            Tok::RParen | Tok::RBracket => Some("this closing bracket has no opening one".into()),
            _ => Some("an expression ends here; join conditions with && or ||".into()),
        };
        return Err(ExprError::new(
            next.span.clone(),
            format!("unexpected {}", next.tok.describe()),
            help,
        ));
    }
    check_height(&expr)?;
    Ok(expr)
}

/// The parser's recursion guard does not see left-nested chains such as
/// `1+1+1+…`, which the Pratt loop builds without recursing; the checker and
/// evaluator do recurse over them, so the tree height is bounded separately.
/// Iterative, so that the check itself cannot overflow the stack.
fn check_height(root: &Expr) -> Result<(), ExprError> {
    let mut stack = vec![(root, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(too_deep(node.span.clone()));
        }
        node.for_each_child(|child| stack.push((child, depth + 1)));
    }
    Ok(())
}

fn too_deep(span: Span) -> ExprError {
    ExprError::new(
        span,
        format!("expression is nested too deeply (the limit is {MAX_DEPTH} levels)"),
        Some("split the condition or simplify it".into()),
    )
}

impl Expr {
    pub(crate) fn for_each_child<'a>(&'a self, mut f: impl FnMut(&'a Expr)) {
        match &self.kind {
            ExprKind::Int(_)
            | ExprKind::Double(_)
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::Ident(_) => {}
            ExprKind::List(items) | ExprKind::Call(_, _, items) => items.iter().for_each(f),
            ExprKind::Member(target, _) | ExprKind::Unary(_, target) => f(target),
            ExprKind::Method(target, _, _, args) => {
                f(target);
                args.iter().for_each(f);
            }
            ExprKind::Binary(_, a, b) => {
                f(a);
                f(b);
            }
            ExprKind::Ternary(a, b, c) => {
                f(a);
                f(b);
                f(c);
            }
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // `tokenize` always ends the vector with `Eof` and `bump` never moves
        // past it, so `pos` is in bounds; `last` is the defensive fallback.
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if token.tok != Tok::Eof {
            self.pos += 1;
        }
        token
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<Token, ExprError> {
        let next = self.peek();
        if next.tok == want {
            Ok(self.bump())
        } else {
            Err(ExprError::new(
                next.span.clone(),
                format!("expected {what}, found {}", next.tok.describe()),
                None,
            ))
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(self.peek().span.clone()));
        }
        Ok(())
    }

    fn expr(&mut self, min_bp: u8) -> Result<Expr, ExprError> {
        self.enter()?;
        let result = self.expr_inner(min_bp);
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<Expr, ExprError> {
        let mut lhs = self.prefix()?;
        loop {
            let next = self.peek().tok.clone();
            if next == Tok::Question {
                if BP_TERNARY < min_bp {
                    break;
                }
                self.bump();
                // As in CEL, the middle operand is a `||`-level expression
                // (a nested ternary there needs parentheses) and the last one
                // is right-associative.
                let then = self.expr(BP_OR)?;
                self.expect(Tok::Colon, "`:` of the conditional")?;
                let otherwise = self.expr(BP_TERNARY)?;
                let span = lhs.span.start..otherwise.span.end;
                lhs = Expr {
                    kind: ExprKind::Ternary(Box::new(lhs), Box::new(then), Box::new(otherwise)),
                    span,
                };
                continue;
            }
            let Some((op, bp)) = infix(&next) else { break };
            if bp < min_bp {
                break;
            }
            self.bump();
            let rhs = self.expr(bp + 1)?;
            let span = lhs.span.start..rhs.span.end;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Expr, ExprError> {
        let token = self.bump();
        let start = token.span.start;
        let expr = match token.tok {
            Tok::Bang | Tok::Minus => {
                let op = if token.tok == Tok::Bang {
                    UnaryOp::Not
                } else {
                    UnaryOp::Neg
                };
                // Fold `-<literal>` so that `i64::MIN` can be written and list
                // literals may hold negative numbers.
                if op == UnaryOp::Neg
                    && let Some(folded) = self.negative_literal(start)?
                {
                    return self.postfix(folded);
                }
                let operand = self.expr(BP_UNARY)?;
                let span = start..operand.span.end;
                return Ok(Expr {
                    kind: ExprKind::Unary(op, Box::new(operand)),
                    span,
                });
            }
            Tok::Int(n) => match i64::try_from(n) {
                Ok(n) => Expr {
                    kind: ExprKind::Int(n),
                    span: token.span,
                },
                Err(_) => {
                    return Err(ExprError::new(
                        token.span,
                        "integer literal out of range",
                        Some(format!("integers are 64-bit: at most {}", i64::MAX)),
                    ));
                }
            },
            Tok::Double(d) => Expr {
                kind: ExprKind::Double(d),
                span: token.span,
            },
            Tok::Str(s) => Expr {
                kind: ExprKind::Str(s),
                span: token.span,
            },
            Tok::True => Expr {
                kind: ExprKind::Bool(true),
                span: token.span,
            },
            Tok::False => Expr {
                kind: ExprKind::Bool(false),
                span: token.span,
            },
            Tok::LParen => {
                let inner = self.expr(0)?;
                let close = self.expect(Tok::RParen, "`)`")?;
                // The span grows to include the parentheses so that an error
                // on `(a + b)` underlines what the user sees as one operand.
                Expr {
                    kind: inner.kind,
                    span: start..close.span.end,
                }
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                if self.peek().tok != Tok::RBracket {
                    loop {
                        items.push(self.expr(0)?);
                        if self.peek().tok == Tok::Comma {
                            self.bump();
                            // CEL allows a trailing comma.
                            if self.peek().tok == Tok::RBracket {
                                break;
                            }
                        } else {
                            break;
                        }
                    }
                }
                let close = self.expect(Tok::RBracket, "`,` or `]`")?;
                Expr {
                    kind: ExprKind::List(items),
                    span: start..close.span.end,
                }
            }
            Tok::Ident(name) => {
                if self.peek().tok == Tok::LParen {
                    let name_span = token.span.clone();
                    let (args, end) = self.arguments()?;
                    Expr {
                        kind: ExprKind::Call(name, name_span, args),
                        span: start..end,
                    }
                } else {
                    Expr {
                        kind: ExprKind::Ident(name),
                        span: token.span,
                    }
                }
            }
            other => {
                return Err(ExprError::new(
                    token.span,
                    format!("expected an expression, found {}", other.describe()),
                    None,
                ));
            }
        };
        self.postfix(expr)
    }

    fn negative_literal(&mut self, minus_start: usize) -> Result<Option<Expr>, ExprError> {
        let next = self.peek().clone();
        let kind = match next.tok {
            Tok::Int(n) => {
                let value = if n == i64::MIN.unsigned_abs() {
                    i64::MIN
                } else {
                    match i64::try_from(n) {
                        Ok(v) => -v,
                        Err(_) => {
                            return Err(ExprError::new(
                                minus_start..next.span.end,
                                "integer literal out of range",
                                Some(format!("integers are 64-bit: at least {}", i64::MIN)),
                            ));
                        }
                    }
                };
                ExprKind::Int(value)
            }
            Tok::Double(d) => ExprKind::Double(-d),
            _ => return Ok(None),
        };
        // `-2.foo` is not a literal followed by a member: member access binds
        // tighter than unary minus, so only fold when nothing postfix follows.
        if matches!(
            self.tokens.get(self.pos + 1).map(|t| &t.tok),
            Some(Tok::Dot)
        ) {
            return Ok(None);
        }
        self.bump();
        Ok(Some(Expr {
            kind,
            span: minus_start..next.span.end,
        }))
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ExprError> {
        while self.peek().tok == Tok::Dot {
            self.bump();
            let name_token = self.bump();
            let Tok::Ident(name) = name_token.tok else {
                return Err(ExprError::new(
                    name_token.span,
                    format!(
                        "expected a field or method name after `.`, found {}",
                        name_token.tok.describe()
                    ),
                    None,
                ));
            };
            let name_span = name_token.span;
            if self.peek().tok == Tok::LParen {
                let (args, end) = self.arguments()?;
                let span = expr.span.start..end;
                expr = Expr {
                    kind: ExprKind::Method(Box::new(expr), name, name_span, args),
                    span,
                };
            } else {
                let span = expr.span.start..name_span.end;
                expr = Expr {
                    kind: ExprKind::Member(Box::new(expr), name),
                    span,
                };
            }
        }
        if self.peek().tok == Tok::LBracket {
            return Err(ExprError::new(
                self.peek().span.clone(),
                "indexing with `[...]` is not supported",
                Some("read fields with `.`, e.g. player.balances.coins".into()),
            ));
        }
        Ok(expr)
    }

    /// Parses `( args )`, returning the arguments and the end of `)`.
    fn arguments(&mut self) -> Result<(Vec<Expr>, usize), ExprError> {
        self.expect(Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.expr(0)?);
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let close = self.expect(Tok::RParen, "`,` or `)`")?;
        Ok((args, close.span.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// Fully parenthesised rendering, so precedence tests read naturally.
    fn show(e: &Expr) -> String {
        let mut out = String::new();
        render(e, &mut out);
        out
    }

    fn render(e: &Expr, out: &mut String) {
        let list = |items: &[Expr], out: &mut String| {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
        };
        match &e.kind {
            ExprKind::Int(n) => write!(out, "{n}").unwrap_or(()),
            ExprKind::Double(d) => write!(out, "{d:?}").unwrap_or(()),
            ExprKind::Str(s) => write!(out, "{s:?}").unwrap_or(()),
            ExprKind::Bool(b) => write!(out, "{b}").unwrap_or(()),
            ExprKind::Ident(name) => out.push_str(name),
            ExprKind::List(items) => {
                out.push('[');
                list(items, out);
                out.push(']');
            }
            ExprKind::Member(t, name) => {
                render(t, out);
                write!(out, ".{name}").unwrap_or(());
            }
            ExprKind::Call(name, _, args) => {
                write!(out, "{name}(").unwrap_or(());
                list(args, out);
                out.push(')');
            }
            ExprKind::Method(t, name, _, args) => {
                render(t, out);
                write!(out, ".{name}(").unwrap_or(());
                list(args, out);
                out.push(')');
            }
            ExprKind::Unary(op, a) => {
                out.push_str(if *op == UnaryOp::Not { "(!" } else { "(-" });
                render(a, out);
                out.push(')');
            }
            ExprKind::Binary(op, a, b) => {
                out.push('(');
                render(a, out);
                write!(out, " {} ", op.symbol()).unwrap_or(());
                render(b, out);
                out.push(')');
            }
            ExprKind::Ternary(a, b, c) => {
                out.push('(');
                render(a, out);
                out.push_str(" ? ");
                render(b, out);
                out.push_str(" : ");
                render(c, out);
                out.push(')');
            }
        }
    }

    fn p(src: &str) -> String {
        match parse(src) {
            Ok(e) => show(&e),
            Err(e) => panic!("{src}: {e:?}"),
        }
    }

    #[test]
    fn precedence() {
        assert_eq!(p("1 + 2 * 3"), "(1 + (2 * 3))");
        assert_eq!(p("1 - 2 - 3"), "((1 - 2) - 3)");
        assert_eq!(p("8 / 4 % 3"), "((8 / 4) % 3)");
        assert_eq!(p("a || b && c"), "(a || (b && c))");
        assert_eq!(p("a && b || c && d"), "((a && b) || (c && d))");
        assert_eq!(p("1 + 2 < 3 * 4 == true"), "(((1 + 2) < (3 * 4)) == true)");
        assert_eq!(p("!a && b"), "((!a) && b)");
        assert_eq!(p("-a.b * 2"), "((-a.b) * 2)");
        assert_eq!(p("!!a"), "(!(!a))");
        assert_eq!(p("x in ['a', 'b'] && y"), "((x in [\"a\", \"b\"]) && y)");
        assert_eq!(p("a + 1 in [2, -3]"), "((a + 1) in [2, -3])");
        assert_eq!(p("(1 + 2) * 3"), "((1 + 2) * 3)");
    }

    #[test]
    fn ternary() {
        assert_eq!(p("a ? b : c"), "(a ? b : c)");
        assert_eq!(p("a || b ? 1 : 2"), "((a || b) ? 1 : 2)");
        assert_eq!(p("a ? 1 : b ? 2 : 3"), "(a ? 1 : (b ? 2 : 3))");
        assert_eq!(p("a ? x + 1 : y * 2"), "(a ? (x + 1) : (y * 2))");
        // CEL needs parentheses around a conditional in the middle operand.
        assert!(parse("a ? b ? 1 : 2 : 3").is_err());
        assert_eq!(p("a ? (b ? 1 : 2) : 3"), "(a ? (b ? 1 : 2) : 3)");
    }

    #[test]
    fn members_calls_and_methods() {
        assert_eq!(p("player.balances.coins"), "player.balances.coins");
        assert_eq!(
            p("count('login', '1h') >= 3"),
            "(count(\"login\", \"1h\") >= 3)"
        );
        assert_eq!(
            p("event.place.startsWith('har')"),
            "event.place.startsWith(\"har\")"
        );
        assert_eq!(p("size(event.place) + 1"), "(size(event.place) + 1)");
        assert_eq!(p("f()"), "f()");
    }

    #[test]
    fn negative_literals() {
        assert_eq!(p("-3"), "-3");
        assert_eq!(p("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(p("- 1.5"), "-1.5");
        assert_eq!(p("2 - -3"), "(2 - -3)");
        assert!(parse("-9223372036854775809").is_err());
        assert!(parse("9223372036854775808").is_err());
    }

    #[test]
    fn spans_cover_nodes() {
        let e = parse("event.amount >= 50").expect("parses");
        assert_eq!(e.span, 0..18);
        let ExprKind::Binary(_, lhs, rhs) = &e.kind else {
            panic!("binary")
        };
        assert_eq!(lhs.span, 0..12);
        assert_eq!(rhs.span, 16..18);
        let e = parse(" (a) ").expect("parses");
        assert_eq!(e.span, 1..4);
    }

    #[test]
    fn syntax_errors() {
        let cases = [
            ("", "expected an expression, found end of expression", 0..0),
            (
                "1 +",
                "expected an expression, found end of expression",
                3..3,
            ),
            ("(1", "expected `)`, found end of expression", 2..2),
            ("a b", "unexpected `b`", 2..3),
            ("a)", "unexpected `)`", 1..2),
            (
                "a.1",
                "expected a field or method name after `.`, found integer `1`",
                2..3,
            ),
            ("a[0]", "indexing with `[...]` is not supported", 1..2),
            ("f(1,)", "expected an expression, found `)`", 4..5),
            (
                "a ? b",
                "expected `:` of the conditional, found end of expression",
                5..5,
            ),
        ];
        for (src, message, span) in cases {
            let err = parse(src).expect_err(src);
            assert_eq!(err.message, message, "{src}");
            assert_eq!(err.span, span, "{src}");
        }
    }

    #[test]
    fn depth_limits() {
        let nested = format!("{}1{}", "(".repeat(65), ")".repeat(65));
        assert!(
            parse(&nested)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let ok = format!("{}1{}", "(".repeat(60), ")".repeat(60));
        assert!(parse(&ok).is_ok());
        let chain = vec!["1"; 100].join(" + ");
        assert!(
            parse(&chain)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let nots = format!("{}true", "!".repeat(200));
        assert!(
            parse(&nots)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let negs = format!("{}x", "-".repeat(200));
        assert!(parse(&negs).is_err());
    }
}
