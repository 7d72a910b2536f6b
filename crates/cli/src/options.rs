//! Turn parsed flags (and the `-c` file) into server [`Options`]: defaults, then the
//! config file, then flags, as nats-server layers them.

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{bail, Context};
use petrel_config::{Auth, JetStreamOptions, TlsOptions};
use petrel_server::Options;

use crate::flags::Parsed;

/// Options plus any warnings from the config file.
pub struct Built {
    pub options: Options,
    pub warnings: Vec<String>,
}

/// Apply the config file and flags over the defaults.
pub fn build(f: &Parsed) -> anyhow::Result<Built> {
    let (mut o, warnings) = match f.get("config") {
        Some(path) => {
            let loaded = petrel_config::load_file(std::path::Path::new(path))
                .context("cannot load config file")?;
            (loaded.options, loaded.warnings)
        }
        None => (Options::default(), Vec::new()),
    };
    if let Some(a) = f.get("addr") {
        o.host = resolve_host(a)?;
    }
    if let Some(p) = f.get("port") {
        o.port = parse_port(p, "-p")?;
    }
    if let Some(n) = f.get("name") {
        o.server_name = Some(n.to_string());
    }
    if let Some(m) = f.get("http_port") {
        // nats-server: `-m 0` leaves monitoring off, `-m -1` picks a free port.
        o.http_port = match m {
            "0" => None,
            m => Some(parse_port(m, "-m")?),
        };
    }
    if let Some(v) = f.get("max_payload") {
        o.max_payload = v.parse().ok().filter(|&n: &usize| n > 0).with_context(|| {
            format!(
                "invalid value {v:?} for flag -max_payload: expected a positive number of bytes"
            )
        })?;
    }
    if let Some(l) = f.get("log") {
        o.log_file = Some(PathBuf::from(l));
    }
    if let Some(d) = f.get("ports_file_dir") {
        o.ports_file_dir = Some(PathBuf::from(d));
    }
    if let Some(d) = f.get("lame_duck_duration") {
        o.lame_duck_duration = parse_duration(d, "--lame_duck_duration")?;
    }
    if let Some(d) = f.get("lame_duck_grace_period") {
        o.lame_duck_grace_period = parse_duration(d, "--lame_duck_grace_period")?;
    }
    if let Some(p) = f.get("pid") {
        o.pid_file = Some(PathBuf::from(p));
    }
    if f.on("debug") || f.on("DV") || f.on("DVV") {
        o.debug = true;
    }
    if f.on("trace") || f.on("VV") || f.on("DV") || f.on("DVV") {
        o.trace = true;
    }
    if f.given("jetstream") {
        o.jetstream = f
            .on("jetstream")
            .then(|| o.jetstream.clone().unwrap_or_default());
    }
    if let Some(sd) = f.get("store_dir") {
        // nats-server: -sd alone does not enable JetStream, it only places the store.
        if let Some(js) = o.jetstream.as_mut() {
            js.store_dir = PathBuf::from(sd);
        } else if f.on("jetstream") {
            o.jetstream = Some(JetStreamOptions {
                store_dir: PathBuf::from(sd),
                ..JetStreamOptions::default()
            });
        }
    }
    apply_tls(f, &mut o)?;
    apply_cluster(f, &mut o)?;
    match (f.get("user"), f.get("pass"), f.get("auth")) {
        (Some(_), Some(_), Some(_)) => bail!("--auth cannot be combined with --user/--pass"),
        (Some(u), Some(p), None) => {
            o.auth = Auth::UserPass {
                user: u.to_string(),
                pass: p.to_string(),
            }
        }
        (Some(_), None, _) => bail!("--user requires --pass"),
        (None, Some(_), _) => bail!("--pass requires --user"),
        (None, None, Some(t)) => o.auth = Auth::Token(t.to_string()),
        (None, None, None) => {}
    }
    o.validate().context("invalid options")?;
    Ok(Built {
        options: o,
        warnings,
    })
}

/// `--tls --tlscert --tlskey --tlscacert --tlsverify`, over any `tls {}` from the file.
fn apply_tls(f: &Parsed, o: &mut Options) -> anyhow::Result<()> {
    let any = ["tlscert", "tlskey", "tlscacert"]
        .iter()
        .any(|k| f.get(k).is_some())
        || f.on("tls")
        || f.on("tlsverify");
    if !any {
        return Ok(());
    }
    let mut t = o.tls.clone().unwrap_or_else(|| TlsOptions::new("", ""));
    if let Some(c) = f.get("tlscert") {
        t.cert_file = PathBuf::from(c);
    }
    if let Some(k) = f.get("tlskey") {
        t.key_file = PathBuf::from(k);
    }
    if let Some(ca) = f.get("tlscacert") {
        t.ca_file = Some(PathBuf::from(ca));
    }
    if f.on("tlsverify") {
        t.verify = true;
    }
    if t.cert_file.as_os_str().is_empty() || t.key_file.as_os_str().is_empty() {
        bail!("TLS needs both --tlscert and --tlskey");
    }
    o.tls = Some(t);
    Ok(())
}

/// `--cluster --cluster_name --routes --cluster_advertise --no_advertise`, over any
/// `cluster {}` from the file (`--routes` alone needs a cluster listener, as nats-server).
fn apply_cluster(f: &Parsed, o: &mut Options) -> anyhow::Result<()> {
    let any = ["cluster", "cluster_name", "routes", "cluster_advertise"]
        .iter()
        .any(|k| f.get(k).is_some())
        || f.given("no_advertise");
    if !any {
        return Ok(());
    }
    let mut c = o.cluster.clone().unwrap_or_default();
    if let Some(url) = f.get("cluster") {
        // nats-server: port -1 picks a free one.
        let (given, random) = match url.strip_suffix(":-1") {
            Some(rest) => (format!("{rest}:1"), true),
            None => (url.to_string(), false),
        };
        let u = petrel_config::RouteUrl::parse(&given)
            .map_err(|e| anyhow::anyhow!("invalid value {url:?} for --cluster: {e}"))?;
        c.host = resolve_host(&u.host)?;
        c.port = if random { 0 } else { u.port };
        if u.user.is_some() {
            c.user = u.user;
            c.password = u.pass;
        }
    } else if o.cluster.is_none() && f.get("routes").is_some() {
        bail!("--routes needs a cluster listener: add --cluster nats://0.0.0.0:6222");
    }
    if let Some(n) = f.get("cluster_name") {
        if n.contains(' ') {
            bail!("invalid value {n:?} for --cluster_name: cluster name cannot contain spaces");
        }
        c.name = Some(n.to_string());
    }
    if let Some(r) = f.get("routes") {
        c.routes = petrel_config::parse_route_list(r)
            .map_err(|e| anyhow::anyhow!("invalid value {r:?} for --routes: {e}"))?;
    }
    if let Some(a) = f.get("cluster_advertise") {
        c.advertise = Some(a.to_string());
    }
    if f.given("no_advertise") {
        c.no_advertise = f.on("no_advertise");
    }
    o.cluster = Some(c);
    Ok(())
}

/// `-p`/`-m` value: 0..=65535, or -1 for "pick a free port" (0).
fn parse_duration(v: &str, flag: &str) -> anyhow::Result<std::time::Duration> {
    petrel_config::conf::parse_go_duration(v)
        .map_err(|e| anyhow::anyhow!("invalid value {v:?} for {flag}: {e}"))
}

fn parse_port(v: &str, flag: &str) -> anyhow::Result<u16> {
    if v == "-1" {
        return Ok(0);
    }
    v.parse::<u16>()
        .with_context(|| format!("invalid value {v:?} for flag {flag}: expected a port number (0-65535, or -1 for random)"))
}

/// `-a` value: an IP address or a host name.
fn resolve_host(v: &str) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = v.parse() {
        return Ok(ip);
    }
    (v, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|a| a.ip())
        .with_context(|| {
            format!("invalid value {v:?} for flag -a: not an IP address or resolvable host name")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_args(args: &[&str]) -> anyhow::Result<Built> {
        let parsed = crate::flags::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(anyhow::Error::msg)?;
        build(&parsed)
    }

    #[test]
    fn flags_overlay_defaults() {
        let b = build_args(&[
            "-p",
            "-1",
            "-a",
            "127.0.0.1",
            "-js",
            "-sd",
            "/tmp/s",
            "--user",
            "a",
            "--pass",
            "b",
        ])
        .unwrap();
        let o = b.options;
        assert_eq!(o.port, 0);
        assert_eq!(o.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(o.jetstream.unwrap().store_dir, PathBuf::from("/tmp/s"));
        assert!(o.auth.required());
    }

    #[test]
    fn monitoring_port_flag() {
        let port = |args: &[&str]| build_args(args).ok().and_then(|b| b.options.http_port);
        assert_eq!(port(&["-m", "8222"]), Some(8222));
        assert_eq!(port(&["--http_port=-1"]), Some(0));
        assert_eq!(port(&["-m", "0"]), None);
        assert_eq!(port(&[]), None);
        assert!(build_args(&["-m", "x"]).is_err());
    }

    #[test]
    fn cluster_flags() {
        let b = build_args(&[
            "--cluster",
            "nats://ruser:rpass@127.0.0.1:6333",
            "--cluster_name",
            "medisync-cluster",
            "--routes",
            "nats://nats-1:6222, nats://nats-2:6222",
            "--no_advertise",
        ])
        .unwrap();
        let c = b.options.cluster.unwrap();
        assert_eq!((c.port, c.user.as_deref()), (6333, Some("ruser")));
        assert_eq!(c.name.as_deref(), Some("medisync-cluster"));
        assert_eq!(c.routes.len(), 2);
        assert!(c.no_advertise);
        assert!(build_args(&["--routes", "nats://a:1"]).is_err());
        assert!(build_args(&["--cluster", "http://x:1"]).is_err());
        assert!(
            build_args(&["--cluster", "nats://0.0.0.0:6222", "--cluster_name", "a b"]).is_err()
        );
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(build_args(&["-p", "abc"]).is_err());
        assert!(build_args(&["-p", "70000"]).is_err());
        assert!(build_args(&["--user", "a"]).is_err());
        assert!(build_args(&["--max_payload", "0"]).is_err());
        assert!(build_args(&["-a", "no such host..invalid"]).is_err());
    }
}
