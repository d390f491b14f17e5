//! Prometheus remote_write 1.0 messages, derived by hand so no `protoc` is needed. Field
//! numbers follow `prompb/types.proto` and `prompb/remote.proto`. The body is the protobuf
//! encoding compressed with snappy's block format (not the framed stream format).

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// In timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

pub const CONTENT_TYPE: &str = "application/x-protobuf";
pub const CONTENT_ENCODING: &str = "snappy";
pub const VERSION_HEADER: (&str, &str) = ("X-Prometheus-Remote-Write-Version", "0.1.0");

impl WriteRequest {
    /// The HTTP body: protobuf bytes in snappy block format.
    pub fn to_body(&self) -> Vec<u8> {
        let raw = self.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
    }

    /// Decodes a body produced by `to_body` (or by Prometheus).
    pub fn from_body(body: &[u8]) -> Result<WriteRequest, RemoteWriteError> {
        let raw = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
        WriteRequest::decode(raw.as_slice()).map_err(|e| RemoteWriteError::Protobuf(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("remote write body is not snappy block data: {0}")]
    Snappy(String),
    #[error("remote write body is not a WriteRequest: {0}")]
    Protobuf(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label { name: "__name__".into(), value: "deepwatch_build_info".into() },
                    Label { name: "component".into(), value: "agent".into() },
                ],
                samples: vec![Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
            }],
        };
        let body = req.to_body();
        assert_eq!(WriteRequest::from_body(&body).unwrap(), req);
        assert!(WriteRequest::from_body(b"not snappy").is_err());
    }
}
