//! The key this node's links are authenticated with (docs/CLUSTER.md,
//! "Link authentication"): from `--link-secret-file` when it is set,
//! otherwise derived from `--secret`.
//!
//! Why `--secret` by default: it is the one secret a fleet must already
//! share (a token without `kid` is checked with it on whichever node the
//! device reaches), and rotating token keys (`[token_keys]`,
//! `signing_key`, reloaded by SIGHUP) never changes it, so every node of a
//! correctly configured fleet derives the same key, during a rotation too.
//! The signing key is no candidate: it is the one that changes in a
//! rotation, node by node. The key is taken once at start; a reload never
//! changes it (a session opened under it stays open). An operator who
//! means to change `--secret` itself sets `--link-secret-file` first.
//!
//! Either secret goes through `LinkKey::derive` (HMAC-SHA256 over a fixed
//! label), so the link key is never the token secret itself.

use std::io;

use chatgw_cluster::link::LinkKey;

use super::FleetError;
use crate::config::Config;

/// The fleet's link key as `config` names it.
pub(crate) fn link_key(config: &Config) -> Result<LinkKey, FleetError> {
    let Some(path) = &config.link_secret_file else {
        tracing::info!("node links are authenticated with a key derived from --secret");
        return Ok(LinkKey::derive(config.secret.as_bytes()));
    };
    let failed = |source| FleetError::LinkSecret { path: path.clone(), source };
    let text = std::fs::read(path).map_err(failed)?;
    let secret = text.trim_ascii();
    if secret.is_empty() {
        return Err(failed(io::Error::new(io::ErrorKind::InvalidData, "the file is empty")));
    }
    tracing::info!(file = %path.display(), "node links are authenticated with a key derived from --link-secret-file");
    Ok(LinkKey::derive(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> Config {
        Config::new("127.0.0.1:0".parse().unwrap(), "./data".into(), secret.into())
    }

    fn same(a: &LinkKey, b: &LinkKey) -> bool {
        a == b
    }

    #[test]
    fn the_secret_file_overrides_the_secret_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config("token secret");
        let from_secret = link_key(&c).unwrap();
        assert!(same(&from_secret, &LinkKey::derive(b"token secret")));
        // Token keys and the signing key do not enter it.
        c.token_keys.insert("k2".into(), "rotated".into());
        c.signing_key = Some("k2".into());
        assert!(same(&link_key(&c).unwrap(), &from_secret));

        let file = dir.path().join("link");
        std::fs::write(&file, "link secret\n").unwrap();
        c.link_secret_file = Some(file.clone());
        let from_file = link_key(&c).unwrap();
        assert!(same(&from_file, &LinkKey::derive(b"link secret")), "trailing newline trimmed");
        assert!(!same(&from_file, &from_secret));

        std::fs::write(&file, " \n").unwrap();
        let err = link_key(&c).unwrap_err();
        assert!(matches!(&err, FleetError::LinkSecret { path, .. } if *path == file), "{err:?}");
        c.link_secret_file = Some(dir.path().join("missing"));
        assert!(matches!(link_key(&c), Err(FleetError::LinkSecret { .. })));
    }
}
