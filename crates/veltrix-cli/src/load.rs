//! Reading configuration files: a file, or every `*.toml` of a directory in
//! name order (so rule order is stable across machines).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use veltrix_config::{Config, Diagnostic, Source};

pub fn read_sources(path: &Path) -> Result<Vec<Source>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read configuration {}", path.display()))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
        {
            let entry = entry?;
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            bail!("{} holds no *.toml files", path.display());
        }
    } else {
        files.push(path.to_path_buf());
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            Ok(Source::new(f.display().to_string(), text))
        })
        .collect()
}

/// Loads and compiles; on invalid configuration prints the diagnostics and fails.
pub fn load_config(path: &Path) -> Result<Arc<Config>> {
    compile_sources(path, &read_sources(path)?)
}

/// Compiles sources already read from `path`.
pub fn compile_sources(path: &Path, sources: &[veltrix_config::Source]) -> Result<Arc<Config>> {
    match veltrix_config::compile(sources) {
        Ok(config) => Ok(Arc::new(config)),
        Err(diagnostics) => {
            eprint!("{}", crate::render::render(sources, &diagnostics));
            bail!(
                "{} is not a valid configuration ({} errors); run `veltrix check` for details",
                path.display(),
                count_errors(&diagnostics)
            )
        }
    }
}

pub fn count_errors(diagnostics: &[Diagnostic]) -> usize {
    diagnostics
        .iter()
        .filter(|d| d.severity == veltrix_config::Severity::Error)
        .count()
}
