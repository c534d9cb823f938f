//! Events: parsing JSON bytes straight into a validated [`Event`] against the
//! compiled field table, in one pass and without an intermediate
//! `serde_json::Value` (except when `data` precedes `type` in the object,
//! where the data is buffered because its schema is not known yet).
//!
//! Errors name the field and the reason in plain words, e.g.
//! `data.amount: expected a number >= 0, got "ten"`.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use veltrix_config::veltrix_expr::FieldType;
use veltrix_config::{Config, EventType, EventTypeId, Field, Literal};

/// Longest accepted `id` and `player`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Event times must lie in [0, year 9999].
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// A data field value after validation.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Missing,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Box<str>),
}

impl FieldValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Double(d) => Some(*d),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A validated event. `data[slot]` follows the event type's field order.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: std::sync::Arc<str>,
    pub player: std::sync::Arc<str>,
    pub event_type: EventTypeId,
    /// Event time in ms since the epoch; filled with the acceptance time when
    /// the sender gave none, so replay sees the same value.
    pub ts: i64,
    pub data: Vec<FieldValue>,
}

/// Why an event was rejected. `id` is the event's id when it could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventError {
    pub id: Option<String>,
    pub message: String,
}

impl EventError {
    /// A short, stable class of the (first) problem, for counting
    /// rejections by reason: `malformed_json`, `unknown_event_type`,
    /// `missing_field`, `unknown_field`, `duplicate_key` or `invalid_value`.
    pub fn reason(&self) -> &'static str {
        rejection_reason(&self.message)
    }
}

/// The class of a rejection message (see [`EventError::reason`]); judged on
/// the first problem when a message lists several.
pub fn rejection_reason(message: &str) -> &'static str {
    let first = message.split("; ").next().unwrap_or(message);
    if first.starts_with("malformed JSON")
        || first.contains("(at column")
        || first.contains("(at line")
        || first.starts_with("expected an event object")
    {
        "malformed_json"
    } else if first.contains("unknown event type") {
        "unknown_event_type"
    } else if first.contains(": missing") {
        "missing_field"
    } else if first.contains(": unknown field") {
        "unknown_field"
    } else if first.contains("appears twice") {
        "duplicate_key"
    } else {
        "invalid_value"
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Parses and validates one JSON event. `accept_time_ms` fills a missing `ts`.
/// A rejected event still reports its id when the id itself was valid, so
/// dedup can recognise an invalid copy of an accepted event.
pub fn parse_event(
    config: &Config,
    bytes: &[u8],
    accept_time_ms: i64,
) -> Result<Event, EventError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Filled in place: returning it by value from the visitor cost a few
    // copies of its 200-odd bytes per event.
    let mut raw = RawEvent::default();
    let read = (RawSeed {
        config,
        raw: &mut raw,
    })
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Err(e) = read {
        return Err(EventError {
            id: None,
            message: json_error_message(&e),
        });
    }
    raw.finish(config, accept_time_ms)
}

fn json_error_message(e: &serde_json::Error) -> String {
    // serde_json says "… at line L column C"; an NDJSON line is one line, so
    // only the column helps there.
    let text = e.to_string();
    let reason = match text.split(" at line ").next().unwrap_or(&text) {
        "expected ident" | "expected value" => "expected a JSON value (strings need double quotes)",
        "key must be a string" => "object keys must be strings in double quotes",
        other => other,
    };
    let place = if e.line() > 1 {
        format!("line {} column {}", e.line(), e.column())
    } else {
        format!("column {}", e.column())
    };
    match e.classify() {
        serde_json::error::Category::Eof => {
            format!("malformed JSON: unexpected end of input at {place}")
        }
        serde_json::error::Category::Syntax => format!("malformed JSON at {place}: {reason}"),
        _ => format!("{reason} (at {place})"),
    }
}

/// A scalar as read from JSON, kept for precise error messages.
#[derive(Debug)]
enum Scalar<'de> {
    Str(Cow<'de, str>),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    Null,
    Array,
    Object,
}

impl Scalar<'_> {
    fn describe(&self) -> String {
        match self {
            Scalar::Str(s) => {
                let shown: String = s.chars().take(40).collect();
                if shown.len() < s.len() {
                    format!("\"{shown}…\"")
                } else {
                    format!("\"{shown}\"")
                }
            }
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Null => "null".into(),
            Scalar::Array => "an array".into(),
            Scalar::Object => "an object".into(),
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Uint(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// A top-level string attribute: its value or the error about it.
enum Attr<'de> {
    Ok(Cow<'de, str>),
    Bad(String),
}

impl Attr<'_> {
    fn as_ok(&self) -> Option<&str> {
        match self {
            Attr::Ok(s) => Some(s),
            Attr::Bad(_) => None,
        }
    }
}

#[derive(Default)]
struct RawEvent<'de> {
    id: Option<Attr<'de>>,
    player: Option<Attr<'de>>,
    type_name: Option<Attr<'de>>,
    ts: Option<Scalar<'de>>,
    /// Validated data, when `type` came before `data`.
    data: Option<Vec<FieldValue>>,
    /// Data seen before the type was known: re-validated at the end.
    deferred_data: Option<serde_json::Map<String, serde_json::Value>>,
    data_not_object: Option<String>,
    errors: Vec<String>,
}

/// Reads an event object into `raw`.
struct RawSeed<'c, 'r, 'de> {
    config: &'c Config,
    raw: &'r mut RawEvent<'de>,
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object {\"id\", \"player\", \"type\", \"ts\", \"data\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let raw = self.raw;
        let mut seen_data = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let duplicate = |raw: &mut RawEvent, present: bool| {
                if present {
                    raw.errors
                        .push(format!("{key}: appears twice in the event"));
                }
            };
            match key.as_ref() {
                "id" | "player" | "type" => {
                    let value = map.next_value::<Scalar<'de>>()?;
                    let attr = match value {
                        Scalar::Str(s) => Attr::Ok(s),
                        other => Attr::Bad(format!(
                            "{key}: expected a string, got {}",
                            other.describe()
                        )),
                    };
                    let slot = match key.as_ref() {
                        "id" => &mut raw.id,
                        "player" => &mut raw.player,
                        _ => &mut raw.type_name,
                    };
                    let present = slot.is_some();
                    *slot = Some(attr);
                    duplicate(raw, present);
                }
                "ts" => {
                    let present = raw.ts.is_some();
                    raw.ts = Some(map.next_value::<Scalar<'de>>()?);
                    duplicate(raw, present);
                }
                "data" => {
                    duplicate(raw, seen_data);
                    seen_data = true;
                    let known = raw
                        .type_name
                        .as_ref()
                        .and_then(Attr::as_ok)
                        .and_then(|t| self.config.event_type(t));
                    match known {
                        Some(type_id) => {
                            let event_type = &self.config.event_types[type_id as usize];
                            let outcome = map.next_value_seed(DataSeed { event_type })?;
                            match outcome {
                                DataOutcome::Valid(values, errors) => {
                                    raw.data = Some(values);
                                    raw.errors.extend(errors);
                                }
                                DataOutcome::NotObject(found) => raw.data_not_object = Some(found),
                            }
                        }
                        None => match map.next_value::<serde_json::Value>()? {
                            serde_json::Value::Object(m) => raw.deferred_data = Some(m),
                            serde_json::Value::Null => {}
                            other => raw.data_not_object = Some(describe_value(&other)),
                        },
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    raw.errors.push(format!(
                        "{key}: unknown attribute; an event has id, player, type, ts and data (put custom fields inside data)"
                    ));
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("expected an event object, got an array"))
    }
}

fn describe_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => format!("\"{}\"", s.chars().take(40).collect::<String>()),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}

impl<'de> RawEvent<'de> {
    fn finish(mut self, config: &Config, accept_time_ms: i64) -> Result<Event, EventError> {
        let id = self.required_string("id");
        let player = self.required_string("player");
        let type_name = self.required_string("type");
        let event_type = type_name.as_deref().and_then(|name| {
            let found = config.event_type(name);
            if found.is_none() {
                let names = config.event_types.iter().map(|t| t.name.as_str());
                let help = suggestion(name, names);
                self.errors
                    .push(format!("type: unknown event type \"{name}\"{help}"));
            }
            found
        });
        let ts = match self.ts.take() {
            None | Some(Scalar::Null) => Some(accept_time_ms),
            Some(value) => match parse_ts(&value) {
                Ok(ts) => Some(ts),
                Err(message) => {
                    self.errors.push(message);
                    None
                }
            },
        };
        let mut data = None;
        if let Some(type_id) = event_type {
            let event_type = &config.event_types[type_id as usize];
            if let Some(found) = self.data_not_object.take() {
                self.errors
                    .push(format!("data: expected an object, got {found}"));
            } else if let Some(values) = self.data.take() {
                data = Some(values);
            } else {
                let map = self.deferred_data.take().unwrap_or_default();
                let (values, errors) = validate_value_map(event_type, &map);
                self.errors.extend(errors);
                data = Some(values);
            }
            if let Some(values) = &data
                && type_id == config.answer_type
            {
                self.check_answer(config, values);
            }
        }
        if !self.errors.is_empty() {
            return Err(EventError {
                id: id.map(String::from),
                message: self.errors.join("; "),
            });
        }
        match (id, player, event_type, ts, data) {
            (Some(id), Some(player), Some(event_type), Some(ts), Some(data)) => Ok(Event {
                id: id.into(),
                player: player.into(),
                event_type,
                ts,
                data,
            }),
            // Invariant: every None above pushed an error.
            (id, ..) => Err(EventError {
                id: id.map(String::from),
                message: "invalid event".into(),
            }),
        }
    }

    fn required_string(&mut self, key: &str) -> Option<Cow<'de, str>> {
        let slot = match key {
            "id" => self.id.take(),
            "player" => self.player.take(),
            _ => self.type_name.take(),
        };
        match slot {
            None => {
                self.errors.push(format!(
                    "{key}: missing (every event needs id, player and type)"
                ));
                None
            }
            Some(Attr::Bad(message)) => {
                self.errors.push(message);
                None
            }
            Some(Attr::Ok(value)) => {
                let limited = key != "type";
                if value.is_empty() {
                    self.errors.push(format!("{key}: must not be empty"));
                    None
                } else if limited && value.len() > MAX_ID_BYTES {
                    self.errors.push(format!(
                        "{key}: must be at most {MAX_ID_BYTES} bytes, got {} bytes",
                        value.len()
                    ));
                    None
                } else {
                    Some(value)
                }
            }
        }
    }

    fn check_answer(&mut self, config: &Config, values: &[FieldValue]) {
        let Some(hunt_name) = values.first().and_then(FieldValue::as_str) else {
            return;
        };
        let Some(hunt) = config.hunt(hunt_name) else {
            let help = suggestion(hunt_name, config.hunts.iter().map(|h| h.name.as_str()));
            self.errors
                .push(format!("data.hunt: unknown hunt \"{hunt_name}\"{help}"));
            return;
        };
        let Some(stage) = values.get(1).and_then(FieldValue::as_str) else {
            return;
        };
        let stages = &config.hunts[hunt as usize].stages;
        if !stages.iter().any(|s| s.id == stage) {
            let help = suggestion(stage, stages.iter().map(|s| s.id.as_str()));
            self.errors.push(format!(
                "data.stage: hunt \"{hunt_name}\" has no stage \"{stage}\"{help}"
            ));
        }
    }
}

/// `; did you mean "x"?` for a near miss, or nothing.
fn suggestion<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    veltrix_config::did_you_mean(name, candidates)
        .map(|s| format!("; {s}"))
        .unwrap_or_default()
}

fn parse_ts(value: &Scalar<'_>) -> Result<i64, String> {
    let expected = "ts: expected integer milliseconds since the epoch or an RFC 3339 time";
    match value {
        Scalar::Int(ms) if (0..=MAX_TS_MS).contains(ms) => Ok(*ms),
        Scalar::Uint(ms) if *ms <= MAX_TS_MS as u64 => Ok(*ms as i64),
        Scalar::Int(_) | Scalar::Uint(_) => Err(format!(
            "ts: {} is out of range (0 to {MAX_TS_MS} ms, year 9999)",
            value.describe()
        )),
        Scalar::Str(text) => match text.parse::<jiff::Timestamp>() {
            Ok(t) if (0..=MAX_TS_MS).contains(&t.as_millisecond()) => Ok(t.as_millisecond()),
            Ok(_) => Err(format!(
                "ts: {} is out of range (1970 to 9999)",
                value.describe()
            )),
            Err(_) => Err(format!(
                "{expected} like \"2026-12-01T10:00:00Z\", got {}",
                value.describe()
            )),
        },
        other => Err(format!("{expected}, got {}", other.describe())),
    }
}

// ---- data validation -----------------------------------------------------

enum DataOutcome {
    Valid(Vec<FieldValue>, Vec<String>),
    NotObject(String),
}

struct DataSeed<'t> {
    event_type: &'t EventType,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = DataOutcome;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = DataOutcome;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a data object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fields = &self.event_type.fields;
        let mut values = vec![FieldValue::Missing; fields.len()];
        let mut present = vec![false; fields.len()];
        let mut errors = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.event_type.field(&key) {
                Some(slot) => {
                    let slot = slot as usize;
                    let scalar = map.next_value::<Scalar<'de>>()?;
                    if present[slot] {
                        errors.push(format!("data.{key}: appears twice"));
                        continue;
                    }
                    present[slot] = true;
                    match check_field(&fields[slot], scalar) {
                        Ok(v) => values[slot] = v,
                        Err(e) => errors.push(format!("data.{key}: {e}")),
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    if !self.event_type.allow_extra {
                        errors.push(unknown_field_message(self.event_type, &key));
                    }
                }
            }
        }
        missing_fields(fields, &present, &mut errors);
        Ok(DataOutcome::Valid(values, errors))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        let fields = &self.event_type.fields;
        let values = vec![FieldValue::Missing; fields.len()];
        let mut errors = Vec::new();
        missing_fields(fields, &vec![false; fields.len()], &mut errors);
        Ok(DataOutcome::Valid(values, errors))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(DataOutcome::NotObject("an array".into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(DataOutcome::NotObject(
            Scalar::Str(Cow::Borrowed(v)).describe(),
        ))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(DataOutcome::NotObject(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(DataOutcome::NotObject(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(DataOutcome::NotObject(v.to_string()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(DataOutcome::NotObject(v.to_string()))
    }
}

fn unknown_field_message(event_type: &EventType, key: &str) -> String {
    let names = event_type.fields.iter().map(|f| f.name.as_str());
    match veltrix_config::did_you_mean(key, names) {
        Some(near) => format!(
            "data.{key}: unknown field of event type \"{}\"; {near}",
            event_type.name
        ),
        None if event_type.fields.is_empty() => format!(
            "data.{key}: unknown field; event type \"{}\" declares no data fields",
            event_type.name
        ),
        None => format!(
            "data.{key}: unknown field of event type \"{}\" (it declares {})",
            event_type.name,
            event_type
                .fields
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reports required fields that were not given (a field given with a wrong
/// value was already reported and is not reported again as missing).
fn missing_fields(fields: &[Field], present: &[bool], errors: &mut Vec<String>) {
    for (field, &given) in fields.iter().zip(present) {
        if !field.optional && !given {
            errors.push(format!(
                "data.{}: missing required field ({})",
                field.name,
                type_words(field)
            ));
        }
    }
}

fn validate_value_map(
    event_type: &EventType,
    map: &serde_json::Map<String, serde_json::Value>,
) -> (Vec<FieldValue>, Vec<String>) {
    let fields = &event_type.fields;
    let mut values = vec![FieldValue::Missing; fields.len()];
    let mut present = vec![false; fields.len()];
    let mut errors = Vec::new();
    for (key, value) in map {
        match event_type.field(key) {
            Some(slot) => {
                present[slot as usize] = true;
                let scalar = match value {
                    serde_json::Value::Null => Scalar::Null,
                    serde_json::Value::Bool(b) => Scalar::Bool(*b),
                    serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                        (Some(i), _, _) => Scalar::Int(i),
                        (_, Some(u), _) => Scalar::Uint(u),
                        (_, _, Some(f)) => Scalar::Float(f),
                        _ => Scalar::Null,
                    },
                    serde_json::Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
                    serde_json::Value::Array(_) => Scalar::Array,
                    serde_json::Value::Object(_) => Scalar::Object,
                };
                match check_field(&fields[slot as usize], scalar) {
                    Ok(v) => values[slot as usize] = v,
                    Err(e) => errors.push(format!("data.{key}: {e}")),
                }
            }
            None if event_type.allow_extra => {}
            None => errors.push(unknown_field_message(event_type, key)),
        }
    }
    missing_fields(fields, &present, &mut errors);
    (values, errors)
}

/// "a number >= 0", "a string of at most 20 characters", …
fn type_words(field: &Field) -> String {
    let mut words = match field.ty {
        FieldType::String => "a string".to_string(),
        FieldType::Double => "a number".to_string(),
        FieldType::Int => "an integer".to_string(),
        FieldType::Bool => "a boolean".to_string(),
    };
    match (field.min, field.max) {
        (Some(min), Some(max)) => words.push_str(&format!(" from {min} to {max}")),
        (Some(min), None) => words.push_str(&format!(" >= {min}")),
        (None, Some(max)) => words.push_str(&format!(" <= {max}")),
        (None, None) => {}
    }
    if let Some(max_len) = field.max_len {
        words.push_str(&format!(" of at most {max_len} characters"));
    }
    if let Some(allowed) = &field.allowed {
        let list: Vec<String> = allowed.iter().map(Literal::to_string).collect();
        words.push_str(&format!(", one of {}", list.join(", ")));
    }
    words
}

fn check_field(field: &Field, value: Scalar<'_>) -> Result<FieldValue, String> {
    let mismatch =
        |value: &Scalar<'_>| format!("expected {}, got {}", type_words(field), value.describe());
    let checked = match (&field.ty, &value) {
        (_, Scalar::Null) if field.optional => return Ok(FieldValue::Missing),
        (FieldType::String, Scalar::Str(s)) => {
            if field.max_len.is_some_and(|max| s.chars().count() > max) {
                return Err(mismatch(&value));
            }
            FieldValue::Str(s.as_ref().into())
        }
        (FieldType::Bool, Scalar::Bool(b)) => FieldValue::Bool(*b),
        (FieldType::Int, Scalar::Int(i)) => FieldValue::Int(*i),
        (FieldType::Int, Scalar::Uint(u)) if *u <= i64::MAX as u64 => FieldValue::Int(*u as i64),
        (FieldType::Int, Scalar::Float(f))
            if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 =>
        {
            FieldValue::Int(*f as i64)
        }
        (FieldType::Double, Scalar::Int(i)) => FieldValue::Double(*i as f64),
        (FieldType::Double, Scalar::Uint(u)) => FieldValue::Double(*u as f64),
        (FieldType::Double, Scalar::Float(f)) if f.is_finite() => FieldValue::Double(*f),
        _ => return Err(mismatch(&value)),
    };
    if let Some(n) = checked.as_f64()
        && (field.min.is_some_and(|min| n < min) || field.max.is_some_and(|max| n > max))
    {
        return Err(mismatch(&value));
    }
    if let Some(allowed) = &field.allowed {
        let ok = allowed.iter().any(|literal| match (literal, &checked) {
            (Literal::Str(a), FieldValue::Str(b)) => a.as_str() == b.as_ref(),
            (Literal::Bool(a), FieldValue::Bool(b)) => a == b,
            (Literal::Num(a), v) => v.as_f64() == Some(*a),
            _ => false,
        });
        if !ok {
            return Err(mismatch(&value));
        }
    }
    Ok(checked)
}
