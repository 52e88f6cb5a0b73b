//! The settings tree (`src/settings/`): `procure.example.toml` names every key with its
//! default, the shipped tariff is the demo tariff, the layers override in order, secrets come
//! only from the environment (or `…_FILE`), and outside development a missing secret or the
//! demo warehouse refuses the start. The binary's own refusal is in `tests/processes.rs`.

use procure::settings::{
    Process, SECRETS, Settings, Sources, env_name, key_paths, known_keys, parse_tariff,
};
use procure_api::auth::{Role, TokenKey};
use procure_domain::Secret;
use procure_domain::tariff::Pricing;
use std::{collections::BTreeSet, path::PathBuf};

const EXAMPLE: &str = include_str!("../procure.example.toml");

fn env(vars: &[(&str, &str)]) -> Sources {
    Sources {
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("procure-settings-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The keys the example leaves commented out (`# key = …` under its table): those without a
/// default value, the secrets and the optional URLs.
fn commented_keys(text: &str) -> BTreeSet<String> {
    let mut table = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('[') {
            table = t.trim_end_matches(']').to_owned();
        } else if let Some(rest) = line.strip_prefix("# ")
            && let Some((key, _)) = rest.split_once(" = ")
            && !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            out.insert(if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            });
        }
    }
    out
}

#[test]
fn the_example_names_every_key_with_its_default() {
    let file = temp_file("procure.toml", EXAMPLE);
    let loaded = Settings::load(&Sources {
        file: Some(file),
        ..Default::default()
    })
    .expect("the example parses into the tree");
    assert_eq!(
        loaded,
        Settings::default(),
        "the example's values are the defaults"
    );

    let table = <figment::providers::Toml as figment::providers::Format>::string(EXAMPLE);
    let data = figment::Provider::data(&table).unwrap();
    let set = key_paths(&data[&figment::Profile::Default]);
    let commented = commented_keys(EXAMPLE);
    let known = known_keys();
    let named: BTreeSet<String> = set.union(&commented).cloned().collect();
    assert_eq!(
        named.symmetric_difference(&known).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys the example and the tree do not share"
    );
    assert!(set.is_disjoint(&commented), "a key both set and commented");
    for s in SECRETS {
        assert!(commented.contains(s.path), "secret {} documented", s.path);
        assert!(
            !set.contains(s.path),
            "secret {} not set in the example",
            s.path
        );
        assert!(
            EXAMPLE.contains(&env_name(s.path)),
            "the example names {}",
            env_name(s.path)
        );
        for alias in s.aliases {
            assert!(EXAMPLE.contains(alias), "the example names {alias}");
        }
    }
}

#[test]
fn the_shipped_tariff_is_the_demo_tariff() {
    let shipped =
        parse_tariff(procure::settings::DEMO_TARIFF, "config/tariff.toml").expect("it parses");
    let demo = Pricing::default();
    assert_eq!(shipped.service_fee, demo.service_fee);
    assert_eq!(shipped.insurance, demo.insurance);
    assert_eq!(shipped.guarantee, demo.guarantee);
    assert_eq!(shipped.lines, demo.lines);
    let duty = |p: &Pricing| {
        p.destinations
            .iter()
            .map(|d| d.duty.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(duty(&shipped), duty(&demo));
    // The default settings price with it, and a file of one's own replaces it.
    let d = Settings::development().deployment(Process::Api).unwrap();
    assert_eq!(d.pricing.lines, demo.lines);
    let one_line = procure::settings::DEMO_TARIFF.replace("SANDBOX-EXP", "OWN-EXP");
    let mut s = Settings::development();
    s.tariff.file = Some(temp_file("tariff.toml", &one_line));
    let d = s.deployment(Process::Api).unwrap();
    assert_eq!(d.pricing.default_line().unwrap().code, "OWN-EXP");
    // A line to a destination without a duty rule is refused.
    let orphan = procure::settings::DEMO_TARIFF.replacen("\"JP\"]", "\"JP\", \"XX\"]", 1);
    let e = parse_tariff(&orphan, "t").unwrap_err().to_string();
    assert!(e.contains("XX"), "{e}");
}

#[test]
fn layers_override_in_order() {
    let file = temp_file(
        "procure.toml",
        "[timings]\npayment_timeout_s = 11\ntracking_poll_s = 12\n[database]\nurl = \"sqlite://file.db\"\n",
    );
    let mut sources = env(&[
        ("PROCURE_CONFIG", file.to_str().unwrap()),
        ("PROCURE_TRACKING_POLL_S", "22"),
        ("PROCURE_TIMINGS__PURCHASER_DEADLINE_S", "23"),
        ("PROCURE_DATABASE_URL", "sqlite://old.db"),
        ("PROCURE_DATABASE__URL", "sqlite://nested.db"),
    ]);
    sources.flag("timings.purchaser_deadline_s", 33u64);
    let s = Settings::load(&sources).unwrap();
    assert_eq!(
        s.timings.payment_timeout_s, 11,
        "the file over the defaults"
    );
    assert_eq!(
        s.timings.tracking_poll_s, 22,
        "the environment over the file"
    );
    assert_eq!(
        s.timings.purchaser_deadline_s, 33,
        "a flag over the environment"
    );
    assert_eq!(
        s.database.url, "sqlite://nested.db",
        "a nested name over an older one"
    );
    // Each timing reaches what the workflows are started with.
    let t = s.deployment(Process::Api).map(|d| d.timings);
    assert!(t.is_err(), "not development: secrets are missing");
    let t = Settings {
        development: true,
        ..s
    }
    .deployment(Process::Api)
    .unwrap()
    .timings;
    assert_eq!(t.payment_timeout.as_secs(), 11);
    assert_eq!(t.purchaser_deadline.as_secs(), 33);
}

#[test]
fn a_settings_file_holds_no_secrets_and_no_unknown_keys() {
    let with_secret = temp_file("procure.toml", "[api]\njwt_secret = \"x\"\n");
    let e = Settings::load(&Sources {
        file: Some(with_secret),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("api.jwt_secret") && e.contains("PROCURE_JWT_SECRET"),
        "{e}"
    );
    let typo = temp_file("procure.toml", "[alibaba]\nbase_ulr = \"x\"\n");
    let e = Settings::load(&Sources {
        file: Some(typo),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("alibaba.base_ulr"), "{e}");
    let missing = Settings::load(&env(&[("PROCURE_CONFIG", "/nonexistent/procure.toml")]));
    assert!(missing.is_err(), "a named settings file must exist");
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_never_print() {
    let jwt = "a-signing-key-of-at-least-thirty-two-bytes";
    let file = temp_file("jwt", &format!("{jwt}\n"));
    let s = Settings::load(&env(&[
        ("PROCURE_API__JWT_SECRET_FILE", file.to_str().unwrap()),
        ("PROCURE_1688_APP_SECRET", "from-the-older-name"),
    ]))
    .unwrap();
    assert_eq!(s.api.jwt_secret.as_ref().unwrap().expose(), jwt, "trimmed");
    assert_eq!(
        s.alibaba.app_secret.as_ref().unwrap().expose(),
        "from-the-older-name"
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains(jwt) && !shown.contains("from-the-older-name"));
    // The token key signs with it.
    let d = Settings {
        development: true,
        ..s
    }
    .deployment(Process::Token)
    .unwrap();
    let claims = d
        .keys
        .tokens
        .verify(
            &TokenKey::new(Secret::new(jwt)).issue("t", Role::Admin, None, 1_000, 60),
            1_010,
        )
        .expect("signed with the configured key");
    assert_eq!(claims.role, Role::Admin);

    let both = Settings::load(&env(&[
        ("PROCURE_JWT_SECRET", jwt),
        ("PROCURE_JWT_SECRET_FILE", file.to_str().unwrap()),
    ]));
    assert!(both.is_err(), "a secret and its file at once is ambiguous");
}

#[test]
fn closed_by_default_a_missing_secret_or_the_demo_warehouse_refuses_the_start() {
    let e = format!(
        "{:#}",
        Settings::default().deployment(Process::Worker).unwrap_err()
    );
    for s in SECRETS
        .iter()
        .filter(|s| s.needed_by.contains(&Process::Worker))
    {
        assert!(e.contains(s.path), "{} named in: {e}", s.path);
        assert!(
            e.contains(&env_name(s.path)),
            "{} named in: {e}",
            env_name(s.path)
        );
    }
    assert!(e.contains("warehouse.address"), "{e}");
    assert!(!e.contains("pinduoduo.access_token"), "optional: {e}");

    // Every secret set and a warehouse of one's own: the worker starts.
    let mut vars: Vec<(String, String)> = SECRETS
        .iter()
        .map(|s| {
            (
                env_name(s.path),
                "a-configured-secret-of-thirty-two-bytes".to_owned(),
            )
        })
        .collect();
    let keys = format!("k1:{}", "ab".repeat(32));
    // The keys have a form of their own; Temporal's API key and client key are optional
    // connection material (a client key needs its certificate).
    vars.retain(|(k, _)| !k.starts_with("PROCURE_KEYS__") && !k.starts_with("PROCURE_TEMPORAL__"));
    vars.push(("PROCURE_KEYS__DATA".into(), keys.clone()));
    vars.push(("PROCURE_KEYS__PAYLOAD".into(), keys));
    vars.push((
        "PROCURE_WAREHOUSE__ADDRESS__FULL_NAME".into(),
        "WH Shenzhen".into(),
    ));
    let s = Settings::load(&Sources {
        env: vars,
        ..Default::default()
    })
    .unwrap();
    let d = s
        .deployment(Process::Worker)
        .expect("everything is configured");
    assert_eq!(d.warehouse.address.full_name, "WH Shenzhen");
    assert_eq!(
        d.external.alibaba.app_key.expose(),
        "a-configured-secret-of-thirty-two-bytes"
    );
    assert_eq!(d.keys.data.current_key_id(), "k1");

    // The API needs its own secrets only; a short signing key is refused, not replaced.
    let e = format!(
        "{:#}",
        Settings::default().deployment(Process::Api).unwrap_err()
    );
    assert!(
        e.contains("api.jwt_secret") && e.contains("PROCURE_JWT_SECRET"),
        "{e}"
    );
    assert!(
        !e.contains("carrier.api_key") && !e.contains("warehouse"),
        "{e}"
    );
    let mut short = Settings::development();
    short.api.jwt_secret = Some(Secret::new("short"));
    assert!(short.deployment(Process::Api).is_err());

    // Development fills in the public development values.
    assert!(Settings::development().deployment(Process::Worker).is_ok());
}

/// How Temporal is reached: the Temporal SDK's own configuration (its variables and
/// `temporal.toml` profile, as the `temporal` CLI reads them), each `temporal.*` setting
/// overriding it; an API key is a secret and turns TLS on.
#[test]
fn the_temporal_connection_starts_from_the_sdk_configuration() {
    let d = Settings::development()
        .temporal
        .connection()
        .expect("defaults connect");
    assert_eq!(
        (d.address.as_str(), d.namespace.as_str(), d.tls.is_none()),
        ("127.0.0.1:7233", "default", true)
    );

    let sdk = env(&[
        ("TEMPORAL_ADDRESS", "sdk.example:7233"),
        ("TEMPORAL_NAMESPACE", "ns.acct"),
        ("TEMPORAL_API_KEY", "sdk-key"),
    ]);
    let c = Settings::load(&sdk).unwrap().temporal.connection().unwrap();
    assert_eq!(c.address, "sdk.example:7233");
    assert_eq!(c.namespace, "ns.acct");
    assert_eq!(c.api_key.as_ref().map(|k| k.expose()), Some("sdk-key"));
    assert!(c.tls.is_some(), "an API key turns TLS on");
    assert_eq!(c.url().unwrap().scheme(), "https");
    assert!(
        !format!("{c:?}").contains("sdk-key"),
        "the key never prints"
    );

    let mut both = sdk.clone();
    both.env.extend([
        (
            "PROCURE_TEMPORAL_ADDRESS".to_string(),
            "procure.example:7233".to_string(),
        ),
        (
            "PROCURE_TEMPORAL__API_KEY".to_string(),
            "procure-key".to_string(),
        ),
    ]);
    let c = Settings::load(&both)
        .unwrap()
        .temporal
        .connection()
        .unwrap();
    assert_eq!(c.address, "procure.example:7233", "procure's setting wins");
    assert_eq!(c.namespace, "ns.acct", "the rest stays the SDK's");
    assert_eq!(c.api_key.as_ref().map(|k| k.expose()), Some("procure-key"));

    let profile = temp_file(
        "temporal.toml",
        "[profile.prod]\naddress = \"prod.example:7233\"\nnamespace = \"prod\"\n\
         [profile.prod.tls]\nserver_name = \"frontend.internal\"\n",
    );
    let c = Settings::load(&env(&[
        ("TEMPORAL_CONFIG_FILE", profile.to_str().unwrap()),
        ("TEMPORAL_PROFILE", "prod"),
    ]))
    .unwrap()
    .temporal
    .connection()
    .unwrap();
    assert_eq!(
        (c.address.as_str(), c.namespace.as_str()),
        ("prod.example:7233", "prod")
    );
    assert_eq!(
        c.tls.and_then(|t| t.server_name).as_deref(),
        Some("frontend.internal")
    );
    let e = Settings::load(&env(&[
        ("TEMPORAL_CONFIG_FILE", profile.to_str().unwrap()),
        ("TEMPORAL_PROFILE", "staging"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("staging"), "{e}");

    // A certificate without its key, or a file that is not there, names the setting.
    let cert = temp_file("client.pem", "not a certificate");
    let e = Settings::load(&env(&[(
        "PROCURE_TEMPORAL__TLS__CLIENT_CERT",
        cert.to_str().unwrap(),
    )]))
    .unwrap()
    .temporal
    .connection()
    .unwrap_err();
    assert!(
        e.to_string().contains("temporal.tls.client_key is set")
            || e.to_string().contains("temporal.tls.client_cert"),
        "{e}"
    );
    let e = Settings::load(&env(&[(
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        "/nonexistent/ca.pem",
    )]))
    .unwrap()
    .temporal
    .connection()
    .unwrap_err();
    assert!(
        format!("{e:#}").contains("temporal.tls.server_ca_cert")
            && format!("{e:#}").contains("TEMPORAL_TLS_SERVER_CA_CERT_PATH"),
        "{e:#}"
    );
    // Host verification cannot be turned off: the start says what to set instead.
    let e = Settings::load(&env(&[("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", "true")]))
        .unwrap()
        .temporal
        .connection()
        .unwrap_err();
    assert!(e.to_string().contains("temporal.tls.server_name"), "{e}");
    // `enabled = false` turns TLS off whatever else is set.
    let c = Settings::load(&env(&[
        ("TEMPORAL_API_KEY", "k"),
        ("PROCURE_TEMPORAL__TLS__ENABLED", "false"),
    ]))
    .unwrap()
    .temporal
    .connection()
    .unwrap();
    assert!(c.tls.is_none());
}

/// The API key and the client's private key are secrets: the settings file may not hold them.
#[test]
fn temporal_credentials_are_refused_in_the_settings_file() {
    for (table, key) in [("temporal", "api_key"), ("temporal.tls", "client_key")] {
        let file = temp_file("procure.toml", &format!("[{table}]\n{key} = \"x\"\n"));
        let e = Settings::load(&Sources {
            file: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("is a secret"), "{e}");
    }
}

#[test]
fn worker_tuning_reaches_the_worker_and_out_of_range_values_name_their_key() {
    let file = temp_file(
        "procure.toml",
        "[worker]\nmax_concurrent_activities = 40\ngraceful_shutdown_s = 12\n",
    );
    let worker = |vars: &[(&str, &str)]| {
        let mut all = vec![
            ("PROCURE_CONFIG", file.to_str().unwrap()),
            ("PROCURE_DEVELOPMENT", "true"),
            ("PROCURE_TASK_QUEUE", "tuned"),
        ];
        all.extend_from_slice(vars);
        Settings::load(&env(&all))
            .and_then(|s| s.deployment(Process::Worker))
            .map(|d| d.worker)
    };
    let w = worker(&[
        ("PROCURE_WORKER__WORKFLOW_TASK_POLLERS", "8"),
        ("PROCURE_WORKER__TASK_QUEUE_ACTIVITIES_PER_SECOND", "2.5"),
    ])
    .unwrap();
    assert_eq!(w.task_queue, "tuned");
    assert_eq!(w.max_concurrent_activities, 40, "from the file");
    assert_eq!(w.graceful_shutdown.as_secs(), 12);
    assert_eq!(w.workflow_task_pollers, 8, "the environment");
    assert_eq!(w.task_queue_activities_per_second, Some(2.5));
    let defaults = procure_worker::WorkerSettings::default();
    assert_eq!(w.max_cached_workflows, defaults.max_cached_workflows);
    assert_eq!(w.activity_task_pollers, defaults.activity_task_pollers);
    // 0 is unlimited, not a rate of zero.
    let w = worker(&[("PROCURE_WORKER__TASK_QUEUE_ACTIVITIES_PER_SECOND", "0")]).unwrap();
    assert_eq!(w.task_queue_activities_per_second, None);

    for (var, value, names) in [
        (
            "PROCURE_WORKER__WORKFLOW_TASK_POLLERS",
            "1",
            "worker.workflow_task_pollers (PROCURE_WORKER__WORKFLOW_TASK_POLLERS)",
        ),
        (
            "PROCURE_WORKER__MAX_CONCURRENT_ACTIVITIES",
            "0",
            "worker.max_concurrent_activities",
        ),
        (
            "PROCURE_WORKER__TASK_QUEUE_ACTIVITIES_PER_SECOND",
            "-1",
            "worker.task_queue_activities_per_second",
        ),
        (
            "PROCURE_WORKER__GRACEFUL_SHUTDOWN_S",
            "86400",
            "worker.graceful_shutdown_s",
        ),
    ] {
        let err = format!("{:#}", worker(&[(var, value)]).unwrap_err());
        assert!(err.contains(names), "{var}={value}: {err}");
    }
    // Not a number at all: the loader names the key too.
    let err = format!(
        "{:#}",
        worker(&[("PROCURE_WORKER__ACTIVITY_TASK_POLLERS", "many")]).unwrap_err()
    );
    assert!(err.contains("activity_task_pollers"), "{err}");
}

/// The email channel: off without `email.smtp_url`; configured, it needs a sender, a known
/// TLS mode, and (outside development) the password of a username, named with its variable.
#[test]
fn the_email_channel_is_off_by_default_and_a_username_needs_its_password() {
    let dev = Settings::development();
    assert!(
        dev.deployment(Process::Api).unwrap().email.is_none(),
        "off by default"
    );

    let on = |vars: &[(&str, &str)]| {
        let mut all = vec![
            ("PROCURE_EMAIL__SMTP_URL", "smtp://127.0.0.1:2525"),
            ("PROCURE_EMAIL__FROM", "Shop <orders@shop.example>"),
            ("PROCURE_EMAIL__TLS", "none"),
        ];
        all.extend_from_slice(vars);
        Settings::load(&env(&all)).unwrap()
    };
    let mut s = on(&[(
        "PROCURE_EMAIL__ACTION_URL_BASE",
        "https://shop.example/o/{order_id}",
    )]);
    s.development = true;
    let channel = s
        .deployment(Process::Api)
        .unwrap()
        .email
        .expect("configured");
    assert_eq!(channel.smtp.url, "smtp://127.0.0.1:2525");
    assert_eq!(
        channel.delivery.action_url_base.as_deref(),
        Some("https://shop.example/o/{order_id}")
    );
    assert_eq!(channel.delivery.message_id_domain, "shop.example");
    assert_eq!(channel.delivery.max_attempts, 8);

    // A username without its password: a start error outside development, naming the key.
    let mut s = on(&[("PROCURE_EMAIL__SMTP_USERNAME", "procure")]);
    s.development = false;
    let e = format!("{:#}", s.deployment(Process::Api).unwrap_err());
    assert!(
        e.contains("email.smtp_password") && e.contains("PROCURE_EMAIL__SMTP_PASSWORD"),
        "{e}"
    );
    s.development = true;
    assert!(
        s.deployment(Process::Api).is_ok(),
        "development lets it through"
    );
    let mut s = on(&[
        ("PROCURE_EMAIL__SMTP_USERNAME", "procure"),
        ("PROCURE_EMAIL__SMTP_PASSWORD", "a-password"),
    ]);
    s.development = true;
    let channel = s.deployment(Process::Api).unwrap().email.unwrap();
    assert_eq!(channel.smtp.password.unwrap().expose(), "a-password");
    assert!(
        !format!("{:?}", s.email).contains("a-password"),
        "never printed"
    );

    // Wrong values name their key.
    for (key, value, named) in [
        ("PROCURE_EMAIL__TLS", "ssl", "email.tls"),
        ("PROCURE_EMAIL__FROM", "not an address", "email.from"),
        (
            "PROCURE_EMAIL__SMTP_URL",
            "http://relay.example",
            "email.smtp_url",
        ),
        ("PROCURE_EMAIL__MAX_ATTEMPTS", "0", "email.max_attempts"),
        (
            "PROCURE_EMAIL__ACTION_URL_BASE",
            "shop.example/{order_id}",
            "email.action_url_base",
        ),
    ] {
        let mut s = on(&[(key, value)]);
        s.development = true;
        let e = format!("{:#}", s.deployment(Process::Api).unwrap_err());
        assert!(e.contains(named), "{key}={value}: {e}");
    }
}
