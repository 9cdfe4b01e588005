//! The two charts, as SVG text: the convergence CDF (one line per
//! distribution) and the ratios against their same-run references (one bar
//! per figure with a ratio, the goal marked where the goal is a ratio).
//! plotters without its `ttf` feature needs no system fonts: the SVG
//! backend writes plain `<text>` elements and the viewer picks the font.

use crate::markdown::num;
use crate::results::{goal_ratio, Distribution, Figure};
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const MET: RGBColor = RGBColor(46, 139, 87);
const MISSED: RGBColor = RGBColor(200, 60, 50);
const NO_GOAL: RGBColor = RGBColor(120, 130, 150);
const GOAL: RGBColor = RGBColor(20, 20, 20);

// plotters' errors borrow the backend's error type; anyhow wants 'static.
fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// The CDF of every distribution: x in ms (linear), y the fraction of
/// samples (for convergence: of (claim, node) pairs) at or below x.
pub fn convergence_cdf(dists: &[&Distribution]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = dists
            .iter()
            .filter_map(|d| d.samples_ms.last())
            .fold(1.0_f64, |a, b| a.max(*b));
        let mut chart = ChartBuilder::on(&root)
            .caption("Pod-route convergence: CDF per case", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max * 1.05, 0.0..1.0_f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("ms from the start of the CNI ADD")
            .y_desc("fraction of (claim, node) pairs")
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        for (i, d) in dists.iter().enumerate() {
            let n = d.samples_ms.len();
            if n == 0 {
                continue;
            }
            // A step line: the fraction rises at each sample.
            let mut points = Vec::with_capacity(2 * n + 1);
            points.push((0.0, 0.0));
            for (k, &x) in d.samples_ms.iter().enumerate() {
                points.push((x, k as f64 / n as f64));
                points.push((x, (k + 1) as f64 / n as f64));
            }
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{}: {} (n={n})", d.bench, d.case))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A bar's label: where the figure is from and what it is compared with.
pub fn bar_label(f: &Figure) -> String {
    let reference = f.reference.as_deref().unwrap_or("reference");
    let label = format!(
        "§{} {}: {}, {} vs {reference}",
        f.section, f.bench, f.case, f.metric
    );
    if label.chars().count() > 90 {
        format!("{}…", label.chars().take(89).collect::<String>())
    } else {
        label
    }
}

/// One horizontal bar per figure with a (positive) ratio, on a log axis
/// (0.5× and 2× are as far from 1×), coloured by whether its goal was met,
/// with the goal's ratio drawn across the bar where the goal is a ratio.
pub fn ratios(figs: &[&Figure]) -> Result<String> {
    // Reversed: plotters counts bands from the bottom, the report reads
    // from the top.
    let bars: Vec<(&Figure, f64)> = figs
        .iter()
        .rev()
        .filter_map(|f| Some((*f, f.ratio.filter(|r| *r > 0.0)?)))
        .collect();
    let labels: Vec<String> = bars.iter().map(|(f, _)| bar_label(f)).collect();
    let goals: Vec<Option<f64>> = bars
        .iter()
        .map(|(f, _)| f.goal.as_deref().and_then(goal_ratio).filter(|g| *g > 0.0))
        .collect();
    let (lo, hi) = bars
        .iter()
        .map(|b| b.1)
        .chain(goals.iter().flatten().copied())
        .chain([1.0])
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (lo, hi) = (lo / 2.0, hi * 2.0);
    let n = bars.len().max(1);
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(10);
    let label_px = (label_width as u32 * 7 + 20).clamp(120, 700);
    let height = (n as u32 * 28 + 150).max(260);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (label_px + 640, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Ratios against the same-run reference", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(label_px)
            .build_cartesian_2d((lo..hi).log_scale(), (0..n as i32).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("ratio to the reference (log scale; 1 = as the reference)")
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(err)?;
        let band = |i: usize| {
            (
                SegmentValue::Exact(i as i32),
                SegmentValue::Exact(i as i32 + 1),
            )
        };
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (f, r))| {
                let color = match f.met {
                    Some(true) => MET,
                    Some(false) => MISSED,
                    None => NO_GOAL,
                };
                let (a, b) = band(i);
                let mut rect = Rectangle::new([(lo, a), (*r, b)], color.filled());
                rect.set_margin(4, 4, 0, 0);
                rect
            }))
            .map_err(err)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
                Text::new(
                    format!(" {}×", num(*r)),
                    (*r, SegmentValue::CenterOf(i as i32)),
                    ("sans-serif", 12)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(err)?;
        chart
            .draw_series(goals.iter().enumerate().filter_map(|(i, g)| {
                let (a, b) = band(i);
                Some(PathElement::new(
                    [(*g.as_ref()?, a), (*g.as_ref()?, b)],
                    GOAL.stroke_width(3),
                ))
            }))
            .map_err(err)?
            .label("goal (a ratio)")
            .legend(|(x, y)| {
                PathElement::new([(x + 5, y - 7), (x + 5, y + 7)], GOAL.stroke_width(3))
            });
        chart
            .draw_series(std::iter::once(PathElement::new(
                [
                    (1.0, SegmentValue::Exact(0)),
                    (1.0, SegmentValue::Exact(n as i32)),
                ],
                NO_GOAL.stroke_width(1),
            )))
            .map_err(err)?;
        for (color, what) in [
            (MET, "goal met"),
            (MISSED, "goal missed"),
            (NO_GOAL, "no goal"),
        ] {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, SegmentValue<i32>)>>())
                .map_err(err)?
                .label(what)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
