//! The request that opens a connection: routing, authentication, upgrade.

use chatgw_protocol::{max_body_for_frame, server};
use chatgw_router::Endpoint;

use super::{conn::Phase, Engine};
use crate::{
    auth::{self, Claims},
    ws::{
        frame::Opcode,
        handshake::{self, Request},
    },
};

/// Largest request head accepted.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What to do with a complete request.
enum Route {
    Respond {
        status: u16,
        reason: &'static str,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// `user` is the authenticated user and its token's claims; `None` for /echo.
    Upgrade {
        key: Vec<u8>,
        user: Option<Claims>,
    },
}

fn text(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Route {
    Route::Respond { status, reason, content_type: "text/plain; charset=utf-8", body: body.into() }
}

impl<S> Engine<S> {
    pub(super) fn on_handshake_bytes(&mut self, slot: usize, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let mut owned = std::mem::take(&mut conn.inbuf);
        let buffered = !owned.is_empty();
        if buffered {
            owned.extend_from_slice(data);
        }
        let view: &mut [u8] = if buffered { &mut owned } else { data };
        let (route, used) = match handshake::parse(view) {
            Ok(None) if view.len() > MAX_REQUEST_HEAD => {
                (text(431, "Request Header Fields Too Large", "request head too large\n"), 0)
            }
            Ok(None) => {
                let keep = if buffered { owned } else { view.to_vec() };
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
        if self.draining {
            return text(503, "Service Unavailable", "shutting down\n");
        }
        let user = if authenticate {
            let Some(token) = req.token() else {
                return text(401, "Unauthorized", format!("{}\n", auth::AuthError::Missing));
            };
            match self.ctx.token_key.verify(token, self.now_ms / 1000) {
                Ok(claims) => match self.ctx.revocations.refusal(&claims) {
                    Some(refused) => return text(401, "Unauthorized", format!("{refused}\n")),
                    None => Some(claims),
                },
                Err(e) => return text(401, "Unauthorized", format!("{e}\n")),
            }
        } else {
            None
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

    /// The upgrade is answered: the connection speaks WebSocket from now on.
    fn open(&mut self, slot: usize, user: Option<Claims>) {
        let core = self.core;
        let max_frame = self.ctx.settings.max_frame;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.phase = Phase::Open;
        c.last_heard = self.now;
        match user {
            None => c.echo = true,
            Some(claims @ Claims { user, exp, .. }) => {
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
    }
}
