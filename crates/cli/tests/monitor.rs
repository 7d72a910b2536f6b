//! `petrel -m`: the binary serves the monitoring endpoints and logs where, as nats-server
//! does (`Starting http monitor on <host>:<port>`).

use std::path::Path;
use std::time::Duration;

use petrel_testkit::{http_get, spawn_binary_with};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

#[tokio::test]
async fn dash_m_serves_monitoring_on_a_free_port() {
    let server =
        spawn_binary_with(Path::new(BIN), &["-m", "-1", "-n", "mon-test"]).expect("start petrel");
    let addr = server
        .monitor_addr(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no monitor log line in {:?}", server.log_lines()));
    let health = http_get(addr, "/healthz").await.expect("GET /healthz");
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "{\"status\":\"ok\"}")
    );
    let _nc = async_nats::connect(server.client_url()).await.unwrap();
    let varz = http_get(addr, "/varz").await.expect("GET /varz").json();
    assert_eq!(varz["server_name"], "mon-test");
    assert_eq!(varz["http_port"], addr.port());
    assert_eq!(varz["port"], server.addr().port());
    assert_eq!(varz["connections"], 1);
}
