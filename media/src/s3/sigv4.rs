//! AWS Signature Version 4, as S3 checks it, with no I/O.
//!
//! Two forms share one canonical request: query-string signing (pre-signed
//! URLs handed to clients, payload `UNSIGNED-PAYLOAD` since the signer
//! never sees the bytes) and `Authorization`-header signing (requests the
//! gateway makes itself, with the payload's SHA-256). S3 differs from the
//! generic algorithm in one place: the path is URI-encoded once, not twice.
//!
//! Tested against the examples of AWS's S3 signing documentation and of
//! the SigV4 test suite.

use std::{fmt, time::SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::utc::Civil;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash of a pre-signed request.
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The access key a gateway signs with.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One request to sign. Names and values are raw (not yet encoded).
#[derive(Clone, Debug)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The `Host` header as sent: `host` or `host:port` for a non-default port.
    pub(crate) host: &'a str,
    /// The object path, `/bucket/key` or `/key`.
    pub(crate) path: &'a str,
    pub(crate) query: Vec<(String, String)>,
    /// Headers to sign besides `host` (any case; signed lower-cased).
    pub(crate) headers: Vec<(String, String)>,
}

impl Request<'_> {
    /// The path as it goes on the wire (and into the canonical request).
    pub(crate) fn encoded_path(&self) -> String {
        uri_encode(self.path, false)
    }
}

/// Signs for one region and service.
#[derive(Clone, Debug)]
pub(crate) struct Signer {
    credentials: S3Credentials,
    region: String,
    service: &'static str,
}

impl Signer {
    pub(crate) fn new(credentials: S3Credentials, region: &str, service: &'static str) -> Signer {
        Signer { credentials, region: region.to_owned(), service }
    }

    /// The query string of a pre-signed URL for `request`, valid for
    /// `expires_secs` from `now`: the request's own parameters plus the
    /// `X-Amz-*` ones, `X-Amz-Signature` last.
    pub(crate) fn presign(&self, request: &Request<'_>, now: SystemTime, expires_secs: u64) -> String {
        let civil = Civil::from_system_time(now);
        let mut query = request.query.clone();
        let headers = canonical_headers(request);
        query.extend([
            ("X-Amz-Algorithm".to_owned(), ALGORITHM.to_owned()),
            ("X-Amz-Credential".to_owned(), format!("{}/{}", self.credentials.access_key_id, self.scope(&civil))),
            ("X-Amz-Date".to_owned(), civil.amz_date_time()),
            ("X-Amz-Expires".to_owned(), expires_secs.to_string()),
            ("X-Amz-SignedHeaders".to_owned(), headers.names.clone()),
        ]);
        if let Some(token) = &self.credentials.session_token {
            query.push(("X-Amz-Security-Token".to_owned(), token.clone()));
        }
        let query = canonical_query(&query);
        let canonical = canonical_request(request, &query, &headers, UNSIGNED_PAYLOAD);
        let signature = self.signature(&civil, &canonical);
        format!("{query}&X-Amz-Signature={signature}")
    }

    /// The headers that authenticate `request` with a body hashing to
    /// `payload_sha256` (hex): `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` when there is one, and `authorization`.
    pub(crate) fn authorize(
        &self,
        request: &Request<'_>,
        payload_sha256: &str,
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let civil = Civil::from_system_time(now);
        let mut added = vec![
            ("x-amz-content-sha256".to_owned(), payload_sha256.to_owned()),
            ("x-amz-date".to_owned(), civil.amz_date_time()),
        ];
        if let Some(token) = &self.credentials.session_token {
            added.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        let mut signed = request.clone();
        signed.headers.extend(added.iter().cloned());
        let headers = canonical_headers(&signed);
        let canonical = canonical_request(&signed, &canonical_query(&signed.query), &headers, payload_sha256);
        let signature = self.signature(&civil, &canonical);
        added.push((
            "authorization".to_owned(),
            format!(
                "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature}",
                self.credentials.access_key_id,
                self.scope(&civil),
                headers.names
            ),
        ));
        added
    }

    fn scope(&self, civil: &Civil) -> String {
        format!("{}/{}/{}/aws4_request", civil.amz_date(), self.region, self.service)
    }

    fn signature(&self, civil: &Civil, canonical_request: &str) -> String {
        let string_to_sign = format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            civil.amz_date_time(),
            self.scope(civil),
            sha256_hex(canonical_request.as_bytes())
        );
        let secret = format!("AWS4{}", self.credentials.secret_access_key);
        let key = hmac(secret.as_bytes(), civil.amz_date().as_bytes());
        let key = hmac(&key, self.region.as_bytes());
        let key = hmac(&key, self.service.as_bytes());
        let key = hmac(&key, b"aws4_request");
        hex(&hmac(&key, string_to_sign.as_bytes()))
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// S3's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`
/// (upper-case), and `/` too unless it separates path segments.
pub(crate) fn uri_encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') || (byte == b'/' && !encode_slash)
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

struct CanonicalHeaders {
    /// `name:value\n` for each header, sorted by name.
    lines: String,
    /// `name;name`, the `SignedHeaders` value.
    names: String,
}

fn canonical_headers(request: &Request<'_>) -> CanonicalHeaders {
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.push(("host".to_owned(), request.host.to_owned()));
    headers.sort();
    let lines = headers.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
    let names = headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
    CanonicalHeaders { lines, names }
}

/// Encoded `name=value` pairs sorted by name then value, joined by `&`.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(name, value)| (uri_encode(name, true), uri_encode(value, true))).collect();
    pairs.sort();
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

fn canonical_request(request: &Request<'_>, query: &str, headers: &CanonicalHeaders, payload: &str) -> String {
    format!("{}\n{}\n{query}\n{}\n{}\n{payload}", request.method, request.encoded_path(), headers.lines, headers.names)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail here.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// 2013-05-24T00:00:00Z, the time of the S3 documentation's examples.
    fn may_24_2013() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn example_signer() -> Signer {
        let credentials = S3Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
        };
        Signer::new(credentials, "us-east-1", "s3")
    }

    fn signature_of(headers: &[(String, String)]) -> &str {
        let authorization = &headers.iter().find(|(name, _)| name == "authorization").unwrap().1;
        authorization.rsplit_once("Signature=").unwrap().1
    }

    fn request<'a>(method: &'a str, path: &'a str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Request<'a> {
        Request {
            method,
            host: "examplebucket.s3.amazonaws.com",
            path,
            query: query.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn s3_documentation_presigned_get() {
        // "Authenticating Requests: Using Query Parameters", example GET of
        // test.txt valid for 86400 s.
        let query = example_signer().presign(&request("GET", "/test.txt", &[], &[]), may_24_2013(), 86_400);
        assert_eq!(
            query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn s3_documentation_header_examples() {
        // "Signature Calculations for the Authorization Header", the four
        // examples: GET with a range, PUT, GET ?lifecycle, GET a listing.
        let signer = example_signer();
        let get =
            signer.authorize(&request("GET", "/test.txt", &[], &[("Range", "bytes=0-9")]), EMPTY_SHA256, may_24_2013());
        assert_eq!(signature_of(&get), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        assert!(get.iter().any(|(name, value)| name == "authorization"
            && value.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,")));

        let body = b"Welcome to Amazon S3.";
        assert_eq!(sha256_hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let put = signer.authorize(
            &request(
                "PUT",
                "/test$file.text",
                &[],
                &[("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            ),
            &sha256_hex(body),
            may_24_2013(),
        );
        assert_eq!(signature_of(&put), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");

        let lifecycle = signer.authorize(&request("GET", "/", &[("lifecycle", "")], &[]), EMPTY_SHA256, may_24_2013());
        assert_eq!(signature_of(&lifecycle), "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

        let list = signer.authorize(
            &request("GET", "/", &[("prefix", "J"), ("max-keys", "2")], &[]),
            EMPTY_SHA256,
            may_24_2013(),
        );
        assert_eq!(signature_of(&list), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
    }

    #[test]
    fn sigv4_test_suite_vanilla_requests() {
        // aws-sig-v4-test-suite: get-vanilla and get-vanilla-query-order-key-case
        // (service `service`, 2015-08-30T12:36:00Z).
        let credentials = S3Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
        };
        let signer = Signer::new(credentials, "us-east-1", "service");
        let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let vanilla = |query: &[(&str, &str)]| Request {
            method: "GET",
            host: "example.amazonaws.com",
            path: "/",
            query: query.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            headers: Vec::new(),
        };
        // The suite signs only host and x-amz-date: sign the same set.
        let sign = |request: &Request<'_>| {
            let civil = Civil::from_system_time(at);
            let mut request = request.clone();
            request.headers.push(("X-Amz-Date".to_owned(), civil.amz_date_time()));
            let headers = canonical_headers(&request);
            let canonical = canonical_request(&request, &canonical_query(&request.query), &headers, EMPTY_SHA256);
            signer.signature(&civil, &canonical)
        };
        assert_eq!(sign(&vanilla(&[])), "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
        assert_eq!(
            sign(&vanilla(&[("Param2", "value2"), ("Param1", "value1")])),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn presigned_parts_sign_their_length_and_token() {
        let mut signer = example_signer();
        signer.credentials.session_token = Some("token/with+slash".to_owned());
        let request = Request {
            method: "PUT",
            host: "127.0.0.1:9000",
            path: "/bucket/g1.AAAAAAAAAAAAAAAAAAAAAA",
            query: vec![("partNumber".to_owned(), "2".to_owned()), ("uploadId".to_owned(), "a/b=".to_owned())],
            headers: vec![("Content-Length".to_owned(), "5242880".to_owned())],
        };
        let query = signer.presign(&request, may_24_2013(), 60);
        assert!(query.contains("X-Amz-SignedHeaders=content-length%3Bhost&"), "{query}");
        assert!(query.contains("X-Amz-Security-Token=token%2Fwith%2Bslash"), "{query}");
        assert!(query.contains("uploadId=a%2Fb%3D"), "{query}");
        assert!(query.starts_with("X-Amz-Algorithm="), "sorted: {query}");
        // Any change to what was signed changes the signature.
        let mut other = request.clone();
        other.headers[0].1 = "5242881".to_owned();
        assert_ne!(signer.presign(&other, may_24_2013(), 60), query);
    }

    #[test]
    fn uri_encoding_keeps_unreserved_bytes_only() {
        assert_eq!(uri_encode("a-Z_0.~/ +é", false), "a-Z_0.~/%20%2B%C3%A9");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let text = format!("{:?}", example_signer().credentials);
        assert!(text.contains("AKIAIOSFODNN7EXAMPLE") && !text.contains("EXAMPLEKEY"), "{text}");
    }
}
