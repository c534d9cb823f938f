//! Generated-puzzle answers. Wired to the puzzles crate in a later step.

use crate::event::Event;
use crate::plan::Plan;
use veltrix_config::{HuntId, StageIndex};

pub(crate) fn answer_matches(
    _plan: &Plan,
    _hunt: HuntId,
    _stage: StageIndex,
    _event: &Event,
) -> bool {
    false
}
