//! Runs the real `veltrix` binary, as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn veltrix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veltrix"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("VELTRIX_PUZZLE_SECRET")
        .output()
        .expect("runs veltrix")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/golden-compass")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_example_and_exits_zero() {
    let out = veltrix(&["check", example().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is valid"));
}

#[test]
fn check_reports_every_error_with_location_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[events.purchase.fields]\namount = \"number\"\n[rules.r]\non = \"purchse\"\nreward = { points = 1 }\n[rules.s]\non = \"purchase\"\nwhen = \"event.amout > 1\"\nreward = { points = 1 }\n").unwrap();
    let out = veltrix(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.toml:4:6"), "{stderr}");
    assert!(
        stderr.contains("unknown event type \"purchse\""),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean \"purchase\"?"), "{stderr}");
    assert!(stderr.contains("bad.toml:8:9"), "{stderr}");
    assert!(stderr.contains("did you mean \"amount\"?"), "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");

    let json = veltrix(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(json.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["valid"], false);
    assert_eq!(value["diagnostics"][0]["line"], 4);
    assert_eq!(value["diagnostics"][0]["key"], "rules.r.on");
    assert_eq!(
        value["diagnostics"][0]["help"],
        "did you mean \"purchase\"?"
    );
}

#[test]
fn unreadable_input_exits_two_with_a_clear_message() {
    let out = veltrix(&["check", "/nonexistent/veltrix.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read configuration /nonexistent/veltrix.toml"));
}

#[test]
fn run_writes_the_state_dump_and_partitions_do_not_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let events = example().join("events.ndjson");
    let mut dumps = Vec::new();
    for partitions in ["1", "3"] {
        let out_path = dir.path().join(format!("state-{partitions}.json"));
        let out = veltrix(&[
            "run",
            "--config",
            example().to_str().unwrap(),
            "--events",
            events.to_str().unwrap(),
            "--out",
            out_path.to_str().unwrap(),
            "--now",
            "2026-12-03T00:00:00Z",
            "--partitions",
            partitions,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("accepted 20, duplicates 1, rejected 5"));
        dumps.push(std::fs::read(&out_path).unwrap());
    }
    assert_eq!(dumps[0], dumps[1]);
    let state: serde_json::Value = serde_json::from_slice(&dumps[0]).unwrap();
    for key in ["events", "players", "leaderboards", "grants", "rejected"] {
        assert!(state.get(key).is_some(), "dump lacks {key}");
    }
    assert_eq!(
        state["leaderboards"]["global"][0],
        serde_json::json!({"rank": 1, "player": "alice", "score": 1135})
    );
}

#[test]
fn test_runs_the_example_cases() {
    let out = veltrix(&["test", example().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS"));
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .ends_with(" passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn test_reports_failing_cases_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case.toml");
    std::fs::write(&case, "[[case]]\nname = \"wrong points\"\nevents = [{ id = \"l\", player = \"a\", type = \"login\", ts = 1796083200000 }]\n[case.expect]\nplayers.a = { points = 11 }\n").unwrap();
    let out = veltrix(&["test", example().to_str().unwrap(), case.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("players.a.points: expected 11, got 10"),
        "{stdout}"
    );
    assert!(stdout.contains("cases: 0 passed, 1 failed"), "{stdout}");
}

#[test]
fn schema_describes_every_section() {
    let out = veltrix(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    for key in [
        "server",
        "engine",
        "currencies",
        "events",
        "rules",
        "hunts",
        "leaderboards",
        "views",
    ] {
        assert!(properties.contains_key(key), "schema lacks {key}");
    }
}

#[test]
fn hash_answer_normalizes() {
    let a = veltrix(&["hash-answer", "  Key  Board "]);
    let b = veltrix(&["hash-answer", "key board"]);
    assert_eq!(text(&a.stdout), text(&b.stdout));
    assert_eq!(text(&a.stdout).trim().len(), 64);
}

fn preview(player: &str, extra: &[&str]) -> serde_json::Value {
    let config = example();
    let mut args = vec![
        "puzzle",
        "preview",
        "--config",
        config.to_str().unwrap(),
        "--hunt",
        "golden_compass",
        "--stage",
        "cipher",
        "--player",
        player,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = veltrix(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("VELTRIX_PUZZLE_SECRET is not set"));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn puzzle_preview_hides_the_answer_unless_revealed() {
    let hidden = preview("alice", &[]);
    assert_eq!(hidden["kind"], "caesar");
    assert!(hidden.get("answer").is_none());
    let revealed = preview("alice", &["--reveal"]);
    assert_eq!(revealed["text"], hidden["text"]);
    let answer = revealed["answer"].as_str().unwrap();
    assert!(
        ["compass", "anchor", "harbor", "lantern"].contains(&answer),
        "{answer}"
    );
    assert!(
        !hidden["text"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains(answer)
    );
}

#[test]
fn puzzle_preview_names_unknown_stages() {
    let config = example();
    let out = veltrix(&[
        "puzzle",
        "preview",
        "--config",
        config.to_str().unwrap(),
        "--hunt",
        "golden_compass",
        "--stage",
        "ciphr",
        "--player",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("has no stage \"ciphr\"; did you mean \"cipher\"?"));
    let out = veltrix(&[
        "puzzle",
        "preview",
        "--config",
        config.to_str().unwrap(),
        "--hunt",
        "golden_compass",
        "--stage",
        "harbor",
        "--player",
        "a",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a puzzle stage"));
}

#[test]
fn a_script_can_play_the_hunt_to_the_end_with_previewed_answers() {
    let player = "scripted";
    let answer = preview(player, &["--reveal"])["answer"]
        .as_str()
        .unwrap()
        .to_string();
    let events = [
        serde_json::json!({"id": "s1", "player": player, "type": "location_visited", "ts": "2026-12-02T10:00:00Z", "data": {"place": "harbor"}}),
        serde_json::json!({"id": "s2", "player": player, "type": "answer", "ts": "2026-12-02T10:01:00Z", "data": {"hunt": "golden_compass", "stage": "riddle", "answer": "keyboard"}}),
        serde_json::json!({"id": "s3", "player": player, "type": "item_found", "ts": "2026-12-02T10:02:00Z", "data": {"item": "map"}}),
        serde_json::json!({"id": "s4", "player": player, "type": "item_found", "ts": "2026-12-02T10:03:00Z", "data": {"item": "key"}}),
        serde_json::json!({"id": "s5", "player": player, "type": "item_found", "ts": "2026-12-02T10:04:00Z", "data": {"item": "lantern"}}),
        serde_json::json!({"id": "s6", "player": player, "type": "answer", "ts": "2026-12-02T10:05:00Z", "data": {"hunt": "golden_compass", "stage": "cipher", "answer": answer}}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.ndjson");
    std::fs::write(
        &events_path,
        events
            .iter()
            .map(|e| e.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let out = veltrix(&[
        "run",
        "--config",
        example().to_str().unwrap(),
        "--events",
        events_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        state["players"][player]["hunts"]["golden_compass"]["completed"],
        true
    );
    assert_eq!(
        state["players"][player]["badges"],
        serde_json::json!(["navigator"])
    );
    let sources: Vec<&str> = state["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.ends_with(&[
            "hunt:golden_compass:cipher",
            "hunt:golden_compass:completion",
            "hunt:golden_compass:prize"
        ]),
        "{sources:?}"
    );
    // The plain answer appears in no grant (stage ids such as "harbor" may
    // coincide with a cipher word, so the whole dump is not searched).
    assert!(
        !state["grants"]
            .to_string()
            .contains(&format!("\"{answer}\""))
    );
}

#[test]
fn demo_runs_a_server_with_simulated_players_and_exits_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let out = veltrix(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--seconds",
        "2",
        "--players",
        "20",
        "--rate",
        "200",
        "--exit",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("Leaderboard (global)"), "{stdout}");
    assert!(stdout.contains("The Golden Compass:"), "{stdout}");
    let done = stdout
        .lines()
        .find(|l| l.starts_with("Done: "))
        .expect("a summary line");
    let accepted: u64 = done["Done: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(accepted >= 200, "{done}");
    // The events went to the server's durable log.
    assert!(std::fs::read_dir(data.join("wal")).unwrap().count() > 0);
}

#[test]
fn bench_loads_an_in_process_server_and_reports_json() {
    let out = veltrix(&[
        "bench",
        "--events",
        "3000",
        "--batch",
        "250",
        "--players",
        "500",
        "--duplicates",
        "2",
        "--invalid",
        "3",
        "--reads",
        "50",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events_sent"], 3000);
    assert_eq!(report["requests"], 12);
    assert_eq!(report["failed_requests"], 0);
    let accepted = report["accepted"].as_u64().unwrap();
    let duplicates = report["duplicates"].as_u64().unwrap();
    let rejected = report["rejected"].as_u64().unwrap();
    // Every event is exactly one of accepted, duplicate, rejected.
    assert_eq!(accepted + duplicates + rejected, 3000);
    assert!(duplicates > 0 && rejected > 0, "{report}");
    for q in ["p50", "p99", "max"] {
        assert!(
            report["ack_latency_ms"][q].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    assert!(report["events_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_open_loop_measures_from_the_schedule() {
    let out = veltrix(&[
        "bench",
        "--events",
        "2000",
        "--batch",
        "200",
        "--rate",
        "4000",
        "--players",
        "100",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["mode"]
            .as_str()
            .unwrap()
            .starts_with("open loop at 4000")
    );
    // 10 batches at 20 per second take at least the 0.45 s of the schedule.
    assert!(report["seconds"].as_f64().unwrap() >= 0.45, "{report}");
}

#[test]
fn new_api_key_prints_a_key_and_a_valid_entry_holding_only_its_hash() {
    let out = veltrix(&[
        "new-api-key",
        "--name",
        "backend",
        "--scopes",
        "ingest,admin",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let key = stdout
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let entry: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("[[server.api_keys]]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !entry.contains(&key),
        "the entry must not hold the plain key"
    );
    assert!(
        entry.contains(&format!(
            "sha256 = \"{}\"",
            veltrix_server::api_key_hash(&key)
        )),
        "{entry}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config =
        std::fs::read_to_string(example().join("veltrix.toml")).unwrap() + "\n" + &entry + "\n";
    std::fs::write(dir.path().join("veltrix.toml"), config).unwrap();
    let check = veltrix(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert_eq!(
        veltrix(&["new-api-key", "--scopes", "root"]).status.code(),
        Some(2)
    );
}
