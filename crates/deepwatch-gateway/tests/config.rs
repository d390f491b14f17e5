//! Config checks: the deliberately wrong fixture names every problem with its path, and the
//! gateway refuses to start without an upstream.

use deepwatch_core::config::Config;

#[test]
fn the_wrong_fixture_reports_every_problem_with_its_path() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad-gateway.toml");
    let err = Config::load(std::path::Path::new(path)).unwrap_err().to_string();
    for want in [
        "gateway.admin_listen: must be an address like 127.0.0.1:9844, got \"localhost\"",
        "gateway.pools[1].weight: must be between 0 and 100, got 150",
        "gateway.pools[1].name: duplicate pool name \"blue\"",
        "gateway.pools[1].upstreams[0]: must be an http or https URL, got scheme \"ftp\"",
        "gateway.pools[0].health.error_ratio: must be between 0 and 1, got 1.5",
        "gateway.rollout.steps: must increase strictly, got [1, 50, 25]",
        "gateway.scanner.tenants.acme.kinds[0]: unknown kind \"ssn\"",
        "gateway.faults.rules[0].error_rate: must be between 0 and 1, got 2",
        "gateway.api_keys: require_api_key is set but no key is listed",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

#[tokio::test]
async fn a_gateway_without_upstreams_does_not_start() {
    let cfg = crate::support::config(vec![]);
    let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = deepwatch_gateway::Gateway::start_on(
        cfg,
        std::sync::Arc::new(deepwatch_core::clock::TokioClock::new()),
        l1,
        l2,
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("at least one pool"), "{err}");
}
