//! The permission table as an exhaustive table test: every action × role × ownership ×
//! draft/published/archived, against a table written out by hand from the product page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigilo_core::authz::{Action, Subject, Visibility, authorize};
use vigilo_core::ids::UserId;
use vigilo_core::roles::WorkspaceRole;

/// Columns: member, member+owner, operator, operator+owner, admin, admin+owner, owner,
/// owner+owner ("+owner" = the actor owns the runbook / change / execution).
/// Visibility `pub` published, `draft`, `arch-pub` archived-was-published, `arch-draft`,
/// `-` no runbook involved. `Y` allowed, `.` denied.
const TABLE: &str = "
ViewRunbook          -          Y Y Y Y Y Y Y Y
RehearseRunbook      -          Y Y Y Y Y Y Y Y
ViewRunbook          pub        Y Y Y Y Y Y Y Y
ViewRunbook          draft      . Y . Y Y Y Y Y
ViewRunbook          arch-pub   Y Y Y Y Y Y Y Y
ViewRunbook          arch-draft . Y . Y Y Y Y Y
RehearseRunbook      pub        Y Y Y Y Y Y Y Y
RehearseRunbook      draft      . Y . Y Y Y Y Y
RehearseRunbook      arch-pub   Y Y Y Y Y Y Y Y
RehearseRunbook      arch-draft . Y . Y Y Y Y Y
CreateRunbook        *          . . Y Y Y Y Y Y
EditRunbook          *          . Y . Y Y Y Y Y
PublishRunbook       *          . Y . Y Y Y Y Y
ArchiveRunbook       *          . . . . Y Y Y Y
ExecuteRunbook       *          . . Y Y Y Y Y Y
ActOnExecution       *          . Y Y Y Y Y Y Y
HandOverExecution    *          . Y . Y Y Y Y Y
TakeOverExecution    *          . . . . Y Y Y Y
CreateChange         *          . . Y Y Y Y Y Y
EditChange           *          . Y . Y Y Y Y Y
ApproveChange        *          . . . . Y Y Y Y
MoveChange           *          . Y . Y Y Y Y Y
SaveChangeAsRunbook  *          . Y . Y Y Y Y Y
CreateIncident       *          Y Y Y Y Y Y Y Y
ResolveIncident      *          . . Y Y Y Y Y Y
ManageMembers        *          . . . . Y Y Y Y
ManageOwners         *          . . . . . . Y Y
OwnRunbook           *          . . Y Y Y Y Y Y
ViewAudit            *          Y Y Y Y Y Y Y Y
";

fn action(name: &str) -> Action {
    *Action::ALL
        .iter()
        .find(|a| format!("{a:?}") == name)
        .unwrap_or_else(|| panic!("unknown action {name}"))
}

fn visibilities(v: &str) -> Vec<Option<Visibility>> {
    let all = vec![
        None,
        Some(Visibility::Published),
        Some(Visibility::Draft),
        Some(Visibility::Archived {
            was_published: true,
        }),
        Some(Visibility::Archived {
            was_published: false,
        }),
    ];
    match v {
        "*" => all,
        "pub" => vec![Some(Visibility::Published)],
        "draft" => vec![Some(Visibility::Draft)],
        "arch-pub" => vec![Some(Visibility::Archived {
            was_published: true,
        })],
        "arch-draft" => vec![Some(Visibility::Archived {
            was_published: false,
        })],
        "-" => vec![None],
        other => panic!("unknown visibility {other}"),
    }
}

#[test]
fn the_permission_table_is_enforced_exactly() {
    let me = UserId::new();
    let someone_else = UserId::new();
    let mut covered = std::collections::HashSet::new();
    let mut checked = 0;
    for line in TABLE.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 10, "bad row: {line}");
        let act = action(cols[0]);
        for vis in visibilities(cols[1]) {
            covered.insert((format!("{act:?}"), format!("{vis:?}")));
            for (i, role) in WorkspaceRole::ALL.iter().enumerate() {
                for (j, owns) in [false, true].into_iter().enumerate() {
                    let expected = cols[2 + i * 2 + j] == "Y";
                    let subject = Subject {
                        owner: Some(if owns { me } else { someone_else }),
                        visibility: vis,
                    };
                    let got = authorize(me, *role, act, &subject);
                    assert_eq!(
                        got.is_ok(),
                        expected,
                        "{act:?} by {role} (owner: {owns}) on {vis:?}: got {got:?}"
                    );
                    if let Err(d) = got {
                        // A denial names who would be allowed, and the actor's role.
                        let text = d.to_string();
                        assert!(
                            text.contains("admin")
                                || text.contains("operator")
                                || text.contains("owner"),
                            "denial names no role: {text}"
                        );
                        assert!(
                            text.contains(role.as_str()),
                            "denial does not say the actor's role: {text}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    // Every action appears, with every visibility.
    for a in Action::ALL {
        for v in visibilities("*") {
            assert!(
                covered.contains(&(format!("{a:?}"), format!("{v:?}"))),
                "{a:?} × {v:?} not in the table"
            );
        }
    }
    assert_eq!(checked, Action::ALL.len() * 5 * 8);
}

#[test]
fn a_denial_says_which_role_or_ownership_would_do() {
    let me = UserId::new();
    let other = UserId::new();
    let d = authorize(
        me,
        WorkspaceRole::Operator,
        Action::EditRunbook,
        &Subject {
            owner: Some(other),
            visibility: Some(Visibility::Published),
        },
    )
    .unwrap_err();
    assert_eq!(
        d.to_string(),
        "editing this runbook needs the owner of the runbook, an admin or the workspace owner; you are operator and not the owner"
    );
    let d = authorize(
        me,
        WorkspaceRole::Member,
        Action::ExecuteRunbook,
        &Subject::NONE,
    )
    .unwrap_err();
    assert_eq!(
        d.to_string(),
        "executing a runbook needs an operator, an admin or the workspace owner; you are member"
    );
}
