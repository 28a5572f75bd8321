//! Step-level diffs between two runbook versions.
//!
//! [`diff`] compares two [`RunbookBody`]s and returns a [`RunbookDiff`]: which runbook fields
//! changed (title, description, category) and, for every step, whether it was added, removed,
//! changed, moved or left alone. Steps are aligned by their stable [`StepId`], never by title
//! or position, so a renamed step is "changed" and a reordered one is "moved".
//!
//! A step counts as *moved* when it is in both versions but not in the longest common
//! subsequence of the two id sequences: moving one step from the end to the start marks exactly
//! that step as moved, not every step it jumped over.
//!
//! Changed text fields carry line-level markers computed with [`similar::TextDiff::from_lines`];
//! scalar fields (estimate, flags) carry one deleted line with the old value and one inserted
//! line with the new. The result is plain data (serde both ways), rendered for people by
//! [`super::render`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use similar::{Algorithm, ChangeTag, DiffOp, TextDiff, capture_diff_slices};

use super::{RunbookBody, Step};
use crate::ids::StepId;

/// Time budget for all line diffs of one [`diff`] call. Line diffs are exact within it; past it
/// (only reachable with pathological texts near the 64 KiB limit) `similar` falls back to a
/// correct but possibly non-minimal diff, so a diff never hangs.
const TEXT_DIFF_BUDGET: Duration = Duration::from_millis(250);

/// What a [`DiffLine`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineTag {
    /// The line is in both versions (context).
    Equal,
    /// The line is only in the new version.
    Insert,
    /// The line is only in the old version.
    Delete,
}

impl LineTag {
    /// The marker a unified diff prints before such a line: `' '`, `'+'` or `'-'`.
    pub fn marker(self) -> char {
        match self {
            LineTag::Equal => ' ',
            LineTag::Insert => '+',
            LineTag::Delete => '-',
        }
    }
}

/// One line of a field diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffLine {
    /// Equal, inserted or deleted.
    pub tag: LineTag,
    /// 1-based line number in the old text; `None` for an inserted line.
    pub old_line: Option<u32>,
    /// 1-based line number in the new text; `None` for a deleted line.
    pub new_line: Option<u32>,
    /// The line without its line ending (`\n`, `\r\n` or `\r`).
    pub text: String,
}

/// The changes of one field, line by line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The field name as in [`Step`] or [`RunbookBody`], e.g. `description` or `est_minutes`.
    pub field: String,
    /// Every line of the field in both versions, in order: equal lines included, so a renderer
    /// can choose how much context to show.
    pub lines: Vec<DiffLine>,
}

impl FieldDiff {
    /// Line diff of two texts (markdown, title or label).
    fn text(field: &str, old: &str, new: &str, deadline: Option<Instant>) -> Self {
        let mut config = TextDiff::configure();
        config.algorithm(Algorithm::Myers);
        if let Some(deadline) = deadline {
            config.deadline(deadline);
        }
        let diff = config.diff_lines(old, new);
        let lines = diff
            .iter_all_changes()
            .map(|c| DiffLine {
                tag: match c.tag() {
                    ChangeTag::Equal => LineTag::Equal,
                    ChangeTag::Insert => LineTag::Insert,
                    ChangeTag::Delete => LineTag::Delete,
                },
                old_line: c.old_index().map(line_number),
                new_line: c.new_index().map(line_number),
                text: strip_line_ending(c.value()).to_owned(),
            })
            .collect();
        FieldDiff {
            field: field.to_owned(),
            lines,
        }
    }

    /// A scalar change: the old value deleted, the new one inserted.
    fn scalar(field: &str, old: String, new: String) -> Self {
        FieldDiff {
            field: field.to_owned(),
            lines: vec![
                DiffLine {
                    tag: LineTag::Delete,
                    old_line: Some(1),
                    new_line: None,
                    text: old,
                },
                DiffLine {
                    tag: LineTag::Insert,
                    old_line: None,
                    new_line: Some(1),
                    text: new,
                },
            ],
        }
    }

    /// A single scalar value that is only on one side (content of an added or removed step).
    fn one_sided_scalar(field: &str, value: String, side: Side) -> Self {
        let line = match side {
            Side::New => DiffLine {
                tag: LineTag::Insert,
                old_line: None,
                new_line: Some(1),
                text: value,
            },
            Side::Old => DiffLine {
                tag: LineTag::Delete,
                old_line: Some(1),
                new_line: None,
                text: value,
            },
        };
        FieldDiff {
            field: field.to_owned(),
            lines: vec![line],
        }
    }

    /// True when some line is inserted or deleted.
    pub fn has_changes(&self) -> bool {
        self.lines.iter().any(|l| l.tag != LineTag::Equal)
    }
}

/// Which side a one-sided step (added or removed) is on.
#[derive(Clone, Copy)]
enum Side {
    Old,
    New,
}

fn line_number(index: usize) -> u32 {
    u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX)
}

fn order_number(index: usize) -> u32 {
    line_number(index)
}

/// Drops one trailing `\r\n`, `\n` or `\r` (the line endings `similar` splits at).
fn strip_line_ending(line: &str) -> &str {
    line.strip_suffix("\r\n")
        .or_else(|| line.strip_suffix('\n'))
        .or_else(|| line.strip_suffix('\r'))
        .unwrap_or(line)
}

/// What happened to one step between the two versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepDiffKind {
    /// Only in the new version.
    Added,
    /// Only in the old version.
    Removed,
    /// In both, with at least one field changed; it may also have moved (see
    /// [`StepDiff::moved`]).
    Changed,
    /// In both with the same fields, but reordered relative to the other steps.
    Moved,
    /// In both, same fields, same relative place.
    Unchanged,
}

/// One step of a [`RunbookDiff`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDiff {
    /// The step's stable id.
    pub id: StepId,
    /// Added, removed, changed, moved or unchanged.
    pub kind: StepDiffKind,
    /// True when the step is in both versions but outside the longest common subsequence of the
    /// step orders: true for every [`StepDiffKind::Moved`] step and for a
    /// [`StepDiffKind::Changed`] step that also moved.
    pub moved: bool,
    /// 1-based position in the old version; `None` when added.
    pub from_order: Option<u32>,
    /// 1-based position in the new version; `None` when removed.
    pub to_order: Option<u32>,
    /// Title in the old version; `None` when added.
    pub from_title: Option<String>,
    /// Title in the new version; `None` when removed.
    pub to_title: Option<String>,
    /// For a changed step, the changed fields in [`Step`] field order (title, description,
    /// owner_role, est_minutes, expected_outcome, verification, rollback_note,
    /// requires_approval, is_destructive). For an added (removed) step, its content as
    /// inserted (deleted) lines: every non-empty text field other than the title, the estimate
    /// when not zero and the flags that are set. Empty for moved and unchanged steps.
    pub fields: Vec<FieldDiff>,
}

impl StepDiff {
    /// The title to show: the new one, or the old one for a removed step.
    pub fn title(&self) -> &str {
        self.to_title
            .as_deref()
            .or(self.from_title.as_deref())
            .unwrap_or_default()
    }

    /// Names of the changed fields; empty unless the kind is [`StepDiffKind::Changed`].
    pub fn changed_fields(&self) -> Vec<&str> {
        if self.kind == StepDiffKind::Changed {
            self.fields.iter().map(|f| f.field.as_str()).collect()
        } else {
            Vec::new()
        }
    }
}

/// Counts of a [`RunbookDiff`]'s steps. A step that changed *and* moved counts in both
/// `changed` and `moved`, so the counts may add up to more than the number of steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Steps only in the new version.
    pub added: u32,
    /// Steps only in the old version.
    pub removed: u32,
    /// Steps in both with at least one field changed.
    pub changed: u32,
    /// Steps in both whose relative place changed.
    pub moved: u32,
    /// Steps in both, same fields and same relative place.
    pub unchanged: u32,
}

/// A structured diff between two versions of a runbook body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookDiff {
    /// The old version number.
    pub from_version: u32,
    /// The new version number.
    pub to_version: u32,
    /// Changes of the runbook's own fields, in the order title, description, category; only
    /// changed fields appear.
    pub fields: Vec<FieldDiff>,
    /// Every step of both versions, unchanged ones included, in the new version's order; a
    /// removed step comes right after the nearest step that preceded it in the old version and
    /// kept its relative place (or first, when there is none).
    pub steps: Vec<StepDiff>,
    /// Counts per kind.
    pub summary: DiffSummary,
}

impl RunbookDiff {
    /// True when the two bodies are the same: no field changed and every step is unchanged.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.steps.iter().all(|s| s.kind == StepDiffKind::Unchanged)
    }
}

/// Diffs two versions of a runbook body.
///
/// Runs in time roughly linear in the size of the two bodies (hash maps keyed by [`StepId`],
/// a Myers diff of the id sequences, line diffs of changed fields only). Bodies built through
/// [`super::RunbookInput::validate`] have unique step ids; should a body repeat an id anyway,
/// only its first occurrence is matched and any repeat counts as added or removed.
pub fn diff(
    from_version: u32,
    from: &RunbookBody,
    to_version: u32,
    to: &RunbookBody,
) -> RunbookDiff {
    let deadline = Instant::now().checked_add(TEXT_DIFF_BUDGET);

    let mut fields = Vec::new();
    push_text(
        &mut fields,
        "title",
        from.title.as_str(),
        to.title.as_str(),
        deadline,
    );
    push_text(
        &mut fields,
        "description",
        from.description.as_str(),
        to.description.as_str(),
        deadline,
    );
    push_text(
        &mut fields,
        "category",
        from.category.as_str(),
        to.category.as_str(),
        deadline,
    );

    // First occurrence of every id on each side.
    let from_pos = first_positions(&from.steps);
    let to_pos = first_positions(&to.steps);

    // to index -> matching from index.
    let to_match: Vec<Option<usize>> = to
        .steps
        .iter()
        .enumerate()
        .map(|(j, s)| {
            if to_pos.get(&s.id) == Some(&j) {
                from_pos.get(&s.id).copied()
            } else {
                None
            }
        })
        .collect();
    // from index -> matching to index.
    let from_match: Vec<Option<usize>> = from
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if from_pos.get(&s.id) == Some(&i) {
                to_pos.get(&s.id).copied()
            } else {
                None
            }
        })
        .collect();

    // The matched steps as new-version indices, in old order and in new order: their longest
    // common subsequence is the set of steps that kept their relative place.
    let old_seq: Vec<usize> = from_match.iter().filter_map(|m| *m).collect();
    let new_seq: Vec<usize> = to_match
        .iter()
        .enumerate()
        .filter_map(|(j, m)| m.map(|_| j))
        .collect();
    let mut in_place = vec![false; to.steps.len()];
    for op in capture_diff_slices(Algorithm::Myers, &old_seq, &new_seq) {
        if let DiffOp::Equal { new_index, len, .. } = op {
            for &j in new_seq.iter().skip(new_index).take(len) {
                if let Some(slot) = in_place.get_mut(j) {
                    *slot = true;
                }
            }
        }
    }

    // Removed steps, each anchored after the new index of the nearest earlier old step that
    // kept its place (`None`: before every step). Anchors only grow along the old order, so
    // the list is sorted by anchor.
    let mut removed: Vec<(Option<usize>, usize)> = Vec::new();
    let mut anchor = None;
    for (i, m) in from_match.iter().enumerate() {
        match m {
            Some(j) if in_place.get(*j).copied().unwrap_or(false) => anchor = Some(*j),
            Some(_) => {}
            None => removed.push((anchor, i)),
        }
    }

    let mut steps = Vec::with_capacity(to.steps.len() + removed.len());
    let mut summary = DiffSummary::default();
    let mut pending = removed.into_iter().peekable();
    let mut flush_removed = |steps: &mut Vec<StepDiff>, summary: &mut DiffSummary, at| {
        while let Some((_, i)) = pending.next_if(|(a, _)| *a == at) {
            if let Some(s) = from.steps.get(i) {
                summary.removed += 1;
                steps.push(one_sided(s, i, Side::Old, deadline));
            }
        }
    };
    flush_removed(&mut steps, &mut summary, None);
    for (j, (new, m)) in to.steps.iter().zip(&to_match).enumerate() {
        let old = m.and_then(|i| from.steps.get(i).map(|s| (i, s)));
        let step = match old {
            None => {
                summary.added += 1;
                one_sided(new, j, Side::New, deadline)
            }
            Some((i, old)) => {
                let moved = !in_place.get(j).copied().unwrap_or(false);
                let fields = step_changes(old, new, deadline);
                let kind = if !fields.is_empty() {
                    StepDiffKind::Changed
                } else if moved {
                    StepDiffKind::Moved
                } else {
                    StepDiffKind::Unchanged
                };
                if kind == StepDiffKind::Changed {
                    summary.changed += 1;
                }
                if moved {
                    summary.moved += 1;
                }
                if kind == StepDiffKind::Unchanged {
                    summary.unchanged += 1;
                }
                StepDiff {
                    id: new.id,
                    kind,
                    moved,
                    from_order: Some(order_number(i)),
                    to_order: Some(order_number(j)),
                    from_title: Some(old.title.to_string()),
                    to_title: Some(new.title.to_string()),
                    fields,
                }
            }
        };
        steps.push(step);
        flush_removed(&mut steps, &mut summary, Some(j));
    }

    RunbookDiff {
        from_version,
        to_version,
        fields,
        steps,
        summary,
    }
}

fn first_positions(steps: &[Step]) -> HashMap<StepId, usize> {
    let mut pos = HashMap::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        pos.entry(s.id).or_insert(i);
    }
    pos
}

fn push_text(
    out: &mut Vec<FieldDiff>,
    field: &str,
    old: &str,
    new: &str,
    deadline: Option<Instant>,
) {
    if old != new {
        out.push(FieldDiff::text(field, old, new, deadline));
    }
}

fn push_scalar<T: PartialEq + ToString>(out: &mut Vec<FieldDiff>, field: &str, old: T, new: T) {
    if old != new {
        out.push(FieldDiff::scalar(field, old.to_string(), new.to_string()));
    }
}

/// A step's approval expiry as a diff shows it: the minutes, or `never`.
fn expires_text(s: &Step) -> String {
    s.approval_expires_minutes
        .map_or_else(|| "never".to_owned(), |m| m.to_string())
}

/// The changed fields of a step present in both versions, in [`Step`] field order.
fn step_changes(a: &Step, b: &Step, deadline: Option<Instant>) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    push_text(
        &mut out,
        "title",
        a.title.as_str(),
        b.title.as_str(),
        deadline,
    );
    push_text(
        &mut out,
        "description",
        a.description.as_str(),
        b.description.as_str(),
        deadline,
    );
    push_text(
        &mut out,
        "owner_role",
        a.owner_role.as_str(),
        b.owner_role.as_str(),
        deadline,
    );
    push_scalar(
        &mut out,
        "est_minutes",
        a.est_minutes.get(),
        b.est_minutes.get(),
    );
    push_text(
        &mut out,
        "expected_outcome",
        a.expected_outcome.as_str(),
        b.expected_outcome.as_str(),
        deadline,
    );
    push_text(
        &mut out,
        "verification",
        a.verification.as_str(),
        b.verification.as_str(),
        deadline,
    );
    push_text(
        &mut out,
        "rollback_note",
        a.rollback_note.as_str(),
        b.rollback_note.as_str(),
        deadline,
    );
    push_scalar(
        &mut out,
        "requires_approval",
        a.requires_approval,
        b.requires_approval,
    );
    push_scalar(
        &mut out,
        "approvals_required",
        a.approvals_required,
        b.approvals_required,
    );
    push_scalar(
        &mut out,
        "approval_expires_minutes",
        expires_text(a),
        expires_text(b),
    );
    push_scalar(
        &mut out,
        "is_destructive",
        a.is_destructive,
        b.is_destructive,
    );
    out
}

/// An added (`Side::New`) or removed (`Side::Old`) step, with its content as one-sided lines.
fn one_sided(s: &Step, index: usize, side: Side, deadline: Option<Instant>) -> StepDiff {
    let mut fields = Vec::new();
    let texts_before = [
        ("description", s.description.as_str()),
        ("owner_role", s.owner_role.as_str()),
    ];
    let texts_after = [
        ("expected_outcome", s.expected_outcome.as_str()),
        ("verification", s.verification.as_str()),
        ("rollback_note", s.rollback_note.as_str()),
    ];
    let push_texts = |fields: &mut Vec<FieldDiff>, texts: &[(&str, &str)]| {
        for &(field, value) in texts {
            if !value.is_empty() {
                fields.push(match side {
                    Side::New => FieldDiff::text(field, "", value, deadline),
                    Side::Old => FieldDiff::text(field, value, "", deadline),
                });
            }
        }
    };
    push_texts(&mut fields, &texts_before);
    if s.est_minutes.get() != 0 {
        fields.push(FieldDiff::one_sided_scalar(
            "est_minutes",
            s.est_minutes.get().to_string(),
            side,
        ));
    }
    push_texts(&mut fields, &texts_after);
    for (field, set) in [
        ("requires_approval", s.requires_approval),
        ("is_destructive", s.is_destructive),
    ] {
        if set {
            fields.push(FieldDiff::one_sided_scalar(field, "true".to_owned(), side));
        }
        if field == "requires_approval" && set {
            if !s.approvals_required.is_one() {
                fields.push(FieldDiff::one_sided_scalar(
                    "approvals_required",
                    s.approvals_required.to_string(),
                    side,
                ));
            }
            if s.approval_expires_minutes.is_some() {
                fields.push(FieldDiff::one_sided_scalar(
                    "approval_expires_minutes",
                    expires_text(s),
                    side,
                ));
            }
        }
    }
    let (kind, from_order, to_order, from_title, to_title) = match side {
        Side::New => (
            StepDiffKind::Added,
            None,
            Some(order_number(index)),
            None,
            Some(s.title.to_string()),
        ),
        Side::Old => (
            StepDiffKind::Removed,
            Some(order_number(index)),
            None,
            Some(s.title.to_string()),
            None,
        ),
    };
    StepDiff {
        id: s.id,
        kind,
        moved: false,
        from_order,
        to_order,
        from_title,
        to_title,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::{RunbookInput, StepInput};

    fn step(title: &str) -> StepInput {
        StepInput {
            id: Some(StepId::new()),
            title: title.to_owned(),
            description: format!("Do {title}.\nThen check it.\n"),
            est_minutes: 5,
            ..StepInput::default()
        }
    }

    fn body(title: &str, steps: Vec<StepInput>) -> RunbookBody {
        RunbookInput {
            title: title.to_owned(),
            description: "Runbook description.\n".to_owned(),
            category: "database".to_owned(),
            steps,
        }
        .validate()
        .unwrap()
    }

    fn kinds(d: &RunbookDiff) -> Vec<(&str, StepDiffKind)> {
        d.steps.iter().map(|s| (s.title(), s.kind)).collect()
    }

    fn line(tag: LineTag, old: Option<u32>, new: Option<u32>, text: &str) -> DiffLine {
        DiffLine {
            tag,
            old_line: old,
            new_line: new,
            text: text.to_owned(),
        }
    }

    #[test]
    fn identical_bodies_give_an_empty_diff() {
        let b = body("Failover", vec![step("a"), step("b"), step("c")]);
        let d = diff(1, &b, 2, &b.clone());
        assert!(d.is_empty());
        assert!(d.fields.is_empty());
        assert_eq!(d.from_version, 1);
        assert_eq!(d.to_version, 2);
        assert_eq!(
            d.summary,
            DiffSummary {
                unchanged: 3,
                ..DiffSummary::default()
            }
        );
        assert_eq!(
            kinds(&d),
            vec![
                ("a", StepDiffKind::Unchanged),
                ("b", StepDiffKind::Unchanged),
                ("c", StepDiffKind::Unchanged)
            ]
        );
        assert!(d.steps.iter().all(|s| s.fields.is_empty() && !s.moved));
        assert_eq!(d.steps[1].from_order, Some(2));
        assert_eq!(d.steps[1].to_order, Some(2));
    }

    #[test]
    fn empty_bodies() {
        let b = body("Empty", vec![]);
        let d = diff(1, &b, 2, &b);
        assert!(d.is_empty());
        assert!(d.steps.is_empty());
    }

    #[test]
    fn added_and_removed_steps() {
        let (a, b, c, d_) = (step("a"), step("b"), step("c"), step("d"));
        let mut d_ = d_;
        d_.verification = "curl -f http://db/health".to_owned();
        d_.requires_approval = true;
        let from = body("R", vec![a.clone(), b.clone(), c.clone()]);
        let to = body("R", vec![a, c, d_.clone()]);
        let d = diff(3, &from, 4, &to);
        assert!(!d.is_empty());
        assert_eq!(
            kinds(&d),
            vec![
                ("a", StepDiffKind::Unchanged),
                ("b", StepDiffKind::Removed),
                ("c", StepDiffKind::Unchanged),
                ("d", StepDiffKind::Added),
            ]
        );
        assert_eq!(
            d.summary,
            DiffSummary {
                added: 1,
                removed: 1,
                unchanged: 2,
                ..DiffSummary::default()
            }
        );
        let removed = &d.steps[1];
        assert_eq!((removed.from_order, removed.to_order), (Some(2), None));
        assert_eq!(removed.from_title.as_deref(), Some("b"));
        assert!(removed.to_title.is_none());
        assert!(removed.changed_fields().is_empty());
        let desc = &removed.fields[0];
        assert_eq!(desc.field, "description");
        assert_eq!(
            desc.lines,
            vec![
                line(LineTag::Delete, Some(1), None, "Do b."),
                line(LineTag::Delete, Some(2), None, "Then check it."),
            ]
        );
        let added = &d.steps[3];
        assert_eq!((added.from_order, added.to_order), (None, Some(3)));
        assert_eq!(added.id, d_.id.unwrap());
        let names: Vec<&str> = added.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "description",
                "est_minutes",
                "verification",
                "requires_approval"
            ]
        );
        assert!(
            added
                .fields
                .iter()
                .flat_map(|f| &f.lines)
                .all(|l| l.tag == LineTag::Insert && l.old_line.is_none())
        );
        assert_eq!(
            added.fields[1].lines,
            vec![line(LineTag::Insert, None, Some(1), "5")]
        );
    }

    #[test]
    fn removed_steps_stay_where_they_were() {
        let s: Vec<StepInput> = ["a", "b", "c", "d", "e"].iter().map(|t| step(t)).collect();
        let from = body("R", s.clone());
        // Remove the first, a middle and the last step; add one at the start and at the end.
        let (x, y) = (step("x"), step("y"));
        let to = body("R", vec![x, s[1].clone(), s[3].clone(), y]);
        let d = diff(1, &from, 2, &to);
        let titles: Vec<&str> = d.steps.iter().map(StepDiff::title).collect();
        assert_eq!(titles, ["a", "x", "b", "c", "d", "e", "y"]);
        assert_eq!(d.summary.removed, 3);
        assert_eq!(d.summary.added, 2);
        assert_eq!(d.summary.unchanged, 2);
    }

    #[test]
    fn changed_fields_have_line_markers() {
        let a = step("a");
        let mut b = step("b");
        b.description = "one\ntwo\nthree\n".to_owned();
        let from = body("R", vec![a.clone(), b.clone()]);
        let mut b2 = b.clone();
        b2.description = "one\nTWO\nthree\nfour\n".to_owned();
        b2.est_minutes = 10;
        b2.is_destructive = true;
        b2.owner_role = "dba".to_owned();
        let to = body("R", vec![a, b2]);
        let d = diff(1, &from, 2, &to);
        assert_eq!(d.summary.changed, 1);
        assert_eq!(d.summary.unchanged, 1);
        let s = &d.steps[1];
        assert_eq!(s.kind, StepDiffKind::Changed);
        assert!(!s.moved);
        assert_eq!(
            s.changed_fields(),
            ["description", "owner_role", "est_minutes", "is_destructive"]
        );
        assert_eq!(
            s.fields[0].lines,
            vec![
                line(LineTag::Equal, Some(1), Some(1), "one"),
                line(LineTag::Delete, Some(2), None, "two"),
                line(LineTag::Insert, None, Some(2), "TWO"),
                line(LineTag::Equal, Some(3), Some(3), "three"),
                line(LineTag::Insert, None, Some(4), "four"),
            ]
        );
        assert_eq!(
            s.fields[1].lines,
            vec![line(LineTag::Insert, None, Some(1), "dba")]
        );
        assert_eq!(
            s.fields[2].lines,
            vec![
                line(LineTag::Delete, Some(1), None, "5"),
                line(LineTag::Insert, None, Some(1), "10"),
            ]
        );
        assert_eq!(
            s.fields[3].lines,
            vec![
                line(LineTag::Delete, Some(1), None, "false"),
                line(LineTag::Insert, None, Some(1), "true"),
            ]
        );
        assert!(s.fields.iter().all(FieldDiff::has_changes));
    }

    #[test]
    fn crlf_and_missing_final_newline_are_stripped() {
        let mut a = step("a");
        a.description = "x\r\ny".to_owned();
        let from = body("R", vec![a.clone()]);
        a.description = "x\r\nz".to_owned();
        let to = body("R", vec![a]);
        let d = diff(1, &from, 2, &to);
        assert_eq!(
            d.steps[0].fields[0].lines,
            vec![
                line(LineTag::Equal, Some(1), Some(1), "x"),
                line(LineTag::Delete, Some(2), None, "y"),
                line(LineTag::Insert, None, Some(2), "z"),
            ]
        );
    }

    #[test]
    fn a_renamed_step_is_changed_not_replaced() {
        let a = step("Restart db");
        let from = body("R", vec![a.clone()]);
        let mut a2 = a.clone();
        a2.title = "Restart the database".to_owned();
        let to = body("R", vec![a2]);
        let d = diff(1, &from, 2, &to);
        assert_eq!(d.summary.changed, 1);
        let s = &d.steps[0];
        assert_eq!(s.changed_fields(), ["title"]);
        assert_eq!(s.from_title.as_deref(), Some("Restart db"));
        assert_eq!(s.to_title.as_deref(), Some("Restart the database"));
        assert_eq!(s.title(), "Restart the database");
    }

    #[test]
    fn swapping_two_steps_moves_one() {
        let (a, b, c) = (step("a"), step("b"), step("c"));
        let from = body("R", vec![a.clone(), b.clone(), c.clone()]);
        let to = body("R", vec![b, a, c]);
        let d = diff(1, &from, 2, &to);
        assert_eq!(d.summary.moved, 1);
        assert_eq!(d.summary.unchanged, 2);
        assert_eq!(d.summary.changed, 0);
        let moved: Vec<&StepDiff> = d.steps.iter().filter(|s| s.moved).collect();
        assert_eq!(moved.len(), 1);
        assert_eq!(moved[0].kind, StepDiffKind::Moved);
        assert!(moved[0].fields.is_empty());
        // Listed in the new order.
        let titles: Vec<&str> = d.steps.iter().map(StepDiff::title).collect();
        assert_eq!(titles, ["b", "a", "c"]);
        assert!(!d.is_empty());
    }

    #[test]
    fn moving_the_last_step_first_moves_exactly_that_step() {
        let s: Vec<StepInput> = (1..=6).map(|i| step(&format!("s{i}"))).collect();
        let from = body("R", s.clone());
        let mut reordered = s.clone();
        let last = reordered.pop().unwrap();
        reordered.insert(0, last);
        let to = body("R", reordered);
        let d = diff(1, &from, 2, &to);
        assert_eq!(d.summary.moved, 1);
        assert_eq!(d.summary.unchanged, 5);
        let m = &d.steps[0];
        assert_eq!(m.title(), "s6");
        assert_eq!(m.kind, StepDiffKind::Moved);
        assert_eq!((m.from_order, m.to_order), (Some(6), Some(1)));
        assert!(
            d.steps[1..]
                .iter()
                .all(|s| s.kind == StepDiffKind::Unchanged)
        );
        assert_eq!(d.steps[1].from_order, Some(1));
        assert_eq!(d.steps[1].to_order, Some(2));
    }

    #[test]
    fn a_step_can_move_and_change() {
        let (a, b, c) = (step("a"), step("b"), step("c"));
        let from = body("R", vec![a.clone(), b.clone(), c.clone()]);
        let mut c2 = c.clone();
        c2.rollback_note = "Undo it.".to_owned();
        let to = body("R", vec![c2, a, b]);
        let d = diff(1, &from, 2, &to);
        let s = &d.steps[0];
        assert_eq!(s.kind, StepDiffKind::Changed);
        assert!(s.moved);
        assert_eq!(s.changed_fields(), ["rollback_note"]);
        assert_eq!(d.summary.changed, 1);
        assert_eq!(d.summary.moved, 1);
        assert_eq!(d.summary.unchanged, 2);
    }

    #[test]
    fn runbook_title_and_category_changes() {
        let a = step("a");
        let from = body("Old title", vec![a.clone()]);
        let mut to = body("New title", vec![a]);
        to.category = crate::fields::Label::parse_field("category", "network").unwrap();
        let d = diff(1, &from, 2, &to);
        assert!(!d.is_empty());
        let names: Vec<&str> = d.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["title", "category"]);
        assert_eq!(
            d.fields[0].lines,
            vec![
                line(LineTag::Delete, Some(1), None, "Old title"),
                line(LineTag::Insert, None, Some(1), "New title"),
            ]
        );
        assert_eq!(
            d.fields[1].lines,
            vec![
                line(LineTag::Delete, Some(1), None, "database"),
                line(LineTag::Insert, None, Some(1), "network"),
            ]
        );
        assert_eq!(d.summary.unchanged, 1);
    }

    #[test]
    fn repeated_ids_do_not_panic() {
        let a = step("a");
        let from = body("R", vec![a.clone(), step("b")]);
        let mut to = body("R", vec![a]);
        let dup = to.steps[0].clone();
        to.steps.push(dup);
        let d = diff(1, &from, 2, &to);
        assert_eq!(d.summary.unchanged, 1);
        assert_eq!(d.summary.added, 1);
        assert_eq!(d.summary.removed, 1);
    }

    #[test]
    fn serde_round_trip() {
        let (a, b) = (step("a"), step("b"));
        let from = body("R", vec![a.clone(), b.clone()]);
        let mut b2 = b.clone();
        b2.description = "changed\n".to_owned();
        let to = body("R2", vec![b2, step("c")]);
        let d = diff(1, &from, 2, &to);
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""tag":"insert""#), "{json}");
        assert!(json.contains(r#""kind":"removed""#), "{json}");
        let back: RunbookDiff = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
    }

    /// Two 500-step versions with a few hundred bytes per step, ~10% of steps changed, a few
    /// added, removed and moved.
    fn big_pair() -> (RunbookBody, RunbookBody) {
        let steps: Vec<StepInput> = (0..500)
            .map(|i| StepInput {
                id: Some(StepId::new()),
                title: format!("Step {i}: drain node pool {}", i % 17),
                description: format!(
                    "Cordon the nodes of pool {i}.\nDrain them one by one with a grace period of {} s.\n\
                     Watch the pod disruption budgets while draining.\nDo not continue while \
                     any pod is pending.\n",
                    30 + i % 5
                ),
                owner_role: "sre".to_owned(),
                est_minutes: 5 + (i % 7),
                expected_outcome: format!("All pods of pool {i} run elsewhere.\nNo alert fires.\n"),
                verification: format!("kubectl get pods -o wide | grep pool-{i}\n"),
                rollback_note: "Uncordon the nodes.\n".to_owned(),
                requires_approval: i % 10 == 0,
                approvals_required: if i % 20 == 0 { 2 } else { 0 },
                approval_expires_minutes: None,
                is_destructive: i % 25 == 0,
            })
            .collect();
        let from = body("Rotate node pools", steps.clone());
        let mut next: Vec<StepInput> = steps;
        for (i, s) in next.iter_mut().enumerate() {
            if i % 10 == 3 {
                s.description = s.description.replace("one by one", "two at a time");
                s.description.push_str("Post in #ops when done.\n");
                s.est_minutes += 1;
            }
        }
        next.remove(250);
        next.remove(100);
        let moved = next.remove(400);
        next.insert(10, moved);
        next.push(StepInput {
            title: "Announce completion".to_owned(),
            ..StepInput::default()
        });
        next.truncate(500);
        let to = body("Rotate node pools", next);
        (from, to)
    }

    #[test]
    fn diff_of_500_steps_is_fast() {
        let (from, to) = big_pair();
        assert_eq!(from.steps.len(), 500);
        assert_eq!(to.steps.len(), 499);
        let mut best = Duration::MAX;
        let mut d = diff(1, &from, 2, &to);
        for _ in 0..10 {
            let start = Instant::now();
            d = diff(1, &from, 2, &to);
            best = best.min(start.elapsed());
        }
        println!("500-step diff: best of 10 = {best:?}");
        assert_eq!(d.summary.removed, 2);
        assert_eq!(d.summary.added, 1);
        assert_eq!(d.summary.moved, 1);
        assert_eq!(d.summary.changed, 50);
        let limit = if cfg!(debug_assertions) {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(5)
        };
        assert!(
            best < limit,
            "500-step diff took {best:?} (limit {limit:?})"
        );
    }
}
