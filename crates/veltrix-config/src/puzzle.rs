//! Checks of `puzzle = {…}` settings. Delegates to the puzzles crate once it
//! is wired; until then checks the kind and the word list.

pub(crate) struct Problem {
    pub key: &'static str,
    pub message: String,
    pub help: Option<String>,
}

const KINDS: [&str; 3] = ["caesar", "anagram", "sudoku"];

pub(crate) fn validate(settings: &crate::model::PuzzleSettings) -> Vec<Problem> {
    let mut problems = Vec::new();
    if !KINDS.contains(&settings.kind.as_str()) {
        problems.push(Problem {
            key: "kind",
            message: format!(
                "unknown puzzle kind \"{}\": expected one of {}",
                settings.kind,
                KINDS.join(", ")
            ),
            help: crate::diag::did_you_mean(&settings.kind, KINDS),
        });
    }
    problems
}
