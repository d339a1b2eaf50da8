//! APNs delivery against the verifying stand-in: request shape, provider-token reuse and
//! refresh, and the outcome of each documented error.

mod util;

use std::time::{Duration, Instant};

use chatgw_push::{
    testing::{ApnsServer, Reply},
    ApnsConfig, Notification, Outcome, Provider, PushConfig, Pusher,
};
use util::{config_trusting, notification};

const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn pusher_for(server: &ApnsServer, tune: impl FnOnce(&mut PushConfig, &mut ApnsConfig)) -> Pusher {
    let mut config = config_trusting(server.ca_file());
    let mut apns = server.config();
    tune(&mut config, &mut apns);
    config.apns = Some(apns);
    Pusher::new(&config).expect("pusher")
}

fn unregistered(reason: &str) -> Outcome {
    Outcome::Unregistered { reason: reason.into() }
}

#[tokio::test]
async fn request_follows_apples_documentation() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.problems(), Vec::<String>::new());
    let received = server.received();
    assert_eq!(received.len(), 1);
    let push = &received[0];
    assert_eq!(push.token, TOKEN);
    assert_eq!(push.header("apns-collapse-id"), Some("g:7"));
    assert_eq!(push.header("apns-push-type"), Some("alert"));
    assert_eq!(push.header("apns-topic"), Some("com.example.chatgw"));
    assert_eq!(push.payload["conversation"], "g:7");
    assert_eq!(push.payload["count"], 3);
    assert_eq!(push.payload["aps"]["mutable-content"], 1);
    assert_eq!(push.payload["aps"]["alert"]["loc-args"][0], "3");
    assert!(push.payload["aps"]["alert"].get("body").is_none(), "no message text: {}", push.payload);
    assert_eq!(pusher.stats().snapshot(Provider::Apns).sent, 1);
}

#[tokio::test]
async fn a_long_conversation_id_is_hashed_into_a_valid_collapse_id() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    let conversation = format!("g:{}", "9".repeat(100));
    let n = Notification::new("alice", "phone", Provider::Apns, TOKEN, conversation, 1, "e1");
    assert_eq!(pusher.send(&n).await, Outcome::Delivered);
    assert_eq!(server.problems(), Vec::<String>::new());
    let collapse_id = server.received()[0].header("apns-collapse-id").map(str::to_owned).unwrap();
    assert!(collapse_id.starts_with("h:") && collapse_id.len() == 64, "{collapse_id}");
}

#[tokio::test]
async fn provider_token_is_reused_then_refreshed_after_its_lifetime() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, apns| apns.token_lifetime = Duration::from_secs(2));
    for _ in 0..3 {
        assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    }
    assert_eq!(server.provider_tokens().len(), 1, "one token for sends within its lifetime");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.provider_tokens().len(), 2, "a new token after the lifetime");
    assert_eq!(pusher.stats().snapshot(Provider::Apns).auth_refreshes, 2);
    assert_eq!(server.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn expired_provider_token_is_replaced_at_once() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    server.expire_provider_tokens();
    let started = Instant::now();
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    assert!(started.elapsed() < Duration::from_secs(1), "no backoff before the fresh token");
    assert_eq!(server.provider_tokens().len(), 2);
    assert_eq!(server.delivered_to(TOKEN), 2);
    assert_eq!(pusher.stats().snapshot(Provider::Apns).retries, 1);
}

#[tokio::test]
async fn gone_and_bad_tokens_are_reported_unregistered_without_retry() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    for (reply, reason) in [
        (Reply::apns(410, "Unregistered"), "Unregistered"),
        (Reply::apns(400, "BadDeviceToken"), "BadDeviceToken"),
        (Reply::apns(400, "DeviceTokenNotForTopic"), "DeviceTokenNotForTopic"),
    ] {
        server.respond_with([reply]);
        assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, unregistered(reason));
    }
    assert_eq!(server.attempts_to(TOKEN), 3, "one request each");
    assert_eq!(pusher.stats().snapshot(Provider::Apns).unregistered, 3);
    assert_eq!(pusher.stats().snapshot(Provider::Apns).retries, 0);
}

#[tokio::test]
async fn a_token_that_is_not_hex_never_reaches_the_network() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    let outcome = pusher.send(&notification(Provider::Apns, "../../3/device/zz")).await;
    assert!(matches!(outcome, Outcome::Unregistered { .. }), "{outcome:?}");
    assert!(server.received().is_empty());
    assert_eq!(server.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_delivered() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with([
        Reply::apns(429, "TooManyRequests"),
        Reply::apns(500, "InternalServerError"),
        Reply::apns(503, "ServiceUnavailable"),
    ]);
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.attempts_to(TOKEN), 4);
    assert_eq!(server.delivered_to(TOKEN), 1);
    let stats = pusher.stats().snapshot(Provider::Apns);
    assert_eq!((stats.sent, stats.retries, stats.failed), (1, 3, 0));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with([Reply::apns(429, "TooManyRequests").retry_after(1)]);
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    let received = server.received();
    assert_eq!(received.len(), 2);
    let waited = received[1].at - received[0].at;
    assert!(waited >= Duration::from_millis(950), "waited only {waited:?}");
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    for reason in ["InvalidProviderToken", "TopicDisallowed"] {
        server.respond_with([Reply::apns(403, reason)]);
        match pusher.send(&notification(Provider::Apns, TOKEN)).await {
            Outcome::Failed { reason: why, permanent: true } => assert!(why.contains(reason), "{why}"),
            other => panic!("{reason}: {other:?}"),
        }
    }
    assert_eq!(server.attempts_to(TOKEN), 2);
    assert_eq!(pusher.stats().snapshot(Provider::Apns).failed, 2);
}

#[tokio::test]
async fn transient_errors_give_up_after_the_attempt_limit() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |config, _| config.retry.max_attempts = 3);
    server.respond_with(vec![Reply::apns(503, "ServiceUnavailable"); 10]);
    match pusher.send(&notification(Provider::Apns, TOKEN)).await {
        Outcome::Failed { reason, permanent: false } => assert!(reason.contains("503"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.attempts_to(TOKEN), 3);
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |config, _| config.retry.deadline = Duration::from_millis(500));
    server.respond_with([Reply::apns(429, "TooManyRequests").retry_after(30)]);
    let started = Instant::now();
    match pusher.send(&notification(Provider::Apns, TOKEN)).await {
        Outcome::Failed { reason, permanent: false } => assert!(reason.contains("deadline"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.attempts_to(TOKEN), 1);
}

#[tokio::test]
async fn a_provider_token_signed_by_another_key_is_refused() {
    let server = ApnsServer::start().await;
    let other = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, apns| apns.key_file = other.config().key_file);
    match pusher.send(&notification(Provider::Apns, TOKEN)).await {
        Outcome::Failed { reason, permanent: true } => assert!(reason.contains("InvalidProviderToken"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let problems = server.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("signature does not verify"), "{problems:?}");
}

#[tokio::test]
async fn a_provider_token_refused_again_and_again_is_not_refreshed_forever() {
    let server = ApnsServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with(vec![Reply::apns(403, "ExpiredProviderToken"); 10]);
    let outcome = pusher.send(&notification(Provider::Apns, TOKEN)).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: false, .. }), "{outcome:?}");
    assert_eq!(server.attempts_to(TOKEN), 4, "bounded by the attempt limit");
    assert_eq!(server.provider_tokens().len(), 4, "a fresh token each time");
}

#[tokio::test]
async fn one_http2_connection_carries_every_push() {
    let server = ApnsServer::start().await;
    let pusher = std::sync::Arc::new(pusher_for(&server, |_, _| {}));
    assert_eq!(pusher.send(&notification(Provider::Apns, TOKEN)).await, Outcome::Delivered);
    let sends: Vec<_> = (0..16)
        .map(|_| {
            let pusher = std::sync::Arc::clone(&pusher);
            tokio::spawn(async move { pusher.send(&notification(Provider::Apns, TOKEN)).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), Outcome::Delivered);
    }
    assert_eq!(server.delivered_to(TOKEN), 17);
    assert_eq!(server.connections(), 1, "concurrent pushes are multiplexed on one connection");
    assert_eq!(server.provider_tokens().len(), 1);
}
