//! The load generator's results: percentiles (linear interpolation between closest ranks, as
//! numpy and `vllm bench serve` compute them), throughput, goodput against the SLOs given, the
//! summary table printed at the end and the JSON document with every request.

use super::request::RequestRecord;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Service-level objectives for goodput, in milliseconds; `None` is not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
}

impl Slo {
    pub fn is_empty(&self) -> bool {
        self.ttft_ms.is_none() && self.tpot_ms.is_none() && self.e2e_ms.is_none()
    }

    /// A request is good when it succeeded and meets every SLO given. A request with one token
    /// has no TPOT and passes a TPOT SLO (vLLM counts its TPOT as 0).
    pub fn met_by(&self, r: &RequestRecord) -> bool {
        if !r.ok() {
            return false;
        }
        let within = |value: Option<f64>, slo: Option<f64>| match (value, slo) {
            (_, None) => true,
            (Some(v), Some(limit)) => v * 1000.0 <= limit,
            (None, Some(_)) => false,
        };
        within(r.ttft_secs, self.ttft_ms)
            && within(r.tpot_secs.or(Some(0.0)), self.tpot_ms)
            && within(Some(r.e2e_secs), self.e2e_ms)
    }
}

/// Distribution of one latency, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Percentile `q` (0..=100) of sorted values, interpolating linearly between closest ranks.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64))
}

impl Stats {
    /// From values in seconds; `None` when there are none.
    pub fn from_secs(values: impl Iterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.map(|s| s * 1000.0).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let p = |q| percentile(&v, q).unwrap_or(f64::NAN);
        Some(Stats {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            min: v[0],
            p50: p(50.0),
            p90: p(90.0),
            p99: p(99.0),
            p999: p(99.9),
            max: v[v.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Goodput {
    pub slo: Slo,
    pub good_requests: u64,
    /// Good requests per second over the run.
    pub requests_per_second: f64,
    /// Good requests over all requests sent.
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Requests sent (started).
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failures by class (`http_503`, `timeout`, `incomplete`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Open-loop arrivals not sent because `max_in_flight` requests were already open.
    pub skipped: u64,
    /// From the first request sent to the last one finished.
    pub duration_secs: f64,
    /// Requests started per second.
    pub offered_rate: f64,
    /// Successful requests per second.
    pub request_throughput: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub input_token_throughput: f64,
    pub output_token_throughput: f64,
    pub ttft_ms: Option<Stats>,
    pub tpot_ms: Option<Stats>,
    pub itl_ms: Option<Stats>,
    pub e2e_ms: Option<Stats>,
    pub goodput: Option<Goodput>,
}

impl Summary {
    /// Summarises the records; marks each record's `good` flag against `slo`.
    pub fn compute(
        records: &mut [RequestRecord],
        slo: &Slo,
        skipped: u64,
        duration_secs: f64,
    ) -> Summary {
        let mut errors = BTreeMap::new();
        let mut good = 0;
        for r in records.iter_mut() {
            if let Some(e) = &r.error {
                *errors.entry(e.clone()).or_insert(0) += 1;
            }
            r.good = r.ok() && slo.met_by(r);
            good += u64::from(r.good);
        }
        let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
        let sent = records.len() as u64;
        let succeeded = ok.len() as u64;
        let per_sec = |n: f64| if duration_secs > 0.0 { n / duration_secs } else { 0.0 };
        let input_tokens: u64 = ok.iter().filter_map(|r| r.prompt_tokens).sum();
        let output_tokens: u64 = ok.iter().filter_map(|r| r.completion_tokens).sum();
        Summary {
            sent,
            succeeded,
            failed: sent - succeeded,
            errors,
            skipped,
            duration_secs,
            offered_rate: per_sec(sent as f64),
            request_throughput: per_sec(succeeded as f64),
            input_tokens,
            output_tokens,
            reasoning_tokens: ok.iter().filter_map(|r| r.reasoning_tokens).sum(),
            input_token_throughput: per_sec(input_tokens as f64),
            output_token_throughput: per_sec(output_tokens as f64),
            ttft_ms: Stats::from_secs(ok.iter().filter_map(|r| r.ttft_secs)),
            tpot_ms: Stats::from_secs(ok.iter().filter_map(|r| r.tpot_secs)),
            itl_ms: Stats::from_secs(ok.iter().flat_map(|r| r.itl_secs.iter().copied())),
            e2e_ms: Stats::from_secs(ok.iter().map(|r| r.e2e_secs)),
            goodput: (!slo.is_empty()).then(|| Goodput {
                slo: *slo,
                good_requests: good,
                requests_per_second: per_sec(good as f64),
                ratio: if sent > 0 { good as f64 / sent as f64 } else { 0.0 },
            }),
        }
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "requests: {} sent, {} ok, {} failed{}{}",
            self.sent,
            self.succeeded,
            self.failed,
            if self.errors.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> =
                    self.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(" ({})", parts.join(", "))
            },
            if self.skipped > 0 {
                format!(", {} skipped (max in flight)", self.skipped)
            } else {
                String::new()
            },
        );
        let _ = writeln!(
            out,
            "duration: {:.2} s   offered: {:.1} req/s   throughput: {:.1} req/s, {:.0} input tok/s, {:.0} output tok/s",
            self.duration_secs,
            self.offered_rate,
            self.request_throughput,
            self.input_token_throughput,
            self.output_token_throughput
        );
        let _ = writeln!(
            out,
            "\n{:<10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "ms", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, stats) in [
            ("TTFT", &self.ttft_ms),
            ("TPOT", &self.tpot_ms),
            ("ITL", &self.itl_ms),
            ("E2E", &self.e2e_ms),
        ] {
            match stats {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{name:<10} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
                        s.count, s.mean, s.p50, s.p90, s.p99, s.p999, s.max
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<10} {:>8}", "-");
                }
            }
        }
        match &self.goodput {
            Some(g) => {
                let mut slos = Vec::new();
                if let Some(v) = g.slo.ttft_ms {
                    slos.push(format!("ttft<={v}ms"));
                }
                if let Some(v) = g.slo.tpot_ms {
                    slos.push(format!("tpot<={v}ms"));
                }
                if let Some(v) = g.slo.e2e_ms {
                    slos.push(format!("e2e<={v}ms"));
                }
                let _ = writeln!(
                    out,
                    "\ngoodput ({}): {:.1} req/s, {} of {} requests good ({:.1} %)",
                    slos.join(", "),
                    g.requests_per_second,
                    g.good_requests,
                    self.sent,
                    g.ratio * 100.0
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "\ngoodput: no SLO given (--slo-ttft-ms, --slo-tpot-ms, --slo-e2e-ms)"
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.5));
        assert_eq!(percentile(&v, 90.0), Some(9.1));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
        let s = Stats::from_secs([0.001, 0.002, 0.003].into_iter()).unwrap();
        assert_eq!((s.count, s.p50, s.max), (3, 2.0, 3.0));
    }
}
