//! `/runbook stats RB-…`: a compact table of per-step timing and a Unicode bar chart (the
//! Slack surface adds the chart as an image, [`crate::chart`]).

use vigilo_core::analytics::RunbookStats;

use super::markdown::escape_markdown;
use super::reply::{Block, Image, Reply};

/// A bar of `value` out of `max`, `width` cells wide, in eighths of a cell.
pub fn bar(value: f64, max: f64, width: usize) -> String {
    const PARTS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    if max <= 0.0 || value <= 0.0 || !value.is_finite() {
        return String::new();
    }
    let eighths = ((value / max).min(1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(PARTS[eighths % 8 - 1]);
    }
    if s.is_empty() {
        s.push('▏');
    }
    s
}

fn mins(m: Option<f64>) -> String {
    m.map_or_else(|| "-".into(), |m| format!("{m}"))
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0))
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// The compact table: one line per step of the newest version.
pub fn table(s: &RunbookStats) -> String {
    let rows: Vec<[String; 6]> = s
        .steps
        .iter()
        .filter_map(|st| {
            Some([
                format!("{}. {}", st.order?, cut(&st.title, 28)),
                st.runs.to_string(),
                st.est_minutes.to_string(),
                mins(st.median_minutes),
                mins(st.p90_minutes),
                format!("{}/{}", pct(st.skip_rate), pct(st.fail_rate)),
            ])
        })
        .collect();
    let header = ["STEP", "RUNS", "EST", "MED", "P90", "SKIP/FAIL"];
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header.map(String::from));
    for r in &rows {
        out.push('\n');
        out.push_str(&line(r));
    }
    out
}

/// Estimate (`░`) against median actual (`█`) per step, in minutes.
pub fn bar_chart(s: &RunbookStats) -> String {
    let steps: Vec<_> = s.steps.iter().filter(|st| st.order.is_some()).collect();
    let max = steps
        .iter()
        .flat_map(|st| [Some(f64::from(st.est_minutes)), st.median_minutes])
        .flatten()
        .fold(0.0_f64, f64::max);
    let mut out = String::new();
    for st in steps {
        let est = f64::from(st.est_minutes);
        out.push_str(&format!(
            "{}. {}\n   est {:>6}  {}\n   act {:>6}  {}\n",
            st.order.unwrap_or(0),
            cut(&st.title, 40),
            st.est_minutes,
            bar(est, max, 30).replace('█', "░"),
            mins(st.median_minutes),
            st.median_minutes
                .map_or_else(|| "never done".into(), |m| bar(m, max, 30)),
        ));
    }
    out
}

/// The one-line summary of the runbook's figures.
pub fn summary(s: &RunbookStats) -> String {
    format!(
        "{} execution{} · {} completed · {} aborted · whole run: est {} min, median {} min",
        s.executions,
        if s.executions == 1 { "" } else { "s" },
        pct(s.completion_rate),
        pct(s.abort_rate),
        s.est_minutes,
        mins(s.median_minutes)
    )
}

/// The reply to `/runbook stats`: the table and the Unicode chart. A surface that can show
/// images adds the drawn chart ([`crate::chart::png`]).
pub fn reply(s: &RunbookStats) -> Reply {
    let title = format!("Stats of {} · {}", s.runbook, s.title);
    let mut blocks = vec![
        Block::Header(cut(&title, 150)),
        Block::Section(escape_markdown(&summary(s))),
        Block::Code(table(s)),
    ];
    if s.executions > 0 {
        blocks.push(Block::Code(bar_chart(s)));
    }
    blocks.push(Block::Context(
        "Minutes; medians over the runs where the step was done; rehearsals left out.".into(),
    ));
    let mut reply = Reply::public(title.clone(), blocks);
    if s.executions > 0 {
        match crate::chart::png(s) {
            Ok(png) => {
                reply.image = Some(Image {
                    filename: format!("{}-stats.png", s.runbook),
                    title,
                    png,
                });
            }
            Err(e) => tracing::warn!(error = %e, "the stats chart could not be drawn"),
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_in_eighths() {
        assert_eq!(bar(10.0, 10.0, 3), "███");
        assert_eq!(bar(5.0, 10.0, 3), "█▌");
        assert_eq!(bar(0.0, 10.0, 3), "");
        assert_eq!(bar(0.01, 10.0, 3), "▏");
    }
}
