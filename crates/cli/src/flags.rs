//! nats-server compatible command-line flags, with Go `flag` package semantics: `-name`
//! and `--name` are the same flag, values follow as `-name value` or `-name=value`, and
//! boolean flags take no value (`-js`, or `-js=false`).

use std::collections::HashMap;

/// Whether a flag takes a value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

/// One flag: its canonical name (first alias), aliases and help text.
struct Flag {
    names: &'static [&'static str],
    kind: Kind,
    arg: &'static str,
    help: &'static str,
}

const FLAGS: &[Flag] = &[
    Flag {
        names: &["addr", "a", "net"],
        kind: Kind::Value,
        arg: "<host>",
        help: "Bind to host address (default: 0.0.0.0)",
    },
    Flag {
        names: &["port", "p"],
        kind: Kind::Value,
        arg: "<port>",
        help: "Use port for clients (default: 4222; -1 picks a free port)",
    },
    Flag {
        names: &["name", "n", "server_name"],
        kind: Kind::Value,
        arg: "<server_name>",
        help: "Server name (default: auto)",
    },
    Flag {
        names: &["pid", "P"],
        kind: Kind::Value,
        arg: "<file>",
        help: "File to store PID",
    },
    Flag {
        names: &["http_port", "m"],
        kind: Kind::Value,
        arg: "<port>",
        help: "Use port for http monitoring",
    },
    Flag {
        names: &["config", "c"],
        kind: Kind::Value,
        arg: "<file>",
        help: "Configuration file",
    },
    Flag {
        names: &["t"],
        kind: Kind::Bool,
        arg: "",
        help: "Test configuration and exit",
    },
    Flag {
        names: &["healthcheck"],
        kind: Kind::Bool,
        arg: "",
        help: "Probe a running server's /healthz (-m port, default 8222) and exit 0 if healthy (container HEALTHCHECK)",
    },
    Flag {
        names: &["healthcheck_url"],
        kind: Kind::Value,
        arg: "<url>",
        help: "Probe this /healthz URL instead (implies --healthcheck)",
    },
    Flag {
        names: &["max_payload"],
        kind: Kind::Value,
        arg: "<bytes>",
        help: "Maximum message payload (default: 1048576)",
    },
    Flag {
        names: &["log", "l"],
        kind: Kind::Value,
        arg: "<file>",
        help: "File to redirect log output",
    },
    Flag {
        names: &["logtime", "T"],
        kind: Kind::Bool,
        arg: "",
        help: "Timestamp log entries (default: true)",
    },
    Flag {
        names: &["debug", "D"],
        kind: Kind::Bool,
        arg: "",
        help: "Enable debugging output",
    },
    Flag {
        names: &["trace", "V"],
        kind: Kind::Bool,
        arg: "",
        help: "Trace the raw protocol",
    },
    Flag {
        names: &["VV"],
        kind: Kind::Bool,
        arg: "",
        help: "Verbose trace (same as -V)",
    },
    Flag {
        names: &["DV"],
        kind: Kind::Bool,
        arg: "",
        help: "Debug and trace",
    },
    Flag {
        names: &["DVV"],
        kind: Kind::Bool,
        arg: "",
        help: "Debug and verbose trace",
    },
    Flag {
        names: &["jetstream", "js"],
        kind: Kind::Bool,
        arg: "",
        help: "Enable JetStream functionality",
    },
    Flag {
        names: &["store_dir", "sd"],
        kind: Kind::Value,
        arg: "<dir>",
        help: "Set the storage directory (default: ./data)",
    },
    Flag {
        names: &["user"],
        kind: Kind::Value,
        arg: "<user>",
        help: "User required for connections",
    },
    Flag {
        names: &["pass"],
        kind: Kind::Value,
        arg: "<password>",
        help: "Password required for connections",
    },
    Flag {
        names: &["auth"],
        kind: Kind::Value,
        arg: "<token>",
        help: "Authorization token required for connections",
    },
    Flag {
        names: &["tls"],
        kind: Kind::Bool,
        arg: "",
        help: "Enable TLS, do not verify clients (default: false)",
    },
    Flag {
        names: &["tlscert"],
        kind: Kind::Value,
        arg: "<file>",
        help: "Server certificate file",
    },
    Flag {
        names: &["tlskey"],
        kind: Kind::Value,
        arg: "<file>",
        help: "Private key for server certificate",
    },
    Flag {
        names: &["tlsverify"],
        kind: Kind::Bool,
        arg: "",
        help: "Enable TLS, verify client certificates",
    },
    Flag {
        names: &["tlscacert"],
        kind: Kind::Value,
        arg: "<file>",
        help: "Client certificate CA for verification",
    },
    Flag {
        names: &["cluster", "cluster_listen"],
        kind: Kind::Value,
        arg: "<url>",
        help: "Cluster URL for solicited routes (e.g. nats://0.0.0.0:6222)",
    },
    Flag {
        names: &["cluster_name"],
        kind: Kind::Value,
        arg: "<string>",
        help: "Cluster name (routes with another name are refused)",
    },
    Flag {
        names: &["routes"],
        kind: Kind::Value,
        arg: "<rurl-1, rurl-2>",
        help: "Routes to solicit and connect",
    },
    Flag {
        names: &["cluster_advertise"],
        kind: Kind::Value,
        arg: "<string>",
        help: "Cluster URL to advertise to other servers",
    },
    Flag {
        names: &["no_advertise"],
        kind: Kind::Bool,
        arg: "",
        help: "Do not advertise known cluster information to clients",
    },
    Flag {
        names: &["signal", "sl"],
        kind: Kind::Value,
        arg: "<signal>[=<pid>]",
        help: "Send signal to petrel process (ldm, stop, quit, term, reopen, reload); pid can be a pid file",
    },
    Flag {
        names: &["ports_file_dir"],
        kind: Kind::Value,
        arg: "<dir>",
        help: "Creates a ports file in the specified directory (<executable_name>_<pid>.ports)",
    },
    Flag {
        names: &["lame_duck_duration"],
        kind: Kind::Value,
        arg: "<duration>",
        help: "Lame-duck mode: time over which clients are closed (default 2m)",
    },
    Flag {
        names: &["lame_duck_grace_period"],
        kind: Kind::Value,
        arg: "<duration>",
        help: "Lame-duck mode: wait before closing clients (default 10s)",
    },
    Flag {
        names: &["help", "h"],
        kind: Kind::Bool,
        arg: "",
        help: "Show this message",
    },
    Flag {
        names: &["version", "v"],
        kind: Kind::Bool,
        arg: "",
        help: "Show version",
    },
];

/// Parsed flags by canonical name.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    values: HashMap<&'static str, String>,
}

impl Parsed {
    /// The value of a value flag.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether a boolean flag is on.
    pub fn on(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| v == "true")
    }

    /// Whether a boolean flag was given at all (either value).
    pub fn given(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

fn lookup(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.names.contains(&name))
}

/// Parse arguments (without the program name). Errors are one line.
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(extra) = args.get(i) {
                return Err(format!("unexpected argument {extra:?}"));
            }
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let flag = lookup(name).ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let canonical = flag.names[0];
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match v.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => "true".to_string(),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => "false".to_string(),
                _ => return Err(format!("invalid boolean value {v:?} for flag -{name}")),
            },
            (Kind::Value, Some(v)) => v,
            (Kind::Value, None) => {
                let v = args
                    .get(i)
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?;
                i += 1;
                v.clone()
            }
        };
        out.values.insert(canonical, value);
    }
    Ok(out)
}

/// The `--help` text.
pub fn usage() -> String {
    let mut s =
        String::from("Usage: petrel [options]\n\nOptions (each may be written with - or --):\n");
    for f in FLAGS {
        let names: Vec<String> = f.names.iter().map(|n| format!("-{n}")).collect();
        let left = format!("    {} {}", names.join(", "), f.arg);
        s.push_str(&format!("{left:<44} {}\n", f.help));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn go_style_flags() {
        let f = p(&[
            "-p",
            "-1",
            "--addr=127.0.0.1",
            "-js",
            "-sd",
            "/tmp/x",
            "--user",
            "u",
            "-DV",
            "-js=false",
        ])
        .unwrap();
        assert_eq!(f.get("port"), Some("-1"));
        assert_eq!(f.get("addr"), Some("127.0.0.1"));
        assert_eq!(f.get("store_dir"), Some("/tmp/x"));
        assert_eq!(f.get("user"), Some("u"));
        assert!(f.on("DV"));
        assert!(!f.on("jetstream"));
        assert!(f.given("jetstream"));
        let f = p(&["--jetstream", "-port", "4333", "-n", "x"]).unwrap();
        assert!(f.on("jetstream"));
        assert_eq!(f.get("port"), Some("4333"));
        assert_eq!(f.get("name"), Some("x"));
    }

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            p(&["--bogus"]).unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(p(&["-p"]).unwrap_err(), "flag needs an argument: -p");
        assert!(p(&["stray"]).is_err());
        assert!(p(&["-js=maybe"]).is_err());
        for e in [p(&["--bogus"]), p(&["-p"])] {
            assert!(!e.unwrap_err().contains('\n'));
        }
    }

    #[test]
    fn usage_lists_every_flag() {
        let u = usage();
        for f in FLAGS {
            assert!(u.contains(&format!("-{}", f.names[0])));
        }
    }
}
