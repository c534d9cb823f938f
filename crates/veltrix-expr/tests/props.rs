//! Property tests: hostile input never panics, well-typed input always
//! compiles, and integer arithmetic matches a checked-arithmetic oracle.

mod common;

use common::{Field, LOGIN, PURCHASE, TestCtx, schema};
use proptest::prelude::*;
use veltrix_expr::{Output, Period, compile, compile_condition};

/// Contexts with every optional field absent, all present, and extremes.
fn contexts() -> Vec<TestCtx> {
    let mut full = TestCtx::purchase(12.5)
        .with(1, Field::Str("coins".into()))
        .with(2, Field::Int(3))
        .with(3, Field::Bool(true));
    full.points = 40;
    full.balances = vec![2, 9];
    full.badges = vec!["loyal".into()];
    full.counts.insert((LOGIN, 86_400_000), 4);
    full.streaks.insert((LOGIN, Period::Week), 2);
    let mut extreme = TestCtx::purchase(f64::MAX)
        .with(1, Field::Str("ü\u{0}'\"".into()))
        .with(2, Field::Int(i64::MIN))
        .with(3, Field::Bool(false));
    extreme.points = i64::MAX;
    extreme.ts = i64::MIN;
    extreme.balances = vec![i64::MIN, i64::MAX];
    vec![TestCtx::purchase(0.0), full, extreme]
}

fn string_literal() -> impl Strategy<Value = String> {
    "[a-z'\"\\\\ é]{0,6}".prop_map(|s| {
        let escaped = s.replace('\\', "\\\\").replace('\'', "\\'");
        format!("'{escaped}'")
    })
}

fn double_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000.0f64..1000.0).prop_map(|d| format!("{d:?}")),
        Just("1e308".to_string()),
        Just("0.0".to_string()),
    ]
}

fn int_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-50i64..50).prop_map(|i| i.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
    ]
}

/// Any mix of names, literals and operators: mostly ill-typed, which is the point.
fn untyped_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("event.amount".to_string()),
        Just("event.qty".to_string()),
        Just("event.currency".to_string()),
        Just("event.gift".to_string()),
        Just("event.ts".to_string()),
        Just("event.type".to_string()),
        Just("event.nope".to_string()),
        Just("player.points".to_string()),
        Just("player.coins".to_string()),
        Just("player.balances.gems".to_string()),
        Just("player.badges".to_string()),
        Just("count('login', '1d')".to_string()),
        Just("sum('purchase', 'amount', '1h')".to_string()),
        Just("streak('login', '1w')".to_string()),
        Just("has_badge('loyal')".to_string()),
        Just("stage_done('golden_compass', 'riddle')".to_string()),
        Just("has(event.qty)".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("[1, 'a']".to_string()),
        int_literal(),
        double_literal(),
        string_literal(),
    ];
    leaf.prop_recursive(5, 48, 3, |inner| {
        let op = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&&", "||", "in",
        ]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("!{a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.startsWith({b})")),
            inner.clone().prop_map(|a| format!("size({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} in [{b}, 'x', 2])")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a} in player.badges || {b})")),
        ]
    })
}

/// Numeric expressions that are well-typed by construction.
fn numeric_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("event.amount".to_string()),
        Just("event.qty".to_string()),
        Just("event.ts".to_string()),
        Just("player.points".to_string()),
        Just("player.balances.coins".to_string()),
        Just("count('login', '1d')".to_string()),
        Just("sum('purchase', 'qty', '2h')".to_string()),
        Just("size(event.currency)".to_string()),
        int_literal(),
        double_literal(),
    ];
    leaf.prop_recursive(4, 32, 2, |inner| {
        let op = prop::sample::select(vec!["+", "-", "*", "/"]);
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.prop_map(|a| format!("-({a})")),
        ]
    })
}

/// Conditions that are well-typed by construction.
fn bool_expr() -> impl Strategy<Value = String> {
    let cmp = prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]);
    let leaf = prop_oneof![
        (numeric_expr(), cmp, numeric_expr()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        Just("event.gift".to_string()),
        Just("has(event.currency)".to_string()),
        Just("'loyal' in player.badges".to_string()),
        Just("event.currency in player.badges".to_string()),
        Just("stage_done('golden_compass', 'harbor')".to_string()),
        string_literal().prop_map(|s| format!("event.currency.contains({s})")),
        string_literal().prop_map(|s| format!("event.currency + {s} == 'coins'")),
        numeric_expr().prop_map(|a| format!("{a} in [1, 2.5, -3]")),
    ];
    leaf.prop_recursive(3, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

/// Integer arithmetic as data, to compare with a checked oracle.
#[derive(Debug, Clone)]
enum IntTree {
    Lit(i64),
    Qty,
    Neg(Box<IntTree>),
    Bin(char, Box<IntTree>, Box<IntTree>),
}

impl IntTree {
    fn source(&self) -> String {
        match self {
            IntTree::Lit(i) => format!("({i})"),
            IntTree::Qty => "event.qty".into(),
            IntTree::Neg(a) => format!("-{}", a.source()),
            IntTree::Bin(op, a, b) => format!("({} {op} {})", a.source(), b.source()),
        }
    }

    fn eval(&self, qty: Option<i64>) -> Option<i64> {
        match self {
            IntTree::Lit(i) => Some(*i),
            IntTree::Qty => qty,
            IntTree::Neg(a) => a.eval(qty)?.checked_neg(),
            IntTree::Bin(op, a, b) => {
                let (x, y) = (a.eval(qty)?, b.eval(qty)?);
                match op {
                    '+' => x.checked_add(y),
                    '-' => x.checked_sub(y),
                    '*' => x.checked_mul(y),
                    '/' => x.checked_div(y),
                    _ => x.checked_rem(y),
                }
            }
        }
    }
}

fn int_tree() -> impl Strategy<Value = IntTree> {
    let leaf = prop_oneof![
        4 => (-10i64..10).prop_map(IntTree::Lit),
        1 => any::<i64>().prop_map(IntTree::Lit),
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0]).prop_map(IntTree::Lit),
        2 => Just(IntTree::Qty),
    ];
    leaf.prop_recursive(5, 40, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| IntTree::Neg(Box::new(a))),
            (
                prop::sample::select(vec!['+', '-', '*', '/', '%']),
                inner.clone(),
                inner
            )
                .prop_map(|(op, a, b)| IntTree::Bin(op, Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let src = String::from_utf8_lossy(&bytes);
        let _ = compile_condition(&src, &schema(), PURCHASE);
    }

    #[test]
    fn random_token_soup_never_panics(
        parts in prop::collection::vec(prop::sample::select(vec![
            "event", "player", ".", "amount", "qty", "badges", "balances", "coins", "(", ")", "[", "]",
            ",", "?", ":", "!", "-", "+", "*", "/", "%", "<", "<=", "==", "!=", "&&", "||", "in",
            "1", "2.5", "'a'", "\"b\"", "true", "count", "sum", "has", "size", "startsWith", "'1d'",
            "'login'", "9223372036854775808", " ",
        ]), 0..40)
    ) {
        let src = parts.concat();
        if let Ok(compiled) = compile(&src, &schema(), PURCHASE, None) {
            for ctx in contexts() {
                let _ = compiled.eval(&ctx);
                let _ = compiled.eval_condition(&ctx);
            }
        }
    }

    #[test]
    fn random_expressions_never_panic(src in untyped_expr()) {
        if let Ok(compiled) = compile(&src, &schema(), PURCHASE, None) {
            for ctx in contexts() {
                let _ = compiled.eval(&ctx);
                let _ = compiled.eval_condition(&ctx);
            }
        }
    }

    #[test]
    fn well_typed_conditions_compile_and_are_deterministic(src in bool_expr()) {
        let a = compile_condition(&src, &schema(), PURCHASE);
        let b = compile_condition(&src, &schema(), PURCHASE);
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Err(TestCaseError::fail(format!("{src}: {e:?}")));
            }
        };
        for ctx in contexts() {
            prop_assert_eq!(a.eval(&ctx), b.eval(&ctx));
            prop_assert_eq!(a.eval_condition(&ctx), a.eval(&ctx) == Output::Bool(true));
        }
    }

    #[test]
    fn integer_arithmetic_matches_checked_oracle(tree in int_tree(), qty in prop::option::of(any::<i64>())) {
        let src = tree.source();
        let compiled = compile(&src, &schema(), PURCHASE, None)
            .map_err(|e| TestCaseError::fail(format!("{src}: {e:?}")))?;
        let mut ctx = TestCtx::purchase(1.0);
        if let Some(q) = qty {
            ctx = ctx.with(2, Field::Int(q));
        }
        let expected = tree.eval(qty).map_or(Output::Missing, Output::Int);
        prop_assert_eq!(compiled.eval(&ctx), expected, "{}", src);
    }
}
