//! Grants, ledger, leaderboards, ingest counting and dedup.
mod common;
use common::*;
use serde_json::json;

const CONFIG: &str = r#"
[currencies.coins]
[events.score.fields]
n = "integer"
[rules.pts]
on = "score"
reward = { points = 10, coins = 3 }
[leaderboards.global]
[leaderboards.daily]
period = "day"
[leaderboards.weekly]
period = "week"
"#;

#[test]
fn grant_ids_are_deterministic_and_carry_provenance() {
    let p = plan(CONFIG);
    let events = [ev("e1", "a", "score", 0, json!({"n": 1}))];
    let s1 = run(&p, &events);
    let s2 = run(&p, &events);
    let g = &s1["grants"][0];
    assert_eq!(g["id"], s2["grants"][0]["id"]);
    assert_eq!(g["id"].as_str().unwrap().len(), 32);
    assert_eq!(g["events"], json!(["e1"]));
    assert_eq!(g["currencies"], json!({"coins": 3}));
    assert_eq!(g["badge"], json!(null));
}

#[test]
fn duplicates_are_counted_and_have_no_effect_whatever_they_hold() {
    let p = plan(CONFIG);
    let s = run(
        &p,
        &[
            ev("e1", "a", "score", 0, json!({"n": 1})),
            ev("e1", "b", "score", 1, json!({"n": 2})),
            json!({"id": "e1", "player": "c", "type": "nope"}),
        ],
    );
    assert_eq!(
        s["events"],
        json!({"accepted": 1, "duplicates": 2, "rejected": 0})
    );
    assert_eq!(s["grants"].as_array().unwrap().len(), 1);
}

#[test]
fn a_rejected_id_can_be_sent_again_corrected() {
    let p = plan(CONFIG);
    let s = run(
        &p,
        &[
            ev("e1", "a", "score", 0, json!({"n": "one"})),
            ev("e1", "a", "score", 0, json!({"n": 1})),
        ],
    );
    assert_eq!(
        s["events"],
        json!({"accepted": 1, "duplicates": 0, "rejected": 1})
    );
    assert_eq!(s["rejected"][0]["line"], 1);
    assert_eq!(s["rejected"][0]["id"], "e1");
    assert_eq!(
        s["rejected"][0]["error"],
        "data.n: expected an integer, got \"one\""
    );
}

#[test]
fn validation_errors_name_the_field_and_reason() {
    let p = plan(CONFIG);
    let bytes = b"{\"id\":\"x\",\"player\":\"a\",\"type\":\"score\",\"data\":{\"n\":1,\"m\":2}}\n{\"id\":5,\"player\":\"a\",\"type\":\"score\"}\n{\"id\":\"y\",\"player\":\"\",\"type\":\"score\",\"data\":{\"n\":1}}\n{\"id\":\"z\",\"player\":\"a\",\"type\":\"score\",\"ts\":\"yesterday\",\"data\":{\"n\":1}}\n{\"id\":\"w\",\"player\":\"a\",\"data\":{\"n\":1},\"type\":\"score\"}\n[1,2]\n{\"id\":\"v\"";
    let s = run_bytes(&p, bytes, 1);
    let errors: Vec<String> = s["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}: {}", r["line"], r["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors[0],
        "1: data.m: unknown field of event type \"score\" (it declares n)"
    );
    assert!(
        errors[1].starts_with("2: id: expected a string, got 5"),
        "{errors:?}"
    );
    assert_eq!(errors[2], "3: player: must not be empty");
    assert!(
        errors[3].starts_with("4: ts: expected integer milliseconds"),
        "{errors:?}"
    );
    assert!(
        errors[4].starts_with("6: malformed JSON")
            || errors[4].starts_with("6: expected an event object"),
        "{errors:?}"
    );
    assert!(errors[5].starts_with("7: malformed JSON"), "{errors:?}");
    // Data before type is validated too.
    assert_eq!(s["events"]["accepted"], 1);
}

#[test]
fn leaderboard_ties_go_to_who_reached_the_score_first() {
    let p = plan(CONFIG);
    let s = run(
        &p,
        &[
            ev("b1", "b", "score", 0, json!({"n": 1})),
            ev("a1", "a", "score", 1, json!({"n": 1})),
            ev("c1", "c", "score", 2, json!({"n": 1})),
            ev("c2", "c", "score", 3, json!({"n": 1})),
        ],
    );
    assert_eq!(
        s["leaderboards"]["global"],
        json!([
            {"rank": 1, "player": "c", "score": 20},
            {"rank": 2, "player": "b", "score": 10},
            {"rank": 3, "player": "a", "score": 10},
        ])
    );
}

#[test]
fn period_leaderboards_show_the_bucket_of_the_latest_event_time() {
    let p = plan(CONFIG);
    // 2026-12-01 is a Tuesday; the ISO week runs Monday 2026-11-30 to Sunday 2026-12-06.
    let s = run(
        &p,
        &[
            ev("a1", "a", "score", 0, json!({"n": 1})),
            ev("b1", "b", "score", DAY_MIN, json!({"n": 1})),
            ev("b2", "b", "score", DAY_MIN + 5, json!({"n": 1})),
            ev("a2", "a", "score", 10, json!({"n": 1})), // late event for day 1
        ],
    );
    assert_eq!(
        s["leaderboards"]["daily"],
        json!([{"rank": 1, "player": "b", "score": 20}])
    );
    // Both have 20 this week; b reached 20 at log position 3, a only at 4.
    assert_eq!(
        s["leaderboards"]["weekly"],
        json!([
            {"rank": 1, "player": "b", "score": 20}, {"rank": 2, "player": "a", "score": 20}
        ])
    );
    let next_week = run(
        &p,
        &[
            ev("a1", "a", "score", 0, json!({"n": 1})),
            ev("b1", "b", "score", 6 * DAY_MIN, json!({"n": 1})),
        ],
    );
    assert_eq!(
        next_week["leaderboards"]["weekly"],
        json!([{"rank": 1, "player": "b", "score": 10}])
    );
}

#[test]
fn missing_ts_uses_acceptance_time() {
    let p = plan(CONFIG);
    let (_, engine) = veltrix_core::run_ndjson(
        p.clone(),
        b"{\"id\":\"e\",\"player\":\"a\",\"type\":\"score\",\"data\":{\"n\":1}}",
        12345,
        1,
    );
    assert_eq!(engine.max_ts, Some(12345));
}

#[test]
fn spends_take_oldest_units_are_idempotent_and_never_overdraw() {
    let p = plan(CONFIG);
    let (_, mut engine) = veltrix_core::run_ndjson(
        p.clone(),
        &ndjson(&[
            ev("e1", "a", "score", 0, json!({"n": 1})),
            ev("e2", "a", "score", 1, json!({"n": 1})),
        ]),
        0,
        1,
    );
    use veltrix_core::partition::SpendOutcome;
    let first = engine.apply_spend(10, "a", 0, 4, "k1");
    assert!(matches!(first, SpendOutcome::Applied(_)));
    assert!(matches!(
        engine.apply_spend(11, "a", 0, 4, "k1"),
        SpendOutcome::AlreadyApplied(_)
    ));
    assert_eq!(
        engine.apply_spend(12, "a", 0, 3, "k2"),
        SpendOutcome::Insufficient { balance: 2 }
    );
    let player = engine.player("a").unwrap();
    assert_eq!(player.balance(0), 2);
    let p0 = &engine.partitions[0];
    let spend = &p0.spends[0];
    let g1 = &p0.grants[0].id;
    let g2 = &p0.grants[1].id;
    assert_eq!(spend.units, vec![(*g1, 1, 3), (*g2, 1, 1)]);
}

#[test]
fn refused_spends_change_nothing_and_create_no_player() {
    let p = plan(CONFIG);
    let (_, mut engine) = veltrix_core::run_ndjson(
        p,
        &ndjson(&[ev("e1", "a", "score", 0, json!({"n": 1}))]),
        0,
        1,
    );
    use veltrix_core::partition::SpendOutcome;
    assert_eq!(
        engine.apply_spend(5, "ghost", 0, 1, "k"),
        SpendOutcome::Insufficient { balance: 0 }
    );
    assert!(engine.player("ghost").is_none());
    assert_eq!(
        engine.apply_spend(5, "a", 0, 99, "k"),
        SpendOutcome::Insufficient { balance: 3 }
    );
    assert_eq!(engine.last_seq, 1);
    // The same position can then carry an applied spend.
    assert!(matches!(
        engine.apply_spend(5, "a", 0, 2, "k"),
        SpendOutcome::Applied(_)
    ));
    assert_eq!(engine.last_seq, 5);
}
