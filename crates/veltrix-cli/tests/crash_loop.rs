//! Crash loop: the real `veltrix serve` under concurrent load, killed with
//! SIGKILL at random moments, many times in a row. After every restart the
//! harness checks what a user would notice:
//!
//! - every acknowledged event is present (and nothing that was never sent);
//! - no grant id appears twice, and each event paid exactly once;
//! - every acknowledged spend is in the ledger exactly once, and each
//!   balance equals the player's grants minus their spends;
//! - the state served after the restart equals `veltrix replay` of the log
//!   (taken on a copy of the data directory right after the kill), and
//!   `veltrix verify` finds the snapshot + tail equal to the whole log;
//! - the state equals an offline `veltrix run` over exactly the events the
//!   server holds, in the server's log order (spends added back);
//! - restart (spawn to `/readyz` 200) stays under a generous bound.
//!
//! Clients send NDJSON batches with unique ids, retry every unacknowledged
//! batch or spend (same ids, same key) after the restart, sometimes resend
//! an acknowledged batch (all duplicates), and spend coins with idempotency
//! keys. Some kills land during start-up (replay, torn-tail cut).
//!
//! `VELTRIX_CRASH_CYCLES` (default 5), `VELTRIX_CRASH_SEED` (printed; it
//! fixes the kill delays, batch sizes and choices, not thread timing),
//! `VELTRIX_CRASH_CLIENTS` (4), `VELTRIX_CRASH_MAX_KILL_MS` (1200),
//! `VELTRIX_CRASH_PAUSE_MS` (20: each client's think time between
//! requests; the checks after each restart read the whole state, so the
//! log must stay a size that 100 cycles can afford).
//! Full run: `VELTRIX_CRASH_CYCLES=100 cargo test --release -p veltrix-cli
//! --test crash_loop -- --nocapture` (see RELIABILITY.md).

mod chaos;

use chaos::{
    Outcome, Rng, Scratch, Server, copy_dir, env_u64, get, get_json, normalized_players, post,
    post_events, seed_from_env, veltrix,
};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// 2026-12-01T00:00:00Z in ms.
const BASE_TS_MS: u64 = 1_796_083_200_000;
/// Each player's events are 9 hours apart in event time, so every
/// `purchase` of 60 passes `big_spender`'s limit of 3 per rolling day and
/// never triggers `shopaholic` (3 purchases within an hour): every event
/// pays exactly one grant naming it (quests: `hardcore_quester`, 75
/// points; purchases: `big_spender`, 5 coins). The grants therefore show
/// which events the server holds.
const STEP_MS: u64 = 9 * 3600 * 1000;
const PLAYERS_PER_CLIENT: usize = 6;
const RESTART_BOUND: Duration = Duration::from_secs(30);
const SNAPSHOT_EVERY: &str = "200";
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

struct Batch {
    ids: Vec<String>,
    body: String,
    /// Sends so far (a batch sent once and acknowledged must not meet
    /// duplicates).
    attempts: u32,
}

#[derive(Clone, Debug)]
struct SpendReq {
    player: String,
    key: String,
    amount: i64,
    attempts: u32,
}

#[derive(Default, Clone, Copy, Debug)]
struct Stats {
    batches_acked: u64,
    events_acked: u64,
    retried_requests: u64,
    resent_acked_batches: u64,
    spends_acked: u64,
    overloaded: u64,
}

struct Client {
    id: usize,
    /// Think time between requests (keeps the log, and so the checks after
    /// every restart, a size that 100 cycles can afford).
    pause: Duration,
    players: Vec<String>,
    /// Events sent per player (sets the next event time).
    player_events: Vec<u64>,
    next_event: u64,
    next_spend: u64,
    /// The one request whose answer was not seen (a kill interrupted it);
    /// it is retried, unchanged, after the restart.
    pending_batch: Option<Batch>,
    pending_spend: Option<SpendReq>,
    acked_events: HashSet<String>,
    /// Bodies of acknowledged batches, a few recent ones, to resend.
    recent_acked: Vec<(usize, String)>,
    /// Every event line sent, by id (for the offline run).
    lines: HashMap<String, String>,
    /// Spends the server acknowledged, by key.
    acked_spends: HashMap<String, SpendReq>,
    stats: Stats,
    /// Answers a correct server never gives.
    anomalies: Vec<String>,
}

impl Client {
    fn new(id: usize, pause: Duration) -> Client {
        Client {
            id,
            pause,
            players: (0..PLAYERS_PER_CLIENT)
                .map(|j| format!("c{id}-p{j}"))
                .collect(),
            player_events: vec![0; PLAYERS_PER_CLIENT],
            next_event: 0,
            next_spend: 0,
            pending_batch: None,
            pending_spend: None,
            acked_events: HashSet::new(),
            recent_acked: Vec::new(),
            lines: HashMap::new(),
            acked_spends: HashMap::new(),
            stats: Stats::default(),
            anomalies: Vec::new(),
        }
    }

    fn pending_ids(&self) -> HashSet<&str> {
        self.pending_batch
            .iter()
            .flat_map(|b| b.ids.iter().map(String::as_str))
            .collect()
    }

    fn new_batch(&mut self, rng: &mut Rng) -> Batch {
        let n = rng.range(1, 20) as usize;
        let mut ids = Vec::with_capacity(n);
        let mut body = String::new();
        for _ in 0..n {
            let p = rng.range(0, PLAYERS_PER_CLIENT as u64 - 1) as usize;
            let ts = BASE_TS_MS + self.player_events[p] * STEP_MS;
            self.player_events[p] += 1;
            let id = format!("c{}-e{}", self.id, self.next_event);
            self.next_event += 1;
            let player = &self.players[p];
            let line = if rng.chance(60) {
                json!({"id": id, "player": player, "type": "quest_done", "ts": ts,
                       "data": {"quest": "q", "score": 900, "hardcore": true}})
            } else {
                json!({"id": id, "player": player, "type": "purchase", "ts": ts,
                       "data": {"amount": 60}})
            }
            .to_string();
            body.push_str(&line);
            body.push('\n');
            self.lines.insert(id.clone(), line);
            ids.push(id);
        }
        Batch {
            ids,
            body,
            attempts: 0,
        }
    }

    /// Sends until `stop` is set, the server stops answering (it was
    /// killed: the request in flight stays pending), or, with `drain`,
    /// nothing is pending any more.
    fn run(&mut self, port: u16, stop: &AtomicBool, rng: &mut Rng, drain: bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if !drain && !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
            if let Some(batch) = &mut self.pending_batch {
                batch.attempts += 1;
                if batch.attempts > 1 {
                    self.stats.retried_requests += 1;
                }
                let outcome = post_events(port, &batch.body, WRITE_TIMEOUT);
                match outcome {
                    Outcome::Acked(answer) => {
                        let batch = self.pending_batch.take().unwrap();
                        self.batch_acked(&batch, &answer);
                    }
                    Outcome::Overloaded(retry_after) => {
                        self.overloaded(retry_after);
                    }
                    Outcome::Status(status, body) => {
                        self.anomalies
                            .push(format!("POST /v1/events answered {status}: {body}"));
                        return;
                    }
                    Outcome::Transport(_) => return,
                }
            } else if let Some(spend) = &mut self.pending_spend {
                spend.attempts += 1;
                if spend.attempts > 1 {
                    self.stats.retried_requests += 1;
                }
                let body = json!({"currency": "coins", "amount": spend.amount, "key": spend.key});
                let outcome = post(
                    port,
                    &format!("/v1/players/{}/spend", spend.player),
                    "application/json",
                    body.to_string().as_bytes(),
                    WRITE_TIMEOUT,
                );
                match outcome {
                    Outcome::Acked(answer) => {
                        let spend = self.pending_spend.take().unwrap();
                        self.spend_acked(spend, &answer);
                    }
                    Outcome::Overloaded(retry_after) => self.overloaded(retry_after),
                    Outcome::Status(status, body) => {
                        // 409 cannot happen: the balance was read just
                        // before, and only this client spends for this
                        // player (and its spends are all resolved).
                        self.anomalies.push(format!(
                            "spend {} of {} answered {status}: {body}",
                            spend.key, spend.amount
                        ));
                        self.pending_spend = None;
                        return;
                    }
                    Outcome::Transport(_) => return,
                }
            } else if drain {
                return;
            } else if !self.recent_acked.is_empty() && rng.chance(4) {
                // A client that did not trust its acknowledgement: every
                // event must come back as a duplicate.
                let (n, body) =
                    &self.recent_acked[rng.range(0, self.recent_acked.len() as u64 - 1) as usize];
                match post_events(port, body, WRITE_TIMEOUT) {
                    Outcome::Acked(answer) => {
                        self.stats.resent_acked_batches += 1;
                        if answer["accepted"] != 0 || answer["duplicates"] != *n as u64 {
                            self.anomalies.push(format!(
                                "resending an acknowledged batch of {n} events answered {answer}"
                            ));
                        }
                    }
                    Outcome::Overloaded(retry_after) => self.overloaded(retry_after),
                    Outcome::Status(status, body) => {
                        self.anomalies
                            .push(format!("resend answered {status}: {body}"));
                        return;
                    }
                    Outcome::Transport(_) => return,
                }
            } else if rng.chance(15) {
                let p = rng.range(0, PLAYERS_PER_CLIENT as u64 - 1) as usize;
                let player = self.players[p].clone();
                let response = match get(port, &format!("/v1/players/{player}")) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                match response.status {
                    200 => {}
                    404 => continue,
                    429 => {
                        self.overloaded(
                            response.header("retry-after").and_then(|v| v.parse().ok()),
                        );
                        continue;
                    }
                    _ => {
                        self.anomalies.push(format!(
                            "GET /v1/players/{player} answered {}: {}",
                            response.status,
                            response.text()
                        ));
                        return;
                    }
                }
                let coins = response.json()["balances"]["coins"].as_i64().unwrap_or(0);
                if coins > 0 {
                    let amount = rng.range(1, coins.min(8) as u64) as i64;
                    let key = format!("c{}-s{}", self.id, self.next_spend);
                    self.next_spend += 1;
                    self.pending_spend = Some(SpendReq {
                        player,
                        key,
                        amount,
                        attempts: 0,
                    });
                }
            } else {
                self.pending_batch = Some(self.new_batch(rng));
            }
        }
    }

    fn overloaded(&mut self, retry_after: Option<u64>) {
        self.stats.overloaded += 1;
        if retry_after.is_none() {
            self.anomalies.push("429 without Retry-After".into());
        }
        // Obey Retry-After (at most 1 s here, so a kill is noticed soon).
        std::thread::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(1)));
    }

    fn batch_acked(&mut self, batch: &Batch, answer: &Value) {
        let n = batch.ids.len() as u64;
        let accepted = answer["accepted"].as_u64().unwrap_or(u64::MAX);
        let duplicates = answer["duplicates"].as_u64().unwrap_or(u64::MAX);
        let rejected = answer["rejected"].as_array().map_or(usize::MAX, Vec::len);
        if rejected != 0 || accepted.checked_add(duplicates) != Some(n) {
            self.anomalies
                .push(format!("batch of {n} answered {answer}"));
        }
        if batch.attempts == 1 && duplicates != 0 {
            self.anomalies.push(format!(
                "a batch of {n} new ids, sent once, had {duplicates} duplicates: {answer}"
            ));
        }
        self.acked_events.extend(batch.ids.iter().cloned());
        self.stats.batches_acked += 1;
        self.stats.events_acked += n;
        if self.recent_acked.len() >= 8 {
            self.recent_acked.remove(0);
        }
        self.recent_acked
            .push((batch.ids.len(), batch.body.clone()));
    }

    fn spend_acked(&mut self, spend: SpendReq, answer: &Value) {
        let applied = answer["applied"].as_bool();
        if answer["spend"]["key"] != spend.key.as_str() || answer["spend"]["amount"] != spend.amount
        {
            self.anomalies
                .push(format!("spend {spend:?} answered {answer}"));
        }
        if applied == Some(false) && spend.attempts == 1 {
            self.anomalies.push(format!(
                "a new spend key {} answered applied: false: {answer}",
                spend.key
            ));
        }
        if answer["balance"].as_i64().is_none_or(|b| b < 0) {
            self.anomalies
                .push(format!("spend answered a bad balance: {answer}"));
        }
        self.stats.spends_acked += 1;
        self.acked_spends.insert(spend.key.clone(), spend);
    }
}

/// The first place where two JSON values differ, as a JSON Pointer with
/// both sides (short), or None.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()) {
                let left = x.get(key).unwrap_or(&Value::Null);
                let right = y.get(key).unwrap_or(&Value::Null);
                if let Some(d) = first_difference(&format!("{path}/{key}"), left, right) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (left, right)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_difference(&format!("{path}/{i}"), left, right) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: {} items against {}", x.len(), y.len()))
        }
        _ => (a != b).then(|| {
            let short = |v: &Value| {
                let t = v.to_string();
                if t.len() > 300 {
                    format!("{}…", &t[..300])
                } else {
                    t
                }
            };
            format!("{path}: {} against {}", short(a), short(b))
        }),
    }
}

/// `veltrix verify` and `veltrix replay` on a copy of the data directory
/// (the server is dead; the copy keeps the original for the server's own
/// recovery). Returns the replayed state dump.
fn replay_copy(data: &Path, scratch: &Path, context: &str) -> Value {
    let copy = scratch.join("copy");
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(data, &copy).expect("copies the data directory");
    let verify = veltrix()
        .args(["verify", "--config"])
        .arg(chaos::example())
        .arg("--data-dir")
        .arg(&copy)
        .output()
        .expect("runs veltrix verify");
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && stdout.starts_with("ok:"),
        "{context}: veltrix verify (latest snapshot + log tail against the whole log) failed ({}):\n{stdout}\n{}",
        verify.status,
        String::from_utf8_lossy(&verify.stderr)
    );
    let out = scratch.join("replay.json");
    let replay = veltrix()
        .args(["replay", "--config"])
        .arg(chaos::example())
        .arg("--data-dir")
        .arg(&copy)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs veltrix replay");
    assert!(
        replay.status.success(),
        "{context}: veltrix replay failed ({}): {}",
        replay.status,
        String::from_utf8_lossy(&replay.stderr)
    );
    let _ = std::fs::remove_dir_all(&copy);
    serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("replay wrote JSON")
}

#[derive(Default, Debug)]
struct CheckFigures {
    events_present: usize,
    spends_present: usize,
    grants: usize,
    /// Events of unacknowledged batches found in the log after the kill.
    unacked_events_present: usize,
    unacked_events_absent: usize,
}

/// Every invariant, against the restarted server on `port`.
fn check(
    context: &str,
    port: u16,
    clients: &[Client],
    replayed: Option<&Value>,
    scratch: &Path,
) -> CheckFigures {
    let mut figures = CheckFigures::default();
    let state = get_json(port, "/v1/state");

    // The server's state is a function of its log: the same as
    // `veltrix replay` of the log it was restarted on.
    if let Some(replayed) = replayed
        && let Some(d) = first_difference("", &state, replayed)
    {
        panic!(
            "{context}: the restarted server's state differs from `veltrix replay` of its log at {d}"
        );
    }

    // No grant id twice; every event paid exactly once.
    let grants = state["grants"].as_array().expect("grants");
    figures.grants = grants.len();
    let mut grant_ids = HashSet::new();
    let mut paid: HashMap<&str, usize> = HashMap::new();
    let mut grant_coins: HashMap<&str, i64> = HashMap::new();
    for grant in grants {
        let id = grant["id"].as_str().expect("grant id");
        assert!(
            grant_ids.insert(id),
            "{context}: grant id {id} appears twice in the state"
        );
        for event in grant["events"].as_array().expect("grant events") {
            *paid.entry(event.as_str().unwrap()).or_default() += 1;
        }
        *grant_coins
            .entry(grant["player"].as_str().unwrap())
            .or_default() += grant["currencies"]["coins"].as_i64().unwrap_or(0);
    }
    for (event, n) in &paid {
        assert_eq!(
            *n, 1,
            "{context}: event {event} paid {n} grants (each pays exactly one)"
        );
    }
    figures.events_present = paid.len();
    assert_eq!(
        state["events"]["accepted"].as_u64(),
        Some(paid.len() as u64),
        "{context}: accepted count against the events the grants name"
    );

    // Every acknowledged event is present; nothing present was never sent.
    for client in clients {
        let pending = client.pending_ids();
        for id in &client.acked_events {
            assert!(
                paid.contains_key(id.as_str()),
                "{context}: acknowledged event {id} is missing after the restart"
            );
        }
        for id in &pending {
            if paid.contains_key(id) {
                figures.unacked_events_present += 1;
            } else {
                figures.unacked_events_absent += 1;
            }
        }
    }
    let pending: Vec<HashSet<&str>> = clients.iter().map(Client::pending_ids).collect();
    for id in paid.keys() {
        let known = clients
            .iter()
            .zip(&pending)
            .any(|(c, p)| c.acked_events.contains(*id) || p.contains(id));
        assert!(
            known,
            "{context}: event {id} is in the state but was never sent"
        );
    }

    // Ledgers: spends exactly once, balances = grants - spends; the log
    // order of events (for the offline run).
    let mut seq_of: Vec<(u64, String)> = Vec::new();
    let mut spent: HashMap<String, i64> = HashMap::new();
    for client in clients {
        for player in &client.players {
            let response = get(port, &format!("/v1/players/{player}/ledger"))
                .unwrap_or_else(|e| panic!("{context}: ledger of {player}: {e}"));
            let entries = match response.status {
                404 => vec![],
                200 => response.json()["entries"].as_array().unwrap().clone(),
                s => panic!(
                    "{context}: ledger of {player} answered {s}: {}",
                    response.text()
                ),
            };
            let mut keys = HashSet::new();
            let mut ledger_coins = 0i64;
            let mut spent_coins = 0i64;
            let mut ledger_grants = 0;
            for entry in &entries {
                match entry["kind"].as_str() {
                    Some("grant") => {
                        ledger_grants += 1;
                        ledger_coins += entry["currencies"]["coins"].as_i64().unwrap_or(0);
                        for event in entry["events"].as_array().unwrap() {
                            seq_of.push((
                                entry["seq"].as_u64().unwrap(),
                                event.as_str().unwrap().to_string(),
                            ));
                        }
                    }
                    Some("spend") => {
                        let key = entry["key"].as_str().unwrap();
                        assert!(
                            keys.insert(key.to_string()),
                            "{context}: spend key {key} of {player} applied twice"
                        );
                        let amount = entry["amount"].as_i64().unwrap();
                        spent_coins += amount;
                        let acked = client.acked_spends.get(key);
                        let pending = client.pending_spend.as_ref().filter(|s| s.key == key);
                        match acked.or(pending) {
                            Some(s) => assert_eq!(
                                s.amount, amount,
                                "{context}: spend {key} of {player}: amount"
                            ),
                            None => panic!(
                                "{context}: spend {key} of {player} is in the ledger but was never sent"
                            ),
                        }
                    }
                    other => panic!("{context}: unknown ledger entry kind {other:?}"),
                }
            }
            for (key, spend) in &client.acked_spends {
                if spend.player == *player {
                    assert!(
                        keys.contains(key),
                        "{context}: acknowledged spend {key} of {player} is missing after the restart"
                    );
                }
            }
            figures.spends_present += keys.len();
            let dump_coins = grant_coins.get(player.as_str()).copied().unwrap_or(0);
            assert_eq!(
                ledger_coins, dump_coins,
                "{context}: {player}'s ledger grants and the state's grants disagree on coins"
            );
            let balance = state["players"][player.as_str()]["balances"]["coins"]
                .as_i64()
                .unwrap_or(0);
            assert!(balance >= 0, "{context}: {player} has a negative balance");
            assert_eq!(
                balance,
                ledger_coins - spent_coins,
                "{context}: {player}'s balance is not grants ({ledger_coins}) minus spends ({spent_coins})"
            );
            let state_grants = grants
                .iter()
                .filter(|g| g["player"] == player.as_str())
                .count();
            assert_eq!(
                ledger_grants, state_grants,
                "{context}: {player}'s ledger and the state list different grants"
            );
            spent.insert(player.clone(), spent_coins);
        }
    }

    // An offline `veltrix run` over exactly the events the server holds,
    // in its log order, gives the same state (spends added back: the
    // offline run has none; duplicates are the server's retries).
    seq_of.sort();
    assert_eq!(
        seq_of.len(),
        paid.len(),
        "{context}: ledgers against grants"
    );
    let mut ndjson = String::new();
    for (_, id) in &seq_of {
        let line = clients
            .iter()
            .find_map(|c| c.lines.get(id))
            .unwrap_or_else(|| panic!("{context}: event {id} was never sent"));
        ndjson.push_str(line);
        ndjson.push('\n');
    }
    let events_path = scratch.join("present.ndjson");
    let out_path = scratch.join("offline.json");
    std::fs::write(&events_path, ndjson).unwrap();
    let run = veltrix()
        .args(["run", "--config"])
        .arg(chaos::example())
        .arg("--events")
        .arg(&events_path)
        .arg("--out")
        .arg(&out_path)
        .output()
        .expect("runs veltrix run");
    assert!(
        run.status.success(),
        "{context}: veltrix run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let offline: Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let mut served_players = normalized_players(&state);
    for (player, entry) in served_players.iter_mut() {
        let spent = spent.get(player).copied().unwrap_or(0);
        if spent > 0 {
            let coins = entry["balances"]["coins"].as_i64().unwrap_or(0) + spent;
            entry["balances"]["coins"] = json!(coins);
        }
    }
    let comparable = |s: &Value, players: serde_json::Map<String, Value>| {
        json!({
            "accepted": s["events"]["accepted"],
            "rejected_count": s["events"]["rejected"],
            "players": players,
            "leaderboards": s["leaderboards"],
            "grants": s["grants"],
            "rejected": s["rejected"],
        })
    };
    let served = comparable(&state, served_players);
    let offline = comparable(&offline, normalized_players(&offline));
    if let Some(d) = first_difference("", &served, &offline) {
        panic!(
            "{context}: the server's state differs from an offline `veltrix run` over the {} events it holds (in its log order, spends added back) at {d}",
            seq_of.len()
        );
    }
    figures
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[test]
fn crash_loop_loses_no_acknowledged_write_and_pays_nothing_twice() {
    let cycles = env_u64("VELTRIX_CRASH_CYCLES", 5);
    let seed = seed_from_env("VELTRIX_CRASH_SEED");
    let client_count = env_u64("VELTRIX_CRASH_CLIENTS", 4) as usize;
    let max_kill_ms = env_u64("VELTRIX_CRASH_MAX_KILL_MS", 1200);
    let pause = Duration::from_millis(env_u64("VELTRIX_CRASH_PAUSE_MS", 20));
    println!(
        "crash loop: {cycles} cycles, {client_count} clients, pause {pause:?}, kill within {max_kill_ms} ms, seed {seed} (reproduce with VELTRIX_CRASH_SEED={seed})"
    );
    let began = Instant::now();
    let scratch = Scratch::new("crash-loop");
    let data = scratch.path.join("data");
    let mut rng = Rng::new(seed);
    let mut clients: Vec<Client> = (0..client_count).map(|i| Client::new(i, pause)).collect();
    let mut restart_times: Vec<Duration> = Vec::new();
    let mut kills_under_load = 0u64;
    let mut kills_during_startup = 0u64;
    let mut unacked_present = 0usize;
    let mut unacked_absent = 0usize;
    // Restarts where the server said it cut a torn tail off the log.
    let mut torn_tails = 0u64;
    let mut replayed: Option<Value> = None;

    for cycle in 0..cycles {
        let context = format!("cycle {cycle} (seed {seed})");
        // Start; sometimes kill again during start-up (replay, torn-tail
        // cut, snapshot load), before any client talks to it.
        let mut server = loop {
            let mut server =
                Server::spawn(&data, &scratch.path, &["--snapshot-every", SNAPSHOT_EVERY]);
            if cycle > 0 && rng.chance(15) {
                std::thread::sleep(Duration::from_millis(rng.range(0, 120)));
                server.kill9();
                kills_during_startup += 1;
                replayed = Some(replay_copy(&data, &scratch.path, &context));
                continue;
            }
            break server;
        };
        let ready = server
            .wait_ready(RESTART_BOUND + Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert!(
            ready < RESTART_BOUND,
            "{context}: restart took {ready:?} (bound {RESTART_BOUND:?})"
        );
        if cycle > 0 {
            restart_times.push(ready);
        }
        let log = server.log_text();
        if log.contains("torn tail") {
            torn_tails += 1;
        }
        let figures = check(
            &context,
            server.port,
            &clients,
            replayed.as_ref(),
            &scratch.path,
        );
        unacked_present += figures.unacked_events_present;
        unacked_absent += figures.unacked_events_absent;

        // Load, then SIGKILL at a random moment.
        let stop = AtomicBool::new(false);
        let delay = Duration::from_millis(rng.range(10, max_kill_ms));
        let mut rngs: Vec<Rng> = (0..clients.len()).map(|i| rng.fork(i as u64)).collect();
        let port = server.port;
        std::thread::scope(|scope| {
            for (client, client_rng) in clients.iter_mut().zip(rngs.iter_mut()) {
                let stop = &stop;
                scope.spawn(move || client.run(port, stop, client_rng, false));
            }
            std::thread::sleep(delay);
            server.kill9();
            stop.store(true, Ordering::Relaxed);
        });
        kills_under_load += 1;
        for client in &clients {
            assert!(
                client.anomalies.is_empty(),
                "{context}: client {} saw answers a correct server never gives: {:#?}",
                client.id,
                client.anomalies
            );
        }
        println!(
            "{context}: ready in {ready:?}; {} events and {} spends present, {} grants; killed after {delay:?}",
            figures.events_present, figures.spends_present, figures.grants
        );
        replayed = Some(replay_copy(&data, &scratch.path, &context));
    }

    // Last restart: check, finish every pending request, then resend every
    // acknowledged event (all must be duplicates) and stop gracefully.
    let context = format!("after the last kill (seed {seed})");
    let mut server = Server::spawn(&data, &scratch.path, &["--snapshot-every", SNAPSHOT_EVERY]);
    let ready = server
        .wait_ready(RESTART_BOUND + Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    if cycles > 0 {
        restart_times.push(ready);
    }
    let figures = check(
        &context,
        server.port,
        &clients,
        replayed.as_ref(),
        &scratch.path,
    );
    unacked_present += figures.unacked_events_present;
    unacked_absent += figures.unacked_events_absent;
    let stop = AtomicBool::new(false);
    for client in clients.iter_mut() {
        let mut client_rng = rng.fork(99);
        client.run(server.port, &stop, &mut client_rng, true);
        assert!(
            client.pending_batch.is_none() && client.pending_spend.is_none(),
            "{context}: client {} could not finish its pending request: {:?}",
            client.id,
            client.anomalies
        );
        assert!(
            client.anomalies.is_empty(),
            "{context}: {:#?}",
            client.anomalies
        );
    }
    let mut resent = 0u64;
    for client in &clients {
        let mut ids: Vec<&String> = client.acked_events.iter().collect();
        ids.sort();
        for chunk in ids.chunks(1000) {
            let body: String = chunk
                .iter()
                .map(|id| format!("{}\n", client.lines[*id]))
                .collect();
            match post_events(server.port, &body, WRITE_TIMEOUT) {
                Outcome::Acked(answer) => assert!(
                    answer["accepted"] == 0 && answer["duplicates"] == chunk.len() as u64,
                    "{context}: resending {} acknowledged events answered {answer}",
                    chunk.len()
                ),
                other => panic!("{context}: resending acknowledged events: {other:?}"),
            }
            resent += chunk.len() as u64;
        }
    }
    let final_figures = check(&context, server.port, &clients, None, &scratch.path);
    assert!(
        server.terminate(Duration::from_secs(30)),
        "{context}: the server did not stop on SIGTERM within 30 s"
    );
    let last = replay_copy(&data, &scratch.path, &context);
    assert_eq!(
        last["events"]["accepted"].as_u64(),
        Some(final_figures.events_present as u64),
        "{context}: after a graceful stop"
    );

    let mut sorted = restart_times.clone();
    sorted.sort();
    let total: Stats = clients.iter().fold(Stats::default(), |mut t, c| {
        t.batches_acked += c.stats.batches_acked;
        t.events_acked += c.stats.events_acked;
        t.retried_requests += c.stats.retried_requests;
        t.resent_acked_batches += c.stats.resent_acked_batches;
        t.spends_acked += c.stats.spends_acked;
        t.overloaded += c.stats.overloaded;
        t
    });
    println!(
        "crash loop summary (seed {seed}): {cycles} cycles, {kills_under_load} SIGKILLs under load + {kills_during_startup} during start-up, all invariants held after every restart\n  \
         acknowledged: {} events in {} batches, {} spends; {} retried requests after kills; {} acknowledged batches resent (all duplicates); 429s: {}\n  \
         unacknowledged events found in the log after a kill: {unacked_present}, absent: {unacked_absent}; restarts that cut a torn tail: {torn_tails}\n  \
         final: {} events, {} spends, {} grants in the state; {resent} acknowledged events resent at the end, all duplicates\n  \
         restart to /readyz over {} restarts: min {:?}, median {:?}, p90 {:?}, max {:?}\n  \
         wall time {:?}",
        total.events_acked,
        total.batches_acked,
        total.spends_acked,
        total.retried_requests,
        total.resent_acked_batches,
        total.overloaded,
        final_figures.events_present,
        final_figures.spends_present,
        final_figures.grants,
        sorted.len(),
        sorted.first().copied().unwrap_or_default(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.9),
        sorted.last().copied().unwrap_or_default(),
        began.elapsed(),
    );
}
