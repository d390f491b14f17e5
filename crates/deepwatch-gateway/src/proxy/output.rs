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

/// Output scanning of a whole answer: counts, and for redact/block rewrites or refuses it.
pub(super) fn scan(
    shared: &Shared,
    record: &mut Record,
    body: &Bytes,
    opts: &RelayOptions,
) -> Result<Option<Bytes>, ApiError> {
    let action = opts.output_action;
    if action == ScanAction::Off || opts.policy.kinds.is_empty() {
        return Ok(None);
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else { return Ok(None) };
    let mut kinds = Vec::new();
    let mut changed = false;
    if let Some(choices) = v.get_mut("choices").and_then(|c| c.as_array_mut()) {
        for choice in choices {
            let mut fields: Vec<&mut serde_json::Value> = Vec::new();
            if let Some(obj) = choice.as_object_mut() {
                let (msg, rest): (Vec<_>, Vec<_>) =
                    obj.iter_mut().partition(|(k, _)| k.as_str() == "message");
                for (_, m) in msg {
                    if let Some(m) = m.as_object_mut() {
                        for (k, f) in m.iter_mut() {
                            if k == "content" || k == "reasoning_content" {
                                fields.push(f);
                            }
                        }
                    }
                }
                for (k, f) in rest {
                    if k == "text" {
                        fields.push(f);
                    }
                }
            }
            for f in fields {
                let Some(text) = f.as_str() else { continue };
                let found = shared.scanner.detectors.find(text, &opts.policy.kinds);
                if found.is_empty() {
                    continue;
                }
                kinds.extend(found.iter().map(|m| m.kind));
                if action == ScanAction::Redact {
                    *f = serde_json::Value::String(redact(text, &found));
                    changed = true;
                }
            }
        }
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
    if action == ScanAction::Block && !kinds.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "sensitive_data_blocked",
            "the response contained sensitive data and policy blocks it",
        ));
    }
    Ok(if changed { serde_json::to_vec(&v).ok().map(Bytes::from) } else { None })
}
