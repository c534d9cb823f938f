//! Switching a running engine to a new configuration (SPEC §2,
//! "Configuration versions"): state carries over by name, events after the
//! switch see the new configuration, replay reproduces it.
mod common;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::Arc;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::snapshot::{decode, encode};
use veltrix_core::{Engine, Ingest, Plan, Submission, SwitchError, switch_config};

const CURRENCIES: &str = "[currencies.coins]\n[currencies.gems]\n";
const CURRENCIES_SWAPPED: &str = "[currencies.gems]\n[currencies.coins]\n";
const EVENTS: &str = r#"
[events.login]
[events.buy.fields]
amount = { type = "integer", min = 0 }
[events.visit.fields]
place = { type = "string", enum = ["harbor", "tower", "cave"] }
[events.found.fields]
item = { type = "string", enum = ["map", "key", "lamp"] }
"#;
const EVENTS_SWAPPED: &str = r#"
[events.found.fields]
item = { type = "string", enum = ["map", "key", "lamp"] }
[events.visit.fields]
place = { type = "string", enum = ["harbor", "tower", "cave"] }
[events.buy.fields]
amount = { type = "integer", min = 0 }
[events.login]
"#;
const RULE_FIRST: &str = r#"
[rules.first]
on = "login"
once = true
reward = { points = 10, coins = 1 }
"#;
const RULE_BIG: &str = r#"
[rules.big]
on = "buy"
when = "event.amount >= 50"
limit = { count = 2, per = "1h" }
reward = { coins = 5 }
"#;
const RULE_BUSY: &str = r#"
[rules.busy]
on = "buy"
when = "count('buy', '30m') >= 3 && sum('buy', 'amount', '30m') > 60"
cooldown = "20m"
reward = { points = 15, badge = "busy" }
"#;
const RULE_REGULAR: &str = r#"
[rules.regular]
on = "login"
when = "streak('login', '1d') >= 2 && !has_badge('regular')"
reward = { badge = "regular", gems = 1 }
"#;
const RULE_EXPLORER: &str = r#"
[rules.explorer]
sequence = ["visit", "found"]
within = "15m"
reward = { points = 7 }
"#;
const HUNT_QUEST: &str = r#"
[hunts.quest]
ordered = true
completion = { coins = 10, badge = "hero" }
prize = { supply = 3, reward = { gems = 5 } }
[[hunts.quest.stages]]
id = "harbor"
solve = { on = "visit", when = "event.place == 'harbor'" }
reward = { points = 100 }
first_finders = [50, 20]
[[hunts.quest.stages]]
id = "relics"
collect = { on = "found", field = "item", items = ["map", "key"] }
reward = { points = 300 }
"#;
const HUNT_TOUR: &str = r#"
[hunts.tour]
completion = { points = 1 }
prize = { supply = 2, reward = { coins = 50 } }
[[hunts.tour.stages]]
id = "tower"
solve = { on = "visit", when = "event.place == 'tower'" }
reward = { points = 5 }
first_finders = [9, 8, 7]
[[hunts.tour.stages]]
id = "cave"
solve = { on = "visit", when = "event.place == 'cave'" }
"#;
const HUNT_TOUR_REORDERED: &str = r#"
[hunts.tour]
completion = { points = 1 }
prize = { supply = 2, reward = { coins = 50 } }
[[hunts.tour.stages]]
id = "cave"
solve = { on = "visit", when = "event.place == 'cave'" }
[[hunts.tour.stages]]
id = "tower"
solve = { on = "visit", when = "event.place == 'tower'" }
reward = { points = 5 }
first_finders = [9, 8, 7]
"#;
const BOARDS: &str = r#"
[leaderboards.global]
[leaderboards.quest]
hunt = "quest"
[leaderboards.daily]
period = "day"
"#;
const VIEW: &str = r#"
[[views]]
name = "spending"
on = "buy"
group_by = ["player"]
bucket = "1h"
measures = ["count", "sum(data.amount)"]
"#;

fn base_parts() -> Vec<&'static str> {
    vec![
        CURRENCIES,
        EVENTS,
        RULE_FIRST,
        RULE_BIG,
        RULE_BUSY,
        RULE_REGULAR,
        RULE_EXPLORER,
        HUNT_QUEST,
        HUNT_TOUR,
        BOARDS,
        VIEW,
    ]
}

fn base() -> Arc<Plan> {
    plan(&base_parts().concat())
}

/// A scripted mix of every feature for players p0..p2.
fn script(prefix: &str, start_min: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut m = start_min;
    let mut id = 0;
    let mut push = |player: &str, kind: &str, data: Value, step: i64| {
        m += step;
        id += 1;
        out.push(ev(&format!("{prefix}{id}"), player, kind, m, data));
    };
    for p in ["p0", "p1", "p2"] {
        push(p, "login", json!({}), 1);
        push(p, "buy", json!({"amount": 60}), 1);
        push(p, "buy", json!({"amount": 30}), 1);
        push(p, "visit", json!({"place": "harbor"}), 1);
        push(p, "found", json!({"item": "map"}), 1);
        push(p, "visit", json!({"place": "tower"}), 1);
    }
    push("p0", "found", json!({"item": "key"}), 2);
    push("p1", "buy", json!({"amount": 40}), 2);
    push("p0", "login", json!({}), DAY_MIN);
    push("p2", "visit", json!({"place": "cave"}), 3);
    push("p2", "buy", json!({"amount": "lots"}), 1); // rejected
    out
}

fn feed(ingest: &mut Ingest, engine: &mut Engine, events: &[Value]) {
    for e in events {
        let bytes = serde_json::to_vec(e).unwrap();
        let plan = engine.plan.clone();
        let line = ingest.counts.accepted + ingest.counts.rejected + 1;
        if let Submission::Accepted { seq, event } = ingest.submit(&plan, &bytes, line, 1_000) {
            engine.apply_event(seq, &event);
        }
    }
}

fn state(ingest: &Ingest, engine: &Engine) -> Value {
    serde_json::to_value(dump(&DumpSource::from_engine(ingest, engine))).unwrap()
}

fn start(plan: &Arc<Plan>, partitions: usize, events: &[Value]) -> (Ingest, Engine) {
    let mut ingest = Ingest::new();
    let mut engine = Engine::new(plan.clone(), partitions);
    feed(&mut ingest, &mut engine, events);
    (ingest, engine)
}

fn players(engine: &Engine) -> Vec<veltrix_core::player::PlayerState> {
    let mut all: Vec<_> = engine
        .partitions
        .iter()
        .flat_map(|p| p.players.iter().map(|player| (**player).clone()))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

#[test]
fn switching_to_the_identical_configuration_changes_nothing() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 2, &script("a", 0));
    let before = state(&ingest, &engine);
    let players_before = players(&engine);
    let grants_before: Vec<_> = engine.partitions.iter().map(|p| p.grants.clone()).collect();
    let views_before = engine.views.clone();
    // The same sources compiled again: a different Arc, the same names.
    let report = switch_config(&mut ingest, &mut engine, base()).unwrap();
    assert!(report.retained_badges.is_empty() && report.retained_currencies.is_empty());
    assert!(report.dropped_rules.is_empty() && report.dropped_hunts.is_empty());
    assert!(report.rebuilt_leaderboards.is_empty() && report.reset_views.is_empty());
    assert_eq!(report.new_windows, 0);
    assert_eq!(state(&ingest, &engine), before);
    assert_eq!(players(&engine), players_before);
    let grants_after: Vec<_> = engine.partitions.iter().map(|p| p.grants.clone()).collect();
    assert_eq!(grants_after, grants_before);
    assert_eq!(engine.views, views_before);
    // And it continues exactly like a run that never switched.
    let more = script("b", 3 * DAY_MIN);
    feed(&mut ingest, &mut engine, &more);
    let (i2, e2) = start(&old, 2, &[script("a", 0), more].concat());
    assert_eq!(state(&ingest, &engine), state(&i2, &e2));
}

/// The base configuration with every section reordered, event types and
/// currencies swapped, the global board renamed `everyone`, and `first_rule`
/// in place of the `first` rule: a switch that remaps every index.
fn reordered_plan(first_rule: &str) -> Arc<Plan> {
    plan(
        &[
            VIEW,
            &BOARDS.replace("[leaderboards.global]", "[leaderboards.everyone]"),
            HUNT_TOUR_REORDERED,
            HUNT_QUEST,
            RULE_EXPLORER,
            RULE_REGULAR,
            RULE_BUSY,
            RULE_BIG,
            first_rule,
            EVENTS_SWAPPED,
            CURRENCIES_SWAPPED,
        ]
        .concat(),
    )
}

#[test]
fn reordering_everything_and_renaming_a_rule_and_a_board_keeps_player_state() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 3, &script("a", 0));
    let before = state(&ingest, &engine);
    let new = reordered_plan(&RULE_FIRST.replace("[rules.first]", "[rules.welcome]"));
    let report = switch_config(&mut ingest, &mut engine, new.clone()).unwrap();
    assert_eq!(report.dropped_rules, vec!["first"]);
    assert_eq!(report.rebuilt_leaderboards, vec!["everyone"]);
    assert!(Arc::ptr_eq(&engine.plan, &new));
    let after = state(&ingest, &engine);
    assert_eq!(after["players"], before["players"]);
    assert_eq!(after["grants"], before["grants"]);
    assert_eq!(
        after["leaderboards"]["everyone"],
        before["leaderboards"]["global"]
    );
    for board in ["quest", "daily"] {
        assert_eq!(after["leaderboards"][board], before["leaderboards"][board]);
    }
    assert!(after["players"]["p0"]["hunts"]["tour"]["solved"] == json!(["tower"]));
    // The next events continue with remapped state: p1 finishes the collect
    // stage (progress kept by item name), p2 the tour (reordered stages) and
    // takes the second tour prize (claims kept by hunt name).
    let more = vec![
        ev("c1", "p1", "found", 60, json!({"item": "key"})),
        ev("c2", "p0", "visit", 61, json!({"place": "cave"})),
        ev("c3", "p1", "visit", 62, json!({"place": "cave"})),
        ev("c4", "p1", "login", 63, json!({})),
    ];
    feed(&mut ingest, &mut engine, &more);
    let s = state(&ingest, &engine);
    assert_eq!(s["players"]["p1"]["hunts"]["quest"]["completed"], true);
    assert_eq!(s["players"]["p0"]["hunts"]["tour"]["completed"], true);
    let prizes: Vec<_> = grant_list(&s)
        .into_iter()
        .filter(|g| g.1 == "hunt:tour:prize")
        .map(|g| g.0)
        .collect();
    // p2 completed the tour before the switch; supply is 2.
    assert_eq!(prizes, vec!["p2", "p0"]);
    // The renamed `once` rule is a new rule: its state starts afresh.
    assert!(sources(&s).contains(&"rule:welcome".to_string()));
    // Compare with a run that used the old configuration throughout (only
    // the renamed rule and board differ).
    let (i2, e2) = start(&old, 1, &[script("a", 0), more].concat());
    let straight = state(&i2, &e2);
    assert_eq!(
        s["players"]["p1"]["hunts"],
        straight["players"]["p1"]["hunts"]
    );
    assert_eq!(
        s["players"]["p0"]["hunts"],
        straight["players"]["p0"]["hunts"]
    );
    assert_eq!(
        s["leaderboards"]["quest"],
        straight["leaderboards"]["quest"]
    );
}

#[test]
fn dropping_a_held_currency_is_refused_and_changes_nothing() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 2, &script("a", 0));
    let before = state(&ingest, &engine);
    let players_before = players(&engine);
    let without_gems = plan(
        &base_parts()
            .iter()
            .map(|p| match *p {
                CURRENCIES => "[currencies.coins]\n".to_string(),
                RULE_REGULAR => RULE_REGULAR.replace(", gems = 1", ""),
                HUNT_QUEST => HUNT_QUEST.replace("{ gems = 5 }", "{ points = 5 }"),
                other => other.to_string(),
            })
            .collect::<String>(),
    );
    let held = players_before.iter().filter(|p| p.balance(1) != 0).count() as u64;
    assert!(held > 0);
    assert_eq!(
        veltrix_core::check_switch(&engine, &without_gems).unwrap_err(),
        switch_config(&mut ingest, &mut engine, without_gems.clone()).unwrap_err()
    );
    let error = switch_config(&mut ingest, &mut engine, without_gems).unwrap_err();
    assert_eq!(
        error,
        SwitchError::CurrencyHeld {
            currency: "gems".into(),
            players: held
        }
    );
    assert!(error.to_string().contains("`gems`"), "{error}");
    assert!(Arc::ptr_eq(&engine.plan, &old));
    assert_eq!(state(&ingest, &engine), before);
    assert_eq!(players(&engine), players_before);
}

#[test]
fn a_dropped_currency_nobody_holds_stays_named_in_history() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 1, &script("a", 0));
    // Spend every gem, then drop gems.
    for (seq, player) in (100..).zip(["p0", "p1", "p2"]) {
        let balance = engine.player(player).unwrap().balance(1);
        if balance > 0 {
            engine.apply_spend(seq, player, 1, balance, "all-gems");
        }
    }
    ingest.next_seq = 200;
    let before = state(&ingest, &engine);
    let without_gems = plan(
        &base_parts()
            .iter()
            .map(|p| match *p {
                CURRENCIES => "[currencies.coins]\n".to_string(),
                RULE_REGULAR => RULE_REGULAR.replace(", gems = 1", ""),
                HUNT_QUEST => HUNT_QUEST.replace("{ gems = 5 }", "{ points = 5 }"),
                other => other.to_string(),
            })
            .collect::<String>(),
    );
    let report = switch_config(&mut ingest, &mut engine, without_gems).unwrap();
    assert_eq!(report.retained_currencies, vec!["gems"]);
    assert_eq!(state(&ingest, &engine), before);
    let ledger = veltrix_core::views::ledger(&engine, "p0").unwrap();
    assert!(
        serde_json::to_string(&ledger)
            .unwrap()
            .contains(r#""currency":"gems""#)
    );
}

#[test]
fn earned_badges_survive_when_no_reward_grants_them_any_more() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 2, &script("a", 0));
    let before = state(&ingest, &engine);
    assert_eq!(
        before["players"]["p0"]["badges"],
        json!(["hero", "regular"])
    );
    // Without `regular`: the badges `regular` is no longer configured.
    let new = plan(
        &base_parts()
            .into_iter()
            .filter(|p| *p != RULE_REGULAR)
            .collect::<String>(),
    );
    let report = switch_config(&mut ingest, &mut engine, new.clone()).unwrap();
    assert_eq!(report.retained_badges, vec!["regular"]);
    assert!(!Arc::ptr_eq(&engine.plan, &new));
    assert_eq!(engine.plan.config.version, new.config.version);
    assert_eq!(state(&ingest, &engine), before);
    // Snapshot after the switch, restored with the plan compiled from the
    // sources: the retained names come back from the snapshot.
    let bytes = encode(&ingest, &engine);
    let (mut i2, mut e2) = decode(new.clone(), &bytes).unwrap();
    assert_eq!(e2.plan.retained_badges, vec!["regular"]);
    assert_eq!(state(&i2, &e2), before);
    let more = script("b", 3 * DAY_MIN);
    feed(&mut ingest, &mut engine, &more);
    feed(&mut i2, &mut e2, &more);
    assert_eq!(state(&i2, &e2), state(&ingest, &engine));
    assert_eq!(players(&e2), players(&engine));
    // A later switch back to the base configuration maps `regular` to its
    // configured index again.
    let report = switch_config(&mut ingest, &mut engine, old.clone()).unwrap();
    assert!(report.retained_badges.is_empty());
    assert!(Arc::ptr_eq(&engine.plan, &old));
    assert_eq!(
        state(&ingest, &engine)["players"]["p0"]["badges"],
        json!(["hero", "regular"])
    );
}

#[test]
fn a_new_leaderboard_is_filled_from_the_grant_history() {
    let old = base();
    let events = script("a", 0);
    let (mut ingest, mut engine) = start(&old, 2, &events);
    let extra = r#"
[leaderboards.tour_only]
hunt = "tour"
[leaderboards.weekly]
period = "week"
"#;
    let new = plan(&[base_parts().concat(), extra.to_string()].concat());
    let report = switch_config(&mut ingest, &mut engine, new.clone()).unwrap();
    assert_eq!(report.rebuilt_leaderboards, vec!["tour_only", "weekly"]);
    let s = state(&ingest, &engine);
    let (i2, e2) = start(&new, 1, &events);
    let straight = state(&i2, &e2);
    assert_eq!(s["leaderboards"], straight["leaderboards"]);
    assert!(
        !s["leaderboards"]["tour_only"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // New grants keep counting.
    let more = script("b", 20);
    feed(&mut ingest, &mut engine, &more);
    let (i3, e3) = start(&new, 1, &[events, more].concat());
    assert_eq!(
        state(&ingest, &engine)["leaderboards"],
        state(&i3, &e3)["leaderboards"]
    );
}

#[test]
fn events_after_the_switch_see_the_new_rules() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 2, &script("a", 0));
    let big_buyer = r#"
[rules.big_buyer]
on = "buy"
when = "event.amount >= 10"
reward = { points = 1000 }
"#;
    let new = plan(
        &base_parts()
            .into_iter()
            .filter(|p| *p != RULE_BIG)
            .chain([big_buyer])
            .collect::<String>(),
    );
    switch_config(&mut ingest, &mut engine, new).unwrap();
    let before = sources(&state(&ingest, &engine));
    assert!(before.contains(&"rule:big".to_string()));
    feed(
        &mut ingest,
        &mut engine,
        &[ev("n1", "p9", "buy", 500, json!({"amount": 70}))],
    );
    let s = state(&ingest, &engine);
    let new_sources = &sources(&s)[before.len()..];
    assert_eq!(new_sources, ["rule:big_buyer"]);
    assert_eq!(points(&s, "p9"), 1000);
}

#[test]
fn a_newly_needed_window_series_starts_empty_at_the_switch() {
    let without_busy: String = base_parts()
        .into_iter()
        .filter(|p| *p != RULE_BUSY)
        .collect();
    let old = plan(&without_busy);
    let buys = |prefix: &str, from: i64| -> Vec<Value> {
        (0..3)
            .map(|i| {
                ev(
                    &format!("{prefix}{i}"),
                    "w",
                    "buy",
                    from + i,
                    json!({"amount": 30}),
                )
            })
            .collect()
    };
    let (mut ingest, mut engine) = start(&old, 1, &buys("x", 0));
    let new = base();
    let report = switch_config(&mut ingest, &mut engine, new.clone()).unwrap();
    assert_eq!(report.new_windows, 2, "count and sum of buy");
    // Three buys in 30 minutes would satisfy `busy`, but the window only
    // sees events since the switch: the first two after it do not fire.
    feed(&mut ingest, &mut engine, &buys("y", 3)[..2]);
    assert!(!sources(&state(&ingest, &engine)).contains(&"rule:busy".to_string()));
    feed(&mut ingest, &mut engine, &buys("y", 3)[2..]);
    assert!(sources(&state(&ingest, &engine)).contains(&"rule:busy".to_string()));
    // A series tracked by both configurations keeps its entries: the same
    // events with a switch between identical window needs give the same
    // state as a run without the switch (cooldown and counts included).
    let (mut i2, mut e2) = start(&new, 1, &buys("x", 0));
    switch_config(&mut i2, &mut e2, base()).unwrap();
    feed(&mut i2, &mut e2, &buys("y", 23));
    let (i3, e3) = start(&new, 1, &[buys("x", 0), buys("y", 23)].concat());
    assert_eq!(state(&i2, &e2), state(&i3, &e3));
    assert_eq!(players(&e2), players(&e3));
    assert_eq!(sources(&state(&i3, &e3)), vec!["rule:busy", "rule:busy"]);
}

#[test]
fn sequence_candidates_are_kept_only_for_steps_that_remain() {
    let old = base();
    let visit = [ev("v1", "s", "visit", 0, json!({"place": "cave"}))];
    let found = [ev("f1", "s", "found", 1, json!({"item": "lamp"}))];
    // Same sequence under a reordered configuration: the candidate survives.
    let (mut ingest, mut engine) = start(&old, 1, &visit);
    let reordered = plan(
        &[EVENTS_SWAPPED, CURRENCIES_SWAPPED, RULE_EXPLORER]
            .concat()
            .to_string(),
    );
    switch_config(&mut ingest, &mut engine, reordered).unwrap();
    feed(&mut ingest, &mut engine, &found);
    assert_eq!(
        grant_list(&state(&ingest, &engine)),
        vec![(
            "s".to_string(),
            "rule:explorer".to_string(),
            vec!["v1".to_string(), "f1".to_string()]
        )]
    );
    // The rule now starts with a login: the visit candidate is dropped.
    let (mut ingest, mut engine) = start(&old, 1, &visit);
    let changed = plan(
        &[
            EVENTS,
            CURRENCIES,
            &RULE_EXPLORER.replace(r#"["visit", "found"]"#, r#"["login", "found"]"#),
        ]
        .concat(),
    );
    switch_config(&mut ingest, &mut engine, changed).unwrap();
    let rule_states: Vec<_> = players(&engine)[0].rules.clone();
    assert!(rule_states.iter().all(|(_, s)| s.candidates.is_empty()));
    feed(&mut ingest, &mut engine, &found);
    assert!(sources(&state(&ingest, &engine)).is_empty());
}

/// The server's snapshot encoder, kept across a configuration switch that
/// remaps every player, grant and board, writes exactly what a fresh one
/// writes (a stale cached player or board would show here).
#[test]
fn a_warm_snapshot_encoder_sees_every_part_a_switch_remapped() {
    use veltrix_core::snapshot::Encoder;
    let (mut ingest, mut engine) = start(&base(), 3, &script("a", 0));
    let mut encoder = Encoder::default();
    encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy());
    let new = reordered_plan(RULE_FIRST);
    switch_config(&mut ingest, &mut engine, new).unwrap();
    let warm = encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy());
    assert!(warm == encode(&ingest, &engine), "after the switch");
    feed(&mut ingest, &mut engine, &script("b", 600));
    let warm = encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy());
    assert!(warm == encode(&ingest, &engine), "after more events");
}

#[test]
fn removed_stages_leave_solved_lists_and_removed_hunts_leave_no_trace() {
    let old = base();
    let (mut ingest, mut engine) = start(&old, 2, &script("a", 0));
    let tour_without_tower = r#"
[hunts.tour]
completion = { points = 1 }
[[hunts.tour.stages]]
id = "cave"
solve = { on = "visit", when = "event.place == 'cave'" }
"#;
    let new = plan(
        &base_parts()
            .into_iter()
            .map(|p| match p {
                HUNT_TOUR => tour_without_tower,
                HUNT_QUEST => "",
                BOARDS => "[leaderboards.global]\n",
                other => other,
            })
            .collect::<String>(),
    );
    let report = switch_config(&mut ingest, &mut engine, new).unwrap();
    assert_eq!(report.dropped_hunts, vec!["quest"]);
    let s = state(&ingest, &engine);
    assert_eq!(s["players"]["p1"]["hunts"], json!({}));
    assert_eq!(
        s["players"]["p2"]["hunts"]["tour"],
        json!({"solved": ["cave"], "completed": true})
    );
    // Grants of removed stages keep their source; the ledger renders them.
    assert!(sources(&s).contains(&"hunt:quest:harbor".to_string()));
    assert!(veltrix_core::views::ledger(&engine, "p0").is_some());
    assert!(veltrix_core::views::funnel(&engine, 0).is_some());
}

/// Snapshots written by earlier builds still load (a restart after an
/// upgrade may find nothing else: the log before them may be retired). The
/// fixture is a format-2 snapshot of `start(&base(), 2, &script("a", 0))`
/// written by the build before format 3; format 1 is format 2 without the
/// two (empty) name lists at the end. `snapshot-format-3.bin` is the same
/// state written by the build before copy-on-write state and the caching
/// encoder (commit a19ea4c: dedup keys in hash order, one flat struct).
#[test]
fn snapshots_of_earlier_formats_still_decode() {
    let old = base();
    let events = script("a", 0);
    let (ingest, engine) = start(&old, 2, &events);
    let v2 = include_bytes!("fixtures/snapshot-format-2.bin").to_vec();
    assert_eq!(v2[0], 2);
    assert_eq!(&v2[v2.len() - 2..], &[0, 0]);
    let mut v1 = v2[..v2.len() - 2].to_vec();
    v1[0] = 1;
    let v3 = include_bytes!("fixtures/snapshot-format-3.bin").to_vec();
    let current = encode(&ingest, &engine);
    assert_eq!((v3[0], current[0]), (3, 3));
    assert_eq!(v3.len(), current.len(), "same format, same size");
    for (format, bytes) in [(1, &v1), (2, &v2), (3, &v3), (3, &current)] {
        let (mut i2, e2) = decode(old.clone(), bytes).unwrap();
        assert_eq!(state(&i2, &e2), state(&ingest, &engine), "format {format}");
        // The dedup set came through: every accepted id is a duplicate (the
        // script's last event was rejected and may be sent again).
        for event in &events[..events.len() - 1] {
            let bytes = event.to_string();
            let submission = i2.submit(&old, bytes.as_bytes(), 1, 0);
            assert!(
                matches!(submission, Submission::Duplicate { .. }),
                "format {format}: {event} was not seen: {submission:?}"
            );
        }
    }
}

// ---- replay determinism -------------------------------------------------------

fn random_events(picks: &[(u8, u8, u8)], prefix: &str, start_min: i64) -> Vec<Value> {
    let places = ["harbor", "tower", "cave"];
    let items = ["map", "key", "lamp"];
    picks
        .iter()
        .enumerate()
        .map(|(i, &(player, kind, value))| {
            let id = format!("{prefix}{i}");
            let player = format!("p{}", player % 5);
            let minute = start_min + i as i64 * (1 + value as i64 % 7);
            match kind % 5 {
                0 => ev(&id, &player, "login", minute, json!({})),
                1 => ev(&id, &player, "buy", minute, json!({"amount": value / 2})),
                2 => ev(
                    &id,
                    &player,
                    "visit",
                    minute,
                    json!({"place": places[value as usize % 3]}),
                ),
                3 => ev(
                    &id,
                    &player,
                    "found",
                    minute,
                    json!({"item": items[value as usize % 3]}),
                ),
                _ => ev(&id, &player, "buy", minute, json!({"amount": "x"})),
            }
        })
        .collect()
}

fn alternative() -> Arc<Plan> {
    let big_buyer = "[rules.big_buyer]\non = \"buy\"\nwhen = \"sum('buy', 'amount', '2h') > 100\"\nreward = { points = 3, badge = \"spender\" }\n";
    plan(
        &[
            VIEW.replace("1h", "2h").as_str(),
            "[leaderboards.weekly]\nperiod = \"week\"\n[leaderboards.quest]\nhunt = \"quest\"\n",
            HUNT_TOUR_REORDERED,
            HUNT_QUEST,
            RULE_EXPLORER,
            RULE_BIG,
            big_buyer,
            RULE_FIRST,
            EVENTS_SWAPPED,
            CURRENCIES_SWAPPED,
        ]
        .concat(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_a_switch_log_b_replays_identically(
        a in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..60),
        b in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..60),
        partitions in 1usize..4,
    ) {
        let log_a = random_events(&a, "a", 0);
        let log_b = random_events(&b, "b", 400);
        // A log C after switching back: retained names map to configured
        // ones again, retired causes stay retired, claims and boards follow.
        let log_c: Vec<Value> = random_events(&a, "c", 900);
        let run = |partitions: usize| -> Result<_, TestCaseError> {
            let (mut ingest, mut engine) = start(&base(), partitions, &log_a);
            switch_config(&mut ingest, &mut engine, alternative()).unwrap();
            feed(&mut ingest, &mut engine, &log_b);
            let live_b = state(&ingest, &engine);
            // A snapshot after the switch restores the same state, and
            // continues the same way.
            let (mut i, mut e) = decode(alternative(), &encode(&ingest, &engine)).unwrap();
            prop_assert_eq!(&state(&i, &e), &live_b);
            for (ingest, engine) in [(&mut ingest, &mut engine), (&mut i, &mut e)] {
                switch_config(ingest, engine, base()).unwrap();
                feed(ingest, engine, &log_c);
            }
            prop_assert_eq!(state(&i, &e), state(&ingest, &engine));
            prop_assert_eq!(players(&e), players(&engine));
            Ok((live_b, players(&engine), state(&ingest, &engine)))
        };
        let first = run(partitions)?;
        let second = run(partitions)?;
        prop_assert_eq!(&first, &second);
        // The partition count does not change the result either.
        let single = run(1)?;
        prop_assert_eq!(&first.0, &single.0);
        prop_assert_eq!(&first.2, &single.2);
    }
}

#[test]
fn hunts_left_unfinishable_by_a_switch_finish_on_the_next_event() {
    let old = base();
    let progress = [
        ev("q1", "q", "visit", 0, json!({"place": "harbor"})),
        ev("q2", "q", "found", 1, json!({"item": "map"})),
    ];
    let with_quest = |quest: &str| {
        plan(
            &base_parts()
                .into_iter()
                .map(|p| if p == HUNT_QUEST { quest } else { p })
                .collect::<String>(),
        )
    };
    let completion = |s: &Value| {
        sources(s)
            .into_iter()
            .filter(|x| x.starts_with("hunt:quest:"))
            .collect::<Vec<_>>()
    };
    // (a) The collect stage no longer needs the missing key: naming a found
    // item solves it.
    let (mut ingest, mut engine) = start(&old, 1, &progress);
    switch_config(
        &mut ingest,
        &mut engine,
        with_quest(&HUNT_QUEST.replace(r#"["map", "key"]"#, r#"["map"]"#)),
    )
    .unwrap();
    feed(
        &mut ingest,
        &mut engine,
        &[ev("q3", "q", "found", 2, json!({"item": "map"}))],
    );
    let s = state(&ingest, &engine);
    assert_eq!(
        s["players"]["q"]["hunts"]["quest"],
        json!({"solved": ["harbor", "relics"], "completed": true})
    );
    assert_eq!(
        completion(&s),
        vec![
            "hunt:quest:harbor",
            "hunt:quest:harbor:first_finder",
            "hunt:quest:relics",
            "hunt:quest:completion",
            "hunt:quest:prize"
        ]
    );
    // (b) The unsolved stage is gone: the next event the hunt listens to
    // completes it.
    let (mut ingest, mut engine) = start(&old, 1, &progress);
    let only_harbor = &HUNT_QUEST[..HUNT_QUEST
        .find("[[hunts.quest.stages]]\nid = \"relics\"")
        .unwrap()];
    switch_config(&mut ingest, &mut engine, with_quest(only_harbor)).unwrap();
    feed(
        &mut ingest,
        &mut engine,
        &[ev("q3", "q", "visit", 2, json!({"place": "cave"}))],
    );
    let s = state(&ingest, &engine);
    assert_eq!(
        s["players"]["q"]["hunts"]["quest"],
        json!({"solved": ["harbor"], "completed": true})
    );
    assert_eq!(completion(&s).last().unwrap(), "hunt:quest:prize");
    // (c) Stages of an ordered hunt reordered: the first unsolved stage is
    // the active one.
    let (mut ingest, mut engine) = start(&old, 1, &progress);
    let at = HUNT_QUEST.find("[[hunts.quest.stages]]").unwrap();
    let second = HUNT_QUEST
        .find("[[hunts.quest.stages]]\nid = \"relics\"")
        .unwrap();
    let reordered = format!(
        "{}{}{}",
        &HUNT_QUEST[..at],
        &HUNT_QUEST[second..],
        &HUNT_QUEST[at..second]
    );
    switch_config(&mut ingest, &mut engine, with_quest(&reordered)).unwrap();
    let view = veltrix_core::views::hunt_progress(&engine, "q", 0).unwrap();
    assert_eq!(view.active.len(), 1);
    assert_eq!(view.active[0].id, "relics");
    feed(
        &mut ingest,
        &mut engine,
        &[ev("q3", "q", "found", 2, json!({"item": "key"}))],
    );
    let s = state(&ingest, &engine);
    assert_eq!(
        s["players"]["q"]["hunts"]["quest"],
        json!({"solved": ["harbor", "relics"], "completed": true})
    );
}

/// The base configuration with currencies, event types, leaderboards and the
/// stages of the unordered hunt in another order (rules and hunts keep
/// theirs: their order decides the order of grants within one event).
fn reordered_base() -> Arc<Plan> {
    let boards = "[leaderboards.daily]\nperiod = \"day\"\n[leaderboards.quest]\nhunt = \"quest\"\n[leaderboards.global]\n";
    plan(
        &[
            VIEW,
            boards,
            RULE_FIRST,
            RULE_BIG,
            RULE_BUSY,
            RULE_REGULAR,
            RULE_EXPLORER,
            HUNT_QUEST,
            HUNT_TOUR_REORDERED,
            EVENTS_SWAPPED,
            CURRENCIES_SWAPPED,
        ]
        .concat(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_switch_that_renames_nothing_is_invisible(
        a in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..60),
        b in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..60),
        partitions in 1usize..4,
    ) {
        let log_a = random_events(&a, "a", 0);
        let log_b = random_events(&b, "b", 200);
        let (i0, e0) = start(&base(), 1, &[log_a.clone(), log_b.clone()].concat());
        let straight = state(&i0, &e0);
        for target in [base(), reordered_base()] {
            let (mut ingest, mut engine) = start(&base(), partitions, &log_a);
            switch_config(&mut ingest, &mut engine, target).unwrap();
            feed(&mut ingest, &mut engine, &log_b);
            prop_assert_eq!(&state(&ingest, &engine), &straight);
            prop_assert_eq!(&engine.views.views[0], &e0.views.views[0]);
        }
    }

    #[test]
    fn a_switch_before_any_event_equals_starting_with_the_new_configuration(
        b in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 0..60),
    ) {
        let log_b = random_events(&b, "b", 0);
        let mut ingest = Ingest::new();
        let mut engine = Engine::new(base(), 2);
        switch_config(&mut ingest, &mut engine, alternative()).unwrap();
        feed(&mut ingest, &mut engine, &log_b);
        let (i2, e2) = start(&alternative(), 2, &log_b);
        prop_assert_eq!(state(&ingest, &engine), state(&i2, &e2));
        prop_assert_eq!(players(&engine), players(&e2));
    }
}
