//! The request that opens a connection: routing, authentication, upgrade.

use chatgw_protocol::{close, max_body_for_frame, server, ClientFrame};
use chatgw_router::Endpoint;

use super::{conn::Phase, unread::Unread, Engine};
use crate::{
    auth::{AuthError, Claims},
    ws::{
        frame::Opcode,
        handshake::{self, Request},
    },
};

/// Largest request head accepted.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What to do with a complete request.
enum Route {
    Respond { status: u16, reason: &'static str, content_type: &'static str, body: Vec<u8> },
    Upgrade { key: Vec<u8>, user: Opening },
}

/// Who a connection being upgraded is.
enum Opening {
    /// The authenticated user, from a token in the query or a header.
    User(Claims),
    /// No token yet: the first frame must be `auth`.
    AwaitAuth,
    /// The echo endpoint (conformance testing).
    Echo,
}

fn text(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Route {
    Route::Respond { status, reason, content_type: "text/plain; charset=utf-8", body: body.into() }
}

impl<S> Engine<S> {
    pub(super) fn on_handshake_bytes(&mut self, slot: usize, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let mut unread = Unread::join(&mut conn.inbuf, data);
        let view = unread.bytes();
        let (route, used) = match handshake::parse(view) {
            Ok(None) if view.len() > MAX_REQUEST_HEAD => {
                (text(431, "Request Header Fields Too Large", "request head too large\n"), 0)
            }
            Ok(None) => {
                let keep = unread.keep();
                if let Some(c) = self.conns.get_mut(slot) {
                    c.inbuf = keep;
                }
                return;
            }
            Err(bad) => (text(400, "Bad Request", format!("{}\n", bad.0)), 0),
            Ok(Some(req)) if req.len > MAX_REQUEST_HEAD => {
                (text(431, "Request Header Fields Too Large", "request head too large\n"), 0)
            }
            Ok(Some(req)) => (self.route(&req), req.len),
        };
        match route {
            Route::Respond { status, reason, content_type, body } => {
                if status >= 400 {
                    if status == 401 {
                        self.ctx.metrics.auth_failures.inc();
                    } else {
                        self.ctx.metrics.bad_requests.inc();
                    }
                }
                let mut out = Vec::with_capacity(128 + body.len());
                handshake::respond(&mut out, status, reason, content_type, &body);
                self.queue_raw(slot, &out);
                if let Some(c) = self.conns.get_mut(slot) {
                    c.phase = Phase::Responding;
                    c.opened_at = self.now;
                }
            }
            Route::Upgrade { key, user } => {
                let mut out = Vec::with_capacity(160);
                handshake::switching_protocols(&mut out, &key);
                self.queue_raw(slot, &out);
                self.open(slot, user);
                let rest_start = used.min(view.len());
                let rest = &mut view[rest_start..];
                if !rest.is_empty() {
                    self.on_frame_bytes(slot, rest);
                }
            }
        }
    }

    fn route(&self, req: &Request<'_>) -> Route {
        if req.method != "GET" {
            return text(405, "Method Not Allowed", "only GET\n");
        }
        match req.path {
            // `/metrics` is not here: it is on the admin listener (`admin`).
            "/healthz" => self.health(),
            "/readyz" => {
                let (status, reason, body) = crate::drain::readiness(&self.ctx.metrics);
                text(status, reason, body)
            }
            "/ws" => self.route_upgrade(req, true),
            "/echo" if self.ctx.settings.echo_endpoint => self.route_upgrade(req, false),
            _ => text(404, "Not Found", "not found\n"),
        }
    }

    /// 200 while the gateway can acknowledge writes; 503 with the cause
    /// while the store refuses them, so a load balancer drains this box.
    fn health(&self) -> Route {
        match self.ctx.metrics.store_failure() {
            None => text(200, "OK", "ok\n"),
            Some(cause) => text(503, "Service Unavailable", format!("store not writable: {cause}\n")),
        }
    }

    fn route_upgrade(&self, req: &Request<'_>, authenticate: bool) -> Route {
        if self.refusing {
            return text(503, "Service Unavailable", "shutting down\n");
        }
        let user = if authenticate {
            // No token: the upgrade goes ahead and the first frame must be
            // `auth` (browsers cannot set headers on a WebSocket, and query
            // strings end up in access logs).
            match req.token().map(|token| self.check_token(token)) {
                None => Opening::AwaitAuth,
                Some(Ok(claims)) => Opening::User(claims),
                Some(Err(e)) => return text(401, "Unauthorized", format!("{e}\n")),
            }
        } else {
            Opening::Echo
        };
        if !req.wants_upgrade {
            return text(
                400,
                "Bad Request",
                "expected a WebSocket upgrade (Upgrade: websocket, Connection: Upgrade)\n",
            );
        }
        if req.ws_version != Some(b"13") {
            return text(426, "Upgrade Required", "Sec-WebSocket-Version must be 13\n");
        }
        match req.ws_key {
            Some(k) if !k.is_empty() && k.len() <= 64 => Route::Upgrade { key: k.to_vec(), user },
            _ => text(400, "Bad Request", "missing Sec-WebSocket-Key\n"),
        }
    }

    /// A token's claims, if the token is valid and not revoked.
    fn check_token(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.ctx.token_key.verify(token, self.now_ms / 1000)?;
        match self.ctx.revocations.refusal(&claims) {
            Some(refused) => Err(refused),
            None => Ok(claims),
        }
    }

    /// The upgrade is answered: the connection speaks WebSocket from now on.
    fn open(&mut self, slot: usize, user: Opening) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.phase = Phase::Open;
        c.last_heard = self.now;
        match user {
            Opening::Echo => c.echo = true,
            Opening::User(claims) => self.register(slot, claims),
            // The handshake timeout runs again, from now, for the `auth` frame.
            Opening::AwaitAuth => {
                c.opened_at = self.now;
                self.arm_timer(slot);
            }
        }
    }

    /// The first frame of a connection opened without a token: it must be
    /// `auth` with a valid token; anything else closes it with 4005.
    pub(super) fn on_auth_frame(&mut self, slot: usize, text: &str) {
        let token = match ClientFrame::parse(text) {
            Ok(ClientFrame::Auth { token }) => token,
            Ok(_) => return self.unauthenticated(slot, r#"authenticate first: {"type":"auth","token":"..."}"#),
            Err(e) => return self.unauthenticated(slot, &format!("bad auth frame: {}", e.message)),
        };
        match self.check_token(&token) {
            Ok(claims) => self.register(slot, claims),
            Err(e) => self.unauthenticated(slot, &e.to_string()),
        }
    }

    /// Close a connection that did not authenticate, with 4005.
    pub(super) fn unauthenticated(&mut self, slot: usize, why: &str) {
        self.ctx.metrics.auth_failures.inc();
        // A close reason is at most 123 bytes.
        let mut end = why.len().min(123);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        self.close_with(slot, close::UNAUTHENTICATED, &why[..end]);
    }

    /// The connection is `claims.user`'s: into the directory, and `welcome`.
    fn register(&mut self, slot: usize, claims: Claims) {
        let core = self.core;
        let max_frame = self.ctx.settings.max_frame;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let Claims { user, exp, .. } = claims;
        c.user = user;
        c.registered = true;
        c.token_exp = u32::try_from(exp).unwrap_or(u32::MAX);
        let ep = Endpoint { core, slot: slot as u32, generation: c.generation };
        self.ctx.directory.register(user.0, ep);
        self.ctx.metrics.connections_open.inc();
        let mut w = Vec::with_capacity(128);
        server::welcome(&mut w, user, max_body_for_frame(max_frame), max_frame);
        self.queue_frame(slot, Opcode::Text, &w);
        // Revoked meanwhile? (see `revoked`)
        self.registered(slot, &claims);
    }
}
