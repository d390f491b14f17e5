//! Small helpers shared by several modules: a cheap pseudo-random source for weighted routing
//! and fault sampling (no cryptographic use), request ids, and RFC 3339 timestamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// A pseudo-random u64 (splitmix64 over a shared counter): lock-free and good enough to split
/// traffic by weight.
pub fn random_u64() -> u64 {
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform float in [0, 1).
pub fn random_f64() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Seeds the generator (tests, or once at start from the wall clock).
pub fn seed(v: u64) {
    STATE.store(v, Ordering::Relaxed);
}

/// A request id: 16 hex digits, unique within the process and unlikely to repeat across them.
pub fn request_id() -> String {
    format!("{:016x}", random_u64())
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_spread_over_the_unit_interval() {
        let n = 10_000;
        let below_half = (0..n).filter(|_| random_f64() < 0.5).count();
        assert!((4_500..5_500).contains(&below_half), "{below_half}");
        assert_ne!(request_id(), request_id());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = deepwatch_core::clock::system_time_from_unix(1_700_000_000.5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.500Z");
    }
}
