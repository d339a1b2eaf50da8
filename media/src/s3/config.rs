//! `s3://bucket?region=...&endpoint=...` and the environment's credentials.
//!
//! Without `endpoint` the bucket is AWS S3's, addressed virtual-hosted
//! (`https://bucket.s3.region.amazonaws.com/key`), or path-style on the
//! regional endpoint when the bucket name has a dot (a dotted host name
//! would not match S3's wildcard certificate). With `endpoint` (MinIO,
//! Ceph, R2, moto, ...) addressing is path-style (`endpoint/bucket/key`),
//! which every S3-compatible server understands.

use reqwest::Url;

use super::sigv4::S3Credentials;

/// Where the objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Signing region (`us-east-1` unless the URL, `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` says otherwise).
    pub region: String,
    /// `scheme://host[:port]` of an S3-compatible server; `None` for AWS.
    pub endpoint: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum S3ConfigError {
    /// The URL does not parse or is not `s3://bucket[?...]`.
    #[error("not an s3://bucket[?region=...&endpoint=...] URL: {0}")]
    Url(String),
    /// A query parameter the URL format does not have.
    #[error("unknown s3:// URL parameter `{0}` (known: region, endpoint)")]
    UnknownParameter(String),
    /// `endpoint` is not an `http://` or `https://` origin.
    #[error("endpoint must be http(s)://host[:port] with no path: {0}")]
    Endpoint(String),
    /// A credential variable is unset or empty.
    #[error("{0} is not set")]
    MissingCredential(&'static str),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl S3Config {
    /// Parse `s3://bucket?region=...&endpoint=...`; a missing region comes
    /// from `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn parse(url: &str) -> Result<S3Config, S3ConfigError> {
        let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
        Self::parse_with_default_region(url, env_region.as_deref().unwrap_or("us-east-1"))
    }

    pub(crate) fn parse_with_default_region(url: &str, default_region: &str) -> Result<S3Config, S3ConfigError> {
        let bad = || S3ConfigError::Url(url.to_owned());
        let parsed = Url::parse(url).map_err(|_| bad())?;
        let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(bad)?;
        if parsed.scheme() != "s3"
            || !matches!(parsed.path(), "" | "/")
            || !parsed.username().is_empty()
            || parsed.port().is_some()
            || !valid_bucket(bucket)
        {
            return Err(bad());
        }
        let mut config = S3Config { bucket: bucket.to_owned(), region: default_region.to_owned(), endpoint: None };
        for (name, value) in parsed.query_pairs() {
            match &*name {
                "region" if !value.is_empty() => config.region = value.into_owned(),
                "endpoint" => config.endpoint = Some(parse_endpoint(&value)?),
                "region" => return Err(bad()),
                _ => return Err(S3ConfigError::UnknownParameter(name.into_owned())),
            }
        }
        Ok(config)
    }
}

impl S3Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if set,
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<S3Credentials, S3ConfigError> {
        let var = |name: &'static str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(S3Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID").ok_or(S3ConfigError::MissingCredential("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")
                .ok_or(S3ConfigError::MissingCredential("AWS_SECRET_ACCESS_KEY"))?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// S3's bucket naming rules (3-63 of lower-case letters, digits, `.`, `-`;
/// starting and ending with a letter or digit).
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn parse_endpoint(text: &str) -> Result<String, S3ConfigError> {
    let bad = || S3ConfigError::Endpoint(text.to_owned());
    let url = Url::parse(text).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<S3Config, S3ConfigError> {
        S3Config::parse_with_default_region(url, "us-east-1")
    }

    #[test]
    fn parses_bucket_region_and_endpoint() {
        assert_eq!(
            parse("s3://media-bucket").unwrap(),
            S3Config { bucket: "media-bucket".into(), region: "us-east-1".into(), endpoint: None }
        );
        assert_eq!(
            parse("s3://media.example?region=eu-west-3&endpoint=http%3A%2F%2F127.0.0.1%3A9000").unwrap(),
            S3Config {
                bucket: "media.example".into(),
                region: "eu-west-3".into(),
                endpoint: Some("http://127.0.0.1:9000".into())
            }
        );
        // Unencoded endpoints work as long as they carry no query of their own.
        assert_eq!(
            parse("s3://b12?endpoint=https://minio.local:9443/").unwrap().endpoint.as_deref(),
            Some("https://minio.local:9443")
        );
    }

    #[test]
    fn reads_credentials_and_region_from_the_environment() {
        // The only test of this crate that touches the environment.
        let names = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"];
        for name in names {
            std::env::remove_var(name);
        }
        assert_eq!(S3Credentials::from_env(), Err(S3ConfigError::MissingCredential("AWS_ACCESS_KEY_ID")));
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
        assert_eq!(S3Credentials::from_env(), Err(S3ConfigError::MissingCredential("AWS_SECRET_ACCESS_KEY")));
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
        std::env::set_var("AWS_REGION", "ap-south-2");
        let credentials = S3Credentials::from_env().unwrap();
        assert_eq!((credentials.access_key_id.as_str(), credentials.session_token), ("AKIDEXAMPLE", None));
        assert_eq!(S3Config::parse("s3://bucket").unwrap().region, "ap-south-2");
        assert_eq!(S3Config::parse("s3://bucket?region=eu-west-1").unwrap().region, "eu-west-1");
        std::env::set_var("AWS_SESSION_TOKEN", "token");
        assert_eq!(S3Credentials::from_env().unwrap().session_token.as_deref(), Some("token"));
        for name in names {
            std::env::remove_var(name);
        }
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for url in [
            "",
            "s3://",
            "http://bucket",
            "s3://Bucket",
            "s3://b",
            "s3://bucket/prefix",
            "s3://bucket:9",
            "s3://bucket?region=",
        ] {
            assert!(matches!(parse(url), Err(S3ConfigError::Url(_))), "{url:?}");
        }
        assert_eq!(parse("s3://bucket?prefix=x"), Err(S3ConfigError::UnknownParameter("prefix".into())));
        for endpoint in ["ftp://host", "http://host/path", "localhost:9000"] {
            assert!(
                matches!(parse(&format!("s3://bucket?endpoint={endpoint}")), Err(S3ConfigError::Endpoint(_))),
                "{endpoint}"
            );
        }
    }
}
