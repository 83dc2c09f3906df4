//! Where Graph and its token endpoint live: `GRAPH_CLOUD`, `GRAPH_BASE_URL`, `LOGIN_BASE_URL`.

use std::fmt;

use super::{ConfigError, Env};

/// The national cloud whose Graph and login endpoints are used (`GRAPH_CLOUD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphCloud {
    #[default]
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl GraphCloud {
    /// Case-insensitive; `-`/`_` ignored (`us-gov-dod` works too).
    pub fn parse(s: &str) -> Result<GraphCloud, ConfigError> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_' && *c != ' ')
            .collect::<String>()
            .to_ascii_lowercase();
        match key.as_str() {
            "global" | "public" | "" => Ok(GraphCloud::Global),
            "usgov" | "gcchigh" => Ok(GraphCloud::UsGov),
            "usgovdod" | "dod" => Ok(GraphCloud::UsGovDod),
            "china" => Ok(GraphCloud::China),
            _ => Err(ConfigError::UnknownCloud(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GraphCloud::Global => "global",
            GraphCloud::UsGov => "usgov",
            GraphCloud::UsGovDod => "usgovdod",
            GraphCloud::China => "china",
        }
    }

    /// `https://graph.microsoft.com` and its national counterparts.
    pub fn graph_base_url(self) -> &'static str {
        match self {
            GraphCloud::Global => "https://graph.microsoft.com",
            GraphCloud::UsGov => "https://graph.microsoft.us",
            GraphCloud::UsGovDod => "https://dod-graph.microsoft.us",
            GraphCloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// `https://login.microsoftonline.com` and its national counterparts.
    pub fn login_base_url(self) -> &'static str {
        match self {
            GraphCloud::Global => "https://login.microsoftonline.com",
            GraphCloud::UsGov | GraphCloud::UsGovDod => "https://login.microsoftonline.us",
            GraphCloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

impl fmt::Display for GraphCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where Graph and the token endpoint live: scheme + host (+ port), no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSettings {
    /// e.g. `https://graph.microsoft.com`; the client adds `/v1.0/...` and `/beta/...`.
    pub graph_base_url: String,
    /// e.g. `https://login.microsoftonline.com`; the client adds `/{tenant}/oauth2/v2.0/token`.
    pub login_base_url: String,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings::for_cloud(GraphCloud::Global)
    }
}

impl GraphSettings {
    pub fn for_cloud(cloud: GraphCloud) -> GraphSettings {
        GraphSettings {
            graph_base_url: cloud.graph_base_url().to_string(),
            login_base_url: cloud.login_base_url().to_string(),
        }
    }

    /// Both endpoints on one base URL (the simulator serves Graph and the token endpoint).
    pub fn single_host(base_url: &str) -> Result<GraphSettings, ConfigError> {
        let u = normalise_base_url("GRAPH_BASE_URL", base_url)?;
        Ok(GraphSettings {
            graph_base_url: u.clone(),
            login_base_url: u,
        })
    }

    /// Reads `GRAPH_CLOUD`, `GRAPH_BASE_URL` and `LOGIN_BASE_URL` through `lookup`. Unset or blank
    /// variables fall back to the cloud's endpoints.
    pub fn from_lookup<F>(lookup: F) -> Result<GraphSettings, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let env = Env(lookup);
        let get = |k: &str| env.get(k);
        let cloud = match get("GRAPH_CLOUD") {
            Some(v) => GraphCloud::parse(&v)?,
            None => GraphCloud::Global,
        };
        let mut s = GraphSettings::for_cloud(cloud);
        if let Some(v) = get("GRAPH_BASE_URL") {
            s.graph_base_url = normalise_base_url("GRAPH_BASE_URL", &v)?;
        }
        if let Some(v) = get("LOGIN_BASE_URL") {
            s.login_base_url = normalise_base_url("LOGIN_BASE_URL", &v)?;
        }
        Ok(s)
    }

    /// [`GraphSettings::from_lookup`] over the process environment.
    pub fn from_env() -> Result<GraphSettings, ConfigError> {
        GraphSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// `{login}/{tenant}/oauth2/v2.0/token`; `tenant` must already be validated (see
    /// [`crate::graph::Credentials`]).
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.login_base_url)
    }

    /// `{graph}/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.graph_base_url)
    }
}

/// Checks an endpoint override: `http(s)://host[:port]` with at most a trailing `/`, no user
/// info, path, query or fragment. Returns it without the trailing slash.
pub fn normalise_base_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let example = if var.starts_with("LOGIN") {
        "https://login.microsoftonline.com"
    } else {
        "https://graph.microsoft.com"
    };
    let bad = |why: &str| ConfigError::InvalidBaseUrl {
        var,
        value: value.to_string(),
        why: why.to_string(),
        example,
    };
    let v = value.trim();
    let u = url::Url::parse(v).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(bad("the scheme must be https or http"));
    }
    let Some(host) = u.host() else {
        return Err(bad("there is no host"));
    };
    // Tokens and phone numbers travel over this connection: plain HTTP is for a simulator on this
    // machine only.
    if u.scheme() == "http" && !is_loopback(&host) {
        return Err(bad(
            "http:// is allowed only for a loopback host (localhost, 127.0.0.0/8, ::1); use https://",
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        // Not echoed: user info may hold a password.
        return Err(ConfigError::InvalidBaseUrl {
            var,
            value: "<redacted>".to_string(),
            why: "user info is not allowed".to_string(),
            example,
        });
    }
    if u.path() != "/" && !u.path().is_empty() {
        return Err(bad("a path is not allowed"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("a query or fragment is not allowed"));
    }
    let mut s = u.as_str().to_string();
    while s.ends_with('/') {
        s.pop();
    }
    Ok(s)
}

/// Whether a URL host is this machine: `localhost` (and names under it) or a loopback address.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<GraphSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GraphSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn clouds_map_to_their_hosts() {
        let cases = [
            (
                None,
                "https://graph.microsoft.com",
                "https://login.microsoftonline.com",
            ),
            (
                Some("global"),
                "https://graph.microsoft.com",
                "https://login.microsoftonline.com",
            ),
            (
                Some("USGov"),
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us",
            ),
            (
                Some("usgovdod"),
                "https://dod-graph.microsoft.us",
                "https://login.microsoftonline.us",
            ),
            (
                Some("china"),
                "https://microsoftgraph.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
        ];
        for (cloud, graph, login) in cases {
            let vars: Vec<(&str, &str)> = cloud.map(|c| ("GRAPH_CLOUD", c)).into_iter().collect();
            let s = settings(&vars).unwrap();
            assert_eq!(s.graph_base_url, graph, "{cloud:?}");
            assert_eq!(s.login_base_url, login, "{cloud:?}");
        }
        let err = settings(&[("GRAPH_CLOUD", "mars")]).unwrap_err();
        assert!(err.to_string().contains("mars"));
        assert!(err.to_string().contains("usgovdod"));
    }

    #[test]
    fn overrides_strip_slash_and_reject_paths() {
        let s = settings(&[
            ("GRAPH_CLOUD", "china"),
            ("GRAPH_BASE_URL", "http://127.0.0.1:8080/"),
            ("LOGIN_BASE_URL", "https://login.example.test"),
        ])
        .unwrap();
        assert_eq!(s.graph_base_url, "http://127.0.0.1:8080");
        assert_eq!(s.login_base_url, "https://login.example.test");
        assert_eq!(s.scope(), "http://127.0.0.1:8080/.default");
        assert_eq!(
            s.token_url("contoso.onmicrosoft.com"),
            "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );

        for (var, bad) in [
            ("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0"),
            ("GRAPH_BASE_URL", "graph.microsoft.com"),
            ("LOGIN_BASE_URL", "ftp://login.example"),
            ("GRAPH_BASE_URL", "https://graph.example/?x=1"),
            ("GRAPH_BASE_URL", "http://graph.microsoft.com"),
            ("LOGIN_BASE_URL", "http://10.0.0.5:8080"),
            ("GRAPH_BASE_URL", "http://localhost.example.com"),
        ] {
            let err = settings(&[(var, bad)]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(var), "{msg}");
            assert!(msg.contains(bad), "{msg}");
        }
        for ok in [
            "http://localhost:9000",
            "http://127.0.0.2:9000",
            "http://[::1]:9000",
            "http://sim.localhost",
        ] {
            let s = settings(&[("GRAPH_BASE_URL", ok), ("LOGIN_BASE_URL", ok)]);
            assert!(s.is_ok(), "{ok}: {s:?}");
        }
        let err = settings(&[("LOGIN_BASE_URL", "https://u:secretpw@login.example")]).unwrap_err();
        assert!(!err.to_string().contains("secretpw"));
        // Blank means unset.
        let s = settings(&[("GRAPH_BASE_URL", "  ")]).unwrap();
        assert_eq!(s, GraphSettings::default());
    }
}
