//! Where the demo's Alertmanager delivers, in-process, so the timeline can show each
//! notification as it arrives: the phone/SMS webhook (`POST /sms`, Alertmanager's webhook JSON),
//! a WeCom API stand-in speaking WeCom's wire format (`GET /cgi-bin/gettoken` answered with an
//! access token, `POST /cgi-bin/message/send` with `errcode` 0), and a minimal SMTP server for
//! the e-mail receiver. Nothing leaves the machine.

use super::timeline::Timeline;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WECOM_TOKEN: &str = "demo-wecom-access-token";

/// Serves the webhook and WeCom routes on `listener` until the task is aborted.
pub fn http(
    listener: TcpListener,
    timeline: Timeline,
    corp_id: String,
) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/sms", post(phone))
        .route("/cgi-bin/gettoken", get(move |q: RawQuery| gettoken(q, corp_id.clone())))
        .route("/cgi-bin/message/send", post(wecom_send))
        // The analyzer's webhook when the demo runs without the analyzer.
        .route("/analyzer-disabled", post(|| async { "ok" }))
        .with_state(timeline);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

fn short_labels(labels: &Value) -> String {
    let mut parts = Vec::new();
    for key in ["severity", "priority", "pool", "model_version", "instance", "gpu", "slo", "reason"]
    {
        if let Some(v) = labels[key].as_str() {
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join(", ")
}

async fn phone(State(timeline): State<Timeline>, body: Bytes) -> &'static str {
    let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    for alert in doc["alerts"].as_array().into_iter().flatten() {
        let name = alert["labels"]["alertname"].as_str().unwrap_or("?");
        let status = alert["status"].as_str().unwrap_or("?");
        timeline.emit(
            "notification",
            format!("phone/SMS webhook <- {name} {status} ({})", short_labels(&alert["labels"])),
            json!({"receiver": "phone-sms", "alert": name, "status": status, "labels": alert["labels"]}),
        );
    }
    "ok"
}

async fn gettoken(RawQuery(query): RawQuery, corp_id: String) -> Json<Value> {
    let query = query.unwrap_or_default();
    let ok = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "corpid" && v == corp_id.as_str());
    if ok {
        Json(json!({"errcode": 0, "errmsg": "ok", "access_token": WECOM_TOKEN, "expires_in": 7200}))
    } else {
        Json(json!({"errcode": 40013, "errmsg": "invalid corpid"}))
    }
}

async fn wecom_send(
    State(timeline): State<Timeline>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Json<Value> {
    let query = query.unwrap_or_default();
    let token_ok = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "access_token" && v == WECOM_TOKEN);
    if !token_ok {
        return Json(json!({"errcode": 40014, "errmsg": "invalid access_token"}));
    }
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content =
        msg["markdown"]["content"].as_str().or(msg["text"]["content"].as_str()).unwrap_or_default();
    let first = content.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    timeline.emit(
        "notification",
        format!("WeCom <- {first}"),
        json!({"receiver": "wecom", "content": content, "msgtype": msg["msgtype"]}),
    );
    Json(json!({"errcode": 0, "errmsg": "ok", "invaliduser": ""}))
}

/// A minimal SMTP server (HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no AUTH) that
/// reports each mail's subject on the timeline.
pub fn smtp(listener: TcpListener, timeline: Timeline) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let timeline = timeline.clone();
            tokio::spawn(async move {
                let _ = smtp_session(stream, timeline).await;
            });
        }
    })
}

async fn smtp_session(stream: tokio::net::TcpStream, timeline: Timeline) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 deepwatch-demo ESMTP\r\n").await?;
    let mut rcpt = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-deepwatch-demo\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO")
            || upper.starts_with("MAIL")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT") {
            // "RCPT TO:<oncall@example.com>"
            rcpt.push(line.trim_end().get(8..).unwrap_or_default().trim().to_string());
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut subject = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                if subject.is_empty() && l.len() > 8 && l[..8].eq_ignore_ascii_case("subject:") {
                    subject = l[8..].trim().to_string();
                }
            }
            timeline.emit(
                "notification",
                format!("e-mail to {} <- {subject}", rcpt.join(", ")),
                json!({"receiver": "email", "subject": subject, "to": rcpt}),
            );
            rcpt.clear();
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}
