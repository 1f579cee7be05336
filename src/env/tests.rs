//! Tests of the environment reader: every variable, every unit, every error.

use super::*;

fn base() -> HashMap<&'static str, &'static str> {
    HashMap::from([(FRAMEWORK_ID, "fw-1"), (EXECUTOR_ID, "exec-1"), (SLAVE_PID, "slave(1)@10.0.0.5:5051")])
}

fn with(extra: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    let mut env = base();
    env.extend(extra.iter().copied());
    env
}

fn invalid_var(err: EnvError) -> &'static str {
    match err {
        EnvError::Invalid { var, .. } => var,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn minimal_environment_gets_upstream_defaults() {
    let env = ExecutorEnv::from_lookup(&base()).unwrap();
    assert_eq!(env.framework_id, "fw-1");
    assert_eq!(env.executor_id, "exec-1");
    assert_eq!(env.agent.process_id, "slave(1)");
    assert_eq!(env.agent.host, "10.0.0.5");
    assert_eq!(env.agent.port, 5051);
    assert_eq!(env.agent.path(), "/slave(1)/api/v1/executor");
    assert!(!env.checkpoint);
    assert_eq!(env.recovery_timeout, Duration::from_secs(900));
    assert_eq!(env.subscription_backoff_max, Duration::from_secs(2));
    assert_eq!(env.shutdown_grace_period, Duration::from_secs(5));
    assert_eq!(env.auth_token, None);
    assert_eq!(env.directory, None);
    assert_eq!(env.sandbox, None);
    assert!(!env.http_command_executor && !env.local && !env.tls.enabled);
    assert_eq!(env.domain_socket, None);
}

#[test]
fn full_agent_environment_is_read() {
    let env = ExecutorEnv::from_lookup(&with(&[
        (SLAVE_ID, "agent-7"),
        (AGENT_ENDPOINT, "10.0.0.5:5051"),
        (DIRECTORY, "/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r"),
        (CHECKPOINT, "1"),
        (RECOVERY_TIMEOUT, "15mins"),
        (SUBSCRIPTION_BACKOFF_MAX, "2secs"),
        (SHUTDOWN_GRACE_PERIOD, "1500ms"),
        (AUTHENTICATION_TOKEN, "eyJhbGciOiJIUzI1NiJ9.e30.sig"),
        (HTTP_COMMAND_EXECUTOR, "1"),
        (DOMAIN_SOCKET, "/run/mesos/agent.sock"),
        (LOCAL, "1"),
        (METRICS_FILE, "/var/lib/node_exporter/executor.prom"),
    ]))
    .unwrap();
    assert_eq!(env.metrics_file, Some(PathBuf::from("/var/lib/node_exporter/executor.prom")));
    assert_eq!(env.agent_id.as_deref(), Some("agent-7"));
    assert_eq!(env.directory, Some(PathBuf::from("/var/lib/mesos/slaves/a/frameworks/f/executors/e/runs/r")));
    assert_eq!(env.sandbox, env.directory, "MESOS_SANDBOX defaults to MESOS_DIRECTORY");
    assert!(env.checkpoint);
    assert_eq!(env.recovery_timeout, Duration::from_secs(900));
    assert_eq!(env.subscription_backoff_max, Duration::from_secs(2));
    assert_eq!(env.shutdown_grace_period, Duration::from_millis(1500));
    assert_eq!(env.auth_token.as_ref().map(Secret::expose), Some("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
    assert!(env.http_command_executor);
    assert_eq!(env.domain_socket, Some(PathBuf::from("/run/mesos/agent.sock")));
    assert!(env.local);
}

#[test]
fn sandbox_overrides_directory() {
    let env =
        ExecutorEnv::from_lookup(&with(&[(DIRECTORY, "/host/sandbox"), (SANDBOX, "/mnt/mesos/sandbox")])).unwrap();
    assert_eq!(env.directory, Some(PathBuf::from("/host/sandbox")));
    assert_eq!(env.sandbox, Some(PathBuf::from("/mnt/mesos/sandbox")));
}

#[test]
fn ipv6_pid_and_endpoint() {
    let env = ExecutorEnv::from_lookup(&with(&[(SLAVE_PID, "slave(1)@[::1]:5051")])).unwrap();
    assert_eq!(env.agent.host, "::1");
    assert_eq!(env.agent.port, 5051);
    assert_eq!(env.agent.authority(), "[::1]:5051");

    let mut only_endpoint = base();
    only_endpoint.remove(SLAVE_PID);
    only_endpoint.insert(AGENT_ENDPOINT, "[fe80::1]:5052");
    let env = ExecutorEnv::from_lookup(&only_endpoint).unwrap();
    assert_eq!(env.agent.process_id, "slave(1)");
    assert_eq!(env.agent.authority(), "[fe80::1]:5052");
}

#[test]
fn newer_agent_names_win_over_legacy_slave_names() {
    let env = ExecutorEnv::from_lookup(&with(&[
        (AGENT_PID, "slave(2)@127.0.0.1:6000"),
        (AGENT_ID, "agent-new"),
        (SLAVE_ID, "agent-old"),
    ]))
    .unwrap();
    assert_eq!(env.agent.process_id, "slave(2)");
    assert_eq!(env.agent.port, 6000);
    assert_eq!(env.agent_id.as_deref(), Some("agent-new"));
}

#[test]
fn missing_required_variables_are_named() {
    for var in [FRAMEWORK_ID, EXECUTOR_ID, SLAVE_PID] {
        let mut env = base();
        env.remove(var);
        match ExecutorEnv::from_lookup(&env).unwrap_err() {
            EnvError::Missing { var: missing, .. } => assert_eq!(missing, var),
            other => panic!("expected Missing for {var}, got {other:?}"),
        }
    }
    let mut env = base();
    env.insert(FRAMEWORK_ID, "");
    assert!(matches!(ExecutorEnv::from_lookup(&env), Err(EnvError::Missing { var: FRAMEWORK_ID, .. })));
}

#[test]
fn malformed_variables_are_named_with_their_value() {
    let cases: [(&'static str, &'static str); 14] = [
        (SLAVE_PID, "10.0.0.5:5051"),
        (SLAVE_PID, "slave(1)@10.0.0.5"),
        (SLAVE_PID, "slave(1)@10.0.0.5:99999"),
        (SLAVE_PID, "slave(1)@::1:5051"),
        (SLAVE_PID, "slave(1)@[::1:5051"),
        (SLAVE_PID, "@10.0.0.5:5051"),
        (CHECKPOINT, "yes"),
        (HTTP_COMMAND_EXECUTOR, "2"),
        (RECOVERY_TIMEOUT, "15 mins"),
        (SUBSCRIPTION_BACKOFF_MAX, "2s"),
        (SHUTDOWN_GRACE_PERIOD, "-5secs"),
        (SSL_ENABLED, "on"),
        (SSL_VERIFY_CERT, "maybe"),
        (EXECUTOR_ID, "exec\n1"),
    ];
    for (var, value) in cases {
        let err = ExecutorEnv::from_lookup(&with(&[(var, value)])).unwrap_err();
        let message = err.to_string();
        assert_eq!(invalid_var(err), var, "{var}={value}");
        assert!(message.contains(var), "{message}");
        assert!(message.contains(&format!("{value:?}")), "{message}");
        assert!(message.contains("expected"), "{message}");
    }
    let mut only_endpoint = base();
    only_endpoint.remove(SLAVE_PID);
    only_endpoint.insert(AGENT_ENDPOINT, "localhost");
    assert_eq!(invalid_var(ExecutorEnv::from_lookup(&only_endpoint).unwrap_err()), AGENT_ENDPOINT);
}

#[test]
fn checkpoint_flag_forms() {
    for (value, expected) in [("1", true), ("0", false), ("true", true), ("false", false), ("", false)] {
        let env = ExecutorEnv::from_lookup(&with(&[(CHECKPOINT, value)])).unwrap();
        assert_eq!(env.checkpoint, expected, "MESOS_CHECKPOINT={value}");
    }
}

#[test]
fn tls_variables() {
    let env = ExecutorEnv::from_lookup(&with(&[
        (SSL_ENABLED_SHORT, "true"),
        (SSL_CA_FILE, "/etc/ca.pem"),
        (SSL_CA_DIR, "/etc/certs"),
        (SSL_CERT_FILE, "/etc/client.pem"),
        (SSL_KEY_FILE, "/etc/client.key"),
        (SSL_VERIFY_CERT, "1"),
    ]))
    .unwrap();
    assert_eq!(
        env.tls,
        TlsEnv {
            enabled: true,
            ca_file: Some("/etc/ca.pem".into()),
            ca_dir: Some("/etc/certs".into()),
            cert_file: Some("/etc/client.pem".into()),
            key_file: Some("/etc/client.key".into()),
            verify_cert: Some(true),
        }
    );
}

#[test]
fn token_never_appears_in_debug_output() {
    let token = "super-secret-jwt-value";
    let env = ExecutorEnv::from_lookup(&with(&[(AUTHENTICATION_TOKEN, token)])).unwrap();
    let debug = format!("{env:?} {:?} {env:#?}", env.auth_token);
    assert!(!debug.contains(token), "{debug}");
    assert!(debug.contains("redacted"));
}

#[test]
fn every_duration_unit() {
    let cases = [
        ("7ns", Duration::from_nanos(7)),
        ("3us", Duration::from_micros(3)),
        ("1500ms", Duration::from_millis(1500)),
        ("5secs", Duration::from_secs(5)),
        ("1mins", Duration::from_secs(60)),
        ("2hrs", Duration::from_secs(7200)),
        ("1days", Duration::from_secs(86_400)),
        ("2weeks", Duration::from_secs(14 * 86_400)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
}

#[test]
fn duration_decimals_are_exact_and_truncated() {
    assert_eq!(parse_duration("1.5secs"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("0.3secs"), Ok(Duration::from_millis(300)));
    assert_eq!(parse_duration(".5mins"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("2.secs"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("1.0001secs"), Ok(Duration::from_nanos(1_000_100_000)));
    assert_eq!(parse_duration("0.0000000015secs"), Ok(Duration::from_nanos(1)));
    assert_eq!(parse_duration("1.9ns"), Ok(Duration::from_nanos(1)));
    assert_eq!(parse_duration("0ns"), Ok(Duration::ZERO));
}

#[test]
fn duration_errors() {
    for bad in [
        "",
        "5",
        "secs",
        "5s",
        "5SECS",
        "5 secs",
        " 5secs",
        "-5secs",
        "+5secs",
        "1e3ms",
        "1.2.3secs",
        ".secs",
        "1mins30secs",
        "5sec",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
    }
    // Upstream stores an int64 of nanoseconds.
    assert_eq!(parse_duration("9223372036854775807ns"), Ok(Duration::from_nanos(i64::MAX as u64)));
    assert!(parse_duration("9223372036854775808ns").is_err());
    assert!(parse_duration("16000weeks").is_err());
    assert!(parse_duration("99999999999999999999999999999999999999999secs").is_err());
    // A fraction with many digits stays just under one unit instead of wrapping around.
    let nines = format!("0.{}weeks", "9".repeat(30));
    assert_eq!(parse_duration(&nines), Ok(Duration::from_secs(7 * 86_400) - Duration::from_nanos(1)));
    let nines = format!("15250.{}weeks", "9".repeat(40));
    assert!(parse_duration(&nines).is_err(), "just under 15251 weeks is past i64 nanoseconds");
}

#[test]
fn durations_are_formatted_as_the_agent_exports_them() {
    let cases = [
        (Duration::from_secs(5), "5secs"),
        (Duration::from_millis(1500), "1500ms"),
        (Duration::from_secs(60), "1mins"),
        (Duration::from_secs(90), "90secs"),
        (Duration::from_secs(15 * 60), "15mins"),
        (Duration::from_secs(36 * 3600), "36hrs"),
        (Duration::from_secs(7 * 86_400), "1weeks"),
        (Duration::from_secs(10 * 86_400), "10days"),
        (Duration::ZERO, "0ns"),
        (Duration::from_nanos(1_000_100_000), "1.0001secs"),
        (Duration::from_nanos(999), "999ns"),
    ];
    for (duration, text) in cases {
        assert_eq!(format_duration(duration), text);
        assert_eq!(parse_duration(text), Ok(duration), "{text} round-trips");
    }
}
