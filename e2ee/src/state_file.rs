//! The device's state at rest: one file, encrypted under a passphrase.
//!
//! The state holds every secret of the device (the account's private keys,
//! the session ratchets), so it is encrypted with XChaCha20-Poly1305 under
//! a key derived from the passphrase by argon2id with a random salt; the
//! derivation's parameters and the salt are in the clear header, which is
//! authenticated with the ciphertext. The key is derived once when the file
//! is created or opened and kept in memory, so saving after each message
//! costs an encryption and an fsync, not a derivation. Every write takes a
//! fresh random 24-byte nonce (random nonces are safe at that size).
//!
//! A second value derived with the key (a 16-byte check) tells a wrong
//! passphrase ([`StateError::WrongPassphrase`]) from a damaged file
//! ([`StateError::Corrupted`]): the check matches but the ciphertext does
//! not authenticate.
//!
//! Writes are atomic: a temporary file in the same directory, fsync,
//! rename over the old file, fsync of the directory. A crash leaves the old
//! state or the new one, never a mix.
//!
//! Layout: `CGWE2EE1` | m_cost u32 LE | t_cost u32 LE | p_cost u32 LE |
//! salt (16) | check (16) | nonce (24) | ciphertext with its 16-byte tag.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use sha2::{Digest, Sha512};

use crate::error::StateError;

const MAGIC: &[u8; 8] = b"CGWE2EE1";
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + 12 + SALT_LEN + CHECK_LEN;

/// argon2id cost parameters (stored in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// argon2's recommended minimum for interactive use: 19 MiB, 2 passes,
    /// 1 lane.
    fn default() -> Self {
        KdfParams { m_cost: Params::DEFAULT_M_COST, t_cost: Params::DEFAULT_T_COST, p_cost: Params::DEFAULT_P_COST }
    }
}

/// An open state file: where it is and the key that encrypts it.
pub struct StateFile {
    path: PathBuf,
    header: [u8; HEADER_LEN],
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for StateFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFile").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The AEAD key and the passphrase check derived from a passphrase.
fn derive(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<([u8; 32], [u8; CHECK_LEN]), StateError> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, Some(64))
        .map_err(|e| StateError::Kdf(e.to_string()))?;
    let mut out = [0u8; 64];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| StateError::Kdf(e.to_string()))?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&out[..32]);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(
        &Sha512::new().chain_update(b"chatgw-e2ee-check").chain_update(&out[32..]).finalize()[..CHECK_LEN],
    );
    Ok((key, check))
}

fn random<const N: usize>() -> Result<[u8; N], StateError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| StateError::Io(std::io::Error::other(e.to_string())))?;
    Ok(b)
}

impl StateFile {
    /// A new state file at `path` (nothing is written until
    /// [`StateFile::write`]) under `passphrase`, with a random salt.
    pub fn create(path: impl Into<PathBuf>, passphrase: &str, params: KdfParams) -> Result<StateFile, StateError> {
        let salt: [u8; SALT_LEN] = random()?;
        let (key, check) = derive(passphrase, &salt, params)?;
        let mut header = [0u8; HEADER_LEN];
        let mut at = 0;
        for part in [
            &MAGIC[..],
            &params.m_cost.to_le_bytes(),
            &params.t_cost.to_le_bytes(),
            &params.p_cost.to_le_bytes(),
            &salt,
            &check,
        ] {
            header[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(StateFile { path: path.into(), header, cipher: XChaCha20Poly1305::new(&key.into()) })
    }

    /// Open the state file at `path` with `passphrase`: the file and its
    /// decrypted content.
    pub fn open(path: impl Into<PathBuf>, passphrase: &str) -> Result<(StateFile, Vec<u8>), StateError> {
        let path = path.into();
        let bytes = fs::read(&path)?;
        if bytes.len() < HEADER_LEN + NONCE_LEN + 16 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(StateError::Corrupted("not a chatgw state file"));
        }
        let word = |i: usize| {
            let at = MAGIC.len() + 4 * i;
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let params = KdfParams { m_cost: word(0), t_cost: word(1), p_cost: word(2) };
        let salt = &bytes[MAGIC.len() + 12..MAGIC.len() + 12 + SALT_LEN];
        let stored_check = &bytes[HEADER_LEN - CHECK_LEN..HEADER_LEN];
        let (key, check) = derive(passphrase, salt, params).map_err(|_| StateError::Corrupted("bad parameters"))?;
        if check[..] != stored_check[..] {
            return Err(StateError::WrongPassphrase);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&bytes[..HEADER_LEN]);
        let file = StateFile { path, header, cipher: XChaCha20Poly1305::new(&key.into()) };
        let nonce_end = HEADER_LEN + NONCE_LEN;
        let nonce = XNonce::try_from(&bytes[HEADER_LEN..nonce_end]).map_err(|_| StateError::Corrupted("nonce"))?;
        let plain = file
            .cipher
            .decrypt(&nonce, Payload { msg: &bytes[nonce_end..], aad: &bytes[..nonce_end] })
            .map_err(|_| StateError::Corrupted("the content does not authenticate"))?;
        Ok((file, plain))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypt `plaintext` and replace the file with it, atomically.
    pub fn write(&self, plaintext: &[u8]) -> Result<(), StateError> {
        let nonce_bytes: [u8; NONCE_LEN] = random()?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&nonce_bytes);
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: &out })
            .map_err(|_| StateError::Corrupted("encryption failed"))?;
        out.extend_from_slice(&sealed);
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: KdfParams = KdfParams { m_cost: 256, t_cost: 1, p_cost: 1 };

    #[test]
    fn round_trip_wrong_passphrase_and_corruption_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let file = StateFile::create(&path, "correct horse", FAST).unwrap();
        file.write(b"secret state").unwrap();
        file.write(b"newer state").unwrap();
        let (_, plain) = StateFile::open(&path, "correct horse").unwrap();
        assert_eq!(plain, b"newer state");
        assert!(!fs::read(&path).unwrap().windows(5).any(|w| w == b"newer"), "encrypted at rest");
        assert!(matches!(StateFile::open(&path, "wrong horse"), Err(StateError::WrongPassphrase)));

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(StateFile::open(&path, "correct horse"), Err(StateError::Corrupted(_))));
        fs::write(&path, b"hello").unwrap();
        assert!(matches!(StateFile::open(&path, "correct horse"), Err(StateError::Corrupted(_))));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }
}
