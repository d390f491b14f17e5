//! What the admission stages hand to `forward`: the request as it goes upstream, and how the
//! answer is relayed back (usage chunk stripped or not, an injected stream cut, output scanning).
//! A leaf: `forward`, `stream` and `output` all read it.

use crate::scanner::Policy;
use bytes::Bytes;
use deepwatch_core::config::gateway::ScanAction;
use http::{HeaderValue, Method};

/// The request as it goes upstream.
pub struct Outgoing {
    pub method: Method,
    pub path_and_query: String,
    /// The client's headers that travel upstream (`headers::upstream_request`).
    pub headers: http::HeaderMap,
    pub client_auth: Option<HeaderValue>,
    pub body: Bytes,
}

/// The client's address, put into each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// How the answer is relayed to the client.
pub struct RelayOptions {
    /// Drop the usage chunk the gateway asked for and the client did not.
    pub strip_usage: bool,
    /// Injected fault: end the stream after this many content chunks.
    pub cut_after_chunks: Option<u64>,
    pub output_action: ScanAction,
    pub policy: Policy,
    /// `GET /v1/models/{id}`: answer with that entry of the upstream's list (404 without).
    pub model_id: Option<String>,
}

/// The id of `GET /v1/models/{id}`, put into the request's extensions by the router.
#[derive(Debug, Clone)]
pub struct ModelId(pub String);
