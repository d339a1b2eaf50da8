//! `chatgw serve --push`: the push worker inside a single gateway, fed by
//! its store's outbox, with no Kafka. A burst to an offline device with a
//! webhook target is one notification; a device connected and synced gets
//! none; a gateway SIGKILLed in the middle of a burst notifies after its
//! restart (nothing lost).

mod util;

use std::time::Duration;

use chatgw_client::PushProvider;
use util::{push::*, WAIT};

const ALICE: u64 = 1;
const BOB: u64 = 2;

fn flags(providers: &Providers) -> Vec<String> {
    vec![
        "--push".into(),
        providers.webhook.spec(),
        "--push".into(),
        format!("tls:ca-file={}", providers.webhook.ca_file().display()),
        "--push-grace".into(),
        "1s".into(),
    ]
}

#[test]
fn an_offline_device_gets_one_notification_per_burst_even_across_a_crash() {
    let providers = Providers::start();
    let data = tempfile::tempdir().unwrap();
    let mut gw = ServeProcess::spawn(data.path(), &flags(&providers));
    drop(register_at(gw.addr, &device_token(BOB, "phone"), PushProvider::Webhook, "bob-phone"));
    let laptop = register_at(gw.addr, &device_token(BOB, "laptop"), PushProvider::Webhook, "bob-laptop");
    let mut alice = chatgw_client::Client::connect(gw.addr, &device_token(ALICE, "phone")).unwrap();
    util::sync_all(&mut alice);

    let burst = send_burst(&mut alice, BOB, "first", 5);
    assert!(providers.wait_delivered("bob-phone", 1, WAIT), "gateway log:\n{}", gw.log());
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(providers.delivered_to("bob-phone"), 1, "one notification for the burst");
    assert_eq!(providers.webhook.attempts_to("bob-laptop"), 0, "the live device gets nothing");
    let hook = providers.webhook.received().pop().unwrap().payload;
    assert_eq!((hook["user"].as_str(), hook["device"].as_str()), (Some("2"), Some("phone")));
    assert_eq!((hook["count"].as_u64(), hook["latest_event"].as_str()), (Some(5), Some(&*burst[4].to_string())));
    assert_eq!(gw.metric("chatgw_push_notifications_sent_total"), 1.0);
    assert_eq!(gw.metric("chatgw_push_suppressed_live_total"), 1.0);
    assert_eq!(gw.metric(r#"chatgw_push_provider_sent_total{provider="webhook"}"#), 1.0);

    // Killed before the next burst's grace period ends: nothing was handed
    // off for it, and its records wait in the outbox.
    let burst = send_burst(&mut alice, BOB, "second", 3);
    gw.kill();
    drop((laptop, alice));
    assert_eq!(providers.delivered_to("bob-phone"), 1, "killed before the window fell due");
    let gw = ServeProcess::spawn(data.path(), &flags(&providers));
    assert!(providers.wait_delivered("bob-phone", 2, WAIT), "not notified after the restart:\n{}", gw.log());
    let hook = providers.webhook.received().into_iter().rfind(|r| r.token == "bob-phone").unwrap().payload;
    assert_eq!((hook["count"].as_u64(), hook["latest_event"].as_str()), (Some(3), Some(&*burst[2].to_string())));
    // The laptop went away with the killed gateway: offline now, so it is
    // notified of the second burst too.
    assert!(providers.wait_delivered("bob-laptop", 1, WAIT));
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(providers.delivered_to("bob-phone"), 2, "no repeat of the first burst");
    assert!(providers.problems().is_empty(), "{:?}", providers.problems());
}
