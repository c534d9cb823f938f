//! Hunt semantics: windows, ordered/unordered stages, answers, collect,
//! completion, first finders and prize supply.
mod common;
use common::*;
use serde_json::json;
use veltrix_core::veltrix_config::answer_digest;

fn hex(b: [u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hunt_config(ordered: bool) -> String {
    format!(
        r#"
[currencies.coins]
[events.visit.fields]
place = "string"
[events.found.fields]
item = {{ type = "string", enum = ["map", "key", "lamp"] }}

[hunts.h]
starts = "2026-12-01T00:00:00Z"
ends = "2026-12-02T00:00:00Z"
ordered = {ordered}
completion = {{ coins = 10, badge = "navigator" }}
prize = {{ supply = 2, reward = {{ coins = 100 }} }}

[[hunts.h.stages]]
id = "harbor"
solve = {{ on = "visit", when = "event.place == 'harbor'" }}
reward = {{ points = 100 }}

[[hunts.h.stages]]
id = "riddle"
answer_sha256 = "{}"
reward = {{ points = 200 }}
first_finders = [500, 250]

[[hunts.h.stages]]
id = "relics"
collect = {{ on = "found", field = "item", items = ["map", "key"] }}
reward = {{ points = 300 }}

[leaderboards.global]
[leaderboards.hunt_only]
hunt = "h"
"#,
        hex(answer_digest("keyboard"))
    )
}

fn answer(id: &str, player: &str, minutes: i64, text: &str) -> serde_json::Value {
    ev(
        id,
        player,
        "answer",
        minutes,
        json!({"hunt": "h", "stage": "riddle", "answer": text}),
    )
}

fn finish(player: &str, start: i64) -> Vec<serde_json::Value> {
    vec![
        ev(
            &format!("{player}-v"),
            player,
            "visit",
            start,
            json!({"place": "harbor"}),
        ),
        answer(&format!("{player}-a"), player, start + 1, "Keyboard"),
        ev(
            &format!("{player}-m"),
            player,
            "found",
            start + 2,
            json!({"item": "map"}),
        ),
        ev(
            &format!("{player}-k"),
            player,
            "found",
            start + 3,
            json!({"item": "key"}),
        ),
    ]
}

#[test]
fn ordered_hunt_ignores_later_stages_until_earlier_are_solved() {
    let p = plan(&hunt_config(true));
    let s = run(
        &p,
        &[
            answer("early", "a", 0, "keyboard"), // riddle before harbor: no effect
            ev("m", "a", "found", 1, json!({"item": "map"})), // relics not active: not counted
            ev("v", "a", "visit", 2, json!({"place": "harbor"})),
            answer("late", "a", 3, "  KEYBOARD  "), // normalized
            ev("k", "a", "found", 4, json!({"item": "key"})), // map was found too early
        ],
    );
    assert_eq!(
        s["players"]["a"]["hunts"]["h"]["solved"],
        json!(["harbor", "riddle"])
    );
    assert_eq!(s["players"]["a"]["hunts"]["h"]["completed"], json!(false));
    assert_eq!(
        sources(&s),
        vec![
            "hunt:h:harbor",
            "hunt:h:riddle",
            "hunt:h:riddle:first_finder"
        ]
    );
}

#[test]
fn unordered_hunt_accepts_stages_in_any_order() {
    let p = plan(&hunt_config(false));
    let s = run(
        &p,
        &[
            answer("a1", "a", 0, "keyboard"),
            ev("m", "a", "found", 1, json!({"item": "map"})),
            ev("k", "a", "found", 2, json!({"item": "key"})),
            ev("v", "a", "visit", 3, json!({"place": "harbor"})),
        ],
    );
    assert_eq!(
        s["players"]["a"]["hunts"]["h"]["solved"],
        json!(["riddle", "relics", "harbor"])
    );
    assert_eq!(s["players"]["a"]["hunts"]["h"]["completed"], json!(true));
    assert_eq!(s["players"]["a"]["badges"], json!(["navigator"]));
}

#[test]
fn completion_first_finders_and_prize_follow_log_order_and_supply() {
    let p = plan(&hunt_config(true));
    let mut events = Vec::new();
    for (i, player) in ["p1", "p2", "p3"].iter().enumerate() {
        events.extend(finish(player, i as i64 * 10));
    }
    let s = run(&p, &events);
    let g = grant_list(&s);
    let of = |player: &str| -> Vec<String> {
        g.iter()
            .filter(|x| x.0 == player)
            .map(|x| x.1.clone())
            .collect()
    };
    assert_eq!(
        of("p1"),
        vec![
            "hunt:h:harbor",
            "hunt:h:riddle",
            "hunt:h:riddle:first_finder",
            "hunt:h:relics",
            "hunt:h:completion",
            "hunt:h:prize"
        ]
    );
    assert_eq!(
        of("p2"),
        vec![
            "hunt:h:harbor",
            "hunt:h:riddle",
            "hunt:h:riddle:first_finder",
            "hunt:h:relics",
            "hunt:h:completion",
            "hunt:h:prize"
        ]
    );
    // Third finisher: no first-finder bonus (two listed) and no prize (supply 2).
    assert_eq!(
        of("p3"),
        vec![
            "hunt:h:harbor",
            "hunt:h:riddle",
            "hunt:h:relics",
            "hunt:h:completion"
        ]
    );
    assert_eq!(points(&s, "p1"), 100 + 200 + 500 + 300);
    assert_eq!(points(&s, "p2"), 100 + 200 + 250 + 300);
    assert_eq!(s["players"]["p1"]["balances"]["coins"], 110);
    assert_eq!(s["players"]["p3"]["balances"]["coins"], 10);
    // Completion and prize name the event that solved the last stage.
    let prize = s["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["source"] == "hunt:h:prize")
        .unwrap();
    assert_eq!(prize["events"], json!(["p1-k"]));
}

#[test]
fn events_outside_the_hunt_window_do_not_advance_it() {
    let p = plan(&hunt_config(true));
    let s = run(
        &p,
        &[
            ev("before", "a", "visit", -1, json!({"place": "harbor"})),
            ev("after", "b", "visit", DAY_MIN, json!({"place": "harbor"})),
            ev(
                "inside",
                "c",
                "visit",
                DAY_MIN - 1,
                json!({"place": "harbor"}),
            ),
        ],
    );
    assert_eq!(
        grant_list(&s),
        vec![("c".into(), "hunt:h:harbor".into(), vec!["inside".into()])]
    );
}

#[test]
fn wrong_or_repeated_answers_are_accepted_without_effect() {
    let p = plan(&hunt_config(false));
    let s = run(
        &p,
        &[
            answer("w", "a", 0, "piano"),
            answer("r1", "a", 1, "keyboard"),
            answer("r2", "a", 2, "keyboard"),
        ],
    );
    assert_eq!(s["events"]["accepted"], 3);
    assert_eq!(
        sources(&s),
        vec!["hunt:h:riddle", "hunt:h:riddle:first_finder"]
    );
}

#[test]
fn answers_naming_unknown_hunts_or_stages_are_rejected_with_suggestions() {
    let p = plan(&hunt_config(false));
    let s = run(
        &p,
        &[
            ev(
                "x1",
                "a",
                "answer",
                0,
                json!({"hunt": "hh", "stage": "riddle", "answer": "k"}),
            ),
            ev(
                "x2",
                "a",
                "answer",
                0,
                json!({"hunt": "h", "stage": "ridle", "answer": "k"}),
            ),
        ],
    );
    assert_eq!(s["events"]["rejected"], 2);
    let errors: Vec<&str> = s["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert!(
        errors[0].contains("unknown hunt \"hh\"") && errors[0].contains("did you mean \"h\""),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("no stage \"ridle\"") && errors[1].contains("did you mean \"riddle\""),
        "{errors:?}"
    );
}

#[test]
fn plain_answers_never_appear_in_the_dump() {
    let p = plan(&hunt_config(false));
    let s = run(&p, &[answer("r1", "a", 1, "keyboard")]);
    assert!(!s.to_string().contains("keyboard"));
}

#[test]
fn hunt_leaderboard_counts_only_hunt_points() {
    let mut config = hunt_config(false);
    config.push_str("[events.login]\n[rules.hello]\non = \"login\"\nreward = { points = 1000 }\n");
    let p = plan(&config);
    let s = run(
        &p,
        &[
            ev("l", "a", "login", 0, json!({})),
            ev("v", "b", "visit", 1, json!({"place": "harbor"})),
        ],
    );
    assert_eq!(
        s["leaderboards"]["global"],
        json!([
            {"rank": 1, "player": "a", "score": 1000}, {"rank": 2, "player": "b", "score": 100}
        ])
    );
    assert_eq!(
        s["leaderboards"]["hunt_only"],
        json!([{"rank": 1, "player": "b", "score": 100}])
    );
}
