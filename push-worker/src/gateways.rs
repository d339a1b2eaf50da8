//! Liveness asked of gateways: `GET /live-devices?user=1&user=2` on each
//! gateway's admin listener answers `{"1":["phone"],"2":[]}`, and a device
//! is live if any gateway lists it.
//!
//! A gateway that cannot be asked (refused, timed out, an answer that is not
//! that JSON) counts as listing no device: the worker then sends a push that
//! may not have been needed rather than lose one that was. It is logged and
//! counted by the caller's logs only; the next window asks again.
//!
//! Plain HTTP/1.1 on a TCP stream rather than a client crate: the admin
//! listener answers one request per connection with `Connection: close`,
//! so reading to the end is the whole protocol.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    time::Duration,
};

use chatgw_protocol::{DeviceName, UserId};

use crate::handoff::Liveness;

/// Users per request, so the request line stays short.
const USERS_PER_REQUEST: usize = 200;
/// Largest answer read from a gateway.
const MAX_ANSWER_BYTES: u64 = 4 << 20;

/// The admin listeners of the gateways of a deployment.
#[derive(Clone, Debug)]
pub struct Gateways {
    /// `host:port` of each admin listener.
    admins: Vec<String>,
    timeout: Duration,
}

/// Why a `--gateways` list was refused.
#[derive(Debug, thiserror::Error)]
#[error("gateway admin URLs must be http://host:port, comma-separated: {0:?}")]
pub struct GatewaysError(String);

impl Gateways {
    /// From `http://host:port,http://host:port`; each gateway is given
    /// `timeout` to answer.
    pub fn parse(list: &str, timeout: Duration) -> Result<Self, GatewaysError> {
        let mut admins = Vec::new();
        for url in list.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let hostport = url.strip_prefix("http://").map(|h| h.trim_end_matches('/')).unwrap_or_default();
            if hostport.is_empty() || hostport.contains('/') || !hostport.contains(':') {
                return Err(GatewaysError(url.to_owned()));
            }
            admins.push(hostport.to_owned());
        }
        Ok(Gateways { admins, timeout })
    }

    /// How many gateways are asked.
    pub fn len(&self) -> usize {
        self.admins.len()
    }

    /// Whether no gateway is asked (every device then counts as not live).
    pub fn is_empty(&self) -> bool {
        self.admins.is_empty()
    }

    fn ask(&self, admin: &str, users: &[UserId]) -> Result<HashMap<String, Vec<String>>, String> {
        let query: Vec<String> = users.iter().map(|u| format!("user={u}")).collect();
        let target = format!("/live-devices?{}", query.join("&"));
        let addr = admin.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        write!(stream, "GET {target} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER_BYTES).read_to_end(&mut answer).map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").ok_or("an answer that is not HTTP")?;
        let status = head.split(' ').nth(1).unwrap_or_default();
        if status != "200" {
            return Err(format!("status {status}"));
        }
        serde_json::from_str(body).map_err(|e| e.to_string())
    }
}

impl Liveness for Gateways {
    fn live_devices(&self, users: &[UserId]) -> HashMap<UserId, Vec<DeviceName>> {
        let mut live: HashMap<UserId, Vec<DeviceName>> = HashMap::new();
        for chunk in users.chunks(USERS_PER_REQUEST) {
            for admin in &self.admins {
                let answer = match self.ask(admin, chunk) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(gateway = %admin, error = %e, "liveness unknown: counting its devices as not live");
                        continue;
                    }
                };
                for (user, devices) in answer {
                    let Ok(user) = user.parse::<UserId>() else { continue };
                    let entry = live.entry(user).or_default();
                    entry.extend(devices.iter().filter_map(|d| DeviceName::new(d)));
                }
            }
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use std::{io::BufRead, net::TcpListener, thread};

    use super::*;

    /// A one-request-per-connection admin listener answering `body` with `status`.
    fn gateway(status: u16, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = std::io::BufReader::new(&stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert!(line.starts_with("GET /live-devices?user="), "{line}");
                // The rest of the head, so closing does not reset the connection.
                while line != "\r\n" {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                }
                let _ = write!(stream, "HTTP/1.1 {status} X\r\nConnection: close\r\n\r\n{body}");
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn a_device_is_live_if_any_gateway_lists_it_and_an_unreachable_one_lists_none() {
        let a = gateway(200, r#"{"1":["phone"],"2":[]}"#);
        let b = gateway(200, r#"{"1":["laptop"],"2":["tablet","not a name!"]}"#);
        let broken = gateway(500, "oops");
        let garbage = gateway(200, "[1,2");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let list = [a, b, broken, garbage, closed].join(",");
        let g = Gateways::parse(&list, Duration::from_secs(2)).unwrap();
        assert_eq!(g.len(), 5);
        let mut live = g.live_devices(&[UserId(1), UserId(2), UserId(3)]);
        for d in live.values_mut() {
            d.sort_by_key(|d| d.as_str().to_owned());
        }
        let names = |u| live.get(&UserId(u)).map(|d| d.iter().map(|d| d.as_str()).collect::<Vec<_>>());
        assert_eq!(names(1), Some(vec!["laptop", "phone"]));
        assert_eq!(names(2), Some(vec!["tablet"]));
        assert_eq!(names(3), None);
    }

    #[test]
    fn gateway_lists_must_be_http_host_port() {
        assert!(Gateways::parse("http://a:1, http://b:2/", Duration::from_secs(1)).is_ok());
        for bad in ["a:1", "http://a", "https://a:1", "http://a:1/x"] {
            assert!(Gateways::parse(bad, Duration::from_secs(1)).is_err(), "{bad}");
        }
    }
}
