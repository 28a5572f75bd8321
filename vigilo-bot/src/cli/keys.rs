//! Audit checkpoint keys on disk: an Ed25519 signing key in a PKCS#8 PEM file that only its
//! owner may read (mode 0600), never in the database, and its public half beside it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use super::CliError;

/// Where the public key of `key_file` is written: `FILE.pub`.
pub fn public_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates a key from the operating system's randomness and writes it to `path` (created
/// with mode 0600, never overwritten) and its public key, as hex, to `path.pub`. Returns the
/// public key in hex.
pub fn generate(path: &Path) -> Result<String, CliError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| CliError::Internal(format!("no randomness from the system: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CliError::Internal(format!("cannot encode the key: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Refused(format!(
            "{} exists; a key is never overwritten (checkpoints signed with it could no longer be checked): choose another --out",
            path.display()
        )),
        _ => CliError::Refused(format!("cannot create {}: {e}", path.display())),
    })?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    let public = hex::encode(key.verifying_key().as_bytes());
    std::fs::write(public_key_path(path), format!("{public}\n"))?;
    Ok(public)
}

/// Reads the signing key at `path`, refusing a file that others may read (as ssh does).
pub fn read(path: &Path) -> Result<SigningKey, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::NotFound(format!(
            "cannot read the key {}: {e}; create one with `vigilo audit keygen --out {}`",
            path.display(),
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::Refused(format!(
                "the key {} can be read by others (mode {mode:o}); `chmod 600 {}` first",
                path.display(),
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Refused(format!("cannot read the key {}: {e}", path.display())))?;
    SigningKey::from_pkcs8_pem(&text).map_err(|_| {
        CliError::Refused(format!(
            "{} is not an Ed25519 key in PKCS#8 PEM (made by `vigilo audit keygen`)",
            path.display()
        ))
    })
}

/// The public key an auditor trusts: hex, or a file holding it (such as `FILE.pub`).
pub fn trusted(arg: &str) -> Result<ed25519_dalek::VerifyingKey, CliError> {
    let text = match std::fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) => arg.to_owned(),
    };
    vigilo_core::checkpoint::decode_key(text.trim())
        .map_err(|e| CliError::Usage(format!("--trusted-key {arg}: {e}")))
}
