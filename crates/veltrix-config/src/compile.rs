//! TOML sources -> checked `Config`, collecting every diagnostic in one pass.
//!
//! Phases: parse each file (syntax errors recovered), gather named items across
//! files (a name defined twice is an error naming both places), declare names
//! (currencies, event types, hunts and stages, badges from rewards), then
//! compile everything that refers to names, expressions last because they can
//! name anything.

use crate::diag::{Diagnostic, Loc, Sink, Source, did_you_mean};
use crate::model::*;
use crate::walk::{TableReader, Value, describe, integer_of, join, number_of};
use std::collections::HashMap;
use toml::de::{DeTable, DeValue};
use veltrix_expr::{EventTypeDecl, FieldDecl, FieldType, HuntDecl, Schema};

/// Compiles configuration sources. On failure returns every error found.
pub fn compile(sources: &[Source]) -> Result<Config, Vec<Diagnostic>> {
    let mut sink = Sink::new(sources);
    let parsed: Vec<Option<toml::Spanned<DeTable<'_>>>> = sources
        .iter()
        .enumerate()
        .map(|(file, source)| parse_file(&mut sink, file, source))
        .collect();
    let tables: Vec<(usize, &toml::Spanned<DeTable<'_>>)> = parsed
        .iter()
        .enumerate()
        .filter_map(|(file, t)| t.as_ref().map(|t| (file, t)))
        .collect();
    let config = Compiler::new(&mut sink).run(&tables, sources);
    if sink.has_errors() {
        let mut diagnostics = sink.diagnostics;
        // Reading order: by file, then by position (stable for equal spans).
        diagnostics.sort_by_key(|d| (d.file_index, d.span.start));
        Err(diagnostics)
    } else {
        // Invariant: without errors the compiler always produced a config.
        config.ok_or_else(Vec::new)
    }
}

fn parse_file<'i>(
    sink: &mut Sink<'_>,
    file: usize,
    source: &'i Source,
) -> Option<toml::Spanned<DeTable<'i>>> {
    let (table, errors) = DeTable::parse_recoverable(&source.text);
    let failed = !errors.is_empty();
    for error in errors {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_string();
        sink.error(
            Loc::new(file, span),
            "syntax",
            "",
            format!("invalid TOML: {message}"),
            None,
        );
    }
    // A file with syntax errors is not compiled further: recovered trees
    // produce confusing follow-on errors.
    (!failed).then_some(table)
}

/// A named entry of a section, e.g. `[rules.first_login]`.
struct Item<'t, 'i> {
    name: &'t str,
    name_loc: Loc,
    value: &'t Value<'i>,
    path: String,
}

struct Sections<'t, 'i> {
    server: Vec<(TableReader<'t, 'i>, Loc)>,
    engine: Vec<(TableReader<'t, 'i>, Loc)>,
    currencies: Vec<Item<'t, 'i>>,
    events: Vec<Item<'t, 'i>>,
    rules: Vec<Item<'t, 'i>>,
    hunts: Vec<Item<'t, 'i>>,
    leaderboards: Vec<Item<'t, 'i>>,
    views: Vec<(usize, &'t Value<'i>, String)>,
}

struct Compiler<'a, 's> {
    sink: &'a mut Sink<'s>,
    currencies: Vec<String>,
    event_types: Vec<EventType>,
    event_type_locs: Vec<Loc>,
    /// Event types with a field declaration error: expressions on them are
    /// not checked, since their errors would only echo the first one.
    broken_types: Vec<EventTypeId>,
    badges: Vec<String>,
    hunt_names: Vec<(String, Vec<String>)>,
}

/// An expression waiting for the full schema.
struct PendingExpr {
    text: String,
    loc: Loc,
    key: String,
    trigger: EventTypeId,
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

fn is_stage_id(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

const RESERVED_FIELDS: [&str; 4] = ["id", "player", "type", "ts"];

impl<'a, 's> Compiler<'a, 's> {
    fn new(sink: &'a mut Sink<'s>) -> Self {
        Compiler {
            sink,
            currencies: Vec::new(),
            event_types: Vec::new(),
            event_type_locs: Vec::new(),
            broken_types: Vec::new(),
            badges: Vec::new(),
            hunt_names: Vec::new(),
        }
    }

    fn error(&mut self, loc: Loc, code: &'static str, key: &str, msg: impl Into<String>) {
        self.sink.error(loc, code, key, msg, None);
    }

    fn error_help(
        &mut self,
        loc: Loc,
        code: &'static str,
        key: &str,
        msg: impl Into<String>,
        help: Option<String>,
    ) {
        self.sink.error(loc, code, key, msg, help);
    }

    fn run<'t, 'i>(
        mut self,
        tables: &[(usize, &'t toml::Spanned<DeTable<'i>>)],
        sources: &[Source],
    ) -> Option<Config> {
        let version = version_of(tables, sources);
        let sections = self.gather(tables);
        let server = self.server(sections.server);
        let engine = self.engine(sections.engine);
        self.declare_currencies(&sections.currencies);
        self.declare_event_types(&sections.events);
        // Rewards name badges; collect them all before any expression is checked.
        self.declare_hunt_names(&sections.hunts);
        let mut pending = Vec::new();
        let rules = self.rules(&sections.rules, &mut pending);
        let hunts = self.hunts(&sections.hunts, &mut pending);
        let leaderboards = self.leaderboards(&sections.leaderboards);
        let views = self.views(&sections.views);
        let compiled = self.compile_expressions(pending);
        if self.sink.has_errors() {
            return None;
        }
        let rules = rules
            .into_iter()
            .map(|(mut rule, expr)| {
                rule.when = expr.map(|i| compiled[i].clone());
                rule
            })
            .collect();
        let hunts = hunts
            .into_iter()
            .map(|mut hunt| {
                for stage in &mut hunt.0.stages {
                    if let StageKind::Solve { when, .. } = &mut stage.kind
                        && let Some(i) = hunt.1.iter().find(|(s, _)| *s == stage.id).map(|p| p.1)
                    {
                        *when = Some(compiled[i].clone());
                    }
                }
                hunt.0
            })
            .collect();
        Some(self.finish(server, engine, rules, hunts, leaderboards, views, version))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        server: ServerSettings,
        engine: EngineSettings,
        rules: Vec<Rule>,
        hunts: Vec<Hunt>,
        leaderboards: Vec<Leaderboard>,
        views: Vec<View>,
        version: String,
    ) -> Config {
        let answer_type = (self.event_types.len() - 1) as EventTypeId;
        let event_type_index = self
            .event_types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i as EventTypeId))
            .collect();
        let hunt_index = hunts
            .iter()
            .enumerate()
            .map(|(i, h): (usize, &Hunt)| (h.name.clone(), i as HuntId))
            .collect();
        Config {
            version,
            server,
            engine,
            currencies: self.currencies,
            event_types: self.event_types,
            answer_type,
            badges: self.badges,
            rules,
            hunts,
            leaderboards,
            views,
            event_type_index,
            hunt_index,
        }
    }

    // ---- gathering -------------------------------------------------------

    fn gather<'t, 'i>(
        &mut self,
        tables: &[(usize, &'t toml::Spanned<DeTable<'i>>)],
    ) -> Sections<'t, 'i> {
        let mut sections = Sections {
            server: Vec::new(),
            engine: Vec::new(),
            currencies: Vec::new(),
            events: Vec::new(),
            rules: Vec::new(),
            hunts: Vec::new(),
            leaderboards: Vec::new(),
            views: Vec::new(),
        };
        for &(file, table) in tables {
            let mut top =
                TableReader::new(table.get_ref(), String::new(), Loc::new(file, table.span()));
            for key in ["server", "engine"] {
                let Some(value) = top.get(key) else { continue };
                if let Some(reader) = top.table_of(self.sink, key, value) {
                    let loc = top.loc_of(value);
                    if key == "server" {
                        sections.server.push((reader, loc));
                    } else {
                        sections.engine.push((reader, loc));
                    }
                }
            }
            for key in ["currencies", "events", "rules", "hunts", "leaderboards"] {
                let Some(section) = top.table(self.sink, key) else {
                    continue;
                };
                let items: Vec<Item<'t, 'i>> = section
                    .entries()
                    .map(|(name, name_loc, value)| Item {
                        name,
                        name_loc,
                        value,
                        path: join(key, name),
                    })
                    .collect();
                let target = match key {
                    "currencies" => &mut sections.currencies,
                    "events" => &mut sections.events,
                    "rules" => &mut sections.rules,
                    "hunts" => &mut sections.hunts,
                    _ => &mut sections.leaderboards,
                };
                for item in items {
                    if let Some(previous) = target.iter().find(|p| p.name == item.name) {
                        let where_before = self.describe_loc(&previous.name_loc);
                        self.error(
                            item.name_loc.clone(),
                            "duplicate",
                            &item.path,
                            format!("\"{}\" is already defined at {where_before}", item.name),
                        );
                        continue;
                    }
                    target.push(item);
                }
            }
            if let Some((views, _)) = top.array(self.sink, "views") {
                for (index, value) in views.iter().enumerate() {
                    sections
                        .views
                        .push((file, value, format!("views[{index}]")));
                }
            }
            top.finish(self.sink);
        }
        sections
    }

    fn describe_loc(&self, loc: &Loc) -> String {
        let source = &self.sink.sources[loc.file];
        let (line, column) = crate::diag::line_column(&source.text, loc.span.start);
        format!("{}:{line}:{column}", source.name)
    }

    // ---- server and engine settings --------------------------------------

    fn server(&mut self, tables: Vec<(TableReader<'_, '_>, Loc)>) -> ServerSettings {
        let mut settings = ServerSettings::default();
        self.only_once("server", &tables);
        for (mut t, _) in tables {
            if let Some((listen, loc)) = t.string(self.sink, "listen") {
                if listen.parse::<std::net::SocketAddr>().is_err() {
                    self.error(
                        loc,
                        "invalid-value",
                        "server.listen",
                        format!("expected an address like \"127.0.0.1:7400\", found \"{listen}\""),
                    );
                }
                settings.listen = Some(listen.to_string());
            }
            if let Some((dir, loc)) = t.string(self.sink, "data_dir") {
                if dir.is_empty() {
                    self.error(
                        loc,
                        "invalid-value",
                        "server.data_dir",
                        "data_dir must not be empty",
                    );
                }
                settings.data_dir = Some(dir.to_string());
            }
            if let Some((n, _)) = t.count(self.sink, "partitions", 1, 1024) {
                settings.partitions = Some(n as u32);
            }
            if let Some((items, _)) = t.array(self.sink, "api_keys") {
                let mut names = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let key = format!("api_keys[{index}]");
                    let Some(mut entry) = t.table_of(self.sink, &key, item) else {
                        continue;
                    };
                    if let Some(api_key) = self.api_key(&mut entry, &mut names) {
                        settings.api_keys.push(api_key);
                    }
                    entry.finish(self.sink);
                }
            }
            t.finish(self.sink);
        }
        settings
    }

    /// One `[[server.api_keys]]` entry: `name`, `sha256` (64 hex) and
    /// `scopes`. A plain `key` is refused with the hash to use instead, as
    /// plain answers are.
    fn api_key(&mut self, t: &mut TableReader<'_, '_>, names: &mut Vec<String>) -> Option<ApiKey> {
        let mut ok = true;
        if let Some(v) = t.get("key") {
            let hint = v.get_ref().as_str().map(|plain| {
                use sha2::Digest;
                format!(
                    "use sha256 = \"{}\" instead, and keep the key itself out of the configuration",
                    hex::encode(sha2::Sha256::digest(plain.as_bytes()))
                )
            });
            self.error_help(
                t.loc_of(v),
                "plain-api-key",
                &t.key_path("key"),
                "plain API keys must not appear in the configuration",
                hint,
            );
            ok = false;
        }
        let name = t.string(self.sink, "name");
        match &name {
            None if t.get("name").is_none() => {
                self.error(
                    t.loc.clone(),
                    "missing-key",
                    &t.key_path("name"),
                    "an API key needs name = \"<unique name>\"",
                );
                ok = false;
            }
            None => ok = false,
            Some(("", loc)) => {
                self.error(
                    loc.clone(),
                    "invalid-value",
                    &t.key_path("name"),
                    "name must not be empty",
                );
                ok = false;
            }
            Some((name, loc)) if names.iter().any(|n| n == name) => {
                self.error(
                    loc.clone(),
                    "duplicate",
                    &t.key_path("name"),
                    format!("an API key named \"{name}\" is already defined; names must be unique"),
                );
                ok = false;
            }
            Some((name, _)) => names.push(name.to_string()),
        }
        let mut sha256 = [0u8; 32];
        match t.string(self.sink, "sha256") {
            Some((text, loc)) => {
                if text.len() != 64 || hex::decode_to_slice(text, &mut sha256).is_err() {
                    let what = if text.len() != 64 {
                        format!("{} characters", text.chars().count())
                    } else {
                        "a non-hexadecimal character".to_string()
                    };
                    self.error_help(
                        loc,
                        "invalid-value",
                        &t.key_path("sha256"),
                        format!(
                            "expected the SHA-256 of the key as 64 hexadecimal characters, found {what}"
                        ),
                        Some("hash the key with: printf %s \"$KEY\" | sha256sum".into()),
                    );
                    ok = false;
                }
            }
            None => {
                if t.get("sha256").is_none() && t.get("key").is_none() {
                    self.error(
                        t.loc.clone(),
                        "missing-key",
                        &t.key_path("sha256"),
                        "an API key needs sha256 = \"<64 hex: the SHA-256 of the key>\"",
                    );
                }
                ok = false;
            }
        }
        let mut scopes = Vec::new();
        match t.strings(self.sink, "scopes") {
            Some((items, loc)) => {
                if items.is_empty() {
                    self.error_help(
                        loc,
                        "invalid-value",
                        &t.key_path("scopes"),
                        "an API key needs at least one scope",
                        Some("expected some of: ingest, read, admin".into()),
                    );
                    ok = false;
                }
                for (index, (scope, loc)) in items.into_iter().enumerate() {
                    match Scope::parse(scope) {
                        Some(s) => scopes.push(s),
                        None => {
                            let help = did_you_mean(scope, Scope::ALL.map(Scope::name))
                                .or_else(|| Some("expected one of: ingest, read, admin".into()));
                            self.error_help(
                                loc,
                                "unknown-scope",
                                &format!("{}[{index}]", t.key_path("scopes")),
                                format!("unknown scope \"{scope}\""),
                                help,
                            );
                            ok = false;
                        }
                    }
                }
            }
            None => {
                if t.get("scopes").is_none() {
                    self.error_help(
                        t.loc.clone(),
                        "missing-key",
                        &t.key_path("scopes"),
                        "an API key needs scopes = [...]",
                        Some("expected some of: ingest, read, admin".into()),
                    );
                }
                ok = false;
            }
        }
        scopes.sort();
        scopes.dedup();
        let name = name?.0.to_string();
        ok.then_some(ApiKey {
            name,
            sha256,
            scopes,
        })
    }

    fn engine(&mut self, tables: Vec<(TableReader<'_, '_>, Loc)>) -> EngineSettings {
        let mut settings = EngineSettings::default();
        self.only_once("engine", &tables);
        for (mut t, _) in tables {
            if let Some(ms) = self.duration(&mut t, "lateness") {
                settings.lateness_ms = ms;
            }
            if let Some((n, _)) = t.count(self.sink, "sequence_candidates", 1, 65_536) {
                settings.sequence_candidates = n as usize;
            }
            t.finish(self.sink);
        }
        settings
    }

    fn only_once(&mut self, name: &str, tables: &[(TableReader<'_, '_>, Loc)]) {
        if tables.len() > 1 {
            let first = self.describe_loc(&tables[0].1);
            for (_, loc) in &tables[1..] {
                self.error(
                    loc.clone(),
                    "duplicate",
                    name,
                    format!("[{name}] is already defined at {first}; define it in one file only"),
                );
            }
        }
    }

    fn duration(&mut self, t: &mut TableReader<'_, '_>, key: &'static str) -> Option<i64> {
        let (text, loc) = t.string(self.sink, key)?;
        match veltrix_expr::parse_duration(text) {
            Ok(ms) => Some(ms),
            Err(e) => {
                self.error_help(
                    loc,
                    "invalid-duration",
                    &t.key_path(key),
                    format!("invalid duration \"{text}\": {e}"),
                    Some("durations look like \"500ms\", \"30s\", \"10m\", \"1h\", \"1d\", \"1w\" or \"1h30m\"".into()),
                );
                None
            }
        }
    }

    // ---- names -----------------------------------------------------------

    fn check_name(&mut self, item: &Item<'_, '_>, what: &str) -> bool {
        if is_identifier(item.name) {
            return true;
        }
        self.error(
            item.name_loc.clone(),
            "invalid-name",
            &item.path,
            format!(
                "invalid {what} name \"{}\": use letters, digits and '_' (starting with a letter or '_'), at most 64 characters",
                item.name
            ),
        );
        false
    }

    fn declare_currencies(&mut self, items: &[Item<'_, '_>]) {
        for item in items {
            if !self.check_name(item, "currency") {
                continue;
            }
            if matches!(item.name, "points" | "badge" | "badges" | "balances") {
                self.error(
                    item.name_loc.clone(),
                    "reserved-name",
                    &item.path,
                    format!("\"{}\" is reserved and cannot name a currency", item.name),
                );
                continue;
            }
            if let Some(mut t) =
                TableReader::new(&DeTable::new(), String::new(), item.name_loc.clone())
                    .table_of(self.sink, &item.path, item.value)
            {
                t.path = item.path.clone();
                t.string(self.sink, "description");
                t.finish(self.sink);
            }
            self.currencies.push(item.name.to_string());
        }
    }

    fn declare_event_types(&mut self, items: &[Item<'_, '_>]) {
        for item in items {
            if item.name == ANSWER_TYPE {
                self.error_help(
                    item.name_loc.clone(),
                    "reserved-name",
                    &item.path,
                    "\"answer\" is a built-in event type with fields hunt, stage and answer; it cannot be redefined",
                    Some("rename this event type".into()),
                );
                continue;
            }
            if !self.check_name(item, "event type") {
                continue;
            }
            let Some(mut t) = self.item_table(item) else {
                continue;
            };
            let mut allow_extra = false;
            if let Some((extra, loc)) = t.string(self.sink, "extra") {
                match extra {
                    "allow" => allow_extra = true,
                    "deny" => {}
                    other => self.error(
                        loc,
                        "invalid-value",
                        &t.key_path("extra"),
                        format!("expected \"allow\" or \"deny\", found \"{other}\""),
                    ),
                }
            }
            t.string(self.sink, "description");
            let mut fields = Vec::new();
            if let Some(field_table) = t.table(self.sink, "fields") {
                for (name, name_loc, value) in field_table.entries() {
                    let key = field_table.key_path(name);
                    match self.field(name, name_loc, value, &key, field_table.file) {
                        Some(field) => fields.push(field),
                        None => self
                            .broken_types
                            .push(self.event_types.len() as EventTypeId),
                    }
                }
            }
            t.finish(self.sink);
            self.event_types.push(EventType {
                name: item.name.to_string(),
                fields,
                allow_extra,
                builtin: false,
            });
            self.event_type_locs.push(item.name_loc.clone());
        }
        let string_field = |name: &str| Field {
            name: name.to_string(),
            ty: FieldType::String,
            optional: false,
            min: None,
            max: None,
            max_len: Some(1024),
            allowed: None,
        };
        self.event_types.push(EventType {
            name: ANSWER_TYPE.to_string(),
            fields: vec![
                string_field("hunt"),
                string_field("stage"),
                string_field("answer"),
            ],
            allow_extra: false,
            builtin: true,
        });
    }

    fn item_table<'t, 'i>(&mut self, item: &Item<'t, 'i>) -> Option<TableReader<'t, 'i>> {
        match item.value.get_ref() {
            DeValue::Table(t) => Some(TableReader::new(
                t,
                item.path.clone(),
                Loc::new(item.name_loc.file, item.value.span()),
            )),
            other => {
                self.error(
                    Loc::new(item.name_loc.file, item.value.span()),
                    "type-mismatch",
                    &item.path,
                    format!("expected a table, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn field(
        &mut self,
        name: &str,
        name_loc: Loc,
        value: &Value<'_>,
        key: &str,
        file: usize,
    ) -> Option<Field> {
        if !is_identifier(name) {
            self.error(
                name_loc,
                "invalid-name",
                key,
                format!("invalid field name \"{name}\": use letters, digits and '_'"),
            );
            return None;
        }
        if RESERVED_FIELDS.contains(&name) {
            self.error_help(
                name_loc,
                "reserved-name",
                key,
                format!("\"{name}\" is reserved: expressions use event.{name} for the event's own {name}"),
                Some("rename this data field".into()),
            );
            return None;
        }
        let loc = Loc::new(file, value.span());
        let mut field = Field {
            name: name.to_string(),
            ty: FieldType::String,
            optional: false,
            min: None,
            max: None,
            max_len: None,
            allowed: None,
        };
        let type_name_loc;
        let type_name: &str = match value.get_ref() {
            DeValue::String(s) => {
                type_name_loc = loc.clone();
                s.as_ref()
            }
            DeValue::Table(table) => {
                let mut t = TableReader::new(table, key.to_string(), loc.clone());
                let Some((ty, ty_loc)) = t.string(self.sink, "type") else {
                    if t.get("type").is_none() {
                        self.error(
                            loc,
                            "missing-key",
                            key,
                            "a field needs a \"type\": string, number, integer or boolean",
                        );
                    }
                    // Still mark the remaining keys as known.
                    for k in ["optional", "min", "max", "enum", "max_len", "description"] {
                        t.get(k);
                    }
                    t.finish(self.sink);
                    return None;
                };
                type_name_loc = ty_loc;
                self.field_options(&mut t, &mut field, ty);
                t.finish(self.sink);
                ty
            }
            other => {
                self.error(
                    loc,
                    "type-mismatch",
                    key,
                    format!(
                        "expected a type name (\"string\", \"number\", \"integer\", \"boolean\") or a table, found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        field.ty = match type_name {
            "string" => FieldType::String,
            "number" => FieldType::Double,
            "integer" => FieldType::Int,
            "boolean" => FieldType::Bool,
            other => {
                let help = did_you_mean(other, ["string", "number", "integer", "boolean"]);
                self.error_help(
                    type_name_loc,
                    "unknown-type",
                    key,
                    format!("unknown field type \"{other}\": expected string, number, integer or boolean"),
                    help,
                );
                return None;
            }
        };
        self.check_field_consistency(&field, key, loc);
        Some(field)
    }

    fn field_options(&mut self, t: &mut TableReader<'_, '_>, field: &mut Field, ty: &str) {
        t.string(self.sink, "description");
        field.optional = t.boolean(self.sink, "optional").unwrap_or(false);
        field.min = t.number(self.sink, "min").map(|(n, _)| n);
        field.max = t.number(self.sink, "max").map(|(n, _)| n);
        field.max_len = t
            .count(self.sink, "max_len", 1, 1 << 20)
            .map(|(n, _)| n as usize);
        if let Some((items, _)) = t.array(self.sink, "enum") {
            let mut allowed = Vec::new();
            for (index, item) in items.iter().enumerate() {
                let literal = match item.get_ref() {
                    DeValue::String(s) if ty == "string" => Some(Literal::Str(s.to_string())),
                    DeValue::Boolean(b) if ty == "boolean" => Some(Literal::Bool(*b)),
                    v @ (DeValue::Integer(_) | DeValue::Float(_))
                        if ty == "number" || ty == "integer" =>
                    {
                        number_of(v).map(Literal::Num)
                    }
                    _ => None,
                };
                match literal {
                    Some(l) => allowed.push(l),
                    None => self.error(
                        t.loc_of(item),
                        "type-mismatch",
                        &format!("{}[{index}]", t.key_path("enum")),
                        format!(
                            "enum values of a {ty} field must be {ty}s, found {}",
                            describe(item.get_ref())
                        ),
                    ),
                }
            }
            field.allowed = Some(allowed);
        }
    }

    fn check_field_consistency(&mut self, field: &Field, key: &str, loc: Loc) {
        let numeric = matches!(field.ty, FieldType::Int | FieldType::Double);
        if !numeric && (field.min.is_some() || field.max.is_some()) {
            self.error(
                loc.clone(),
                "invalid-option",
                key,
                "min and max apply only to number and integer fields",
            );
        }
        if field.ty != FieldType::String && field.max_len.is_some() {
            self.error(
                loc.clone(),
                "invalid-option",
                key,
                "max_len applies only to string fields",
            );
        }
        if let (Some(min), Some(max)) = (field.min, field.max)
            && min > max
        {
            self.error(
                loc.clone(),
                "invalid-option",
                key,
                format!("min ({min}) is greater than max ({max})"),
            );
        }
        if let Some(allowed) = &field.allowed
            && allowed.is_empty()
        {
            self.error(
                loc,
                "invalid-option",
                key,
                "enum must list at least one value",
            );
        }
    }

    fn event_type_ref(&mut self, name: &str, loc: Loc, key: &str) -> Option<EventTypeId> {
        if let Some(i) = self.event_types.iter().position(|t| t.name == name) {
            return Some(i as EventTypeId);
        }
        let help = did_you_mean(name, self.event_types.iter().map(|t| t.name.as_str()));
        self.error_help(
            loc,
            "unknown-event-type",
            key,
            format!("unknown event type \"{name}\""),
            help,
        );
        None
    }

    fn declare_hunt_names(&mut self, items: &[Item<'_, '_>]) {
        for item in items {
            let stages = match item.value.get_ref() {
                DeValue::Table(t) => match t.get("stages").map(|s| s.get_ref()) {
                    Some(DeValue::Array(stages)) => stages
                        .iter()
                        .filter_map(|s| s.get_ref().as_table()?.get("id")?.get_ref().as_str())
                        .map(str::to_string)
                        .collect(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            self.hunt_names.push((item.name.to_string(), stages));
        }
    }

    // ---- rewards ---------------------------------------------------------

    fn reward(&mut self, t: &mut TableReader<'_, '_>, key: &'static str) -> Option<Reward> {
        let value = t.get(key)?;
        let reader = t.table_of(self.sink, key, value)?;
        let path = reader.path.clone();
        let mut reward = Reward::default();
        let errors_before = self.sink.diagnostics.len();
        for (name, name_loc, value) in reader.entries() {
            let entry_key = join(&path, name);
            let loc = reader.loc_of(value);
            match name {
                "points" => match integer_of(value.get_ref()) {
                    Some(n) if (0..=1_000_000_000_000).contains(&n) => reward.points = n,
                    _ => self.error(
                        loc,
                        "type-mismatch",
                        &entry_key,
                        format!(
                            "expected points as an integer >= 0, found {}",
                            describe(value.get_ref())
                        ),
                    ),
                },
                "badge" => match value.get_ref().as_str() {
                    Some(b)
                        if !b.is_empty() && b.len() <= 64 && !b.chars().any(char::is_control) =>
                    {
                        let id = match self.badges.iter().position(|x| x == b) {
                            Some(i) => i,
                            None => {
                                self.badges.push(b.to_string());
                                self.badges.len() - 1
                            }
                        };
                        reward.badge = Some(id as BadgeId);
                    }
                    _ => self.error(
                        loc,
                        "type-mismatch",
                        &entry_key,
                        format!(
                            "expected a badge name (1-64 characters), found {}",
                            describe(value.get_ref())
                        ),
                    ),
                },
                currency => {
                    let Some(id) = self.currencies.iter().position(|c| c == currency) else {
                        let candidates: Vec<&str> = self
                            .currencies
                            .iter()
                            .map(String::as_str)
                            .chain(["points", "badge"])
                            .collect();
                        let help = did_you_mean(currency, candidates.iter().copied()).or_else(|| {
                            Some(format!(
                                "a reward holds points, badge and declared currencies ({}); declare currencies under [currencies.NAME]",
                                if self.currencies.is_empty() { "none declared".to_string() } else { self.currencies.join(", ") }
                            ))
                        });
                        self.error_help(
                            name_loc,
                            "unknown-currency",
                            &entry_key,
                            format!("unknown currency \"{currency}\""),
                            help,
                        );
                        continue;
                    };
                    match integer_of(value.get_ref()) {
                        Some(0) => {}
                        Some(n) if (1..=1_000_000_000).contains(&n) => {
                            reward.currencies.push((id as CurrencyId, n))
                        }
                        _ => self.error(
                            loc,
                            "type-mismatch",
                            &entry_key,
                            format!(
                                "expected a whole amount from 0 to 1000000000, found {}",
                                describe(value.get_ref())
                            ),
                        ),
                    }
                }
            }
        }
        // A reward whose entries were reported is not also reported as empty.
        if reward.is_empty() && self.sink.diagnostics.len() > errors_before {
            return None;
        }
        Some(reward)
    }

    // ---- rules -----------------------------------------------------------

    fn rules(
        &mut self,
        items: &[Item<'_, '_>],
        pending: &mut Vec<PendingExpr>,
    ) -> Vec<(Rule, Option<usize>)> {
        let mut rules = Vec::new();
        for item in items {
            if !self.check_name(item, "rule") {
                continue;
            }
            let Some(mut t) = self.item_table(item) else {
                continue;
            };
            if let Some(rule) = self.rule(item, &mut t, pending) {
                rules.push(rule);
            }
            t.finish(self.sink);
        }
        rules
    }

    fn rule(
        &mut self,
        item: &Item<'_, '_>,
        t: &mut TableReader<'_, '_>,
        pending: &mut Vec<PendingExpr>,
    ) -> Option<(Rule, Option<usize>)> {
        let on = t.string(self.sink, "on");
        let sequence = t.strings(self.sink, "sequence");
        let within = self.duration(t, "within");
        let within_given = t.get("within").is_some();
        let when = t.string(self.sink, "when");
        let once = t.boolean(self.sink, "once").unwrap_or(false);
        let limit = self.limit(t);
        let cooldown_ms = self.duration(t, "cooldown");
        t.string(self.sink, "description");
        let reward = match self.reward(t, "reward") {
            Some(r) if r.is_empty() => {
                self.error(
                    t.loc.clone(),
                    "empty-reward",
                    &t.key_path("reward"),
                    "the reward grants nothing: give points, a currency amount or a badge",
                );
                None
            }
            Some(r) => Some(r),
            None => {
                if t.get("reward").is_none() {
                    self.error(
                        item.name_loc.clone(),
                        "missing-key",
                        &item.path,
                        "a rule needs a reward, e.g. reward = { points = 10 }",
                    );
                }
                None
            }
        };
        let trigger = match (on, sequence) {
            (Some((name, loc)), None) => {
                if within_given {
                    self.error(
                        t.loc.clone(),
                        "invalid-option",
                        &t.key_path("within"),
                        "within applies only to sequence rules",
                    );
                }
                self.event_type_ref(name, loc, &t.key_path("on"))
                    .map(Trigger::On)
            }
            (None, Some((steps, loc))) => {
                let ids: Vec<Option<EventTypeId>> = steps
                    .iter()
                    .enumerate()
                    .map(|(i, (name, l))| {
                        self.event_type_ref(
                            name,
                            l.clone(),
                            &format!("{}[{i}]", t.key_path("sequence")),
                        )
                    })
                    .collect();
                if steps.len() < 2 {
                    self.error(
                        loc,
                        "invalid-value",
                        &t.key_path("sequence"),
                        "a sequence needs at least two event types",
                    );
                    None
                } else if !within_given {
                    self.error(t.loc.clone(), "missing-key", &t.key_path("within"), "a sequence needs within = \"<duration>\": how long, in event time, from its first to its last event");
                    None
                } else {
                    let ids: Option<Vec<EventTypeId>> = ids.into_iter().collect();
                    match (ids, within) {
                        (Some(steps), Some(within_ms)) => {
                            Some(Trigger::Sequence { steps, within_ms })
                        }
                        _ => None,
                    }
                }
            }
            (Some((_, loc)), Some(_)) => {
                self.error(
                    loc,
                    "conflict",
                    &item.path,
                    "a rule has either on or sequence, not both",
                );
                None
            }
            (None, None) => {
                if t.get("on").is_none() && t.get("sequence").is_none() {
                    self.error(
                        item.name_loc.clone(),
                        "missing-key",
                        &item.path,
                        "a rule needs on = \"<event type>\" or sequence = [\"<event type>\", …]",
                    );
                }
                None
            }
        };
        let trigger = trigger?;
        let expr = when.map(|(text, loc)| {
            pending.push(PendingExpr {
                text: text.to_string(),
                loc,
                key: t.key_path("when"),
                trigger: trigger.event_type(),
            });
            pending.len() - 1
        });
        Some((
            Rule {
                name: item.name.to_string(),
                trigger,
                when: None,
                once,
                limit,
                cooldown_ms,
                reward: reward?,
            },
            expr,
        ))
    }

    fn limit(&mut self, t: &mut TableReader<'_, '_>) -> Option<Limit> {
        let value = t.get("limit")?;
        let mut l = t.table_of(self.sink, "limit", value)?;
        let count = l.count(self.sink, "count", 1, 1_000_000);
        let per = self.duration(&mut l, "per");
        for (key, given) in [
            ("count", l.get("count").is_some()),
            ("per", l.get("per").is_some()),
        ] {
            if !given {
                self.error(
                    l.loc.clone(),
                    "missing-key",
                    &l.key_path(key),
                    format!("limit needs {key}, e.g. limit = {{ count = 3, per = \"1d\" }}"),
                );
            }
        }
        l.finish(self.sink);
        Some(Limit {
            count: count?.0 as u32,
            per_ms: per?,
        })
    }

    // ---- hunts -----------------------------------------------------------

    fn hunts(
        &mut self,
        items: &[Item<'_, '_>],
        pending: &mut Vec<PendingExpr>,
    ) -> Vec<(Hunt, Vec<(String, usize)>)> {
        let mut hunts = Vec::new();
        for item in items {
            if !self.check_name(item, "hunt") {
                continue;
            }
            let Some(mut t) = self.item_table(item) else {
                continue;
            };
            let title = t.string(self.sink, "title").map(|(s, _)| s.to_string());
            t.string(self.sink, "description");
            let starts = self.timestamp(&mut t, "starts");
            let ends = self.timestamp(&mut t, "ends");
            if let (Some(s), Some(e)) = (starts, ends)
                && s >= e
            {
                self.error(
                    t.loc.clone(),
                    "invalid-value",
                    &t.key_path("ends"),
                    "ends must be later than starts",
                );
            }
            let ordered = t.boolean(self.sink, "ordered").unwrap_or(false);
            let completion = self.reward(&mut t, "completion");
            let prize = self.prize(&mut t);
            let mut stage_exprs = Vec::new();
            let stages = self.stages(&mut t, item, pending, &mut stage_exprs);
            t.finish(self.sink);
            hunts.push((
                Hunt {
                    name: item.name.to_string(),
                    title,
                    starts,
                    ends,
                    ordered,
                    stages,
                    completion: completion.filter(|r| !r.is_empty()),
                    prize,
                },
                stage_exprs,
            ));
        }
        hunts
    }

    fn timestamp(&mut self, t: &mut TableReader<'_, '_>, key: &'static str) -> Option<i64> {
        let value = t.get(key)?;
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            other => {
                self.error(
                    t.loc_of(value),
                    "type-mismatch",
                    &t.key_path(key),
                    format!(
                        "expected an RFC 3339 time like \"2026-12-01T00:00:00Z\", found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        match text.parse::<jiff::Timestamp>() {
            Ok(ts) => Some(ts.as_millisecond()),
            Err(e) => {
                self.error(t.loc_of(value), "invalid-value", &t.key_path(key), format!("expected an RFC 3339 time with a UTC offset like \"2026-12-01T00:00:00Z\", found \"{text}\" ({e})"));
                None
            }
        }
    }

    fn prize(&mut self, t: &mut TableReader<'_, '_>) -> Option<Prize> {
        let value = t.get("prize")?;
        let mut p = t.table_of(self.sink, "prize", value)?;
        let supply = p.count(self.sink, "supply", 1, u32::MAX as i64);
        if p.get("supply").is_none() {
            self.error(
                p.loc.clone(),
                "missing-key",
                &p.key_path("supply"),
                "a prize needs supply = <how many finishers win it>",
            );
        }
        let reward = self.reward(&mut p, "reward");
        if p.get("reward").is_none() {
            self.error(
                p.loc.clone(),
                "missing-key",
                &p.key_path("reward"),
                "a prize needs reward = { … }",
            );
        }
        p.finish(self.sink);
        let reward = reward?;
        if reward.is_empty() {
            self.error(
                p.loc.clone(),
                "empty-reward",
                &p.key_path("reward"),
                "the prize grants nothing",
            );
            return None;
        }
        Some(Prize {
            supply: supply?.0 as u32,
            reward,
        })
    }

    fn stages(
        &mut self,
        t: &mut TableReader<'_, '_>,
        item: &Item<'_, '_>,
        pending: &mut Vec<PendingExpr>,
        stage_exprs: &mut Vec<(String, usize)>,
    ) -> Vec<Stage> {
        let Some((values, loc)) = t.array(self.sink, "stages") else {
            if t.get("stages").is_none() {
                self.error(
                    item.name_loc.clone(),
                    "missing-key",
                    &item.path,
                    "a hunt needs at least one [[hunts.NAME.stages]] entry",
                );
            }
            return Vec::new();
        };
        if values.is_empty() {
            self.error(
                loc,
                "invalid-value",
                &t.key_path("stages"),
                "a hunt needs at least one stage",
            );
        }
        let mut stages: Vec<Stage> = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let key = format!("{}[{index}]", t.key_path("stages"));
            let DeValue::Table(table) = value.get_ref() else {
                self.error(
                    t.loc_of(value),
                    "type-mismatch",
                    &key,
                    format!(
                        "expected a stage table, found {}",
                        describe(value.get_ref())
                    ),
                );
                continue;
            };
            let mut s = TableReader::new(table, key.clone(), t.loc_of(value));
            if let Some(stage) = self.stage(&mut s, &key, &stages, pending, stage_exprs) {
                stages.push(stage);
            }
            s.finish(self.sink);
        }
        stages
    }

    fn stage(
        &mut self,
        s: &mut TableReader<'_, '_>,
        key: &str,
        earlier: &[Stage],
        pending: &mut Vec<PendingExpr>,
        stage_exprs: &mut Vec<(String, usize)>,
    ) -> Option<Stage> {
        let id = s.string(self.sink, "id");
        let clue = s.string(self.sink, "clue").map(|(c, _)| c.to_string());
        s.string(self.sink, "title");
        let reward = self.reward(s, "reward").filter(|r| !r.is_empty());
        let first_finders = self.first_finders(s);
        let mut kinds = Vec::new();
        let solve = s.get("solve").map(|_| "solve");
        let answer = s.get("answer_sha256").map(|_| "answer_sha256");
        let collect = s.get("collect").map(|_| "collect");
        let puzzle = s.get("puzzle").map(|_| "puzzle");
        if let Some(v) = s.get("answer") {
            let hint = v.get_ref().as_str().map(|plain| {
                format!(
                    "use answer_sha256 = \"{}\"",
                    hex::encode(veltrix_puzzles::answer_digest(plain))
                )
            });
            self.error_help(
                s.loc_of(v),
                "plain-answer",
                &s.key_path("answer"),
                "plain answers must not appear in the configuration",
                hint,
            );
        }
        kinds.extend([solve, answer, collect, puzzle].into_iter().flatten());
        let Some((id, id_loc)) = id else {
            if s.get("id").is_none() {
                self.error(
                    s.loc.clone(),
                    "missing-key",
                    &s.key_path("id"),
                    "a stage needs id = \"<stage id>\"",
                );
            }
            return None;
        };
        if !is_stage_id(id) {
            self.error(
                id_loc.clone(),
                "invalid-name",
                &s.key_path("id"),
                format!("invalid stage id \"{id}\": use letters, digits, '_' and '-'"),
            );
        }
        if earlier.iter().any(|e| e.id == id) {
            self.error(
                id_loc.clone(),
                "duplicate",
                &s.key_path("id"),
                format!("stage id \"{id}\" is used twice in this hunt"),
            );
        }
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                "a stage needs exactly one of solve, answer_sha256, collect or puzzle".to_string()
            } else {
                format!(
                    "a stage has exactly one of solve, answer_sha256, collect or puzzle; found {}",
                    kinds.join(", ")
                )
            };
            self.error(s.loc.clone(), "invalid-stage", key, msg);
            return None;
        }
        let kind = match kinds[0] {
            "solve" => self.solve(s, id, pending, stage_exprs)?,
            "answer_sha256" => self.answer_hash(s)?,
            "collect" => self.collect(s)?,
            _ => self.puzzle(s)?,
        };
        Some(Stage {
            id: id.to_string(),
            clue,
            kind,
            reward,
            first_finders,
        })
    }

    fn first_finders(&mut self, s: &mut TableReader<'_, '_>) -> Vec<i64> {
        let Some((items, _)) = s.array(self.sink, "first_finders") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match integer_of(item.get_ref()) {
                Some(n) if n >= 0 => out.push(n),
                _ => self.error(
                    s.loc_of(item),
                    "type-mismatch",
                    &format!("{}[{i}]", s.key_path("first_finders")),
                    format!(
                        "expected bonus points as an integer >= 0, found {}",
                        describe(item.get_ref())
                    ),
                ),
            }
        }
        out
    }

    fn solve(
        &mut self,
        s: &mut TableReader<'_, '_>,
        id: &str,
        pending: &mut Vec<PendingExpr>,
        stage_exprs: &mut Vec<(String, usize)>,
    ) -> Option<StageKind> {
        let mut t = s.table(self.sink, "solve")?;
        let on = t.string(self.sink, "on");
        let when = t.string(self.sink, "when");
        if t.get("on").is_none() {
            self.error(
                t.loc.clone(),
                "missing-key",
                &t.key_path("on"),
                "solve needs on = \"<event type>\"",
            );
        }
        t.finish(self.sink);
        let (name, loc) = on?;
        let on = self.event_type_ref(name, loc, &t.key_path("on"))?;
        if let Some((text, loc)) = when {
            pending.push(PendingExpr {
                text: text.to_string(),
                loc,
                key: t.key_path("when"),
                trigger: on,
            });
            stage_exprs.push((id.to_string(), pending.len() - 1));
        }
        Some(StageKind::Solve { on, when: None })
    }

    fn answer_hash(&mut self, s: &mut TableReader<'_, '_>) -> Option<StageKind> {
        let (text, loc) = s.string(self.sink, "answer_sha256")?;
        let mut bytes = [0u8; 32];
        match hex::decode_to_slice(text, &mut bytes) {
            Ok(()) => Some(StageKind::Answer { sha256: bytes }),
            Err(_) => {
                self.error_help(loc, "invalid-value", &s.key_path("answer_sha256"), format!("expected 64 hexadecimal characters (a SHA-256 digest), found {} characters", text.chars().count()), Some("compute it with `veltrix hash-answer \"<answer>\"`".into()));
                None
            }
        }
    }

    fn collect(&mut self, s: &mut TableReader<'_, '_>) -> Option<StageKind> {
        let mut t = s.table(self.sink, "collect")?;
        let on = t.string(self.sink, "on");
        let field = t.string(self.sink, "field");
        let items = t.strings(self.sink, "items");
        for key in ["on", "field", "items"] {
            if t.get(key).is_none() {
                self.error(
                    t.loc.clone(),
                    "missing-key",
                    &t.key_path(key),
                    format!("collect needs {key}"),
                );
            }
        }
        t.finish(self.sink);
        let (on_name, on_loc) = on?;
        let on = self.event_type_ref(on_name, on_loc, &t.key_path("on"))?;
        let (field_name, field_loc) = field?;
        let event_type = &self.event_types[on as usize];
        let Some(slot) = event_type.field(field_name) else {
            let help = did_you_mean(
                field_name,
                event_type.fields.iter().map(|f| f.name.as_str()),
            );
            let msg = format!(
                "event type \"{}\" has no field \"{field_name}\"",
                event_type.name
            );
            self.error_help(field_loc, "unknown-field", &t.key_path("field"), msg, help);
            return None;
        };
        let declared = event_type.fields[slot as usize].clone();
        if declared.ty != FieldType::String {
            self.error(
                field_loc,
                "type-mismatch",
                &t.key_path("field"),
                format!("collect needs a string field; \"{field_name}\" is not a string"),
            );
            return None;
        }
        let (items, items_loc) = items?;
        if items.is_empty() {
            self.error(
                items_loc,
                "invalid-value",
                &t.key_path("items"),
                "collect needs at least one item",
            );
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for (i, (item, loc)) in items.iter().enumerate() {
            let key = format!("{}[{i}]", t.key_path("items"));
            if names.iter().any(|n| n == item) {
                self.error(
                    loc.clone(),
                    "duplicate",
                    &key,
                    format!("item \"{item}\" is listed twice"),
                );
                continue;
            }
            if let Some(allowed) = &declared.allowed
                && !allowed.contains(&Literal::Str(item.to_string()))
            {
                let options: Vec<String> = allowed
                    .iter()
                    .map(|l| match l {
                        Literal::Str(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                let help = did_you_mean(item, options.iter().map(String::as_str));
                self.error_help(
                    loc.clone(),
                    "unknown-item",
                    &key,
                    format!(
                        "\"{item}\" is not one of the values field \"{field_name}\" allows ({})",
                        options.join(", ")
                    ),
                    help,
                );
                continue;
            }
            names.push(item.to_string());
        }
        Some(StageKind::Collect {
            on,
            field: slot,
            items: names,
        })
    }

    fn puzzle(&mut self, s: &mut TableReader<'_, '_>) -> Option<StageKind> {
        let mut t = s.table(self.sink, "puzzle")?;
        let kind = t.string(self.sink, "kind");
        let words = t.strings(self.sink, "words");
        let difficulty = t.string(self.sink, "difficulty");
        let size = t.count(self.sink, "size", 1, 64);
        t.finish(self.sink);
        let Some((kind_name, kind_loc)) = kind else {
            if t.get("kind").is_none() {
                self.error(
                    t.loc.clone(),
                    "missing-key",
                    &t.key_path("kind"),
                    "puzzle needs kind, e.g. kind = \"caesar\"",
                );
            }
            return None;
        };
        let kind = match kind_name.parse::<veltrix_puzzles::PuzzleKind>() {
            Ok(kind) => kind,
            Err(_) => {
                let names = veltrix_puzzles::PuzzleKind::ALL.map(|k| k.as_str());
                let help = did_you_mean(kind_name, names);
                self.error_help(
                    kind_loc,
                    "invalid-puzzle",
                    &t.key_path("kind"),
                    format!(
                        "unknown puzzle kind \"{kind_name}\": expected one of {}",
                        names.join(", ")
                    ),
                    help,
                );
                return None;
            }
        };
        let spec = veltrix_puzzles::PuzzleSpec {
            kind,
            words: words
                .as_ref()
                .map(|(w, _)| w.iter().map(|(s, _)| s.to_string()).collect())
                .unwrap_or_default(),
            difficulty: difficulty.as_ref().map(|(d, _)| d.to_string()),
            size: size.as_ref().map(|(n, _)| *n as u32),
        };
        let problems = veltrix_puzzles::validate_spec(&spec);
        for problem in &problems {
            let loc = match problem.key {
                "words" => words.as_ref().map(|w| w.1.clone()),
                "difficulty" => difficulty.as_ref().map(|d| d.1.clone()),
                "size" => size.as_ref().map(|s| s.1.clone()),
                _ => Some(kind_loc.clone()),
            }
            .unwrap_or_else(|| t.loc.clone());
            self.error_help(
                loc,
                "invalid-puzzle",
                &t.key_path(problem.key),
                problem.message.clone(),
                problem.help.clone(),
            );
        }
        problems.is_empty().then_some(StageKind::Puzzle(spec))
    }

    // ---- leaderboards and views ------------------------------------------

    fn leaderboards(&mut self, items: &[Item<'_, '_>]) -> Vec<Leaderboard> {
        let mut boards = Vec::new();
        for item in items {
            if !self.check_name(item, "leaderboard") {
                continue;
            }
            let Some(mut t) = self.item_table(item) else {
                continue;
            };
            t.string(self.sink, "title");
            let hunt = t.string(self.sink, "hunt").and_then(|(name, loc)| {
                let found = self.hunt_names.iter().position(|(h, _)| h == name);
                if found.is_none() {
                    let help = did_you_mean(name, self.hunt_names.iter().map(|(h, _)| h.as_str()));
                    self.error_help(
                        loc,
                        "unknown-hunt",
                        &t.key_path("hunt"),
                        format!("unknown hunt \"{name}\""),
                        help,
                    );
                }
                found.map(|i| i as HuntId)
            });
            let hunt_given = t.get("hunt").is_some();
            let period = match t.string(self.sink, "period") {
                None | Some(("all", _)) => Some(Period::All),
                Some(("day", _)) => Some(Period::Day),
                Some(("week", _)) => Some(Period::Week),
                Some((other, loc)) => {
                    let help = did_you_mean(other, ["all", "day", "week"]);
                    self.error_help(
                        loc,
                        "invalid-value",
                        &t.key_path("period"),
                        format!("expected \"all\", \"day\" or \"week\", found \"{other}\""),
                        help,
                    );
                    None
                }
            };
            t.finish(self.sink);
            if let (Some(period), false) = (period, hunt_given && hunt.is_none()) {
                boards.push(Leaderboard {
                    name: item.name.to_string(),
                    hunt,
                    period,
                });
            }
        }
        boards
    }

    fn views(&mut self, values: &[(usize, &Value<'_>, String)]) -> Vec<View> {
        let mut views: Vec<View> = Vec::new();
        for (file, value, key) in values {
            let loc = Loc::new(*file, value.span());
            let DeValue::Table(table) = value.get_ref() else {
                self.error(
                    loc,
                    "type-mismatch",
                    key,
                    format!("expected a view table, found {}", describe(value.get_ref())),
                );
                continue;
            };
            let mut t = TableReader::new(table, key.clone(), loc.clone());
            if let Some(view) = self.view(&mut t, &views) {
                views.push(view);
            }
            t.finish(self.sink);
        }
        views
    }

    fn view(&mut self, t: &mut TableReader<'_, '_>, earlier: &[View]) -> Option<View> {
        let name = t.string(self.sink, "name");
        let on = t.string(self.sink, "on");
        let group_by = t.strings(self.sink, "group_by");
        let bucket = self.duration(t, "bucket");
        let measures = t.strings(self.sink, "measures");
        t.string(self.sink, "description");
        for key in ["name", "on", "bucket", "measures"] {
            if t.get(key).is_none() {
                self.error(
                    t.loc.clone(),
                    "missing-key",
                    &t.key_path(key),
                    format!("a view needs {key}"),
                );
            }
        }
        let (name, name_loc) = name?;
        if !is_identifier(name) {
            self.error(
                name_loc.clone(),
                "invalid-name",
                &t.key_path("name"),
                format!("invalid view name \"{name}\""),
            );
        }
        if earlier.iter().any(|v| v.name == name) {
            self.error(
                name_loc,
                "duplicate",
                &t.key_path("name"),
                format!("view \"{name}\" is defined twice"),
            );
        }
        let (on_name, on_loc) = on?;
        let on = self.event_type_ref(on_name, on_loc, &t.key_path("on"))?;
        let mut dims = Vec::new();
        for (i, (dim, loc)) in group_by
            .map(|g| g.0)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("{}[{i}]", t.key_path("group_by"));
            if dim == "player" {
                dims.push(Dimension::Player);
            } else if let Some((slot, fname)) = self.data_field_ref(on, dim, loc, &key, false) {
                dims.push(Dimension::Field(slot, fname));
            }
        }
        let mut out = Vec::new();
        for (i, (text, loc)) in measures
            .map(|m| m.0)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("{}[{i}]", t.key_path("measures"));
            if text == "count" {
                out.push(Measure::Count);
                continue;
            }
            let parsed = text.strip_suffix(')').and_then(|rest| rest.split_once('('));
            let Some((func, arg)) = parsed else {
                self.error_help(loc, "invalid-value", &key, format!("invalid measure \"{text}\""), Some("measures are \"count\", \"sum(data.FIELD)\", \"min(data.FIELD)\" or \"max(data.FIELD)\"".into()));
                continue;
            };
            let Some((slot, fname)) = self.data_field_ref(on, arg.trim(), loc.clone(), &key, true)
            else {
                continue;
            };
            match func.trim() {
                "sum" => out.push(Measure::Sum(slot, fname)),
                "min" => out.push(Measure::Min(slot, fname)),
                "max" => out.push(Measure::Max(slot, fname)),
                other => {
                    let help = did_you_mean(other, ["sum", "min", "max"]);
                    self.error_help(
                        loc,
                        "invalid-value",
                        &key,
                        format!("unknown measure function \"{other}\": expected sum, min or max"),
                        help,
                    );
                }
            }
        }
        Some(View {
            name: name.to_string(),
            on,
            group_by: dims,
            bucket_ms: bucket?,
            measures: out,
        })
    }

    /// Resolves `data.FIELD` against an event type.
    fn data_field_ref(
        &mut self,
        on: EventTypeId,
        text: &str,
        loc: Loc,
        key: &str,
        numeric: bool,
    ) -> Option<(FieldSlot, String)> {
        let Some(name) = text.strip_prefix("data.") else {
            self.error_help(
                loc,
                "invalid-value",
                key,
                format!("expected data.FIELD, found \"{text}\""),
                Some("write the field as data.NAME".into()),
            );
            return None;
        };
        let event_type = &self.event_types[on as usize];
        let Some(slot) = event_type.field(name) else {
            let help = did_you_mean(name, event_type.fields.iter().map(|f| f.name.as_str()));
            let msg = format!("event type \"{}\" has no field \"{name}\"", event_type.name);
            self.error_help(loc, "unknown-field", key, msg, help);
            return None;
        };
        let ty = event_type.fields[slot as usize].ty;
        if numeric && !matches!(ty, FieldType::Int | FieldType::Double) {
            self.error(
                loc,
                "type-mismatch",
                key,
                format!("field \"{name}\" is not a number"),
            );
            return None;
        }
        Some((slot, name.to_string()))
    }

    // ---- expressions -----------------------------------------------------

    fn schema(&self) -> Schema {
        Schema {
            event_types: self
                .event_types
                .iter()
                .map(|t| EventTypeDecl {
                    name: t.name.clone(),
                    fields: t
                        .fields
                        .iter()
                        .map(|f| FieldDecl {
                            name: f.name.clone(),
                            ty: f.ty,
                            optional: f.optional,
                        })
                        .collect(),
                })
                .collect(),
            currencies: self.currencies.clone(),
            badges: self.badges.clone(),
            hunts: self
                .hunt_names
                .iter()
                .map(|(name, stages)| HuntDecl {
                    name: name.clone(),
                    stages: stages.clone(),
                })
                .collect(),
        }
    }

    fn compile_expressions(&mut self, pending: Vec<PendingExpr>) -> Vec<veltrix_expr::Compiled> {
        let schema = self.schema();
        let mut out = Vec::new();
        let mut cache: HashMap<(String, EventTypeId), veltrix_expr::Compiled> = HashMap::new();
        for expr in pending {
            if self.broken_types.contains(&expr.trigger) {
                continue;
            }
            if let Some(done) = cache.get(&(expr.text.clone(), expr.trigger)) {
                out.push(done.clone());
                continue;
            }
            match veltrix_expr::compile_condition(&expr.text, &schema, expr.trigger) {
                Ok(compiled) => {
                    cache.insert((expr.text.clone(), expr.trigger), compiled.clone());
                    out.push(compiled);
                }
                Err(errors) => {
                    let offset = expression_offset(
                        &self.sink.sources[expr.loc.file].text,
                        &expr.loc,
                        &expr.text,
                    );
                    for e in errors {
                        let loc = match offset {
                            Some(start) => {
                                Loc::new(expr.loc.file, start + e.span.start..start + e.span.end)
                            }
                            None => expr.loc.clone(),
                        };
                        self.error_help(loc, "expression", &expr.key, e.message, e.help);
                    }
                }
            }
        }
        out
    }
}

/// Where the expression text starts inside its TOML string, when the string
/// has no escapes (so byte offsets inside the expression map one to one).
fn expression_offset(source: &str, loc: &Loc, text: &str) -> Option<usize> {
    let raw = source.get(loc.span.clone())?;
    for quote in ["\"\"\"", "'''", "\"", "'"] {
        if raw.len() == text.len() + 2 * quote.len()
            && raw.starts_with(quote)
            && &raw[quote.len()..raw.len() - quote.len()] == text
        {
            return Some(loc.span.start + quote.len());
        }
    }
    None
}

/// The configuration version: a hash of what the configuration means to the
/// engine — every file's base name (file order decides rule order) and its
/// parsed tree, without comments, formatting or the `[server]` section. So
/// reformatting a file, spelling its path differently, moving the listen
/// address or rotating an API key does not make a new version (snapshots
/// stay valid), while any change to events, rules, hunts, rewards,
/// leaderboards, views or `[engine]` does.
fn version_of(tables: &[(usize, &toml::Spanned<DeTable<'_>>)], sources: &[Source]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for &(file, table) in tables {
        let name = &sources[file].name;
        let name = std::path::Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        hash_part(&mut hasher, b'f', name.as_bytes());
        for (key, value) in table.get_ref().iter() {
            let key: &str = key.get_ref().as_ref();
            if key == "server" {
                continue;
            }
            hash_part(&mut hasher, b'k', key.as_bytes());
            hash_value(&mut hasher, value.get_ref());
        }
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Tagged, length-prefixed, so no two different trees hash alike.
fn hash_part(hasher: &mut sha2::Sha256, tag: u8, bytes: &[u8]) {
    use sha2::Digest;
    hasher.update([tag]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn hash_value(hasher: &mut sha2::Sha256, value: &DeValue<'_>) {
    match value {
        DeValue::String(s) => hash_part(hasher, b's', s.as_bytes()),
        // Integers and floats by value, so `1_000` and `1000` are the same.
        DeValue::Integer(_) => hash_part(
            hasher,
            b'i',
            integer_of(value).unwrap_or_default().to_string().as_bytes(),
        ),
        DeValue::Float(_) => hash_part(
            hasher,
            b'x',
            number_of(value)
                .unwrap_or_default()
                .to_bits()
                .to_le_bytes()
                .as_slice(),
        ),
        DeValue::Boolean(b) => hash_part(hasher, b'b', &[u8::from(*b)]),
        DeValue::Datetime(d) => hash_part(hasher, b'd', d.to_string().as_bytes()),
        DeValue::Array(items) => {
            hash_part(hasher, b'a', &(items.len() as u64).to_le_bytes());
            for item in items.iter() {
                hash_value(hasher, item.get_ref());
            }
        }
        DeValue::Table(table) => {
            hash_part(hasher, b't', &(table.len() as u64).to_le_bytes());
            for (key, item) in table.iter() {
                hash_part(hasher, b'k', key.get_ref().as_bytes());
                hash_value(hasher, item.get_ref());
            }
        }
    }
}
