//! Generated puzzle stages: each player must answer their own instance.
mod common;
use common::*;
use serde_json::json;
use std::sync::Arc;
use veltrix_core::Plan;
use veltrix_core::puzzles::puzzle_instance;

const CONFIG: &str = r#"
[events.login]
[hunts.h]
ordered = true
completion = { points = 1000 }
[[hunts.h.stages]]
id = "start"
solve = { on = "login" }
[[hunts.h.stages]]
id = "cipher"
puzzle = { kind = "caesar", words = ["compass", "anchor", "harbor", "lantern", "beacon", "island"] }
reward = { points = 400 }
[[hunts.h.stages]]
id = "grid"
puzzle = { kind = "sudoku", size = 4, difficulty = "easy" }
reward = { points = 500 }
"#;

fn answer_of(plan: &Plan, stage: u16, player: &str) -> String {
    puzzle_instance(plan, 0, stage, player)
        .unwrap()
        .unwrap()
        .answer
}

fn answer(id: &str, player: &str, minute: i64, stage: &str, text: &str) -> serde_json::Value {
    ev(
        id,
        player,
        "answer",
        minute,
        json!({"hunt": "h", "stage": stage, "answer": text}),
    )
}

#[test]
fn a_player_solves_only_with_their_own_instance() {
    let plan = plan(CONFIG);
    let alice = answer_of(&plan, 1, "alice");
    // Find a player whose word differs from alice's.
    let other = (0..50)
        .map(|i| format!("p{i}"))
        .find(|p| answer_of(&plan, 1, p) != alice)
        .unwrap();
    let state = run(
        &plan,
        &[
            ev("l1", "alice", "login", 0, json!({})),
            ev("l2", &other, "login", 0, json!({})),
            answer("a1", &other, 1, "cipher", &alice.to_uppercase()), // someone else's answer: no effect
            answer(
                "a2",
                "alice",
                2,
                "cipher",
                &format!("  {} ", alice.to_uppercase()),
            ),
            answer("a3", "alice", 3, "grid", &answer_of(&plan, 2, "alice")),
        ],
    );
    assert_eq!(
        state["players"]["alice"]["hunts"]["h"],
        json!({"solved": ["start", "cipher", "grid"], "completed": true})
    );
    assert_eq!(
        state["players"][&other]["hunts"]["h"]["solved"],
        json!(["start"])
    );
    assert_eq!(points(&state, "alice"), 400 + 500 + 1000);
    assert!(!state["grants"].to_string().contains(&alice));
}

#[test]
fn instances_depend_on_the_secret_and_are_stable() {
    let config = plan(CONFIG).config.clone();
    let a = Plan::with_secret(config.clone(), Arc::from(&b"secret-one"[..]));
    let b = Plan::with_secret(config, Arc::from(&b"secret-two"[..]));
    let texts = |plan: &Plan| -> Vec<String> {
        (0..20)
            .map(|i| {
                puzzle_instance(plan, 0, 2, &format!("p{i}"))
                    .unwrap()
                    .unwrap()
                    .text
            })
            .collect()
    };
    assert_eq!(texts(&a), texts(&a));
    assert_ne!(texts(&a), texts(&b));
}

#[test]
fn non_puzzle_stages_have_no_instance() {
    let plan = plan(CONFIG);
    assert!(puzzle_instance(&plan, 0, 0, "alice").is_none());
    assert!(puzzle_instance(&plan, 5, 0, "alice").is_none());
}
