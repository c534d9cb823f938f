//! A deterministic workload for Veltrix benchmarks, derived from a
//! configuration: NDJSON events that `veltrix bench`, the engine's criterion
//! benchmark and the reference stack in `bench/reference/` all replay, so
//! every comparison runs on the same bytes.
//!
//! - **Players** follow a Zipf law over `players` ranks (exponent 1.1 by
//!   default): a few players are very active, most are seen a few times.
//! - **Hunt progress**: a share of events (`hunt_percent`) moves the sampled
//!   player one step through a hunt, stage by stage in configuration order:
//!   the event that solves a `solve` stage, one event per item of a `collect`
//!   stage, the right answer of an answer stage, the player's own answer to a
//!   generated puzzle (computed with the plan's secret). One answer attempt
//!   in three is wrong first. Which events solve a stage is found once, at
//!   construction, by playing a probe player through a real
//!   [`veltrix_core::Engine`]: a stage with no solving event found is left
//!   out (and reported by [`Workload::hunt_steps`]).
//! - **Background** events cover every declared event type with data drawn
//!   from the field declarations (enums, ranges, the literals the
//!   configuration's conditions compare with), in the example's mix
//!   (30 % login, 20 % purchase, …) for the example's type names.
//! - **Duplicates** (`duplicate_percent`) are byte-identical resends of one
//!   of the last 1,024 valid events (a client retrying); **invalid** events
//!   (`invalid_percent`) break one declared constraint (a number sent as a
//!   string, a value outside an enum, an unknown event type, a missing
//!   player) and have ids of their own.
//!
//! Everything is a pure function of (configuration, puzzle secret, [`Spec`]):
//! the random numbers come from a seeded splitmix64, never from the OS or a
//! process-seeded hasher, so the same inputs give the same bytes on every
//! machine and version. No I/O: lines are appended to a caller's buffer.
//!
//! Dependencies are only crates that `veltrix-core` and `veltrix-cli` already
//! have (veltrix-config, veltrix-core, serde_json), so their benchmarks can
//! share this very file.

use std::fmt::Write as _;
use std::sync::Arc;
use veltrix_config::veltrix_expr::FieldType;
use veltrix_config::veltrix_puzzles::answer_digest;
use veltrix_config::{Config, EventType, Field, HuntId, Literal, StageIndex, StageKind};
use veltrix_core::partition::Effect;
use veltrix_core::{Engine, Ingest, Plan, Submission};

/// 2026-12-01T00:00:00Z: inside the example hunt's window.
pub const DEFAULT_START_MS: i64 = 1_796_083_200_000;

/// Plain answers of the example configuration's riddles (taken from
/// `examples/golden-compass/events.ndjson`). A configuration stores only
/// SHA-256 digests of its answers, which cannot be inverted, so answer
/// stages can only be played with answers the caller knows; each is checked
/// against the stage's digest before use.
pub const EXAMPLE_ANSWERS: &[&str] = &["keyboard"];

/// Event-type weights of the example mix, in percent; types not named here
/// get [`OTHER_TYPE_WEIGHT`].
const EXAMPLE_MIX: &[(&str, u32)] = &[
    ("login", 30),
    ("purchase", 20),
    ("location_visited", 20),
    ("item_found", 20),
    ("answer", 5),
    ("quest_done", 5),
];
const OTHER_TYPE_WEIGHT: u32 = 10;
/// Valid events remembered as candidates for duplicates (retries are recent).
const RECENT: usize = 1024;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    pub events: u64,
    pub players: usize,
    pub zipf_exponent: f64,
    /// Percent of events that repeat a recent valid event byte for byte.
    pub duplicate_percent: f64,
    /// Percent of events that fail validation.
    pub invalid_percent: f64,
    /// Percent of events that advance the sampled player's hunt progress.
    pub hunt_percent: f64,
    pub seed: u64,
    /// Event time of the first event (ms since the epoch) and the event-time
    /// step between consecutive events.
    pub start_ms: i64,
    pub step_ms: i64,
    /// Event ids are `<id_prefix><index>`.
    pub id_prefix: String,
    /// Plain answers to try on answer stages (see [`EXAMPLE_ANSWERS`]).
    pub known_answers: Vec<String>,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            events: 1_000_000,
            players: 100_000,
            zipf_exponent: 1.1,
            duplicate_percent: 1.0,
            invalid_percent: 1.0,
            hunt_percent: 20.0,
            seed: 7,
            start_ms: DEFAULT_START_MS,
            step_ms: 20,
            id_prefix: "e".to_string(),
            known_answers: EXAMPLE_ANSWERS.iter().map(|a| a.to_string()).collect(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum WorkloadError {
    NoPlayers,
    BadPercent,
    NoEventTypes,
}

impl std::fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadError::NoPlayers => "the workload needs at least one player",
            WorkloadError::BadPercent => {
                "percentages must lie in 0..=100, and duplicates + invalid at most 100"
            }
            WorkloadError::NoEventTypes => {
                "the configuration declares no event type the workload can generate"
            }
        })
    }
}

impl std::error::Error for WorkloadError {}

/// What one generated line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A new, valid event (a background event or a hunt step).
    Valid,
    /// A byte-identical resend of an earlier valid event.
    Duplicate,
    /// An event that validation rejects.
    Invalid,
}

/// Counts of what a generator produced so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub valid: u64,
    pub duplicates: u64,
    pub invalid: u64,
    /// Valid events that were hunt steps (a subset of `valid`).
    pub hunt_steps: u64,
    /// Hunt steps that solved a stage (by construction; the engine decides).
    pub stage_steps: u64,
}

/// One event to render: its type name and its `data` object as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template {
    kind: String,
    data: String,
}

/// How the workload plays one stage.
#[derive(Clone, Debug)]
enum StageScript {
    /// These events, in order, solve the stage (an answer stage's script is
    /// its right answer; a collect stage's, one event per item).
    Events { events: Vec<Template>, answer: bool },
    /// A generated puzzle: the player's own answer, computed when needed.
    Puzzle { stage: StageIndex },
}

#[derive(Clone, Debug)]
struct HuntScript {
    hunt: HuntId,
    name: String,
    stages: Vec<(String, StageScript)>,
}

#[derive(Clone, Debug)]
struct FieldGen {
    /// JSON-encoded key, with quotes.
    key: String,
    optional: bool,
    values: Values,
}

#[derive(Clone, Debug)]
enum Values {
    /// JSON texts to choose from.
    Choice(Vec<String>),
    /// An integer in `lo..=hi`.
    Range(i64, i64),
    Bool,
}

#[derive(Clone, Debug)]
struct TypeGen {
    name: String,
    fields: Vec<FieldGen>,
}

/// A way to make an event invalid.
#[derive(Clone, Debug)]
enum Breakage {
    /// The type, the JSON-encoded field key of a number field.
    NumberAsText(String, String),
    /// The type, the JSON-encoded field key of an enum field.
    OutsideEnum(String, String),
    UnknownType(String),
    MissingPlayer(String),
}

/// A workload compiled from a configuration: hunt scripts, background
/// generators and the Zipf table. Cheap to turn into many [`Generator`]s.
pub struct Workload {
    plan: Arc<Plan>,
    spec: Spec,
    scripts: Vec<HuntScript>,
    background: Vec<TypeGen>,
    /// Cumulative weights over `background`, then the background answers.
    weights: Vec<u32>,
    answer_targets: Vec<(String, String)>,
    breakages: Vec<Breakage>,
    zipf: Vec<f64>,
}

impl Workload {
    pub fn new(plan: Arc<Plan>, spec: Spec) -> Result<Workload, WorkloadError> {
        if spec.players == 0 {
            return Err(WorkloadError::NoPlayers);
        }
        let percent_ok = |p: f64| (0.0..=100.0).contains(&p);
        if !percent_ok(spec.duplicate_percent)
            || !percent_ok(spec.invalid_percent)
            || !percent_ok(spec.hunt_percent)
            || spec.duplicate_percent + spec.invalid_percent > 100.0
        {
            return Err(WorkloadError::BadPercent);
        }
        let config = plan.config.clone();
        let background: Vec<TypeGen> = config
            .event_types
            .iter()
            .filter(|t| !t.builtin)
            .map(|t| type_gen(&config, t))
            .collect();
        let answer_targets: Vec<(String, String)> = config
            .hunts
            .iter()
            .flat_map(|h| {
                h.stages
                    .iter()
                    .filter(|s| matches!(s.kind, StageKind::Answer { .. } | StageKind::Puzzle(_)))
                    .map(move |s| (json_string(&h.name), json_string(&s.id)))
            })
            .collect();
        let mut weights = Vec::new();
        let mut total = 0;
        for t in &background {
            total += weight_of(&t.name);
            weights.push(total);
        }
        if !answer_targets.is_empty() {
            total += weight_of(veltrix_config::ANSWER_TYPE);
            weights.push(total);
        }
        if total == 0 {
            return Err(WorkloadError::NoEventTypes);
        }
        let breakages = breakages(&config);
        let zipf = zipf_cdf(spec.players, spec.zipf_exponent);
        let mut workload = Workload {
            plan,
            spec,
            scripts: Vec::new(),
            background,
            weights,
            answer_targets,
            breakages,
            zipf,
        };
        workload.scripts = (0..config.hunts.len() as HuntId)
            .map(|h| workload.probe_hunt(h))
            .filter(|s| !s.stages.is_empty())
            .collect();
        Ok(workload)
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    pub fn plan(&self) -> &Arc<Plan> {
        &self.plan
    }

    /// The stages the workload plays, per hunt, in order ("hunt/stage").
    /// Stages for which no solving event was found are missing.
    pub fn hunt_steps(&self) -> Vec<String> {
        self.scripts
            .iter()
            .flat_map(|s| s.stages.iter().map(|(id, _)| format!("{}/{id}", s.name)))
            .collect()
    }

    pub fn generator(&self) -> Generator<'_> {
        let hunts = self.scripts.len();
        Generator {
            workload: self,
            rng: Rng::new(self.spec.seed),
            index: 0,
            progress: vec![Cursor::default(); self.spec.players * hunts],
            recent: Vec::with_capacity(RECENT),
            recent_next: 0,
            counts: Counts::default(),
            scratch: String::new(),
        }
    }

    /// All lines of the workload as one NDJSON buffer (each line ends in
    /// `\n`), with the counts.
    pub fn ndjson(&self) -> (Vec<u8>, Counts) {
        let mut out = Vec::with_capacity(self.spec.events as usize * 110);
        let mut generator = self.generator();
        while generator.next_line(&mut out).is_some() {}
        (out, generator.counts())
    }

    /// Finds, for each stage of a hunt, the events that solve it, by playing
    /// a probe player through a real engine.
    fn probe_hunt(&self, hunt_id: HuntId) -> HuntScript {
        let config = &self.plan.config;
        let hunt = &config.hunts[hunt_id as usize];
        let mut script = HuntScript {
            hunt: hunt_id,
            name: hunt.name.clone(),
            stages: Vec::new(),
        };
        let mut probe = Probe::new(self.plan.clone(), hunt.starts.unwrap_or(self.spec.start_ms));
        for (index, stage) in hunt.stages.iter().enumerate() {
            let index = index as StageIndex;
            let candidates: Vec<StageScript> = match &stage.kind {
                StageKind::Solve { on, when } => {
                    let kind = &config.event_types[*on as usize];
                    let literals = when.as_ref().map(|w| literals(w.source()));
                    solve_candidates(config, kind, literals.as_deref().unwrap_or(&[]))
                        .into_iter()
                        .map(|t| StageScript::Events {
                            events: vec![t],
                            answer: false,
                        })
                        .collect()
                }
                StageKind::Answer { sha256 } => self
                    .spec
                    .known_answers
                    .iter()
                    .filter(|a| answer_digest(a) == *sha256)
                    .map(|a| StageScript::Events {
                        events: vec![answer_template(&hunt.name, &stage.id, a)],
                        answer: true,
                    })
                    .collect(),
                StageKind::Collect { on, field, items } => {
                    let kind = &config.event_types[*on as usize];
                    let events = items
                        .iter()
                        .map(|item| Template {
                            kind: kind.name.clone(),
                            data: data_with(config, kind, *field as usize, &json_string(item)),
                        })
                        .collect();
                    vec![StageScript::Events {
                        events,
                        answer: false,
                    }]
                }
                StageKind::Puzzle(_) => vec![StageScript::Puzzle { stage: index }],
            };
            let solved = candidates.into_iter().find(|candidate| {
                let events = self.script_events(hunt_id, candidate, Probe::PLAYER);
                probe.solves(&events, hunt_id, index)
            });
            match solved {
                Some(candidate) => script.stages.push((stage.id.clone(), candidate)),
                // Later stages of an ordered hunt cannot be reached.
                None if hunt.ordered => break,
                None => {}
            }
        }
        script
    }

    /// The events a stage script sends for `player`.
    fn script_events(&self, hunt: HuntId, script: &StageScript, player: &str) -> Vec<Template> {
        match script {
            StageScript::Events { events, .. } => events.clone(),
            StageScript::Puzzle { stage } => {
                vec![self.puzzle_answer(hunt, *stage, player)]
            }
        }
    }

    fn puzzle_answer(&self, hunt: HuntId, stage: StageIndex, player: &str) -> Template {
        let config = &self.plan.config;
        let h = &config.hunts[hunt as usize];
        let answer = veltrix_core::puzzles::puzzle_instance(&self.plan, hunt, stage, player)
            .and_then(Result::ok)
            .map(|i| i.answer)
            .unwrap_or_default();
        answer_template(&h.name, &h.stages[stage as usize].id, &answer)
    }
}

/// A player playing through a real engine, to find which events solve a
/// stage.
struct Probe {
    plan: Arc<Plan>,
    ingest: Ingest,
    engine: Engine,
    ts: i64,
    line: Vec<u8>,
}

impl Probe {
    const PLAYER: &'static str = "workload-probe";

    fn new(plan: Arc<Plan>, ts: i64) -> Probe {
        Probe {
            ingest: Ingest::new(),
            engine: Engine::new(plan.clone(), 1),
            plan,
            ts,
            line: Vec::new(),
        }
    }

    /// Sends the events; true when one of them solved the stage.
    fn solves(&mut self, events: &[Template], hunt: HuntId, stage: StageIndex) -> bool {
        let mut solved = false;
        for template in events {
            self.line.clear();
            let id = format!("probe-{}", self.ingest.next_seq);
            render(&mut self.line, &id, Self::PLAYER, self.ts, template);
            self.ts += 1000;
            let Submission::Accepted { seq, event } =
                self.ingest.submit(&self.plan, &self.line, 1, self.ts)
            else {
                return false;
            };
            solved |= self.engine.apply_event(seq, &event).iter().any(|e| {
                matches!(e, Effect::StageSolved { hunt: h, stage: s, .. } if *h == hunt && *s == stage)
            });
        }
        solved
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    /// Index into the hunt script's stages.
    stage: u16,
    /// Next event of a multi-event stage.
    step: u16,
}

/// Produces the workload's lines one at a time.
pub struct Generator<'a> {
    workload: &'a Workload,
    rng: Rng,
    index: u64,
    /// Per player, per hunt script.
    progress: Vec<Cursor>,
    recent: Vec<Vec<u8>>,
    recent_next: usize,
    counts: Counts,
    scratch: String,
}

impl Generator<'_> {
    /// Appends the next line (ending in `\n`) to `out`; None when the
    /// workload's `events` have all been produced.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> Option<Class> {
        let spec = &self.workload.spec;
        if self.index >= spec.events {
            return None;
        }
        let i = self.index;
        self.index += 1;
        let ts = spec.start_ms + i as i64 * spec.step_ms;
        let roll = self.rng.unit() * 100.0;
        if roll < spec.duplicate_percent && !self.recent.is_empty() {
            let pick = self.rng.below(self.recent.len() as u64) as usize;
            out.extend_from_slice(&self.recent[pick]);
            self.counts.duplicates += 1;
            return Some(Class::Duplicate);
        }
        let start = out.len();
        let player = self.sample_player();
        self.scratch.clear();
        let _ = write!(self.scratch, "{}{i}", spec.id_prefix);
        let id = std::mem::take(&mut self.scratch);
        let class = if roll < spec.duplicate_percent + spec.invalid_percent {
            self.invalid(out, &id, player, ts);
            self.counts.invalid += 1;
            Class::Invalid
        } else {
            let hunt_roll = self.rng.unit() * 100.0;
            if !(hunt_roll < spec.hunt_percent && self.hunt_step(out, &id, player, ts)) {
                self.background(out, &id, player, ts);
            }
            self.counts.valid += 1;
            Class::Valid
        };
        self.scratch = id;
        out.push(b'\n');
        if class == Class::Valid {
            let line = &out[start..];
            if self.recent.len() < RECENT {
                self.recent.push(line.to_vec());
            } else {
                let slot = &mut self.recent[self.recent_next];
                slot.clear();
                slot.extend_from_slice(line);
                self.recent_next = (self.recent_next + 1) % RECENT;
            }
        }
        Some(class)
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    fn sample_player(&mut self) -> usize {
        let u = self.rng.unit();
        let cdf = &self.workload.zipf;
        cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
    }

    /// Sends the player's next hunt step; false when the player has finished
    /// every hunt the workload plays.
    fn hunt_step(&mut self, out: &mut Vec<u8>, id: &str, player: usize, ts: i64) -> bool {
        let workload = self.workload;
        let hunts = workload.scripts.len();
        if hunts == 0 {
            return false;
        }
        let first = self.rng.below(hunts as u64) as usize;
        for k in 0..hunts {
            let h = (first + k) % hunts;
            let script = &workload.scripts[h];
            let cursor = self.progress[player * hunts + h];
            let Some((_, stage)) = script.stages.get(cursor.stage as usize) else {
                continue;
            };
            let name = player_name(player);
            let (template, done) = match stage {
                StageScript::Events { events, answer } => {
                    if *answer && self.rng.below(3) == 0 {
                        (wrong_answer(&events[0], self.rng.below(1000)), false)
                    } else {
                        let step = (cursor.step as usize).min(events.len() - 1);
                        (events[step].clone(), step + 1 == events.len())
                    }
                }
                StageScript::Puzzle { stage } => {
                    let right = workload.puzzle_answer(script.hunt, *stage, &name);
                    if self.rng.below(3) == 0 {
                        (wrong_answer(&right, self.rng.below(1000)), false)
                    } else {
                        (right, true)
                    }
                }
            };
            render(out, id, &name, ts, &template);
            let cursor = &mut self.progress[player * hunts + h];
            if done {
                cursor.stage += 1;
                cursor.step = 0;
                self.counts.stage_steps += 1;
            } else if matches!(stage, StageScript::Events { answer: false, .. }) {
                cursor.step += 1;
            }
            self.counts.hunt_steps += 1;
            return true;
        }
        false
    }

    fn background(&mut self, out: &mut Vec<u8>, id: &str, player: usize, ts: i64) {
        let workload = self.workload;
        let total = *workload.weights.last().unwrap_or(&1);
        let pick = self.rng.below(total as u64) as u32;
        let index = workload.weights.partition_point(|&w| w <= pick);
        let name = player_name(player);
        let template = match workload.background.get(index) {
            Some(kind) => Template {
                kind: kind.name.clone(),
                data: self.data_for(kind),
            },
            None => {
                // An answer to some answer or puzzle stage: mostly wrong,
                // sometimes a stage that is not active for the player.
                let (hunt, stage) = &workload.answer_targets
                    [self.rng.below(workload.answer_targets.len() as u64) as usize];
                Template {
                    kind: veltrix_config::ANSWER_TYPE.to_string(),
                    data: format!(
                        "{{\"hunt\":{hunt},\"stage\":{stage},\"answer\":\"guess {}\"}}",
                        self.rng.below(50)
                    ),
                }
            }
        };
        render(out, id, &name, ts, &template);
    }

    fn data_for(&mut self, kind: &TypeGen) -> String {
        let mut data = String::from("{");
        for field in &kind.fields {
            if field.optional && self.rng.below(5) == 0 {
                continue;
            }
            if data.len() > 1 {
                data.push(',');
            }
            data.push_str(&field.key);
            data.push(':');
            match &field.values {
                Values::Choice(values) => {
                    data.push_str(&values[self.rng.below(values.len() as u64) as usize])
                }
                Values::Range(lo, hi) => {
                    let span = (hi - lo) as u64 + 1;
                    let _ = write!(data, "{}", lo + self.rng.below(span) as i64);
                }
                Values::Bool => data.push_str(if self.rng.below(2) == 0 {
                    "true"
                } else {
                    "false"
                }),
            }
        }
        data.push('}');
        data
    }

    fn invalid(&mut self, out: &mut Vec<u8>, id: &str, player: usize, ts: i64) {
        let breakages = &self.workload.breakages;
        let name = player_name(player);
        let breakage = &breakages[self.rng.below(breakages.len() as u64) as usize];
        let _ = match breakage {
            Breakage::NumberAsText(kind, key) => write!(
                Out(out),
                "{{\"id\":\"{id}\",\"player\":\"{name}\",\"type\":{kind},\"ts\":{ts},\"data\":{{{key}:\"ten\"}}}}"
            ),
            Breakage::OutsideEnum(kind, key) => write!(
                Out(out),
                "{{\"id\":\"{id}\",\"player\":\"{name}\",\"type\":{kind},\"ts\":{ts},\"data\":{{{key}:\"not-an-option\"}}}}"
            ),
            Breakage::UnknownType(kind) => write!(
                Out(out),
                "{{\"id\":\"{id}\",\"player\":\"{name}\",\"type\":{kind},\"ts\":{ts}}}"
            ),
            Breakage::MissingPlayer(kind) => {
                write!(Out(out), "{{\"id\":\"{id}\",\"type\":{kind},\"ts\":{ts}}}")
            }
        };
    }
}

/// `fmt::Write` into a byte buffer.
struct Out<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn render(out: &mut Vec<u8>, id: &str, player: &str, ts: i64, t: &Template) {
    let _ = write!(
        Out(out),
        "{{\"id\":\"{id}\",\"player\":\"{player}\",\"type\":{},\"ts\":{ts},\"data\":{}}}",
        json_string(&t.kind),
        t.data
    );
}

/// Player names: `p<rank>`, rank 0 the most active.
pub fn player_name(rank: usize) -> String {
    format!("p{rank}")
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_string())
}

fn answer_template(hunt: &str, stage: &str, answer: &str) -> Template {
    Template {
        kind: veltrix_config::ANSWER_TYPE.to_string(),
        data: format!(
            "{{\"hunt\":{},\"stage\":{},\"answer\":{}}}",
            json_string(hunt),
            json_string(stage),
            json_string(answer)
        ),
    }
}

/// The same answer event with a wrong answer.
fn wrong_answer(right: &Template, n: u64) -> Template {
    let cut = right.data.rfind("\"answer\":").unwrap_or(right.data.len());
    Template {
        kind: right.kind.clone(),
        data: format!("{}\"answer\":\"wrong {n}\"}}", &right.data[..cut]),
    }
}

fn weight_of(kind: &str) -> u32 {
    EXAMPLE_MIX
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(OTHER_TYPE_WEIGHT, |(_, w)| *w)
}

/// String and number literals of a condition's source text.
fn literals(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' || c == b'"' {
            if let Some(end) = source[i + 1..].find(c as char) {
                found.push(source[i + 1..i + 1 + end].to_string());
                i += end + 2;
                continue;
            }
            break;
        }
        i += 1;
    }
    found
}

/// Values a field takes in background events.
fn field_gen(config: &Config, kind: &EventType, field: &Field) -> FieldGen {
    let values = match (&field.allowed, field.ty) {
        (Some(allowed), _) => Values::Choice(
            allowed
                .iter()
                .map(|l| match l {
                    Literal::Str(s) => json_string(s),
                    Literal::Num(n) => format!("{n}"),
                    Literal::Bool(b) => format!("{b}"),
                })
                .collect(),
        ),
        (None, FieldType::Bool) => Values::Bool,
        (None, FieldType::Int | FieldType::Double) => {
            let lo = field.min.map_or(0, |m| m.ceil() as i64).max(i64::MIN / 4);
            let lo = if field.min.is_none() { 1 } else { lo };
            let hi = field.max.map_or(lo + 119, |m| m.floor() as i64).max(lo);
            Values::Range(lo, hi)
        }
        (None, _) => {
            // The literals the configuration compares this type's events
            // with, plus as many values that match nothing.
            let mut pool: Vec<String> = condition_literals(config, kind)
                .into_iter()
                .filter(|l| field.max_len.is_none_or(|m| l.len() <= m))
                .collect();
            pool.sort();
            pool.dedup();
            let others = pool.len().max(4);
            let stem: String = field.name.chars().take(12).collect();
            pool.extend((0..others).map(|n| format!("{stem}{n}")));
            Values::Choice(pool.iter().map(|s| json_string(s)).collect())
        }
    };
    FieldGen {
        key: json_string(&field.name),
        optional: field.optional,
        values,
    }
}

fn type_gen(config: &Config, kind: &EventType) -> TypeGen {
    TypeGen {
        name: kind.name.clone(),
        fields: kind
            .fields
            .iter()
            .map(|f| field_gen(config, kind, f))
            .collect(),
    }
}

/// String literals of every condition evaluated on events of `kind`.
fn condition_literals(config: &Config, kind: &EventType) -> Vec<String> {
    let Some(id) = config.event_type(&kind.name) else {
        return Vec::new();
    };
    let rules = config
        .rules
        .iter()
        .filter(|r| r.trigger.event_type() == id)
        .filter_map(|r| r.when.as_ref());
    let stages = config
        .hunts
        .iter()
        .flat_map(|h| &h.stages)
        .filter_map(|s| match &s.kind {
            StageKind::Solve { on, when } if *on == id => when.as_ref(),
            _ => None,
        });
    rules
        .chain(stages)
        .flat_map(|w| literals(w.source()))
        .filter(|l| !config.event_types.iter().any(|t| t.name == *l))
        .collect()
}

/// A `data` object with every required field at its first value and
/// `field` set to `value` (JSON text).
fn data_with(config: &Config, kind: &EventType, field: usize, value: &str) -> String {
    let mut data = String::from("{");
    for (index, f) in kind.fields.iter().enumerate() {
        let text = if index == field {
            value.to_string()
        } else if f.optional {
            continue;
        } else {
            first_value(&field_gen(config, kind, f).values)
        };
        if data.len() > 1 {
            data.push(',');
        }
        let _ = write!(data, "{}:{text}", json_string(&f.name));
    }
    data.push('}');
    data
}

fn first_value(values: &Values) -> String {
    match values {
        Values::Choice(v) => v.first().cloned().unwrap_or_else(|| "\"\"".to_string()),
        Values::Range(lo, _) => lo.to_string(),
        Values::Bool => "true".to_string(),
    }
}

/// Events of `kind` that might satisfy a condition with these literals: each
/// field in turn set to each literal or enum value that fits it.
fn solve_candidates(config: &Config, kind: &EventType, literals: &[String]) -> Vec<Template> {
    let mut out = vec![Template {
        kind: kind.name.clone(),
        data: data_with(config, kind, usize::MAX, ""),
    }];
    for (index, field) in kind.fields.iter().enumerate() {
        let mut values: Vec<String> = match field.ty {
            FieldType::String => literals.iter().map(|l| json_string(l)).collect(),
            FieldType::Int | FieldType::Double => literals
                .iter()
                .filter_map(|l| l.parse::<f64>().ok())
                .flat_map(|n| [n, n + 1.0])
                .map(|n| format!("{n}"))
                .collect(),
            _ => vec!["true".to_string(), "false".to_string()],
        };
        if let Values::Choice(choices) = field_gen(config, kind, field).values {
            values.extend(choices);
        }
        for value in values.into_iter().take(64) {
            out.push(Template {
                kind: kind.name.clone(),
                data: data_with(config, kind, index, &value),
            });
        }
    }
    out
}

fn breakages(config: &Config) -> Vec<Breakage> {
    let mut out = Vec::new();
    for kind in config.event_types.iter().filter(|t| !t.builtin) {
        let name = json_string(&kind.name);
        for field in &kind.fields {
            let key = json_string(&field.name);
            if matches!(field.ty, FieldType::Int | FieldType::Double) {
                out.push(Breakage::NumberAsText(name.clone(), key.clone()));
            }
            if field.allowed.is_some() {
                out.push(Breakage::OutsideEnum(name.clone(), key));
            }
        }
    }
    if let Some(first) = config.event_types.iter().find(|t| !t.builtin) {
        // A misspelt type name (doubled last letter).
        let mut typo = first.name.clone();
        if let Some(last) = typo.chars().last() {
            typo.push(last);
        }
        if config.event_type(&typo).is_none() {
            out.push(Breakage::UnknownType(json_string(&typo)));
        }
        out.push(Breakage::MissingPlayer(json_string(&first.name)));
    }
    if out.is_empty() {
        out.push(Breakage::MissingPlayer(json_string(
            veltrix_config::ANSWER_TYPE,
        )));
    }
    out
}

/// Cumulative distribution of Zipf(s) over ranks 1..=n: the first index
/// whose value is at least a uniform draw in [0, 1) is a Zipf-distributed
/// rank (0-based).
pub fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut total = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|k| {
            total += 1.0 / (k as f64).powf(s);
            total
        })
        .collect();
    cdf.iter_mut().for_each(|c| *c /= total);
    cdf
}

/// splitmix64: a fixed algorithm, so a seed gives the same stream forever.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n ≥ 1; the modulo bias is below 2^-40 for the
    /// sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod unit {
    #[test]
    fn literals_of_a_condition() {
        assert_eq!(
            super::literals("event.place == 'harbor' || event.x == \"a b\" && y > 3"),
            ["harbor", "a b"]
        );
    }
}
