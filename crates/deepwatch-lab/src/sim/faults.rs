//! The simulator's fault knobs (the admin API's JSON object) and the memory leak that one of
//! them drives. Faults live in a `watch` channel: request paths read the current value without
//! locking for long, and hung requests wait for it to change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Current faults, exactly as `GET /admin/faults` returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added to every request's time to first token.
    pub ttft_added_ms: u64,
    /// Added to every inter-token gap.
    pub per_token_added_ms: u64,
    /// Share of requests answered with `error_status` (0..=1).
    pub error_rate: f64,
    pub error_status: u16,
    /// Streams are cut (connection aborted, no `[DONE]`) after this many completion tokens.
    pub cut_after_tokens: Option<u64>,
    /// The engine stops producing tokens: new requests hang before their first token and
    /// running streams stall; `/health` still answers 200, as a hung vLLM does.
    pub hang_before_first_token: bool,
    /// The process allocates and touches this much memory per minute, up to `leak_cap_mb`.
    pub leak_mb_per_min: f64,
    /// The main listener is closed: connections are refused.
    pub down: bool,
    /// Answers come back fast and well-formed but wrong (every answer token is `??`), as from
    /// a broken model version; reasoning tokens are unchanged.
    pub wrong_answers: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            ttft_added_ms: 0,
            per_token_added_ms: 0,
            error_rate: 0.0,
            error_status: 500,
            cut_after_tokens: None,
            hang_before_first_token: false,
            leak_mb_per_min: 0.0,
            down: false,
            wrong_answers: false,
        }
    }
}

/// Field names accepted by `PUT /admin/faults`.
pub const FIELDS: &[&str] = &[
    "ttft_added_ms",
    "per_token_added_ms",
    "error_rate",
    "error_status",
    "cut_after_tokens",
    "hang_before_first_token",
    "leak_mb_per_min",
    "down",
    "wrong_answers",
];

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("fault update must be a JSON object")]
    NotObject,
    #[error("unknown fault field `{field}`; known fields: {}", FIELDS.join(", "))]
    UnknownField { field: String },
    #[error("fault field `{field}` {reason}")]
    BadValue { field: String, reason: &'static str },
}

impl Faults {
    /// Applies a partial update: fields present are set, absent ones keep their value. Nothing
    /// changes unless every field is valid.
    pub fn patched(&self, patch: &Value) -> Result<Faults, FaultError> {
        let Value::Object(map) = patch else {
            return Err(FaultError::NotObject);
        };
        let mut next = self.clone();
        for (field, value) in map {
            next.set(field, value)?;
        }
        Ok(next)
    }

    fn set(&mut self, field: &str, value: &Value) -> Result<(), FaultError> {
        let bad = |reason| FaultError::BadValue { field: field.to_string(), reason };
        match field {
            "ttft_added_ms" => self.ttft_added_ms = u64_of(value).ok_or(bad(U64))?,
            "per_token_added_ms" => self.per_token_added_ms = u64_of(value).ok_or(bad(U64))?,
            "error_rate" => {
                let rate = value.as_f64().ok_or(bad("must be a number between 0 and 1"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(bad("must be a number between 0 and 1"));
                }
                self.error_rate = rate;
            }
            "error_status" => {
                let status = u64_of(value)
                    .filter(|s| (400..=599).contains(s))
                    .ok_or(bad("must be an HTTP error status between 400 and 599"))?;
                self.error_status = status as u16;
            }
            "cut_after_tokens" => {
                self.cut_after_tokens = match value {
                    Value::Null => None,
                    v => Some(u64_of(v).ok_or(bad("must be a non-negative integer or null"))?),
                }
            }
            "hang_before_first_token" => {
                self.hang_before_first_token = value.as_bool().ok_or(bad(BOOL))?
            }
            "leak_mb_per_min" => {
                let rate = value.as_f64().filter(|r| *r >= 0.0 && r.is_finite());
                self.leak_mb_per_min = rate.ok_or(bad("must be a non-negative number"))?;
            }
            "down" => self.down = value.as_bool().ok_or(bad(BOOL))?,
            "wrong_answers" => self.wrong_answers = value.as_bool().ok_or(bad(BOOL))?,
            other => return Err(FaultError::UnknownField { field: other.to_string() }),
        }
        Ok(())
    }

    /// Whether any knob differs from healthy.
    pub fn any(&self) -> bool {
        *self != Faults::default()
    }

    /// The object as a JSON map (for reverting only the fields a chaos command touched).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

const U64: &str = "must be a non-negative integer";
const BOOL: &str = "must be true or false";

fn u64_of(value: &Value) -> Option<u64> {
    value.as_u64()
}

/// Memory held by the leak fault. Chunks are reserved 64 MiB at a time (above glibc's largest
/// mmap threshold, so freeing them really returns the pages) and filled, which touches the
/// pages, at the configured rate: resident memory grows as a real leak's would.
#[derive(Debug)]
pub struct Leak {
    chunks: parking_lot::Mutex<Vec<Vec<u8>>>,
    cap_bytes: u64,
    carry_bytes: parking_lot::Mutex<f64>,
}

const CHUNK_BYTES: usize = 64 << 20;

impl Leak {
    pub fn new(cap_mb: u64) -> Self {
        Leak {
            chunks: parking_lot::Mutex::new(Vec::new()),
            cap_bytes: cap_mb << 20,
            carry_bytes: parking_lot::Mutex::new(0.0),
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.chunks.lock().iter().map(|c| c.len() as u64).sum()
    }

    /// Grows by `mb_per_min` over `elapsed_secs`, up to the cap.
    pub fn grow(&self, mb_per_min: f64, elapsed_secs: f64) {
        if mb_per_min <= 0.0 {
            return;
        }
        let mut carry = self.carry_bytes.lock();
        *carry += mb_per_min * 1_048_576.0 / 60.0 * elapsed_secs;
        let mut chunks = self.chunks.lock();
        let held: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        let room = self.cap_bytes.saturating_sub(held);
        let mut todo = (*carry as u64).min(room) as usize;
        *carry -= todo as f64;
        if room == 0 {
            *carry = 0.0;
        }
        while todo > 0 {
            let needs_chunk = chunks.last().is_none_or(|c| c.len() == c.capacity());
            if needs_chunk {
                chunks.push(Vec::with_capacity(CHUNK_BYTES));
            }
            let Some(chunk) = chunks.last_mut() else { break };
            let n = todo.min(chunk.capacity() - chunk.len());
            chunk.resize(chunk.len() + n, 0x5A);
            todo -= n;
        }
    }

    /// Frees everything.
    pub fn release(&self) {
        self.chunks.lock().clear();
        *self.carry_bytes.lock() = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_sets_present_fields_and_keeps_the_rest() {
        let base = Faults { ttft_added_ms: 5, ..Faults::default() };
        let next = base
            .patched(&json!({"error_rate": 0.5, "error_status": 503, "cut_after_tokens": 3}))
            .unwrap();
        assert_eq!(next.ttft_added_ms, 5);
        assert_eq!(
            (next.error_rate, next.error_status, next.cut_after_tokens),
            (0.5, 503, Some(3))
        );
        let cleared = next.patched(&json!({"cut_after_tokens": null})).unwrap();
        assert_eq!(cleared.cut_after_tokens, None);
    }

    #[test]
    fn bad_patches_name_the_field_and_change_nothing() {
        let base = Faults::default();
        let err = base.patched(&json!({"ttft_added_ms": 1, "latency": 3})).unwrap_err();
        assert!(err.to_string().contains("`latency`"), "{err}");
        let err = base.patched(&json!({"error_rate": 1.5})).unwrap_err();
        assert!(err.to_string().contains("`error_rate`"), "{err}");
        let err = base.patched(&json!({"error_status": 200})).unwrap_err();
        assert!(err.to_string().contains("`error_status`"), "{err}");
        let err = base.patched(&json!({"down": "yes"})).unwrap_err();
        assert!(err.to_string().contains("`down`"), "{err}");
        assert_eq!(base.patched(&json!([1])).unwrap_err(), FaultError::NotObject);
        assert!(!base.any());
    }

    #[test]
    fn leak_grows_at_its_rate_stops_at_the_cap_and_releases() {
        let leak = Leak::new(3);
        leak.grow(60.0, 1.0); // 1 MiB
        assert_eq!(leak.held_bytes(), 1 << 20);
        leak.grow(60.0, 0.5);
        assert_eq!(leak.held_bytes(), 3 << 19);
        leak.grow(600.0, 60.0);
        assert_eq!(leak.held_bytes(), 3 << 20, "capped");
        leak.release();
        assert_eq!(leak.held_bytes(), 0);
    }
}
