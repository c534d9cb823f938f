//! Properties over random event streams on a configuration that uses every
//! feature: (a) the same log gives the same state and grant ids, (b) inserted
//! duplicates change nothing but the duplicate count, (c) 1, 2 and 8
//! partitions — run on real threads with log-order claims — give identical
//! state.
mod common;
use common::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};
use std::sync::Arc;
use veltrix_core::dump::{DumpSource, dump};
use veltrix_core::parallel::run_parallel;
use veltrix_core::veltrix_config::answer_digest;
use veltrix_core::{Ingest, Plan, Submission, ndjson_lines};

fn config() -> String {
    let hash = |a: &str| {
        answer_digest(a)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    format!(
        r#"
[currencies.coins]
[currencies.gems]
[events.login]
[events.buy.fields]
amount = {{ type = "integer", min = 0 }}
[events.visit.fields]
place = {{ type = "string", enum = ["harbor", "tower", "cave"] }}
[events.found.fields]
item = {{ type = "string", enum = ["map", "key", "lamp"] }}

[rules.first]
on = "login"
once = true
reward = {{ points = 10, coins = 1 }}
[rules.big]
on = "buy"
when = "event.amount >= 50"
limit = {{ count = 2, per = "1h" }}
reward = {{ coins = 5 }}
[rules.busy]
on = "buy"
when = "count('buy', '30m') >= 3 && sum('buy', 'amount', '30m') > 60"
cooldown = "20m"
reward = {{ points = 15, badge = "busy" }}
[rules.regular]
on = "login"
when = "streak('login', '1d') >= 2 && !has_badge('regular')"
reward = {{ badge = "regular", gems = 1 }}
[rules.explorer]
sequence = ["visit", "found"]
within = "15m"
reward = {{ points = 7 }}
[rules.rich]
on = "visit"
when = "player.coins >= 6 && player.points > 20"
reward = {{ gems = 1 }}
cooldown = "1h"

[hunts.quest]
ordered = true
completion = {{ coins = 10, badge = "hero" }}
prize = {{ supply = 3, reward = {{ gems = 5 }} }}
[[hunts.quest.stages]]
id = "harbor"
solve = {{ on = "visit", when = "event.place == 'harbor'" }}
reward = {{ points = 100 }}
first_finders = [50, 20]
[[hunts.quest.stages]]
id = "riddle"
answer_sha256 = "{}"
reward = {{ points = 200 }}
first_finders = [30]
[[hunts.quest.stages]]
id = "relics"
collect = {{ on = "found", field = "item", items = ["map", "key"] }}
reward = {{ points = 300 }}

[hunts.tour]
completion = {{ points = 1 }}
prize = {{ supply = 2, reward = {{ coins = 50 }} }}
[[hunts.tour.stages]]
id = "tower"
solve = {{ on = "visit", when = "event.place == 'tower' && stage_done('quest', 'harbor')" }}
reward = {{ points = 5 }}
first_finders = [9, 8, 7]
[[hunts.tour.stages]]
id = "cave"
solve = {{ on = "visit", when = "event.place == 'cave'" }}

[leaderboards.global]
[leaderboards.quest]
hunt = "quest"
[leaderboards.daily]
period = "day"
[leaderboards.weekly]
period = "week"
"#,
        hash("keyboard")
    )
}

#[derive(Clone, Debug)]
struct Step {
    player: u8,
    kind: u8,
    delta_min: i64,
    value: u8,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0u8..6,
            0u8..6,
            prop_oneof![9 => 0i64..40, 1 => -600i64..0],
            any::<u8>(),
        )
            .prop_map(|(player, kind, delta_min, value)| Step {
                player,
                kind,
                delta_min,
                value,
            }),
        1..120,
    )
}

fn events(steps: &[Step]) -> Vec<Value> {
    let mut minute = 0i64;
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            minute += s.delta_min;
            let id = format!("e{i}");
            let player = format!("p{}", s.player);
            let places = ["harbor", "tower", "cave"];
            let items = ["map", "key", "lamp"];
            match s.kind {
                0 => ev(&id, &player, "login", minute, json!({})),
                1 => ev(
                    &id,
                    &player,
                    "buy",
                    minute,
                    json!({"amount": (s.value as i64) / 2}),
                ),
                2 => ev(
                    &id,
                    &player,
                    "visit",
                    minute,
                    json!({"place": places[s.value as usize % 3]}),
                ),
                3 => ev(
                    &id,
                    &player,
                    "found",
                    minute,
                    json!({"item": items[s.value as usize % 3]}),
                ),
                4 => ev(
                    &id,
                    &player,
                    "answer",
                    minute,
                    json!({"hunt": "quest", "stage": "riddle",
                        "answer": if s.value % 2 == 0 { "Keyboard" } else { "piano" }}),
                ),
                // Invalid events mixed in: they must never change state.
                _ => ev(&id, &player, "buy", minute, json!({"amount": "lots"})),
            }
        })
        .collect()
}

fn sequential(plan: &Arc<Plan>, bytes: &[u8]) -> Value {
    run_bytes(plan, bytes, 1)
}

fn parallel(plan: &Arc<Plan>, bytes: &[u8], partitions: usize) -> Value {
    let mut ingest = Ingest::new();
    let mut records = Vec::new();
    for (line, text) in ndjson_lines(bytes) {
        if let Submission::Accepted { seq, event } = ingest.submit(plan, text, line, 1_000) {
            records.push((seq, event));
        }
    }
    let run = run_parallel(plan, &records, partitions);
    let source = DumpSource {
        config: &plan.config,
        counts: ingest.counts,
        rejected: &ingest.rejected,
        partitions: &run.partitions,
        boards: &run.boards,
        max_ts: run.max_ts,
    };
    serde_json::to_value(dump(&source)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_same_log_gives_identical_state(steps in steps()) {
        let plan = plan(&config());
        let bytes = ndjson(&events(&steps));
        let first = serde_json::to_string(&sequential(&plan, &bytes)).unwrap();
        let second = serde_json::to_string(&sequential(&plan, &bytes)).unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn duplicates_change_nothing(steps in steps(), picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 1..20)) {
        let plan = plan(&config());
        let original = events(&steps);
        let mut base = sequential(&plan, &ndjson(&original));
        // A rejected event does not use up its id, so only accepted ones can be duplicated.
        let rejected: Vec<&str> = base["rejected"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
        let accepted: Vec<&Value> = original.iter().filter(|e| !rejected.contains(&e["id"].as_str().unwrap())).collect();
        prop_assume!(!accepted.is_empty());
        let mut with_duplicates = original.clone();
        for (from, to, tweak) in picks {
            let source = accepted[from.index(accepted.len())];
            // A duplicate goes somewhere after its original (which earlier
            // insertions may have moved) and may hold anything else.
            let at = with_duplicates.iter().position(|e| e == source).unwrap();
            let position = at + 1 + to.index(with_duplicates.len() - at);
            let mut copy = source.clone();
            if tweak % 2 == 0 {
                copy["player"] = json!(format!("other{tweak}"));
            }
            if tweak % 3 == 0 {
                copy["data"] = json!({"amount": "not even valid"});
            }
            with_duplicates.insert(position.min(with_duplicates.len()), copy);
        }
        let mut dup = sequential(&plan, &ndjson(&with_duplicates));
        let added = (with_duplicates.len() - original.len()) as u64;
        prop_assert_eq!(dup["events"]["duplicates"].as_u64().unwrap(), added);
        base["events"]["duplicates"] = json!(0);
        dup["events"]["duplicates"] = json!(0);
        // Inserted lines move the line numbers of rejected events; nothing else may differ.
        for state in [&mut base, &mut dup] {
            for r in state["rejected"].as_array_mut().unwrap() {
                r["line"] = json!(0);
            }
        }
        prop_assert_eq!(base, dup);
    }

    #[test]
    fn partition_count_does_not_change_results(steps in steps()) {
        let plan = plan(&config());
        let bytes = ndjson(&events(&steps));
        let one = sequential(&plan, &bytes);
        for partitions in [1, 2, 8] {
            let many = parallel(&plan, &bytes, partitions);
            prop_assert_eq!(&one, &many, "partitions = {}", partitions);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_restore_then_continue_equals_an_uninterrupted_run(steps in steps(), cut in any::<prop::sample::Index>(), partitions in 1usize..4) {
        use veltrix_core::snapshot::{decode, encode};
        let plan = plan(&config());
        let lines = ndjson(&events(&steps));
        let all: Vec<(u64, &[u8])> = ndjson_lines(&lines).collect();
        let cut = cut.index(all.len() + 1);
        let feed = |ingest: &mut Ingest, engine: &mut veltrix_core::Engine, part: &[(u64, &[u8])]| {
            for (line, text) in part {
                if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, *line, 1_000) {
                    engine.apply_event(seq, &event);
                }
            }
        };
        let mut ingest = Ingest::new();
        let mut engine = veltrix_core::Engine::new(plan.clone(), partitions);
        feed(&mut ingest, &mut engine, &all[..cut]);
        let bytes = encode(&ingest, &engine);
        // The server's encoder, kept across snapshots and given shared
        // copies, writes what a fresh one writes.
        let mut encoder = veltrix_core::snapshot::Encoder::default();
        prop_assert!(encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy()) == bytes);
        let (mut ingest2, mut engine2) = decode(plan.clone(), &bytes).unwrap();
        // A restored state encodes to the same state again.
        let again = decode(plan.clone(), &encode(&ingest2, &engine2)).unwrap();
        prop_assert_eq!(
            serde_json::to_value(dump(&DumpSource::from_engine(&again.0, &again.1))).unwrap(),
            serde_json::to_value(dump(&DumpSource::from_engine(&ingest2, &engine2))).unwrap()
        );
        feed(&mut ingest, &mut engine, &all[cut..]);
        feed(&mut ingest2, &mut engine2, &all[cut..]);
        prop_assert!(
            encoder.encode(&ingest.snapshot_copy(), &engine.snapshot_copy()) == encode(&ingest, &engine)
        );
        let uninterrupted = serde_json::to_value(dump(&DumpSource::from_engine(&ingest, &engine))).unwrap();
        let restored = serde_json::to_value(dump(&DumpSource::from_engine(&ingest2, &engine2))).unwrap();
        prop_assert_eq!(&uninterrupted, &sequential(&plan, &lines));
        prop_assert_eq!(uninterrupted, restored);
        prop_assert_eq!(&engine.views, &engine2.views);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// What the server does within a batch: leaderboard updates held back
    /// and flushed at any points leave, at every flush, the state that
    /// updating at once leaves (snapshot bytes: boards, names and all).
    #[test]
    fn leaderboard_updates_held_back_until_a_flush_change_no_state(
        steps in steps(),
        flushes in prop::collection::vec(any::<bool>(), 120),
        partitions in 1usize..3,
    ) {
        use veltrix_core::snapshot::encode;
        let plan = plan(&config());
        let lines = ndjson(&events(&steps));
        let mut ingest = Ingest::new();
        let mut at_once = veltrix_core::Engine::new(plan.clone(), partitions);
        let mut held = veltrix_core::Engine::new(plan.clone(), partitions);
        held.boards.defer();
        for (n, (line, text)) in ndjson_lines(&lines).enumerate() {
            if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, line, 1_000) {
                at_once.apply_event(seq, &event);
                held.apply_event(seq, &event);
            }
            if flushes[n] {
                held.boards.flush();
                prop_assert_eq!(encode(&ingest, &held), encode(&ingest, &at_once), "after event {}", n);
                held.boards.defer();
            }
        }
        held.boards.flush();
        prop_assert_eq!(encode(&ingest, &held), encode(&ingest, &at_once));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// What the server does while idle after a snapshot copy: copying
    /// players and leaderboards away from it moves them to their own
    /// allocations and changes nothing a snapshot or a later event can see.
    #[test]
    fn unsharing_after_a_snapshot_copy_changes_no_state(steps in steps(), partitions in 1usize..4) {
        use std::sync::Arc;
        use veltrix_core::snapshot::encode;
        use veltrix_core::engine::PlayerSlot;
        let plan = plan(&config());
        let lines = ndjson(&events(&steps));
        let (ingest, mut engine) = {
            let mut ingest = Ingest::new();
            let mut engine = veltrix_core::Engine::new(plan.clone(), partitions);
            for (line, text) in ndjson_lines(&lines) {
                if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, line, 1_000) {
                    engine.apply_event(seq, &event);
                }
            }
            (ingest, engine)
        };
        let before = encode(&ingest, &engine);
        let copy = engine.snapshot_copy();
        let names: Vec<Arc<str>> = engine
            .partitions
            .iter()
            .flat_map(|p| p.players.iter().map(|player| player.name.clone()))
            .collect();
        // Copies are made under a shared borrow, then installed.
        let slots: Vec<_> = names.iter().filter_map(|name| engine.locate_player(name)).collect();
        prop_assert_eq!(slots.len(), names.len());
        let players: Vec<_> = slots.iter().filter_map(|&slot| engine.copy_of_shared_player(slot)).collect();
        prop_assert_eq!(players.len(), names.len());
        let past_the_end = PlayerSlot { partition: 0, pid: u32::MAX };
        prop_assert!(engine.copy_of_shared_player(past_the_end).is_none());
        let boards: Vec<_> = (0..plan.config.leaderboards.len() + 1)
            .filter_map(|index| engine.copy_of_shared_board(index))
            .collect();
        for copy in players {
            engine.install_player(copy);
        }
        for copy in boards {
            engine.install_board(copy);
        }
        // Nothing shared any more: nothing to copy.
        prop_assert!(slots.iter().all(|&slot| engine.copy_of_shared_player(slot).is_none()));
        prop_assert!(encode(&ingest, &engine) == before);
        prop_assert!(encode(&ingest, &copy) == before);
        for (live, copied) in engine.partitions.iter().zip(&copy.partitions) {
            for (a, b) in live.players.iter().zip(copied.players.iter()) {
                prop_assert!(!Arc::ptr_eq(a, b), "{} still shared", a.name);
            }
        }
        for (live, copied) in engine.boards.boards.iter().zip(&copy.boards.boards) {
            if let (Some((_, a)), Some((_, b))) = (live.iter().next_back(), copied.iter().next_back()) {
                prop_assert!(!Arc::ptr_eq(a, b));
            }
        }
    }

    /// What the server's snapshot thread does first with its copy: letting
    /// go of players, the newest leaderboard buckets and the chunks appended
    /// to next leaves them unshared in the live state (its next writes copy
    /// nothing), changes nothing either side encodes, and later writes to
    /// the live state do not reach the copy.
    #[test]
    fn a_copy_that_lets_go_shares_nothing_the_live_state_writes_next(
        steps in steps(),
        more in steps(),
        partitions in 1usize..4,
    ) {
        use veltrix_core::engine::PlayerSlot;
        use veltrix_core::snapshot::encode;
        let plan = plan(&config());
        let first = ndjson(&events(&steps));
        let mut ingest = Ingest::new();
        let mut engine = veltrix_core::Engine::new(plan.clone(), partitions);
        let feed = |ingest: &mut Ingest, engine: &mut veltrix_core::Engine, lines: &[u8]| {
            for (line, text) in ndjson_lines(lines) {
                if let Submission::Accepted { seq, event } = ingest.submit(&plan, text, line, 1_000) {
                    engine.apply_event(seq, &event);
                }
            }
        };
        feed(&mut ingest, &mut engine, &first);
        let before = encode(&ingest, &engine);
        let mut ingest_copy = ingest.snapshot_copy();
        let mut copy = engine.snapshot_copy();
        let mut slots: Vec<PlayerSlot> = engine
            .partitions
            .iter()
            .flat_map(|p| p.players.iter().map(|player| player.name.clone()))
            .filter_map(|name| engine.locate_player(&name))
            .collect();
        prop_assert!(engine.locate_player("nobody-sent-this").is_none());
        // A slot the copy does not have (a player added after it) is skipped.
        slots.push(PlayerSlot { partition: 0, pid: u32::MAX });
        copy.let_go(&slots);
        ingest_copy.let_go();
        prop_assert!(encode(&ingest_copy, &copy) == before);
        prop_assert!(encode(&ingest, &engine) == before);
        for slot in &slots[..slots.len() - 1] {
            let players = &engine.partitions[slot.partition].players;
            prop_assert!(!players.is_shared_at(slot.pid as usize));
            prop_assert_eq!(Arc::strong_count(&players[slot.pid as usize]), 1);
        }
        for buckets in &engine.boards.boards {
            if let Some((_, board)) = buckets.iter().next_back() {
                prop_assert_eq!(Arc::strong_count(board), 1);
            }
        }
        for partition in &engine.partitions {
            prop_assert!(!partition.grants.is_shared_at(partition.grants.len().saturating_sub(1)));
        }
        // The live state goes on as if no copy had been taken; the copy
        // keeps its moment.
        let later: Vec<Value> = events(&more)
            .into_iter()
            .map(|mut event| {
                let id = format!("later-{}", event["id"].as_str().unwrap_or_default());
                event["id"] = json!(id);
                event
            })
            .collect();
        let later = ndjson(&later);
        feed(&mut ingest, &mut engine, &later);
        prop_assert!(encode(&ingest_copy, &copy) == before);
        let mut plain_ingest = Ingest::new();
        let mut plain = veltrix_core::Engine::new(plan.clone(), partitions);
        feed(&mut plain_ingest, &mut plain, &first);
        feed(&mut plain_ingest, &mut plain, &later);
        prop_assert!(encode(&ingest, &engine) == encode(&plain_ingest, &plain));
    }
}

#[test]
fn snapshots_refuse_other_configurations_newer_formats_and_garbage() {
    use veltrix_core::snapshot::{SnapshotError, decode, encode};
    let plan = plan(&config());
    let (ingest, engine) = veltrix_core::run_ndjson(
        plan.clone(),
        &ndjson(&events(&[Step {
            player: 0,
            kind: 0,
            delta_min: 0,
            value: 0,
        }])),
        0,
        1,
    );
    let bytes = encode(&ingest, &engine);
    let other = common::plan(&format!("{}\n[events.extra]\n", config()));
    assert!(matches!(
        decode(other, &bytes),
        Err(SnapshotError::ConfigMismatch { .. })
    ));
    let mut newer = bytes.clone();
    newer[0] = 99;
    assert_eq!(
        decode(plan.clone(), &newer).err(),
        Some(SnapshotError::NewerFormat { found: 99 })
    );
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                decode(plan.clone(), &bytes[..cut]),
                Err(SnapshotError::Decode(_))
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_random_streams_exercise_every_feature() {
    // Guards the generator: if it stopped producing grants of every source
    // kind, the properties above would pass vacuously.
    let plan = plan(&config());
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        let state = sequential(&plan, &ndjson(&events(&steps)));
        for g in state["grants"].as_array().unwrap() {
            seen.insert(g["source"].as_str().unwrap().to_string());
        }
    }
    for needed in [
        "rule:first",
        "rule:big",
        "rule:busy",
        "rule:regular",
        "rule:explorer",
        "rule:rich",
        "hunt:quest:harbor",
        "hunt:quest:harbor:first_finder",
        "hunt:quest:riddle",
        "hunt:quest:relics",
        "hunt:quest:completion",
        "hunt:quest:prize",
        "hunt:tour:tower",
        "hunt:tour:completion",
        "hunt:tour:prize",
    ] {
        assert!(
            seen.contains(needed),
            "no {needed} grant in 64 random streams; saw {seen:?}"
        );
    }
}
