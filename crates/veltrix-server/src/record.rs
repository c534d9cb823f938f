//! What the server writes into the log: one [`LogRecord`] per log position.
//!
//! A payload is one format-version byte ([`FORMAT_VERSION`]) followed by the
//! `postcard` encoding of a [`LogRecord`]. Records name event types, fields
//! and currencies by *name*, not by configuration index, so a log stays
//! readable when a new configuration reorders or adds declarations; on
//! start-up every record is rebuilt against the configuration in force at
//! its position (the start-up one, or the last `ConfigSwitch` before it),
//! and a record that no longer fits it is a hard error naming its seq.
//!
//! postcard encodes an enum variant by its position: new variants may only be
//! appended at the end, and any other change needs a new format version.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use veltrix_config::Config;
use veltrix_core::{Event, FieldValue, Rejection};

/// The first byte of every payload.
pub const FORMAT_VERSION: u8 = 1;

/// One log record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogRecord {
    /// An accepted event, with its acceptance-time-filled `ts`.
    Event {
        id: String,
        player: String,
        /// The event type's name.
        event_type: String,
        ts: i64,
        /// Present data fields by name, in the event type's field order.
        data: Vec<(String, FieldValueRecord)>,
    },
    /// An applied spend.
    Spend {
        player: String,
        currency: String,
        amount: i64,
        key: String,
    },
    /// What one ingest request submitted besides accepted events: how many
    /// duplicates and which rejections (the dead letters). Logged so that the
    /// counts and the dead-letter list survive a restart; it changes no
    /// engine state.
    Tally {
        duplicates: u64,
        rejected: Vec<RejectionRecord>,
    },
    /// The configuration version in force from here on: written at start-up
    /// when it differs from the last one in the log, so the log says which
    /// version each stretch of records was first evaluated with.
    Config { version: String },
    /// Replaces `Tally` (still read): the same, with each dead letter's
    /// submitted bytes, so `POST /v1/deadletters/replay` can submit it
    /// again after a restart.
    DeadLetters {
        duplicates: u64,
        rejected: Vec<DeadLetterRecord>,
    },
    /// `POST /v1/deadletters/replay` removed these dead letters: 0-based
    /// positions in the dead-letter list as it was just before, ascending.
    DeadLettersRemoved { positions: Vec<u64> },
    /// `POST /v1/config` switched the engine to a new configuration at this
    /// seq: its full sources (file name, text; in merge order) and its
    /// version. Replay compiles the sources and calls `switch_config` here.
    ConfigSwitch {
        version: String,
        sources: Vec<(String, String)>,
    },
}

/// A dead letter with the bytes that were submitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub line: u64,
    pub id: Option<String>,
    pub error: String,
    pub body: Vec<u8>,
}

/// A data field value (never `Missing`: absent fields are not written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FieldValueRecord {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRecord {
    pub line: u64,
    pub id: Option<String>,
    pub error: String,
}

impl From<&Rejection> for RejectionRecord {
    fn from(r: &Rejection) -> Self {
        RejectionRecord {
            line: r.line,
            id: r.id.clone(),
            error: r.error.clone(),
        }
    }
}

impl From<RejectionRecord> for Rejection {
    fn from(r: RejectionRecord) -> Self {
        Rejection {
            line: r.line,
            id: r.id,
            error: r.error,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("empty log record")]
    Empty,
    #[error("unknown log record format version {0} (this build reads version {FORMAT_VERSION})")]
    Version(u8),
    #[error("undecodable log record: {0}")]
    Decode(String),
    #[error("log record does not match the configuration: {0}")]
    Mismatch(String),
}

/// Room a payload starts with: most event records fit, so postcard's
/// byte-by-byte extension does not grow the vector several times.
const PAYLOAD_CAPACITY: usize = 128;

/// Encodes a record as a log payload.
pub fn encode(record: &LogRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD_CAPACITY);
    out.push(FORMAT_VERSION);
    // Invariant: the record holds only strings, integers, floats and
    // vectors, which postcard always encodes into a growable vector.
    postcard::to_extend(record, out).expect("log record encodes")
}

/// Decodes a log payload.
pub fn decode(bytes: &[u8]) -> Result<LogRecord, RecordError> {
    match bytes.split_first() {
        None => Err(RecordError::Empty),
        Some((&FORMAT_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| RecordError::Decode(e.to_string()))
        }
        Some((&version, _)) => Err(RecordError::Version(version)),
    }
}

/// `encode(&event_record(config, event))`, the same bytes, without first
/// copying every string of the event into an owned record (this runs for
/// every accepted event, on the request threads).
pub fn encode_event(config: &Config, event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(PAYLOAD_CAPACITY);
    out.push(FORMAT_VERSION);
    postcard::to_extend(&borrowed_event(config, event), out).expect("log record encodes")
}

/// The record of an accepted event.
pub fn event_record(config: &Config, event: &Event) -> LogRecord {
    borrowed_event(config, event).to_owned_record()
}

/// The record of an accepted event, borrowing the event's strings.
fn borrowed_event<'a>(config: &'a Config, event: &'a Event) -> LogRecordRef<'a> {
    let event_type = &config.event_types[event.event_type as usize];
    let data = event_type
        .fields
        .iter()
        .zip(&event.data)
        .filter_map(|(field, value)| {
            let value = match value {
                FieldValue::Missing => return None,
                FieldValue::Bool(b) => FieldValueRef::Bool(*b),
                FieldValue::Int(i) => FieldValueRef::Int(*i),
                FieldValue::Double(d) => FieldValueRef::Double(*d),
                FieldValue::Str(s) => FieldValueRef::Str(s),
            };
            Some((field.name.as_str(), value))
        })
        .collect();
    LogRecordRef::Event {
        id: &event.id,
        player: &event.player,
        event_type: &event_type.name,
        ts: event.ts,
        data,
    }
}

/// [`LogRecord::Event`] with borrowed strings. Postcard writes a variant's
/// index, not its name, and `&str` as `String`: so variant for variant and
/// field for field this serializes exactly as [`LogRecord`] (checked by
/// `borrowed_event_encoding_is_the_owned_one`).
#[derive(Serialize)]
enum LogRecordRef<'a> {
    Event {
        id: &'a str,
        player: &'a str,
        event_type: &'a str,
        ts: i64,
        data: Vec<(&'a str, FieldValueRef<'a>)>,
    },
}

impl LogRecordRef<'_> {
    fn to_owned_record(&self) -> LogRecord {
        match self {
            LogRecordRef::Event {
                id,
                player,
                event_type,
                ts,
                data,
            } => LogRecord::Event {
                id: id.to_string(),
                player: player.to_string(),
                event_type: event_type.to_string(),
                ts: *ts,
                data: data
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.to_owned_value()))
                    .collect(),
            },
        }
    }
}

/// [`FieldValueRecord`] with a borrowed string (same variants, same order).
#[derive(Serialize)]
enum FieldValueRef<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(&'a str),
}

impl FieldValueRef<'_> {
    fn to_owned_value(&self) -> FieldValueRecord {
        match *self {
            FieldValueRef::Bool(b) => FieldValueRecord::Bool(b),
            FieldValueRef::Int(i) => FieldValueRecord::Int(i),
            FieldValueRef::Double(d) => FieldValueRecord::Double(d),
            FieldValueRef::Str(s) => FieldValueRecord::Str(s.to_string()),
        }
    }
}

/// Rebuilds an event from its record against `config`: names become indices.
/// A type or field the configuration no longer declares, a value of another
/// type, or a missing required field is an error (replaying it would not
/// reproduce the state that was acknowledged).
pub fn rebuild_event(
    config: &Config,
    id: &str,
    player: &str,
    event_type: &str,
    ts: i64,
    data: &[(String, FieldValueRecord)],
) -> Result<Event, RecordError> {
    let mismatch = |m: String| Err(RecordError::Mismatch(m));
    let Some(type_id) = config.event_type(event_type) else {
        return mismatch(format!(
            "event {id:?} has type {event_type:?}, which the configuration does not declare"
        ));
    };
    let declared = &config.event_types[type_id as usize];
    let mut values = vec![FieldValue::Missing; declared.fields.len()];
    for (name, value) in data {
        let Some(slot) = declared.field(name) else {
            return mismatch(format!(
                "event {id:?}: event type {event_type:?} has no field {name:?}"
            ));
        };
        let field = &declared.fields[slot as usize];
        use veltrix_config::veltrix_expr::FieldType;
        let rebuilt = match (field.ty, value) {
            (FieldType::Bool, FieldValueRecord::Bool(b)) => FieldValue::Bool(*b),
            (FieldType::Int, FieldValueRecord::Int(i)) => FieldValue::Int(*i),
            (FieldType::Double, FieldValueRecord::Double(d)) => FieldValue::Double(*d),
            (FieldType::Double, FieldValueRecord::Int(i)) => FieldValue::Double(*i as f64),
            (FieldType::String, FieldValueRecord::Str(s)) => FieldValue::Str(s.as_str().into()),
            (ty, value) => {
                return mismatch(format!(
                    "event {id:?}: data.{name} is now declared {ty:?} but the log holds {value:?}"
                ));
            }
        };
        values[slot as usize] = rebuilt;
    }
    for (field, value) in declared.fields.iter().zip(&values) {
        if !field.optional && *value == FieldValue::Missing {
            return mismatch(format!(
                "event {id:?}: required field data.{} is not in the log",
                field.name
            ));
        }
    }
    Ok(Event {
        id: Arc::from(id),
        player: Arc::from(player),
        event_type: type_id,
        ts,
        data: values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use veltrix_config::Source;

    fn config() -> Config {
        let text = r#"
[currencies.coins]
[events.purchase.fields]
amount = { type = "number", min = 0 }
currency = { type = "string", optional = true }
count = { type = "integer", optional = true }
gift = { type = "boolean", optional = true }
"#;
        veltrix_config::compile(&[Source::new("t.toml".to_string(), text.to_string())])
            .expect("valid test config")
    }

    fn event(config: &Config, json: &str) -> Event {
        veltrix_core::parse_event(config, json.as_bytes(), 0).expect("valid event")
    }

    #[test]
    fn borrowed_event_encoding_is_the_owned_one() {
        let config = config();
        for json in [
            r#"{"id":"e1","player":"ann","type":"purchase","ts":5,"data":{"amount":2.5,"count":3,"gift":true}}"#,
            r#"{"id":"e2","player":"bob","type":"purchase","ts":0,"data":{"amount":0,"currency":"coins"}}"#,
            r#"{"id":"a much longer event id, to pass any small-size path","player":"ünïcödé","type":"purchase","ts":1796083200000,"data":{"amount":1e300,"currency":"","count":-9223372036854775808,"gift":false}}"#,
        ] {
            let e = event(&config, json);
            assert_eq!(
                encode_event(&config, &e),
                encode(&event_record(&config, &e)),
                "{json}"
            );
        }
    }

    #[test]
    fn event_round_trips_through_bytes() {
        let config = config();
        let e = event(
            &config,
            r#"{"id":"e1","player":"ann","type":"purchase","ts":5,"data":{"amount":2.5,"count":3,"gift":true}}"#,
        );
        let record = event_record(&config, &e);
        let bytes = encode(&record);
        assert_eq!(bytes[0], FORMAT_VERSION);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, record);
        let LogRecord::Event {
            id,
            player,
            event_type,
            ts,
            data,
        } = decoded
        else {
            panic!("not an event record");
        };
        assert_eq!(
            rebuild_event(&config, &id, &player, &event_type, ts, &data).unwrap(),
            e
        );
    }

    #[test]
    fn spend_and_tally_round_trip() {
        for record in [
            LogRecord::Spend {
                player: "ann".into(),
                currency: "coins".into(),
                amount: 3,
                key: "k1".into(),
            },
            LogRecord::Config {
                version: "0123456789abcdef".into(),
            },
            LogRecord::Tally {
                duplicates: 2,
                rejected: vec![RejectionRecord {
                    line: 4,
                    id: None,
                    error: "malformed JSON".into(),
                }],
            },
            LogRecord::DeadLetters {
                duplicates: 1,
                rejected: vec![DeadLetterRecord {
                    line: 2,
                    id: Some("e9".into()),
                    error: "unknown event type".into(),
                    body: br#"{"id":"e9"}"#.to_vec(),
                }],
            },
            LogRecord::DeadLettersRemoved {
                positions: vec![0, 3],
            },
            LogRecord::ConfigSwitch {
                version: "0123456789abcdef".into(),
                sources: vec![("a.toml".into(), "[currencies.coins]\n".into())],
            },
        ] {
            assert_eq!(decode(&encode(&record)).unwrap(), record);
        }
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        assert_eq!(decode(&[]), Err(RecordError::Empty));
        assert_eq!(decode(&[9, 0]), Err(RecordError::Version(9)));
        assert!(matches!(decode(&[1, 200]), Err(RecordError::Decode(_))));
        let mut truncated = encode(&LogRecord::Spend {
            player: "ann".into(),
            currency: "coins".into(),
            amount: 3,
            key: "k1".into(),
        });
        truncated.pop();
        assert!(matches!(decode(&truncated), Err(RecordError::Decode(_))));
    }

    #[test]
    fn records_that_no_longer_fit_the_config_are_errors() {
        let config = config();
        let err = rebuild_event(&config, "e1", "ann", "purchse", 0, &[]).unwrap_err();
        assert!(err.to_string().contains("does not declare"), "{err}");
        let err = rebuild_event(
            &config,
            "e1",
            "ann",
            "purchase",
            0,
            &[("amount".into(), FieldValueRecord::Str("x".into()))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("data.amount"), "{err}");
        let err = rebuild_event(&config, "e1", "ann", "purchase", 0, &[]).unwrap_err();
        assert!(
            err.to_string().contains("required field data.amount"),
            "{err}"
        );
    }
}
