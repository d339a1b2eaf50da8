//! Webhook delivery against the verifying receiver: signature, body, and outcomes.

mod util;

use chatgw_push::{
    sign_webhook,
    testing::{Reply, WebhookServer},
    Outcome, Provider, PushConfig, Pusher, WebhookConfig,
};
use util::{config_trusting, notification};

const TOKEN: &str = "hook-token-1";

fn pusher_for(server: &WebhookServer, tune: impl FnOnce(&mut PushConfig, &mut WebhookConfig)) -> Pusher {
    let mut config = config_trusting(server.ca_file());
    let mut webhook = server.config();
    tune(&mut config, &mut webhook);
    config.webhook = Some(webhook);
    Pusher::new(&config).expect("pusher")
}

#[tokio::test]
async fn a_signed_body_is_delivered() {
    let server = WebhookServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Webhook, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.problems(), Vec::<String>::new());
    let received = server.received();
    let body = &received[0].payload;
    assert_eq!(body["v"], 1);
    assert_eq!((body["user"].as_str(), body["device"].as_str()), (Some("alice"), Some("phone")));
    assert_eq!((body["conversation"].as_str(), body["count"].as_u64()), (Some("g:7"), Some(3)));
    assert_eq!(body["latest_event"], "e42");
    let timestamp: u64 = received[0].header("x-chatgw-timestamp").unwrap().parse().unwrap();
    let signature = sign_webhook(b"test-webhook-secret", timestamp, body.to_string().as_bytes());
    assert_eq!(received[0].header("x-chatgw-signature"), Some(signature.as_str()));
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver() {
    let server = WebhookServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.secret");
    std::fs::write(&wrong, "not-the-secret").unwrap();
    let pusher = pusher_for(&server, |_, webhook| webhook.secret_file = wrong);
    let outcome = pusher.send(&notification(Provider::Webhook, TOKEN)).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: true, .. }), "{outcome:?}");
    assert!(server.problems()[0].contains("x-chatgw-signature"), "{:?}", server.problems());
}

#[tokio::test]
async fn gone_means_unregistered_and_errors_are_retried() {
    let server = WebhookServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with([Reply::status(410)]);
    let outcome = pusher.send(&notification(Provider::Webhook, TOKEN)).await;
    assert!(matches!(outcome, Outcome::Unregistered { .. }), "{outcome:?}");
    server.respond_with([Reply::status(500), Reply::status(429), Reply::status(503)]);
    assert_eq!(pusher.send(&notification(Provider::Webhook, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.attempts_to(TOKEN), 5);
    server.respond_with([Reply::status(422)]);
    let outcome = pusher.send(&notification(Provider::Webhook, TOKEN)).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: true, .. }), "{outcome:?}");
    assert_eq!(server.attempts_to(TOKEN), 6);
    let stats = pusher.stats().snapshot(Provider::Webhook);
    assert_eq!((stats.sent, stats.unregistered, stats.failed, stats.retries), (1, 1, 1, 3));
}

#[tokio::test]
async fn a_receiver_that_is_down_is_retried_then_given_up() {
    let server = WebhookServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let pusher = pusher_for(&server, |_, webhook| webhook.url = format!("https://{closed}/push"));
    match pusher.send(&notification(Provider::Webhook, TOKEN)).await {
        Outcome::Failed { reason, permanent: false } => assert!(reason.contains("request failed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pusher.stats().snapshot(Provider::Webhook).retries, 3);
}

#[tokio::test]
async fn a_huge_retry_after_ends_the_retries_without_overflow() {
    let server = WebhookServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    let mut reply = Reply::status(503);
    reply.headers.push(("retry-after".into(), u64::MAX.to_string()));
    server.respond_with([reply]);
    match pusher.send(&notification(Provider::Webhook, TOKEN)).await {
        Outcome::Failed { reason, permanent: false } => assert!(reason.contains("deadline"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.attempts_to(TOKEN), 1);
}
