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
