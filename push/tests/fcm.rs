//! FCM HTTP v1 delivery against the verifying stand-in: the token exchange and its
//! caching, the message shape, and the outcome of each documented error.

mod util;

use std::{sync::Arc, time::Duration};

use chatgw_push::{
    testing::{FcmServer, Reply},
    FcmConfig, Outcome, Provider, PushConfig, Pusher,
};
use util::{config_trusting, notification};

const TOKEN: &str = "fcm-registration-token-1";

fn pusher_for(server: &FcmServer, tune: impl FnOnce(&mut PushConfig, &mut FcmConfig)) -> Pusher {
    let mut config = config_trusting(server.ca_file());
    let mut fcm = server.config();
    tune(&mut config, &mut fcm);
    config.fcm = Some(fcm);
    Pusher::new(&config).expect("pusher")
}

#[tokio::test]
async fn message_follows_the_v1_reference() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.problems(), Vec::<String>::new());
    let received = server.received();
    assert_eq!(received.len(), 1);
    let message = &received[0].payload["message"];
    assert_eq!(message["token"], TOKEN);
    assert_eq!(message["data"]["conversation"], "g:7");
    assert_eq!(message["data"]["count"], "3");
    assert_eq!(message["data"]["latest_event"], "e42");
    assert_eq!(message["android"]["collapse_key"], "g:7");
    assert_eq!(message["android"]["priority"], "high");
    assert_eq!(message["apns"]["headers"]["apns-collapse-id"], "g:7");
    assert_eq!(received[0].header("authorization"), Some("Bearer ya29.test-1"));
}

#[tokio::test]
async fn one_token_exchange_serves_many_concurrent_sends() {
    let server = FcmServer::start().await;
    let pusher = Arc::new(pusher_for(&server, |_, _| {}));
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let pusher = Arc::clone(&pusher);
            tokio::spawn(async move { pusher.send(&notification(Provider::Fcm, &format!("t{i}"))).await })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), Outcome::Delivered);
    }
    assert_eq!(server.token_exchanges(), 1);
    assert_eq!(server.received().len(), 8);
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).auth_refreshes, 1);
    assert_eq!(server.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn the_access_token_is_exchanged_again_before_it_expires() {
    let server = FcmServer::start().await;
    server.set_access_token_lifetime(Duration::from_secs(4));
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.token_exchanges(), 1);
    // The margin is capped at half the lifetime: the token is renewed after two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.token_exchanges(), 2);
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).retries, 0, "renewed before, not after, a 401");
    assert_eq!(server.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn a_401_drops_the_access_token_and_exchanges_a_new_one() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    server.revoke_access_tokens();
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.token_exchanges(), 2);
    assert_eq!(server.received().last().unwrap().header("authorization"), Some("Bearer ya29.test-2"));
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).retries, 1);
}

#[tokio::test]
async fn unregistered_and_invalid_tokens_are_reported_unregistered() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    let invalid = "The registration token is not a valid FCM registration token";
    for reply in [Reply::fcm_unregistered(), Reply::fcm(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), invalid)] {
        server.respond_with([reply]);
        let outcome = pusher.send(&notification(Provider::Fcm, TOKEN)).await;
        assert!(matches!(outcome, Outcome::Unregistered { .. }), "{outcome:?}");
    }
    assert_eq!(server.attempts_to(TOKEN), 2);
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).unregistered, 2);
}

#[tokio::test]
async fn quota_and_server_errors_are_retried_until_delivered() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with([
        Reply::fcm(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), "quota"),
        Reply::fcm(500, "INTERNAL", Some("INTERNAL"), "internal"),
        Reply::fcm(503, "UNAVAILABLE", Some("UNAVAILABLE"), "overloaded"),
    ]);
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.attempts_to(TOKEN), 4);
    assert_eq!(server.token_exchanges(), 1);
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).retries, 3);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    server.respond_with([Reply::fcm(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), "sender")]);
    match pusher.send(&notification(Provider::Fcm, TOKEN)).await {
        Outcome::Failed { reason, permanent: true } => assert!(reason.contains("SENDER_ID_MISMATCH"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.attempts_to(TOKEN), 1);
}

#[tokio::test]
async fn an_access_token_from_another_issuer_is_refused() {
    let server = FcmServer::start().await;
    let other = FcmServer::start().await;
    // The other server's service account names the other server's token_uri as audience
    // and endpoint; pointing its sends here proves the access token is checked.
    let pusher = pusher_for(&other, |_, fcm| fcm.endpoint = server.url());
    let outcome = pusher.send(&notification(Provider::Fcm, TOKEN)).await;
    assert!(matches!(outcome, Outcome::Failed { permanent: false, .. }), "{outcome:?}");
    assert_eq!(server.attempts_to(TOKEN), 0, "a token from another issuer is never accepted");
    assert_eq!(other.token_exchanges(), 4, "each 401 drops the token and exchanges again");
}

#[tokio::test]
async fn an_assertion_naming_another_client_is_refused_at_the_token_endpoint() {
    let server = FcmServer::start().await;
    let mut account: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server.config().service_account_file).unwrap()).unwrap();
    account["client_email"] = "someone-else@chatgw-test.iam.gserviceaccount.com".into();
    let dir = tempfile::tempdir().unwrap();
    let forged = dir.path().join("forged.json");
    std::fs::write(&forged, account.to_string()).unwrap();
    let pusher = pusher_for(&server, |_, fcm| fcm.service_account_file = forged);
    match pusher.send(&notification(Provider::Fcm, TOKEN)).await {
        Outcome::Failed { reason, permanent: true } => assert!(reason.contains("token exchange 400"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.token_exchanges(), 0);
    assert!(server.problems()[0].contains("assertion claims"), "{:?}", server.problems());
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried_and_a_refusal_is_not() {
    let server = FcmServer::start().await;
    let pusher = pusher_for(&server, |_, _| {});
    let unavailable = Reply::json(503, &serde_json::json!({ "error": "temporarily_unavailable" }));
    server.respond_to_exchanges_with([unavailable]);
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.token_exchanges(), 1);
    assert_eq!(pusher.stats().snapshot(Provider::Fcm).retries, 1);

    server.revoke_access_tokens();
    let refused = Reply::json(400, &serde_json::json!({ "error": "invalid_grant", "error_description": "disabled" }));
    server.respond_to_exchanges_with([refused]);
    match pusher.send(&notification(Provider::Fcm, TOKEN)).await {
        Outcome::Failed { reason, permanent: true } => assert!(reason.contains("invalid_grant"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.attempts_to(TOKEN), 1, "after the refused exchange nothing was sent");
}

#[tokio::test]
async fn an_absurd_expires_in_does_not_overflow_the_cache() {
    let server = FcmServer::start().await;
    server.set_access_token_lifetime(Duration::from_secs(u64::MAX));
    let pusher = pusher_for(&server, |_, _| {});
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(pusher.send(&notification(Provider::Fcm, TOKEN)).await, Outcome::Delivered);
    assert_eq!(server.token_exchanges(), 1);
}
