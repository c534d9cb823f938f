//! Diagnostics are data: a message, a primary byte span in one source file,
//! the dotted key it concerns, and an optional help line. Rendering lives in
//! the CLI (terminal) and the server (JSON); this module only locates.

use serde::Serialize;
use std::ops::Range;

/// One configuration file as given by the caller (the crate never reads files).
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A problem found in a configuration. `span` is a byte range into
/// `sources[file].text`; `line` and `column` (1-based, column in characters)
/// are derived from it when the diagnostic is created so every consumer
/// agrees on them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable machine-readable code, e.g. `unknown-key`, `type-mismatch`.
    pub code: &'static str,
    pub file: String,
    #[serde(skip)]
    pub file_index: usize,
    pub line: usize,
    pub column: usize,
    #[serde(skip)]
    pub span: Range<usize>,
    /// Dotted path of the key concerned, e.g. `rules.big_spender.when`.
    pub key: String,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    /// `file:line:column: key: message` — the one-line form used in logs and tests.
    pub fn one_line(&self) -> String {
        let mut out = format!("{}:{}:{}: ", self.file, self.line, self.column);
        if !self.key.is_empty() {
            out.push_str(&self.key);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if let Some(help) = &self.help {
            out.push_str(" (");
            out.push_str(help);
            out.push(')');
        }
        out
    }
}

/// Collects diagnostics against a set of sources.
pub(crate) struct Sink<'s> {
    pub sources: &'s [Source],
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub fn new(sources: &'s [Source]) -> Self {
        Sink {
            sources,
            diagnostics: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        at: Loc,
        code: &'static str,
        key: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let source = &self.sources[at.file];
        let start = at.span.start.min(source.text.len());
        let (line, column) = line_column(&source.text, start);
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            code,
            file: source.name.clone(),
            file_index: at.file,
            line,
            column,
            span: start..at.span.end.min(source.text.len()).max(start),
            key: key.to_string(),
            message: message.into(),
            help,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// A place in the sources: file index plus byte span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub file: usize,
    pub span: Range<usize>,
}

impl Loc {
    pub fn new(file: usize, span: Range<usize>) -> Self {
        Loc { file, span }
    }
}

/// 1-based line and character column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The closest candidate to `name`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::normalized_damerau_levenshtein(name, candidate);
        let distance = strsim::damerau_levenshtein(name, candidate);
        let longest = name.chars().count().max(candidate.chars().count());
        // Two edits are a typo in "purchse", but "m" is not a typo of "n".
        let close = score >= 0.6 || (distance <= 2 && distance < longest);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| format!("did you mean \"{c}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'é' is two bytes; the '=' after "bé " is the 4th character.
        assert_eq!(line_column(text, 10), (2, 4));
    }

    #[test]
    fn did_you_mean_finds_near_misses_only() {
        let names = ["purchase", "login", "location_visited"];
        assert_eq!(
            did_you_mean("purchse", names).as_deref(),
            Some("did you mean \"purchase\"?")
        );
        assert_eq!(did_you_mean("zzzzzz", names), None);
        assert_eq!(did_you_mean("m", ["n"]), None);
        assert_eq!(
            did_you_mean("hh", ["h"]).as_deref(),
            Some("did you mean \"h\"?")
        );
    }
}
