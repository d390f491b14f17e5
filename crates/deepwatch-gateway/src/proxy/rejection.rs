//! Why a request is answered by the gateway itself: the client-facing error, the outcome it is
//! counted under, and the few headers such an answer carries. Admission stages and failed
//! attempts return one; `Record::reject` answers it and closes the record.

use crate::error::ApiError;
use crate::metrics::Outcome;

/// A request the gateway answers with an error.
#[derive(Debug)]
pub struct Rejection {
    pub error: ApiError,
    pub outcome: Outcome,
    /// Seconds for `Retry-After` (rate limits).
    pub retry_after: Option<u64>,
}

impl Rejection {
    pub fn new(error: ApiError, outcome: Outcome) -> Self {
        Rejection { error, outcome, retry_after: None }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// Refused by policy or because the request is bad: counted as `rejected`.
impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Rejection::new(error, Outcome::Rejected)
    }
}
