//! Server frames as the load generator reads them: the protocol crate's
//! borrowed view ([`chatgw_protocol::view`]), which allocates nothing for a
//! `sent` or `message` frame and is tested there against the typed decoder.
//! Re-exported under the names the scenarios use.

pub(crate) use chatgw_protocol::view::{parse_id, FrameView as ServerFrame, Str};
