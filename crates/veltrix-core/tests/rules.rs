//! Rule semantics: on/when, once, limit, cooldown, sequences, windows.
mod common;
use common::*;
use serde_json::json;

const BASE: &str = r#"
[currencies.coins]
[events.login]
[events.purchase.fields]
amount = { type = "number", min = 0 }
note = { type = "string", optional = true }
[events.visit.fields]
place = "string"
[events.found.fields]
item = "string"
"#;

fn with(rules: &str) -> std::sync::Arc<veltrix_core::Plan> {
    plan(&format!("{BASE}\n{rules}"))
}

#[test]
fn once_grants_at_most_one_per_player() {
    let p = with("[rules.first]\non = \"login\"\nonce = true\nreward = { points = 10, coins = 1 }");
    let s = run(
        &p,
        &[
            ev("a1", "alice", "login", 0, json!({})),
            ev("a2", "alice", "login", 5, json!({})),
            ev("b1", "bob", "login", 6, json!({})),
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![
            ("alice".into(), "rule:first".into(), vec!["a1".into()]),
            ("bob".into(), "rule:first".into(), vec!["b1".into()]),
        ]
    );
    assert_eq!(s["players"]["alice"]["balances"]["coins"], 1);
}

#[test]
fn when_condition_sees_event_fields_and_missing_optional_is_false() {
    let p = with(
        r#"
[rules.big]
on = "purchase"
when = "event.amount >= 50"
reward = { coins = 5 }
[rules.noted]
on = "purchase"
when = "event.note == 'gift'"
reward = { points = 1 }
[rules.unnoted]
on = "purchase"
when = "!has(event.note)"
reward = { points = 2 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("p1", "a", "purchase", 0, json!({"amount": 49.99})),
            ev(
                "p2",
                "a",
                "purchase",
                1,
                json!({"amount": 50, "note": "gift"}),
            ),
        ],
    );
    assert_eq!(sources(&s), vec!["rule:unnoted", "rule:big", "rule:noted"]);
}

#[test]
fn limit_counts_grants_in_rolling_event_time_window() {
    let p = with(
        "[rules.r]\non = \"login\"\nreward = { points = 1 }\nlimit = { count = 2, per = \"1h\" }",
    );
    let s = run(
        &p,
        &[
            ev("e1", "a", "login", 0, json!({})),
            ev("e2", "a", "login", 10, json!({})),
            ev("e3", "a", "login", 59, json!({})), // blocked: 2 grants in (−1m, 59m]
            ev("e4", "a", "login", 60, json!({})), // window (0, 60]: e1 at 0 is outside → 1 grant → allowed
            ev("e5", "a", "login", 61, json!({})), // (1, 61]: e2, e4 → blocked
        ],
    );
    let granted: Vec<String> = grant_list(&s).into_iter().map(|g| g.2[0].clone()).collect();
    assert_eq!(granted, vec!["e1", "e2", "e4"]);
}

#[test]
fn cooldown_blocks_until_span_has_passed_and_blocked_attempts_use_nothing() {
    let p = with("[rules.r]\non = \"login\"\nreward = { points = 1 }\ncooldown = \"1h\"");
    let s = run(
        &p,
        &[
            ev("e1", "a", "login", 0, json!({})),
            ev("e2", "a", "login", 59, json!({})),
            ev("e3", "a", "login", 60, json!({})),
            ev("e4", "a", "login", 100, json!({})),
        ],
    );
    let granted: Vec<String> = grant_list(&s).into_iter().map(|g| g.2[0].clone()).collect();
    assert_eq!(granted, vec!["e1", "e3"]);
}

#[test]
fn count_and_sum_windows_include_the_trigger_and_are_per_player() {
    let p = with(
        r#"
[rules.third]
on = "purchase"
when = "count('purchase', '1h') == 3 && sum('purchase', 'amount', '1h') >= 30"
reward = { points = 7 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("a1", "a", "purchase", 0, json!({"amount": 10})),
            ev("b1", "b", "purchase", 1, json!({"amount": 100})),
            ev("a2", "a", "purchase", 2, json!({"amount": 10})),
            ev("a3", "a", "purchase", 3, json!({"amount": 10})),
            ev("b2", "b", "purchase", 4, json!({"amount": 100})),
            ev("a4", "a", "purchase", 64, json!({"amount": 10})), // (4, 64]: a4 only... count 1
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![("a".into(), "rule:third".into(), vec!["a3".into()])]
    );
}

#[test]
fn streak_counts_consecutive_utc_days() {
    let p = with(
        r#"
[rules.loyal]
on = "login"
when = "streak('login', '1d') >= 3"
reward = { badge = "loyal" }
once = true
"#,
    );
    let day = DAY_MIN;
    let s = run(
        &p,
        &[
            ev("d1", "a", "login", 23 * 60 + 59, json!({})), // day 1, 23:59
            ev("d2", "a", "login", day + 1, json!({})),      // day 2, 00:01
            ev("d2b", "a", "login", day + 60, json!({})),
            ev("d4", "a", "login", 3 * day, json!({})), // gap on day 3
            ev("d5", "a", "login", 4 * day, json!({})),
            ev("d6", "a", "login", 5 * day, json!({})), // 3 in a row: d4, d5, d6
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![("a".into(), "rule:loyal".into(), vec!["d6".into()])]
    );
    assert_eq!(s["players"]["a"]["badges"], json!(["loyal"]));
}

#[test]
fn player_state_in_expressions_is_before_the_event() {
    let p = with(
        r#"
[rules.pay]
on = "login"
reward = { points = 100 }
[rules.rich]
on = "login"
when = "player.points >= 100"
reward = { coins = 1 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("e1", "a", "login", 0, json!({})),
            ev("e2", "a", "login", 1, json!({})),
        ],
    );
    // On e1 `rich` sees 0 points although `pay` (earlier in order) granted 100.
    assert_eq!(sources(&s), vec!["rule:pay", "rule:pay", "rule:rich"]);
}

#[test]
fn sequence_takes_latest_events_uses_them_up_and_names_them_all() {
    let p = with(
        r#"
[rules.explorer]
sequence = ["visit", "found"]
within = "10m"
reward = { points = 25 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("v1", "a", "visit", 0, json!({"place": "x"})),
            ev("v2", "a", "visit", 1, json!({"place": "y"})),
            ev("f1", "a", "found", 2, json!({"item": "m"})), // matches v2 (latest)
            ev("f2", "a", "found", 3, json!({"item": "m"})), // matches v1
            ev("f3", "a", "found", 4, json!({"item": "m"})), // nothing left
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![
            (
                "a".into(),
                "rule:explorer".into(),
                vec!["v2".into(), "f1".into()]
            ),
            (
                "a".into(),
                "rule:explorer".into(),
                vec!["v1".into(), "f2".into()]
            ),
        ]
    );
}

#[test]
fn sequence_respects_within_and_order() {
    let p = with(
        r#"
[rules.explorer]
sequence = ["visit", "found"]
within = "10m"
reward = { points = 25 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("f0", "a", "found", 0, json!({"item": "m"})), // found before any visit: no match
            ev("v1", "a", "visit", 1, json!({"place": "x"})),
            ev("f1", "a", "found", 12, json!({"item": "m"})), // 11 minutes: too late
            ev("v2", "a", "visit", 20, json!({"place": "x"})),
            ev("f2", "a", "found", 30, json!({"item": "m"})), // exactly 10 minutes: allowed
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![(
            "a".into(),
            "rule:explorer".into(),
            vec!["v2".into(), "f2".into()]
        )]
    );
}

#[test]
fn sequence_blocked_by_a_check_keeps_its_events() {
    let p = with(
        r#"
[rules.explorer]
sequence = ["visit", "found"]
within = "1h"
cooldown = "30m"
reward = { points = 25 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("v1", "a", "visit", 0, json!({"place": "x"})),
            ev("f1", "a", "found", 1, json!({"item": "m"})),
            ev("v2", "a", "visit", 2, json!({"place": "x"})),
            ev("f2", "a", "found", 3, json!({"item": "m"})), // cooldown blocks; v2 stays available
            ev("f3", "a", "found", 40, json!({"item": "m"})), // matches v2
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![
            (
                "a".into(),
                "rule:explorer".into(),
                vec!["v1".into(), "f1".into()]
            ),
            (
                "a".into(),
                "rule:explorer".into(),
                vec!["v2".into(), "f3".into()]
            ),
        ]
    );
}

#[test]
fn three_step_sequence_with_repeated_type() {
    let p = with(
        r#"
[rules.double_visit]
sequence = ["visit", "visit", "found"]
within = "1h"
reward = { points = 5 }
"#,
    );
    let s = run(
        &p,
        &[
            ev("v1", "a", "visit", 0, json!({"place": "x"})),
            ev("f1", "a", "found", 1, json!({"item": "m"})), // only one visit: no match
            ev("v2", "a", "visit", 2, json!({"place": "y"})),
            ev("f2", "a", "found", 3, json!({"item": "m"})),
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![(
            "a".into(),
            "rule:double_visit".into(),
            vec!["v1".into(), "v2".into(), "f2".into()]
        )]
    );
}
