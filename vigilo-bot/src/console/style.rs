//! ANSI colour for the terminal, off unless asked for (and never when `NO_COLOR` is set).

/// Whether the environment asks for no colour (`NO_COLOR` set and not empty).
pub fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Wraps text in ANSI styles when enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    enabled: bool,
}

impl Style {
    /// Colour on (`true`) or off.
    pub fn new(enabled: bool) -> Self {
        Self { enabled }
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.enabled && !text.is_empty() {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }

    /// Bold.
    pub fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }

    /// Dim.
    pub fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }

    /// Bold red.
    pub fn red(&self, text: &str) -> String {
        self.wrap("1;31", text)
    }

    /// Bold yellow.
    pub fn yellow(&self, text: &str) -> String {
        self.wrap("1;33", text)
    }

    /// Green.
    pub fn green(&self, text: &str) -> String {
        self.wrap("32", text)
    }

    /// Cyan.
    pub fn cyan(&self, text: &str) -> String {
        self.wrap("36", text)
    }
}
