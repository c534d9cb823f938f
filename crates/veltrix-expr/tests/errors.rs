//! Every diagnostic kind, snapshot-tested as rendered text (one snapshot per
//! case under `tests/snapshots/`). Spans are printed too, so a span change
//! fails the test even when the underline looks alike.

mod common;

use common::{LOCATION, PURCHASE, render, schema};
use veltrix_expr::{MAX_SOURCE_LEN, compile, compile_condition};

fn errors_of(src: &str, trigger: u16) -> String {
    match compile_condition(src, &schema(), trigger) {
        Ok(_) => panic!("{src:?} compiled, but an error was expected"),
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(
                    e.span.start <= e.span.end && e.span.end <= src.len(),
                    "{src}: {e:?}"
                );
                assert!(src.is_char_boundary(e.span.start) && src.is_char_boundary(e.span.end));
            }
            render(src, &errors)
        }
    }
}

macro_rules! snap {
    ($name:ident, $src:expr) => {
        snap!($name, $src, PURCHASE);
    };
    ($name:ident, $src:expr, $trigger:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), errors_of($src, $trigger));
        }
    };
}

// Syntax (the first error only).
snap!(syntax_unterminated_string, "event.currency == 'coins");
snap!(syntax_bad_escape, r"event.currency == 'co\ins'");
snap!(syntax_single_equals, "event.amount = 50");
snap!(syntax_single_ampersand, "event.amount > 1 & true");
snap!(syntax_missing_operand, "event.amount >= ");
snap!(syntax_unclosed_paren, "(event.amount > 1");
snap!(syntax_stray_close, "event.amount > 1)");
snap!(syntax_two_expressions, "event.amount > 1 player.points > 2");
snap!(syntax_unexpected_char, "event.amount > 1 # comment");
snap!(syntax_null, "event.currency == null");
snap!(syntax_int_out_of_range, "event.qty < 9223372036854775808");
snap!(syntax_indexing, "player.balances['coins'] > 1");
snap!(
    syntax_nested_ternary_needs_parens,
    "true ? false ? 1 : 2 : 3"
);
snap!(syntax_empty, "");
snap!(syntax_bad_number, "event.amount > 12abc");

// Names.
snap!(unknown_event_field, "event.amout >= 50");
snap!(unknown_field_lists_candidates, "event.zzz == 'x'", LOCATION);
snap!(unknown_bare_name, "amount >= 50");
snap!(unknown_root_name, "evnt.amount >= 50");
snap!(bare_event, "event");
snap!(unknown_player_property, "player.pionts > 10");
snap!(unknown_currency, "player.balances.gem > 1");
snap!(unknown_badge_in, "'navigatr' in player.badges");
snap!(unknown_badge_call, "has_badge('loyl')");
snap!(badges_outside_in, "size(player.badges) > 0");
snap!(balances_without_currency, "player.balances > 0");
snap!(unknown_event_type, "count('purchse', '1d') > 3");
snap!(unknown_sum_field, "sum('purchase', 'amont', '1d') > 3.0");
snap!(
    sum_non_numeric_field,
    "sum('purchase', 'currency', '1d') > 3.0"
);
snap!(unknown_hunt, "stage_done('golden_compas', 'harbor')");
snap!(unknown_stage, "stage_done('golden_compass', 'harbour')");
snap!(unknown_function, "cout('login', '1d') > 1");
snap!(method_called_as_function, "startsWith(event.currency, 'c')");
snap!(unknown_method, "event.currency.startswith('c')");
snap!(field_of_non_object, "event.currency.length > 1");

// Builtin arguments.
snap!(wrong_arity, "count('login') > 1");
snap!(non_literal_type_argument, "count(event.currency, '1d') > 1");
snap!(bad_window, "count('login', '5y') > 1");
snap!(zero_window, "count('login', '0s') > 1");
snap!(bad_streak_period, "streak('login', '2d') > 1");
snap!(has_needs_event_field, "has(player.points)");

// Types.
snap!(condition_not_bool, "event.amount + 1");
snap!(and_needs_bool, "event.amount && true");
snap!(not_needs_bool, "!event.currency");
snap!(compare_string_with_int, "event.currency == 1");
snap!(order_bools, "event.gift < true");
snap!(add_string_and_int, "event.currency + 1 == 'x'");
snap!(rem_on_double, "event.amount % 2 == 0");
snap!(negate_string, "-event.currency == 'x'");
snap!(ternary_condition_not_bool, "(event.qty ? 1 : 2) > 0");
snap!(ternary_branch_mismatch, "(true ? 1 : 'one') == 1");
snap!(list_outside_in, "['a', 'b'] == 'a'");
snap!(in_needs_list, "event.currency in 'coins'");
snap!(
    in_list_element_type,
    "event.currency in ['coins', 2, 'gems']"
);
snap!(in_list_non_literal, "event.currency in [event.currency]");
snap!(method_on_number, "event.amount.startsWith('1')");
snap!(size_of_number, "size(event.amount) > 1");

// Several independent mistakes are all reported at once.
snap!(
    many_errors_at_once,
    "event.amout > 1 && player.gem > 2 && count('logn', '1d') > 1 && has_badge('lyal') && event.currency > 1"
);

#[test]
fn too_long() {
    let src = format!("event.amount > {}", "1".repeat(MAX_SOURCE_LEN));
    let errors = compile_condition(&src, &schema(), PURCHASE).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        format!(
            "expression is too long ({} bytes; the limit is 4096)",
            src.len()
        )
    );
}

#[test]
fn too_deep() {
    let src = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    let errors = compile_condition(&src, &schema(), PURCHASE).unwrap_err();
    assert!(
        errors[0]
            .message
            .starts_with("expression is nested too deeply"),
        "{errors:?}"
    );
    let src = vec!["event.amount > 1"; 80].join(" || ");
    assert!(src.len() < MAX_SOURCE_LEN);
    let errors = compile_condition(&src, &schema(), PURCHASE).unwrap_err();
    assert!(
        errors[0]
            .message
            .starts_with("expression is nested too deeply"),
        "{errors:?}"
    );
    // The longest possible left-nested chain is rejected without overflowing
    // the stack while it is built or dropped.
    let src = format!("{}1", "1+".repeat((MAX_SOURCE_LEN - 1) / 2));
    assert!(src.len() <= MAX_SOURCE_LEN);
    let errors = compile_condition(&src, &schema(), PURCHASE).unwrap_err();
    assert!(
        errors[0]
            .message
            .starts_with("expression is nested too deeply"),
        "{errors:?}"
    );
    // Just under the limit is fine.
    let src = vec!["event.amount > 1"; 40].join(" || ");
    assert!(compile_condition(&src, &schema(), PURCHASE).is_ok());
}

#[test]
fn expected_type_is_enforced() {
    let errors = compile("'x'", &schema(), PURCHASE, Some(veltrix_expr::Type::Int)).unwrap_err();
    assert_eq!(errors[0].message, "expected int, found string");
    assert_eq!(errors[0].span, 0..3);
}
