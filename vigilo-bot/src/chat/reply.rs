//! The reply model: what the engine asks a surface to show, independent of any platform.
//!
//! A [`Reply`] is one message: [`Block`]s, who sees it ([`Visibility`]) and where it goes
//! ([`Target`]). Message references are *symbolic*: the engine names messages by [`Anchor`]
//! (the header of an execution, the card of one step), never by a platform id. A reply that
//! posts a message the engine will later update or thread under carries that message's
//! [`Reply::anchor`]; the surface remembers the platform's id for it (see
//! [`MessageRefs`](super::refs::MessageRefs)) and resolves [`Target::Thread`] and
//! [`Target::Update`] through it. A terminal can ignore anchors altogether: it prints a thread
//! reply indented and an update as a new line.
//!
//! Texts: [`Block::Header`] and labels are plain text; [`Block::Section`], field values and
//! [`Block::Context`] are CommonMark (render with [`super::markdown`]); [`Block::Code`] is
//! verbatim. [`Reply::text`] is a short plain-text fallback (Slack's notification text: escape
//! it with [`escape_mrkdwn`](super::markdown::escape_mrkdwn) before sending).

use std::fmt;
use std::str::FromStr;

use vigilo_core::ids::{Key, KeyKind};

/// Action id of the Done button.
pub const ACTION_DONE: &str = "vigilo.done";
/// Action id of the Skip… button (asks for a reason).
pub const ACTION_SKIP: &str = "vigilo.skip";
/// Action id of the Failed… button (asks for a note).
pub const ACTION_FAIL: &str = "vigilo.fail";
/// Action id of the Approve button (gated steps, until approved).
pub const ACTION_APPROVE: &str = "vigilo.approve";
/// Action id of the Retry button (failed steps).
pub const ACTION_RETRY: &str = "vigilo.retry";
/// Action id of the Abort… button (failed steps; asks for a reason).
pub const ACTION_ABORT: &str = "vigilo.abort";
/// Action id of the Report button (the summary card): posts the run's report as a file.
pub const ACTION_REPORT: &str = "vigilo.report";

/// Action id of the Note… button (asks for the note; the state does not change).
pub const ACTION_NOTE: &str = "vigilo.note";
/// Action id of the Diff button on a header whose runbook got a newer published version.
pub const ACTION_DIFF: &str = "vigilo.diff";

/// Every action id the engine puts on buttons.
pub const ACTIONS: [&str; 9] = [
    ACTION_DONE,
    ACTION_SKIP,
    ACTION_FAIL,
    ACTION_APPROVE,
    ACTION_RETRY,
    ACTION_ABORT,
    ACTION_REPORT,
    ACTION_NOTE,
    ACTION_DIFF,
];

/// One message for a surface to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The content, in order.
    pub blocks: Vec<Block>,
    /// Everyone in the channel, or only the person who acted.
    pub visibility: Visibility,
    /// A new message, a reply in a thread, or an update of an earlier message.
    pub target: Target,
    /// The name of the message this reply posts (or updates), for later threads and updates.
    pub anchor: Option<Anchor>,
    /// A short plain-text version: notifications, screen readers, terminals showing updates.
    pub text: String,
    /// A file posted with the message (an execution report): Slack uploads it into the
    /// reply's place with the message as its comment; a terminal prints it.
    pub file: Option<Attachment>,
    /// A picture shown with the message (the stats chart): Slack uploads it after the
    /// message; a terminal shows the message's own text version of it.
    pub image: Option<Image>,
}

/// A PNG picture a reply carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The file's name (`RB-00001-stats.png`).
    pub filename: String,
    /// Its title, plain text.
    pub title: String,
    /// The PNG bytes.
    pub png: Vec<u8>,
}

/// A text file a reply carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The file's name (`EX-00001-report.md`).
    pub filename: String,
    /// Its title, plain text.
    pub title: String,
    /// Its content.
    pub content: String,
}

impl Reply {
    /// A public new message.
    pub fn public(text: impl Into<String>, blocks: Vec<Block>) -> Self {
        Self {
            blocks,
            visibility: Visibility::Public,
            target: Target::NewMessage,
            anchor: None,
            text: text.into(),
            file: None,
            image: None,
        }
    }

    /// A private new message, seen only by the person who acted.
    pub fn private(text: impl Into<String>, blocks: Vec<Block>) -> Self {
        Self {
            visibility: Visibility::Private,
            ..Self::public(text, blocks)
        }
    }

    /// A private message of one markdown section.
    pub fn private_markdown(markdown: impl Into<String>, fallback: impl Into<String>) -> Self {
        Self::private(fallback, vec![Block::Section(markdown.into())])
    }

    /// This reply with another target.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// This reply carrying `file`.
    pub fn with_file(mut self, file: Attachment) -> Self {
        self.file = Some(file);
        self
    }

    /// This reply naming the message it posts.
    pub fn with_anchor(mut self, anchor: Anchor) -> Self {
        self.anchor = Some(anchor);
        self
    }

    /// The buttons of the reply, in order.
    pub fn buttons(&self) -> impl Iterator<Item = &Button> {
        self.blocks.iter().flat_map(|b| match b {
            Block::Buttons(bs) => bs.as_slice(),
            _ => &[],
        })
    }
}

/// Who sees a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Everyone in the channel.
    Public,
    /// Only the person who acted (Slack: ephemeral).
    Private,
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A new top-level message in the channel.
    NewMessage,
    /// A reply in the thread of the anchored message.
    Thread(Anchor),
    /// Replace the anchored message (in place).
    Update(Anchor),
    /// Replace the anchored message if the surface knows it; otherwise show nothing (a
    /// refresh that is not worth a new message, e.g. a header showing a newer version).
    Refresh(Anchor),
}

/// A symbolic name of a message the engine posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anchor {
    /// The header message of an execution; its steps are threaded under it.
    Execution(Key),
    /// The card of one step (1-based) of an execution.
    StepCard {
        /// The execution.
        execution: Key,
        /// The step, 1-based.
        step: u32,
    },
}

impl Anchor {
    /// The execution the anchor belongs to.
    pub fn execution(&self) -> Key {
        match self {
            Anchor::Execution(k) | Anchor::StepCard { execution: k, .. } => *k,
        }
    }
}

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// A title line, plain text (at most [`super::limits::MAX_HEADER_CHARS`]).
    Header(String),
    /// A markdown text; its `mrkdwn` rendering fits [`super::limits::MAX_SECTION_CHARS`].
    Section(String),
    /// Label and value pairs shown side by side (at most [`super::limits::MAX_FIELDS`]).
    Fields(Vec<Field>),
    /// Verbatim text shown as code (a command, a diff).
    Code(String),
    /// Flags shown as badges.
    Badges(Vec<Badge>),
    /// Buttons.
    Buttons(Vec<Button>),
    /// Small print, markdown.
    Context(String),
}

/// A label (plain text) and its value (markdown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The label, plain text.
    pub label: String,
    /// The value, markdown.
    pub value: String,
}

impl Field {
    /// A field.
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            value: value.into(),
        }
    }
}

/// A flag shown prominently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Badge {
    /// The step cannot be undone trivially.
    Destructive,
    /// The step needs an approval before it can be marked done.
    ApprovalRequired,
    /// The gated step has been approved.
    Approved,
    /// A practice run.
    Rehearsal,
    /// An unpublished runbook.
    Draft,
}

impl Badge {
    /// The badge text, upper case.
    pub fn label(self) -> &'static str {
        match self {
            Badge::Destructive => "DESTRUCTIVE",
            Badge::ApprovalRequired => "APPROVAL REQUIRED",
            Badge::Approved => "APPROVED",
            Badge::Rehearsal => "REHEARSAL",
            Badge::Draft => "DRAFT",
        }
    }
}

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A button. A press comes back to [`ChatEngine::click`](super::engine::ChatEngine::click)
/// with `action_id` and `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Button {
    /// What the button does (one of [`ACTIONS`]).
    pub action_id: String,
    /// The label, plain text.
    pub label: String,
    /// What it acts on: a [`ButtonValue`] (`EX-00001:3`), the same in every workspace.
    pub value: String,
    /// How it is drawn.
    pub style: ButtonStyle,
    /// When set, the surface asks for a text first (a Slack modal, a console prompt) and passes
    /// it to the click; an empty answer is refused.
    pub prompt: Option<Prompt>,
}

/// How a button is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ButtonStyle {
    /// Neutral.
    Default,
    /// The expected next action.
    Primary,
    /// A dangerous action.
    Danger,
}

/// The question a surface asks before sending a click.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// A title (`Skip step 3`), plain text.
    pub title: String,
    /// The question (`Why is it skipped?`), plain text.
    pub label: String,
    /// The submit button's label.
    pub submit: String,
}

/// What a button acts on: an execution and, for step buttons, the 1-based step. Written as
/// `EX-00001:3` (or `EX-00001`), so a click names the step it was meant for and a stale card can
/// never act on the next step. The Note… button also carries the execution's revision when the
/// card was drawn (`EX-00001:3@7`), so a repeated submission of the same note adds it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ButtonValue {
    /// The execution.
    pub execution: Key,
    /// The step, 1-based.
    pub step: Option<u32>,
    /// The execution's revision the button was drawn at, when it matters.
    pub rev: Option<u64>,
}

impl ButtonValue {
    /// The anchor of the message this button sits on.
    pub fn anchor(&self) -> Anchor {
        match self.step {
            Some(step) => Anchor::StepCard {
                execution: self.execution,
                step,
            },
            None => Anchor::Execution(self.execution),
        }
    }
}

impl fmt::Display for ButtonValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(s) => write!(f, "{}:{s}", self.execution)?,
            None => write!(f, "{}", self.execution)?,
        }
        match self.rev {
            Some(r) => write!(f, "@{r}"),
            None => Ok(()),
        }
    }
}

/// A button value that is not `EX-NNNNN[:step]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Vigilo button value")]
pub struct BadButtonValue(pub String);

impl FromStr for ButtonValue {
    type Err = BadButtonValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadButtonValue(s.chars().take(40).collect());
        let (s, rev) = match s.trim().split_once('@') {
            Some((v, r)) => (v, Some(r.parse::<u64>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let (key, step) = match s.split_once(':') {
            Some((k, st)) => (k, Some(st.parse::<u32>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let execution = Key::parse_kind(key, KeyKind::Execution).map_err(|_| bad())?;
        if step == Some(0) {
            return Err(bad());
        }
        Ok(ButtonValue {
            execution,
            step,
            rev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_values_round_trip() {
        let v: ButtonValue = "EX-00012:3".parse().unwrap();
        assert_eq!(v.execution, Key::new(KeyKind::Execution, 12));
        assert_eq!(v.step, Some(3));
        assert_eq!(v.to_string(), "EX-00012:3");
        assert_eq!("EX-00001".parse::<ButtonValue>().unwrap().step, None);
        let noted: ButtonValue = "EX-00012:3@41".parse().unwrap();
        assert_eq!((noted.step, noted.rev), (Some(3), Some(41)));
        assert_eq!(noted.to_string(), "EX-00012:3@41");
        for bad in [
            "",
            "RB-00001:1",
            "EX-00001:0",
            "EX-00001:x",
            "EX-1:2:3",
            "EX-00001:2@",
            "EX-00001:2@x",
        ] {
            assert!(bad.parse::<ButtonValue>().is_err(), "{bad}");
        }
    }
}
