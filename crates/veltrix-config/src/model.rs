//! The checked configuration. Every name is resolved to an index, every
//! expression is compiled, every duration is in milliseconds. The engine
//! consumes only this; it never sees TOML.

use std::collections::HashMap;
use veltrix_expr::{Compiled, FieldType};

pub type EventTypeId = u16;
pub type FieldSlot = u16;
pub type CurrencyId = u16;
pub type BadgeId = u16;
pub type HuntId = u16;
pub type StageIndex = u16;

/// Name of the built-in answer event type.
pub const ANSWER_TYPE: &str = "answer";

#[derive(Clone, Debug)]
pub struct Config {
    /// Content hash of the sources (hex, 16 chars): names a configuration version.
    pub version: String,
    pub server: ServerSettings,
    pub engine: EngineSettings,
    pub currencies: Vec<String>,
    /// Declared event types, then the built-in `answer` type last.
    pub event_types: Vec<EventType>,
    pub answer_type: EventTypeId,
    pub badges: Vec<String>,
    pub rules: Vec<Rule>,
    pub hunts: Vec<Hunt>,
    pub leaderboards: Vec<Leaderboard>,
    pub views: Vec<View>,
    pub event_type_index: HashMap<String, EventTypeId>,
    pub hunt_index: HashMap<String, HuntId>,
}

impl Config {
    pub fn event_type(&self, name: &str) -> Option<EventTypeId> {
        // Every event is looked up here; for the usual handful of types a
        // scan beats hashing the name.
        if self.event_types.len() <= 16 {
            return self
                .event_types
                .iter()
                .position(|t| t.name == name)
                .map(|i| i as EventTypeId);
        }
        self.event_type_index.get(name).copied()
    }

    pub fn hunt(&self, name: &str) -> Option<HuntId> {
        self.hunt_index.get(name).copied()
    }

    pub fn currency(&self, name: &str) -> Option<CurrencyId> {
        self.currencies
            .iter()
            .position(|c| c == name)
            .map(|i| i as CurrencyId)
    }

    pub fn leaderboard(&self, name: &str) -> Option<usize> {
        self.leaderboards.iter().position(|l| l.name == name)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSettings {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub partitions: Option<u32>,
    /// `[[server.api_keys]]`: who may call the HTTP API. Empty means the
    /// server binds loopback addresses only.
    pub api_keys: Vec<ApiKey>,
}

/// What an API key may do. `Admin` implies `Read` and `Ingest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Writes of player activity: `POST /v1/events`, spends.
    Ingest,
    /// Reads of players, leaderboards, hunts, views, the stream, dead letters.
    Read,
    /// Everything, including the state dump, configuration and dead-letter replay.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One `[[server.api_keys]]` entry. Only the SHA-256 of the key is stored;
/// the key itself never appears in the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub name: String,
    /// SHA-256 of the key's bytes as presented in `Authorization: Bearer`.
    pub sha256: [u8; 32],
    /// Sorted, without repeats.
    pub scopes: Vec<Scope>,
}

impl ApiKey {
    /// Whether this key may call a route that needs `needed` (admin may
    /// call everything).
    pub fn allows(&self, needed: Scope) -> bool {
        self.scopes.contains(&needed) || self.scopes.contains(&Scope::Admin)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not secret, but there is no reason to print it either.
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineSettings {
    /// How far (event time) behind a player's newest event of a type an event
    /// may arrive and still see exact rolling windows and sequence candidates.
    /// Older window entries are dropped to bound memory.
    pub lateness_ms: i64,
    /// Most unmatched candidate events kept per sequence step and player.
    pub sequence_candidates: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            lateness_ms: 86_400_000,
            sequence_candidates: 256,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EventType {
    pub name: String,
    pub fields: Vec<Field>,
    /// `extra = "allow"`: unknown data fields are accepted (and ignored).
    pub allow_extra: bool,
    pub builtin: bool,
}

impl EventType {
    pub fn field(&self, name: &str) -> Option<FieldSlot> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| i as FieldSlot)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    pub optional: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub max_len: Option<usize>,
    pub allowed: Option<Vec<Literal>>,
}

/// A literal from an `enum` list.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Literal::Str(s) => write!(f, "\"{s}\""),
            Literal::Num(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reward {
    pub points: i64,
    /// (currency, amount > 0), in configuration order.
    pub currencies: Vec<(CurrencyId, i64)>,
    pub badge: Option<BadgeId>,
}

impl Reward {
    pub fn is_empty(&self) -> bool {
        self.points == 0 && self.currencies.is_empty() && self.badge.is_none()
    }
}

#[derive(Clone, Debug)]
pub enum Trigger {
    On(EventTypeId),
    Sequence {
        steps: Vec<EventTypeId>,
        within_ms: i64,
    },
}

impl Trigger {
    /// The event type whose arrival evaluates the rule.
    pub fn event_type(&self) -> EventTypeId {
        match self {
            Trigger::On(t) => *t,
            // Invariant (checked at compile): a sequence has at least two steps.
            Trigger::Sequence { steps, .. } => steps[steps.len() - 1],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub per_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub trigger: Trigger,
    pub when: Option<Compiled>,
    pub once: bool,
    pub limit: Option<Limit>,
    pub cooldown_ms: Option<i64>,
    pub reward: Reward,
}

#[derive(Clone, Debug)]
pub struct Hunt {
    pub name: String,
    pub title: Option<String>,
    /// Inclusive start, exclusive end, in ms since the epoch.
    pub starts: Option<i64>,
    pub ends: Option<i64>,
    pub ordered: bool,
    pub stages: Vec<Stage>,
    pub completion: Option<Reward>,
    pub prize: Option<Prize>,
}

impl Hunt {
    pub fn runs_at(&self, ts: i64) -> bool {
        self.starts.is_none_or(|s| ts >= s) && self.ends.is_none_or(|e| ts < e)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prize {
    pub supply: u32,
    pub reward: Reward,
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub id: String,
    pub clue: Option<String>,
    pub kind: StageKind,
    pub reward: Option<Reward>,
    /// Bonus points for the 1st, 2nd, … solver overall, by log order.
    pub first_finders: Vec<i64>,
}

#[derive(Clone, Debug)]
pub enum StageKind {
    Solve {
        on: EventTypeId,
        when: Option<Compiled>,
    },
    Answer {
        sha256: [u8; 32],
    },
    Collect {
        on: EventTypeId,
        field: FieldSlot,
        items: Vec<String>,
    },
    /// Checked at compile time: `veltrix_puzzles::prepare` accepts it.
    Puzzle(veltrix_puzzles::PuzzleSpec),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    All,
    Day,
    Week,
}

#[derive(Clone, Debug)]
pub struct Leaderboard {
    pub name: String,
    pub hunt: Option<HuntId>,
    pub period: Period,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Dimension {
    Field(FieldSlot, String),
    Player,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    Count,
    Sum(FieldSlot, String),
    Min(FieldSlot, String),
    Max(FieldSlot, String),
}

#[derive(Clone, Debug)]
pub struct View {
    pub name: String,
    pub on: EventTypeId,
    pub group_by: Vec<Dimension>,
    pub bucket_ms: i64,
    pub measures: Vec<Measure>,
}
