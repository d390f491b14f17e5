//! Small HTTP servers that record every request Alertmanager makes: a plain webhook receiver
//! (the phone/SMS gateway) and a WeCom API stand-in that speaks the real wire format
//! (`GET gettoken?corpid=..&corpsecret=..` answered with an access token, then
//! `POST message/send?access_token=..` answered with `errcode` 0, or WeCom's error codes when
//! the credentials or the token are wrong).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value of one query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    wecom: Option<WeComAuth>,
}

#[derive(Clone)]
struct WeComAuth {
    corp_id: String,
    secret: String,
    token: String,
}

/// A running receiver; stops when dropped.
pub struct Recorder {
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests to paths ending in `suffix` with a JSON body.
    pub fn posts_to(&self, suffix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with(suffix))
            .collect()
    }
}

/// Answers 200 to everything and records it: a webhook receiver.
pub async fn webhook() -> Recorder {
    start(None).await
}

/// A WeCom API stand-in for `api_url = <url>/cgi-bin/` with these credentials.
pub async fn wecom(corp_id: &str, secret: &str) -> Recorder {
    start(Some(WeComAuth {
        corp_id: corp_id.to_string(),
        secret: secret.to_string(),
        token: "e2e-access-token-0001".to_string(),
    }))
    .await
}

async fn start(wecom: Option<WeComAuth>) -> Recorder {
    let shared = Shared { log: Arc::default(), wecom };
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind recorder");
    let addr = listener.local_addr().expect("recorder addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Recorder { addr, shared, task }
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let received = Received {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.log.lock().unwrap().push(received.clone());
    let Some(auth) = &shared.wecom else {
        return StatusCode::OK.into_response();
    };
    // WeCom answers 200 with an errcode in the body, also for errors.
    let answer = if method == Method::GET && received.path.ends_with("/gettoken") {
        let ok = received.param("corpid").as_deref() == Some(auth.corp_id.as_str())
            && received.param("corpsecret").as_deref() == Some(auth.secret.as_str());
        if ok {
            json!({"errcode": 0, "errmsg": "ok", "access_token": auth.token, "expires_in": 7200})
        } else {
            json!({"errcode": 40001, "errmsg": "invalid credential"})
        }
    } else if method == Method::POST && received.path.ends_with("/message/send") {
        if received.param("access_token").as_deref() != Some(auth.token.as_str()) {
            json!({"errcode": 40014, "errmsg": "invalid access_token"})
        } else if received.json().get("msgtype").and_then(Value::as_str).is_none() {
            json!({"errcode": 40008, "errmsg": "invalid message type"})
        } else {
            json!({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "e2e"})
        }
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    axum::Json(answer).into_response()
}
