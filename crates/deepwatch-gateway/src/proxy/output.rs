//! Output scanning of a whole (non-streamed) answer: every choice's `content`,
//! `reasoning_content` and `text` is checked against the tenant's policy; matches are counted,
//! and redact rewrites the body while block refuses it. Streams scan incrementally instead
//! (`stream::scan`).

use super::record::Record;
use super::relay::RelayOptions;
use crate::error::ApiError;
use crate::metrics::labels::SensitiveIds;
use crate::scanner::redact;
use crate::state::Shared;
use bytes::Bytes;
use deepwatch_core::config::gateway::ScanAction;
use deepwatch_core::error::ErrorCode;

/// Output scanning of a whole answer: counts the matches in `texts` (the answer's `content`,
/// `reasoning_content` and `text` strings, already parsed by the caller), and for
/// redact/block rewrites or refuses it. Only a redaction with a match re-parses the body.
pub(super) fn scan<'t>(
    shared: &Shared,
    record: &mut Record,
    body: &Bytes,
    texts: impl Iterator<Item = &'t str>,
    opts: &RelayOptions,
) -> Result<Option<Bytes>, ApiError> {
    let action = opts.output_action;
    if action == ScanAction::Off || opts.policy.kinds.is_empty() {
        return Ok(None);
    }
    let mut kinds = Vec::new();
    for text in texts {
        kinds
            .extend(shared.scanner.detectors.find(text, &opts.policy.kinds).iter().map(|m| m.kind));
    }
    for k in &kinds {
        shared.metrics.sensitive.inc(&SensitiveIds {
            tenant: &record.tenant_label,
            kind: k.as_str(),
            direction: "output",
            action: action.as_str(),
        });
    }
    record.sensitive_matches += kinds.len() as u32;
    if kinds.is_empty() {
        return Ok(None);
    }
    match action {
        ScanAction::Block => Err(ApiError::new(
            ErrorCode::Forbidden,
            "sensitive_data_blocked",
            "the response contained sensitive data and policy blocks it",
        )),
        ScanAction::Redact => Ok(redacted(shared, body, opts)),
        _ => Ok(None),
    }
}

/// The answer with every match in its `content`, `reasoning_content` and `text` strings
/// replaced.
fn redacted(shared: &Shared, body: &Bytes, opts: &RelayOptions) -> Option<Bytes> {
    let mut v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let choices = v.get_mut("choices").and_then(|c| c.as_array_mut())?;
    for choice in choices {
        let Some(obj) = choice.as_object_mut() else { continue };
        for (k, f) in obj.iter_mut() {
            let fields: Vec<&mut serde_json::Value> = match (k.as_str(), f) {
                ("message", serde_json::Value::Object(m)) => m
                    .iter_mut()
                    .filter(|(k, _)| *k == "content" || *k == "reasoning_content")
                    .map(|(_, f)| f)
                    .collect(),
                ("text", f) => vec![f],
                _ => continue,
            };
            for f in fields {
                let Some(text) = f.as_str() else { continue };
                let found = shared.scanner.detectors.find(text, &opts.policy.kinds);
                if !found.is_empty() {
                    *f = serde_json::Value::String(redact(text, &found));
                }
            }
        }
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}
