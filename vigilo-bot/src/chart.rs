//! The chart of a runbook's figures: per step, the estimate against the median actual minutes,
//! with the 90th percentile marked. SVG or PNG, drawn with `plotters` in pure Rust; text uses
//! the bundled DejaVu Sans (`assets/`), so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use vigilo_core::analytics::{RunbookStats, StepStats};

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "vigilo-sans";

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The file name ends in neither `.svg` nor `.png`.
    #[error("{0}: a chart is written as .svg or .png; name the file with one of those extensions")]
    Format(String),
    /// Drawing or writing failed.
    #[error("could not draw the chart: {0}")]
    Draw(String),
}

fn fail(e: impl std::fmt::Display) -> ChartError {
    ChartError::Draw(e.to_string())
}

fn font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled file is valid; if it were not, text would be missing, not the chart.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// The size of the chart of `stats` in pixels: taller with more steps.
pub fn size(stats: &RunbookStats) -> (u32, u32) {
    let rows = rows(stats).len().max(1) as u32;
    (1100, 150 + 46 * rows)
}

fn rows(stats: &RunbookStats) -> Vec<&StepStats> {
    stats.steps.iter().filter(|s| s.order.is_some()).collect()
}

fn label(s: &StepStats) -> String {
    let title: String = if s.title.chars().count() > 34 {
        let mut t: String = s.title.chars().take(33).collect();
        t.push('…');
        t
    } else {
        s.title.clone()
    };
    format!("{}. {title}", s.order.unwrap_or(0))
}

/// Draws the chart of `stats` on `area`.
fn draw<DB: DrawingBackend>(
    stats: &RunbookStats,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), ChartError>
where
    DB::ErrorType: 'static,
{
    font();
    let steps = rows(stats);
    let n = steps.len().max(1);
    let max = steps
        .iter()
        .flat_map(|s| {
            [
                Some(f64::from(s.est_minutes)),
                s.median_minutes,
                s.p90_minutes,
            ]
        })
        .flatten()
        .fold(1.0_f64, f64::max)
        * 1.15;
    area.fill(&WHITE).map_err(fail)?;
    let caption = format!(
        "{} {}: estimate vs actual per step ({} run{})",
        stats.runbook,
        stats.title,
        stats.executions,
        if stats.executions == 1 { "" } else { "s" }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 24).into_font())
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..max, -0.5..(n as f64 - 0.5))
        .map_err(fail)?;
    let title_of = |y: &f64| -> String {
        let i = y.round();
        if (y - i).abs() > 0.01 || i < 0.0 {
            return String::new();
        }
        let idx = n as i64 - 1 - i as i64;
        usize::try_from(idx)
            .ok()
            .and_then(|i| steps.get(i))
            .map(|s| label(s))
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&title_of)
        .x_desc("minutes")
        .label_style((FAMILY, 16).into_font())
        .axis_desc_style((FAMILY, 16).into_font())
        .light_line_style(RGBColor(245, 245, 245))
        .draw()
        .map_err(fail)?;
    let est_colour = RGBColor(190, 190, 190);
    let actual_colour = RGBColor(45, 110, 190);
    let over_colour = RGBColor(215, 95, 40);
    let p90_colour = RGBColor(150, 20, 20);
    for (i, s) in steps.iter().enumerate() {
        let c = (n - 1 - i) as f64;
        let est = f64::from(s.est_minutes);
        chart
            .draw_series([Rectangle::new(
                [(0.0, c + 0.04), (est, c + 0.36)],
                est_colour.filled(),
            )])
            .map_err(fail)?;
        if let Some(m) = s.median_minutes {
            let colour = if m > est { over_colour } else { actual_colour };
            chart
                .draw_series([Rectangle::new(
                    [(0.0, c - 0.36), (m, c - 0.04)],
                    colour.filled(),
                )])
                .map_err(fail)?;
            chart
                .draw_series([Text::new(
                    format!("{m}"),
                    (m + max * 0.008, c - 0.12),
                    (FAMILY, 14).into_font(),
                )])
                .map_err(fail)?;
        } else {
            chart
                .draw_series([Text::new(
                    "never done".to_string(),
                    (max * 0.008, c - 0.12),
                    (FAMILY, 14).into_font().color(&RGBColor(120, 120, 120)),
                )])
                .map_err(fail)?;
        }
        if let Some(p) = s.p90_minutes {
            if let Some(m) = s.median_minutes.filter(|m| p > *m) {
                chart
                    .draw_series([PathElement::new(
                        vec![(m, c - 0.34), (p, c - 0.34)],
                        p90_colour.mix(0.6).stroke_width(1),
                    )])
                    .map_err(fail)?;
            }
            chart
                .draw_series([PathElement::new(
                    vec![(p, c - 0.44), (p, c + 0.02)],
                    p90_colour.stroke_width(3),
                )])
                .map_err(fail)?;
        }
    }
    // Legend entries: empty series carrying the labels.
    let legend = [
        ("estimate", est_colour),
        ("median actual (within estimate)", actual_colour),
        ("median actual (over estimate)", over_colour),
    ];
    for (name, colour) in legend {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
            .map_err(fail)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled()));
    }
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
        .map_err(fail)?
        .label("90th percentile")
        .legend(move |(x, y)| {
            PathElement::new(
                vec![(x + 8, y - 8), (x + 8, y + 8)],
                p90_colour.stroke_width(3),
            )
        });
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, 14).into_font())
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(fail)?;
    area.present().map_err(fail)?;
    Ok(())
}

/// The chart as an SVG document.
pub fn svg(stats: &RunbookStats) -> Result<String, ChartError> {
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, size(stats)).into_drawing_area();
        draw(stats, &area)?;
    }
    Ok(out)
}

/// The chart as PNG bytes.
pub fn png(stats: &RunbookStats) -> Result<Vec<u8>, ChartError> {
    let (w, h) = size(stats);
    let mut rgb = vec![0u8; (w as usize) * (h as usize) * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(stats, &area)?;
    }
    let image = image::RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| ChartError::Draw("the bitmap has the wrong size".into()))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageOutputFormat::Png)
        .map_err(fail)?;
    Ok(bytes.into_inner())
}

/// Writes the chart to `path`, SVG or PNG by its extension.
pub fn write(stats: &RunbookStats, path: &Path) -> Result<(), ChartError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match ext.as_deref() {
        Some("svg") => svg(stats)?.into_bytes(),
        Some("png") => png(stats)?,
        _ => return Err(ChartError::Format(path.display().to_string())),
    };
    std::fs::write(path, bytes).map_err(|e| ChartError::Draw(format!("{}: {e}", path.display())))
}
