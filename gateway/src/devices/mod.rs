//! Named devices (docs/PROTOCOL.md, "Devices"): a token's `dev` claim
//! names the device a connection is for. This module keeps what the store
//! knows about them up to date and answers a user's questions about them:
//!
//! - `recorder`: notes that a named device connected (first seen, last
//!   active) off the event loop, batched, at most once a minute per device;
//! - `requests`: the `devices` and `logout_device` frames, served by the
//!   reader threads (both touch the store), and `register_push` /
//!   `unregister_push` (`push`), and the key directory's `upload_keys`,
//!   `fetch_keys` and `key_count` (`keys`), and the `keys_changed` events
//!   a change of a user's keys makes for the user's contacts
//!   (`keys_changed`);
//! - `live`: which named devices have a live connection now, kept by the
//!   cores, read by the push worker and the admin listener.
//!
//! Revoking a device (from the admin listener or `logout_device`) is the
//! session revocation of `revoke`, one level down.

pub(crate) mod keys;
pub(crate) mod keys_changed;
pub(crate) mod live;
pub(crate) mod push;
pub(crate) mod recorder;
pub(crate) mod requests;
