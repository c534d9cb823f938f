//! Shared test schema and a scriptable [`Context`].
#![allow(dead_code)]

use std::collections::HashMap;

use veltrix_expr::{
    Compiled, Context, EventTypeDecl, ExprError, FieldDecl, FieldType, HuntDecl, Period, Schema,
    Value,
};

pub const PURCHASE: u16 = 0;
pub const LOGIN: u16 = 1;
pub const LOCATION: u16 = 2;

fn field(name: &str, ty: FieldType, optional: bool) -> FieldDecl {
    FieldDecl {
        name: name.into(),
        ty,
        optional,
    }
}

pub fn schema() -> Schema {
    Schema {
        event_types: vec![
            EventTypeDecl {
                name: "purchase".into(),
                fields: vec![
                    field("amount", FieldType::Double, false),
                    field("currency", FieldType::String, true),
                    field("qty", FieldType::Int, true),
                    field("gift", FieldType::Bool, true),
                ],
            },
            EventTypeDecl {
                name: "login".into(),
                fields: vec![],
            },
            EventTypeDecl {
                name: "location_visited".into(),
                fields: vec![field("place", FieldType::String, false)],
            },
            EventTypeDecl {
                name: "item_found".into(),
                fields: vec![field("item", FieldType::String, false)],
            },
        ],
        currencies: vec!["coins".into(), "gems".into()],
        badges: vec!["loyal".into(), "navigator".into()],
        hunts: vec![HuntDecl {
            name: "golden_compass".into(),
            stages: vec![
                "harbor".into(),
                "riddle".into(),
                "relics".into(),
                "cipher".into(),
            ],
        }],
    }
}

#[derive(Debug, Clone)]
pub enum Field {
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
}

/// A context whose every answer is set by the test.
#[derive(Debug, Clone, Default)]
pub struct TestCtx {
    pub fields: Vec<Option<Field>>,
    pub ts: i64,
    pub event_type: String,
    pub player: String,
    pub id: String,
    pub points: i64,
    pub balances: Vec<i64>,
    pub badges: Vec<String>,
    pub counts: HashMap<(u16, i64), i64>,
    pub sums: HashMap<(u16, u16, i64), f64>,
    pub streaks: HashMap<(u16, Period), i64>,
    pub stages_done: Vec<(u16, u16)>,
}

impl TestCtx {
    /// A purchase of `amount` with no optional fields.
    pub fn purchase(amount: f64) -> Self {
        TestCtx {
            fields: vec![Some(Field::Double(amount)), None, None, None],
            ts: 1_700_000_000_000,
            event_type: "purchase".into(),
            player: "alice".into(),
            id: "e1".into(),
            balances: vec![0, 0],
            ..TestCtx::default()
        }
    }

    pub fn with(mut self, slot: usize, value: Field) -> Self {
        self.fields[slot] = Some(value);
        self
    }
}

impl Context for TestCtx {
    fn field(&self, slot: u16) -> Value<'_> {
        match self.fields.get(usize::from(slot)) {
            Some(Some(Field::Bool(b))) => Value::Bool(*b),
            Some(Some(Field::Int(i))) => Value::Int(*i),
            Some(Some(Field::Double(d))) => Value::Double(*d),
            Some(Some(Field::Str(s))) => Value::Str(s),
            _ => Value::Missing,
        }
    }
    fn event_ts(&self) -> i64 {
        self.ts
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn event_player(&self) -> &str {
        &self.player
    }
    fn event_id(&self) -> &str {
        &self.id
    }
    fn points(&self) -> i64 {
        self.points
    }
    fn balance(&self, currency: u16) -> i64 {
        self.balances
            .get(usize::from(currency))
            .copied()
            .unwrap_or(0)
    }
    fn has_badge(&self, badge: u16) -> bool {
        let name = &schema().badges[usize::from(badge)];
        self.badges.contains(name)
    }
    fn has_badge_named(&self, name: &str) -> bool {
        self.badges.iter().any(|b| b == name)
    }
    fn count(&self, event_type: u16, window_ms: i64) -> i64 {
        self.counts
            .get(&(event_type, window_ms))
            .copied()
            .unwrap_or(0)
    }
    fn sum(&self, event_type: u16, field: u16, window_ms: i64) -> f64 {
        self.sums
            .get(&(event_type, field, window_ms))
            .copied()
            .unwrap_or(0.0)
    }
    fn streak(&self, event_type: u16, period: Period) -> i64 {
        self.streaks
            .get(&(event_type, period))
            .copied()
            .unwrap_or(0)
    }
    fn stage_done(&self, hunt: u16, stage: u16) -> bool {
        self.stages_done.contains(&(hunt, stage))
    }
}

pub fn compile_on(src: &str, trigger: u16) -> Compiled {
    match veltrix_expr::compile_condition(src, &schema(), trigger) {
        Ok(c) => c,
        Err(errors) => panic!("{src}: {}", render(src, &errors)),
    }
}

/// rustc-like rendering, for readable snapshots: message, source, underline, help.
pub fn render(src: &str, errors: &[ExprError]) -> String {
    let mut out = String::new();
    for e in errors {
        let width = src
            .get(e.span.clone())
            .map_or(1, |s| s.chars().count().max(1));
        let indent = src.get(..e.span.start).map_or(0, |s| s.chars().count());
        out.push_str(&format!("error: {}\n", e.message));
        out.push_str(&format!("  | {src}\n"));
        out.push_str(&format!(
            "  | {}{}  [{}..{}]\n",
            " ".repeat(indent),
            "^".repeat(width),
            e.span.start,
            e.span.end
        ));
        if let Some(help) = &e.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
    }
    out
}
