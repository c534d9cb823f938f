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
/// Clue swaps a `hard` derivation may try when its puzzle ended solvable by
/// singles, before the derivation is rejected...
const HARD_SWAP_TRIES: usize = 100;
/// ...and search nodes each swap may spend on its uniqueness proof.
const HARD_SEARCH_NODES_SWAP: u64 = 300;

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
/// could not finish. 6×6 `hard` took 16 rejected derivations on average
/// (3.75% of players exhausting all 64) before clue swaps, 2.1 (none
/// exhausted) since; offering it is left to the engine.
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
    /// `push` without a branch on `condition`. A blank becomes a single at
    /// most once per propagation (candidates only shrink), so `len` stays
    /// within `MAX_CELLS`; the clamps only keep the indexing in bounds.
    fn push_if(&mut self, cell: usize, condition: bool) {
        self.cells[self.len.min(MAX_CELLS - 1)] = cell as u8;
        self.len = (self.len + usize::from(condition)).min(MAX_CELLS);
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
        // Branch-free: which peers lose the digit is unpredictable, so every
        // peer is updated and pushed, and only counted when it became a
        // single (filled cells have no candidates and never change).
        let mut emptied = false;
        for &peer in &geometry.peers[cell][..geometry.peer_count] {
            let peer = usize::from(peer);
            let before = self.candidates[peer];
            let after = before & !bit;
            self.candidates[peer] = after;
            let changed = before != after;
            emptied |= changed & (after == 0);
            let single = changed & (after != 0) & (after & after.wrapping_sub(1) == 0);
            pending.push_if(peer, single);
        }
        !emptied
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
        // Branch-free scan: filled cells have no candidates, so a blank
        // without any is a contradiction.
        let mut contradiction = false;
        for cell in 0..geometry.cells() {
            let candidates = self.candidates[cell];
            contradiction |= (candidates == 0) & (self.cells[cell] == 0);
            let single = (candidates != 0) & (candidates & candidates.wrapping_sub(1) == 0);
            pending.push_if(cell, single);
        }
        if contradiction {
            return Propagation::Contradiction;
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
        // Units are rows, then columns, then boxes, `side` of each.
        for index in 0..3 * side {
            let unit = &geometry.units[index][..side];
            let used = if index < side {
                self.row_used[index]
            } else if index < 2 * side {
                self.col_used[index - side]
            } else {
                self.box_used[index - 2 * side]
            };
            let missing = geometry.all_digits() & !used;
            if missing == 0 {
                continue;
            }
            let mut once = 0u16;
            let mut twice = 0u16;
            for &cell in unit {
                let candidates = self.candidates[usize::from(cell)];
                twice |= once & candidates;
                once |= candidates;
            }
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
    let side = geometry.side;
    let mut start = [0u8; MAX_CELLS];
    let bands = side / geometry.box_rows;
    let stacks = side / geometry.box_cols;
    let mut digits: Vec<u8> = (1..=side as u8).collect();
    for diagonal in 0..bands.min(stacks) {
        rng.shuffle(&mut digits);
        for (index, &digit) in digits.iter().enumerate() {
            let row = diagonal * geometry.box_rows + index / geometry.box_cols;
            let col = diagonal * geometry.box_cols + index % geometry.box_cols;
            start[row * side + col] = digit;
        }
    }
    let empty = Board::new(geometry, &start[..geometry.cells()])?;
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
    /// The puzzle without the clue is within the target, and the allowed
    /// singles still solve it.
    Keep,
    /// Singles get stuck without the clue and a search proved the puzzle
    /// unique: it now needs search, i.e. it is `hard`.
    KeepNeedsSearch,
    /// It is not: put the clue back.
    Restore,
}

/// Most unavoidable sets one derivation remembers (each is one `u128`).
const MAX_UNAVOIDABLE: usize = 96;

/// Clue removal for one derivation: the solution, the current puzzle and its
/// board, and what was learned about the grid so far.
struct Remover<'a> {
    geometry: &'a Geometry,
    target: Difficulty,
    solution: [u8; MAX_CELLS],
    puzzle: [u8; MAX_CELLS],
    /// The board of `puzzle`, kept in step with it so each removal costs a
    /// peer update instead of a rebuild.
    current: Board,
    /// Bit `cell` set for every given of `puzzle`.
    givens: u128,
    /// Unavoidable sets of `solution`: cell sets on which another valid grid
    /// differs from it and agrees everywhere else. A puzzle with no given in
    /// one of them has that other grid as a second solution, so the last
    /// given in a set can never be removed; checking this is a few `u128`
    /// operations instead of a search. Seeded with the grid's unavoidable
    /// rectangles, extended by every second solution a search finds.
    unavoidable: Vec<u128>,
    /// Rejected removals: the clue and an unavoidable set it was the last
    /// given of (without it the puzzle has a second solution differing
    /// there), for `swap_towards_hard`.
    rejected: Vec<(u8, u128)>,
    search_nodes_left: u64,
    hard_reached: bool,
}

impl<'a> Remover<'a> {
    fn new(geometry: &'a Geometry, target: Difficulty, solution: [u8; MAX_CELLS]) -> Option<Self> {
        let current = Board::new(geometry, &solution[..geometry.cells()])?;
        let givens = (0..geometry.cells()).fold(0u128, |mask, cell| mask | 1 << cell);
        let mut remover = Remover {
            geometry,
            target,
            solution,
            puzzle: solution,
            current,
            givens,
            unavoidable: Vec::with_capacity(MAX_UNAVOIDABLE),
            rejected: Vec::new(),
            search_nodes_left: HARD_SEARCH_NODES_BEFORE,
            hard_reached: false,
        };
        if target == Difficulty::Hard {
            remover.add_unavoidable_rectangles();
        }
        Some(remover)
    }

    /// The 4-cell unavoidable sets: rows r1, r2 and columns c1, c2 with
    /// a at (r1,c1) and (r2,c2), b at (r1,c2) and (r2,c1), the rows in one
    /// band or the columns in one stack. Swapping a and b keeps every row,
    /// column and box valid.
    fn add_unavoidable_rectangles(&mut self) {
        let geometry = self.geometry;
        let side = geometry.side;
        let at = |row: usize, col: usize| self.solution[row * side + col];
        let mut found = Vec::new();
        for r1 in 0..side {
            for r2 in r1 + 1..side {
                let same_band = r1 / geometry.box_rows == r2 / geometry.box_rows;
                for c1 in 0..side {
                    for c2 in c1 + 1..side {
                        let same_stack = c1 / geometry.box_cols == c2 / geometry.box_cols;
                        if (same_band || same_stack)
                            && at(r1, c1) == at(r2, c2)
                            && at(r1, c2) == at(r2, c1)
                        {
                            found.push(
                                1u128 << (r1 * side + c1)
                                    | 1 << (r1 * side + c2)
                                    | 1 << (r2 * side + c1)
                                    | 1 << (r2 * side + c2),
                            );
                        }
                    }
                }
            }
        }
        for set in found {
            self.remember(set);
        }
    }

    fn remember(&mut self, set: u128) {
        if self.unavoidable.len() < MAX_UNAVOIDABLE {
            self.unavoidable.push(set);
        }
    }

    /// Tries removing each given of `order` in turn, keeping a removal while
    /// the puzzle stays within the target.
    fn sweep(&mut self, order: &[usize]) {
        for &cell in order {
            if self.puzzle[cell] == 0 {
                continue;
            }
            let mut trial = self.current.clone();
            trial.remove(self.geometry, cell);
            match self.after_removal(&trial, cell) {
                Removal::Keep => {}
                Removal::KeepNeedsSearch => {
                    if !self.hard_reached {
                        // The puzzle now needs search, i.e. it is `hard`.
                        // Further removals only thin it out, so they get a
                        // smaller budget.
                        self.hard_reached = true;
                        self.search_nodes_left =
                            self.search_nodes_left.min(HARD_SEARCH_NODES_AFTER);
                    }
                }
                Removal::Restore => continue,
            }
            self.current = trial;
            self.puzzle[cell] = 0;
            self.givens &= !(1u128 << cell);
        }
    }

    /// For a derivation whose puzzle ended minimal but still solvable by
    /// singles (about 42% of 9×9 `hard` sweeps): tries swapping one clue for
    /// another instead of starting over. For a clue `c` whose removal was
    /// rejected because the puzzle then had a second solution differing on
    /// the set `D`, the puzzle without `c` but with a clue at a blank `d` of
    /// `D` rules that solution out; it is kept if singles get stuck on it and
    /// a search proves it unique. Latest rejections first (they were made on
    /// the sparsest puzzle); at most `max_tries` swaps, each cheap to refuse
    /// when it leaves an already known unavoidable set without a given.
    fn swap_towards_hard(&mut self, max_tries: usize) {
        let geometry = self.geometry;
        let mut tries = 0;
        let rejected = std::mem::take(&mut self.rejected);
        for &(clue, set) in rejected.iter().rev() {
            let clue = usize::from(clue);
            let clue_bit = 1u128 << clue;
            if self.givens & clue_bit == 0 {
                continue;
            }
            let mut blanks = set & !self.givens & !clue_bit;
            while blanks != 0 {
                if tries == max_tries {
                    return;
                }
                tries += 1;
                let added = blanks.trailing_zeros() as usize;
                blanks &= blanks - 1;
                let givens = (self.givens & !clue_bit) | 1 << added;
                if self.unavoidable.iter().any(|&other| givens & other == 0) {
                    continue;
                }
                let mut board = self.current.clone();
                board.remove(geometry, clue);
                let mut pending = Pending {
                    cells: [0; MAX_CELLS],
                    len: 0,
                };
                // The solution's digit is a candidate of every blank.
                board.place(geometry, added, self.solution[added], &mut pending);
                // With `clue` the swapped puzzle is the current one plus a
                // clue, solvable by singles; so singles solve it iff they
                // fill `clue`.
                let mut budget = HARD_SEARCH_NODES_SWAP;
                if self.needs_search(&board, clue, &mut budget) != Ok(true) {
                    continue;
                }
                self.current = board;
                self.puzzle[clue] = 0;
                self.puzzle[added] = self.solution[added];
                self.givens = givens;
                self.hard_reached = true;
                return;
            }
        }
    }

    /// For a board lacking only the given `removed` of a `hard`-target puzzle
    /// known to be unique: `Ok(false)` if singles fill `removed` again (then
    /// they solve the board), `Ok(true)` if singles get stuck and a search
    /// within `budget` proves the board unique, else `Err` with the cells
    /// where a second solution differs from the known one (`None` when the
    /// budget ran out first). Second solutions become unavoidable sets.
    fn needs_search(
        &mut self,
        board: &Board,
        removed: usize,
        budget: &mut u64,
    ) -> Result<bool, Option<u128>> {
        let geometry = self.geometry;
        let mut attempt = board.clone();
        let mut placed = 0;
        match attempt.propagate_until(geometry, true, &mut placed, Some(removed)) {
            Propagation::Solved => return Ok(false),
            Propagation::Contradiction => return Err(None),
            Propagation::Stuck if *budget > 0 => {}
            Propagation::Stuck => return Err(None),
        }
        // The puzzle with the clue had exactly one solution, which has
        // `digit` at `removed`; so the board is unique iff no solution puts
        // another digit there. Looking for one such solution skips the known
        // solution's subtree, and starts from the stuck board: singles are
        // sound, so every solution agrees with what they placed.
        let digit = self.solution[removed];
        let mut others = attempt.candidates(removed) & !(1 << digit);
        // Stuck with `removed` blank: it has two or more candidates.
        debug_assert!(others != 0);
        while others != 0 {
            let other = others.trailing_zeros() as u8;
            others &= others - 1;
            let mut child = attempt.clone();
            let mut pending = Pending {
                cells: [0; MAX_CELLS],
                len: 0,
            };
            // A contradiction here is found again by the search's propagation.
            child.place(geometry, removed, other, &mut pending);
            let count = count_solutions(geometry, &child, 1, *budget);
            *budget = budget.saturating_sub(count.nodes);
            if let Some(second) = count.solution {
                let differs = (0..geometry.cells())
                    .filter(|&cell| second[cell] != self.solution[cell])
                    .fold(0u128, |mask, cell| mask | 1 << cell);
                self.remember(differs);
                return Err(Some(differs));
            }
            if count.exhausted {
                return Err(None);
            }
        }
        Ok(true)
    }

    /// Whether removing the given `removed` keeps the puzzle within the
    /// target; `board` is the puzzle without it.
    fn after_removal(&mut self, board: &Board, removed: usize) -> Removal {
        let geometry = self.geometry;
        let bit = 1u128 << removed;
        if let Some(&set) = self
            .unavoidable
            .iter()
            .find(|&&set| self.givens & set == bit)
        {
            self.rejected.push((removed as u8, set));
            return Removal::Restore;
        }
        let hidden = self.target != Difficulty::Easy;
        if deducible_at_once(geometry, board, removed, self.solution[removed], hidden) {
            return Removal::Keep;
        }
        if self.target != Difficulty::Hard {
            let mut attempt = board.clone();
            let mut placed = 0;
            return match attempt.propagate_until(geometry, hidden, &mut placed, Some(removed)) {
                Propagation::Solved => Removal::Keep,
                Propagation::Stuck | Propagation::Contradiction => Removal::Restore,
            };
        }
        let mut budget = self.search_nodes_left;
        let verdict = self.needs_search(board, removed, &mut budget);
        self.search_nodes_left = budget;
        match verdict {
            Ok(false) => Removal::Keep,
            Ok(true) => Removal::KeepNeedsSearch,
            Err(second) => {
                if let Some(set) = second {
                    self.rejected.push((removed as u8, set));
                }
                Removal::Restore
            }
        }
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
    let mut order: Vec<usize> = (0..geometry.cells()).collect();
    rng.shuffle(&mut order);
    let Some(mut remover) = Remover::new(geometry, target, full) else {
        return Attempt::Rejected;
    };
    remover.sweep(&order);
    if target == Difficulty::Hard && !remover.hard_reached {
        remover.swap_towards_hard(HARD_SWAP_TRIES);
    }
    let puzzle = remover.puzzle;
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
    fn remembered_sets_are_unavoidable() {
        for size in [6u32, 9] {
            let geometry = Geometry::for_size(size).unwrap();
            for seed in 0..40 {
                let mut rng = rng(&format!("unavoidable-{seed}"));
                let grid = random_grid(geometry, &mut rng).unwrap();
                let remover = Remover::new(geometry, Difficulty::Hard, grid).unwrap();
                // Each rectangle: swapping its two digits gives another valid
                // grid that differs exactly there.
                for &set in &remover.unavoidable {
                    assert_eq!(set.count_ones(), 4);
                    let cells: Vec<usize> = (0..geometry.cells())
                        .filter(|&cell| set & 1 << cell != 0)
                        .collect();
                    let (a, b) = (grid[cells[0]], grid[cells[1]]);
                    assert_ne!(a, b);
                    let mut other = grid;
                    for &cell in &cells {
                        other[cell] = if grid[cell] == a { b } else { a };
                    }
                    let board = Board::new(geometry, &other[..geometry.cells()]).expect("valid");
                    assert_eq!(board.blanks, 0);
                }
                // After a sweep every remembered set (rectangles and second
                // solutions) keeps a given, as a unique puzzle must.
                let mut remover = remover;
                let mut order: Vec<usize> = (0..geometry.cells()).collect();
                rng.shuffle(&mut order);
                remover.sweep(&order);
                if !remover.hard_reached {
                    remover.swap_towards_hard(HARD_SWAP_TRIES);
                }
                for &set in &remover.unavoidable {
                    assert_ne!(remover.givens & set, 0);
                }
                let givens: u128 = (0..geometry.cells())
                    .filter(|&cell| remover.puzzle[cell] != 0)
                    .fold(0, |mask, cell| mask | 1 << cell);
                assert_eq!(givens, remover.givens);
                let board = Board::new(geometry, &remover.puzzle[..geometry.cells()]).unwrap();
                let (_, solution) = rate_board(geometry, &board).expect("unique");
                assert_eq!(solution[..geometry.cells()], grid[..geometry.cells()]);
            }
        }
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
