//! `[web]`: the HTTP listener and how long shutdown may take.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::{check_all, duration_text, secs, Bounded, Bounds};

/// `[web]`: where the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, `/`) listen.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port for `/metrics` and the landing page. 9716 is uniqwatch's default port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// On SIGTERM or SIGINT, how long in-flight checks may take to finish before the daemon exits anyway.
    #[serde(default = "default_shutdown_grace", with = "duration_text")]
    pub shutdown_grace: Duration,
    /// A web config file in the Prometheus exporter toolkit's format (TLS, client certificates, basic auth, extra response headers), so the file written for node_exporter works here; `--web.config.file` overrides it. It applies to every endpoint, `/healthz` included, and is reloaded when it or a certificate it names changes. Absent: plain HTTP without authentication. See the README, "Web security".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
}

impl WebConfig {
    /// Range of `shutdown_grace`.
    pub const SHUTDOWN_GRACE: Bounds<Duration> = Bounds {
        min: secs(0),
        max: secs(3600),
        why: "service managers stop waiting long before an hour",
    };

    /// Every bounded field with its value.
    pub fn bounded(&self) -> [(&'static str, Bounded); 1] {
        [("shutdown_grace", Bounded::Duration(self.shutdown_grace, Self::SHUTDOWN_GRACE))]
    }

    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        check_all("web.", self.bounded())
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9716))
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
            config_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    #[test]
    fn shutdown_grace_is_bounded() {
        let e = Config::from_toml("[web]\nshutdown_grace = \"10000years\"", Path::new("t"), None).unwrap_err().to_string();
        assert!(e.contains("field `web.shutdown_grace`") && e.contains("0s to 1h"), "{e}");
        Config::from_toml("[web]\nshutdown_grace = \"0s\"", Path::new("t"), None).unwrap();
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = Config::from_toml("[web]\nlisten = \"127.0.0.1:1\"\nport = 3", Path::new("t"), None).unwrap_err().to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }
}
