//! The sensitive-data scanner end to end: prompt redaction and blocking, streamed output
//! redaction across chunk boundaries, counters by kind and direction, no values in logs.

use crate::support::upstream::{Knobs, Upstream};
use crate::support::*;
use deepwatch_core::config::gateway::{ScanAction, ScanPolicy};

fn policy(prompt: ScanAction, output: ScanAction) -> ScanPolicy {
    ScanPolicy { prompt, output, ..ScanPolicy::default() }
}

#[tokio::test]
async fn prompts_are_redacted_or_blocked_per_tenant() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.api_keys.insert("sk-r".into(), "redactor".into());
    cfg.api_keys.insert("sk-b".into(), "blocker".into());
    cfg.scanner.tenants.insert("redactor".into(), policy(ScanAction::Redact, ScanAction::Count));
    cfg.scanner.tenants.insert("blocker".into(), policy(ScanAction::Block, ScanAction::Count));
    let gw = start(cfg).await;
    let body = serde_json::json!({"model": "m", "messages": [
        {"role": "user", "content": "I am zhang@example.cn, id 11010519491231002X"}]});
    let resp = client().post(chat_url(&gw)).bearer_auth("sk-r").json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let sent = up.seen.bodies.lock()[0]["messages"][0]["content"].clone();
    assert_eq!(sent, "I am [REDACTED:email], id [REDACTED:cn_id]");
    let resp = client().post(chat_url(&gw)).bearer_auth("sk-b").json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "sensitive_data_blocked");
    assert!(!v.to_string().contains("zhang@example.cn"));
    assert_eq!(up.requests(), 1);
    // Anonymous tenants get the default policy: counted, passed unchanged.
    client().post(chat_url(&gw)).json(&body).send().await.unwrap();
    assert_eq!(up.seen.bodies.lock()[1]["messages"][0]["content"], body["messages"][0]["content"]);
    let m = metrics(&gw).await;
    let count = |tenant: &str, kind: &str, action: &str| {
        sample(
            &m,
            "deepwatch_sensitive_data_matches_total",
            &[("tenant", tenant), ("kind", kind), ("direction", "prompt"), ("action", action)],
        )
    };
    assert_eq!(count("redactor", "email", "redact"), Some(1.0));
    assert_eq!(count("redactor", "cn_id", "redact"), Some(1.0));
    assert_eq!(count("blocker", "email", "block"), Some(1.0));
    assert_eq!(count("anonymous", "cn_id", "count"), Some(1.0));
}

#[tokio::test]
async fn streamed_output_is_redacted_across_chunk_boundaries() {
    let words = ["Mail ", "li", ".lei@", "corp", ".com", " or ", "138", "0013", "8000", " today"];
    let up = Upstream::start(Knobs {
        words: words.iter().map(|s| s.to_string()).collect(),
        ..Knobs::default()
    })
    .await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.scanner.default = policy(ScanAction::Count, ScanAction::Redact);
    let gw = start(cfg).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut answer = String::new();
    for ev in events(&text) {
        let Some(data) = ev.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            answer.push_str(c);
        }
    }
    assert_eq!(answer, "Mail [REDACTED:email] or [REDACTED:phone] today", "{text}");
    assert!(!text.contains("lei@") && !text.contains("0013"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let m = metrics(&gw).await;
    let out = |kind: &str| {
        sample(
            &m,
            "deepwatch_sensitive_data_matches_total",
            &[("kind", kind), ("direction", "output"), ("action", "redact")],
        )
    };
    assert_eq!(out("email"), Some(1.0));
    assert_eq!(out("phone"), Some(1.0));
    // Non-streamed answers are redacted too.
    let v: serde_json::Value = client()
        .post(chat_url(&gw))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Mail [REDACTED:email] or [REDACTED:phone] today"
    );
    // ... and counted once each, like the stream's.
    let m = metrics(&gw).await;
    let out = |kind: &str| {
        sample(
            &m,
            "deepwatch_sensitive_data_matches_total",
            &[("kind", kind), ("direction", "output"), ("action", "redact")],
        )
    };
    assert_eq!(out("email"), Some(2.0));
    assert_eq!(out("phone"), Some(2.0));
}

#[tokio::test]
async fn blocked_output_ends_the_stream_before_the_value_is_sent() {
    let words = ["Your ", "key ", "is ", "sk-abcdefghij", "klmnopqrstuvwxyz", " ok"];
    let up = Upstream::start(Knobs {
        words: words.iter().map(|s| s.to_string()).collect(),
        ..Knobs::default()
    })
    .await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.scanner.default = policy(ScanAction::Count, ScanAction::Block);
    let gw = start(cfg).await;
    let text = client()
        .post(chat_url(&gw))
        .json(&chat_body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Your ") && !text.contains("sk-abc"), "{text}");
    assert!(events(&text).last().unwrap().contains("sensitive_data_blocked"), "{text}");
    // A whole answer with the key is refused outright.
    let resp = client().post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("sensitive_data_blocked") && !body.contains("sk-abc"), "{body}");
    let m = metrics(&gw).await;
    assert_eq!(sum(&m, "deepwatch_requests_total", &[("outcome", "rejected")]), 2.0);
    let blocked = &[("kind", "api_key"), ("direction", "output"), ("action", "block")];
    assert_eq!(sample(&m, "deepwatch_sensitive_data_matches_total", blocked), Some(2.0));
}

/// Four multi-megabyte digit-heavy prompts (every run of digits a candidate for the card, phone
/// and ID detectors) on a single proxy worker: small requests sent meanwhile are answered while
/// the large ones are still being scanned, because large prompts are scanned off the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_prompts_are_scanned_off_the_proxy_worker() {
    let up = Upstream::start(Knobs::default()).await;
    let mut cfg = config(vec![pool("blue", &[up.url()])]);
    cfg.workers = 1;
    cfg.max_body_bytes = 16 * 1024 * 1024;
    // Blocked prompts never reach the upstream (whose body limit is 2 MB); they are scanned all
    // the same.
    cfg.scanner.default = policy(ScanAction::Block, ScanAction::Count);
    let gw = start(cfg).await;
    let mut digits: String = (0..600_000u64).map(|i| format!("{:012} ", i * 7919)).collect();
    digits.push_str("write to ops@example.com");
    let big = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": digits}]});
    let big = bytes::Bytes::from(serde_json::to_vec(&big).unwrap());
    let started = tokio::time::Instant::now();
    let large: Vec<_> = (0..4)
        .map(|_| {
            let (c, url, body) = (client(), chat_url(&gw), big.clone());
            tokio::spawn(async move {
                let resp = c
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = resp.status();
                assert_eq!(status, 403, "{}", resp.text().await.unwrap());
                resp.bytes().await.unwrap();
                started.elapsed()
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let c = client();
    let mut slowest_small = std::time::Duration::ZERO;
    for _ in 0..10 {
        let t = tokio::time::Instant::now();
        let resp = c.post(chat_url(&gw)).json(&chat_body(false)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        slowest_small = slowest_small.max(t.elapsed());
    }
    let small_done = started.elapsed();
    let mut first_large = std::time::Duration::MAX;
    for l in large {
        first_large = first_large.min(l.await.unwrap());
    }
    // The small requests do not queue behind the scans: all ten are through before the first
    // large prompt is (its scan alone takes much longer than ten small round trips).
    assert!(
        small_done < first_large,
        "small requests done at {small_done:?} (slowest {slowest_small:?}), first large at {first_large:?}"
    );
    let text = metrics(&gw).await;
    assert!(
        sum(&text, "deepwatch_sensitive_data_matches_total", &[("direction", "prompt")]) >= 4.0,
        "{text}"
    );
}
