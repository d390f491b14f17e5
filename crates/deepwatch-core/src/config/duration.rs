//! Durations at the config edge. `deepwatch.toml` keeps integers with their unit in the key
//! (`timeout_ms = 5000`, `window_secs = 300`), so existing files keep working; the structs hold
//! `std::time::Duration` (`timeout`, `window`) through the serde adapters below, converted once
//! here and never at a use site. `validate()` bounds every duration with
//! [`Problems::duration`](super::Problems::duration), in the key's own unit, so `config check`
//! rejects 0 where it would spin and absurd values that would hang or overflow an `Instant`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// Upper bound of timeouts: a request, probe or action still waiting after an hour is lost.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Upper bound of intervals between two runs of a loop (scrape, probe, push, plan).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Upper bound of windows, histories, holds and retentions.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// The unit a duration is written in, taken from its key's suffix (`_ms`, `_secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Secs,
}

impl Unit {
    /// The unit of a config key or path (`agent.push.timeout_ms`); seconds unless it ends
    /// in `_ms`.
    pub fn of_key(key: &str) -> Unit {
        if key.ends_with("_ms") {
            Unit::Millis
        } else {
            Unit::Secs
        }
    }

    /// `value` as a number in this unit, as the user wrote it: `5000` for 5 s in `_ms`.
    pub fn render(self, value: Duration) -> String {
        match self {
            Unit::Millis => value.as_millis().to_string(),
            Unit::Secs if value.subsec_nanos() == 0 => value.as_secs().to_string(),
            Unit::Secs => format!("{}", value.as_secs_f64()),
        }
    }
}

/// `#[serde(with = "duration::millis")]`: an integer number of milliseconds.
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        u64::try_from(value.as_millis()).unwrap_or(u64::MAX).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `#[serde(with = "duration::secs")]`: an integer number of seconds.
pub mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        value.as_secs().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// `#[serde(with = "duration::opt_secs")]`: an optional integer number of seconds.
pub mod opt_secs {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        value.map(|v| v.as_secs()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

/// `#[serde(with = "duration::opt_millis")]`: an optional integer number of milliseconds.
pub mod opt_millis {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        value.map(|v| u64::try_from(v.as_millis()).unwrap_or(u64::MAX)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// `#[serde(with = "duration::secs_list")]`: a list of integer numbers of seconds.
pub mod secs_list {
    use super::*;

    pub fn serialize<S: Serializer>(value: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        value.iter().map(|v| v.as_secs()).collect::<Vec<_>>().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?.into_iter().map(Duration::from_secs).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(rename = "timeout_ms", with = "millis")]
        timeout: Duration,
        #[serde(rename = "window_secs", with = "secs")]
        window: Duration,
        #[serde(rename = "hold_secs", with = "opt_secs", default)]
        hold: Option<Duration>,
        #[serde(rename = "periods_secs", with = "secs_list")]
        periods: Vec<Duration>,
    }

    #[test]
    fn keys_keep_their_units_both_ways() {
        let text = "timeout_ms = 1500\nwindow_secs = 300\nperiods_secs = [60, 3600]\n";
        let s: Sample = toml::from_str(text).unwrap();
        assert_eq!(s.timeout, Duration::from_millis(1500));
        assert_eq!(s.window, Duration::from_secs(300));
        assert_eq!(s.hold, None);
        assert_eq!(s.periods, vec![Duration::from_secs(60), Duration::from_secs(3600)]);
        assert_eq!(toml::to_string(&s).unwrap(), text);
    }

    #[test]
    fn negative_and_fractional_numbers_name_the_key() {
        let err = toml::from_str::<Sample>("timeout_ms = -1\nwindow_secs = 1\nperiods_secs = []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("timeout_ms"), "{err}");
        let err = toml::from_str::<Sample>("timeout_ms = 1\nwindow_secs = 1.5\nperiods_secs = []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("window_secs"), "{err}");
    }

    #[test]
    fn units_render_as_written() {
        assert_eq!(Unit::of_key("agent.push.timeout_ms"), Unit::Millis);
        assert_eq!(Unit::of_key("window_secs"), Unit::Secs);
        assert_eq!(Unit::Millis.render(Duration::from_secs(5)), "5000");
        assert_eq!(Unit::Secs.render(Duration::from_secs(5)), "5");
    }
}
