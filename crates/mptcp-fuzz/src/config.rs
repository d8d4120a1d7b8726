//! The configuration files: `pm.toml` (`mptcp pm run --config`) and `proxy.toml`
//! (`mptcp proxy --config`). The input is taken as UTF-8, invalid sequences replaced.

/// `pm.toml`: a refusal names a line of the text and says why on one line; a
/// configuration that loads answers its queries.
pub fn pm_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match mptcp_pm::Config::from_toml(&text, "pm.toml") {
        Ok(config) => {
            for name in ["eth0", "wwan0", "", "veth1234"] {
                let _ = config.rule_for(name);
            }
        }
        Err(e) => {
            if let Some(line) = e.line {
                let lines = text.split('\n').count();
                assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            }
            assert!(!e.message.is_empty());
            assert!(e.to_string().starts_with("pm.toml"));
        }
    }
}

/// `proxy.toml`: a configuration that loads has routes that pass their own check, with
/// unique names; a TOML error is one line.
pub fn proxy_toml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match mptcp_proxy::Config::from_toml(&text) {
        Ok(config) => {
            assert!(!config.routes.is_empty());
            for r in &config.routes {
                r.validate().expect("a loaded route passes its check");
            }
            let mut names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), config.routes.len(), "two routes share a name");
        }
        Err(mptcp_proxy::ConfigError::Toml(message)) => {
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
