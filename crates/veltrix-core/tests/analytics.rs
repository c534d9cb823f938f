//! Analytics views: per-bucket, per-dimension counts, sums, minimums, maximums.
mod common;
use common::*;
use serde_json::json;
use veltrix_core::analytics::{ViewQuery, query_view};

const CONFIG: &str = r#"
[events.purchase.fields]
amount = { type = "number", min = 0 }
currency = { type = "string", optional = true }
[[views]]
name = "by_currency"
on = "purchase"
group_by = ["data.currency"]
bucket = "1m"
measures = ["count", "sum(data.amount)", "min(data.amount)", "max(data.amount)"]
"#;

fn rows(events: &[serde_json::Value], query: ViewQuery, partitions: usize) -> serde_json::Value {
    let plan = plan(CONFIG);
    let (_, engine) = veltrix_core::run_ndjson(plan.clone(), &ndjson(events), 0, partitions);
    serde_json::to_value(query_view(
        &plan.config.views[0],
        &engine.views.views[0],
        &query,
    ))
    .unwrap()
}

fn buy(id: &str, second: i64, amount: f64, currency: Option<&str>) -> serde_json::Value {
    let mut data = json!({"amount": amount});
    if let Some(c) = currency {
        data["currency"] = json!(c);
    }
    json!({"id": id, "player": format!("p{id}"), "type": "purchase", "ts": T0 + second * 1000, "data": data})
}

#[test]
fn buckets_group_by_minute_and_dimension() {
    let events = [
        buy("1", 0, 10.0, Some("coins")),
        buy("2", 30, 5.5, Some("coins")),
        buy("3", 59, 7.0, Some("gems")),
        buy("4", 60, 1.0, Some("coins")),
        buy("5", 61, 2.0, None),
    ];
    let all = rows(&events, ViewQuery::default(), 1);
    assert_eq!(
        all,
        json!([
            {"bucket": "2026-12-01T00:00:00Z", "dimensions": {"data.currency": "coins"},
             "measures": {"count": 2, "sum(data.amount)": 15.5, "min(data.amount)": 5.5, "max(data.amount)": 10.0}},
            {"bucket": "2026-12-01T00:00:00Z", "dimensions": {"data.currency": "gems"},
             "measures": {"count": 1, "sum(data.amount)": 7.0, "min(data.amount)": 7.0, "max(data.amount)": 7.0}},
            {"bucket": "2026-12-01T00:01:00Z", "dimensions": {"data.currency": null},
             "measures": {"count": 1, "sum(data.amount)": 2.0, "min(data.amount)": 2.0, "max(data.amount)": 2.0}},
            {"bucket": "2026-12-01T00:01:00Z", "dimensions": {"data.currency": "coins"},
             "measures": {"count": 1, "sum(data.amount)": 1.0, "min(data.amount)": 1.0, "max(data.amount)": 1.0}},
        ])
    );
    let later_coins = rows(
        &events,
        ViewQuery {
            from: Some(T0 + 60_000),
            to: None,
            filters: vec![("data.currency".into(), Some("coins".into()))],
        },
        1,
    );
    assert_eq!(later_coins.as_array().unwrap().len(), 1);
    assert_eq!(later_coins[0]["measures"]["count"], 1);
    // Same results whatever the partition count.
    assert_eq!(rows(&events, ViewQuery::default(), 4), all);
}
