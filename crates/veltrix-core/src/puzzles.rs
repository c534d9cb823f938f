//! Generated puzzles: each player's instance of a puzzle stage, derived from
//! (secret, hunt, stage, player), and the check of answers against it.

use crate::event::Event;
use crate::plan::Plan;
use veltrix_config::veltrix_puzzles::{GenerateError, Instance, PuzzleRequest, answer_digest};
use veltrix_config::{HuntId, StageIndex};

/// The player's instance of a puzzle stage; None when the stage is not a
/// puzzle stage. Deterministic: the same inputs always give the same instance.
pub fn puzzle_instance(
    plan: &Plan,
    hunt: HuntId,
    stage: StageIndex,
    player: &str,
) -> Option<Result<Instance, GenerateError>> {
    let prepared = plan
        .puzzles
        .get(hunt as usize)?
        .get(stage as usize)?
        .as_ref()?;
    let config = &plan.config;
    let request = PuzzleRequest {
        hunt: &config.hunts[hunt as usize].name,
        stage: &config.hunts[hunt as usize].stages[stage as usize].id,
        player,
        secret: &plan.puzzle_secret,
    };
    Some(prepared.generate(&request))
}

/// The answer digest of the player's instance. Instances never change for a
/// configuration and secret, so digests are cached per player and stage.
pub(crate) fn expected_digest(
    plan: &Plan,
    cache: &mut crate::engine::FastMap<(u32, HuntId, StageIndex), Option<[u8; 32]>>,
    pid: u32,
    hunt: HuntId,
    stage: StageIndex,
    player: &str,
) -> Option<[u8; 32]> {
    *cache.entry((pid, hunt, stage)).or_insert_with(|| {
        // A player whose instance cannot be generated (the generator ran out
        // of derivations) cannot solve the stage; `puzzle preview` shows why.
        puzzle_instance(plan, hunt, stage, player)?
            .ok()
            .map(|i| i.answer_sha256)
    })
}

pub(crate) fn answer_matches(expected: Option<[u8; 32]>, event: &Event) -> bool {
    let given = event.data[2].as_str().unwrap_or("");
    expected.is_some_and(|digest| digest == answer_digest(given))
}
