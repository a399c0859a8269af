//! Secrets at rest: auth passwords, tokens, API keys and signing secrets are
//! stored encrypted with ChaCha20-Poly1305 under one master key.
//!
//! The key comes from `CAREHOOK_MASTER_KEY` (base64 of 32 bytes) or from a
//! key file made on first start with mode 0600. Losing the key loses the
//! secrets (webhooks keep working once their secrets are entered again), so
//! the start-up log says where the key file is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use carehook_core::privacy::Pseudonymizer;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// Marks an encrypted value, with the scheme's version.
const PREFIX: &str = "enc:v1:";

#[derive(Clone)]
pub struct Vault {
    cipher: ChaCha20Poly1305,
    /// The `pseudonym` filter's key, derived from the master key: the same
    /// on every node of an installation, different across installations.
    pseudonyms: Arc<Pseudonymizer>,
    /// The delivery log's search index key (a blind index of patient names),
    /// derived from the master key with a label of its own.
    search_index: Arc<Pseudonymizer>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(***)")
    }
}

impl Vault {
    pub fn from_key(key: &[u8; 32]) -> Self {
        Vault {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
            pseudonyms: Arc::new(Pseudonymizer::from_master_key(key)),
            search_index: Arc::new(Pseudonymizer::for_purpose(
                key,
                b"carehook search index key v1",
            )),
        }
    }

    /// The installation's pseudonym key, for rendering `| pseudonym`.
    pub fn pseudonymizer(&self) -> Arc<Pseudonymizer> {
        self.pseudonyms.clone()
    }

    /// The key from `CAREHOOK_MASTER_KEY`, or from `key_file`, made if missing.
    pub fn open(master_key: Option<&str>, key_file: &Path) -> anyhow::Result<(Self, KeySource)> {
        if let Some(text) = master_key {
            let key = decode_key(text).context("CAREHOOK_MASTER_KEY")?;
            return Ok((Vault::from_key(&key), KeySource::Environment));
        }
        if key_file.exists() {
            let text = std::fs::read_to_string(key_file)
                .with_context(|| format!("reading the key file {}", key_file.display()))?;
            let key = decode_key(text.trim())
                .with_context(|| format!("the key file {}", key_file.display()))?;
            return Ok((
                Vault::from_key(&key),
                KeySource::File(key_file.to_path_buf()),
            ));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| anyhow::anyhow!("no randomness for a master key: {e}"))?;
        write_private(key_file, &B64.encode(key))?;
        Ok((
            Vault::from_key(&key),
            KeySource::Created(key_file.to_path_buf()),
        ))
    }

    /// Encrypts a secret; an empty secret stays empty (nothing to hide).
    pub fn seal(&self, plain: &str) -> String {
        if plain.is_empty() {
            return String::new();
        }
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("ChaCha20-Poly1305 encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts what [`Vault::seal`] made.
    pub fn open_secret(&self, stored: &str) -> anyhow::Result<String> {
        if stored.is_empty() {
            return Ok(String::new());
        }
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            bail!("a stored secret is not encrypted");
        };
        let raw = B64.decode(b64).context("a stored secret is damaged")?;
        if raw.len() < 12 {
            bail!("a stored secret is damaged");
        }
        let (nonce, ciphertext) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                anyhow::anyhow!(
                    "a stored secret cannot be decrypted: is this the master key it was saved with?"
                )
            })?;
        Ok(String::from_utf8(plain)?)
    }
}

/// Payloads at rest (event snapshots, attempt bodies) are sealed the same way as secrets.
impl carehook_store::Sealer for Vault {
    fn seal(&self, plain: &str) -> String {
        Vault::seal(self, plain)
    }

    fn open(&self, sealed: &str) -> Result<String, String> {
        self.open_secret(sealed).map_err(|e| format!("{e:#}"))
    }

    fn search_term(&self, kind: &str, value: &str) -> String {
        self.search_index.pseudonym(kind, value)
    }
}

/// Where the master key came from, for the start-up log.
#[derive(Debug, Clone)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Created(PathBuf),
}

fn decode_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let raw = B64
        .decode(text.trim())
        .context("the master key must be base64 of 32 bytes (e.g. `openssl rand -base64 32`)")?;
    raw.try_into().map_err(|raw: Vec<u8>| {
        anyhow::anyhow!("the master key must be 32 bytes, not {}", raw.len())
    })
}

/// Writes a new file only its owner may read (0600); refuses to overwrite.
pub fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_do_not_show() {
        let v = Vault::from_key(&[7; 32]);
        let sealed = v.seal("hunter2-🏥");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, v.seal("hunter2-🏥"), "a fresh nonce per seal");
        assert_eq!(v.open_secret(&sealed).unwrap(), "hunter2-🏥");
        assert!(Vault::from_key(&[8; 32]).open_secret(&sealed).is_err());
        assert_eq!(v.seal(""), "");
    }

    #[test]
    fn a_key_file_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("carehook.key");
        let (v1, src) = Vault::open(None, &path).unwrap();
        assert!(matches!(src, KeySource::Created(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (v2, src) = Vault::open(None, &path).unwrap();
        assert!(matches!(src, KeySource::File(_)));
        assert_eq!(v2.open_secret(&v1.seal("x")).unwrap(), "x");
        assert!(Vault::open(Some("short"), &path).is_err());
    }
}
