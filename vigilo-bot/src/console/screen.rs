//! How replies look in a terminal.
//!
//! - A header is `== text ==`; sections are plain text; fields are `Label: value`; code is
//!   indented by four spaces; badges are `[DESTRUCTIVE]`; context is small print.
//! - Buttons are numbered choices, `[1] Done  [2] Skip…  [3] Failed…  [4] Approve`. Numbers
//!   grow over the whole session, so every button ever shown keeps its number: pressing the Done
//!   of an old card is possible, and is answered like a stale click in Slack.
//! - A file a reply carries (an execution report) is printed whole, between two lines naming it.
//! - A reply in an execution's thread is indented by two spaces; an update of an earlier
//!   message starts with `↻` (a terminal cannot change what it printed); a private reply has
//!   `» ` before each line.

use crate::chat::markdown::{sanitize, to_plain};
use crate::chat::reply::{Anchor, Badge, Block, Button, Reply, Target, Visibility};

use super::style::Style;

/// Fields are put on one line when that line stays this short.
const FIELDS_ONE_LINE: usize = 100;

/// The terminal's view of the conversation: the style and every button shown so far.
#[derive(Debug, Default)]
pub struct Screen {
    style: Style,
    buttons: Vec<Button>,
}

impl Screen {
    /// A screen drawing with `style`.
    pub fn new(style: Style) -> Self {
        Self {
            style,
            buttons: Vec::new(),
        }
    }

    /// The style.
    pub fn style(&self) -> Style {
        self.style
    }

    /// The button shown with number `n` (1-based).
    pub fn button(&self, n: usize) -> Option<&Button> {
        n.checked_sub(1).and_then(|i| self.buttons.get(i))
    }

    /// Renders one reply as lines ending in a newline, numbering its buttons.
    pub fn render(&mut self, reply: &Reply) -> String {
        let mut lines: Vec<String> = Vec::new();
        for block in &reply.blocks {
            self.block(block, &mut lines);
        }
        // A file (an execution report) is printed whole, as written, after a line naming it.
        if let Some(file) = &reply.file {
            lines.push(
                self.style
                    .dim(&format!("── {} ──", sanitize(&file.filename))),
            );
            lines.extend(sanitize(&file.content).lines().map(str::to_owned));
            lines.push(
                self.style
                    .dim(&format!("── end of {} ──", sanitize(&file.filename))),
            );
        }
        if let (Target::Update(_) | Target::Refresh(_), Some(first)) =
            (reply.target, lines.first_mut())
        {
            *first = format!("↻ {first}");
        }
        let threaded = match reply.target {
            Target::Thread(_)
            | Target::Update(Anchor::StepCard { .. })
            | Target::Refresh(Anchor::StepCard { .. }) => true,
            Target::NewMessage
            | Target::Update(Anchor::Execution(_))
            | Target::Refresh(Anchor::Execution(_)) => false,
        };
        let mut prefix = String::new();
        if threaded {
            prefix.push_str("  ");
        }
        if reply.visibility == Visibility::Private {
            prefix.push_str(&self.style.cyan("»"));
            prefix.push(' ');
        }
        let mut out = String::new();
        for line in lines {
            let full = format!("{prefix}{line}");
            out.push_str(full.trim_end());
            out.push('\n');
        }
        out
    }

    fn block(&mut self, block: &Block, lines: &mut Vec<String>) {
        let style = self.style;
        match block {
            Block::Header(t) => lines.push(style.bold(&format!("== {} ==", sanitize(t)))),
            Block::Section(md) => lines.extend(to_plain(md).lines().map(str::to_owned)),
            Block::Context(md) => {
                lines.extend(to_plain(md).lines().map(|l| style.dim(l)));
            }
            Block::Code(code) => {
                lines.extend(sanitize(code).lines().map(|l| format!("    {l}")));
            }
            Block::Fields(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        format!(
                            "{}: {}",
                            sanitize(&f.label),
                            to_plain(&f.value).replace('\n', " ")
                        )
                    })
                    .collect();
                let one = parts.join(" · ");
                if one.chars().count() <= FIELDS_ONE_LINE {
                    lines.push(one);
                } else {
                    lines.extend(parts);
                }
            }
            Block::Badges(badges) => {
                let shown: Vec<String> = badges
                    .iter()
                    .map(|b| {
                        let text = format!("[{}]", b.label());
                        match b {
                            Badge::Destructive => style.red(&text),
                            Badge::ApprovalRequired => style.yellow(&text),
                            Badge::Approved => style.green(&text),
                            Badge::Rehearsal | Badge::Draft => style.cyan(&text),
                        }
                    })
                    .collect();
                lines.push(shown.join(" "));
            }
            Block::Buttons(buttons) => {
                let mut shown = Vec::new();
                for b in buttons {
                    self.buttons.push(b.clone());
                    let n = self.buttons.len();
                    shown.push(style.bold(&format!("[{n}] {}", sanitize(&b.label))));
                }
                lines.push(shown.join("  "));
            }
        }
    }
}
