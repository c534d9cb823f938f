//! Bad input of any kind gets an error, never a panic: random bytes and
//! random JSON into the event parser, mutated and random configurations into
//! the compiler.
mod common;
use proptest::prelude::*;
use serde_json::{Value, json};
use veltrix_core::parse_event;
use veltrix_core::veltrix_config::{Source, compile};

const EXAMPLE: &str = include_str!("../../../examples/golden-compass/veltrix.toml");

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z_ ]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "id",
            "player",
            "type",
            "ts",
            "data",
            "login",
            "purchase",
            "answer",
            "amount",
            "golden_compass",
            "riddle"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "id", "player", "type", "ts", "data", "amount", "currency", "hunt",
                        "stage", "answer", "place", "x"
                    ]),
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn event_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let plan = common::plan(EXAMPLE);
        if let Err(e) = parse_event(&plan.config, &bytes, 0) {
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn event_parser_never_panics_on_json(value in json_value()) {
        let plan = common::plan(EXAMPLE);
        let bytes = serde_json::to_vec(&value).unwrap();
        match parse_event(&plan.config, &bytes, 0) {
            Ok(event) => prop_assert!(!event.id.is_empty() && !event.player.is_empty()),
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }

    #[test]
    fn config_compiler_never_panics_on_mutations(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[a-z_=\\[\\]\\.\" 0-9{},]{0,20}"), 1..6)) {
        let mut lines: Vec<String> = EXAMPLE.lines().map(str::to_string).collect();
        for (at, op, text) in edits {
            let i = at.index(lines.len());
            match op {
                0 => { lines.remove(i); }
                1 => { let copy = lines[i].clone(); lines.insert(i, copy); }
                2 => lines[i] = text,
                _ => lines[i].push_str(&text),
            }
            if lines.is_empty() { lines.push(String::new()); }
        }
        let text = lines.join("\n");
        match compile(&[Source::new("mutated.toml", text.clone())]) {
            Ok(_) => {}
            Err(diagnostics) => {
                prop_assert!(!diagnostics.is_empty());
                for d in diagnostics {
                    prop_assert!(d.span.end <= text.len() && d.line >= 1 && d.column >= 1, "{:?}", d);
                }
            }
        }
    }

    #[test]
    fn config_compiler_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = compile(&[Source::new("random.toml", text)]);
    }
}

/// Every rejection falls in one stable class, for the server's
/// rejected-by-reason counter.
#[test]
fn rejections_are_classified_by_reason() {
    let config = compile(&[Source::new("veltrix.toml", EXAMPLE)]).expect("example compiles");
    let cases = [
        (r#"{"id": "e1", "player": "#, "malformed_json"),
        (r#"[1, 2]"#, "malformed_json"),
        (
            r#"{"id": "e1", "player": "ann", "type": "nope"}"#,
            "unknown_event_type",
        ),
        (r#"{"id": "e1", "type": "login"}"#, "missing_field"),
        (
            r#"{"id": "e1", "player": "ann", "type": "purchase", "data": {}}"#,
            "missing_field",
        ),
        (
            r#"{"id": "e1", "player": "ann", "type": "purchase", "data": {"amount": 1, "colour": "red"}}"#,
            "unknown_field",
        ),
        (
            r#"{"id": "e1", "id": "e2", "player": "ann", "type": "login"}"#,
            "duplicate_key",
        ),
        (
            r#"{"id": "e1", "player": "ann", "type": "purchase", "data": {"amount": "ten"}}"#,
            "invalid_value",
        ),
    ];
    for (text, reason) in cases {
        let error = parse_event(&config, text.as_bytes(), 0).expect_err(text);
        assert_eq!(error.reason(), reason, "{text}: {}", error.message);
    }
}
