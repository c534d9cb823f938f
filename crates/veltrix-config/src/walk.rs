//! A reader over the spanned TOML tree. Every key the compiler asks for is
//! marked as known; `finish` then reports each key nobody asked for, with a
//! did-you-mean drawn from the keys that were asked for. That way a new key
//! in the compiler can never be forgotten in the unknown-key check.

use crate::diag::{Loc, Sink, did_you_mean};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

pub(crate) struct TableReader<'t, 'i> {
    table: &'t DeTable<'i>,
    pub path: String,
    pub file: usize,
    pub loc: Loc,
    asked: Vec<&'static str>,
}

/// What a TOML value is, in words, for "expected X, found Y" messages.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string \"{}\"", truncate(s, 40)),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'t, 'i> TableReader<'t, 'i> {
    pub fn new(table: &'t DeTable<'i>, path: String, loc: Loc) -> Self {
        TableReader {
            table,
            path,
            file: loc.file,
            loc,
            asked: Vec::new(),
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn loc_of(&self, value: &Value<'_>) -> Loc {
        Loc::new(self.file, value.span())
    }

    /// The raw value at `key`, marking the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'t Value<'i>> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        self.table.get(key)
    }

    /// Iterates every entry; used for tables whose keys are names (events, rules).
    pub fn entries(&self) -> impl Iterator<Item = (&'t str, Loc, &'t Value<'i>)> + '_ {
        let file = self.file;
        self.table
            .iter()
            .map(move |(k, v)| (k.get_ref().as_ref(), Loc::new(file, k.span()), v))
    }

    /// Reports keys that were never asked for.
    pub fn finish(&self, sink: &mut Sink<'_>) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref().as_ref();
            if self.asked.contains(&name) {
                continue;
            }
            let help = did_you_mean(name, self.asked.iter().copied())
                .or_else(|| Some(format!("expected one of: {}", self.asked.join(", "))));
            sink.error(
                Loc::new(self.file, key.span()),
                "unknown-key",
                &self.key_path(name),
                format!("unknown key \"{name}\""),
                help,
            );
        }
    }

    fn type_error(&self, sink: &mut Sink<'_>, key: &str, value: &Value<'_>, expected: &str) {
        sink.error(
            self.loc_of(value),
            "type-mismatch",
            &self.key_path(key),
            format!("expected {expected}, found {}", describe(value.get_ref())),
            None,
        );
    }

    pub fn string(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<(&'t str, Loc)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), self.loc_of(value))),
            _ => {
                self.type_error(sink, key, value, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(sink, key, value, "a boolean (true or false)");
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn count(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<(i64, Loc)> {
        let value = self.get(key)?;
        let loc = self.loc_of(value);
        match integer_of(value.get_ref()) {
            Some(n) if (min..=max).contains(&n) => Some((n, loc)),
            Some(n) => {
                sink.error(
                    loc,
                    "out-of-range",
                    &self.key_path(key),
                    format!("expected an integer from {min} to {max}, found {n}"),
                    None,
                );
                None
            }
            None => {
                self.type_error(sink, key, value, &format!("an integer >= {min}"));
                None
            }
        }
    }

    pub fn number(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<(f64, Loc)> {
        let value = self.get(key)?;
        match number_of(value.get_ref()) {
            Some(n) => Some((n, self.loc_of(value))),
            None => {
                self.type_error(sink, key, value, "a number");
                None
            }
        }
    }

    pub fn table(&mut self, sink: &mut Sink<'_>, key: &'static str) -> Option<TableReader<'t, 'i>> {
        let value = self.get(key)?;
        self.table_of(sink, key, value)
    }

    pub fn table_of(
        &self,
        sink: &mut Sink<'_>,
        key: &str,
        value: &'t Value<'i>,
    ) -> Option<TableReader<'t, 'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(t, self.key_path(key), self.loc_of(value))),
            _ => {
                self.type_error(sink, key, value, "a table");
                None
            }
        }
    }

    pub fn array(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
    ) -> Option<(&'t [Value<'i>], Loc)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Array(items) => Some((&items[..], self.loc_of(value))),
            _ => {
                self.type_error(sink, key, value, "an array");
                None
            }
        }
    }

    /// An array of strings; non-strings are reported one by one and skipped.
    pub fn strings(
        &mut self,
        sink: &mut Sink<'_>,
        key: &'static str,
    ) -> Option<(Vec<(&'t str, Loc)>, Loc)> {
        let (items, loc) = self.array(sink, key)?;
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.as_ref(), self.loc_of(item))),
                other => sink.error(
                    self.loc_of(item),
                    "type-mismatch",
                    &format!("{}[{index}]", self.key_path(key)),
                    format!("expected a string, found {}", describe(other)),
                    None,
                ),
            }
        }
        Some((out, loc))
    }
}

pub(crate) fn integer_of(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

pub(crate) fn number_of(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Integer(_) => integer_of(value).map(|n| n as f64),
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            match text.as_str() {
                "inf" | "+inf" => Some(f64::INFINITY),
                "-inf" => Some(f64::NEG_INFINITY),
                _ => text.parse().ok(),
            }
        }
        _ => None,
    }
}
