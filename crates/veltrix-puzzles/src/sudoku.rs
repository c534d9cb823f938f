//! `sudoku`: 4×4 (2×2 boxes), 6×6 (2×3 boxes) and 9×9 (3×3 boxes) grids with a
//! difficulty measured by the solver, not guessed.
//!
//! Difficulty classes, weakest technique set that solves the puzzle:
//! - `easy`: naked singles only (a blank with one candidate left);
//! - `medium`: naked + hidden singles (a digit with one place left in a row,
//!   column or box), and naked singles alone get stuck;
//! - `hard`: singles get stuck; a depth-first search (with singles as
//!   propagation) proves exactly one solution.
//!
//! Singles are sound deductions, so a puzzle they complete has exactly one
//! solution; for `hard` the search counts solutions up to two.

use crate::Attempt;
use crate::Candidate;
use crate::PuzzleData;
use crate::SolverStats;
use crate::derive::Rng;

/// Largest supported side; grids are stored in fixed arrays of this area.
const MAX_SIDE: usize = 9;
const MAX_CELLS: usize = MAX_SIDE * MAX_SIDE;

/// Search nodes one uniqueness proof may use. Generated grids need a few dozen
/// at most; the bound turns a pathological case into a rejected removal (or
/// derivation) instead of a long stall.
const SEARCH_NODE_BUDGET: u64 = 20_000;

/// Search nodes one `hard` derivation may spend on uniqueness checks while
/// removing clues, until the puzzle first needs search...
const HARD_SEARCH_NODES_BEFORE: u64 = 300;
/// ...and after that. Once a puzzle needs search, every further removal needs
/// one; these removals make the puzzle sparser but not harder in class, so
/// they get a small budget. Tuned with `examples/puzzle_stats.rs`: the p99 is
/// set by the number of rejected derivations, not by this budget.
const HARD_SEARCH_NODES_AFTER: u64 = 20;

/// Search nodes for filling a random solved grid; far above what a fill
/// needs (a handful of backtracks), so the fallback is for safety only.
const RANDOM_GRID_NODE_BUDGET: u64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard];

    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
        }
    }

    pub fn parse(name: &str) -> Option<Difficulty> {
        Difficulty::ALL
            .into_iter()
            .find(|difficulty| difficulty.as_str() == name)
    }

    fn technique(self) -> &'static str {
        match self {
            Difficulty::Easy => "naked-singles",
            Difficulty::Medium => "hidden-singles",
            Difficulty::Hard => "search",
        }
    }
}

/// Sizes offered and the difficulties each offers. Offered only where
/// generation measurably succeeds (see README.md, "Measured"): on 4×4 no
/// derivation out of 2,000 players' produced a puzzle that naked singles
/// could not finish, and on 6×6 one needing search took 16 rejected
/// derivations on average, with 3.75% of players exhausting all 64.
pub const OFFERED: [(u32, &[Difficulty]); 3] = [
    (4, &[Difficulty::Easy]),
    (6, &[Difficulty::Easy, Difficulty::Medium]),
    (9, &[Difficulty::Easy, Difficulty::Medium, Difficulty::Hard]),
];

pub const DEFAULT_SIZE: u32 = 9;
pub const DEFAULT_DIFFICULTY: Difficulty = Difficulty::Medium;

pub fn offers(size: u32, difficulty: Difficulty) -> bool {
    OFFERED
        .iter()
        .any(|(offered, difficulties)| *offered == size && difficulties.contains(&difficulty))
}

/// Shape of a grid: side `n` = `box_rows` × `box_cols`, and its 3n units.
#[derive(Debug)]
pub(crate) struct Geometry {
    pub side: usize,
    pub box_rows: usize,
    pub box_cols: usize,
    /// Rows 0..n, columns n..2n, boxes 2n..3n; each lists its n cells.
    units: Vec<[u8; MAX_SIDE]>,
    /// For each cell: its row, column and box.
    row_of: [u8; MAX_CELLS],
    col_of: [u8; MAX_CELLS],
    box_of: [u8; MAX_CELLS],
    /// For each cell: the other cells sharing its row, column or box.
    peers: Vec<[u8; MAX_PEERS]>,
    peer_count: usize,
}

/// Peers of a 9×9 cell: 8 in its row, 8 in its column, 4 more in its box.
const MAX_PEERS: usize = 20;

impl Geometry {
    fn new(box_rows: usize, box_cols: usize) -> Geometry {
        let side = box_rows * box_cols;
        assert!(side <= MAX_SIDE, "side {side} exceeds {MAX_SIDE}");
        let mut row_of = [0u8; MAX_CELLS];
        let mut col_of = [0u8; MAX_CELLS];
        let mut box_of = [0u8; MAX_CELLS];
        let mut units = vec![[0u8; MAX_SIDE]; 3 * side];
        let mut filled = vec![0usize; 3 * side];
        for row in 0..side {
            for col in 0..side {
                let cell = row * side + col;
                let boxed = (row / box_rows) * (side / box_cols) + col / box_cols;
                row_of[cell] = row as u8;
                col_of[cell] = col as u8;
                box_of[cell] = boxed as u8;
                for unit in [row, side + col, 2 * side + boxed] {
                    units[unit][filled[unit]] = cell as u8;
                    filled[unit] += 1;
                }
            }
        }
        debug_assert!(filled.iter().all(|&count| count == side));
        let mut peers = vec![[0u8; MAX_PEERS]; side * side];
        let mut peer_count = 0;
        for (cell, cell_peers) in peers.iter_mut().enumerate() {
            let mut count = 0;
            for other in 0..side * side {
                let shares = row_of[other] == row_of[cell]
                    || col_of[other] == col_of[cell]
                    || box_of[other] == box_of[cell];
                if other != cell && shares {
                    cell_peers[count] = other as u8;
                    count += 1;
                }
            }
            peer_count = count;
        }
        // Every cell has the same number of peers: 2(n-1) + (r-1)(c-1).
        debug_assert_eq!(peer_count, 2 * (side - 1) + (box_rows - 1) * (box_cols - 1));
        Geometry {
            side,
            box_rows,
            box_cols,
            units,
            row_of,
            col_of,
            box_of,
            peers,
            peer_count,
        }
    }

    pub(crate) fn for_size(size: u32) -> Option<&'static Geometry> {
        use std::sync::OnceLock;
        static GEOMETRIES: OnceLock<[Geometry; 3]> = OnceLock::new();
        let all = GEOMETRIES.get_or_init(|| {
            [
                Geometry::new(2, 2),
                Geometry::new(2, 3),
                Geometry::new(3, 3),
            ]
        });
        all.iter().find(|geometry| geometry.side as u32 == size)
    }

    pub(crate) fn cells(&self) -> usize {
        self.side * self.side
    }

    fn all_digits(&self) -> u16 {
        ((1u16 << self.side) - 1) << 1
    }
}

/// A partly filled grid with the digits used per row, column and box, and the
/// candidates left for each blank.
#[derive(Clone)]
struct Board {
    cells: [u8; MAX_CELLS],
    /// Candidate digits (bit d) of each blank; 0 for filled cells.
    candidates: [u16; MAX_CELLS],
    row_used: [u16; MAX_SIDE],
    col_used: [u16; MAX_SIDE],
    box_used: [u16; MAX_SIDE],
    blanks: usize,
}

enum Propagation {
    Solved,
    Stuck,
    Contradiction,
}

/// Cells whose single candidate is still to be placed.
struct Pending {
    cells: [u8; MAX_CELLS],
    len: usize,
}

impl Pending {
    fn push(&mut self, cell: usize) {
        // A cell is pushed when it becomes a single, which happens once per
        // blank between placements, so there is room; a repeated push is
        // skipped when popped.
        if self.len < MAX_CELLS {
            self.cells[self.len] = cell as u8;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<usize> {
        self.len = self.len.checked_sub(1)?;
        Some(usize::from(self.cells[self.len]))
    }
}

impl Board {
    /// `None` if two givens clash or a value is out of range.
    fn new(geometry: &Geometry, cells: &[u8]) -> Option<Board> {
        if cells.len() != geometry.cells() {
            return None;
        }
        let mut board = Board {
            cells: [0; MAX_CELLS],
            candidates: [0; MAX_CELLS],
            row_used: [0; MAX_SIDE],
            col_used: [0; MAX_SIDE],
            box_used: [0; MAX_SIDE],
            blanks: geometry.cells(),
        };
        for (cell, &digit) in cells.iter().enumerate() {
            if digit == 0 {
                continue;
            }
            let bit = 1u16 << digit.min(15);
            if usize::from(digit) > geometry.side || board.used(geometry, cell) & bit != 0 {
                return None;
            }
            board.cells[cell] = digit;
            board.mark_used(geometry, cell, bit);
            board.blanks -= 1;
        }
        for cell in 0..geometry.cells() {
            if board.cells[cell] == 0 {
                board.candidates[cell] = geometry.all_digits() & !board.used(geometry, cell);
            }
        }
        Some(board)
    }

    fn used(&self, geometry: &Geometry, cell: usize) -> u16 {
        self.row_used[usize::from(geometry.row_of[cell])]
            | self.col_used[usize::from(geometry.col_of[cell])]
            | self.box_used[usize::from(geometry.box_of[cell])]
    }

    fn mark_used(&mut self, geometry: &Geometry, cell: usize, bit: u16) {
        self.row_used[usize::from(geometry.row_of[cell])] |= bit;
        self.col_used[usize::from(geometry.col_of[cell])] |= bit;
        self.box_used[usize::from(geometry.box_of[cell])] |= bit;
    }

    /// Empties a filled cell (a given), restoring candidates of it and its
    /// peers from the used-digit masks.
    fn remove(&mut self, geometry: &Geometry, cell: usize) {
        let digit = self.cells[cell];
        debug_assert!(digit != 0);
        let keep = !(1u16 << digit);
        self.cells[cell] = 0;
        self.row_used[usize::from(geometry.row_of[cell])] &= keep;
        self.col_used[usize::from(geometry.col_of[cell])] &= keep;
        self.box_used[usize::from(geometry.box_of[cell])] &= keep;
        self.blanks += 1;
        self.candidates[cell] = geometry.all_digits() & !self.used(geometry, cell);
        for &peer in &geometry.peers[cell][..geometry.peer_count] {
            let peer = usize::from(peer);
            if self.cells[peer] == 0 {
                self.candidates[peer] = geometry.all_digits() & !self.used(geometry, peer);
            }
        }
    }

    fn candidates(&self, cell: usize) -> u16 {
        self.candidates[cell]
    }

    /// Fills a blank with one of its candidates and removes the digit from
    /// its peers' candidates. Peers that become singles go to `pending`;
    /// returns false if a peer is left with no candidate.
    fn place(
        &mut self,
        geometry: &Geometry,
        cell: usize,
        digit: u8,
        pending: &mut Pending,
    ) -> bool {
        debug_assert_eq!(self.cells[cell], 0);
        debug_assert!(self.candidates[cell] & (1 << digit) != 0);
        let bit = 1u16 << digit;
        self.cells[cell] = digit;
        self.candidates[cell] = 0;
        self.mark_used(geometry, cell, bit);
        self.blanks -= 1;
        let mut consistent = true;
        for &peer in &geometry.peers[cell][..geometry.peer_count] {
            let peer = usize::from(peer);
            let before = self.candidates[peer];
            if before & bit == 0 {
                continue;
            }
            let after = before & !bit;
            self.candidates[peer] = after;
            if after == 0 {
                consistent = false;
            } else if after.is_power_of_two() {
                pending.push(peer);
            }
        }
        consistent
    }

    /// Applies naked singles (and hidden singles when `hidden`) until solved or
    /// stuck; counts the placements in `placed`.
    fn propagate(&mut self, geometry: &Geometry, hidden: bool, placed: &mut u64) -> Propagation {
        self.propagate_until(geometry, hidden, placed, None)
    }

    /// Like `propagate`, but reports `Solved` as soon as the cell `until` is
    /// filled. Used when that cell was the only difference from a puzzle known
    /// to be solvable with the same techniques: singles only add digits
    /// consistent with the one solution, and a puzzle with more givens is
    /// never harder for them, so filling it proves the rest.
    fn propagate_until(
        &mut self,
        geometry: &Geometry,
        hidden: bool,
        placed: &mut u64,
        until: Option<usize>,
    ) -> Propagation {
        let mut pending = Pending {
            cells: [0; MAX_CELLS],
            len: 0,
        };
        for cell in 0..geometry.cells() {
            if self.cells[cell] != 0 {
                continue;
            }
            match self.candidates[cell] {
                0 => return Propagation::Contradiction,
                single if single.is_power_of_two() => pending.push(cell),
                _ => {}
            }
        }
        let restored = |board: &Board| until.is_some_and(|cell| board.cells[cell] != 0);
        loop {
            while let Some(cell) = pending.pop() {
                if self.cells[cell] != 0 {
                    continue;
                }
                if restored(self) {
                    return Propagation::Solved;
                }
                let single = self.candidates[cell];
                if single == 0 {
                    return Propagation::Contradiction;
                }
                debug_assert!(single.is_power_of_two());
                *placed += 1;
                if !self.place(geometry, cell, single.trailing_zeros() as u8, &mut pending) {
                    return Propagation::Contradiction;
                }
            }
            if self.blanks == 0 || restored(self) {
                return Propagation::Solved;
            }
            if !hidden {
                return Propagation::Stuck;
            }
            match self.hidden_singles(geometry, placed, &mut pending) {
                None => return Propagation::Contradiction,
                Some(true) => {}
                Some(false) => return Propagation::Stuck,
            }
        }
    }

    /// One pass of hidden singles over all units. `None` on a contradiction (a
    /// missing digit with no place left), else whether anything was placed.
    fn hidden_singles(
        &mut self,
        geometry: &Geometry,
        placed: &mut u64,
        pending: &mut Pending,
    ) -> Option<bool> {
        let side = geometry.side;
        let mut progress = false;
        for (index, unit) in geometry.units.iter().enumerate() {
            let unit = &unit[..side];
            let used = match index / side {
                0 => self.row_used[index],
                1 => self.col_used[index - side],
                _ => self.box_used[index - 2 * side],
            };
            let mut once = 0u16;
            let mut twice = 0u16;
            for &cell in unit {
                let candidates = self.candidates[usize::from(cell)];
                twice |= once & candidates;
                once |= candidates;
            }
            let missing = geometry.all_digits() & !used;
            if missing & !once != 0 {
                return None;
            }
            let mut singles = missing & once & !twice;
            while singles != 0 {
                let digit = singles.trailing_zeros() as u8;
                singles &= singles - 1;
                // An earlier placement in this unit may have taken the only
                // place of this digit: that is a contradiction.
                let cell = unit
                    .iter()
                    .map(|&cell| usize::from(cell))
                    .find(|&cell| self.candidates[cell] & (1 << digit) != 0)?;
                *placed += 1;
                if !self.place(geometry, cell, digit, pending) {
                    return None;
                }
                progress = true;
            }
        }
        Some(progress)
    }
}

/// Result of counting solutions up to a limit.
struct Count {
    solutions: u32,
    nodes: u64,
    /// The node budget ran out: the count is a lower bound only.
    exhausted: bool,
    solution: Option<[u8; MAX_CELLS]>,
}

/// Counts solutions up to `limit` by depth-first search on the blank with the
/// fewest candidates, with naked and hidden singles as propagation.
fn count_solutions(geometry: &Geometry, board: &Board, limit: u32, node_budget: u64) -> Count {
    let mut count = Count {
        solutions: 0,
        nodes: 0,
        exhausted: false,
        solution: None,
    };
    search(geometry, board.clone(), limit, node_budget, &mut count);
    count
}

fn search(geometry: &Geometry, mut board: Board, limit: u32, budget: u64, count: &mut Count) {
    if count.nodes >= budget {
        count.exhausted = true;
        return;
    }
    count.nodes += 1;
    let mut placed = 0;
    match board.propagate(geometry, true, &mut placed) {
        Propagation::Contradiction => {}
        Propagation::Solved => {
            count.solutions += 1;
            count.solution.get_or_insert(board.cells);
        }
        Propagation::Stuck => {
            let mut best: Option<(usize, u16)> = None;
            for cell in 0..geometry.cells() {
                if board.cells[cell] != 0 {
                    continue;
                }
                let candidates = board.candidates(cell);
                if best.is_none_or(|(_, fewest)| candidates.count_ones() < fewest.count_ones()) {
                    best = Some((cell, candidates));
                }
            }
            // Stuck implies at least one blank, each with two or more candidates.
            let Some((cell, mut candidates)) = best else {
                return;
            };
            while candidates != 0 {
                let digit = candidates.trailing_zeros() as u8;
                candidates &= candidates - 1;
                let mut child = board.clone();
                let mut pending = Pending {
                    cells: [0; MAX_CELLS],
                    len: 0,
                };
                // A contradiction here is found again by the child's propagation.
                child.place(geometry, cell, digit, &mut pending);
                search(geometry, child, limit, budget, count);
                if count.solutions >= limit || count.exhausted {
                    return;
                }
            }
        }
    }
}

/// What the solver measured for a puzzle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    /// Weakest technique class that solves it.
    pub difficulty: Difficulty,
    /// Cells placed by singles (easy, medium) or search nodes (hard).
    pub nodes: u64,
    pub solution: Vec<u8>,
}

/// Why a grid has no rating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrated {
    /// Wrong length, a value out of range, or clashing givens.
    Malformed,
    NoSolution,
    MultipleSolutions,
    /// The search hit its node budget before it could decide.
    TooHard,
}

/// Rates a puzzle (`0` = blank, row-major) by the weakest technique set that
/// solves it, proving it has exactly one solution.
pub fn rate(size: u32, cells: &[u8]) -> Result<Rating, Unrated> {
    let geometry = Geometry::for_size(size).ok_or(Unrated::Malformed)?;
    let board = Board::new(geometry, cells).ok_or(Unrated::Malformed)?;
    rate_board(geometry, &board).map(|(rating, _)| rating)
}

fn rate_board(geometry: &Geometry, board: &Board) -> Result<(Rating, [u8; MAX_CELLS]), Unrated> {
    for (difficulty, hidden) in [(Difficulty::Easy, false), (Difficulty::Medium, true)] {
        let mut attempt = board.clone();
        let mut placed = 0;
        match attempt.propagate(geometry, hidden, &mut placed) {
            Propagation::Solved => {
                let solution = attempt.cells[..geometry.cells()].to_vec();
                return Ok((
                    Rating {
                        difficulty,
                        nodes: placed,
                        solution,
                    },
                    attempt.cells,
                ));
            }
            Propagation::Contradiction => return Err(Unrated::NoSolution),
            Propagation::Stuck => {}
        }
    }
    let count = count_solutions(geometry, board, 2, SEARCH_NODE_BUDGET);
    match (count.exhausted, count.solutions, count.solution) {
        (_, 2.., _) => Err(Unrated::MultipleSolutions),
        (true, _, _) => Err(Unrated::TooHard),
        (false, 1, Some(solution)) => Ok((
            Rating {
                difficulty: Difficulty::Hard,
                nodes: count.nodes,
                solution: solution[..geometry.cells()].to_vec(),
            },
            solution,
        )),
        _ => Err(Unrated::NoSolution),
    }
}

/// A solved grid from the seed: a base pattern with random digit, row-in-band,
/// band, column-in-stack and stack permutations (and a transpose for square
/// boxes). Each of these maps a valid grid to a valid grid.
fn full_grid(geometry: &Geometry, rng: &mut Rng) -> [u8; MAX_CELLS] {
    let side = geometry.side;
    let (box_rows, box_cols) = (geometry.box_rows, geometry.box_cols);
    let mut digits: Vec<u8> = (1..=side as u8).collect();
    rng.shuffle(&mut digits);
    // Bands are groups of box_rows rows; there are box_cols of them.
    let rows = permuted_lines(rng, box_cols, box_rows);
    // Stacks are groups of box_cols columns; there are box_rows of them.
    let cols = permuted_lines(rng, box_rows, box_cols);
    let transpose = box_rows == box_cols && rng.below(2) == 1;
    let mut grid = [0u8; MAX_CELLS];
    for (row, &source_row) in rows.iter().enumerate() {
        for (col, &source_col) in cols.iter().enumerate() {
            let base =
                (box_cols * (source_row % box_rows) + source_row / box_rows + source_col) % side;
            let cell = if transpose {
                col * side + row
            } else {
                row * side + col
            };
            grid[cell] = digits[base];
        }
    }
    grid
}

/// A solved grid filled by a randomized depth-first search (random digit order
/// on the blank with the fewest candidates, singles as propagation). Grids
/// from a permuted base pattern are all alike (full of small unavoidable
/// sets, which keep clues in); these are far more varied. `None` if the node
/// budget runs out, which the caller covers with the pattern.
fn random_grid(geometry: &Geometry, rng: &mut Rng) -> Option<[u8; MAX_CELLS]> {
    let empty = Board::new(geometry, &[0; MAX_CELLS][..geometry.cells()])?;
    let mut nodes = 0u64;
    fill(geometry, empty, rng, &mut nodes)
}

fn fill(
    geometry: &Geometry,
    mut board: Board,
    rng: &mut Rng,
    nodes: &mut u64,
) -> Option<[u8; MAX_CELLS]> {
    *nodes += 1;
    if *nodes > RANDOM_GRID_NODE_BUDGET {
        return None;
    }
    let mut placed = 0;
    match board.propagate(geometry, true, &mut placed) {
        Propagation::Contradiction => None,
        Propagation::Solved => Some(board.cells),
        Propagation::Stuck => {
            let mut best: Option<(usize, u16)> = None;
            for cell in 0..geometry.cells() {
                let candidates = board.candidates(cell);
                if board.cells[cell] == 0
                    && best.is_none_or(|(_, fewest)| candidates.count_ones() < fewest.count_ones())
                {
                    best = Some((cell, candidates));
                }
            }
            let (cell, candidates) = best?;
            let mut digits: Vec<u8> = (1..=geometry.side as u8)
                .filter(|digit| candidates & (1 << digit) != 0)
                .collect();
            rng.shuffle(&mut digits);
            for digit in digits {
                let mut child = board.clone();
                let mut pending = Pending {
                    cells: [0; MAX_CELLS],
                    len: 0,
                };
                // A contradiction here is found again by the child's propagation.
                child.place(geometry, cell, digit, &mut pending);
                if let Some(grid) = fill(geometry, child, rng, nodes) {
                    return Some(grid);
                }
            }
            None
        }
    }
}

/// A permutation of `groups * per_group` lines that keeps each group together.
fn permuted_lines(rng: &mut Rng, groups: usize, per_group: usize) -> Vec<usize> {
    let mut group_order: Vec<usize> = (0..groups).collect();
    rng.shuffle(&mut group_order);
    let mut lines = Vec::with_capacity(groups * per_group);
    for group in group_order {
        let mut inner: Vec<usize> = (0..per_group)
            .map(|offset| group * per_group + offset)
            .collect();
        rng.shuffle(&mut inner);
        lines.extend(inner);
    }
    lines
}

/// What to do after removing one clue.
enum Removal {
    /// The puzzle without the clue is within the target.
    Keep,
    /// It is not: put the clue back.
    Restore,
}

/// Whether removing the clue `removed` (which held `digit`) keeps the puzzle
/// within `target`. `search_nodes_left` bounds the search work of a `hard`
/// derivation.
fn after_removal(
    geometry: &Geometry,
    board: &Board,
    target: Difficulty,
    removed: usize,
    digit: u8,
    search_nodes_left: &mut u64,
) -> Removal {
    let hidden = target != Difficulty::Easy;
    if deducible_at_once(geometry, board, removed, digit, hidden) {
        return Removal::Keep;
    }
    let mut attempt = board.clone();
    let mut placed = 0;
    match attempt.propagate_until(geometry, hidden, &mut placed, Some(removed)) {
        Propagation::Solved => Removal::Keep,
        Propagation::Contradiction => Removal::Restore,
        Propagation::Stuck if target == Difficulty::Hard && *search_nodes_left > 0 => {
            // The puzzle with the clue had exactly one solution, which has
            // `digit` at `removed`; so the puzzle without it is unique iff no
            // solution puts another digit there. Looking for one such solution
            // skips the known solution's subtree.
            let mut others = board.candidates(removed) & !(1 << digit);
            while others != 0 {
                let other = others.trailing_zeros() as u8;
                others &= others - 1;
                let mut child = board.clone();
                let mut pending = Pending {
                    cells: [0; MAX_CELLS],
                    len: 0,
                };
                // A contradiction here is found again by the search's propagation.
                child.place(geometry, removed, other, &mut pending);
                let count = count_solutions(geometry, &child, 1, *search_nodes_left);
                *search_nodes_left = search_nodes_left.saturating_sub(count.nodes);
                if count.exhausted || count.solutions > 0 {
                    return Removal::Restore;
                }
            }
            Removal::Keep
        }
        Propagation::Stuck => Removal::Restore,
    }
}

/// Whether the removed clue is a single in the puzzle without it: then one
/// deduction restores the previous puzzle, which was within the target, so no
/// full solve is needed. This makes the early removals nearly free.
fn deducible_at_once(
    geometry: &Geometry,
    board: &Board,
    cell: usize,
    digit: u8,
    hidden: bool,
) -> bool {
    if board.candidates(cell) == 1 << digit {
        return true;
    }
    if !hidden {
        return false;
    }
    let side = geometry.side;
    let units = [
        usize::from(geometry.row_of[cell]),
        side + usize::from(geometry.col_of[cell]),
        2 * side + usize::from(geometry.box_of[cell]),
    ];
    units.into_iter().any(|unit| {
        geometry.units[unit][..side].iter().all(|&other| {
            let other = usize::from(other);
            other == cell || board.cells[other] != 0 || board.candidates(other) & (1 << digit) == 0
        })
    })
}

pub(crate) fn attempt(size: u32, target: Difficulty, rng: &mut Rng) -> Attempt {
    let Some(geometry) = Geometry::for_size(size) else {
        return Attempt::Rejected;
    };
    let full = match random_grid(geometry, rng) {
        Some(grid) => grid,
        None => full_grid(geometry, rng),
    };
    let mut puzzle = full;
    let mut order: Vec<usize> = (0..geometry.cells()).collect();
    rng.shuffle(&mut order);
    let mut search_nodes_left = HARD_SEARCH_NODES_BEFORE;
    let mut hard_reached = false;
    // The board of the current puzzle, kept in step with `puzzle` so each
    // removal costs a peer update instead of a rebuild.
    let Some(mut current) = Board::new(geometry, &puzzle[..geometry.cells()]) else {
        return Attempt::Rejected;
    };
    for cell in order {
        let saved = puzzle[cell];
        puzzle[cell] = 0;
        let before = search_nodes_left;
        let mut trial = current.clone();
        trial.remove(geometry, cell);
        let removal = after_removal(
            geometry,
            &trial,
            target,
            cell,
            saved,
            &mut search_nodes_left,
        );
        if matches!(removal, Removal::Keep) {
            current = trial;
        }
        match removal {
            Removal::Keep if !hard_reached && before != search_nodes_left => {
                // This removal needed a search to prove uniqueness: the puzzle
                // now needs search, i.e. it is `hard`. Further removals only
                // thin it out, so they get a smaller budget.
                hard_reached = true;
                search_nodes_left = search_nodes_left.min(HARD_SEARCH_NODES_AFTER);
            }
            Removal::Keep => {}
            Removal::Restore => puzzle[cell] = saved,
        }
    }
    let givens = &puzzle[..geometry.cells()];
    let Some(board) = Board::new(geometry, givens) else {
        return Attempt::Rejected;
    };
    let Ok((rating, solution)) = rate_board(geometry, &board) else {
        return Attempt::Rejected;
    };
    if rating.difficulty != target {
        return Attempt::Rejected;
    }
    // Paired with the generator: the proven unique solution is the grid the
    // clues were taken from.
    debug_assert_eq!(&solution[..geometry.cells()], &full[..geometry.cells()]);
    let answer_row = choose_answer_row(geometry, givens, rng);
    let side = geometry.side;
    let answer: String = solution[answer_row * side..(answer_row + 1) * side]
        .iter()
        .map(|&digit| char::from(b'0' + digit))
        .collect();
    Attempt::Accepted(Candidate {
        difficulty: target.as_str().to_owned(),
        text: render(geometry, givens, target, answer_row),
        answer,
        data: PuzzleData::Sudoku {
            size,
            givens: givens.to_vec(),
            answer_row: answer_row as u32,
        },
        solver: SolverStats {
            nodes: rating.nodes,
            technique: rating.difficulty.technique().to_owned(),
        },
    })
}

/// A row with the most blanks among a random rotation of rows, so the answer
/// always needs solving.
fn choose_answer_row(geometry: &Geometry, givens: &[u8], rng: &mut Rng) -> usize {
    let side = geometry.side;
    let start = rng.below(side);
    let blanks = |row: usize| {
        givens[row * side..(row + 1) * side]
            .iter()
            .filter(|&&digit| digit == 0)
            .count()
    };
    let mut best = start;
    for offset in 1..side {
        let row = (start + offset) % side;
        if blanks(row) > blanks(best) {
            best = row;
        }
    }
    best
}

fn render(geometry: &Geometry, givens: &[u8], difficulty: Difficulty, answer_row: usize) -> String {
    let side = geometry.side;
    let (box_rows, box_cols) = (geometry.box_rows, geometry.box_cols);
    let mut text = format!(
        "Sudoku {side}x{side} ({difficulty}). Fill every blank (.) with a digit 1-{side} so that \
         each row, each column and each {box_rows}x{box_cols} box holds every digit exactly once.\n\
         Answer with the {side} digits of row {row} (marked >), left to right, no spaces.\n\n",
        difficulty = difficulty.as_str(),
        row = answer_row + 1,
    );
    let separator: String = (0..side / box_cols)
        .map(|_| "-".repeat(2 * box_cols + 1))
        .collect::<Vec<_>>()
        .join("+");
    for row in 0..side {
        if row > 0 && row % box_rows == 0 {
            text.push_str("  ");
            text.push_str(&separator);
            text.push('\n');
        }
        text.push_str(if row == answer_row { "> " } else { "  " });
        for col in 0..side {
            if col > 0 && col % box_cols == 0 {
                text.push_str(" |");
            }
            text.push(' ');
            text.push(match givens[row * side + col] {
                0 => '.',
                digit => char::from(b'0' + digit),
            });
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::instance_seed;

    fn rng(label: &str) -> Rng {
        Rng::from_seed(instance_seed(b"test", "hunt", "stage", label, 0))
    }

    #[test]
    fn full_grids_are_valid() {
        for size in [4u32, 6, 9] {
            let geometry = Geometry::for_size(size).unwrap();
            for seed in 0..50 {
                let grid = full_grid(geometry, &mut rng(&seed.to_string()));
                let board = Board::new(geometry, &grid[..geometry.cells()]).expect("valid grid");
                assert_eq!(board.blanks, 0);
            }
        }
    }

    #[test]
    fn rates_known_puzzles() {
        // A classic easy puzzle (naked singles suffice).
        let easy =
            "530070000600195000098000060800060003400803001700020006060000280000419005000080079";
        let cells: Vec<u8> = easy.bytes().map(|byte| byte - b'0').collect();
        let rating = rate(9, &cells).unwrap();
        assert!(rating.difficulty <= Difficulty::Medium);
        assert_eq!(
            rating
                .solution
                .iter()
                .map(|d| char::from(b'0' + d))
                .collect::<String>(),
            "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
        );
        // An empty grid has many solutions.
        assert_eq!(rate(9, &[0; 81]), Err(Unrated::MultipleSolutions));
        // Clashing givens are malformed, as are wrong sizes.
        let mut clash = vec![0u8; 16];
        clash[0] = 1;
        clash[1] = 1;
        assert_eq!(rate(4, &clash), Err(Unrated::Malformed));
        assert_eq!(rate(5, &[0; 25]), Err(Unrated::Malformed));
        assert_eq!(rate(4, &[0; 3]), Err(Unrated::Malformed));
        assert_eq!(rate(4, &[9; 16]), Err(Unrated::Malformed));
    }

    #[test]
    fn hard_needs_search() {
        // "Platinum Blonde"-style puzzles are out of reach of singles; this
        // well-known hard puzzle (Arto Inkala's) needs search.
        let hard =
            "800000000003600000070090200050007000000045700000100030001000068008500010090000400";
        let cells: Vec<u8> = hard.bytes().map(|byte| byte - b'0').collect();
        let rating = rate(9, &cells).unwrap();
        assert_eq!(rating.difficulty, Difficulty::Hard);
        assert!(rating.nodes > 1);
    }

    #[test]
    fn render_marks_the_answer_row() {
        let geometry = Geometry::for_size(6).unwrap();
        let grid = full_grid(geometry, &mut rng("render"));
        let text = render(geometry, &grid[..36], Difficulty::Easy, 2);
        assert_eq!(text.lines().filter(|line| line.starts_with('>')).count(), 1);
        assert!(text.contains("row 3"));
    }
}
