//! Signed URLs of the embedded backend: HMAC-SHA256 over the method, the
//! object and part, the exact size and the expiry.
//!
//! A URL is `<base>/media/<media id>/<part>?size=N&expires=T&sig=S` for the
//! `PUT` of a part (parts count from 1) and `<base>/media/<media id>?size=N
//! &expires=T&sig=S` for a `GET` of the object; `T` is Unix seconds and `S`
//! the hex HMAC of `"<METHOD>\n<media id>\n<part or 0>\n<N>\n<T>"` under the
//! gateway's media secret. Nothing else is signed, and nothing else is
//! needed: the gateway keeps no table of URLs it gave out, so a URL is
//! valid on any gateway with the same secret, and after a restart.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::refusal::Refusal;
use crate::{random::hex, MediaKey};

/// What a URL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Download the object (`HEAD` is a `GET` without the body).
    Get,
    /// Upload one part.
    Put,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        }
    }
}

/// A request a URL's signature allows, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The object.
    pub key: MediaKey,
    /// The part, for a `PUT`.
    pub part: Option<u32>,
    /// Exact size of the part (`PUT`) or of the object (`GET`).
    pub size: u64,
}

/// Signs and checks URLs with one secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
    base: String,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("base", &self.base).finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// Sign with `secret`; URLs start with `base` (the public URL of the
    /// gateway's media listener, `http://host:port`; a trailing `/` is
    /// dropped).
    pub fn new(secret: &[u8], base: &str) -> Self {
        UrlSigner { key: secret.to_vec(), base: base.trim_end_matches('/').to_owned() }
    }

    fn mac(&self, method: Method, object: &str, part: u32, size: u64, expires: u64) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(format!("{}\n{object}\n{part}\n{size}\n{expires}", method.as_str()).as_bytes());
        mac
    }

    fn sign(&self, method: Method, object: &str, part: u32, size: u64, expires: u64) -> String {
        hex(&self.mac(method, object, part, size, expires).finalize().into_bytes())
    }

    /// The `PUT` URL of part `part` (from 1) of `key`, `size` bytes exactly.
    pub fn part_url(&self, key: &MediaKey, part: u32, size: u64, expires: u64) -> String {
        let sig = self.sign(Method::Put, &key.to_string(), part, size, expires);
        format!("{}/media/{key}/{part}?size={size}&expires={expires}&sig={sig}", self.base)
    }

    /// The `GET` URL of `key`, an object of `size` bytes.
    pub fn object_url(&self, key: &MediaKey, size: u64, expires: u64) -> String {
        let sig = self.sign(Method::Get, &key.to_string(), 0, size, expires);
        format!("{}/media/{key}?size={size}&expires={expires}&sig={sig}", self.base)
    }

    /// Check a request's path and query for `method` at Unix second `now`.
    /// The refusals are in order: a path that is no media URL (404), a
    /// method the URL is not for (405), a missing or malformed parameter
    /// (400), a signature that does not match (403 `bad_signature`), an
    /// expired URL (403 `expired`).
    pub fn check(&self, method: Method, path: &str, query: Option<&str>, now: u64) -> Result<Allowed, Refusal> {
        let rest = path.strip_prefix("/media/").ok_or(Refusal::NoSuchPath)?;
        let (object, part) = match rest.split_once('/') {
            Some((object, part)) => {
                let part: u32 = part.parse().ok().filter(|p| *p >= 1).ok_or(Refusal::NoSuchPath)?;
                (object, Some(part))
            }
            None => (rest, None),
        };
        let key = MediaKey::parse(object).map_err(|_| Refusal::NoSuchPath)?;
        match (method, part) {
            (Method::Put, None) => return Err(Refusal::WrongMethod { allow: "GET, HEAD" }),
            (Method::Get, Some(_)) => return Err(Refusal::WrongMethod { allow: "PUT" }),
            _ => {}
        }
        let (mut size, mut expires, mut sig) = (None, None, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("size", v)) => size = v.parse::<u64>().ok(),
                Some(("expires", v)) => expires = v.parse::<u64>().ok(),
                Some(("sig", v)) => sig = Some(v),
                _ => {}
            }
        }
        let (Some(size), Some(expires), Some(sig)) = (size, expires, sig) else {
            return Err(Refusal::BadRequest("a signed URL has size, expires and sig"));
        };
        let sig = unhex(sig).ok_or(Refusal::BadSignature)?;
        self.mac(method, object, part.unwrap_or(0), size, expires)
            .verify_slice(&sig)
            .map_err(|_| Refusal::BadSignature)?;
        if now >= expires {
            return Err(Refusal::Expired { at: expires });
        }
        Ok(Allowed { key, part, size })
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{GroupId, UserId};

    use super::*;
    use crate::MediaConversation;

    fn split(url: &str) -> (&str, Option<&str>) {
        let path = url.strip_prefix("http://m:1").unwrap();
        match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        }
    }

    fn key() -> MediaKey {
        MediaKey::new(MediaConversation::Direct(UserId(1), UserId(2)), [7; 16])
    }

    #[test]
    fn a_signed_url_passes_until_it_expires() {
        let s = UrlSigner::new(b"secret", "http://m:1/");
        let put = s.part_url(&key(), 3, 100, 1000);
        let (path, query) = split(&put);
        assert_eq!(s.check(Method::Put, path, query, 999), Ok(Allowed { key: key(), part: Some(3), size: 100 }));
        assert_eq!(s.check(Method::Put, path, query, 1000), Err(Refusal::Expired { at: 1000 }));
        let get = s.object_url(&key(), 5000, 1000);
        let (path, query) = split(&get);
        assert_eq!(s.check(Method::Get, path, query, 10), Ok(Allowed { key: key(), part: None, size: 5000 }));
    }

    #[test]
    fn every_signed_field_is_bound() {
        let s = UrlSigner::new(b"secret", "http://m:1");
        let put = s.part_url(&key(), 1, 100, 1000);
        let other = MediaKey::new(MediaConversation::Group(GroupId(4)), [7; 16]);
        for tampered in [
            put.replace("size=100", "size=101"),
            put.replace("expires=1000", "expires=2000"),
            put.replace("/1?", "/2?"),
            put.replace(&key().to_string(), &other.to_string()),
        ] {
            let (path, query) = split(&tampered);
            assert_eq!(s.check(Method::Put, path, query, 10), Err(Refusal::BadSignature), "{tampered}");
        }
        let (path, query) = split(&put);
        assert_eq!(
            UrlSigner::new(b"other", "http://m:1").check(Method::Put, path, query, 10),
            Err(Refusal::BadSignature)
        );
        let mut flipped = put.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        let (path, query) = split(&flipped);
        assert_eq!(s.check(Method::Put, path, query, 10), Err(Refusal::BadSignature));
    }

    #[test]
    fn a_url_is_for_one_method_and_a_path_must_name_a_media_object() {
        let s = UrlSigner::new(b"secret", "http://m:1");
        let (put, get) = (s.part_url(&key(), 1, 100, 1000), s.object_url(&key(), 100, 1000));
        let (path, query) = split(&put);
        assert_eq!(s.check(Method::Get, path, query, 10), Err(Refusal::WrongMethod { allow: "PUT" }));
        let (path, query) = split(&get);
        assert_eq!(s.check(Method::Put, path, query, 10), Err(Refusal::WrongMethod { allow: "GET, HEAD" }));
        for path in ["/", "/media/", "/media/../secret", "/media/g1.x", &format!("/media/{}/0", key())] {
            assert_eq!(s.check(Method::Get, path, query, 10), Err(Refusal::NoSuchPath), "{path}");
        }
        let (path, _) = split(&get);
        assert!(matches!(s.check(Method::Get, path, Some("size=1"), 10), Err(Refusal::BadRequest(_))));
    }
}
