//! What is pushed and what came of it.

use std::fmt;

use sha2::{Digest, Sha256};

/// The providers a device target can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// An operator's HTTP endpoint, called with an HMAC-signed JSON body.
    Webhook,
    /// Apple Push Notification service (HTTP/2, token-based authentication).
    Apns,
    /// Firebase Cloud Messaging HTTP v1 API.
    Fcm,
}

impl Provider {
    /// Every provider, in a fixed order (the order of [`crate::StatsSnapshot`]).
    pub const ALL: [Provider; 3] = [Provider::Webhook, Provider::Apns, Provider::Fcm];

    /// The name used in device targets, spec strings and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Webhook => "webhook",
            Provider::Apns => "apns",
            Provider::Fcm => "fcm",
        }
    }

    /// Parses the name written by [`Provider::as_str`].
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One push to one device target. It carries no message text: only which conversation
/// has news, how many unseen events, and the id of the latest one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The user the device belongs to.
    pub user: String,
    /// The device's name, as registered by its owner.
    pub device: String,
    /// The provider the target is reached through.
    pub provider: Provider,
    /// The provider's device token (APNs device token, FCM registration token, or the
    /// opaque token handed to the webhook).
    pub token: String,
    /// The conversation: `d:<lo>:<hi>` for a direct one, `g:<id>` for a group.
    pub conversation: String,
    /// Unseen events in the conversation.
    pub count: u32,
    /// The id of the latest event, so the app can fetch from there.
    pub latest_event: String,
    /// Pushes with the same collapse id replace each other on the device
    /// (`apns-collapse-id`, FCM `collapse_key`). At most 64 bytes; see [`collapse_id_for`].
    pub collapse_id: String,
}

impl Notification {
    /// A notification whose collapse id is derived from the conversation, so one
    /// conversation shows as one notification however many pushes it gets.
    pub fn new(
        user: impl Into<String>,
        device: impl Into<String>,
        provider: Provider,
        token: impl Into<String>,
        conversation: impl Into<String>,
        count: u32,
        latest_event: impl Into<String>,
    ) -> Notification {
        let conversation = conversation.into();
        Notification {
            user: user.into(),
            device: device.into(),
            provider,
            token: token.into(),
            collapse_id: collapse_id_for(&conversation),
            conversation,
            count,
            latest_event: latest_event.into(),
        }
    }
}

/// APNs limits `apns-collapse-id` to 64 bytes. A conversation id that fits is used as
/// is (readable in logs); a longer one becomes `h:` and 62 hex digits of its SHA-256.
pub fn collapse_id_for(conversation: &str) -> String {
    const LIMIT: usize = 64;
    if conversation.len() <= LIMIT {
        return conversation.to_owned();
    }
    let digest = Sha256::digest(conversation.as_bytes());
    let mut id = String::from("h:");
    for byte in digest {
        id.push_str(&format!("{byte:02x}"));
    }
    id.truncate(LIMIT);
    id
}

/// What came of a [`crate::Pusher::send`], after any retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the notification.
    Delivered,
    /// The provider says the token is no longer valid: the caller removes the target.
    Unregistered {
        /// The provider's reason, e.g. `Unregistered`, `BadDeviceToken`, `UNREGISTERED`.
        reason: String,
    },
    /// The notification was not delivered.
    Failed {
        /// What went wrong on the last attempt.
        reason: String,
        /// True when retrying later cannot help (bad request, bad credentials, no such
        /// provider configured); false when attempts or the deadline ran out.
        permanent: bool,
    },
}
