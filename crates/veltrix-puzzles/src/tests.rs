//! Unit tests of the public API per kind; property tests live in tests/.

use super::*;

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|word| (*word).to_owned()).collect()
}

fn word_spec(kind: PuzzleKind, list: &[&str]) -> PuzzleSpec {
    PuzzleSpec {
        kind,
        words: words(list),
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

fn request(player: &str) -> PuzzleRequest<'_> {
    PuzzleRequest {
        hunt: "harbor-hunt",
        stage: "lighthouse",
        player,
        secret: b"server-secret",
    }
}

const SPEC_WORDS: [&str; 4] = ["compass", "anchor", "harbor", "lantern"];

#[test]
fn kind_names_round_trip() {
    for kind in PuzzleKind::ALL {
        assert_eq!(kind.as_str().parse::<PuzzleKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    let error = "sodoku".parse::<PuzzleKind>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown puzzle kind \"sodoku\": expected one of caesar, anagram, sudoku"
    );
}

#[test]
fn spec_example_words_are_valid_for_both_word_kinds() {
    assert_eq!(
        validate_spec(&word_spec(PuzzleKind::Caesar, &SPEC_WORDS)),
        vec![]
    );
    assert_eq!(
        validate_spec(&word_spec(PuzzleKind::Anagram, &SPEC_WORDS)),
        vec![]
    );
}

#[test]
fn caesar_instance() {
    let instance = generate(&word_spec(PuzzleKind::Caesar, &SPEC_WORDS), &request("ada")).unwrap();
    assert_eq!(instance.kind, PuzzleKind::Caesar);
    assert_eq!(instance.difficulty, "standard");
    assert!(SPEC_WORDS.contains(&instance.answer.as_str()));
    let PuzzleData::Caesar { ciphertext } = &instance.data else {
        panic!("wrong data {:?}", instance.data)
    };
    assert!(instance.text.contains(ciphertext.as_str()));
    assert!(instance.text.contains("Caesar"));
    let lower = ciphertext.to_ascii_lowercase();
    assert_ne!(lower, instance.answer);
    assert!((1..26).any(|shift| caesar::rotate(&instance.answer, shift) == lower));
    assert_eq!(instance.answer_sha256, answer_digest(&instance.answer));
    assert_eq!(instance.rejected_derivations, 0);
    assert_eq!(
        instance.solver,
        SolverStats {
            nodes: 26,
            technique: "all-shifts".to_owned()
        }
    );
}

#[test]
fn anagram_instance() {
    let instance = generate(
        &word_spec(PuzzleKind::Anagram, &SPEC_WORDS),
        &request("ada"),
    )
    .unwrap();
    let PuzzleData::Anagram { letters } = &instance.data else {
        panic!("wrong data {:?}", instance.data)
    };
    assert!(instance.text.contains(letters.as_str()));
    let lower = letters.to_ascii_lowercase();
    assert_ne!(lower, instance.answer);
    assert_eq!(
        dictionary::sorted_letters(&lower),
        dictionary::sorted_letters(&instance.answer)
    );
    assert_eq!(instance.solver.technique, "letter-multiset");
}

#[test]
fn sudoku_instances_for_every_offered_setting() {
    for (size, difficulties) in sudoku::OFFERED {
        for difficulty in difficulties {
            let spec = sudoku_spec(size, difficulty.as_str());
            assert_eq!(validate_spec(&spec), vec![]);
            let instance = generate(&spec, &request("ada")).unwrap();
            assert_eq!(instance.difficulty, difficulty.as_str());
            let PuzzleData::Sudoku {
                size: data_size,
                givens,
                answer_row,
            } = &instance.data
            else {
                panic!("wrong data {:?}", instance.data)
            };
            assert_eq!(*data_size, size);
            let rating = sudoku::rate(size, givens).unwrap();
            assert_eq!(rating.difficulty, *difficulty);
            let side = size as usize;
            let row = *answer_row as usize;
            let expected: String = rating.solution[row * side..(row + 1) * side]
                .iter()
                .map(|digit| char::from(b'0' + digit))
                .collect();
            assert_eq!(instance.answer, expected);
            assert!(
                givens[row * side..(row + 1) * side].contains(&0),
                "answer row must need solving"
            );
            assert_eq!(
                instance
                    .text
                    .lines()
                    .filter(|line| line.starts_with('>'))
                    .count(),
                1
            );
            assert!(instance.text.contains(&format!("row {}", row + 1)));
        }
    }
}

#[test]
fn sudoku_defaults_to_nine_medium() {
    let spec = PuzzleSpec {
        kind: PuzzleKind::Sudoku,
        words: Vec::new(),
        difficulty: None,
        size: None,
    };
    let instance = generate(&spec, &request("ada")).unwrap();
    assert_eq!(instance.difficulty, "medium");
    assert!(matches!(instance.data, PuzzleData::Sudoku { size: 9, .. }));
}

#[test]
fn debug_output_redacts_answer_and_secret() {
    let instance = generate(
        &word_spec(PuzzleKind::Caesar, &["compass"]),
        &request("ada"),
    )
    .unwrap();
    let shown = format!("{instance:?}");
    assert!(!shown.contains("compass"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let shown = format!("{:?}", request("ada"));
    assert!(!shown.contains("server-secret"), "{shown}");
}

#[test]
fn secret_and_fields_change_the_instance() {
    let spec = sudoku_spec(9, "easy");
    let base = generate(&spec, &request("ada")).unwrap();
    let other_secret = generate(
        &spec,
        &PuzzleRequest {
            secret: b"another-secret",
            ..request("ada")
        },
    )
    .unwrap();
    let other_stage = generate(
        &spec,
        &PuzzleRequest {
            stage: "cliff",
            ..request("ada")
        },
    )
    .unwrap();
    assert_ne!(base.data, other_secret.data);
    assert_ne!(base.data, other_stage.data);
}

#[test]
fn bad_words_are_rejected_per_derivation_and_counted() {
    // "cheer" shifted by 7 is "jolly": neither has a unique caesar instance,
    // so only "compass" is ever handed out.
    let spec = word_spec(PuzzleKind::Caesar, &["cheer", "jolly", "compass"]);
    let mut rejected = 0;
    for player in 0..200 {
        let instance = generate(&spec, &request(&player.to_string())).unwrap();
        assert_eq!(instance.answer, "compass");
        rejected += instance.rejected_derivations;
    }
    assert!(
        rejected > 100,
        "two words in three are bad, rejected only {rejected}"
    );
}

#[test]
fn exhaustion_is_an_error_not_a_hang() {
    let spec = word_spec(PuzzleKind::Caesar, &["cheer", "jolly"]);
    assert_eq!(
        generate(&spec, &request("ada")),
        Err(GenerateError::Exhausted {
            kind: PuzzleKind::Caesar,
            derivations: MAX_DERIVATIONS
        })
    );
    let spec = word_spec(PuzzleKind::Anagram, &["aaa"]);
    assert!(matches!(
        generate(&spec, &request("ada")),
        Err(GenerateError::Exhausted { .. })
    ));
}

fn keys_and_messages(spec: &PuzzleSpec) -> Vec<(&'static str, String)> {
    validate_spec(spec)
        .into_iter()
        .map(|error| (error.key, error.message))
        .collect()
}

#[test]
fn validate_empty_and_malformed_words() {
    for kind in [PuzzleKind::Caesar, PuzzleKind::Anagram] {
        let errors = keys_and_messages(&word_spec(kind, &[]));
        assert_eq!(errors, vec![("words", "the word list is empty".to_owned())]);
        let errors = keys_and_messages(&word_spec(
            kind,
            &["héllo", "two words", "abc1", "", "ab", "Compass", "compass"],
        ));
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors.iter().all(|(key, _)| *key == "words"));
        assert!(errors[0].1.contains("héllo") && errors[0].1.contains("letters a-z"));
        assert!(errors[3].1.contains("\"\""));
        assert!(errors[4].1.contains("2 letters"));
        assert!(errors[5].1.contains("listed twice"));
        let too_long = "a".repeat(MAX_WORD_LETTERS + 1);
        assert_eq!(
            validate_spec(&word_spec(kind, &[too_long.as_str()])).len(),
            1
        );
        let many: Vec<String> = (0..=MAX_WORDS).map(|_| "compass".to_owned()).collect();
        let spec = PuzzleSpec {
            kind,
            words: many,
            difficulty: None,
            size: None,
        };
        assert_eq!(validate_spec(&spec).len(), 1);
    }
}

#[test]
fn validate_caesar_collisions_name_the_other_word() {
    let errors = keys_and_messages(&word_spec(
        PuzzleKind::Caesar,
        &["cheer", "jolly", "lantern"],
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].1.contains("\"cheer\"")
            && errors[0].1.contains("shift 7 gives \"jolly\" (listed)")
    );
    assert!(
        errors[1].1.contains("\"jolly\"")
            && errors[1].1.contains("shift 19 gives \"cheer\" (listed)")
    );
    // A collision with the shipped dictionary: "cold" shifted by 3 is "frog".
    let errors = keys_and_messages(&word_spec(PuzzleKind::Caesar, &["cold"]));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].1.contains("shift 3 gives \"frog\" (dictionary)"),
        "{errors:?}"
    );
}

#[test]
fn validate_anagram_collisions_name_the_other_words() {
    let errors = keys_and_messages(&word_spec(
        PuzzleKind::Anagram,
        &["listen", "aaa", "compass"],
    ));
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].1.contains("\"silent\" (dictionary)"),
        "{errors:?}"
    );
    assert!(errors[1].1.contains("no arrangement other than itself"));
    let errors = keys_and_messages(&word_spec(PuzzleKind::Anagram, &["quorb", "bourq"]));
    assert_eq!(errors.len(), 2);
    assert!(errors[0].1.contains("\"bourq\" (listed)"));
}

#[test]
fn validate_kind_settings() {
    let mut spec = word_spec(PuzzleKind::Caesar, &["compass"]);
    spec.size = Some(9);
    spec.difficulty = Some("hard".to_owned());
    let errors = validate_spec(&spec);
    assert_eq!(
        errors.iter().map(|error| error.key).collect::<Vec<_>>(),
        vec!["size", "difficulty"]
    );
    spec.size = None;
    spec.difficulty = Some("standard".to_owned());
    assert_eq!(validate_spec(&spec), vec![]);

    let errors = validate_spec(&sudoku_spec(5, "easy"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "size");
    assert_eq!(errors[0].help.as_deref(), Some("valid sizes: 4, 6, 9"));

    let errors = validate_spec(&sudoku_spec(9, "extreme"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "difficulty");
    assert_eq!(
        errors[0].help.as_deref(),
        Some("valid difficulties: easy, medium, hard")
    );

    let errors = validate_spec(&sudoku_spec(4, "hard"));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].help.as_deref(),
        Some("valid difficulties for size 4: easy")
    );

    let errors = validate_spec(&sudoku_spec(u32::MAX, "impossible"));
    assert_eq!(
        errors.iter().map(|error| error.key).collect::<Vec<_>>(),
        vec!["size", "difficulty"]
    );

    let mut spec = sudoku_spec(9, "easy");
    spec.words = words(&["compass"]);
    assert_eq!(validate_spec(&spec)[0].key, "words");
}

#[test]
fn generate_refuses_invalid_specs() {
    let result = generate(&sudoku_spec(9, "extreme"), &request("ada"));
    let Err(GenerateError::InvalidSpec { errors }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(errors[0].key, "difficulty");
    assert!(matches!(
        generate(&word_spec(PuzzleKind::Anagram, &["naïve"]), &request("ada")),
        Err(GenerateError::InvalidSpec { .. })
    ));
}

#[test]
fn empty_and_odd_request_fields_work() {
    let spec = word_spec(PuzzleKind::Anagram, &SPEC_WORDS);
    let odd = PuzzleRequest {
        hunt: "",
        stage: "\u{0}",
        player: "🦀\u{202e}",
        secret: b"",
    };
    assert!(generate(&spec, &odd).is_ok());
}

#[test]
fn instances_are_pinned() {
    // Pinned: the same inputs must give the same instance on every machine and
    // in every release; a change here invalidates every handed-out instance.
    let caesar = generate(&word_spec(PuzzleKind::Caesar, &SPEC_WORDS), &request("ada")).unwrap();
    // Sudoku pins changed deliberately when solved grids started from random
    // diagonal boxes and `hard` generation gained clue swaps (nothing was
    // live yet).
    let sudoku = generate(&sudoku_spec(4, "easy"), &request("ada")).unwrap();
    let hard = generate(&sudoku_spec(9, "hard"), &request("ada")).unwrap();
    assert_eq!(
        caesar.data,
        PuzzleData::Caesar {
            ciphertext: "UHWBIL".to_owned()
        }
    );
    assert_eq!(caesar.answer, "anchor");
    assert_eq!(
        sudoku.data,
        PuzzleData::Sudoku {
            size: 4,
            givens: vec![0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0, 4, 4, 0, 3, 0],
            answer_row: 0
        }
    );
    assert_eq!(
        sudoku.text,
        "Sudoku 4x4 (easy). Fill every blank (.) with a digit 1-4 so that each row, each column \
         and each 2x2 box holds every digit exactly once.\nAnswer with the 4 digits of row 1 \
         (marked >), left to right, no spaces.\n\n>  . . | . 3\n   . 2 | . .\n  -----+-----\n\
         \x20  . . | . 4\n   4 . | 3 .\n"
    );
    assert_eq!(
        hard.data,
        PuzzleData::Sudoku {
            size: 9,
            givens: vec![
                0, 0, 0, 0, 0, 0, 0, 3, 4, //
                0, 0, 0, 3, 0, 0, 5, 0, 0, //
                4, 0, 0, 0, 6, 1, 0, 0, 0, //
                0, 4, 7, 0, 0, 0, 0, 5, 0, //
                6, 5, 0, 0, 0, 0, 0, 8, 0, //
                0, 2, 0, 0, 0, 0, 7, 0, 0, //
                7, 0, 0, 1, 0, 9, 2, 0, 0, //
                5, 0, 0, 0, 0, 2, 0, 0, 0, //
                8, 6, 0, 0, 0, 5, 9, 0, 0,
            ],
            answer_row: 1
        }
    );
    assert_eq!(hard.answer, "986324517");
    assert_eq!(hard.solver.technique, "search");
}

#[test]
fn prepared_spec_generates_the_same_instances() {
    for spec in [
        word_spec(PuzzleKind::Anagram, &SPEC_WORDS),
        sudoku_spec(6, "medium"),
    ] {
        let prepared = prepare(&spec).unwrap();
        assert_eq!(prepared.kind(), spec.kind);
        for player in ["ada", "grace", ""] {
            assert_eq!(
                prepared.generate(&request(player)),
                generate(&spec, &request(player))
            );
        }
    }
    assert!(matches!(
        prepare(&sudoku_spec(7, "easy")),
        Err(GenerateError::InvalidSpec { .. })
    ));
}

/// Naked and hidden singles on a plain 9×9 grid, written apart from the
/// crate's solver: returns the grid they reach.
fn singles_fixpoint(givens: &[u8]) -> Vec<u8> {
    let mut grid = givens.to_vec();
    let units: Vec<Vec<usize>> = (0..9)
        .map(|row| (0..9).map(|col| row * 9 + col).collect())
        .chain((0..9).map(|col| (0..9).map(|row| row * 9 + col).collect()))
        .chain((0..9).map(|b| {
            (0..9)
                .map(|i| (b / 3 * 3 + i / 3) * 9 + b % 3 * 3 + i % 3)
                .collect()
        }))
        .collect();
    let peers: Vec<Vec<usize>> = (0..81)
        .map(|cell| {
            (0..81)
                .filter(|&other| {
                    other != cell
                        && units
                            .iter()
                            .any(|unit| unit.contains(&cell) && unit.contains(&other))
                })
                .collect()
        })
        .collect();
    loop {
        // Candidate digits (bit d) of each blank.
        let masks: Vec<u16> = (0..81)
            .map(|cell| {
                if grid[cell] != 0 {
                    return 0;
                }
                peers[cell]
                    .iter()
                    .fold(0b11_1111_1110, |mask, &peer| mask & !(1u16 << grid[peer]))
            })
            .collect();
        let naked = (0..81).find(|&cell| masks[cell].count_ones() == 1);
        let hidden = || {
            units.iter().find_map(|unit| {
                (1..=9u8).find_map(|digit| {
                    let places: Vec<usize> = unit
                        .iter()
                        .copied()
                        .filter(|&cell| masks[cell] & 1 << digit != 0)
                        .collect();
                    match places[..] {
                        [cell] => Some((cell, digit)),
                        _ => None,
                    }
                })
            })
        };
        match naked {
            Some(cell) => grid[cell] = masks[cell].trailing_zeros() as u8,
            None => match hidden() {
                Some((cell, digit)) => grid[cell] = digit,
                None => return grid,
            },
        }
    }
}

#[test]
fn hard_instances_need_search() {
    // "hard" is what the solver measures: singles get stuck, a search proves
    // one solution. Re-checked here with a separate singles implementation,
    // over enough players that many instances come from clue swaps (about 4
    // in 10 derivations end solvable by singles before swapping).
    let spec = sudoku_spec(9, "hard");
    for player in 0..120 {
        let instance = generate(&spec, &request(&format!("player-{player}"))).unwrap();
        let PuzzleData::Sudoku { givens, .. } = &instance.data else {
            panic!("wrong data {:?}", instance.data)
        };
        let reached = singles_fixpoint(givens);
        assert!(
            reached.contains(&0),
            "player-{player}: singles solve {givens:?}"
        );
        let rating = sudoku::rate(9, givens).unwrap();
        assert_eq!(rating.difficulty, sudoku::Difficulty::Hard);
        assert!(rating.nodes >= 1);
        assert_eq!(instance.solver.technique, "search");
        // What singles placed agrees with the unique solution.
        for (cell, &digit) in reached.iter().enumerate() {
            assert!(digit == 0 || digit == rating.solution[cell]);
        }
    }
    // The separate singles solver does solve a puzzle the rater calls easy.
    let easy = "530070000600195000098000060800060003400803001700020006060000280000419005000080079";
    let cells: Vec<u8> = easy.bytes().map(|byte| byte - b'0').collect();
    assert!(!singles_fixpoint(&cells).contains(&0));
}
