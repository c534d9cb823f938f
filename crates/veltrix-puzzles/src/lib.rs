//! Seeded per-player puzzle generators with uniqueness-proving solvers.
//!
//! Given (hunt, stage, player, server secret) and a stage's [`PuzzleSpec`],
//! [`generate`] returns the player's [`Instance`]: the text the player reads and
//! the SHA-256 of the normalized answer the engine checks. The same inputs give
//! the same instance on every machine and run; different players almost always
//! get different instances.
//!
//! Architecture invariants:
//! - No I/O, no clock, no OS randomness, no `RandomState`: an instance is a
//!   pure function of its inputs (see [`generate`] for the derivation).
//! - Every instance handed out was proven by its kind's solver to have exactly
//!   one solution; an instance that fails is replaced by the next derivation,
//!   and the number of rejections is reported in the instance.
//! - Generation is bounded: at most [`MAX_DERIVATIONS`] derivations, each with
//!   bounded work; exhaustion is an error, never a hang.
//! - The plain answer exists only in [`Instance::answer`], whose `Debug`
//!   output redacts it.

mod anagram;
mod caesar;
mod derive;
mod dictionary;
mod normalize;
pub mod sudoku;

use std::fmt;
use std::str::FromStr;

pub use normalize::{answer_digest, normalize_answer};
pub use sudoku::Difficulty;

/// Derivations tried per request before giving up. With a word list in which
/// at least one word in four has a unique instance, all 64 fail with
/// probability below 2^-26; sudoku rejection rates are measured in README.md.
pub const MAX_DERIVATIONS: u32 = 64;

/// The shipped English word list (sorted, lowercase a–z): every caesar and
/// anagram instance is checked against it as well as the stage's own words.
pub fn shipped_words() -> &'static [&'static str] {
    dictionary::shipped().words()
}

/// Bounds on stage word lists, so validation and generation stay cheap.
pub const MAX_WORDS: usize = 10_000;
pub const MIN_WORD_LETTERS: usize = 3;
pub const MAX_WORD_LETTERS: usize = 32;

/// The one difficulty of the word kinds.
const STANDARD: &str = "standard";

/// The kinds of generated puzzle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PuzzleKind {
    Caesar,
    Anagram,
    Sudoku,
}

impl PuzzleKind {
    pub const ALL: [PuzzleKind; 3] = [PuzzleKind::Caesar, PuzzleKind::Anagram, PuzzleKind::Sudoku];

    pub fn as_str(self) -> &'static str {
        match self {
            PuzzleKind::Caesar => "caesar",
            PuzzleKind::Anagram => "anagram",
            PuzzleKind::Sudoku => "sudoku",
        }
    }

    /// Whether the kind draws from the stage's `words`.
    pub fn uses_words(self) -> bool {
        matches!(self, PuzzleKind::Caesar | PuzzleKind::Anagram)
    }
}

impl fmt::Display for PuzzleKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// An unknown puzzle kind name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown puzzle kind {found:?}: expected one of caesar, anagram, sudoku")]
pub struct UnknownKind {
    pub found: String,
}

impl FromStr for PuzzleKind {
    type Err = UnknownKind;

    fn from_str(name: &str) -> Result<PuzzleKind, UnknownKind> {
        PuzzleKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownKind {
                found: name.to_owned(),
            })
    }
}

/// A stage's `puzzle = {…}` table as written in TOML, e.g.
/// `{ kind = "caesar", words = [...] }` or
/// `{ kind = "sudoku", size = 6, difficulty = "hard" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PuzzleSpec {
    pub kind: PuzzleKind,
    /// Caesar and anagram: the words to draw from. Sudoku: must be empty.
    pub words: Vec<String>,
    /// Sudoku: "easy" | "medium" | "hard" (default "medium"). Word kinds:
    /// omitted or "standard".
    pub difficulty: Option<String>,
    /// Sudoku: 4, 6 or 9 (default 9). Word kinds: omitted.
    pub size: Option<u32>,
}

/// One problem with a [`PuzzleSpec`], naming the TOML key it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("puzzle.{key}: {message}")]
pub struct SpecError {
    /// "kind" | "words" | "difficulty" | "size".
    pub key: &'static str,
    pub message: String,
    pub help: Option<String>,
}

impl SpecError {
    fn new(key: &'static str, message: String, help: Option<String>) -> SpecError {
        SpecError { key, message, help }
    }
}

/// Who an instance is for. `secret` is the server secret: without it, nobody
/// can derive another player's instance.
#[derive(Clone, Copy)]
pub struct PuzzleRequest<'a> {
    pub hunt: &'a str,
    pub stage: &'a str,
    pub player: &'a str,
    pub secret: &'a [u8],
}

impl fmt::Debug for PuzzleRequest<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PuzzleRequest")
            .field("hunt", &self.hunt)
            .field("stage", &self.stage)
            .field("player", &self.player)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What the solver measured while proving uniqueness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SolverStats {
    /// Caesar: rotations tried (26). Anagram: words compared. Sudoku easy and
    /// medium: cells placed by singles; hard: search nodes of the proof.
    pub nodes: u64,
    /// "all-shifts", "letter-multiset", "naked-singles", "hidden-singles" or
    /// "search".
    pub technique: String,
}

/// The puzzle's data without its answer, for callers that render it
/// themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PuzzleData {
    /// Uppercase ciphertext.
    Caesar { ciphertext: String },
    /// Uppercase scrambled letters.
    Anagram { letters: String },
    /// Row-major givens (0 = blank) and the 0-based row whose digits answer.
    Sudoku {
        size: u32,
        givens: Vec<u8>,
        answer_row: u32,
    },
}

/// One player's puzzle instance.
#[derive(Clone, PartialEq, Eq)]
pub struct Instance {
    pub kind: PuzzleKind,
    /// "standard" for word kinds; the sudoku difficulty otherwise.
    pub difficulty: String,
    /// What the player reads, rules and answer format included.
    pub text: String,
    pub data: PuzzleData,
    /// Normalized plain answer: callers must never log or serve it except an
    /// explicit operator reveal. `Debug` redacts it.
    pub answer: String,
    /// `answer_digest(answer)`.
    pub answer_sha256: [u8; 32],
    /// Derivations rejected by the solver before this one was accepted.
    pub rejected_derivations: u32,
    pub solver: SolverStats,
}

impl fmt::Debug for Instance {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Instance")
            .field("kind", &self.kind)
            .field("difficulty", &self.difficulty)
            .field("text", &self.text)
            .field("data", &self.data)
            .field("answer", &"<redacted>")
            .field("answer_sha256", &hex::encode(self.answer_sha256))
            .field("rejected_derivations", &self.rejected_derivations)
            .field("solver", &self.solver)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid puzzle spec: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidSpec { errors: Vec<SpecError> },
    #[error("no {kind} instance with exactly one solution in {derivations} derivations")]
    Exhausted { kind: PuzzleKind, derivations: u32 },
}

/// A kind's proposal for one derivation, before it gets its digest.
pub(crate) struct Candidate {
    pub(crate) difficulty: String,
    pub(crate) text: String,
    pub(crate) answer: String,
    pub(crate) data: PuzzleData,
    pub(crate) solver: SolverStats,
}

pub(crate) enum Attempt {
    Accepted(Candidate),
    Rejected,
}

/// What a spec resolves to once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    Words {
        kind: PuzzleKind,
        words: Vec<String>,
    },
    Sudoku {
        size: u32,
        difficulty: Difficulty,
    },
}

/// Generates the instance for `req` deterministically.
///
/// Derivation k (k = 0, 1, …) seeds xoshiro256** with
/// SHA-256("veltrix-puzzles/instance/v1", secret, hunt, stage, player), each
/// field prefixed by its length as u64 LE, followed by k as u32 LE. The first
/// derivation whose candidate the kind's solver proves unique is returned.
pub fn generate(spec: &PuzzleSpec, req: &PuzzleRequest) -> Result<Instance, GenerateError> {
    prepare(spec)?.generate(req)
}

/// A spec whose structural checks passed and whose words are normalized, to
/// generate many players' instances without redoing that per request (it is
/// O(words), which matters for long word lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedSpec {
    kind: PuzzleKind,
    plan: Plan,
}

/// Checks and normalizes a spec once; `prepare(spec)?.generate(req)` equals
/// `generate(spec, req)`.
pub fn prepare(spec: &PuzzleSpec) -> Result<PreparedSpec, GenerateError> {
    let plan = plan(spec).map_err(|errors| GenerateError::InvalidSpec { errors })?;
    Ok(PreparedSpec {
        kind: spec.kind,
        plan,
    })
}

impl PreparedSpec {
    pub fn kind(&self) -> PuzzleKind {
        self.kind
    }

    /// Generates the instance for `req`; see [`generate`].
    pub fn generate(&self, req: &PuzzleRequest) -> Result<Instance, GenerateError> {
        let plan = &self.plan;
        let set = dictionary::WordSet {
            stage: match plan {
                Plan::Words { words, .. } => words,
                Plan::Sudoku { .. } => &[],
            },
            shipped: dictionary::shipped(),
        };
        for derivation in 0..MAX_DERIVATIONS {
            let seed =
                derive::instance_seed(req.secret, req.hunt, req.stage, req.player, derivation);
            let mut rng = derive::Rng::from_seed(seed);
            let attempt = match plan {
                Plan::Words {
                    kind: PuzzleKind::Caesar,
                    words,
                } => caesar::attempt(words, &set, &mut rng),
                Plan::Words { words, .. } => anagram::attempt(words, &set, &mut rng),
                Plan::Sudoku { size, difficulty } => sudoku::attempt(*size, *difficulty, &mut rng),
            };
            if let Attempt::Accepted(candidate) = attempt {
                let answer_sha256 = normalize::digest_normalized(&candidate.answer);
                return Ok(Instance {
                    kind: self.kind,
                    difficulty: candidate.difficulty,
                    text: candidate.text,
                    data: candidate.data,
                    answer: candidate.answer,
                    answer_sha256,
                    rejected_derivations: derivation,
                    solver: candidate.solver,
                });
            }
        }
        Err(GenerateError::Exhausted {
            kind: self.kind,
            derivations: MAX_DERIVATIONS,
        })
    }
}

/// The structural checks `generate` needs (cheap: no uniqueness analysis).
fn plan(spec: &PuzzleSpec) -> Result<Plan, Vec<SpecError>> {
    let mut errors = Vec::new();
    let plan = if spec.kind.uses_words() {
        check_word_kind_settings(spec, &mut errors);
        let words = normalized_words(&spec.words, &mut errors);
        Plan::Words {
            kind: spec.kind,
            words,
        }
    } else {
        let (size, difficulty) = check_sudoku_settings(spec, &mut errors);
        Plan::Sudoku {
            size,
            difficulty: difficulty.unwrap_or(sudoku::DEFAULT_DIFFICULTY),
        }
    };
    if errors.is_empty() {
        Ok(plan)
    } else {
        Err(errors)
    }
}

fn check_word_kind_settings(spec: &PuzzleSpec, errors: &mut Vec<SpecError>) {
    if let Some(size) = spec.size {
        errors.push(SpecError::new(
            "size",
            format!("{} puzzles have no size (got {size})", spec.kind),
            Some("remove `size`; it applies to sudoku only".to_owned()),
        ));
    }
    if let Some(difficulty) = &spec.difficulty
        && difficulty != STANDARD
    {
        errors.push(SpecError::new(
            "difficulty",
            format!("{} puzzles have no difficulty {difficulty:?}", spec.kind),
            Some(format!("remove `difficulty` or set it to \"{STANDARD}\"")),
        ));
    }
}

/// Returns (size, difficulty) with defaults applied where the spec is valid.
fn check_sudoku_settings(
    spec: &PuzzleSpec,
    errors: &mut Vec<SpecError>,
) -> (u32, Option<Difficulty>) {
    if !spec.words.is_empty() {
        errors.push(SpecError::new(
            "words",
            "sudoku puzzles take no word list".to_owned(),
            Some("remove `words`; it applies to caesar and anagram".to_owned()),
        ));
    }
    let sizes: Vec<String> = sudoku::OFFERED
        .iter()
        .map(|(size, _)| size.to_string())
        .collect();
    let size = spec.size.unwrap_or(sudoku::DEFAULT_SIZE);
    let offered = sudoku::OFFERED.iter().find(|(offered, _)| *offered == size);
    if offered.is_none() {
        errors.push(SpecError::new(
            "size",
            format!("sudoku size {size} is not offered"),
            Some(format!("valid sizes: {}", sizes.join(", "))),
        ));
    }
    let difficulty = match spec.difficulty.as_deref() {
        None => Some(sudoku::DEFAULT_DIFFICULTY),
        Some(name) => {
            let parsed = Difficulty::parse(name);
            if parsed.is_none() {
                errors.push(SpecError::new(
                    "difficulty",
                    format!("unknown sudoku difficulty {name:?}"),
                    Some("valid difficulties: easy, medium, hard".to_owned()),
                ));
            }
            parsed
        }
    };
    if let (Some((_, difficulties)), Some(difficulty)) = (offered, difficulty)
        && !difficulties.contains(&difficulty)
    {
        let valid: Vec<&str> = difficulties
            .iter()
            .map(|difficulty| difficulty.as_str())
            .collect();
        errors.push(SpecError::new(
            "difficulty",
            format!(
                "sudoku size {size} does not offer difficulty \"{}\"",
                difficulty.as_str()
            ),
            Some(format!(
                "valid difficulties for size {size}: {}",
                valid.join(", ")
            )),
        ));
    }
    (size, difficulty)
}

/// Normalizes the stage words, reporting empty lists, non-letters, lengths
/// and duplicates.
fn normalized_words(raw: &[String], errors: &mut Vec<SpecError>) -> Vec<String> {
    if raw.is_empty() {
        errors.push(SpecError::new(
            "words",
            "the word list is empty".to_owned(),
            Some("list at least one word, e.g. words = [\"compass\", \"lantern\"]".to_owned()),
        ));
        return Vec::new();
    }
    if raw.len() > MAX_WORDS {
        errors.push(SpecError::new(
            "words",
            format!(
                "{} words listed; at most {MAX_WORDS} are allowed",
                raw.len()
            ),
            None,
        ));
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::with_capacity(raw.len());
    for word in raw {
        let normalized = normalize_answer(word);
        if !normalized.bytes().all(|byte| byte.is_ascii_lowercase()) || normalized.is_empty() {
            errors.push(SpecError::new(
                "words",
                format!("word {word:?} must be letters a-z only"),
                Some("use single words of plain letters A-Z; case does not matter".to_owned()),
            ));
        } else if !(MIN_WORD_LETTERS..=MAX_WORD_LETTERS).contains(&normalized.len()) {
            errors.push(SpecError::new(
                "words",
                format!(
                    "word {word:?} has {} letters; use {MIN_WORD_LETTERS} to {MAX_WORD_LETTERS}",
                    normalized.len()
                ),
                None,
            ));
        } else if words.contains(&normalized) {
            errors.push(SpecError::new(
                "words",
                format!("word {normalized:?} is listed twice"),
                None,
            ));
        } else {
            words.push(normalized);
        }
    }
    words
}

/// Validates a spec for `veltrix check`. An unknown kind is handled by the
/// caller through `PuzzleKind::from_str`. Reports every problem: an empty word
/// list, words with non-letters, caesar words one of whose other shifts is a
/// listed or dictionary word (no instance of them would be unique), anagram
/// words with no unique arrangement, and sizes or difficulties the kind does
/// not offer (listing the valid ones).
pub fn validate_spec(spec: &PuzzleSpec) -> Vec<SpecError> {
    let mut errors = Vec::new();
    if !spec.kind.uses_words() {
        check_sudoku_settings(spec, &mut errors);
        return errors;
    }
    check_word_kind_settings(spec, &mut errors);
    let words = normalized_words(&spec.words, &mut errors);
    let set = dictionary::WordSet {
        stage: &words,
        shipped: dictionary::shipped(),
    };
    for word in &words {
        let problem = match spec.kind {
            PuzzleKind::Caesar => caesar_problem(word, &set),
            _ => anagram_problem(word, &set),
        };
        errors.extend(problem);
    }
    errors
}

fn caesar_problem(word: &str, set: &dictionary::WordSet) -> Option<SpecError> {
    let collisions = caesar::collisions(word, set);
    if collisions.is_empty() {
        return None;
    }
    let described: Vec<String> = collisions
        .iter()
        .map(|(shift, other, source)| {
            format!("shift {shift} gives {other:?} ({})", source.as_str())
        })
        .collect();
    Some(SpecError::new(
        "words",
        format!(
            "caesar word {word:?} has no unique instance: {}",
            described.join(", ")
        ),
        Some("replace or remove the word; players could not tell which word is meant".to_owned()),
    ))
}

fn anagram_problem(word: &str, set: &dictionary::WordSet) -> Option<SpecError> {
    if !anagram::can_scramble(word) {
        return Some(SpecError::new(
            "words",
            format!("anagram word {word:?} has no arrangement other than itself"),
            Some("replace or remove the word".to_owned()),
        ));
    }
    let others: Vec<String> = set
        .anagrams_of(&dictionary::sorted_letters(word))
        .into_iter()
        .filter(|(other, _)| other != word)
        .map(|(other, source)| format!("{other:?} ({})", source.as_str()))
        .collect();
    if others.is_empty() {
        return None;
    }
    Some(SpecError::new(
        "words",
        format!(
            "anagram word {word:?} has no unique arrangement: same letters as {}",
            others.join(", ")
        ),
        Some("replace or remove the word; players could not tell which word is meant".to_owned()),
    ))
}

#[cfg(test)]
mod tests;
