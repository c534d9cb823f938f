//! Terminal rendering of configuration diagnostics with annotate-snippets.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::io::IsTerminal;
use veltrix_config::{Diagnostic, Severity, Source};

pub fn render(sources: &[Source], diagnostics: &[Diagnostic]) -> String {
    let renderer = if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let source = &sources[d.file_index];
        let title = if d.key.is_empty() {
            d.message.clone()
        } else {
            format!("{}: {}", d.key, d.message)
        };
        let label = d.help.clone().unwrap_or_default();
        let group = level.primary_title(title.as_str()).id(d.code).element(
            Snippet::source(source.text.as_str())
                .path(source.name.as_str())
                .annotation(
                    AnnotationKind::Primary
                        .span(d.span.clone())
                        .label(label.as_str()),
                ),
        );
        let report: [Group<'_>; 1] = [group];
        out.push_str(&renderer.render(&report));
        out.push_str("\n\n");
    }
    out
}
