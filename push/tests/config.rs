//! Building a pusher from operator specs and files: what works end to end, and what is
//! refused at start-up rather than at the first push.

mod util;

use chatgw_push::{
    parse_specs,
    testing::{ApnsServer, FcmServer, WebhookServer},
    ApnsConfig, ConfigError, FcmConfig, Outcome, Provider, PushConfig, Pusher, WebhookConfig,
};
use util::notification;

const APNS_TOKEN: &str = "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";

#[tokio::test]
async fn spec_strings_reach_every_provider() {
    let (webhook, apns, fcm) = (WebhookServer::start().await, ApnsServer::start().await, FcmServer::start().await);
    let specs = [
        webhook.spec(),
        apns.spec(),
        fcm.spec(),
        format!("tls:ca-file={}", apns.ca_file().display()),
        "retry:attempts=2,base-delay=10ms,timeout=5s".to_owned(),
    ];
    let pusher = Pusher::new(&parse_specs(&specs).unwrap()).unwrap();
    for provider in Provider::ALL {
        assert!(pusher.serves(provider));
    }
    let pusher = std::sync::Arc::new(pusher);
    let background = std::sync::Arc::clone(&pusher);
    tokio::spawn(async move { background.send(&notification(Provider::Webhook, "w1")).await });
    assert!(webhook.wait_for_delivered("w1", 1, std::time::Duration::from_secs(10)).await);
    assert_eq!(pusher.send(&notification(Provider::Apns, APNS_TOKEN)).await, Outcome::Delivered);
    assert_eq!(pusher.send(&notification(Provider::Fcm, "f1")).await, Outcome::Delivered);
    assert_eq!((webhook.delivered_to("w1"), apns.delivered_to(APNS_TOKEN), fcm.delivered_to("f1")), (1, 1, 1));
    for problems in [webhook.problems(), apns.problems(), fcm.problems()] {
        assert_eq!(problems, Vec::<String>::new());
    }
}

#[tokio::test]
async fn an_unconfigured_provider_fails_permanently() {
    let pusher = Pusher::new(&PushConfig::default()).unwrap();
    let outcome = pusher.send(&notification(Provider::Fcm, "f1")).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: true, .. }), "{outcome:?}");
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).failed, 1);
}

#[tokio::test]
async fn a_server_outside_the_trusted_roots_is_not_pushed_to() {
    let server = ApnsServer::start().await;
    let config = PushConfig { apns: Some(server.config()), retry: util::quick_retry(), ..Default::default() };
    let pusher = Pusher::new(&config).unwrap();
    let outcome = pusher.send(&notification(Provider::Apns, APNS_TOKEN)).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: false, .. }), "{outcome:?}");
    assert!(server.received().is_empty());
}

#[test]
fn unusable_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let garbage = file("garbage", "not a key\n");
    let missing = dir.path().join("missing");
    let apns = |key| PushConfig { apns: Some(ApnsConfig::new("T", "K", key, "com.x")), ..Default::default() };
    let fcm = |path| PushConfig { fcm: Some(FcmConfig::new(path)), ..Default::default() };
    let webhook = |secret| PushConfig {
        webhook: Some(WebhookConfig { url: "https://127.0.0.1:1/".into(), secret_file: secret }),
        ..Default::default()
    };
    let rsa_account = file(
        "rsa-not-ec.json",
        r#"{"project_id":"p","client_email":"e","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n","token_uri":"https://127.0.0.1:1/token"}"#,
    );
    let cases = [
        (apns(missing.clone()), "cannot read"),
        (apns(garbage.clone()), "BEGIN PRIVATE KEY"),
        (fcm(garbage.clone()), "not a service-account JSON key"),
        (fcm(rsa_account), "not a PKCS#8 RSA key"),
        (webhook(file("empty.secret", "\n")), "secret is empty"),
        (PushConfig { extra_ca_file: Some(garbage.clone()), ..Default::default() }, "no certificate"),
    ];
    for (config, needle) in cases {
        let error = Pusher::new(&config).err().unwrap_or_else(|| panic!("accepted although {needle}"));
        assert!(error.to_string().contains(needle), "{error}");
    }
    assert!(matches!(Pusher::new(&apns(missing)).err(), Some(ConfigError::Read { .. })));
}
