//! The deterministic Veltrix engine: events and a configuration in, state and
//! grants out. No I/O and no clock: event time comes in with each event and
//! log positions with each record, so replaying a log gives the same state,
//! bit for bit.

pub mod analytics;
pub mod boards;
pub mod cow;
pub mod dump;
pub mod engine;
pub mod event;
pub mod grant;
pub mod parallel;
pub mod partition;
pub mod plan;
pub mod player;
pub mod puzzles;
pub mod reconfigure;
pub mod snapshot;
pub mod views;
pub mod windows;

pub use engine::{
    Counts, Engine, Ingest, Record, Rejection, Submission, ndjson_lines, partition_of, run_ndjson,
};
pub use event::{Event, EventError, FieldValue, parse_event, rejection_reason};
pub use plan::Plan;
pub use reconfigure::{SwitchError, SwitchReport, check_switch, switch_config};
pub use veltrix_config;
