//! WebSocket close codes the gateway uses, and when.
//!
//! The 1xxx codes are RFC 6455's; the 4xxx codes are this protocol's own
//! (the range RFC 6455 leaves to applications).

/// Normal closure: the client asked to close.
pub const NORMAL: u16 = 1000;
/// The server is shutting down (SIGTERM). Reconnect elsewhere, then `sync`.
pub const GOING_AWAY: u16 = 1001;
/// A framing violation: bad opcode, reserved bits, unmasked client frame,
/// fragmented or oversized control frame, a continuation with nothing to
/// continue.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A binary data frame: protocol v1 speaks JSON text frames only.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// A text frame that is not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// The server is restarting (a drain: SIGTERM or `POST /admin/drain`).
/// The reason carries a reconnect delay hint, see [`restart_reason`]:
/// wait that long, reconnect (to any gateway), then `sync`.
pub const SERVICE_RESTART: u16 = 1012;
/// A policy violation: the connection kept sending frames that were
/// refused (see `MAX_STRIKES` in the gateway) instead of correcting course.
pub const POLICY: u16 = 1008;
/// A frame or message larger than the configured maximum.
pub const TOO_BIG: u16 = 1009;
/// The connection fell behind: its outbound queue reached its bound.
/// Nothing is lost: reconnect and `sync` from the last event seen.
pub const SLOW_CONSUMER: u16 = 4000;
/// No pong to a keepalive ping within the deadline.
pub const TIMEOUT: u16 = 4001;
/// The token the connection was opened with has expired: reconnect with a
/// fresh one, then `sync`.
pub const TOKEN_EXPIRED: u16 = 4002;
/// The connection sent no protocol frame for the server's idle timeout.
/// Reconnect when there is something to do, then `sync`.
pub const IDLE: u16 = 4003;
/// The user's sessions were revoked by an operator: every connection of
/// the user opened with a token issued before that moment is closed, and
/// such tokens are refused from now on. Do not reconnect with the same
/// token: get a new one (sign in again).
pub const REVOKED: u16 = 4004;
/// A connection opened without a token did not authenticate: its first
/// frame was not an `auth` frame, the token in it was refused (the reason
/// says why, as a 401 would), or none came within the handshake timeout.
pub const UNAUTHENTICATED: u16 = 4005;

/// The key of the reconnect delay hint in a [`SERVICE_RESTART`] close
/// reason: `retry_after_ms=<milliseconds>`.
pub const RETRY_AFTER_KEY: &str = "retry_after_ms=";

/// The reason of a [`SERVICE_RESTART`] close: `service restart;
/// retry_after_ms=<ms>`, `<ms>` a decimal number of milliseconds the
/// server already spread at random, so its clients do not all come back at
/// once.
pub fn restart_reason(retry_after_ms: u64) -> String {
    format!("service restart; {RETRY_AFTER_KEY}{retry_after_ms}")
}

/// The reconnect delay a close reason asks for, in milliseconds, if it has
/// a `retry_after_ms=<ms>` hint (any code; today only [`SERVICE_RESTART`]).
pub fn retry_after_ms(reason: &str) -> Option<u64> {
    let (_, rest) = reason.split_once(RETRY_AFTER_KEY)?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_reason_carries_its_hint_and_fits_a_close_frame() {
        let reason = restart_reason(u64::MAX);
        assert!(reason.len() <= 123, "{reason}");
        assert_eq!(retry_after_ms(&reason), Some(u64::MAX));
        assert_eq!(retry_after_ms(&restart_reason(1234)), Some(1234));
        assert_eq!(retry_after_ms("service restart"), None);
        assert_eq!(retry_after_ms("retry_after_ms=x"), None);
    }
}
