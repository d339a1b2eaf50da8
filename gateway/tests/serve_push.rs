//! `chatgw serve --push`: the push worker inside a single gateway, fed by
//! its store's outbox, with no Kafka. A burst to an offline device with a
//! webhook target is one notification; a device connected and synced gets
//! none; a gateway SIGKILLed in the middle of a burst notifies after its
//! restart (nothing lost); a gateway started without `--push` releases the
//! worker's outbox cursor.

mod util;

use std::time::Duration;

use chatgw_client::PushProvider;
use util::{push::*, WAIT};

const ALICE: u64 = 1;
const BOB: u64 = 2;

/// The webhook test server, trusted.
fn specs(providers: &Providers) -> Vec<String> {
    vec![providers.webhook.spec(), format!("tls:ca-file={}", providers.webhook.ca_file().display())]
}

fn flags(providers: &Providers) -> Vec<String> {
    let mut flags: Vec<String> = specs(providers).into_iter().flat_map(|s| ["--push".to_owned(), s]).collect();
    // Long enough that a burst sent one commit at a time on a loaded
    // machine stays one burst, and the kill below lands in its grace.
    flags.extend(["--push-grace".into(), "3s".into()]);
    flags
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
    std::thread::sleep(Duration::from_millis(4_000));
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
    std::thread::sleep(Duration::from_millis(4_000));
    assert_eq!(providers.delivered_to("bob-phone"), 2, "no repeat of the first burst");
    assert!(providers.problems().is_empty(), "{:?}", providers.problems());
}

/// The push cursor of the embedded store under `data`, and the outbox head.
fn push_cursor_and_head(data: &std::path::Path) -> (u64, u64) {
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};
    let store = EmbeddedStore::open(chatgw_gateway::store::embedded_dir(data), &EmbeddedOptions::default()).unwrap();
    (store.outbox_cursor(chatgw_gateway::push::CONSUMER).unwrap().0, store.outbox_head().unwrap().0)
}

/// Started again with the outbox on (`--events`) but without `--push`, a
/// gateway moves the cursor the push worker left to the head, so it no
/// longer holds outbox records back from removal.
#[test]
fn a_push_cursor_left_behind_is_released_without_push() {
    use chatgw_gateway::{Config, Server};
    let providers = Providers::start();
    let data = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::new("127.0.0.1:0".parse().unwrap(), data.path().to_path_buf(), util::SECRET.into());
        c.workers = 1;
        c
    };
    let mut with_push = config();
    with_push.push.specs = specs(&providers);
    let gw = Server::start(with_push).unwrap();
    drop(register_at(gw.addr(), &device_token(BOB, "phone"), PushProvider::Webhook, "bob-phone"));
    let mut alice = chatgw_client::Client::connect(gw.addr(), &device_token(ALICE, "phone")).unwrap();
    send_burst(&mut alice, BOB, "m", 1);
    assert!(providers.wait_delivered("bob-phone", 1, WAIT));
    // The worker commits at most every 500 ms, and once more as it stops.
    std::thread::sleep(Duration::from_millis(700));
    drop(alice);
    gw.shutdown();
    let (cursor, head) = push_cursor_and_head(data.path());
    assert!(cursor > 0 && cursor == head, "the worker committed what it handed off: {cursor} of {head}");

    // Written while --push was off, then --events on an unreachable broker:
    // the outbox is on, the push cursor would hold these records forever.
    Server::start(config()).unwrap().shutdown();
    let mut with_events = config();
    with_events.events = Some("kafka://127.0.0.1:1/nowhere".parse().unwrap());
    let gw = Server::start(with_events).unwrap();
    let mut alice = chatgw_client::Client::connect(gw.addr(), &device_token(ALICE, "phone")).unwrap();
    send_burst(&mut alice, BOB, "n", 2);
    drop(alice);
    gw.shutdown();
    let (before, head_after_sends) = push_cursor_and_head(data.path());
    assert!(head_after_sends > head, "the sends went to the outbox");
    let mut again = config();
    again.events = Some("kafka://127.0.0.1:1/nowhere".parse().unwrap());
    Server::start(again).unwrap().shutdown();
    let (after, head_now) = push_cursor_and_head(data.path());
    assert_eq!(head_now, head_after_sends);
    assert!(before < after && after == head_now, "released to the head: {before} -> {after} of {head_now}");
}
