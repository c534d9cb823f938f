//! Property tests: determinism, uniqueness (re-proven by solvers written
//! independently of the crate's), answer digests, normalization, validation,
//! and no panics on arbitrary input.

use proptest::prelude::*;
use veltrix_puzzles::{
    Instance, PuzzleData, PuzzleKind, PuzzleRequest, PuzzleSpec, answer_digest, generate,
    normalize_answer, sudoku, validate_spec,
};

/// The shipped list, read here directly rather than through the crate.
const SHIPPED: &str = include_str!("../data/words.txt");

const STAGE_WORDS: [&str; 8] = [
    "compass", "anchor", "harbor", "lantern", "pirate", "treasure", "island", "parrot",
];

fn word_spec(kind: PuzzleKind) -> PuzzleSpec {
    PuzzleSpec {
        kind,
        words: STAGE_WORDS.iter().map(|w| (*w).to_owned()).collect(),
        difficulty: None,
        size: None,
    }
}

fn sudoku_spec(size: u32, difficulty: &str) -> PuzzleSpec {
    PuzzleSpec {
        kind: PuzzleKind::Sudoku,
        words: Vec::new(),
        difficulty: Some(difficulty.to_owned()),
        size: Some(size),
    }
}

/// Every offered spec: both word kinds and each offered sudoku setting.
fn offered_specs() -> Vec<PuzzleSpec> {
    let mut specs = vec![
        word_spec(PuzzleKind::Caesar),
        word_spec(PuzzleKind::Anagram),
    ];
    for (size, difficulties) in sudoku::OFFERED {
        for difficulty in difficulties {
            specs.push(sudoku_spec(size, difficulty.as_str()));
        }
    }
    specs
}

fn all_words(stage: &[String]) -> impl Iterator<Item = &str> {
    SHIPPED.lines().chain(stage.iter().map(String::as_str))
}

/// Words that are some rotation (0..26) of `ciphertext`: all letter
/// differences equal mod 26.
fn caesar_solutions<'a>(ciphertext: &str, stage: &'a [String]) -> Vec<&'a str> {
    let mut found: Vec<&str> = all_words(stage)
        .filter(|word| word.len() == ciphertext.len())
        .filter(|word| {
            let mut differences = word
                .bytes()
                .zip(ciphertext.bytes())
                .map(|(a, b)| (26 + a - b) % 26);
            let first = differences.next();
            differences.all(|difference| Some(difference) == first)
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

fn anagram_solutions<'a>(letters: &str, stage: &'a [String]) -> Vec<&'a str> {
    let key = |word: &str| {
        let mut bytes = word.as_bytes().to_vec();
        bytes.sort_unstable();
        bytes
    };
    let wanted = key(letters);
    let mut found: Vec<&str> = all_words(stage)
        .filter(|word| key(word) == wanted)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// Plain backtracking on the blank with the fewest fitting digits, counting
/// solutions up to 2; no candidate bitsets, no propagation, nothing shared
/// with the crate's solver.
fn sudoku_solutions(size: usize, givens: &[u8]) -> (u32, Vec<u8>) {
    let (box_rows, box_cols) = match size {
        4 => (2, 2),
        6 => (2, 3),
        _ => (3, 3),
    };
    fn fits(
        grid: &[u8],
        size: usize,
        box_rows: usize,
        box_cols: usize,
        cell: usize,
        digit: u8,
    ) -> bool {
        let (row, col) = (cell / size, cell % size);
        let (top, left) = (row - row % box_rows, col - col % box_cols);
        (0..size).all(|i| grid[row * size + i] != digit && grid[i * size + col] != digit)
            && (0..box_rows)
                .all(|r| (0..box_cols).all(|c| grid[(top + r) * size + left + c] != digit))
    }
    fn walk(grid: &mut Vec<u8>, size: usize, shape: (usize, usize), found: &mut (u32, Vec<u8>)) {
        let mut best: Option<(usize, Vec<u8>)> = None;
        for cell in (0..grid.len()).filter(|&cell| grid[cell] == 0) {
            let digits: Vec<u8> = (1..=size as u8)
                .filter(|&digit| fits(grid, size, shape.0, shape.1, cell, digit))
                .collect();
            if best
                .as_ref()
                .is_none_or(|(_, fewest)| digits.len() < fewest.len())
            {
                best = Some((cell, digits));
            }
        }
        let Some((cell, digits)) = best else {
            found.0 += 1;
            if found.1.is_empty() {
                found.1 = grid.clone();
            }
            return;
        };
        for digit in digits {
            if found.0 >= 2 {
                return;
            }
            grid[cell] = digit;
            walk(grid, size, shape, found);
            grid[cell] = 0;
        }
    }
    // Givens must not clash either.
    for (cell, &digit) in givens.iter().enumerate() {
        let mut without = givens.to_vec();
        without[cell] = 0;
        assert!(
            digit == 0 || fits(&without, size, box_rows, box_cols, cell, digit),
            "clashing givens"
        );
    }
    let mut found = (0, Vec::new());
    walk(&mut givens.to_vec(), size, (box_rows, box_cols), &mut found);
    found
}

/// Re-proves that the instance has exactly one solution and that it is the
/// answer.
fn check_unique(spec: &PuzzleSpec, instance: &Instance) {
    let stage: Vec<String> = spec
        .words
        .iter()
        .map(|word| normalize_answer(word))
        .collect();
    match &instance.data {
        PuzzleData::Caesar { ciphertext } => {
            let lower = ciphertext.to_ascii_lowercase();
            assert_ne!(lower, instance.answer);
            assert_eq!(
                caesar_solutions(&lower, &stage),
                vec![instance.answer.as_str()],
                "{instance:?}"
            );
        }
        PuzzleData::Anagram { letters } => {
            let lower = letters.to_ascii_lowercase();
            assert_ne!(lower, instance.answer);
            assert_eq!(
                anagram_solutions(&lower, &stage),
                vec![instance.answer.as_str()],
                "{instance:?}"
            );
        }
        PuzzleData::Sudoku {
            size,
            givens,
            answer_row,
        } => {
            let side = *size as usize;
            let (count, solution) = sudoku_solutions(side, givens);
            assert_eq!(count, 1, "{instance:?}");
            let row = *answer_row as usize;
            let digits: String = solution[row * side..(row + 1) * side]
                .iter()
                .map(|digit| char::from(b'0' + digit))
                .collect();
            assert_eq!(digits, instance.answer);
            // The difficulty class is the solver's measurement of these givens.
            let rating = sudoku::rate(*size, givens).expect("rated");
            assert_eq!(rating.difficulty.as_str(), instance.difficulty);
        }
    }
}

fn request<'a>(
    hunt: &'a str,
    stage: &'a str,
    player: &'a str,
    secret: &'a [u8],
) -> PuzzleRequest<'a> {
    PuzzleRequest {
        hunt,
        stage,
        player,
        secret,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn same_inputs_same_instance(
        spec_index in 0..offered_specs().len(),
        hunt in ".{0,12}",
        stage in ".{0,12}",
        player in ".{0,24}",
        secret in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let spec = &offered_specs()[spec_index];
        let first = generate(spec, &request(&hunt, &stage, &player, &secret)).unwrap();
        let second = generate(spec, &request(&hunt, &stage, &player, &secret)).unwrap();
        prop_assert_eq!(first, second);
    }

    #[test]
    fn every_instance_has_exactly_one_solution(
        spec_index in 0..offered_specs().len(),
        player in "[a-z0-9]{1,16}",
        secret in proptest::collection::vec(any::<u8>(), 1..33),
    ) {
        let spec = &offered_specs()[spec_index];
        let instance = generate(spec, &request("hunt", "stage", &player, &secret)).unwrap();
        check_unique(spec, &instance);
        prop_assert_eq!(instance.answer_sha256, answer_digest(&instance.answer));
        prop_assert_eq!(normalize_answer(&instance.answer), instance.answer.clone());
        // The player's likely spellings hash to the same digest.
        let shouted = format!("  {} ", instance.answer.to_uppercase());
        prop_assert_eq!(answer_digest(&shouted), instance.answer_sha256);
    }

    #[test]
    fn normalization_is_idempotent_and_collapses(raw in "\\PC{0,40}", padding in "[ \t\n\u{a0}\u{3000}]{0,4}") {
        let padded = format!("{padding}{raw}{padding}");
        let once = normalize_answer(&padded);
        prop_assert_eq!(normalize_answer(&once), once.clone());
        prop_assert_eq!(once.trim(), once.as_str());
        prop_assert!(!once.contains("  "));
        prop_assert!(once.chars().all(|c| c == ' ' || !c.is_whitespace()));
        prop_assert_eq!(normalize_answer(&raw), once.clone());
        prop_assert_eq!(answer_digest(&padded), answer_digest(&once));
    }

    #[test]
    fn ascii_case_does_not_matter(raw in "[A-Za-z ]{0,30}") {
        prop_assert_eq!(normalize_answer(&raw.to_ascii_uppercase()), normalize_answer(&raw.to_ascii_lowercase()));
    }

    #[test]
    fn arbitrary_specs_never_panic(
        kind in prop_oneof![Just(PuzzleKind::Caesar), Just(PuzzleKind::Anagram), Just(PuzzleKind::Sudoku)],
        words in proptest::collection::vec("\\PC{0,12}|[a-z]{3,9}", 0..6),
        difficulty in proptest::option::of("easy|medium|hard|standard|\\PC{0,8}"),
        size in proptest::option::of(prop_oneof![Just(4u32), Just(6), Just(9), any::<u32>()]),
    ) {
        let spec = PuzzleSpec { kind, words, difficulty, size };
        let errors = validate_spec(&spec);
        let result = generate(&spec, &request("hunt", "stage", "player", b"secret"));
        // A spec validate_spec accepts always generates, and with no
        // rejections for word kinds (every listed word is unique).
        if errors.is_empty() {
            let instance = result.unwrap();
            if kind != PuzzleKind::Sudoku {
                prop_assert_eq!(instance.rejected_derivations, 0);
            }
            check_unique(&spec, &instance);
        }
    }
}

/// Different players almost always get different instances. The floor is
/// per kind: caesar with 8 words has 8 × 25 instances, so two players collide
/// with probability about 1/200.
#[test]
fn different_players_get_different_instances() {
    for (spec, floor) in [
        (word_spec(PuzzleKind::Caesar), 0.97),
        (word_spec(PuzzleKind::Anagram), 0.97),
        (sudoku_spec(6, "easy"), 0.995),
        (sudoku_spec(9, "medium"), 0.995),
        (sudoku_spec(9, "hard"), 0.995),
    ] {
        let pairs = 200;
        let differing = (0..pairs)
            .filter(|pair| {
                let one = format!("player-{pair}-a");
                let two = format!("player-{pair}-b");
                let first = generate(&spec, &request("hunt", "stage", &one, b"secret")).unwrap();
                let second = generate(&spec, &request("hunt", "stage", &two, b"secret")).unwrap();
                first.data != second.data
            })
            .count();
        let rate = differing as f64 / pairs as f64;
        assert!(rate >= floor, "{spec:?}: only {rate} of pairs differ");
    }
}

/// Uniqueness over many consecutive players per kind and difficulty (beyond
/// the random cases above), with the rejection count in range.
#[test]
fn many_seeds_per_kind_and_difficulty() {
    for spec in offered_specs() {
        let players = if spec.kind == PuzzleKind::Sudoku && spec.size == Some(9) {
            60
        } else {
            200
        };
        for player in 0..players {
            let name = format!("p{player}");
            let instance = generate(&spec, &request("many", "seeds", &name, b"k")).unwrap();
            check_unique(&spec, &instance);
            assert!(instance.rejected_derivations < veltrix_puzzles::MAX_DERIVATIONS);
        }
    }
}
