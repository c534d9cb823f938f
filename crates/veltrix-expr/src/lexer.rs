//! Tokens of the expression language.
//!
//! The whole source is tokenised up front: expressions are at most
//! [`crate::MAX_SOURCE_LEN`] bytes, so a token vector is cheap, and it lets the
//! parser peek freely without re-scanning.

use crate::{ExprError, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Unsigned on purpose: `-9223372036854775808` is a negated literal whose
    /// magnitude does not fit `i64`; the parser folds the sign in.
    Int(u64),
    Double(f64),
    Str(String),
    Ident(String),
    True,
    False,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Question,
    Colon,
    Bang,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    AndAnd,
    OrOr,
    Eof,
}

impl Tok {
    /// How a token is named in "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Int(n) => format!("integer `{n}`"),
            Tok::Double(d) => format!("number `{d}`"),
            Tok::Str(_) => "string literal".to_string(),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::True => "`true`".to_string(),
            Tok::False => "`false`".to_string(),
            Tok::In => "`in`".to_string(),
            Tok::Eof => "end of expression".to_string(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Question => "?",
            Tok::Colon => ":",
            Tok::Bang => "!",
            Tok::Minus => "-",
            Tok::Plus => "+",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            _ => "?",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`]. Stops at the first error.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_digit() {
            let (tok, end) = number(src, start)?;
            i = end;
            tok
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            match &src[start..i] {
                "true" => Tok::True,
                "false" => Tok::False,
                "in" => Tok::In,
                "null" => {
                    return Err(ExprError::new(
                        start..i,
                        "`null` is not supported",
                        Some(
                            "use has(event.field) to test whether an optional field is present"
                                .into(),
                        ),
                    ));
                }
                word => Tok::Ident(word.to_string()),
            }
        } else if c == b'\'' || c == b'"' {
            let (text, end) = string(src, start)?;
            i = end;
            Tok::Str(text)
        } else {
            let next = bytes.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                (b'<', Some(b'=')) => (Tok::Le, 2),
                (b'>', Some(b'=')) => (Tok::Ge, 2),
                (b'=', Some(b'=')) => (Tok::EqEq, 2),
                (b'!', Some(b'=')) => (Tok::Ne, 2),
                (b'&', Some(b'&')) => (Tok::AndAnd, 2),
                (b'|', Some(b'|')) => (Tok::OrOr, 2),
                (b'(', _) => (Tok::LParen, 1),
                (b')', _) => (Tok::RParen, 1),
                (b'[', _) => (Tok::LBracket, 1),
                (b']', _) => (Tok::RBracket, 1),
                (b',', _) => (Tok::Comma, 1),
                (b'.', _) => (Tok::Dot, 1),
                (b'?', _) => (Tok::Question, 1),
                (b':', _) => (Tok::Colon, 1),
                (b'!', _) => (Tok::Bang, 1),
                (b'-', _) => (Tok::Minus, 1),
                (b'+', _) => (Tok::Plus, 1),
                (b'*', _) => (Tok::Star, 1),
                (b'/', _) => (Tok::Slash, 1),
                (b'%', _) => (Tok::Percent, 1),
                (b'<', _) => (Tok::Lt, 1),
                (b'>', _) => (Tok::Gt, 1),
                (b'=', _) => return Err(near_miss(start, "=", "==")),
                (b'&', _) => return Err(near_miss(start, "&", "&&")),
                (b'|', _) => return Err(near_miss(start, "|", "||")),
                _ => {
                    // Report the whole character, not one byte of it, so the
                    // span stays on a UTF-8 boundary.
                    let ch = src[start..].chars().next().unwrap_or('\u{fffd}');
                    return Err(ExprError::new(
                        start..start + ch.len_utf8(),
                        format!("unexpected character `{}`", ch.escape_debug()),
                        None,
                    ));
                }
            };
            i += len;
            tok
        };
        tokens.push(Token {
            tok,
            span: start..i,
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        span: src.len()..src.len(),
    });
    Ok(tokens)
}

fn near_miss(at: usize, found: &str, meant: &str) -> ExprError {
    ExprError::new(
        at..at + found.len(),
        format!("unexpected `{found}`"),
        Some(format!("did you mean `{meant}`?")),
    )
}

/// Integer (`42`) or double (`1.5`, `2e3`, `1.5e-3`) starting at `start`.
fn number(src: &str, start: usize) -> Result<(Tok, usize), ExprError> {
    let bytes = src.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut is_double = false;
    // A dot only continues the number when a digit follows, so that a future
    // `1.method()` or a typo like `1.` is not silently swallowed.
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        is_double = true;
        i = digits(i + 1);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            is_double = true;
            i = digits(j);
        } else {
            return Err(ExprError::new(start..j, "exponent has no digits", None));
        }
    }
    if i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_') {
        let mut end = i;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        return Err(ExprError::new(
            start..end,
            format!("invalid number `{}`", &src[start..end]),
            None,
        ));
    }
    let text = &src[start..i];
    let tok = if is_double {
        match text.parse::<f64>() {
            Ok(d) if d.is_finite() => Tok::Double(d),
            _ => {
                return Err(ExprError::new(
                    start..i,
                    "number literal out of range",
                    None,
                ));
            }
        }
    } else {
        match text.parse::<u64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => {
                return Err(ExprError::new(
                    start..i,
                    "integer literal out of range",
                    Some(format!("integers are 64-bit: at most {}", i64::MAX)),
                ));
            }
        }
    };
    Ok((tok, i))
}

/// A single- or double-quoted string starting at `start`; returns its value and end.
fn string(src: &str, start: usize) -> Result<(String, usize), ExprError> {
    let quote = src.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((offset, ch)) = chars.next() {
        let at = start + 1 + offset;
        match ch {
            c if c == quote => return Ok((out, at + 1)),
            '\\' => {
                let Some((_, esc)) = chars.next() else { break };
                let value = match esc {
                    '\\' => '\\',
                    '\'' => '\'',
                    '"' => '"',
                    'n' => '\n',
                    't' => '\t',
                    other => {
                        return Err(ExprError::new(
                            at..at + 1 + other.len_utf8(),
                            format!("unknown escape `\\{}`", other.escape_debug()),
                            Some(r#"supported escapes: \\ \' \" \n \t"#.to_string()),
                        ));
                    }
                };
                out.push(value);
            }
            '\n' | '\r' => {
                return Err(ExprError::new(
                    start..at,
                    "unterminated string",
                    Some("strings cannot span lines; use \\n".to_string()),
                ));
            }
            c => out.push(c),
        }
    }
    Err(ExprError::new(
        start..src.len(),
        "unterminated string",
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("42 1.5 2e3 1.5E-2"),
            vec![
                Tok::Int(42),
                Tok::Double(1.5),
                Tok::Double(2000.0),
                Tok::Double(0.015),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("9223372036854775808"),
            vec![Tok::Int(9_223_372_036_854_775_808), Tok::Eof]
        );
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("1e").is_err());
        assert!(tokenize("12abc").is_err());
        assert!(tokenize("1e999").is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#"'a\'b' "c\"d" '\\\n\t' "é""#),
            vec![
                Tok::Str("a'b".into()),
                Tok::Str("c\"d".into()),
                Tok::Str("\\\n\t".into()),
                Tok::Str("é".into()),
                Tok::Eof
            ]
        );
        let err = tokenize(r"'a\qb'").unwrap_err();
        assert_eq!(err.span, 2..4);
        let err = tokenize("'abc").unwrap_err();
        assert_eq!(err.message, "unterminated string");
        assert!(tokenize("'a\\").is_err());
    }

    #[test]
    fn operators_and_spans() {
        let tokens = tokenize("a<=b&&!c").expect("lexes");
        let spans: Vec<_> = tokens.iter().map(|t| t.span.clone()).collect();
        assert_eq!(spans, vec![0..1, 1..3, 3..4, 4..6, 6..7, 7..8, 8..8]);
        assert_eq!(
            tokenize("a = b").unwrap_err().help.as_deref(),
            Some("did you mean `==`?")
        );
        let err = tokenize("a € b").unwrap_err();
        assert_eq!(err.span, 2..5);
    }
}
