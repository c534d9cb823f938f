//! Read models: ledger with coin ids, hunt progress, funnel.
mod common;
use common::*;
use serde_json::json;
use veltrix_core::views::{funnel, hunt_progress, ledger};

const CONFIG: &str = r#"
[currencies.coins]
[events.login]
[events.found.fields]
item = "string"
[rules.hello]
on = "login"
reward = { points = 1, coins = 3 }
[hunts.h]
ordered = true
prize = { supply = 1, reward = { coins = 50 } }
[[hunts.h.stages]]
id = "start"
clue = "Log in."
solve = { on = "login" }
[[hunts.h.stages]]
id = "relics"
clue = "Find both."
collect = { on = "found", field = "item", items = ["map", "key"] }
[[hunts.h.stages]]
id = "cipher"
clue = "Decode it."
puzzle = { kind = "caesar", words = ["compass", "anchor"] }
"#;

fn engine(events: &[serde_json::Value]) -> veltrix_core::Engine {
    let plan = plan(CONFIG);
    veltrix_core::run_ndjson(plan, &ndjson(events), 0, 2).1
}

#[test]
fn ledger_lists_grants_with_unit_ids_and_spends_with_the_units_taken() {
    let mut e = engine(&[
        ev("l1", "a", "login", 0, json!({})),
        ev("l2", "a", "login", 1, json!({})),
    ]);
    e.apply_spend(100, "a", 0, 4, "order-1");
    let lines = serde_json::to_value(ledger(&e, "a").unwrap()).unwrap();
    let first_id = lines[0]["id"].as_str().unwrap().to_string();
    let second_id = lines[1]["id"].as_str().unwrap().to_string();
    assert_eq!(lines[0]["kind"], "grant");
    assert_eq!(lines[0]["source"], "rule:hello");
    assert_eq!(lines[0]["events"], json!(["l1"]));
    assert_eq!(
        lines[0]["units"]["coins"],
        json!([format!("{first_id}/1"), format!("{first_id}/3")])
    );
    assert_eq!(lines[2]["kind"], "spend");
    assert_eq!(lines[2]["key"], "order-1");
    assert_eq!(
        lines[2]["units"],
        json!([
            {"from": format!("{first_id}/1"), "to": format!("{first_id}/3")},
            {"from": format!("{second_id}/1"), "to": format!("{second_id}/1")},
        ])
    );
    assert!(ledger(&e, "nobody").is_none());
}

#[test]
fn hunt_progress_shows_the_active_stage_collected_items_and_puzzle_text() {
    let e = engine(&[
        ev("l1", "a", "login", 0, json!({})),
        ev("f1", "a", "found", 1, json!({"item": "key"})),
    ]);
    let view = serde_json::to_value(hunt_progress(&e, "a", 0).unwrap()).unwrap();
    assert_eq!(view["solved"], json!(["start"]));
    assert_eq!(
        view["active"],
        json!([{"id": "relics", "clue": "Find both.", "collected": {"found": ["key"], "needed": 2}}])
    );
    let e = engine(&[
        ev("l1", "a", "login", 0, json!({})),
        ev("f1", "a", "found", 1, json!({"item": "key"})),
        ev("f2", "a", "found", 2, json!({"item": "map"})),
    ]);
    let view = serde_json::to_value(hunt_progress(&e, "a", 0).unwrap()).unwrap();
    assert_eq!(view["active"][0]["id"], "cipher");
    assert_eq!(view["active"][0]["puzzle"]["kind"], "caesar");
    let text = view["active"][0]["puzzle"]["text"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        !text.contains("compass") && !text.contains("anchor"),
        "{text}"
    );
    // A player with no events sees the first stage.
    let fresh = serde_json::to_value(hunt_progress(&e, "new", 0).unwrap()).unwrap();
    assert_eq!(fresh["active"][0]["id"], "start");
}

#[test]
fn funnel_counts_players_per_stage_and_prizes_left() {
    let e = engine(&[
        ev("a1", "a", "login", 0, json!({})),
        ev("b1", "b", "login", 0, json!({})),
        ev("a2", "a", "found", 1, json!({"item": "key"})),
        ev("a3", "a", "found", 2, json!({"item": "map"})),
    ]);
    let f = serde_json::to_value(funnel(&e, 0).unwrap()).unwrap();
    assert_eq!(
        f,
        json!({"hunt": "h", "started": 2, "stages": [
        {"id": "start", "solved": 2}, {"id": "relics", "solved": 1}, {"id": "cipher", "solved": 0}
    ], "completed": 0, "prizes_left": 1})
    );
}
