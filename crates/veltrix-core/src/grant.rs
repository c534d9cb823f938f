//! Grants and spends: the ledger's entries. A grant's id is derived from its
//! cause — (source, player, triggering event ids) — so the same cause can
//! never pay twice, however often the log is replayed.

use std::sync::Arc;
use veltrix_config::{BadgeId, CurrencyId, HuntId, StageIndex};
use xxhash_rust::xxh3::Xxh3;

/// What awarded a grant; rendered as in the state dump's `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Cause {
    Rule(u16),
    Stage(HuntId, StageIndex),
    FirstFinder(HuntId, StageIndex),
    Completion(HuntId),
    Prize(HuntId),
    /// The rule or hunt stage that made the grant is not in the active
    /// configuration (it was removed by a configuration switch); the grant's
    /// `source` still names it.
    Retired,
}

impl Cause {
    /// The hunt whose points these are, for hunt leaderboards.
    pub fn hunt(self) -> Option<HuntId> {
        match self {
            Cause::Rule(_) | Cause::Retired => None,
            Cause::Stage(h, _)
            | Cause::FirstFinder(h, _)
            | Cause::Completion(h)
            | Cause::Prize(h) => Some(h),
        }
    }
}

/// A grant's id: 128 bits derived from its cause, shown as 32 lowercase hex
/// characters. Kept as a number so grants and coins allocate no strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(pub u128);

impl std::fmt::Display for GrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl<'de> serde::Deserialize<'de> for GrantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u128::from_str_radix(&text, 16)
            .map(GrantId)
            .map_err(|_| serde::de::Error::custom(format!("invalid grant id {text:?}")))
    }
}

impl serde::Serialize for GrantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub id: GrantId,
    /// Log position of the triggering event.
    pub seq: u64,
    /// Event time of the triggering event.
    pub ts: i64,
    pub player: Arc<str>,
    pub cause: Cause,
    /// `rule:NAME`, `hunt:HUNT:STAGE`, … shared per configuration.
    pub source: Arc<str>,
    /// Ids of the events that caused it, in log order; the last one triggered it.
    pub events: Vec<Arc<str>>,
    pub points: i64,
    pub currencies: Vec<(CurrencyId, i64)>,
    pub badge: Option<BadgeId>,
}

/// A spend of currency units, consumed oldest grant first so each spent
/// unit (`<grant id>/<n>`) is known.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spend {
    pub key: Box<str>,
    pub seq: u64,
    pub player: Arc<str>,
    pub currency: CurrencyId,
    pub amount: i64,
    /// (grant id, first unit, last unit), inclusive, in spending order.
    pub units: Vec<(GrantId, i64, i64)>,
}

/// Deterministic grant id: xxh3-128 over length-prefixed parts, so no two
/// different causes can encode to the same byte string.
pub fn grant_id(source: &str, player: &str, events: &[Arc<str>]) -> GrantId {
    let mut hasher = Xxh3::new();
    for part in [source, player]
        .into_iter()
        .chain(events.iter().map(|e| &**e))
    {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    GrantId(hasher.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ids_depend_on_every_part_and_on_boundaries() {
        let a = grant_id("rule:x", "alice", &["e1".into()]);
        assert_eq!(a.to_string().len(), 32);
        assert_eq!(a, grant_id("rule:x", "alice", &["e1".into()]));
        assert_ne!(a, grant_id("rule:x", "alice", &["e2".into()]));
        assert_ne!(a, grant_id("rule:y", "alice", &["e1".into()]));
        assert_ne!(
            grant_id("rule:x", "ab", &["c".into()]),
            grant_id("rule:x", "a", &["bc".into()])
        );
    }
}
