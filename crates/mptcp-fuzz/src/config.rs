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
/// unique names, and values that what the proxy hands them to takes without a panic:
/// tokio's runtime builder (worker threads), its semaphore (connection slots), the
/// monotonic clock (a deadline is now plus a timeout). A TOML error is one line.
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
            if let Some(n) = config.threads {
                // `mptcp proxy` builds its runtime with this many workers.
                let _ = tokio::runtime::Builder::new_multi_thread().worker_threads(n);
            }
            let now = std::time::Instant::now();
            let deadline = |d: std::time::Duration| {
                assert!(now.checked_add(d).is_some(), "{d:?} past the clock's end");
            };
            deadline(config.drain_timeout);
            for r in &config.routes {
                let _ = tokio::sync::Semaphore::new(r.max_conns);
                deadline(r.connect_timeout);
                if let Some(idle) = r.idle_timeout {
                    deadline(idle);
                }
            }
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
