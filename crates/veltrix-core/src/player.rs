//! One player's state. Everything the engine needs to decide the next event
//! of this player lives here, so a partition owns its players outright.

use crate::grant::GrantId;
use crate::windows::Windows;
use std::collections::VecDeque;
use std::sync::Arc;
use veltrix_config::{BadgeId, HuntId};

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlayerState {
    pub name: Arc<str>,
    pub points: i64,
    /// Indexed by currency id; grows on first grant.
    pub balances: Vec<i64>,
    /// Unspent units per currency, oldest first: (grant id, next unit, last unit).
    pub coins: Vec<VecDeque<(GrantId, i64, i64)>>,
    /// In the order earned; no repeats.
    pub badges: Vec<BadgeId>,
    /// Sparse: only rules that fired or hold sequence candidates for this player.
    pub rules: Vec<(u16, RuleState)>,
    /// Indexed by hunt id; grows on first progress.
    pub hunts: Vec<HuntProgress>,
    pub windows: Windows,
    /// Ledger entries in log order.
    pub ledger: Vec<LedgerEntry>,
    /// Spend idempotency keys already applied → ledger index.
    pub spend_keys: Vec<(Box<str>, usize)>,
}

/// Where a ledger entry lives in its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LedgerEntry {
    Grant(usize),
    Spend(usize),
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleState {
    pub granted: bool,
    pub last_grant_ts: Option<i64>,
    /// Event times of grants, for `limit` (kept sorted).
    pub grant_times: VecDeque<i64>,
    /// Unmatched sequence candidates, in log order.
    pub candidates: VecDeque<Candidate>,
    /// Greatest event time among candidates ever added (for pruning).
    pub candidates_newest_ts: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub seq: u64,
    pub ts: i64,
    pub event_type: u16,
    pub id: Arc<str>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HuntProgress {
    /// Stage indices in the order solved.
    pub solved: Vec<u16>,
    /// Items found per collect stage, by item index (empty until first item).
    pub collected: Vec<Vec<bool>>,
    pub completed: bool,
}

impl HuntProgress {
    pub fn is_solved(&self, stage: u16) -> bool {
        self.solved.contains(&stage)
    }

    /// The first stage index not solved: the active stage of an ordered hunt.
    pub fn first_unsolved(&self) -> u16 {
        (0..=self.solved.len() as u16)
            .find(|k| !self.is_solved(*k))
            .unwrap_or(0)
    }

    pub fn is_started(&self) -> bool {
        !self.solved.is_empty() || self.collected.iter().any(|c| c.contains(&true))
    }
}

impl PlayerState {
    pub fn new(name: Arc<str>) -> Self {
        PlayerState {
            name,
            ..PlayerState::default()
        }
    }

    pub fn balance(&self, currency: u16) -> i64 {
        self.balances.get(currency as usize).copied().unwrap_or(0)
    }

    pub fn has_badge(&self, badge: BadgeId) -> bool {
        self.badges.contains(&badge)
    }

    pub fn hunt(&self, hunt: HuntId) -> Option<&HuntProgress> {
        self.hunts.get(hunt as usize)
    }

    pub fn hunt_mut(&mut self, hunt: HuntId) -> &mut HuntProgress {
        if self.hunts.len() <= hunt as usize {
            self.hunts
                .resize_with(hunt as usize + 1, HuntProgress::default);
        }
        &mut self.hunts[hunt as usize]
    }

    pub fn rule(&self, rule: u16) -> Option<&RuleState> {
        self.rules.iter().find(|(r, _)| *r == rule).map(|(_, s)| s)
    }

    pub fn rule_mut(&mut self, rule: u16) -> &mut RuleState {
        let at = match self.rules.iter().position(|(r, _)| *r == rule) {
            Some(at) => at,
            None => {
                self.rules.push((rule, RuleState::default()));
                self.rules.len() - 1
            }
        };
        &mut self.rules[at].1
    }

    /// Credits currency units of one grant.
    pub fn credit(&mut self, currency: u16, amount: i64, grant_id: GrantId) {
        debug_assert!(amount > 0);
        let index = currency as usize;
        if self.balances.len() <= index {
            self.balances.resize(index + 1, 0);
            self.coins.resize_with(index + 1, VecDeque::new);
        }
        self.balances[index] += amount;
        self.coins[index].push_back((grant_id, 1, amount));
    }

    /// Takes `amount` units oldest first; None (and no change) when short.
    pub fn debit(&mut self, currency: u16, amount: i64) -> Option<Vec<(GrantId, i64, i64)>> {
        let index = currency as usize;
        if amount <= 0 || self.balance(currency) < amount {
            return None;
        }
        let mut left = amount;
        let mut taken = Vec::new();
        let lots = &mut self.coins[index];
        while left > 0 {
            // Invariant: the balance equals the units left in the lots, so a
            // lot exists while units are still owed.
            let Some(lot) = lots.front_mut() else { break };
            let available = lot.2 - lot.1 + 1;
            let take = available.min(left);
            taken.push((lot.0, lot.1, lot.1 + take - 1));
            lot.1 += take;
            left -= take;
            if lot.1 > lot.2 {
                lots.pop_front();
            }
        }
        self.balances[index] -= amount;
        assert!(self.balances[index] >= 0, "balance went negative");
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_takes_oldest_units_first_and_never_goes_negative() {
        let (g1, g2) = (GrantId(1), GrantId(2));
        let mut p = PlayerState::new("alice".into());
        p.credit(0, 3, g1);
        p.credit(0, 2, g2);
        assert_eq!(p.debit(0, 6), None);
        assert_eq!(p.balance(0), 5);
        let taken = p.debit(0, 4).unwrap();
        assert_eq!(taken, vec![(g1, 1, 3), (g2, 1, 1)]);
        assert_eq!(p.balance(0), 1);
        assert_eq!(p.debit(0, 1).unwrap(), vec![(g2, 2, 2)]);
        assert_eq!(p.balance(0), 0);
    }
}
