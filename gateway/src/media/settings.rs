//! Media settings: which backend (`--media`), where the embedded backend's
//! listener is (`--media-listen`, `--media-url`), and the limits.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use chatgw_protocol::MediaKind;
use serde::Deserialize;

/// `--media`: where media objects live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MediaStoreUrl {
    /// Files under `<data>/media`, served by the gateway's media listener.
    #[default]
    Embedded,
    /// An S3 bucket (`s3://bucket?region=...&endpoint=...`), as written.
    S3(String),
}

impl FromStr for MediaStoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "embedded" => Ok(MediaStoreUrl::Embedded),
            url if url.starts_with("s3://") => Ok(MediaStoreUrl::S3(url.to_owned())),
            other => Err(format!("media `{other}`: expected embedded or s3://bucket?region=...")),
        }
    }
}

impl<'de> Deserialize<'de> for MediaStoreUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A size in bytes, written `1048576`, `512K`, `16M` or `2G` (binary
/// multiples: `16M` is 16 MiB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
        let (digits, shift) = match t.char_indices().last() {
            Some((i, 'K' | 'k')) => (&t[..i], 10),
            Some((i, 'M' | 'm')) => (&t[..i], 20),
            Some((i, 'G' | 'g')) => (&t[..i], 30),
            Some((i, 'T' | 't')) => (&t[..i], 40),
            _ => (t, 0),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}`: expected a size like 1048576, 512K, 16M or 2G"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `--media-max-size`: the largest object of each kind, written
/// `image=16M,video=256M` (kinds not named keep their default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindLimits {
    /// Largest image.
    pub image: u64,
    /// Largest video.
    pub video: u64,
    /// Largest audio recording.
    pub audio: u64,
    /// Largest document.
    pub document: u64,
}

impl Default for KindLimits {
    fn default() -> Self {
        KindLimits { image: 16 << 20, video: 256 << 20, audio: 16 << 20, document: 256 << 20 }
    }
}

impl KindLimits {
    /// The limit of `kind`.
    pub fn of(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
            MediaKind::Document => self.document,
        }
    }
}

impl FromStr for KindLimits {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut limits = KindLimits::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, size) = item.split_once('=').ok_or_else(|| format!("`{item}`: expected kind=size"))?;
            let size = size.parse::<ByteSize>()?.0;
            match MediaKind::from_name(kind.trim()) {
                Some(MediaKind::Image) => limits.image = size,
                Some(MediaKind::Video) => limits.video = size,
                Some(MediaKind::Audio) => limits.audio = size,
                Some(MediaKind::Document) => limits.document = size,
                None => return Err(format!("`{kind}`: expected image, video, audio or document")),
            }
        }
        Ok(limits)
    }
}

impl<'de> Deserialize<'de> for KindLimits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Resolved media settings.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// The backend.
    pub store: MediaStoreUrl,
    /// The embedded backend's HTTP listener; `None` (the default): media
    /// off with the embedded backend. Off by default so that gateways
    /// sharing a box (a fleet, benchmarks) bind no port they were not
    /// given.
    pub listen: Option<SocketAddr>,
    /// The public base URL written into signed URLs (`http://host:port`);
    /// `None`: `http://` and the bound listen address.
    pub url: Option<String>,
    /// Secret of the embedded backend's URL signatures; `None`: generated
    /// once and kept in `<data>/media/secret`.
    pub secret: Option<String>,
    /// How long signed URLs work.
    pub url_ttl: Duration,
    /// Part size of uploads (raised for files that would need more than
    /// 1000 parts).
    pub part_size: u64,
    /// Largest object per kind.
    pub max_size: KindLimits,
    /// Bytes one user may upload per UTC day on this gateway (0: no limit).
    pub quota: u64,
    /// Objects older than this are deleted, completed or not (zero: kept
    /// forever).
    pub retention: Duration,
    /// Transfers the embedded listener serves at once.
    pub transfers: usize,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            store: MediaStoreUrl::Embedded,
            listen: None,
            url: None,
            secret: None,
            url_ttl: Duration::from_secs(15 * 60),
            part_size: 8 << 20,
            max_size: KindLimits::default(),
            quota: 2 << 30,
            retention: Duration::from_secs(30 * 86_400),
            transfers: 32,
        }
    }
}

impl MediaSettings {
    /// Whether media frames are served.
    pub fn enabled(&self) -> bool {
        match self.store {
            MediaStoreUrl::Embedded => self.listen.is_some(),
            MediaStoreUrl::S3(_) => true,
        }
    }

    /// Refuse settings media cannot run with.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(&self.url_ttl) {
            return Err("media-url-ttl must be 1s..=7d".into());
        }
        if !((1 << 20)..=(1 << 30)).contains(&self.part_size) {
            return Err("media-part-size must be 1M..=1G".into());
        }
        if !(1..=1024).contains(&self.transfers) {
            return Err("media-transfers must be 1..=1024".into());
        }
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(['"', ' ', '?', '#']) {
                return Err("media-url must be an http:// or https:// base URL without query".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_limits_parse() {
        assert_eq!("16M".parse::<ByteSize>(), Ok(ByteSize(16 << 20)));
        assert_eq!("2GiB".parse::<ByteSize>(), Ok(ByteSize(2 << 30)));
        assert_eq!("512K".parse::<ByteSize>(), Ok(ByteSize(512 << 10)));
        assert_eq!("100".parse::<ByteSize>(), Ok(ByteSize(100)));
        assert!("lots".parse::<ByteSize>().is_err());
        let l: KindLimits = "image=1M, video=2G".parse().unwrap();
        assert_eq!((l.image, l.video, l.audio), (1 << 20, 2 << 30, 16 << 20));
        assert!("gif=1M".parse::<KindLimits>().is_err());
        assert_eq!("s3://b?region=x".parse::<MediaStoreUrl>(), Ok(MediaStoreUrl::S3("s3://b?region=x".into())));
        assert!("ftp://x".parse::<MediaStoreUrl>().is_err());
    }
}
