//! Pinning: a trusted caller (an API key in `gateway.pin_keys`, such as the analyzer's
//! golden-prompt probes) names the pool (`x-deepwatch-pool`) or the model version
//! (`x-deepwatch-model-version`) that must answer, whatever weights, priorities or a forced
//! failover say, so a probe's verdict is attributed to the version that really answered.
//! Anyone else sending a pin header gets 403 instead of being routed by weight: a probe with
//! the wrong key must fail loudly, not silently score another version. A pinned request is
//! never rerouted outside its pools; with no healthy upstream there it gets 503.

use crate::error::ApiError;
use crate::pools::Pool;
use crate::state::Shared;
use deepwatch_core::config::gateway::{MODEL_VERSION_HEADER, POOL_HEADER};
use deepwatch_core::error::ErrorCode;
use http::HeaderMap;
use std::sync::Arc;

/// Where a pinned request may go.
#[derive(Debug, Clone)]
pub struct Pin {
    /// The header that pinned it (`x-deepwatch-pool` or `x-deepwatch-model-version`).
    pub header: &'static str,
    /// The pool name or model version it names.
    pub value: String,
    /// Candidate pools, lowest priority number first; exactly one for a pool pin; never empty.
    pub pools: Vec<Arc<Pool>>,
}

/// The trimmed value of a pin header; 400 when it is repeated, empty or not text.
fn value<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    let invalid =
        |why: &str| Err(ApiError::bad_request(format!("{name}: {why}")).with_reason("invalid_pin"));
    if values.next().is_some() {
        return invalid("sent more than once");
    }
    match first.to_str().map(str::trim) {
        Ok("") => invalid("must not be empty"),
        Ok(v) => Ok(Some(v)),
        Err(_) => invalid("must be visible ASCII"),
    }
}

/// Reads the pin headers of a request whose bearer key is `key`: `None` without them, the
/// pin for a trusted key, an error (403, 404 or 400) otherwise.
pub fn resolve(
    shared: &Shared,
    headers: &HeaderMap,
    key: Option<&str>,
) -> Result<Option<Pin>, ApiError> {
    let pool = value(headers, POOL_HEADER)?;
    let version = value(headers, MODEL_VERSION_HEADER)?;
    if pool.is_none() && version.is_none() {
        return Ok(None);
    }
    // Checked before the names, so untrusted callers learn nothing about the pools.
    if !key.is_some_and(|k| shared.pin_keys.contains(k)) {
        let header = if pool.is_some() { POOL_HEADER } else { MODEL_VERSION_HEADER };
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "pin_not_allowed",
            format!("{header} is honoured only for API keys listed in gateway.pin_keys"),
        ));
    }
    if let Some(name) = pool {
        let Some(found) = shared.pools.get(name) else {
            return Err(ApiError::not_found(
                "pool_not_found",
                format!("unknown pool {name:?} in {POOL_HEADER}"),
            ));
        };
        if let Some(v) = version.filter(|v| *v != found.model_version) {
            return Err(ApiError::bad_request(format!(
                "pool {name:?} serves model_version {:?}, not {v:?} ({POOL_HEADER} and \
                 {MODEL_VERSION_HEADER} disagree)",
                found.model_version
            ))
            .with_reason("invalid_pin"));
        }
        return Ok(Some(Pin {
            header: POOL_HEADER,
            value: name.to_string(),
            pools: vec![found.clone()],
        }));
    }
    let v = version.unwrap_or_default();
    let pools = shared.pools.of_version(v);
    if pools.is_empty() {
        return Err(ApiError::not_found(
            "model_version_not_found",
            format!("no pool serves model_version {v:?} ({MODEL_VERSION_HEADER})"),
        ));
    }
    Ok(Some(Pin { header: MODEL_VERSION_HEADER, value: v.to_string(), pools }))
}

impl Pin {
    /// The 503 of a pinned request whose pools have no healthy upstream.
    pub fn unavailable(&self) -> ApiError {
        let message = if self.header == POOL_HEADER {
            format!(
                "pinned pool {:?} has no healthy upstream; pinned requests are not rerouted",
                self.value
            )
        } else {
            let names: Vec<String> = self.pools.iter().map(|p| format!("{:?}", p.name)).collect();
            format!(
                "no pool of pinned model_version {:?} (pools {}) has a healthy upstream; \
                 pinned requests are not rerouted",
                self.value,
                names.join(", ")
            )
        };
        ApiError::new(ErrorCode::Unavailable, "pool_unavailable", message)
    }

    /// `pool=green` or `model_version=v2`, for the request log.
    pub fn log_value(&self) -> String {
        let what = if self.header == POOL_HEADER { "pool" } else { "model_version" };
        format!("{what}={}", self.value)
    }
}
