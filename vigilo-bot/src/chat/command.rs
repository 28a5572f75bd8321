//! The command grammar of the chat bot, parsed from what a user types.
//!
//! ```text
//! help [command]
//! list [category]
//! search <words>
//! show RB-00012
//! run RB-00012 [CR-00003] [INC-00007] [rehearsal]
//! status [EX-00001]
//! done [EX-00001] [note]
//! skip [EX-00001] <reason>
//! fail [EX-00001] <note>
//! approve [EX-00001]
//! retry [EX-00001]
//! abort [EX-00001] <reason>
//! note [EX-00001] [--step N] <text>
//! handoff [EX-00001] @user
//! takeover [EX-00001]
//! history RB-00012
//! diff RB-00012 2 3
//! publish RB-00012
//! report [EX-00001]
//! ```
//!
//! A leading `/runbook` is accepted (and ignored), as is a `/` before the command word. Step
//! commands act on the open execution of the channel; an `EX-…` key right after the command word
//! names one when several are open, and `--` ends the options when a note itself starts with a
//! key. `run` also takes `--change CR-…`, `--incident INC-…` and `--rehearsal`.
//!
//! [`parse`] never panics, refuses input over [`MAX_INPUT_BYTES`] before looking at it, and
//! answers mistakes with the usage line of the command that was meant. [`Command`]'s `Display`
//! writes the canonical text, which parses back to the same command.

use std::fmt;

use vigilo_core::ids::{Key, KeyKind};

use super::limits::MAX_INPUT_BYTES;

/// The command words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subcommand {
    /// `help`.
    Help,
    /// `list`.
    List,
    /// `search`.
    Search,
    /// `show`.
    Show,
    /// `run`.
    Run,
    /// `status`.
    Status,
    /// `done`.
    Done,
    /// `skip`.
    Skip,
    /// `fail`.
    Fail,
    /// `approve`.
    Approve,
    /// `retry`.
    Retry,
    /// `abort`.
    Abort,
    /// `note`.
    Note,
    /// `handoff`.
    Handoff,
    /// `takeover`.
    Takeover,
    /// `history`.
    History,
    /// `diff`.
    Diff,
    /// `publish`.
    Publish,
    /// `report`.
    Report,
    /// `stats`.
    Stats,
}

impl Subcommand {
    /// Every command word, in the order `help` lists them.
    pub const ALL: [Subcommand; 20] = [
        Subcommand::Help,
        Subcommand::List,
        Subcommand::Search,
        Subcommand::Show,
        Subcommand::Run,
        Subcommand::Status,
        Subcommand::Done,
        Subcommand::Skip,
        Subcommand::Fail,
        Subcommand::Approve,
        Subcommand::Retry,
        Subcommand::Abort,
        Subcommand::Note,
        Subcommand::Handoff,
        Subcommand::Takeover,
        Subcommand::History,
        Subcommand::Diff,
        Subcommand::Publish,
        Subcommand::Report,
        Subcommand::Stats,
    ];

    /// The word typed.
    pub fn name(self) -> &'static str {
        match self {
            Subcommand::Help => "help",
            Subcommand::List => "list",
            Subcommand::Search => "search",
            Subcommand::Show => "show",
            Subcommand::Run => "run",
            Subcommand::Status => "status",
            Subcommand::Done => "done",
            Subcommand::Skip => "skip",
            Subcommand::Fail => "fail",
            Subcommand::Approve => "approve",
            Subcommand::Retry => "retry",
            Subcommand::Abort => "abort",
            Subcommand::Note => "note",
            Subcommand::Handoff => "handoff",
            Subcommand::Takeover => "takeover",
            Subcommand::History => "history",
            Subcommand::Diff => "diff",
            Subcommand::Publish => "publish",
            Subcommand::Report => "report",
            Subcommand::Stats => "stats",
        }
    }

    /// The usage line, as the spec writes it.
    pub fn usage(self) -> &'static str {
        match self {
            Subcommand::Help => "/runbook help [command]",
            Subcommand::List => "/runbook list [category]",
            Subcommand::Search => "/runbook search <words>",
            Subcommand::Show => "/runbook show RB-00012",
            Subcommand::Run => "/runbook run RB-00012 [CR-00003] [INC-00007] [rehearsal]",
            Subcommand::Status => "/runbook status [EX-00001]",
            Subcommand::Done => "/runbook done [note]",
            Subcommand::Skip => "/runbook skip <reason>",
            Subcommand::Fail => "/runbook fail <note>",
            Subcommand::Approve => "/runbook approve",
            Subcommand::Retry => "/runbook retry",
            Subcommand::Abort => "/runbook abort <reason>",
            Subcommand::Note => "/runbook note [--step N] <text>",
            Subcommand::Handoff => "/runbook handoff @user",
            Subcommand::Takeover => "/runbook takeover",
            Subcommand::History => "/runbook history RB-00012",
            Subcommand::Diff => "/runbook diff RB-00012 <from-version> <to-version>",
            Subcommand::Publish => "/runbook publish RB-00012",
            Subcommand::Report => "/runbook report [EX-00001]",
            Subcommand::Stats => "/runbook stats RB-00012",
        }
    }

    /// One line saying what the command does.
    pub fn summary(self) -> &'static str {
        match self {
            Subcommand::Help => "this list, or the usage of one command",
            Subcommand::List => "published runbooks (and the drafts you may see)",
            Subcommand::Search => "search titles, descriptions and steps",
            Subcommand::Show => "a runbook with its steps",
            Subcommand::Run => "start an execution here; steps follow in its thread",
            Subcommand::Status => "executions open in this channel",
            Subcommand::Done => "mark the open step done",
            Subcommand::Skip => "skip the open step, with a reason",
            Subcommand::Fail => "mark the open step failed, with a note",
            Subcommand::Approve => "approve the open gated step",
            Subcommand::Retry => "open a failed step again",
            Subcommand::Abort => "abort the execution, with a reason",
            Subcommand::Note => {
                "a note on the open step (or step N); its state does not change, sealed runs take notes too"
            }
            Subcommand::Handoff => "hand the run to another member who may execute runbooks",
            Subcommand::Takeover => "become the run's operator (admins and the owner)",
            Subcommand::History => "the versions of a runbook",
            Subcommand::Diff => "what changed between two versions",
            Subcommand::Publish => "publish a draft runbook",
            Subcommand::Report => "the run's evidence, posted as a file in its thread",
            Subcommand::Stats => "per-step timing across runs, with a chart image",
        }
    }

    /// The command word `word` (lower case, a leading `/` allowed).
    pub fn from_name(word: &str) -> Option<Subcommand> {
        let w = word.strip_prefix('/').unwrap_or(word);
        Subcommand::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(w))
    }

    /// The command word closest to a mistyped `word`, if one is close enough.
    pub fn suggest(word: &str) -> Option<Subcommand> {
        let w = word
            .strip_prefix('/')
            .unwrap_or(word)
            .chars()
            .take(32)
            .collect::<String>()
            .to_lowercase();
        if let Ok(key) = w.parse::<Key>() {
            return match key.kind {
                KeyKind::Runbook => Some(Subcommand::Show),
                KeyKind::Execution => Some(Subcommand::Status),
                _ => None,
            };
        }
        const ALIASES: [(&str, Subcommand); 18] = [
            ("start", Subcommand::Run),
            ("execute", Subcommand::Run),
            ("exec", Subcommand::Run),
            ("ls", Subcommand::List),
            ("find", Subcommand::Search),
            ("grep", Subcommand::Search),
            ("complete", Subcommand::Done),
            ("finish", Subcommand::Done),
            ("ok", Subcommand::Done),
            ("cancel", Subcommand::Abort),
            ("comment", Subcommand::Note),
            ("handover", Subcommand::Handoff),
            ("stop", Subcommand::Abort),
            ("versions", Subcommand::History),
            ("log", Subcommand::History),
            ("compare", Subcommand::Diff),
            ("view", Subcommand::Show),
            ("info", Subcommand::Show),
        ];
        if let Some((_, s)) = ALIASES.iter().find(|(a, _)| *a == w) {
            return Some(*s);
        }
        let len = w.chars().count();
        let threshold = (len / 2).clamp(1, 3);
        Subcommand::ALL
            .into_iter()
            .map(|s| (distance(&w, s.name()), s))
            .filter(|(d, _)| *d <= threshold)
            .min_by_key(|(d, _)| *d)
            .map(|(_, s)| s)
            .or_else(|| {
                (len >= 3)
                    .then(|| {
                        Subcommand::ALL
                            .into_iter()
                            .find(|s| s.name().starts_with(&w))
                    })
                    .flatten()
            })
    }
}

impl fmt::Display for Subcommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed chat command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The command list, or one command's usage.
    Help {
        /// The command asked about.
        topic: Option<Subcommand>,
    },
    /// Runbooks, optionally of one category.
    List {
        /// The category.
        category: Option<String>,
    },
    /// Full-text search.
    Search {
        /// The words.
        words: String,
    },
    /// One runbook with its steps.
    Show {
        /// `RB-…`.
        runbook: Key,
    },
    /// Start an execution in this channel.
    Run {
        /// `RB-…`.
        runbook: Key,
        /// `CR-…` to link.
        change: Option<Key>,
        /// `INC-…` to link.
        incident: Option<Key>,
        /// A practice run.
        rehearsal: bool,
    },
    /// The executions open in this channel (or one).
    Status {
        /// `EX-…`.
        execution: Option<Key>,
    },
    /// Mark the open step done.
    Done {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
        /// An optional note.
        note: Option<String>,
    },
    /// Skip the open step.
    Skip {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
        /// Why (required).
        reason: String,
    },
    /// Mark the open step failed.
    Fail {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
        /// What went wrong (required).
        note: String,
    },
    /// Approve the open gated step.
    Approve {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
    },
    /// Open a failed step again.
    Retry {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
    },
    /// Abort the execution.
    Abort {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
        /// Why (required).
        reason: String,
    },
    /// A note on a step; the state does not change.
    Note {
        /// `EX-…`, when several are open (or to note a sealed one).
        execution: Option<Key>,
        /// The step, 1-based; the open one when absent.
        step: Option<u32>,
        /// The note (required).
        text: String,
    },
    /// Hand the run to another member.
    Handoff {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
        /// The member: `@handle`, `handle`, or a platform mention (`<@U123>`).
        to: String,
    },
    /// Become the run's operator.
    Takeover {
        /// `EX-…`, when several are open.
        execution: Option<Key>,
    },
    /// The versions of a runbook.
    History {
        /// `RB-…`.
        runbook: Key,
    },
    /// The diff between two versions.
    Diff {
        /// `RB-…`.
        runbook: Key,
        /// The older version.
        from: u32,
        /// The newer version.
        to: u32,
    },
    /// Publish a runbook.
    Publish {
        /// `RB-…`.
        runbook: Key,
    },
    /// Post an execution's report as a file in its thread.
    Report {
        /// The execution named, else the newest started in the channel.
        execution: Option<Key>,
    },
    /// Per-step timing across a runbook's runs.
    Stats {
        /// `RB-…`.
        runbook: Key,
    },
}

impl Command {
    /// The command word.
    pub fn subcommand(&self) -> Subcommand {
        match self {
            Command::Help { .. } => Subcommand::Help,
            Command::List { .. } => Subcommand::List,
            Command::Search { .. } => Subcommand::Search,
            Command::Show { .. } => Subcommand::Show,
            Command::Run { .. } => Subcommand::Run,
            Command::Status { .. } => Subcommand::Status,
            Command::Done { .. } => Subcommand::Done,
            Command::Skip { .. } => Subcommand::Skip,
            Command::Fail { .. } => Subcommand::Fail,
            Command::Approve { .. } => Subcommand::Approve,
            Command::Retry { .. } => Subcommand::Retry,
            Command::Abort { .. } => Subcommand::Abort,
            Command::Note { .. } => Subcommand::Note,
            Command::Handoff { .. } => Subcommand::Handoff,
            Command::Takeover { .. } => Subcommand::Takeover,
            Command::History { .. } => Subcommand::History,
            Command::Diff { .. } => Subcommand::Diff,
            Command::Publish { .. } => Subcommand::Publish,
            Command::Report { .. } => Subcommand::Report,
            Command::Stats { .. } => Subcommand::Stats,
        }
    }
}

/// Why a text is not a command. The message names the problem and the usage that was meant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Longer than [`MAX_INPUT_BYTES`].
    #[error("that command is {len} bytes long; commands are at most {MAX_INPUT_BYTES} bytes")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// The command word is not known.
    #[error(
        "unknown command `{word}`{}",
        suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_else(|| "; type `help` for the commands".into())
    )]
    Unknown {
        /// The word typed (at most 40 characters of it).
        word: String,
        /// The closest command word, if any is close.
        suggestion: Option<Subcommand>,
    },
    /// The command word is known; its arguments are not right.
    #[error("{problem}. Usage: {}", command.usage())]
    Usage {
        /// The command meant.
        command: Subcommand,
        /// What is wrong.
        problem: String,
    },
}

/// Parses one command. See the module documentation for the grammar.
pub fn parse(input: &str) -> Result<Command, ParseError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(ParseError::TooLong { len: input.len() });
    }
    let mut text = input.trim();
    let (first, rest) = split_word(text);
    if first.eq_ignore_ascii_case("/runbook") || first.eq_ignore_ascii_case("runbook") {
        text = rest;
    }
    let (word, rest) = split_word(text);
    if word.is_empty() {
        return Ok(Command::Help { topic: None });
    }
    let Some(sub) = Subcommand::from_name(word) else {
        return Err(ParseError::Unknown {
            word: word.chars().take(40).collect(),
            suggestion: Subcommand::suggest(word),
        });
    };
    Args {
        sub,
        rest,
        ended: false,
    }
    .parse()
}

/// Splits off the first whitespace-separated word; the rest is trimmed at its start.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn is_execution_key(word: &str) -> bool {
    Key::parse_kind(word, KeyKind::Execution).is_ok()
}

struct Args<'a> {
    sub: Subcommand,
    rest: &'a str,
    /// A `--` ended the options: the rest is text.
    ended: bool,
}

impl<'a> Args<'a> {
    fn usage(&self, problem: impl Into<String>) -> ParseError {
        ParseError::Usage {
            command: self.sub,
            problem: problem.into(),
        }
    }

    fn next_word(&mut self) -> Option<&'a str> {
        let (w, r) = split_word(self.rest);
        self.rest = r;
        (!w.is_empty()).then_some(w)
    }

    fn key(&mut self, kind: KeyKind, missing: &str) -> Result<Key, ParseError> {
        let word = self.next_word().ok_or_else(|| self.usage(missing))?;
        Key::parse_kind(word, kind).map_err(|e| self.usage(e.to_string()))
    }

    fn end(&self) -> Result<(), ParseError> {
        let (w, _) = split_word(self.rest);
        if w.is_empty() {
            Ok(())
        } else {
            Err(self.usage(format!(
                "unexpected `{}`",
                w.chars().take(40).collect::<String>()
            )))
        }
    }

    /// An optional `EX-…` and an optional `--`.
    fn execution(&mut self) -> Option<Key> {
        let (w, r) = split_word(self.rest);
        if w == "--" {
            self.rest = r;
            self.ended = true;
            return None;
        }
        let key = Key::parse_kind(w, KeyKind::Execution).ok()?;
        self.rest = r;
        let (w2, r2) = split_word(self.rest);
        if w2 == "--" {
            self.rest = r2;
            self.ended = true;
        }
        Some(key)
    }

    /// An optional `--step N` (then an optional `--`).
    fn step(&mut self) -> Result<Option<u32>, ParseError> {
        let (w, r) = split_word(self.rest);
        if self.ended || !w.eq_ignore_ascii_case("--step") {
            return Ok(None);
        }
        self.rest = r;
        let word = self
            .next_word()
            .ok_or_else(|| self.usage("--step needs a step number"))?;
        let step = match word.parse::<u32>() {
            Ok(0) | Err(_) => {
                return Err(self.usage(format!(
                    "`{}` is not a step number; steps start at 1",
                    word.chars().take(40).collect::<String>()
                )));
            }
            Ok(n) => n,
        };
        let (w2, r2) = split_word(self.rest);
        if w2 == "--" {
            self.rest = r2;
            self.ended = true;
        }
        Ok(Some(step))
    }

    /// The rest of the line, trimmed, if not empty.
    fn text(&self) -> Option<String> {
        let t = self.rest.trim();
        (!t.is_empty()).then(|| t.to_owned())
    }

    fn required_text(&self, what: &str) -> Result<String, ParseError> {
        self.text()
            .ok_or_else(|| self.usage(format!("{what} is required")))
    }

    fn version(&mut self, which: &str) -> Result<u32, ParseError> {
        let word = self
            .next_word()
            .ok_or_else(|| self.usage(format!("the {which} version is required")))?;
        let digits = word
            .strip_prefix('v')
            .or_else(|| word.strip_prefix('V'))
            .unwrap_or(word);
        match digits.parse::<u32>() {
            Ok(0) => Err(self.usage("versions start at 1")),
            Ok(v) => Ok(v),
            Err(_) => Err(self.usage(format!(
                "`{}` is not a version number",
                word.chars().take(40).collect::<String>()
            ))),
        }
    }

    fn parse(mut self) -> Result<Command, ParseError> {
        const RUNBOOK_KEY: &str = "a runbook key (RB-…) is required";
        let cmd = match self.sub {
            Subcommand::Help => {
                let topic = match self.next_word() {
                    None => None,
                    Some(w) => {
                        let w = if w.eq_ignore_ascii_case("/runbook") {
                            match self.next_word() {
                                Some(w) => w,
                                None => return Ok(Command::Help { topic: None }),
                            }
                        } else {
                            w
                        };
                        Some(Subcommand::from_name(w).ok_or_else(|| ParseError::Unknown {
                            word: w.chars().take(40).collect(),
                            suggestion: Subcommand::suggest(w),
                        })?)
                    }
                };
                self.end()?;
                Command::Help { topic }
            }
            Subcommand::List => Command::List {
                category: self.text(),
            },
            Subcommand::Search => Command::Search {
                words: self.required_text("the words to search for are")?,
            },
            Subcommand::Show => {
                let runbook = self.key(KeyKind::Runbook, RUNBOOK_KEY)?;
                self.end()?;
                Command::Show { runbook }
            }
            Subcommand::History => {
                let runbook = self.key(KeyKind::Runbook, RUNBOOK_KEY)?;
                self.end()?;
                Command::History { runbook }
            }
            Subcommand::Publish => {
                let runbook = self.key(KeyKind::Runbook, RUNBOOK_KEY)?;
                self.end()?;
                Command::Publish { runbook }
            }
            Subcommand::Stats => {
                let runbook = self.key(KeyKind::Runbook, RUNBOOK_KEY)?;
                self.end()?;
                Command::Stats { runbook }
            }
            Subcommand::Diff => {
                let runbook = self.key(KeyKind::Runbook, RUNBOOK_KEY)?;
                let from = self.version("from")?;
                let to = self.version("to")?;
                self.end()?;
                Command::Diff { runbook, from, to }
            }
            Subcommand::Run => self.run()?,
            Subcommand::Status => {
                let execution = self.execution();
                self.end()?;
                Command::Status { execution }
            }
            Subcommand::Report => {
                let execution = self.execution();
                self.end()?;
                Command::Report { execution }
            }
            Subcommand::Approve => {
                let execution = self.execution();
                self.end()?;
                Command::Approve { execution }
            }
            Subcommand::Retry => {
                let execution = self.execution();
                self.end()?;
                Command::Retry { execution }
            }
            Subcommand::Done => {
                let execution = self.execution();
                Command::Done {
                    execution,
                    note: self.text(),
                }
            }
            Subcommand::Skip => {
                let execution = self.execution();
                Command::Skip {
                    execution,
                    reason: self.required_text("a skip reason")?,
                }
            }
            Subcommand::Fail => {
                let execution = self.execution();
                Command::Fail {
                    execution,
                    note: self.required_text("a failure note")?,
                }
            }
            Subcommand::Abort => {
                let execution = self.execution();
                Command::Abort {
                    execution,
                    reason: self.required_text("an abort reason")?,
                }
            }
            Subcommand::Note => {
                let execution = self.execution();
                let step = self.step()?;
                Command::Note {
                    execution,
                    step,
                    text: self.required_text("the note")?,
                }
            }
            Subcommand::Handoff => {
                let execution = self.execution();
                let to = self
                    .next_word()
                    .ok_or_else(|| self.usage("the member to hand the run to is required"))?
                    .to_owned();
                self.end()?;
                Command::Handoff { execution, to }
            }
            Subcommand::Takeover => {
                let execution = self.execution();
                self.end()?;
                Command::Takeover { execution }
            }
        };
        Ok(cmd)
    }

    fn run(&mut self) -> Result<Command, ParseError> {
        let runbook = self.key(KeyKind::Runbook, "a runbook key (RB-…) is required")?;
        let mut change = None;
        let mut incident = None;
        let mut rehearsal = false;
        while let Some(word) = self.next_word() {
            let lower = word.to_ascii_lowercase();
            let key_word = match lower.as_str() {
                "rehearsal" | "--rehearsal" => {
                    rehearsal = true;
                    continue;
                }
                "--change" | "--incident" => self
                    .next_word()
                    .ok_or_else(|| self.usage(format!("{lower} needs a key")))?,
                _ => word,
            };
            let key: Key = key_word.parse().map_err(|_| {
                self.usage(format!(
                    "unexpected `{}`",
                    key_word.chars().take(40).collect::<String>()
                ))
            })?;
            let expected = match lower.as_str() {
                "--change" => Some(KeyKind::Change),
                "--incident" => Some(KeyKind::Incident),
                _ => None,
            };
            if expected.is_some_and(|k| k != key.kind) {
                return Err(self.usage(format!("`{key}` is not the kind of key {lower} takes")));
            }
            let slot = match key.kind {
                KeyKind::Change => &mut change,
                KeyKind::Incident => &mut incident,
                _ => {
                    return Err(self.usage(format!(
                        "`{key}` cannot be linked; link a change (CR-…) or an incident (INC-…)"
                    )));
                }
            };
            if slot.replace(key).is_some_and(|old| old != key) {
                return Err(self.usage(format!("give at most one {} to link", key.kind.as_str())));
            }
        }
        Ok(Command::Run {
            runbook,
            change,
            incident,
            rehearsal,
        })
    }
}

/// Writes ` text`, with ` --` before it when its first word would otherwise be read as an
/// execution key or as the `--` marker.
fn write_text(f: &mut fmt::Formatter<'_>, execution: Option<Key>, text: &str) -> fmt::Result {
    let (first, _) = split_word(text);
    let guard = first == "--" || (execution.is_none() && is_execution_key(first));
    if guard {
        write!(f, " -- {text}")
    } else {
        write!(f, " {text}")
    }
}

fn write_execution(f: &mut fmt::Formatter<'_>, execution: Option<Key>) -> fmt::Result {
    match execution {
        Some(k) => write!(f, " {k}"),
        None => Ok(()),
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subcommand().name())?;
        match self {
            Command::Help { topic } => match topic {
                Some(t) => write!(f, " {t}"),
                None => Ok(()),
            },
            Command::List { category } => match category {
                Some(c) => write!(f, " {c}"),
                None => Ok(()),
            },
            Command::Search { words } => write!(f, " {words}"),
            Command::Show { runbook }
            | Command::History { runbook }
            | Command::Stats { runbook }
            | Command::Publish { runbook } => write!(f, " {runbook}"),
            Command::Run {
                runbook,
                change,
                incident,
                rehearsal,
            } => {
                write!(f, " {runbook}")?;
                if let Some(c) = change {
                    write!(f, " {c}")?;
                }
                if let Some(i) = incident {
                    write!(f, " {i}")?;
                }
                if *rehearsal {
                    f.write_str(" rehearsal")?;
                }
                Ok(())
            }
            Command::Status { execution }
            | Command::Report { execution }
            | Command::Approve { execution }
            | Command::Retry { execution }
            | Command::Takeover { execution } => write_execution(f, *execution),
            Command::Note {
                execution,
                step,
                text,
            } => {
                write_execution(f, *execution)?;
                if let Some(n) = step {
                    write!(f, " --step {n}")?;
                }
                // A text that would read as a key, `--` or `--step` is written after `--`.
                let (first, _) = split_word(text);
                let guard = first == "--"
                    || first.eq_ignore_ascii_case("--step")
                    || ((execution.is_none() || step.is_some()) && is_execution_key(first));
                if guard {
                    write!(f, " -- {text}")
                } else {
                    write!(f, " {text}")
                }
            }
            Command::Handoff { execution, to } => {
                write_execution(f, *execution)?;
                write!(f, " {to}")
            }
            Command::Done { execution, note } => {
                write_execution(f, *execution)?;
                match note {
                    Some(n) => write_text(f, *execution, n),
                    None => Ok(()),
                }
            }
            Command::Skip {
                execution,
                reason: text,
            }
            | Command::Fail {
                execution,
                note: text,
            }
            | Command::Abort {
                execution,
                reason: text,
            } => {
                write_execution(f, *execution)?;
                write_text(f, *execution, text)
            }
            Command::Diff { runbook, from, to } => write!(f, " {runbook} {from} {to}"),
        }
    }
}

/// Damerau–Levenshtein distance (optimal string alignment) between two short words.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    if let Some(first) = d.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("dne", "done"), 1);
        assert_eq!(distance("hlep", "help"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
