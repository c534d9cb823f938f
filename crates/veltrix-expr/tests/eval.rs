//! Evaluation semantics through the public API.

mod common;

use common::{Field, LOCATION, LOGIN, PURCHASE, TestCtx, compile_on, schema};
use veltrix_expr::{Output, Period, Requirements, Type, compile};

fn cond(src: &str, ctx: &TestCtx) -> bool {
    compile_on(src, PURCHASE).eval_condition(ctx)
}

fn value(src: &str, ctx: &TestCtx) -> Output {
    match compile(src, &schema(), PURCHASE, None) {
        Ok(c) => c.eval(ctx),
        Err(e) => panic!("{src}: {}", common::render(src, &e)),
    }
}

#[test]
fn the_benchmark_condition() {
    let mut ctx = TestCtx::purchase(50.0);
    ctx.points = 999;
    assert!(cond("event.amount >= 50 && player.points < 1000", &ctx));
    ctx.points = 1000;
    assert!(!cond("event.amount >= 50 && player.points < 1000", &ctx));
    assert!(!cond("event.amount >= 50", &TestCtx::purchase(49.99)));
    assert!(cond("event.amount > 49.5", &TestCtx::purchase(49.99)));
}

#[test]
fn arithmetic_int_and_double() {
    let ctx = TestCtx::purchase(10.0).with(2, Field::Int(7));
    assert_eq!(value("1 + 2 * 3", &ctx), Output::Int(7));
    assert_eq!(value("(1 + 2) * 3", &ctx), Output::Int(9));
    assert_eq!(value("7 / 2", &ctx), Output::Int(3));
    assert_eq!(value("-7 / 2", &ctx), Output::Int(-3));
    assert_eq!(value("-7 % 3", &ctx), Output::Int(-1));
    assert_eq!(value("7 / 2.0", &ctx), Output::Double(3.5));
    assert_eq!(value("event.qty * 2", &ctx), Output::Int(14));
    assert_eq!(
        value("event.qty + event.amount", &ctx),
        Output::Double(17.0)
    );
    assert_eq!(value("event.amount / 4", &ctx), Output::Double(2.5));
    assert_eq!(value("-event.amount", &ctx), Output::Double(-10.0));
    assert_eq!(value("-event.qty", &ctx), Output::Int(-7));
    assert_eq!(value("2e3", &ctx), Output::Double(2000.0));
    assert_eq!(value("true ? 1 : 2.5", &ctx), Output::Double(1.0));
    // Mixed comparisons are numeric.
    assert!(cond("event.qty == 7.0", &ctx));
    assert!(cond("event.qty < 7.5", &ctx));
    assert!(cond("7.5 > event.qty", &ctx));
    assert!(cond("event.amount == 10", &ctx));
    assert!(cond("event.amount != event.qty", &ctx));
    assert!(cond("1 == 1.0 && 2 > 1.5 && 1.5 < 2", &ctx));
    // Exact even beyond 2^53, where f64 conversion would say "equal".
    assert!(!cond("9007199254740993 == 9007199254740992.0", &ctx));
    assert!(cond("9007199254740993 > 9007199254740992.0", &ctx));
}

#[test]
fn overflow_and_division_by_zero_are_missing() {
    let ctx = TestCtx::purchase(10.0).with(2, Field::Int(0));
    for src in [
        "9223372036854775807 + 1",
        "-9223372036854775808 - 1",
        "9223372036854775807 * 2",
        "-(-9223372036854775808)",
        "-9223372036854775808 / -1",
        "-9223372036854775808 % -1",
        "1 / event.qty",
        "1 % event.qty",
        "event.amount / 0",
        "event.amount / 0.0",
        "1e308 * 10.0",
    ] {
        assert_eq!(value(src, &ctx), Output::Missing, "{src}");
    }
    // A comparison with an error is false, in both directions.
    assert!(!cond("1 / event.qty > 0", &ctx));
    assert!(!cond("1 / event.qty <= 0", &ctx));
    assert!(!cond("1 / event.qty == 1 / event.qty", &ctx));
    assert!(cond("!(1 / event.qty > 0)", &ctx));
    assert_eq!(
        value("9223372036854775807 + 0", &ctx),
        Output::Int(i64::MAX)
    );
}

#[test]
fn missing_optional_fields() {
    let ctx = TestCtx::purchase(10.0);
    // Comparisons with missing are false, whatever the operator.
    for src in [
        "event.currency == 'coins'",
        "event.currency != 'coins'",
        "event.qty > 0",
        "event.qty <= 0",
        "event.qty == event.qty",
        "event.gift == true",
        "event.gift != true",
        "event.currency in ['coins', 'gems']",
        "event.qty in [1, 2]",
    ] {
        assert!(!cond(src, &ctx), "{src}");
    }
    // Logical operators treat missing as false.
    assert!(!cond("event.gift", &ctx));
    assert!(cond("!event.gift", &ctx));
    assert!(!cond("event.gift && true", &ctx));
    assert!(cond("event.gift || true", &ctx));
    assert_eq!(value("event.gift ? 1 : 2", &ctx), Output::Int(2));
    // Other operations propagate missing.
    assert_eq!(value("event.qty + 1", &ctx), Output::Missing);
    assert_eq!(value("event.currency + 'x'", &ctx), Output::Missing);
    assert_eq!(value("size(event.currency)", &ctx), Output::Missing);
    assert_eq!(
        value("event.currency.startsWith('c')", &ctx),
        Output::Missing
    );
    assert_eq!(value("event.gift", &ctx), Output::Missing);
    // has() tests presence.
    assert!(!cond("has(event.currency)", &ctx));
    assert!(cond(
        "!has(event.currency) || event.currency == 'coins'",
        &ctx
    ));
    assert!(cond("has(event.amount) && has(event.ts)", &ctx));
    let ctx = ctx
        .with(1, Field::Str("coins".into()))
        .with(3, Field::Bool(false));
    assert!(cond(
        "has(event.currency) && event.currency == 'coins'",
        &ctx
    ));
    assert!(cond("event.gift == false && !event.gift", &ctx));
}

#[test]
fn strings() {
    let ctx = TestCtx::purchase(10.0).with(1, Field::Str("golden coins".into()));
    assert!(cond("event.currency.startsWith('golden')", &ctx));
    assert!(cond("event.currency.endsWith(\"coins\")", &ctx));
    assert!(cond("event.currency.contains('n c')", &ctx));
    assert!(!cond("event.currency.contains('gems')", &ctx));
    assert!(cond(
        "size(event.currency) == 12 && event.currency.size() == 12",
        &ctx
    ));
    assert!(cond("size('héllo') == 5", &ctx));
    assert!(cond("'a' + 'b' == 'ab'", &ctx));
    assert!(cond("event.currency + '!' == 'golden coins!'", &ctx));
    assert!(cond("'abc' < 'abd' && 'b' > 'abc' && 'a' <= 'a'", &ctx));
    assert!(cond(r#"'it\'s' == "it's" && 'a\tb'.contains('\t')"#, &ctx));
    assert_eq!(
        value("event.currency", &ctx),
        Output::Str("golden coins".into())
    );
    assert_eq!(
        value("true ? event.currency : 'none'", &ctx),
        Output::Str("golden coins".into())
    );
    assert_eq!(
        value("false ? event.currency : 'none'", &ctx),
        Output::Str("none".into())
    );
    assert!(cond(
        "event.type == 'purchase' && event.player == 'alice' && event.id == 'e1'",
        &ctx
    ));
    assert!(cond("event.ts == 1700000000000", &ctx));
}

#[test]
fn ternary_and_logic() {
    let ctx = TestCtx::purchase(75.0);
    assert!(cond("event.amount > 50 ? event.amount < 100 : false", &ctx));
    assert_eq!(
        value("event.amount > 100 ? 3 : event.amount > 50 ? 2 : 1", &ctx),
        Output::Int(2)
    );
    assert!(cond("true || 1 / 0 == 1", &ctx));
    assert!(!cond("false && 1 / 0 == 1", &ctx));
    assert!(cond("!false && !!true", &ctx));
    assert!(cond("false || true && true", &ctx));
    assert!(!cond("(false || true) && false", &ctx));
}

#[test]
fn in_lists() {
    let ctx = TestCtx::purchase(2.0)
        .with(1, Field::Str("key".into()))
        .with(2, Field::Int(3));
    assert!(cond("event.currency in ['map', 'key', 'lantern']", &ctx));
    assert!(!cond("event.currency in ['map', 'lantern']", &ctx));
    assert!(!cond("event.currency in []", &ctx));
    assert!(cond("event.qty in [1, 2, 3]", &ctx));
    assert!(cond("event.qty in [1.5, 3.0]", &ctx));
    assert!(cond("event.amount in [1, 2]", &ctx));
    assert!(cond("-3 in [-3, 4]", &ctx));
    assert!(cond("true in [false, true]", &ctx));
    assert!(cond("!(event.qty in [4, 5])", &ctx));
}

#[test]
fn player_state_and_builtins() {
    let mut ctx = TestCtx::purchase(1.0);
    ctx.points = 120;
    ctx.balances = vec![5, 2];
    ctx.badges = vec!["navigator".into()];
    ctx.counts.insert((LOGIN, 86_400_000), 3);
    ctx.counts.insert((PURCHASE, 3_600_000), 1);
    ctx.sums.insert((PURCHASE, 0, 604_800_000), 99.5);
    ctx.streaks.insert((LOGIN, Period::Day), 7);
    ctx.streaks.insert((LOGIN, Period::Week), 2);
    ctx.stages_done.push((0, 1));
    assert!(cond(
        "player.points == 120 && player.coins == 5 && player.balances.gems == 2",
        &ctx
    ));
    assert!(cond(
        "'navigator' in player.badges && !('loyal' in player.badges)",
        &ctx
    ));
    assert!(cond("has_badge('navigator') && !has_badge('loyal')", &ctx));
    let ctx = ctx.with(1, Field::Str("navigator".into()));
    assert!(cond("event.currency in player.badges", &ctx));
    assert!(cond("!(event.currency + 'x' in player.badges)", &ctx));
    assert!(cond(
        "count('login', '1d') == 3 && count('purchase', '60m') == 1",
        &ctx
    ));
    assert!(cond("count('login', '1h') == 0", &ctx));
    assert!(cond("sum('purchase', 'amount', '1w') > 99", &ctx));
    assert!(cond(
        "streak('login', '1d') >= 7 && streak('login', '1w') == 2",
        &ctx
    ));
    assert!(cond(
        "stage_done('golden_compass', 'riddle') && !stage_done('golden_compass', 'harbor')",
        &ctx
    ));
}

#[test]
fn requirements_are_collected_and_deduplicated() {
    let c = compile_on(
        "count('login', '1d') > 1 && count('login', '24h') > 0 && count('purchase', '1h') > 0 \
         && sum('purchase', 'amount', '1d') > 2.0 && sum('purchase', 'qty', '1d') > 0.0 \
         && streak('login', '1w') > 0 && streak('login', '1w') < 9",
        PURCHASE,
    );
    assert_eq!(
        c.requirements(),
        &Requirements {
            counts: vec![(LOGIN, 86_400_000), (PURCHASE, 3_600_000)],
            sums: vec![(PURCHASE, 0, 86_400_000), (PURCHASE, 2, 86_400_000)],
            streaks: vec![(LOGIN, Period::Week)],
            uses_player: false,
        }
    );
    assert!(
        compile_on("player.points > 0", PURCHASE)
            .requirements()
            .uses_player
    );
    assert!(
        compile_on("'loyal' in player.badges", PURCHASE)
            .requirements()
            .uses_player
    );
    assert!(
        !compile_on("event.amount > 0", PURCHASE)
            .requirements()
            .uses_player
    );
}

#[test]
fn trigger_selects_the_event_fields() {
    let c = compile_on("event.place == 'harbor'", LOCATION);
    let ctx = common::TestCtx {
        fields: vec![Some(Field::Str("harbor".into()))],
        ..Default::default()
    };
    assert!(c.eval_condition(&ctx));
    assert!(
        veltrix_expr::compile_condition("event.place == 'harbor'", &schema(), PURCHASE).is_err()
    );
    assert!(veltrix_expr::compile_condition("true", &schema(), 99).is_err());
}

#[test]
fn compiled_twice_evaluates_identically() {
    let src = "event.amount * 2 > 10 && (event.qty in [1, 2] || event.currency.startsWith('c')) \
               ? player.points % 7 == 1 : count('login', '1d') >= 2";
    let a = compile_on(src, PURCHASE);
    let b = compile_on(src, PURCHASE);
    let mut contexts = Vec::new();
    for (i, amount) in [0.0, 5.0, 5.5, 100.0].into_iter().enumerate() {
        let i = i64::try_from(i).unwrap_or(0);
        let mut ctx = TestCtx::purchase(amount);
        ctx.points = 7 * i + 1;
        ctx.counts.insert((LOGIN, 86_400_000), i);
        contexts.push(ctx.clone());
        contexts.push(ctx.clone().with(2, Field::Int(i)));
        contexts.push(ctx.with(1, Field::Str("coins".into())));
    }
    let results: Vec<bool> = contexts.iter().map(|c| a.eval_condition(c)).collect();
    assert_eq!(
        results,
        contexts
            .iter()
            .map(|c| b.eval_condition(c))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        results,
        contexts
            .iter()
            .map(|c| a.clone().eval_condition(c))
            .collect::<Vec<_>>()
    );
    // Not a constant: the contexts exercise both outcomes.
    assert!(results.contains(&true) && results.contains(&false));
}

#[test]
fn compiled_metadata() {
    let c = compile_on("event.amount >= 50", PURCHASE);
    assert_eq!(c.source(), "event.amount >= 50");
    assert_eq!(c.ty(), Type::Bool);
    let c = compile("event.amount * 2", &schema(), PURCHASE, Some(Type::Double)).expect("compiles");
    assert_eq!(c.ty(), Type::Double);
    let c = compile("1 + 1", &schema(), PURCHASE, Some(Type::Double)).expect("int is promoted");
    assert_eq!(c.eval(&TestCtx::purchase(0.0)), Output::Double(2.0));
    assert!(format!("{c:?}").contains("1 + 1"));
}
