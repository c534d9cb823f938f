//! A JSON Schema of the configuration format, for editors (Taplo, VS Code
//! Even Better TOML). These types exist only to describe the format: the
//! compiler walks the spanned TOML tree itself, so that every error has a
//! location. `schema_matches_compiler` in the tests keeps the two in step.

#![allow(dead_code)]

use schemars::JsonSchema;
use std::collections::BTreeMap;

/// A Veltrix configuration: event types, currencies, rules, hunts, leaderboards and views.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Configuration {
    server: Option<Server>,
    engine: Option<Engine>,
    /// Currencies that grants may pay: `[currencies.coins]`.
    currencies: Option<BTreeMap<String, Currency>>,
    /// Event types: `[events.purchase.fields]`. `answer` is built in.
    events: Option<BTreeMap<String, EventType>>,
    /// Rules, evaluated in configuration order.
    rules: Option<BTreeMap<String, Rule>>,
    /// Treasure hunts, evaluated after rules, in configuration order.
    hunts: Option<BTreeMap<String, Hunt>>,
    leaderboards: Option<BTreeMap<String, Leaderboard>>,
    views: Option<Vec<View>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Server {
    /// Address to listen on, e.g. "127.0.0.1:7400".
    listen: Option<String>,
    /// Directory for the log and snapshots.
    data_dir: Option<String>,
    /// Number of partitions players are hashed over (1-1024).
    #[schemars(range(min = 1, max = 1024))]
    partitions: Option<u32>,
    /// API keys, stored as SHA-256 hashes; without any the server binds loopback only.
    api_keys: Option<Vec<ApiKeyEntry>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ApiKeyEntry {
    /// Unique name of the key (shown in logs, never the key itself).
    name: String,
    /// SHA-256 of the key, 64 hexadecimal characters.
    #[schemars(regex(pattern = r"^[0-9a-fA-F]{64}$"))]
    sha256: String,
    /// What the key may do; admin implies read and ingest.
    scopes: Vec<ApiScope>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ApiScope {
    Ingest,
    Read,
    Admin,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Engine {
    /// How late (event time) an event may be and still see exact rolling windows; default "1d".
    lateness: Option<String>,
    /// Most unmatched sequence candidates kept per rule and player; default 256.
    sequence_candidates: Option<u32>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Currency {
    description: Option<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct EventType {
    description: Option<String>,
    /// "deny" (default) rejects unknown data fields; "allow" accepts and ignores them.
    extra: Option<Extra>,
    /// Data fields: a type name ("string") or a table with options.
    fields: Option<BTreeMap<String, FieldSpec>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Extra {
    Allow,
    Deny,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum FieldSpec {
    Short(FieldType),
    Full(Field),
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Field {
    #[serde(rename = "type")]
    ty: FieldType,
    description: Option<String>,
    optional: Option<bool>,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(rename = "enum")]
    allowed: Option<Vec<serde_json::Value>>,
    max_len: Option<u32>,
}

/// Points, a badge, and amounts of declared currencies, e.g. { points = 10, coins = 1, badge = "loyal" }.
#[derive(JsonSchema)]
struct Reward {
    points: Option<u64>,
    badge: Option<String>,
    #[serde(flatten)]
    currencies: BTreeMap<String, u64>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Rule {
    description: Option<String>,
    /// Event type that triggers the rule (or use `sequence`).
    on: Option<String>,
    /// Event types that must occur in this order; fires on the last.
    sequence: Option<Vec<String>>,
    /// With `sequence`: longest event-time span from first to last event, e.g. "10m".
    within: Option<String>,
    /// CEL-subset condition, e.g. "event.amount >= 50".
    when: Option<String>,
    /// At most one grant per player, ever.
    once: Option<bool>,
    limit: Option<Limit>,
    /// Minimum event time between two grants to a player, e.g. "1h".
    cooldown: Option<String>,
    reward: Reward,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Limit {
    count: u32,
    /// Rolling window in event time, e.g. "1d".
    per: String,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Hunt {
    title: Option<String>,
    description: Option<String>,
    /// RFC 3339; events before it do not advance the hunt.
    starts: Option<String>,
    /// RFC 3339; events at or after it do not advance the hunt.
    ends: Option<String>,
    /// Stages must be solved in order (default false).
    ordered: Option<bool>,
    completion: Option<Reward>,
    prize: Option<Prize>,
    stages: Vec<Stage>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Prize {
    /// Only the first `supply` finishers, by log order.
    supply: u32,
    reward: Reward,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Stage {
    id: String,
    title: Option<String>,
    clue: Option<String>,
    solve: Option<Solve>,
    /// Hex SHA-256 of the normalized answer (see `veltrix hash-answer`).
    answer_sha256: Option<String>,
    collect: Option<Collect>,
    puzzle: Option<Puzzle>,
    reward: Option<Reward>,
    /// Extra points for the 1st, 2nd, … solver overall.
    first_finders: Option<Vec<u64>>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Solve {
    on: String,
    when: Option<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Collect {
    on: String,
    field: String,
    items: Vec<String>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Puzzle {
    /// caesar, anagram or sudoku.
    kind: String,
    words: Option<Vec<String>>,
    difficulty: Option<String>,
    size: Option<u32>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Leaderboard {
    title: Option<String>,
    /// Count only points granted by this hunt.
    hunt: Option<String>,
    /// all (default), day or week: UTC buckets of event time.
    period: Option<PeriodName>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum PeriodName {
    All,
    Day,
    Week,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct View {
    name: String,
    description: Option<String>,
    on: String,
    /// "data.FIELD" or "player".
    group_by: Option<Vec<String>>,
    /// Time bucket, e.g. "1m".
    bucket: String,
    /// "count", "sum(data.FIELD)", "min(data.FIELD)", "max(data.FIELD)".
    measures: Vec<String>,
}

/// The JSON Schema of the configuration format.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Configuration)).unwrap_or_default()
}
