//! The peers collector: TCP connect latency to configured peer nodes, probed on an interval by
//! background tasks, as a histogram per peer (inter-node latency for multi-node inference).

use crate::collector::{CollectError, Collector};
use deepwatch_core::catalog::agent as cat;
use deepwatch_core::config::agent::PeerConfig;
use deepwatch_core::expo::MetricSink;
use deepwatch_core::metrics::{CounterVec, Encode, GaugeVec, HistogramVec};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct PeerMetrics {
    latency: HistogramVec,
    up: GaugeVec,
    failures: CounterVec,
}

pub struct PeersCollector {
    peers: Vec<PeerConfig>,
    metrics: Arc<PeerMetrics>,
}

/// Why one probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connect to {0} timed out")]
    Timeout(String),
    #[error("connect to {address} failed: {source}")]
    Connect { address: String, source: std::io::Error },
}

impl PeersCollector {
    pub fn new(peers: &[PeerConfig]) -> Self {
        let metrics = Arc::new(PeerMetrics {
            latency: HistogramVec::new(&cat::PEER_CONNECT_LATENCY),
            up: GaugeVec::new(&cat::PEER_UP),
            failures: CounterVec::new(&cat::PEER_CONNECT_FAILURES),
        });
        for p in peers {
            metrics.latency.with(&[&p.name]);
            metrics.failures.with(&[&p.name]);
        }
        PeersCollector { peers: peers.to_vec(), metrics }
    }

    /// One probe: resolve, then time the TCP handshake alone.
    pub async fn probe(metrics: &PeerMetrics, peer: &PeerConfig) -> Result<Duration, ProbeError> {
        let timeout = peer.timeout;
        let result = async {
            let addr = tokio::time::timeout(timeout, tokio::net::lookup_host(&peer.address))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|mut a| a.next())
                .ok_or_else(|| ProbeError::Resolve(peer.address.clone()))?;
            let start = Instant::now();
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => Ok(start.elapsed()),
                Ok(Err(source)) => {
                    Err(ProbeError::Connect { address: peer.address.clone(), source })
                }
                Err(_) => Err(ProbeError::Timeout(peer.address.clone())),
            }
        }
        .await;
        match &result {
            Ok(d) => {
                metrics.latency.observe(&[&peer.name], d.as_secs_f64());
                metrics.up.set(&[&peer.name], 1.0);
            }
            Err(e) => {
                tracing::debug!(peer = %peer.name, error = %e, "peer probe failed");
                metrics.failures.inc(&[&peer.name]);
                metrics.up.set(&[&peer.name], 0.0);
            }
        }
        result
    }

    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.peers
            .iter()
            .map(|peer| {
                let peer = peer.clone();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let mut tick =
                        tokio::time::interval(peer.interval.max(Duration::from_millis(1)));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let _ = PeersCollector::probe(&metrics, &peer).await;
                    }
                })
            })
            .collect()
    }

    pub fn metrics(&self) -> &Arc<PeerMetrics> {
        &self.metrics
    }
}

impl Collector for PeersCollector {
    fn name(&self) -> &'static str {
        "peers"
    }

    fn collect(&self, sink: &mut MetricSink) -> Result<(), CollectError> {
        self.metrics.latency.encode(sink);
        self.metrics.up.encode(sink);
        self.metrics.failures.encode(sink);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepwatch_core::expo::Format;

    fn peer(name: &str, address: String) -> PeerConfig {
        PeerConfig {
            name: name.into(),
            address,
            interval: std::time::Duration::from_millis(50),
            timeout: std::time::Duration::from_millis(500),
        }
    }

    #[tokio::test]
    async fn connect_latency_is_observed_and_refused_peers_are_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let peers = vec![peer("b", open.to_string()), peer("c", closed.to_string())];
        let c = PeersCollector::new(&peers);
        let d = PeersCollector::probe(c.metrics(), &peers[0]).await.unwrap();
        assert!(d < Duration::from_secs(1));
        assert!(PeersCollector::probe(c.metrics(), &peers[1]).await.is_err());
        let mut sink = MetricSink::new(Format::Text004);
        c.collect(&mut sink).unwrap();
        let text = sink.render();
        assert!(
            text.contains("deepwatch_peer_connect_latency_seconds_count{peer=\"b\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("deepwatch_peer_connect_latency_seconds_count{peer=\"c\"} 0"),
            "{text}"
        );
        assert!(text.contains("deepwatch_peer_up{peer=\"b\"} 1"), "{text}");
        assert!(text.contains("deepwatch_peer_up{peer=\"c\"} 0"), "{text}");
        assert!(text.contains("deepwatch_peer_connect_failures_total{peer=\"c\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn background_probes_run_on_their_interval() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = vec![peer("b", listener.local_addr().unwrap().to_string())];
        let c = PeersCollector::new(&peers);
        let tasks = c.spawn();
        deepwatch_testkit::wait_for("three probes", Duration::from_secs(5), || async {
            let mut sink = MetricSink::new(Format::Text004);
            c.collect(&mut sink).unwrap();
            let text = sink.render();
            text.lines()
                .find(|l| l.starts_with("deepwatch_peer_connect_latency_seconds_count"))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .filter(|n| *n >= 3)
        })
        .await;
        tasks.iter().for_each(|t| t.abort());
    }
}
