//! Output scanning of a stream: feeds generated text to the incremental scanner, counts
//! matches, and for redact/block rewrites chunks or ends the stream before a value leaves.

use super::ProxyStream;
use crate::error::ApiError;
use crate::metrics::labels::SensitiveIds;
use crate::metrics::Outcome;
use crate::sse::{ChunkInfo, TextField};
use bytes::Bytes;
use deepwatch_core::config::gateway::ScanAction;
use deepwatch_core::error::ErrorCode;

impl ProxyStream {
    /// Scans a chunk's text; returns the bytes to forward (rewritten for redact/block), or
    /// `None` when the stream was ended for a blocked value.
    pub(super) fn scan_chunk(&mut self, raw: Bytes, info: &ChunkInfo) -> Option<Bytes> {
        let redacting = self.output != ScanAction::Count;
        let mut replacements: Vec<(u32, TextField, String)> = Vec::new();
        let mut kinds = Vec::new();
        for d in &info.deltas {
            let r = self.out_scanner.push(
                &self.shared.scanner.detectors,
                &self.policy.kinds,
                redacting,
                (d.index, d.field),
                &d.text,
            );
            kinds.extend(r.kinds);
            replacements.push((d.index, d.field, r.text));
        }
        if info.finish_reason.is_some() {
            for (index, field, text) in self.flush_pending(redacting, &mut kinds) {
                match replacements.iter_mut().find(|(i, f, _)| (*i, *f) == (index, field)) {
                    Some(existing) => existing.2.push_str(&text),
                    None => replacements.push((index, field, text)),
                }
            }
        }
        if self.count_and_block(&kinds) {
            return None;
        }
        if !redacting || replacements.is_empty() {
            return Some(raw);
        }
        Some(rewrite_chunk(&raw, &replacements).unwrap_or(raw))
    }

    /// Releases the text every output field still holds back; its matches go into `kinds`.
    fn flush_pending(
        &mut self,
        redacting: bool,
        kinds: &mut Vec<crate::scanner::Kind>,
    ) -> Vec<(u32, TextField, String)> {
        let mut pieces = Vec::new();
        for key in self.out_scanner.pending_keys() {
            let r = self.out_scanner.flush(
                &self.shared.scanner.detectors,
                &self.policy.kinds,
                redacting,
                key,
            );
            kinds.extend(r.kinds);
            pieces.push((key.0, key.1, r.text));
        }
        pieces
    }

    /// Counts the matches; under the block policy any match ends the stream (true).
    fn count_and_block(&mut self, kinds: &[crate::scanner::Kind]) -> bool {
        self.count(kinds);
        if self.output != ScanAction::Block || kinds.is_empty() {
            return false;
        }
        let err = ApiError::new(
            ErrorCode::Forbidden,
            "sensitive_data_blocked",
            "the response contained sensitive data and policy blocks it",
        );
        self.fail(Outcome::Rejected, err);
        true
    }

    fn count(&mut self, kinds: &[crate::scanner::Kind]) {
        for k in kinds {
            self.shared.metrics.sensitive.inc(&SensitiveIds {
                tenant: &self.record.tenant_label,
                kind: k.as_str(),
                direction: "output",
                action: self.output.as_str(),
            });
        }
        self.record.sensitive_matches += kinds.len() as u32;
    }

    /// Releases held-back text before the stream ends, as one extra chunk.
    pub(super) fn flush_output(&mut self, _at: Option<()>) {
        if self.output == ScanAction::Off {
            return;
        }
        let redacting = self.output != ScanAction::Count;
        let mut kinds = Vec::new();
        let pieces = self.flush_pending(redacting, &mut kinds);
        if self.count_and_block(&kinds) {
            return;
        }
        if redacting && !pieces.is_empty() {
            let choices: Vec<serde_json::Value> = pieces
                .into_iter()
                .map(|(i, f, text)| match f {
                    TextField::Text => serde_json::json!({"index": i, "text": text}),
                    TextField::Content => {
                        serde_json::json!({"index": i, "delta": {"content": text}})
                    }
                    TextField::Reasoning => {
                        serde_json::json!({"index": i, "delta": {"reasoning_content": text}})
                    }
                })
                .collect();
            let chunk = serde_json::json!({"object": "chat.completion.chunk", "choices": choices});
            self.queue.push_back(Bytes::from(format!("data: {chunk}\n\n")));
        }
    }
}

/// Replaces the text fields of a chunk's choices.
fn rewrite_chunk(raw: &[u8], replacements: &[(u32, TextField, String)]) -> Option<Bytes> {
    let text = std::str::from_utf8(raw).ok()?;
    let data = text.lines().find_map(|l| l.strip_prefix("data:"))?.trim_start();
    let mut v: serde_json::Value = serde_json::from_str(data).ok()?;
    let choices = v.get_mut("choices")?.as_array_mut()?;
    for (index, field, new_text) in replacements {
        let choice = choices
            .iter_mut()
            .find(|c| c.get("index").and_then(|i| i.as_u64()).unwrap_or(0) == u64::from(*index))?
            .as_object_mut()?;
        let new_value = serde_json::Value::String(new_text.clone());
        if *field == TextField::Text {
            choice.insert("text".into(), new_value);
            continue;
        }
        let delta = choice.entry("delta").or_insert(serde_json::json!({})).as_object_mut()?;
        let key = match field {
            TextField::Reasoning if delta.contains_key("reasoning") => "reasoning",
            TextField::Reasoning => "reasoning_content",
            _ => "content",
        };
        delta.insert(key.into(), new_value);
    }
    Some(Bytes::from(format!("data: {v}\n\n")))
}
