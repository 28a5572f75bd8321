//! Signed checkpoints of the audit chains: the head of a workspace's chain (its `seq` and hash)
//! at a moment, signed with an Ed25519 key kept outside the database.
//!
//! A hash chain shows an edited, deleted or reordered entry, but not a chain cut short at its
//! newest entries, a database restored from an older backup, or a chain rebuilt from scratch:
//! each is a consistent chain again. A checkpoint kept elsewhere (a file, a chat channel the
//! database cannot reach) pins the head: as long as the chain still holds that hash at that
//! `seq`, everything up to it is what was signed. The same idea as CloudTrail's signed digest
//! files and Certificate Transparency's signed tree heads.
//!
//! The signed message is a short text (see [`Checkpoint::message`]), so that any Ed25519 tool
//! can check a checkpoint without Vigilo.

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::audit::GENESIS_HASH;
use crate::ids::WorkspaceId;

/// The first line of every signed message: the format and its version.
pub const FORMAT: &str = "vigilo-audit-checkpoint-v1";

/// A signed head of one workspace's audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// Its slug when signed (informative; signed too).
    pub slug: String,
    /// The `seq` of the chain's last entry (0 for an empty chain).
    pub seq: u64,
    /// That entry's hash ([`GENESIS_HASH`] for an empty chain).
    pub head: String,
    /// When the checkpoint was made.
    pub at: DateTime<Utc>,
    /// The Ed25519 public key that signed it, lowercase hex (32 bytes).
    pub public_key: String,
    /// The signature of [`Checkpoint::message`], lowercase hex (64 bytes).
    pub signature: String,
}

/// Why a checkpoint cannot be trusted as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The public key or signature is not well-formed hex of the right length.
    #[error("the checkpoint of {slug} is malformed: {what}")]
    Malformed {
        /// The workspace's slug as written.
        slug: String,
        /// What is wrong.
        what: String,
    },
    /// The signature does not match the checkpoint's contents: it was edited after signing, or
    /// signed by another key than the one it names.
    #[error(
        "the checkpoint of {slug} at seq {seq} does not match its signature: it was edited after signing"
    )]
    BadSignature {
        /// The workspace's slug as written.
        slug: String,
        /// The seq as written.
        seq: u64,
    },
    /// Signed by a key other than the one the auditor trusts.
    #[error("the checkpoint of {slug} is signed by key {found}, not by the trusted key {trusted}")]
    UntrustedKey {
        /// The workspace's slug as written.
        slug: String,
        /// The key that signed it.
        found: String,
        /// The key the auditor trusts.
        trusted: String,
    },
}

impl Checkpoint {
    /// The exact bytes signed: the format line, then one `name value` line per field.
    pub fn message(
        workspace: WorkspaceId,
        slug: &str,
        seq: u64,
        head: &str,
        at: DateTime<Utc>,
    ) -> Vec<u8> {
        format!(
            "{FORMAT}\nworkspace {workspace}\nslug {slug}\nseq {seq}\nhead {head}\nat {}\n",
            at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
        .into_bytes()
    }

    /// Signs the head `(seq, head)` of `workspace`'s chain at `at`. An empty chain is signed as
    /// seq 0 with [`GENESIS_HASH`].
    pub fn sign(
        key: &SigningKey,
        workspace: WorkspaceId,
        slug: &str,
        head: Option<(u64, &str)>,
        at: DateTime<Utc>,
    ) -> Checkpoint {
        let (seq, head) = head.unwrap_or((0, GENESIS_HASH));
        let at = crate::clock::to_micros(at);
        let signature = key.sign(&Self::message(workspace, slug, seq, head, at));
        Checkpoint {
            workspace,
            slug: slug.to_owned(),
            seq,
            head: head.to_owned(),
            at,
            public_key: hex::encode(key.verifying_key().as_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks the signature against the key the checkpoint names and, when given, that this is
    /// the key the auditor trusts (a checkpoint signed by another key proves nothing).
    pub fn check_signature(&self, trusted: Option<&VerifyingKey>) -> Result<(), CheckpointError> {
        let malformed = |what: &str| CheckpointError::Malformed {
            slug: self.slug.clone(),
            what: what.to_owned(),
        };
        let key = decode_key(&self.public_key).map_err(|w| malformed(&w))?;
        if let Some(trusted) = trusted
            && trusted != &key
        {
            return Err(CheckpointError::UntrustedKey {
                slug: self.slug.clone(),
                found: self.public_key.clone(),
                trusted: hex::encode(trusted.as_bytes()),
            });
        }
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("the signature is not 64 bytes of hex"))?;
        let signature = Signature::from_bytes(&bytes);
        let message = Self::message(self.workspace, &self.slug, self.seq, &self.head, self.at);
        key.verify(&message, &signature)
            .map_err(|_| CheckpointError::BadSignature {
                slug: self.slug.clone(),
                seq: self.seq,
            })
    }
}

/// An Ed25519 public key from lowercase or uppercase hex (32 bytes).
pub fn decode_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the public key is not 32 bytes of hex".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "the public key is not an Ed25519 point".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn signed() -> Checkpoint {
        Checkpoint::sign(
            &key(7),
            WorkspaceId::new(),
            "acme",
            Some((42, &"ab".repeat(32))),
            Utc::now(),
        )
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_survives_json() {
        let c = signed();
        c.check_signature(None).unwrap();
        c.check_signature(Some(&key(7).verifying_key())).unwrap();
        let back: Checkpoint = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        back.check_signature(None).unwrap();
    }

    #[test]
    fn every_edit_after_signing_is_rejected() {
        let c = signed();
        let mut edits: Vec<Checkpoint> = Vec::new();
        let mut e = c.clone();
        e.seq += 1;
        edits.push(e);
        let mut e = c.clone();
        e.head = "cd".repeat(32);
        edits.push(e);
        let mut e = c.clone();
        e.at += chrono::Duration::seconds(1);
        edits.push(e);
        let mut e = c.clone();
        e.slug = "other".into();
        edits.push(e);
        let mut e = c.clone();
        e.workspace = WorkspaceId::new();
        edits.push(e);
        for e in edits {
            assert!(
                matches!(
                    e.check_signature(None),
                    Err(CheckpointError::BadSignature { .. })
                ),
                "{e:?}"
            );
        }
        // Re-signed by another key: valid on its own, but not the trusted key.
        let mut forged = Checkpoint::sign(&key(9), c.workspace, "acme", Some((42, &c.head)), c.at);
        forged.check_signature(None).unwrap();
        assert!(matches!(
            forged.check_signature(Some(&key(7).verifying_key())),
            Err(CheckpointError::UntrustedKey { .. })
        ));
        // Another key's name on this signature: refused.
        forged.signature = c.signature.clone();
        assert!(forged.check_signature(None).is_err());
        let mut bad = c.clone();
        bad.signature = "zz".into();
        assert!(matches!(
            bad.check_signature(None),
            Err(CheckpointError::Malformed { .. })
        ));
    }
}
