//! `GET /v1/stream`: server-sent events of grants, stage solves, hunt
//! completions and leaderboard changes.
//!
//! The engine thread turns the `Effect`s of each applied event into messages
//! (only while someone listens) and the log's completion callback publishes
//! them once the request's records are durable, so the stream never shows a
//! change that a crash could take back. Publishing goes through a bounded
//! `tokio::sync::broadcast` channel: sending never waits, and a client that
//! falls more than the channel's capacity behind is told how many messages it
//! missed (`event: lagged`) instead of slowing the engine.

use crate::engine::Core;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use veltrix_core::boards::bucket_of;
use veltrix_core::dump::grant_json;
use veltrix_core::partition::Effect;

/// Messages the channel holds for the slowest client before it lags.
pub const DEFAULT_STREAM_CAPACITY: usize = 4096;
/// Most clients of the stream at once (more get 503).
pub const MAX_STREAM_CLIENTS: usize = 1024;

/// One server-sent event: `event: kind`, `id: seq`, `data: json`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMessage {
    /// `grant`, `stage_solved`, `hunt_completed`, `leaderboard` or `config`.
    pub kind: &'static str,
    /// Log position of the event that caused it.
    pub seq: u64,
    /// The player it concerns (for `?player=` filters).
    pub player: Arc<str>,
    /// One line of JSON.
    pub data: String,
}

pub type StreamSender = broadcast::Sender<Arc<StreamMessage>>;

/// Every kind of message, for `?kinds=` filters.
pub const KINDS: [&str; 5] = [
    "grant",
    "stage_solved",
    "hunt_completed",
    "leaderboard",
    "config",
];

/// The message of a configuration switch (`POST /v1/config`) recorded at
/// `seq`: concerns no player (a `?player=` filter leaves it out).
pub fn config_message(seq: u64, data: serde_json::Value) -> Arc<StreamMessage> {
    message("config", seq, &Arc::from(""), data)
}

fn message(
    kind: &'static str,
    seq: u64,
    player: &Arc<str>,
    data: serde_json::Value,
) -> Arc<StreamMessage> {
    Arc::new(StreamMessage {
        kind,
        seq,
        player: player.clone(),
        data: data.to_string(),
    })
}

/// What one client wants: `None` is everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub kinds: Option<Vec<&'static str>>,
    pub player: Option<String>,
}

impl Filter {
    fn wants(&self, message: &StreamMessage) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&message.kind))
            && self
                .player
                .as_deref()
                .is_none_or(|player| *message.player == *player)
    }
}

/// The messages for the effects of the event applied at `seq` to
/// `partition`: each effect in order, then the new standing of each
/// (leaderboard, player) that a grant with points moved.
pub fn messages(
    core: &Core,
    seq: u64,
    partition: usize,
    effects: &[Effect],
    out: &mut Vec<Arc<StreamMessage>>,
) {
    let config = &core.plan.config;
    let part = &core.engine.partitions[partition];
    let mut moved: Vec<(usize, i64, Arc<str>)> = Vec::new();
    for effect in effects {
        match *effect {
            Effect::Granted(index) => {
                let grant = &part.grants[index];
                let mut data = grant_json(config, grant);
                data["seq"] = json!(seq);
                out.push(message("grant", seq, &grant.player, data));
                if grant.points > 0 {
                    for (board, definition) in config.leaderboards.iter().enumerate() {
                        if definition.hunt.is_some() && definition.hunt != grant.cause.hunt() {
                            continue;
                        }
                        let bucket = bucket_of(definition.period, grant.ts);
                        if !moved
                            .iter()
                            .any(|(b, k, p)| *b == board && *k == bucket && *p == grant.player)
                        {
                            moved.push((board, bucket, grant.player.clone()));
                        }
                    }
                }
            }
            Effect::StageSolved {
                player,
                hunt,
                stage,
            } => {
                let hunt = &config.hunts[hunt as usize];
                let player = &part.players[player as usize].name;
                out.push(message(
                    "stage_solved",
                    seq,
                    player,
                    json!({
                        "seq": seq,
                        "player": &**player,
                        "hunt": hunt.name,
                        "stage": hunt.stages[stage as usize].id,
                    }),
                ));
            }
            Effect::HuntCompleted { player, hunt } => {
                let player = &part.players[player as usize].name;
                out.push(message(
                    "hunt_completed",
                    seq,
                    player,
                    json!({
                        "seq": seq,
                        "player": &**player,
                        "hunt": config.hunts[hunt as usize].name,
                    }),
                ));
            }
        }
    }
    let boards = &core.engine.boards;
    for (board, bucket, player) in moved {
        let row = boards
            .player_id(&player)
            .and_then(|id| boards.board(board, bucket)?.row(id));
        if let Some(row) = row {
            let mut data = json!(boards.named(row));
            data["leaderboard"] = json!(config.leaderboards[board].name);
            data["seq"] = json!(seq);
            out.push(message("leaderboard", seq, &player, data));
        }
    }
}

/// The SSE response for one client: every message published from now on
/// that `filter` wants, `lagged` when it fell behind, ending when the server
/// shuts down.
pub fn sse(
    rx: broadcast::Receiver<Arc<StreamMessage>>,
    closing: watch::Receiver<bool>,
    filter: Filter,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let state = (rx, closing, filter);
    let stream = futures_util::stream::unfold(state, |(mut rx, mut closing, filter)| async move {
        let event = loop {
            if *closing.borrow() {
                return None;
            }
            tokio::select! {
                received = rx.recv() => match received {
                    Ok(m) if !filter.wants(&m) => continue,
                    Ok(m) => break Event::default()
                        .event(m.kind)
                        .id(m.seq.to_string())
                        .data(&m.data),
                    Err(broadcast::error::RecvError::Lagged(missed)) => break Event::default()
                        .event("lagged")
                        .data(json!({"missed": missed}).to_string()),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Shutting down (or the server is gone): end the response so
                // a graceful shutdown does not wait for stream clients forever.
                _ = closing.changed() => return None,
            }
        };
        Some((Ok(event), (rx, closing, filter)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
