use super::*;

const MINIMAL: &str = "data_dir = \"data\"\nhostname = \"gw.agency.example\"\ninternal_domains = [\"Agency.Example\"]\n";

fn load(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!("{MINIMAL}{extra}"), Path::new("/etc/gw"))
}

fn err(extra: &str) -> String {
    load(extra).unwrap_err().to_string()
}

#[test]
fn minimal_file_gets_safe_defaults() {
    let c = load("").unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/etc/gw/data"));
    assert_eq!(c.internal_domains, vec!["agency.example"]);
    assert_eq!(c.cert_query_address, "cert-query@agency.example");
    assert_eq!(c.authserv_id, "gw.agency.example");
    assert_eq!(c.postmaster_address, "MAILER-DAEMON@gw.agency.example");
    assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:10025");
    assert_eq!(c.smtp.max_message_size, 50 << 20);
    assert_eq!(c.smtp.tls, None);
    assert_eq!(c.inbound.next_hop, "127.0.0.1:10026");
    assert_eq!(c.outbound.hop.next_hop, "127.0.0.1:10027");
    assert_eq!(
        c.outbound.policy_without_certificate,
        PolicyWithoutCertificate::Refuse
    );
    assert!(
        !c.trust.use_system_store,
        "explicit anchors only by default"
    );
    assert_eq!(c.trust.revocation, certstore::RevocationMode::SoftFail);
    assert!(c.trust.required_policies.is_empty());
    assert_eq!(c.cert_query.rate_limit_per_hour, 5);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8025");
    assert_eq!(
        c.admin.token_file,
        PathBuf::from("/etc/gw/data/admin.token")
    );
    assert_eq!(c.store.proxy_cert_validity_days, 365);
    assert_eq!(c.inbound_hop().tls, TlsMode::Opportunistic);
    assert!(c.is_internal_domain("AGENCY.example"));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    assert!(err("colour = 1\n").contains("colour"));
    assert!(err("[smtp]\nlisten_addr = \"127.0.0.1:25\"\n").contains("listen_addr"));
    assert!(err("[outbound]\npolicy = \"refuse\"\n").contains("policy"));
    assert!(err("[nonsense]\n").contains("nonsense"));
}

#[test]
fn invalid_values_name_the_key() {
    for (extra, key) in [
        ("[smtp]\nlisten = \"localhost\"\n", "smtp.listen"),
        ("[smtp]\nmax_message_size = 0\n", "smtp.max_message_size"),
        (
            "[smtp]\nmax_message_size = \"12 parsecs\"\n",
            "smtp.max_message_size",
        ),
        ("[smtp]\nidle_timeout_secs = 0\n", "smtp.idle_timeout_secs"),
        ("[smtp]\nmax_sessions = 0\n", "smtp.max_sessions"),
        (
            "[smtp]\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/nonexistent.key\"\n",
            "smtp.tls_cert",
        ),
        ("[smtp]\ntls_cert = \"/etc/hostname\"\n", "smtp.tls_key"),
        (
            "[inbound]\nnext_hop = \"mail.internal\"\n",
            "inbound.next_hop",
        ),
        ("[outbound]\nnext_hop = \"mx:0\"\n", "outbound.next_hop"),
        (
            "[outbound]\nplaintext_domains = [\"bad domain\"]\n",
            "outbound.plaintext_domains",
        ),
        (
            "[trust]\nanchor_files = [\"missing.pem\"]\n",
            "trust.anchor_files",
        ),
        (
            "[cert_query]\nrate_limit_per_hour = 0\n",
            "cert_query.rate_limit_per_hour",
        ),
        ("[admin]\nlisten = \"nope\"\n", "admin.listen"),
        (
            "[store]\nproxy_cert_validity_days = 0\n",
            "store.proxy_cert_validity_days",
        ),
        (
            "internal_addresses = [\"x@other.example\"]\n",
            "internal_addresses",
        ),
    ] {
        let e = err(extra);
        assert!(e.contains(&format!("`{key}`")), "{extra:?} gave {e}");
    }
    for (text, key) in [
        ("data_dir = \"d\"\nhostname = \"bad host\"\ninternal_domains = [\"a.example\"]\n", "hostname"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = []\n", "internal_domains"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = [\"a.example\"]\ncert_query_address = \"cq@b.example\"\n", "cert_query_address"),
        ("data_dir = \"d\"\nhostname = \"h.example\"\ninternal_domains = [\"a.example\"]\nauthserv_id = \"a b\"\n", "authserv_id"),
    ] {
        let e = Config::from_toml(text, Path::new(".")).unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{text:?} gave {e}");
    }
    // Wrong types and enum values are parse errors that name the key.
    assert!(err("[outbound]\npolicy_without_certificate = \"yolo\"\n")
        .contains("policy_without_certificate"));
    assert!(err("[smtp]\nmax_sessions = \"many\"\n").contains("max_sessions"));
    // Required keys.
    let e = Config::from_toml("hostname = \"h.example\"\n", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("data_dir"), "{e}");
}

#[test]
fn sizes_and_modes() {
    let c = load("[smtp]\nmax_message_size = \"10 MiB\"\n[outbound]\ntls = \"required-verify\"\npolicy_without_certificate = \"plaintext\"\nplaintext_domains = [\"Partner.Example\"]\n").unwrap();
    assert_eq!(c.smtp.max_message_size, 10 << 20);
    assert_eq!(c.outbound_hop().tls, TlsMode::Required { verify: true });
    assert_eq!(c.outbound.plaintext_domains, vec!["partner.example"]);
    assert_eq!(
        load("[smtp]\nmax_message_size = 1000\n")
            .unwrap()
            .smtp
            .max_message_size,
        1000
    );
}

#[test]
fn default_for_run_uses_localhost_ports() {
    let c = Config::default_for_run(Path::new("/tmp/run-data"));
    assert_eq!(c.data_dir, PathBuf::from("/tmp/run-data"));
    assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:10025");
    assert_eq!(c.inbound.next_hop, "127.0.0.1:10026");
    assert_eq!(c.outbound.hop.next_hop, "127.0.0.1:10027");
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8025");
    assert_eq!(c, fallback_run_config(Path::new("/tmp/run-data")));
}

#[test]
fn example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../gateway.example.toml");
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.outbound.policy_without_certificate,
        PolicyWithoutCertificate::Refuse
    );
    assert_eq!(c.smtp.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
    assert_eq!(
        c.lmtp.listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:10024")
    );
}

#[test]
fn lmtp_is_off_unless_a_listener_is_set() {
    assert_eq!(load("").unwrap().lmtp.listen, None);
    let e = load("[lmtp]\nlisten = \"nowhere\"").unwrap_err();
    assert!(e.to_string().contains("lmtp.listen"), "{e}");
    assert!(load("[lmtp]\nport = 1").is_err());
}

#[test]
fn load_reports_the_file() {
    let e = Config::load(Path::new("/nonexistent/gw.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/gw.toml"));
}

#[test]
fn trust_settings_default_to_loopback_and_name_their_keys() {
    let c = load("").unwrap();
    let shown: Vec<String> = c
        .smtp
        .trusted_clients
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(shown, ["127.0.0.0/8", "::1/128"]);
    assert_eq!(c.server_config().trusted_clients, c.smtp.trusted_clients);
    assert!(c.outbound.send_as.is_empty());
    assert_eq!(c.postfix.tls_policy_socketmap, None);

    let c = load(
        "[smtp]\ntrusted_clients = [\"10.0.0.0/8\", \"192.0.2.25\"]\n\
         [outbound]\nsend_as = { \"Assistant@agency.example\" = [\"Boss@Agency.Example\"] }\n\
         [postfix]\ntls_policy_socketmap = \"127.0.0.1:10028\"\n",
    )
    .unwrap();
    assert_eq!(c.smtp.trusted_clients.len(), 2);
    assert_eq!(
        c.outbound.send_as.get("assistant@agency.example"),
        Some(&vec!["boss@agency.example".to_string()])
    );
    assert_eq!(
        c.postfix
            .tls_policy_socketmap
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.0.1:10028")
    );

    for (extra, key) in [
        (
            "[smtp]\ntrusted_clients = [\"localhost\"]\n",
            "smtp.trusted_clients",
        ),
        (
            "[smtp]\ntrusted_clients = [\"10.0.0.0/33\"]\n",
            "smtp.trusted_clients",
        ),
        ("[smtp]\ntrusted_clients = []\n", "smtp.trusted_clients"),
        (
            "[outbound]\nsend_as = { \"a@agency.example\" = [\"ceo@bigbank.example\"] }\n",
            "outbound.send_as",
        ),
        (
            "[outbound]\nsend_as = { \"a@elsewhere.example\" = [\"b@agency.example\"] }\n",
            "outbound.send_as",
        ),
        (
            "[postfix]\ntls_policy_socketmap = \"somewhere\"\n",
            "postfix.tls_policy_socketmap",
        ),
    ] {
        let e = err(extra);
        assert!(e.contains(&format!("`{key}`")), "{extra:?} gave {e}");
    }
}

#[test]
fn proxy_identities_follow_internal_addresses() {
    let open = load("").unwrap().proxy_identity_addresses();
    assert!(open.check("anyone@agency.example").is_ok());
    assert!(open.check("ceo@bigbank.example").is_err());
    let listed = load("internal_addresses = [\"staff@agency.example\"]\n")
        .unwrap()
        .proxy_identity_addresses();
    assert!(listed.check("staff@agency.example").is_ok());
    // The cert-query address signs its refusals.
    assert!(listed.check("cert-query@agency.example").is_ok());
    assert!(listed.check("anyone@agency.example").is_err());
}

#[test]
fn decrypted_mail_needs_a_dsn_capable_next_hop_unless_allowed() {
    assert!(!load("").unwrap().inbound_allow_next_hop_without_dsn);
    let c =
        load("[inbound]\nnext_hop = \"10.0.0.5:25\"\nallow_next_hop_without_dsn = true\n").unwrap();
    assert!(c.inbound_allow_next_hop_without_dsn);
    assert_eq!(c.inbound.next_hop, "10.0.0.5:25");
    assert!(err("[outbound]\nallow_next_hop_without_dsn = true\n")
        .contains("allow_next_hop_without_dsn"));
}

#[test]
fn abuse_limits_have_safe_defaults_and_refuse_zero() {
    let c = load("").unwrap();
    assert_eq!(c.smtp.limits, SessionLimits::default());
    assert_eq!(c.cert_query.global_rate_limit_per_hour, 200);
    let c = load(
        "[smtp]\nmax_session_secs = 60\nmin_data_rate = 10\nmax_commands_per_message = 7\n\
         max_recipients = 3\nmax_sessions_per_client = 2\n\
         [cert_query]\nglobal_rate_limit_per_hour = 9\n",
    )
    .unwrap();
    let limits = c.server_config().limits;
    assert_eq!(limits.max_session_time, Duration::from_secs(60));
    assert_eq!(
        (
            limits.min_data_rate,
            limits.max_commands_per_message,
            limits.max_recipients,
            limits.max_sessions_per_client
        ),
        (10, 7, 3, 2)
    );
    assert_eq!(c.cert_query.global_rate_limit_per_hour, 9);
    for key in [
        "max_session_secs",
        "min_data_rate",
        "max_commands_per_message",
        "max_recipients",
        "max_sessions_per_client",
    ] {
        let e = err(&format!("[smtp]\n{key} = 0\n"));
        assert!(e.contains(&format!("`smtp.{key}`")), "{e}");
    }
    let e = err("[cert_query]\nglobal_rate_limit_per_hour = 0\n");
    assert!(e.contains("`cert_query.global_rate_limit_per_hour`"), "{e}");
}
