//! The one parser of a duration a user writes, on the command line or in a
//! configuration file: `250ms`, `5s`, `2m`, `1h 30m` ([`humantime`]'s units), or a bare
//! decimal number of seconds (`5`, `0.5`).
//!
//! Every duration is finite, not negative and at most [`MAX`] (a year: a deadline is
//! the clock plus the duration, and past the clock's range that addition panics).
//! A setting with a narrower range asks for it with [`parse_within`] or
//! [`secs_within`]; the messages say what was written and what the range is.
//!
//! ```
//! use std::time::Duration;
//! use mptcp_net::duration;
//!
//! assert_eq!(duration::parse("1m 30s"), Ok(Duration::from_secs(90)));
//! assert_eq!(duration::parse("0.5"), Ok(Duration::from_millis(500)));
//! let day = Duration::from_secs(86_400);
//! assert!(duration::parse_within("2d", Duration::ZERO, day).is_err());
//! ```

use std::time::Duration;

/// The longest duration accepted anywhere: a year (365 days).
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration from zero to [`MAX`]: a number of seconds, or a number with a
/// unit (`ms`, `s`, `m`, `h`, `d`, ...), several summed (`1h 30m`).
///
/// # Errors
/// A message naming the text when it is no duration or longer than a year.
pub fn parse(s: &str) -> Result<Duration, String> {
    parse_within(s, Duration::ZERO, MAX)
}

/// [`parse`], within `min..=max` (`max` no more than [`MAX`]).
///
/// # Errors
/// A message naming the text when it is no duration or out of the range.
pub fn parse_within(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return from_secs(secs, s, min, max);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 5s, 2m"))?;
    check(d, s, min, max)
}

/// A number of seconds (a configuration file's bare number) as a duration from zero to
/// [`MAX`].
///
/// # Errors
/// A message when it is not a number, negative, or longer than a year.
pub fn secs(secs: f64) -> Result<Duration, String> {
    secs_within(secs, Duration::ZERO, MAX)
}

/// [`secs`] within `min..=max` (`max` no more than [`MAX`]).
///
/// # Errors
/// A message when it is not a number or out of the range.
pub fn secs_within(secs: f64, min: Duration, max: Duration) -> Result<Duration, String> {
    from_secs(secs, &secs.to_string(), min, max)
}

fn from_secs(secs: f64, shown: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("`{shown}` is not a duration of 0 seconds or more"))?;
    check(d, shown, min, max)
}

fn check(d: Duration, shown: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let max = max.min(MAX);
    if d > max {
        if max == MAX {
            return Err(format!("`{shown}` is longer than a year"));
        }
        return Err(format!(
            "`{shown}` is longer than {}",
            humantime::format_duration(max)
        ));
    }
    if d < min {
        if min == Duration::from_nanos(1) {
            return Err(format!("`{shown}` is not more than 0 seconds"));
        }
        return Err(format!(
            "`{shown}` is shorter than {}",
            humantime::format_duration(min)
        ));
    }
    Ok(d)
}

/// The smallest duration more than zero: `parse_within(s, POSITIVE, max)` refuses 0.
pub const POSITIVE: Duration = Duration::from_nanos(1);

/// A duration as a configuration file writes it (feature `serde`): a bare number of
/// seconds (`30`, `0.5`) or a string with units (`"30s"`, `"2m"`), both read by this
/// module's parser.
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(untagged)]
pub enum Written {
    /// A number of seconds.
    Secs(f64),
    /// Text: a duration with units, or a word the setting gives a meaning (`off`).
    Text(String),
}

#[cfg(feature = "serde")]
impl Written {
    /// The duration, from zero to [`MAX`].
    ///
    /// # Errors
    /// As [`parse`] and [`secs`].
    pub fn duration(&self) -> Result<Duration, String> {
        self.within(Duration::ZERO, MAX)
    }

    /// The duration, within `min..=max`.
    ///
    /// # Errors
    /// As [`parse_within`] and [`secs_within`].
    pub fn within(&self, min: Duration, max: Duration) -> Result<Duration, String> {
        match self {
            Written::Secs(s) => secs_within(*s, min, max),
            Written::Text(t) => parse_within(t, min, max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn both_forms_are_accepted() {
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse(" 0.5 "), Ok(Duration::from_millis(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("8760h"), Ok(MAX));
        assert_eq!(parse("31536000"), Ok(MAX));
        assert_eq!(secs(1.5), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_input_is_refused_with_the_text() {
        for (bad, message) in [
            ("-1", "`-1` is not a duration of 0 seconds or more"),
            ("NaN", "`NaN` is not a duration of 0 seconds or more"),
            ("inf", "`inf` is not a duration of 0 seconds or more"),
            ("1e19", "`1e19` is longer than a year"),
            ("31536001", "`31536001` is longer than a year"),
            ("400 days", "`400 days` is longer than a year"),
            ("300000000000y", "`300000000000y` is longer than a year"),
        ] {
            assert_eq!(parse(bad), Err(message.to_string()), "{bad}");
        }
        for bad in ["", "abc", "5 parsecs", "1.5.2", "s", "--5s"] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("`{bad}` is not a duration")), "{e}");
        }
        assert!(secs(f64::NAN).is_err());
        assert!(secs(-0.5).is_err());
        assert!(secs(1e19).is_err());
    }

    #[test]
    fn narrower_ranges() {
        assert_eq!(
            parse_within("0", POSITIVE, DAY),
            Err("`0` is not more than 0 seconds".into())
        );
        assert_eq!(
            parse_within("86401", POSITIVE, DAY),
            Err("`86401` is longer than 1day".into())
        );
        assert_eq!(
            parse_within("25h", POSITIVE, DAY),
            Err("`25h` is longer than 1day".into())
        );
        assert_eq!(parse_within("1d", POSITIVE, DAY), Ok(DAY));
        assert_eq!(
            parse_within("0.5", Duration::from_secs(1), DAY),
            Err("`0.5` is shorter than 1s".into())
        );
        assert_eq!(
            secs_within(3601.0, Duration::ZERO, Duration::from_secs(3600)),
            Err("`3601` is longer than 1h".into())
        );
        // A range past a year is a year.
        assert!(parse_within("2y", Duration::ZERO, Duration::MAX).is_err());
    }
}
