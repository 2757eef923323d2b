//! Bad values in scenarios and config files, found all at once and said once each.
//!
//! A check walks every field and collects a [`Problem`] per bad value instead of stopping at
//! the first, so a user fixes a file in one go; [`Problems`] is the error that carries them.

use std::fmt;

/// One bad value: the field, the value as it was given, and why it cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field (`rounds`, `collect_timeout_s`, `fogs[1].address`).
    pub field: String,
    /// The value, as written in the file (strings quoted).
    pub value: String,
    /// What is wrong and, where it helps, what to give instead.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.reason)
    }
}

/// Every problem of one scenario or config file, each once, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.joined("; "))]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// The problems, in field order.
    pub fn problems(&self) -> &[Problem] {
        &self.0
    }

    /// One line per problem, each starting with `prefix: ` (a file name, say).
    pub fn lines(&self, prefix: &str) -> String {
        self.0
            .iter()
            .map(|p| format!("{prefix}: {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn joined(&self, separator: &str) -> String {
        self.0
            .iter()
            .map(Problem::to_string)
            .collect::<Vec<_>>()
            .join(separator)
    }
}

/// Collects problems field by field.
#[derive(Debug, Default)]
pub(crate) struct Checker(Vec<Problem>);

impl Checker {
    /// Records that `field = value` is bad because of `reason`.
    pub(crate) fn problem(
        &mut self,
        field: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) {
        self.0.push(Problem {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        });
    }

    /// Records a problem unless `ok`. Returns `ok`, so later checks can depend on it.
    pub(crate) fn require(
        &mut self,
        ok: bool,
        field: &str,
        value: impl fmt::Display,
        reason: &str,
    ) -> bool {
        if !ok {
            self.problem(field, value, reason);
        }
        ok
    }

    /// Seconds that a [`std::time::Duration`] can hold and a process can wait: finite, at
    /// least `min` (0 or just above), at most [`MAX_SECONDS`].
    pub(crate) fn seconds(&mut self, field: &str, value: f64, zero_allowed: bool) -> bool {
        let ok = value.is_finite()
            && value <= MAX_SECONDS
            && if zero_allowed {
                value >= 0.0
            } else {
                value > 0.0
            };
        let reason = if zero_allowed {
            format!("must be a number of seconds in [0, {MAX_SECONDS}]")
        } else {
            format!("must be a number of seconds in (0, {MAX_SECONDS}]")
        };
        if !ok {
            self.problem(field, value, reason);
        }
        ok
    }

    /// `Ok` when nothing was recorded.
    pub(crate) fn finish(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.0))
        }
    }
}

/// The longest wait a config may ask for: one week. Longer is surely a typo (milliseconds
/// given as seconds), and far beyond it a [`std::time::Duration`] cannot be made.
pub const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

/// A string as written in a TOML file, quoted.
pub(crate) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_collected_in_order_and_shown_once_each() {
        let mut c = Checker::default();
        assert!(c.require(true, "a", 1, "fine"));
        assert!(!c.require(false, "rounds", 0, "must be at least 1"));
        assert!(!c.seconds("linger_s", f64::NAN, true));
        assert!(c.seconds("linger_s", 0.0, true));
        assert!(!c.seconds("collect_timeout_s", 0.0, false));
        assert!(!c.seconds("collect_timeout_s", 1e300, false));
        let e = c.finish().unwrap_err();
        assert_eq!(e.problems().len(), 4);
        assert_eq!(
            e.problems()[0].to_string(),
            "rounds = 0: must be at least 1"
        );
        assert!(e.to_string().contains("; linger_s = NaN: "), "{e}");
        let lines = e.lines("x.toml");
        assert_eq!(lines.lines().count(), 4);
        assert!(lines.lines().all(|l| l.starts_with("x.toml: ")), "{lines}");
        assert!(Checker::default().finish().is_ok());
    }
}
