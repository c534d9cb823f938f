//! Durations such as `90s`, `10m` or `1h30m`, shared with the configuration
//! layer (`within`, `per`, `cooldown`).

/// Milliseconds per unit; longest unit names first so `ms` is not read as `m`.
const UNITS: [(&str, i64); 6] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

/// Parses a duration into milliseconds.
///
/// The grammar is one or more `<digits><unit>` parts with units `ms`, `s`,
/// `m`, `h`, `d`, `w`, written without spaces: `500ms`, `1h30m`, `2w`. Parts
/// are added, in any order. The result must be positive and fit in an `i64`.
///
/// ```
/// assert_eq!(veltrix_expr::parse_duration("1h30m"), Ok(5_400_000));
/// assert!(veltrix_expr::parse_duration("0s").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("empty duration; write a number and a unit, e.g. \"10m\"".to_string());
    }
    if text.starts_with('-') {
        return Err(format!(
            "duration \"{text}\" is negative; durations must be greater than zero"
        ));
    }
    let bytes = text.as_bytes();
    let mut total: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(format!(
                "invalid duration \"{text}\": expected a number at byte {i}, e.g. \"10m\" or \"1h30m\""
            ));
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &text[unit_start..i];
        if unit.is_empty() {
            return Err(format!(
                "duration \"{text}\" needs a unit after {}: ms, s, m, h, d or w",
                &text[digits_start..i]
            ));
        }
        let Some(&(_, unit_ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit \"{unit}\" in duration \"{text}\"; expected ms, s, m, h, d or w"
            ));
        };
        let overflow = || format!("duration \"{text}\" is too large");
        let amount: i64 = text[digits_start..unit_start]
            .parse()
            .map_err(|_| overflow())?;
        let part = amount.checked_mul(unit_ms).ok_or_else(overflow)?;
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    if total == 0 {
        return Err(format!(
            "duration \"{text}\" is zero; durations must be greater than zero"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn valid() {
        assert_eq!(parse_duration("1ms"), Ok(1));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("10m"), Ok(600_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600_000));
        assert_eq!(parse_duration("1m500ms"), Ok(60_500));
        assert_eq!(parse_duration("0h5m"), Ok(300_000));
        assert_eq!(parse_duration("9223372036854775807ms"), Ok(i64::MAX));
    }

    #[test]
    fn invalid() {
        let cases = [
            (
                "",
                "empty duration; write a number and a unit, e.g. \"10m\"",
            ),
            (
                "0s",
                "duration \"0s\" is zero; durations must be greater than zero",
            ),
            (
                "-5m",
                "duration \"-5m\" is negative; durations must be greater than zero",
            ),
            (
                "10",
                "duration \"10\" needs a unit after 10: ms, s, m, h, d or w",
            ),
            (
                "5y",
                "unknown unit \"y\" in duration \"5y\"; expected ms, s, m, h, d or w",
            ),
            (
                "1hh",
                "unknown unit \"hh\" in duration \"1hh\"; expected ms, s, m, h, d or w",
            ),
            (
                "h",
                "invalid duration \"h\": expected a number at byte 0, e.g. \"10m\" or \"1h30m\"",
            ),
            (
                "1 h",
                "duration \"1 h\" needs a unit after 1: ms, s, m, h, d or w",
            ),
            (
                "1h ",
                "invalid duration \"1h \": expected a number at byte 2, e.g. \"10m\" or \"1h30m\"",
            ),
            (
                "99999999999999999999s",
                "duration \"99999999999999999999s\" is too large",
            ),
            (
                "9999999999999999w",
                "duration \"9999999999999999w\" is too large",
            ),
            (
                "9223372036854775807ms1ms",
                "duration \"9223372036854775807ms1ms\" is too large",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse_duration(text), Err(message.to_string()), "{text:?}");
        }
    }
}
