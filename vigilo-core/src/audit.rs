//! The audit trail: one entry per state change, chained per workspace by SHA-256 so that an
//! edited, deleted or reordered entry is detected by [`Verifier`].
//!
//! The hash covers every field of an entry (canonical JSON: struct fields in declaration order,
//! object keys sorted) plus the previous entry's hash. Stores assign `seq` and call [`seal`]
//! inside the same transaction as the change, so entry and change are atomic.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{AuditId, Key, UserId, WorkspaceId};

/// The hash the first entry of a workspace chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records an entry links to, so it can be found from either side (lineage queries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLinks {
    /// A runbook involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<Key>,
    /// The runbook version involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_version: Option<u32>,
    /// A change involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Key>,
    /// An incident involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Key>,
    /// An execution involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Key>,
}

/// The surface a change was made through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// The `vigilo` command line.
    Cli,
    /// The Slack app.
    Slack,
    /// The console chat in a terminal.
    Console,
    /// A program embedding `vigilo-core`.
    Api,
}

impl Surface {
    /// The name stored in entries (`cli`, `slack`, `console`, `api`).
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Cli => "cli",
            Surface::Slack => "slack",
            Surface::Console => "console",
            Surface::Api => "api",
        }
    }
}

/// Who acted, really: the surface and the principal behind the acting user. The acting user is
/// who the surface says is acting; the principal is what the surface itself authenticated (for
/// Slack the team and user id of a signed request; for the CLI the operating-system user and
/// host, since `--as` is a claim made by whoever holds the database credentials; for an
/// embedding program whatever string it passes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// The surface.
    pub surface: Surface,
    /// The principal behind the acting user, as the surface knows it.
    pub principal: String,
}

impl Origin {
    /// An origin on `surface` with `principal`.
    pub fn new(surface: Surface, principal: impl Into<String>) -> Self {
        Self {
            surface,
            principal: principal.into(),
        }
    }
}

/// What the service knows of an entry before the store seals it into the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditDraft {
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// Who did it (`None` for the system, e.g. bootstrap).
    pub actor: Option<UserId>,
    /// The actor's handle at that time, so the trail reads without joins.
    pub actor_handle: Option<String>,
    /// Dotted verb, e.g. `runbook.edited`, `execution.step_done`.
    pub action: String,
    /// The target: a key (`RB-00001`), a handle or a slug.
    pub target: String,
    /// Free-form details (versions, notes, reasons).
    pub details: serde_json::Value,
    /// Related records.
    pub links: AuditLinks,
    /// Where the change came from (entries of format 2; `None` for the system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// An entry of the chain as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Row id.
    pub id: AuditId,
    /// The workspace whose chain holds it.
    pub workspace: WorkspaceId,
    /// 1, 2, 3, … per workspace, without gaps.
    pub seq: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Option<UserId>,
    /// Their handle.
    pub actor_handle: Option<String>,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Details.
    pub details: serde_json::Value,
    /// Related records.
    pub links: AuditLinks,
    /// Where the change came from: present in entries of format 2, absent in entries written
    /// before surfaces and principals were recorded (format 1). See [`compute_hash`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The previous entry's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    workspace: &'a WorkspaceId,
    seq: u64,
    id: &'a AuditId,
    at: String,
    actor: &'a Option<UserId>,
    actor_handle: &'a Option<String>,
    action: &'a str,
    target: &'a str,
    details: &'a serde_json::Value,
    links: &'a AuditLinks,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: &'a Option<Origin>,
    prev_hash: &'a str,
}

impl<'a> Hashed<'a> {
    /// What is hashed of `entry` as entry number `seq` after an entry hashed `prev_hash`.
    fn of(entry: &'a AuditEntry, seq: u64, prev_hash: &'a str) -> Self {
        Hashed {
            workspace: &entry.workspace,
            seq,
            id: &entry.id,
            at: entry.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: &entry.actor,
            actor_handle: &entry.actor_handle,
            action: &entry.action,
            target: &entry.target,
            details: &entry.details,
            links: &entry.links,
            origin: &entry.origin,
            prev_hash,
        }
    }
}

/// Computes the hash of `entry` from its fields (ignoring its stored `hash`).
///
/// The hashed document is versioned by its fields: format 1 (entries without an origin) is the
/// document of the first release, byte for byte, so entries written before origins existed
/// still verify; format 2 adds the `origin` object between `links` and `prev_hash`.
pub fn compute_hash(entry: &AuditEntry) -> String {
    let h = Hashed::of(entry, entry.seq, &entry.prev_hash);
    let mut w = HashWriter(Sha256::new());
    // Serialising plain structs, strings and a serde_json::Value into a hasher cannot fail.
    let _ = serde_json::to_writer(&mut w, &h);
    hex::encode(w.0.finalize())
}

/// The lowercase hex SHA-256 of `bytes`.
fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Feeds serialised bytes straight into a SHA-256 state (no intermediate buffer).
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An entry's hash input with its two chain fields, `seq` and `prev_hash`, left open.
///
/// For a store that seals entries inside its database, in the same statement that reads the
/// chain head (one round trip instead of a locked read, then a write): the hash of `entry`
/// sealed as number `seq` after an entry hashed `prev_hash` is the lowercase hex SHA-256 of
/// `head ‖ seq (decimal) ‖ middle ‖ prev_hash ‖ tail`, exactly what [`compute_hash`] gives for
/// the entry with those two fields filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTemplate {
    /// The bytes before `seq`.
    pub head: String,
    /// The bytes between `seq` and `prev_hash`.
    pub middle: String,
    /// The bytes after `prev_hash`.
    pub tail: String,
}

/// The [`HashTemplate`] of `entry` (its own `seq`, `prev_hash` and `hash` are ignored), or
/// `None` if the template does not reproduce [`compute_hash`] (checked on the entry sealed as
/// the first of its chain), so that a change to the hashed fields can never let a store seal
/// an entry with a wrong hash.
pub fn hash_template(entry: &AuditEntry) -> Option<HashTemplate> {
    let text = serde_json::to_string(&Hashed::of(entry, 0, "")).ok()?;
    // `workspace` (an id, no quotes or escapes inside) comes first, then `seq`; `prev_hash`
    // comes last, so both open fields sit at fixed places of the text.
    const SEQ: &str = "\"seq\":";
    let at = text.find(SEQ)?;
    let (head, rest) = text.split_at(at + SEQ.len());
    let middle = rest.strip_prefix('0')?.strip_suffix("\"}")?;
    let template = HashTemplate {
        head: head.to_owned(),
        middle: middle.to_owned(),
        tail: "\"}".to_owned(),
    };
    let mut first = entry.clone();
    first.seq = 1;
    first.prev_hash = GENESIS_HASH.to_owned();
    let filled = format!(
        "{}1{}{GENESIS_HASH}{}",
        template.head, template.middle, template.tail
    );
    (hex_sha256(filled.as_bytes()) == compute_hash(&first)).then_some(template)
}

/// Turns a draft into the next entry of the chain after `prev` (`None` for the first entry).
pub fn seal(workspace: WorkspaceId, draft: AuditDraft, prev: Option<(u64, &str)>) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash.to_owned()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut entry = AuditEntry {
        id: AuditId::new(),
        workspace,
        seq,
        at: draft.at,
        actor: draft.actor,
        actor_handle: draft.actor_handle,
        action: draft.action,
        target: draft.target,
        details: draft.details,
        links: draft.links,
        origin: draft.origin,
        prev_hash,
        hash: String::new(),
    };
    entry.hash = compute_hash(&entry);
    entry
}

/// The columns a store keeps beside an entry's document for its queries (`actor`, `target`,
/// `at`, the links…), as the store read them back. Queries filter on these, not on the hashed
/// document, so an edit of a column alone would change what a filter answers while the chain
/// still verifies: [`AuditEntry::check_stored`] compares them with the hashed entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredColumns {
    /// `workspace_id`.
    pub workspace: String,
    /// `seq`.
    pub seq: i64,
    /// `id`.
    pub id: String,
    /// `at`, in microseconds since the Unix epoch.
    pub at_micros: i64,
    /// `actor`.
    pub actor: Option<String>,
    /// `action`.
    pub action: String,
    /// `target`.
    pub target: String,
    /// `link_runbook`.
    pub link_runbook: Option<String>,
    /// `link_change`.
    pub link_change: Option<String>,
    /// `link_incident`.
    pub link_incident: Option<String>,
    /// `link_execution`.
    pub link_execution: Option<String>,
    /// `hash`.
    pub hash: String,
    /// The `prev_hash` of the entry after this one in the store (`seq + 1`), if there is one.
    pub next_prev_hash: Option<String>,
    /// The highest `seq` stored in the workspace.
    pub head_seq: i64,
    /// The stored document itself, when the store keeps one: a document of format 3 (see
    /// [`stored_document`]) is checked by hashing its own bytes, without re-serialising it.
    pub document: Option<String>,
}

/// The `prev_hash` of an entry's stored document, read from its fixed place at the end of the
/// document without parsing it (serde writes `…"prev_hash":"<64 hex>","hash":"<64 hex>"}`
/// last): how far from the end, in characters, it starts.
pub const PREV_HASH_FROM_END: usize = 140;

impl AuditEntry {
    /// Checks an entry read back from a store: its document must match its own hash, and every
    /// column stored beside it must say what the hashed entry says. The first difference is
    /// reported as tampering, naming the column and both values.
    pub fn check_stored(&self, stored: &StoredColumns) -> Result<(), Tamper> {
        let tamper = |problem: String| Tamper {
            seq: self.seq,
            problem,
        };
        let hash_ok = match stored.document.as_deref() {
            Some(doc) if is_format_3(doc) => document_hash_is(doc, &self.hash),
            _ => compute_hash(self) == self.hash,
        };
        if !hash_ok {
            return Err(tamper("its contents do not match its hash (edited)".into()));
        }
        // Compared with the canonical text (what queries bind), mostly without allocating; the
        // message is built only for a difference.
        let uuid_is = |found: &str, want: uuid::Uuid| {
            let mut buf = uuid::Uuid::encode_buffer();
            found == want.hyphenated().encode_lower(&mut buf)
        };
        let opt_key_is = |found: &Option<String>, want: Option<Key>| match (found, want) {
            (None, None) => true,
            (Some(f), Some(w)) => key_text_is(f, w),
            _ => false,
        };
        let actor_is = match (&stored.actor, self.actor) {
            (None, None) => true,
            (Some(f), Some(w)) => uuid_is(f, w.0),
            _ => false,
        };
        let micros = self.at.timestamp_micros();
        let columns: [(&str, bool); 12] = [
            ("workspace_id", uuid_is(&stored.workspace, self.workspace.0)),
            (
                "seq",
                u64::try_from(stored.seq).is_ok_and(|s| s == self.seq),
            ),
            ("id", uuid_is(&stored.id, self.id.0)),
            ("at", stored.at_micros == micros),
            ("actor", actor_is),
            ("action", stored.action == self.action),
            ("target", stored.target == self.target),
            (
                "link_runbook",
                opt_key_is(&stored.link_runbook, self.links.runbook),
            ),
            (
                "link_change",
                opt_key_is(&stored.link_change, self.links.change),
            ),
            (
                "link_incident",
                opt_key_is(&stored.link_incident, self.links.incident),
            ),
            (
                "link_execution",
                opt_key_is(&stored.link_execution, self.links.execution),
            ),
            ("hash", stored.hash == self.hash),
        ];
        if let Some((column, _)) = columns.iter().find(|(_, same)| !same) {
            let key = |k: Option<Key>| k.map(|k| k.to_string());
            let (found, hashed) = match *column {
                "workspace_id" => (stored.workspace.clone(), self.workspace.to_string()),
                "seq" => (stored.seq.to_string(), self.seq.to_string()),
                "id" => (stored.id.clone(), self.id.to_string()),
                "at" => (stored.at_micros.to_string(), micros.to_string()),
                "actor" => (
                    show(&stored.actor),
                    show(&self.actor.map(|a| a.to_string())),
                ),
                "action" => (stored.action.clone(), self.action.clone()),
                "target" => (stored.target.clone(), self.target.clone()),
                "link_runbook" => (show(&stored.link_runbook), show(&key(self.links.runbook))),
                "link_change" => (show(&stored.link_change), show(&key(self.links.change))),
                "link_incident" => (show(&stored.link_incident), show(&key(self.links.incident))),
                "link_execution" => (
                    show(&stored.link_execution),
                    show(&key(self.links.execution)),
                ),
                _ => (stored.hash.clone(), self.hash.clone()),
            };
            return Err(tamper(format!(
                "its stored column `{column}` says {found} but the hashed entry says {hashed} (edited outside Vigilo)"
            )));
        }
        Ok(())
    }

    /// Checks an entry's place in the chain as stored: unless it is the last, the entry after
    /// it must chain to this very hash, so an entry rewritten with a recomputed hash, or one
    /// whose successor was deleted, is never answered as genuine. The problem is named at the
    /// entry after it (missing, or chaining elsewhere), as [`Verifier`] names it. The last
    /// entry has no successor yet: checkpoints cover it. Run after [`Self::check_stored`] on
    /// every entry of a page, so a row's own edits are named first.
    pub fn check_successor(&self, stored: &StoredColumns) -> Result<(), Tamper> {
        let next = self.seq + 1;
        if i64::try_from(self.seq).is_ok_and(|s| s < stored.head_seq) {
            match &stored.next_prev_hash {
                None => {
                    return Err(Tamper {
                        seq: next,
                        problem: format!(
                            "entry {next} is missing (deleted); entry {} before it is stored",
                            self.seq
                        ),
                    });
                }
                Some(p) if p != &self.hash => {
                    return Err(Tamper {
                        seq: next,
                        problem: format!(
                            "its previous-hash does not match entry {} before it (entry {} was rewritten, or this one was replaced)",
                            self.seq, self.seq
                        ),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// How an entry is stored (format 3): the exact text its hash covers — the canonical JSON of
/// [`compute_hash`], `{"workspace":…,"prev_hash":"…"}` — with `,"hash":"<hash>"` added before
/// the closing brace. It decodes as an [`AuditEntry`] (the same fields, in another order), and a
/// read checks it by hashing its own bytes minus that suffix, with no re-serialisation.
/// Documents of earlier formats (`{"id":…`, the entry serialised) are still read and checked
/// by recomputing the hash.
pub fn stored_document(entry: &AuditEntry) -> String {
    let h = Hashed::of(entry, entry.seq, &entry.prev_hash);
    // Serialising plain structs, strings and a serde_json::Value cannot fail.
    let mut text = serde_json::to_string(&h).unwrap_or_default();
    text.pop(); // the closing brace
    text.push_str(",\"hash\":\"");
    text.push_str(&entry.hash);
    text.push_str("\"}");
    text
}

/// Whether a stored document is of format 3 ([`stored_document`]).
pub fn is_format_3(doc: &str) -> bool {
    doc.starts_with("{\"workspace\":")
}

/// Whether the format-3 document `doc` ends with `,"hash":"<hash>"}` and the text before that
/// suffix, closed, hashes to `hash`.
fn document_hash_is(doc: &str, hash: &str) -> bool {
    let suffix_len = ",\"hash\":\"".len() + hash.len() + "\"}".len();
    let Some(body) = doc
        .len()
        .checked_sub(suffix_len)
        .and_then(|at| doc.get(..at))
    else {
        return false;
    };
    let suffix = &doc[body.len()..];
    if !(suffix.starts_with(",\"hash\":\"")
        && suffix[9..].starts_with(hash)
        && suffix.ends_with("\"}"))
    {
        return false;
    }
    let mut h = Sha256::new();
    h.update(body.as_bytes());
    h.update(b"}");
    let mut hex_digest = [0u8; 64];
    hex::encode_to_slice(h.finalize(), &mut hex_digest).is_ok() && hex_digest == hash.as_bytes()
}

/// Whether `text` is the canonical text of `key` (`RB-00042`: prefix, dash, at least five
/// digits), compared without building it.
fn key_text_is(text: &str, key: Key) -> bool {
    let Some(digits) = text
        .strip_prefix(key.kind.prefix())
        .and_then(|t| t.strip_prefix('-'))
    else {
        return false;
    };
    let width = key
        .number
        .checked_ilog10()
        .map_or(1, |l| l as usize + 1)
        .max(5);
    digits.len() == width
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>() == Ok(key.number)
}

/// A column value as a tampering message shows it.
fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "NULL".into())
}

/// How the chain was found broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {problem}")]
pub struct Tamper {
    /// The first entry found wrong (or the position where one is missing).
    pub seq: u64,
    /// What is wrong.
    pub problem: String,
}

/// Checks a chain entry by entry, in `seq` order, so a store can stream a million entries.
#[derive(Clone, Debug, Default)]
pub struct Verifier {
    last: Option<(u64, String)>,
    count: u64,
}

impl Verifier {
    /// A verifier expecting entry 1 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), Tamper> {
        self.push_with(e, true)
    }

    /// Checks the next entry's place in the chain (`seq`, previous hash) but not its own hash:
    /// for entries a [`crate::store::Store`] read has already checked against their hash (every
    /// store's `audit` does), so a full verification hashes each entry once.
    pub fn push_hash_checked(&mut self, e: &AuditEntry) -> Result<(), Tamper> {
        self.push_with(e, false)
    }

    fn push_with(&mut self, e: &AuditEntry, hash: bool) -> Result<(), Tamper> {
        let expected_seq = self.last.as_ref().map_or(1, |(s, _)| s + 1);
        let expected_prev = self.last.as_ref().map_or(GENESIS_HASH, |(_, h)| h.as_str());
        if e.seq > expected_seq {
            return Err(Tamper {
                seq: expected_seq,
                problem: format!(
                    "entry {expected_seq} is missing (the next entry is {})",
                    e.seq
                ),
            });
        }
        if e.seq < expected_seq {
            return Err(Tamper {
                seq: e.seq,
                problem: format!(
                    "entry {} appears out of order after entry {}",
                    e.seq,
                    expected_seq - 1
                ),
            });
        }
        if e.prev_hash != expected_prev {
            return Err(Tamper {
                seq: e.seq,
                problem: "its previous-hash does not match the entry before it (deleted, replaced or reordered)".into(),
            });
        }
        if hash && compute_hash(e) != e.hash {
            return Err(Tamper {
                seq: e.seq,
                problem: "its contents do not match its hash (edited)".into(),
            });
        }
        self.last = Some((e.seq, e.hash.clone()));
        self.count += 1;
        Ok(())
    }

    /// How many entries were verified.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of the last verified entry: publish it elsewhere to detect truncation later.
    pub fn head(&self) -> Option<&str> {
        self.last.as_ref().map(|(_, h)| h.as_str())
    }
}

/// Verifies a whole chain held in memory.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, Tamper> {
    let mut v = Verifier::new();
    for e in entries {
        v.push(e)?;
    }
    Ok(v.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let ws = WorkspaceId::new();
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let draft = AuditDraft {
                at: DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                actor: None,
                actor_handle: Some("alice".into()),
                action: "runbook.edited".into(),
                target: format!("RB-{i:05}"),
                details: serde_json::json!({"version": i, "b": [1, 2]}),
                links: AuditLinks::default(),
                origin: (i % 2 == 1).then(|| Origin::new(Surface::Cli, "ops@host")),
            };
            let prev = out.last().map(|e| (e.seq, e.hash.as_str()));
            let e = seal(ws, draft, prev);
            out.push(e);
        }
        out
    }

    #[test]
    fn a_hash_template_filled_in_gives_the_entry_hash() {
        let entries = chain(3);
        for e in &entries {
            let t = hash_template(e).unwrap();
            let input = format!("{}{}{}{}{}", t.head, e.seq, t.middle, e.prev_hash, t.tail);
            let digest = Sha256::digest(input.as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, e.hash, "entry {}", e.seq);
        }
        // Text that needs escaping, an actor, links and nested details change nothing.
        let mut e = entries[2].clone();
        e.actor = Some(UserId::new());
        e.actor_handle = Some("o\"brien \\ \u{1F600} \"seq\":7".into());
        e.details = serde_json::json!({"seq": 0, "prev_hash": "", "z": {"a": [null, 1.5]}});
        e.links.execution = Some("EX-00042".parse().unwrap());
        e.seq = 12_345_678_901;
        e.hash = compute_hash(&e);
        let t = hash_template(&e).unwrap();
        let input = format!("{}{}{}{}{}", t.head, e.seq, t.middle, e.prev_hash, t.tail);
        let hex: String = Sha256::digest(input.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, e.hash);
    }

    #[test]
    fn format_1_entries_hash_as_before_and_an_origin_is_covered() {
        // An entry of the first release (no origin): its hash is fixed forever (this value was
        // computed independently from the first release's document layout).
        let e = AuditEntry {
            id: AuditId(uuid::Uuid::from_u128(7)),
            workspace: WorkspaceId(uuid::Uuid::from_u128(9)),
            seq: 3,
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            actor: None,
            actor_handle: Some("alice".into()),
            action: "runbook.edited".into(),
            target: "RB-00001".into(),
            details: serde_json::json!({"version": 2}),
            links: AuditLinks::default(),
            origin: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        assert_eq!(
            compute_hash(&e),
            "5c97c3aaf8d148070e246c730ee1e38b73d6d37f98a59564906602415fb95f60"
        );
        // Format 2: the origin is hashed, so moving it to another surface breaks the chain.
        let mut chain = chain(2);
        chain[1].origin = Some(Origin::new(Surface::Slack, "T1/U1"));
        assert_eq!(verify(&chain).unwrap_err().seq, 2);
    }

    #[test]
    fn the_prev_hash_sits_at_its_fixed_place_at_the_end_of_a_stored_document() {
        for mut e in chain(3) {
            e.details = serde_json::json!({ "prev_hash": "x", "note": "Zoë \u{1F680} \"q\"" });
            e.origin = Some(Origin::new(Surface::Slack, "T1/U1"));
            let doc = serde_json::to_string(&e).unwrap();
            let chars: Vec<char> = doc.chars().collect();
            let start = chars.len() - PREV_HASH_FROM_END;
            let found: String = chars[start..start + 64].iter().collect();
            assert_eq!(found, e.prev_hash);
        }
    }

    #[test]
    fn a_format_3_document_is_the_hashed_text_and_decodes_as_its_entry() {
        for e in chain(3) {
            let doc = stored_document(&e);
            assert!(is_format_3(&doc));
            let back: AuditEntry = serde_json::from_str(&doc).unwrap();
            assert_eq!(back, e);
            assert!(document_hash_is(&doc, &e.hash));
            // The text the hash covers is exactly the canonical document.
            let body = &doc[..doc.len() - 75];
            assert_eq!(hex_sha256(format!("{body}}}").as_bytes()), compute_hash(&e));
            // Any edit of the bytes, even one that keeps the JSON's meaning, is caught.
            let spaced = doc.replacen(",", ", ", 1);
            assert!(!document_hash_is(&spaced, &e.hash));
            let other = doc.replacen("runbook.edited", "runbook.deleted", 1);
            assert!(!document_hash_is(&other, &e.hash));
            // The previous hash sits at its fixed place from the end, as in earlier formats.
            let chars: Vec<char> = doc.chars().collect();
            let start = chars.len() - PREV_HASH_FROM_END;
            let found: String = chars[start..start + 64].iter().collect();
            assert_eq!(found, e.prev_hash);
        }
    }

    #[test]
    fn key_text_is_the_canonical_text_only() {
        for n in [1, 42, 99_999, 100_000, 1_234_567] {
            let key = Key::new(crate::ids::KeyKind::Runbook, n);
            assert!(key_text_is(&key.to_string(), key), "{key}");
            assert!(!key_text_is(&key.to_string().to_lowercase(), key));
            assert!(!key_text_is(&format!("RB-0{}", &key.to_string()[3..]), key));
            assert!(!key_text_is(&format!("EX-{}", &key.to_string()[3..]), key));
        }
        let key = Key::new(crate::ids::KeyKind::Runbook, 7);
        for bad in ["RB-7", "RB-0007", "RB-+0007", "RB-00007 ", "RB00007", ""] {
            assert!(!key_text_is(bad, key), "{bad}");
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)).unwrap(), 5);
        assert_eq!(verify(&[]).unwrap(), 0);
    }

    #[test]
    fn an_edit_is_named() {
        let mut c = chain(5);
        c[2].target = "RB-99999".into();
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }

    #[test]
    fn a_deletion_is_named() {
        let mut c = chain(5);
        c.remove(1);
        let t = verify(&c).unwrap_err();
        assert_eq!(t.seq, 2);
        assert!(t.problem.contains("missing"));
    }

    #[test]
    fn a_reorder_is_named() {
        let mut c = chain(5);
        c.swap(2, 3);
        let t = verify(&c).unwrap_err();
        assert_eq!(t.seq, 3, "{t}");
    }

    #[test]
    fn a_renumbered_deletion_is_named() {
        let mut c = chain(5);
        c.remove(2);
        for e in c.iter_mut().skip(2) {
            e.seq -= 1;
        }
        assert_eq!(verify(&c).unwrap_err().seq, 3);
    }
}
