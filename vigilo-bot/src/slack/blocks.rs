//! The engine's [`Reply`]s as Block Kit, and the modal that asks for a reason.
//!
//! | reply block | Block Kit |
//! |---|---|
//! | [`Block::Header`] | `header`, plain text escaped with [`escape_mrkdwn`] |
//! | [`Block::Section`] | `section`, [`to_mrkdwn`] |
//! | [`Block::Fields`] | `section` with `fields`: `*label*` and the value in [`to_mrkdwn`] |
//! | [`Block::Code`] | `section`, [`code_to_mrkdwn`] |
//! | [`Block::Badges`] | `context`, one bold word per badge |
//! | [`Block::Buttons`] | `actions` with buttons; values are [`ButtonPayload`]s |
//! | [`Block::Context`] | `context`, [`to_mrkdwn`] |
//!
//! Every text is escaped (`&`, `<`, `>` and the special mentions), so nothing a runbook or a
//! user wrote can ping a channel. The engine already split long texts within Slack's limits;
//! the caps here only guard the few places where labels add characters.
//!
//! A button's value is a [`ButtonPayload`]: the engine's value (`EX-00001:3`), the workspace
//! the message was posted for, and the button's prompt if it has one. A click from another
//! workspace (a shared channel) is refused instead of acting on that workspace's execution of
//! the same key, and Skip…/Failed… can open their modal with the engine's own wording.

use serde::{Deserialize, Serialize};
use slack_morphism::prelude::*;
use vigilo_core::ids::WorkspaceId;

use crate::chat::markdown::{code_to_mrkdwn, escape_mrkdwn, to_mrkdwn};
use crate::chat::{Badge, Block, Button, ButtonStyle, Field, Prompt, Reply};

/// The callback id of the reason modal.
pub const PROMPT_CALLBACK_ID: &str = "vigilo.prompt";
/// The block id of the reason input in the modal.
pub const REASON_BLOCK_ID: &str = "vigilo.reason";
/// The action id of the reason input in the modal.
pub const REASON_ACTION_ID: &str = "vigilo.reason";

/// Slack's limit on a button value.
pub const MAX_BUTTON_VALUE_CHARS: usize = 2_000;
/// Slack's limit on a modal's title and submit label.
const MAX_MODAL_TITLE_CHARS: usize = 24;
/// Slack's limit on a header's text.
const MAX_HEADER_CHARS: usize = 150;
/// Slack's limit on a button label.
const MAX_BUTTON_LABEL_CHARS: usize = 75;
/// Slack's limit on one field of a section.
const MAX_FIELD_CHARS: usize = 2_000;
/// Slack's limit on a section or context text.
const MAX_TEXT_CHARS: usize = 3_000;
/// Slack's limit on an input label.
const MAX_INPUT_LABEL_CHARS: usize = 2_000;
/// The longest reason the modal accepts (Slack's maximum for a text input).
const MAX_REASON_CHARS: u64 = 3_000;

/// What a Vigilo button carries to Slack and back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ButtonPayload {
    /// The workspace the message was posted for.
    #[serde(rename = "w")]
    pub workspace: WorkspaceId,
    /// The engine's value, `EX-00001:3`.
    #[serde(rename = "v")]
    pub value: String,
    /// Title, question and submit label of the modal, for buttons that ask for a text.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<[String; 3]>,
}

impl ButtonPayload {
    /// The payload of `button` in `workspace`.
    pub fn of(workspace: WorkspaceId, button: &Button) -> Self {
        Self {
            workspace,
            value: button.value.clone(),
            prompt: button
                .prompt
                .as_ref()
                .map(|p| [p.title.clone(), p.label.clone(), p.submit.clone()]),
        }
    }

    /// The payload as a button value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a button value; `None` for anything that is not one of ours.
    pub fn decode(value: &str) -> Option<Self> {
        if value.len() > MAX_BUTTON_VALUE_CHARS * 4 {
            return None;
        }
        serde_json::from_str(value).ok()
    }

    /// The prompt, if the button asks for a text.
    pub fn prompt(&self) -> Option<Prompt> {
        self.prompt.as_ref().map(|[title, label, submit]| Prompt {
            title: title.clone(),
            label: label.clone(),
            submit: submit.clone(),
        })
    }
}

/// A reply rendered for Slack: its blocks and its notification text.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The blocks.
    pub blocks: Vec<SlackBlock>,
    /// The plain-text fallback, escaped.
    pub text: String,
}

impl Rendered {
    /// As message content for `chat.*` requests.
    pub fn content(&self) -> SlackMessageContent {
        SlackMessageContent::new()
            .with_text(self.text.clone())
            .with_blocks(self.blocks.clone())
    }
}

/// Renders `reply` as Block Kit; buttons carry `workspace` in their values.
pub fn render(reply: &Reply, workspace: WorkspaceId) -> Rendered {
    let blocks = reply
        .blocks
        .iter()
        .map(|b| render_block(b, workspace))
        .collect();
    Rendered {
        blocks,
        text: cap(&escape_mrkdwn(&reply.text), MAX_TEXT_CHARS),
    }
}

fn render_block(block: &Block, workspace: WorkspaceId) -> SlackBlock {
    match block {
        Block::Header(text) => {
            SlackBlock::Header(SlackHeaderBlock::new(plain(text, MAX_HEADER_CHARS)))
        }
        Block::Section(md) => section(to_mrkdwn(md)),
        Block::Code(code) => section(code_to_mrkdwn(code)),
        Block::Fields(fields) => SlackBlock::Section(
            SlackSectionBlock::new().with_fields(fields.iter().map(field).collect()),
        ),
        Block::Badges(badges) => SlackBlock::Context(SlackContextBlock::new(vec![
            SlackContextBlockElement::MarkDown(SlackBlockMarkDownText::new(
                badges
                    .iter()
                    .map(|b| badge(*b))
                    .collect::<Vec<_>>()
                    .join("   "),
            )),
        ])),
        Block::Buttons(buttons) => SlackBlock::Actions(SlackActionsBlock::new(
            buttons.iter().map(|b| button(b, workspace)).collect(),
        )),
        Block::Context(md) => SlackBlock::Context(SlackContextBlock::new(vec![
            SlackContextBlockElement::MarkDown(SlackBlockMarkDownText::new(cap(
                &to_mrkdwn(md),
                MAX_TEXT_CHARS,
            ))),
        ])),
    }
}

fn section(mrkdwn: String) -> SlackBlock {
    SlackBlock::Section(SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(
        SlackBlockMarkDownText::new(cap(&mrkdwn, MAX_TEXT_CHARS)),
    )))
}

fn field(f: &Field) -> SlackBlockText {
    let text = format!("*{}*\n{}", escape_mrkdwn(&f.label), to_mrkdwn(&f.value));
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(cap(&text, MAX_FIELD_CHARS)))
}

fn badge(b: Badge) -> String {
    let icon = match b {
        Badge::Destructive => ":warning:",
        Badge::ApprovalRequired => ":lock:",
        Badge::Approved => ":white_check_mark:",
        Badge::Rehearsal => ":test_tube:",
        Badge::Draft => ":memo:",
    };
    format!("{icon} *{}*", b.label())
}

fn button(b: &Button, workspace: WorkspaceId) -> SlackActionBlockElement {
    let mut el = SlackBlockButtonElement::new(plain(&b.label, MAX_BUTTON_LABEL_CHARS))
        .with_action_id(SlackActionId(b.action_id.clone()))
        .with_value(ButtonPayload::of(workspace, b).encode());
    match b.style {
        ButtonStyle::Default => {}
        ButtonStyle::Primary => el = el.with_style(SlackBlockButtonStyle::Primary),
        ButtonStyle::Danger => el = el.with_style(SlackBlockButtonStyle::Danger),
    }
    SlackActionBlockElement::Button(el)
}

/// Plain text, escaped and cut to `max` characters.
fn plain(text: &str, max: usize) -> SlackBlockPlainTextOnly {
    SlackBlockPlainTextOnly::from(
        SlackBlockPlainText::new(cap(&escape_mrkdwn(text), max)).with_emoji(true),
    )
}

/// What the reason modal remembers between the click and the submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalContext {
    /// The button's action id.
    #[serde(rename = "a")]
    pub action_id: String,
    /// The button's value, as Slack sent it.
    #[serde(rename = "v")]
    pub value: String,
    /// The channel the card is in.
    #[serde(rename = "c")]
    pub channel: String,
    /// The card's message, when the click came from one.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message_ts: Option<String>,
    /// The thread the card is in.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
}

/// The modal asking for a reason or note before a Skip…, Failed… or Abort… click is sent.
pub fn prompt_modal(prompt: &Prompt, context: &ModalContext) -> SlackView {
    let input = SlackInputBlock::new(
        plain(&prompt.label, MAX_INPUT_LABEL_CHARS),
        SlackInputBlockElement::PlainTextInput(
            SlackBlockPlainTextInputElement::new()
                .with_action_id(SlackActionId(REASON_ACTION_ID.to_owned()))
                .with_multiline(true)
                .with_max_length(MAX_REASON_CHARS),
        ),
    )
    .with_block_id(SlackBlockId(REASON_BLOCK_ID.to_owned()));
    SlackView::Modal(
        SlackModalView::new(
            plain(&prompt.title, MAX_MODAL_TITLE_CHARS),
            vec![SlackBlock::Input(input)],
        )
        .with_submit(plain(&prompt.submit, MAX_MODAL_TITLE_CHARS))
        .with_close(plain("Cancel", MAX_MODAL_TITLE_CHARS))
        .with_callback_id(SlackCallbackId(PROMPT_CALLBACK_ID.to_owned()))
        .with_private_metadata(serde_json::to_string(context).unwrap_or_default()),
    )
}

/// Cuts escaped text to at most `max` characters, ending in `…`, never inside an entity
/// (`&amp;`, `&lt;`, `&gt;`).
pub fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::reply::ACTION_SKIP;

    #[test]
    fn caps_without_cutting_entities() {
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(cap("abcd", 3), "ab…");
        assert_eq!(cap("a&amp;b", 4), "a…");
        assert_eq!(cap("a&amp;bcd", 7), "a&amp;…");
    }

    #[test]
    fn button_payload_round_trips() {
        let ws = WorkspaceId::new();
        let b = Button {
            action_id: ACTION_SKIP.into(),
            label: "Skip…".into(),
            value: "EX-00001:2".into(),
            style: ButtonStyle::Default,
            prompt: Some(Prompt {
                title: "Skip step 2".into(),
                label: "Why?".into(),
                submit: "Skip".into(),
            }),
        };
        let p = ButtonPayload::of(ws, &b);
        let back = ButtonPayload::decode(&p.encode()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.prompt().unwrap().title, "Skip step 2");
        assert!(ButtonPayload::decode("EX-00001:2").is_none());
    }

    #[test]
    fn nothing_can_ping() {
        let reply = Reply::public(
            "<!channel> & @here",
            vec![
                Block::Header("<!channel> title".into()),
                Block::Section("hi <!here> @channel".into()),
                Block::Fields(vec![Field::new("<!everyone>", "@everyone")]),
                Block::Code("echo <!channel>".into()),
            ],
        );
        let r = render(&reply, WorkspaceId::new());
        let json = serde_json::to_string(&r.blocks).unwrap() + &r.text;
        for bad in [
            "<!channel>",
            "<!here>",
            "<!everyone>",
            "@channel",
            "@here",
            "@everyone",
        ] {
            assert!(!json.contains(bad), "{bad} in {json}");
        }
    }
}
