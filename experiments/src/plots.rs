//! The plots of a run, as self-contained SVG: `accuracy.svg` (test accuracy per round, secure
//! against plaintext) and `stages.svg` (seconds per protocol stage per round).
//!
//! Hand-written rather than drawn by a plotting crate: the files are lines, rectangles and
//! `<text>` elements, so producing them needs no font files, and any browser or `rsvg-convert`
//! renders the text with whatever sans-serif font it has.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::metrics::{Mode, RoundMetrics};
use crate::results::ModeRun;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 480.0;
/// The plot area; the legend goes right of it.
const LEFT: f64 = 75.0;
const RIGHT: f64 = 610.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 420.0;
const LEGEND_X: f64 = 630.0;

const SECURE_COLOUR: &str = "#d62728";
const PLAINTEXT_COLOUR: &str = "#1f77b4";
/// A protocol stage in `stages.svg`.
struct Stage {
    label: &'static str,
    colour: &'static str,
    seconds: fn(&RoundMetrics) -> f64,
}

/// The stages, in stacking order (bottom first).
const STAGES: [Stage; 5] = [
    Stage {
        label: "local training",
        colour: "#4e79a7",
        seconds: |m| m.train_s,
    },
    Stage {
        label: "encrypt",
        colour: "#f28e2b",
        seconds: |m| m.encrypt_s,
    },
    Stage {
        label: "fog add",
        colour: "#59a14f",
        seconds: |m| m.fog_add_s,
    },
    Stage {
        label: "partial decrypt",
        colour: "#e15759",
        seconds: |m| m.partial_decrypt_s,
    },
    Stage {
        label: "combine + decode",
        colour: "#b07aa1",
        seconds: |m| m.combine_s,
    },
];

/// Writes [`accuracy_svg`] to `path`.
pub fn write_accuracy_svg(path: &Path, runs: &[ModeRun]) -> Result<()> {
    std::fs::write(path, accuracy_svg(runs))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Writes [`stages_svg`] to `path`.
pub fn write_stages_svg(path: &Path, runs: &[ModeRun]) -> Result<()> {
    std::fs::write(path, stages_svg(runs))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Test accuracy (%) per round: one polyline per mode run, one point per round with a finite
/// accuracy; secure in red over the dashed blue plaintext baseline.
pub fn accuracy_svg(runs: &[ModeRun]) -> String {
    let mut svg = Svg::new("Test accuracy per round");
    let points = |run: &ModeRun| -> Vec<(f64, f64)> {
        run.rounds
            .iter()
            .map(|m| (m.round as f64, m.accuracy * 100.0))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let all: Vec<(f64, f64)> = runs.iter().flat_map(points).collect();
    let x = round_scale(all.iter().map(|p| p.0));
    let y = {
        let (lo, hi) = min_max(all.iter().map(|p| p.1)).unwrap_or((0.0, 100.0));
        let s = Scale::nice(lo.max(0.0), hi.min(100.0));
        // Accuracy lives in [0, 100]: no tick beyond it.
        Scale {
            lo: s.lo.max(0.0),
            hi: s.hi.min(100.0),
            ..s
        }
    };
    let frame = Frame { x, y };
    frame.draw_axes(&mut svg, "round", "test accuracy (%)");

    // Plaintext first and wider, so an identical secure curve on top leaves it visible.
    let mut ordered: Vec<&ModeRun> = runs.iter().collect();
    ordered.sort_by_key(|r| r.mode == Mode::Secure);
    let mut legend = Vec::new();
    for run in ordered {
        let pts: Vec<(f64, f64)> = points(run)
            .into_iter()
            .map(|(x, y)| frame.to_px(x, y))
            .collect();
        let (colour, width, dash, label) = match run.mode {
            Mode::Secure => (SECURE_COLOUR, 2.0, None, "secure (encrypted)"),
            Mode::Plaintext => (PLAINTEXT_COLOUR, 5.0, Some("9 4"), "plaintext (baseline)"),
        };
        svg.polyline(&pts, colour, width, dash);
        if run.mode == Mode::Secure {
            for &(px, py) in &pts {
                svg.circle(px, py, 2.5, colour);
            }
        }
        legend.push((label, colour, LegendMark::Line(width, dash)));
    }
    legend.reverse();
    svg.legend(&legend);
    if all.is_empty() {
        svg.no_data("no rounds");
    }
    svg.finish()
}

/// Seconds per stage per round of the secure run (the plaintext run when no secure run is
/// given), as stacked bars, with the round's wall-clock time as a line. Stage times are
/// summed over the parties, so a stack can be taller than the round's wall-clock time.
pub fn stages_svg(runs: &[ModeRun]) -> String {
    let run = runs
        .iter()
        .find(|r| r.mode == Mode::Secure)
        .or_else(|| runs.iter().find(|r| r.mode == Mode::Plaintext));
    let title = match run {
        Some(r) => format!("Time per stage per round ({} run)", r.mode.as_str()),
        None => "Time per stage per round".to_string(),
    };
    let mut svg = Svg::new(&title);
    let rounds: &[RoundMetrics] = run.map_or(&[], |r| &r.rounds);
    let finite = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let stack_top = |m: &RoundMetrics| STAGES.iter().map(|s| finite((s.seconds)(m))).sum::<f64>();
    let highest = rounds
        .iter()
        .map(|m| stack_top(m).max(finite(m.wall_s)))
        .fold(0.0, f64::max);
    // Bars are centred on their round: half a round of room either side.
    let x = {
        let (lo, hi) = min_max(rounds.iter().map(|m| m.round as f64)).unwrap_or((0.0, 1.0));
        Scale {
            lo: lo - 0.5,
            hi: hi + 0.5,
            step: round_step(hi - lo),
        }
    };
    let frame = Frame {
        x,
        y: Scale::nice(0.0, if highest > 0.0 { highest } else { 1.0 }),
    };
    frame.draw_axes(&mut svg, "round", "seconds (summed over parties)");

    let bar = (frame.to_px(1.0, 0.0).0 - frame.to_px(0.0, 0.0).0) * 0.7;
    for m in rounds {
        let mut base = 0.0;
        for stage in &STAGES {
            let v = finite((stage.seconds)(m));
            if v > 0.0 {
                let (x0, y_top) = frame.to_px(m.round as f64, base + v);
                let (_, y_bottom) = frame.to_px(m.round as f64, base);
                svg.rect(x0 - bar / 2.0, y_top, bar, y_bottom - y_top, stage.colour);
            }
            base += v;
        }
    }
    let wall: Vec<(f64, f64)> = rounds
        .iter()
        .filter(|m| m.wall_s.is_finite())
        .map(|m| frame.to_px(m.round as f64, m.wall_s))
        .collect();
    svg.polyline(&wall, "#222222", 1.5, Some("4 3"));
    for &(px, py) in &wall {
        svg.circle(px, py, 2.5, "#222222");
    }

    let mut legend: Vec<(&str, &str, LegendMark)> = STAGES
        .iter()
        .rev()
        .map(|s| (s.label, s.colour, LegendMark::Box))
        .collect();
    legend.push((
        "round wall time",
        "#222222",
        LegendMark::Line(1.5, Some("4 3")),
    ));
    svg.legend(&legend);
    if rounds.is_empty() {
        svg.no_data("no rounds");
    }
    svg.finish()
}

/// One line of [`scaling_svg`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Stroke colour (`#rrggbb`).
    pub colour: &'static str,
    /// Dash pattern, `None` for a solid line.
    pub dash: Option<&'static str>,
    /// `(x, y)` points; drawn in order of `x`.
    pub points: Vec<(f64, f64)>,
}

/// Writes [`scaling_svg`] to `path`.
pub fn write_scaling_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    std::fs::write(path, scaling_svg(title, x_label, y_label, series))
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// A measurement against a size (clients, model parameters): one line with point markers per
/// series, both axes from 0 so that proportional growth reads as a straight line through the
/// origin.
pub fn scaling_svg(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let mut svg = Svg::new(title);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (_, x_hi) = min_max(all.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (_, y_hi) = min_max(all.iter().map(|p| p.1)).unwrap_or((0.0, 1.0));
    let frame = Frame {
        x: Scale::nice(0.0, x_hi.max(0.0)),
        y: Scale::nice(0.0, y_hi.max(0.0)),
    };
    frame.draw_axes(&mut svg, x_label, y_label);
    let mut legend = Vec::new();
    for s in series {
        let mut points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let px: Vec<(f64, f64)> = points.iter().map(|&(x, y)| frame.to_px(x, y)).collect();
        svg.polyline(&px, s.colour, 2.0, s.dash);
        for &(x, y) in &px {
            svg.circle(x, y, 3.0, s.colour);
        }
        legend.push((s.label.as_str(), s.colour, LegendMark::Line(2.0, s.dash)));
    }
    svg.legend(&legend);
    if all.is_empty() {
        svg.no_data("no measurements");
    }
    svg.finish()
}

/// An axis range with its tick step.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Scale {
    /// `[lo, hi]` widened to multiples of a 1-2-5 step giving about six ticks.
    fn nice(lo: f64, hi: f64) -> Scale {
        let (lo, hi) = if hi - lo > 1e-12 {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        };
        let step = nice_step((hi - lo) / 6.0);
        Scale {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        }
    }

    /// The tick values: multiples of `step` inside the range.
    fn ticks(&self) -> Vec<f64> {
        let first = (self.lo / self.step - 1e-9).ceil() as i64;
        let last = (self.hi / self.step + 1e-9).floor() as i64;
        (first..=last).map(|k| k as f64 * self.step).collect()
    }

    /// Decimals that show the step exactly enough.
    fn decimals(&self) -> usize {
        (-self.step.log10().floor()).max(0.0) as usize
    }
}

/// The 1-2-5 step nearest to `raw` (on a log scale).
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let m = raw / magnitude;
    let nice = if m < 1.5 {
        1.0
    } else if m < 3.2 {
        2.0
    } else if m < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A whole-number step for a span of rounds, giving at most about ten ticks.
fn round_step(span: f64) -> f64 {
    nice_step((span / 10.0).max(1.0))
}

/// The round axis over the given round numbers (at least one round wide).
fn round_scale(rounds: impl Iterator<Item = f64>) -> Scale {
    let (lo, hi) = min_max(rounds).unwrap_or((0.0, 1.0));
    let hi = hi.max(lo + 1.0);
    Scale {
        lo,
        hi,
        step: round_step(hi - lo),
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// The two scales of a plot, mapped onto the plot area.
struct Frame {
    x: Scale,
    y: Scale,
}

impl Frame {
    fn to_px(&self, x: f64, y: f64) -> (f64, f64) {
        let fx = (x - self.x.lo) / (self.x.hi - self.x.lo);
        let fy = (y - self.y.lo) / (self.y.hi - self.y.lo);
        (LEFT + fx * (RIGHT - LEFT), BOTTOM - fy * (BOTTOM - TOP))
    }

    /// Grid, ticks with labels, the frame and the axis titles.
    fn draw_axes(&self, svg: &mut Svg, x_label: &str, y_label: &str) {
        for y in self.y.ticks() {
            let (_, py) = self.to_px(self.x.lo, y);
            svg.line(LEFT, py, RIGHT, py, "#dddddd", 1.0);
            svg.line(LEFT - 5.0, py, LEFT, py, "#000000", 1.0);
            let label = format!("{:.*}", self.y.decimals(), y);
            svg.text(LEFT - 8.0, py + 4.0, &label, 12.0, "end", "");
        }
        for x in self.x.ticks() {
            let (px, _) = self.to_px(x, self.y.lo);
            svg.line(px, BOTTOM, px, BOTTOM + 5.0, "#000000", 1.0);
            let label = format!("{:.*}", self.x.decimals(), x);
            svg.text(px, BOTTOM + 19.0, &label, 12.0, "middle", "");
        }
        let _ = writeln!(
            svg.out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#000000" stroke-width="1"/>"##,
            RIGHT - LEFT,
            BOTTOM - TOP
        );
        svg.text(
            (LEFT + RIGHT) / 2.0,
            BOTTOM + 42.0,
            x_label,
            14.0,
            "middle",
            "",
        );
        let (cx, cy) = (20.0, (TOP + BOTTOM) / 2.0);
        let rotate = format!(r#" transform="rotate(-90 {cx} {cy})""#);
        svg.text(cx, cy, y_label, 14.0, "middle", &rotate);
    }
}

/// How a legend entry is drawn.
enum LegendMark {
    /// A line sample of this width and dash pattern.
    Line(f64, Option<&'static str>),
    /// A filled square.
    Box,
}

/// An SVG document under construction.
struct Svg {
    out: String,
}

impl Svg {
    fn new(title: &str) -> Svg {
        let mut svg = Svg {
            out: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
                 viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\">\n\
                 <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
            ),
        };
        svg.text((LEFT + RIGHT) / 2.0, 30.0, title, 16.0, "middle", "");
        svg
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
        );
    }

    fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{r}" fill="{fill}"/>"#
        );
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, dash: Option<&str>) {
        let points: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let dash = dash.map_or(String::new(), |d| format!(r#" stroke-dasharray="{d}""#));
        let _ = writeln!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="{width}" stroke-linejoin="round"{dash}/>"#,
            points.join(" ")
        );
    }

    fn text(&mut self, x: f64, y: f64, text: &str, size: f64, anchor: &str, extra: &str) {
        let _ = writeln!(
            self.out,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="#000000"{extra}>{}</text>"##,
            escape(text)
        );
    }

    /// The legend, right of the plot area, one entry per line.
    fn legend(&mut self, entries: &[(&str, &str, LegendMark)]) {
        for (i, (label, colour, mark)) in entries.iter().enumerate() {
            let y = TOP + 10.0 + 22.0 * i as f64;
            match mark {
                LegendMark::Line(width, dash) => {
                    self.polyline(
                        &[(LEGEND_X, y), (LEGEND_X + 28.0, y)],
                        colour,
                        *width,
                        *dash,
                    );
                }
                LegendMark::Box => self.rect(LEGEND_X + 7.0, y - 7.0, 14.0, 14.0, colour),
            }
            self.text(LEGEND_X + 36.0, y + 4.0, label, 13.0, "start", "");
        }
    }

    fn no_data(&mut self, what: &str) {
        self.text(
            (LEFT + RIGHT) / 2.0,
            (TOP + BOTTOM) / 2.0,
            what,
            16.0,
            "middle",
            "",
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// `text` with the XML special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::both;

    /// The `points` attribute of every `<polyline` in `svg`.
    fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
        svg.split("<polyline points=\"")
            .skip(1)
            .map(|rest| {
                rest.split('"')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        for (x, y) in polylines(svg).into_iter().flatten() {
            assert!(
                (0.0..=WIDTH).contains(&x) && (0.0..=HEIGHT).contains(&y),
                "{x},{y}"
            );
        }
    }

    #[test]
    fn scaling_lines_follow_the_points_from_the_origin() {
        let series = vec![
            Series {
                label: "round wall".into(),
                colour: "#000000",
                dash: None,
                // Out of order on purpose: drawn by x.
                points: vec![(200.0, 36.0), (10.0, 10.0), (100.0, 21.0), (50.0, 15.6)],
            },
            Series {
                label: "floor & co".into(),
                colour: "#888888",
                dash: Some("6 3"),
                points: vec![(10.0, 9.0), (200.0, 30.0)],
            },
        ];
        let svg = scaling_svg("Round time", "clients", "seconds", &series);
        well_formed(&svg);
        assert!(svg.contains("floor &amp; co") && svg.contains("clients"));
        let lines = polylines(&svg);
        // Two data lines, then two legend samples.
        assert_eq!(lines.len(), 4);
        let wall = &lines[0];
        assert_eq!(wall.len(), 4);
        // Sorted by x (left to right) and growing (upwards: smaller y).
        assert!(wall.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 < w[0].1));
        // Axes from 0: x = 10 of a 0..200 axis sits 5 % into the plot area; y = 10 s of a
        // 0..40 axis a quarter of the way up.
        assert!(
            (wall[0].0 - (LEFT + 0.05 * (RIGHT - LEFT))).abs() < 0.5,
            "{wall:?}"
        );
        assert!(
            (wall[0].1 - (BOTTOM - 0.25 * (BOTTOM - TOP))).abs() < 0.5,
            "{wall:?}"
        );
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(scaling_svg("t", "x", "y", &[]).contains("no measurements"));
    }

    #[test]
    fn accuracy_has_one_point_per_round_and_a_legend() {
        let svg = accuracy_svg(&both(7));
        well_formed(&svg);
        for word in ["secure", "plaintext", "round", "test accuracy (%)"] {
            assert!(svg.contains(word), "{word}");
        }
        let lines = polylines(&svg);
        // Two data lines, then two legend samples.
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].len(), 7);
        assert_eq!(lines[1].len(), 7);
        // x grows with the round; higher accuracy is higher up (smaller y).
        let secure = &lines[1];
        assert!(
            secure
                .windows(2)
                .all(|w| w[1].0 > w[0].0 && w[1].1 < w[0].1)
        );
        assert!(svg.contains(SECURE_COLOUR) && svg.contains(PLAINTEXT_COLOUR));
    }

    #[test]
    fn accuracy_copes_with_one_mode_one_round_and_nothing() {
        let one = &both(1)[..1];
        let svg = accuracy_svg(one);
        well_formed(&svg);
        assert_eq!(polylines(&svg)[0].len(), 1);
        assert!(!svg.contains("plaintext"));
        let svg = accuracy_svg(&[]);
        well_formed(&svg);
        assert!(svg.contains("no rounds"));
    }

    #[test]
    fn stages_stack_every_stage_of_every_round() {
        let svg = stages_svg(&both(5));
        well_formed(&svg);
        assert!(svg.contains("(secure run)"));
        for Stage { label, colour, .. } in STAGES {
            assert!(svg.contains(label), "{label}");
            // Five bars plus the legend square.
            assert_eq!(
                svg.matches(&format!("fill=\"{colour}\"")).count(),
                6,
                "{label}"
            );
        }
        assert!(svg.contains("round wall time"));
        assert_eq!(polylines(&svg)[0].len(), 5);
        let svg = stages_svg(&[]);
        well_formed(&svg);
        assert!(svg.contains("no rounds"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
    }

    #[test]
    fn ticks_are_round_numbers_covering_the_data() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        let s = Scale::nice(0.37, 0.92);
        assert!(
            close(s.lo, 0.3) && close(s.hi, 1.0) && close(s.step, 0.1),
            "{s:?}"
        );
        assert_eq!(s.ticks().len(), 8);
        assert_eq!(s.decimals(), 1);
        let s = Scale::nice(0.0, 1234.0);
        assert_eq!((s.lo, s.hi, s.step), (0.0, 1400.0, 200.0));
        assert_eq!(s.decimals(), 0);
        let flat = Scale::nice(5.0, 5.0);
        assert!(flat.lo < 5.0 && flat.hi > 5.0);
        assert_eq!(round_scale([3.0].into_iter()).hi, 4.0);
        assert_eq!(round_scale((0..200).map(f64::from)).step, 20.0);
    }
}
