//! Writing SVG charts: axes that map values onto pixels (linear or
//! logarithmic), and a document to draw lines, dots and text into. The
//! loss plot (`loss.svg`) and the report's picture (`report.svg`) are drawn
//! with it.

use std::fmt::Write;

/// A value range mapped onto a pixel range: `lo` onto `from`, `hi` onto `to`.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    lo: f64,
    hi: f64,
    /// Whether values are placed by their logarithm.
    pub log: bool,
    from: f64,
    to: f64,
}

impl Axis {
    /// The range of `values` (padded when they are all the same) onto
    /// `from..to`; logarithmic when every value is positive and the largest
    /// is more than `log_over` times the smallest (`1.0`: whenever positive;
    /// `f64::INFINITY`: never). No finite value: `0..1`, linear.
    pub fn fit(values: impl Iterator<Item = f64>, log_over: f64, from: f64, to: f64) -> Axis {
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        if !lo.is_finite() {
            return Axis::between(0.0, 1.0, false, from, to);
        }
        let log = lo > 0.0 && (log_over <= 1.0 || hi / lo > log_over);
        let t = |v: f64| if log { v.ln() } else { v };
        let (lo, hi) = if (t(hi) - t(lo)).abs() < 1e-12 {
            (t(lo) - 0.5, t(hi) + 0.5)
        } else {
            (t(lo), t(hi))
        };
        Axis {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    /// Exactly `lo..hi` onto `from..to`.
    pub fn between(lo: f64, hi: f64, log: bool, from: f64, to: f64) -> Axis {
        let t = |v: f64| if log { v.max(1e-30).ln() } else { v };
        Axis {
            lo: t(lo),
            hi: t(hi),
            log,
            from,
            to,
        }
    }

    /// This axis widened by `frac` of its span on each side.
    pub fn padded(self, frac: f64) -> Axis {
        let pad = (self.hi - self.lo) * frac;
        Axis {
            lo: self.lo - pad,
            hi: self.hi + pad,
            ..self
        }
    }

    /// The pixel of `v`.
    pub fn px(&self, v: f64) -> f64 {
        let t = if self.log { v.max(1e-30).ln() } else { v };
        let span = self.hi - self.lo;
        let frac = if span.abs() < 1e-300 {
            0.5
        } else {
            (t - self.lo) / span
        };
        self.from + (self.to - self.from) * frac
    }

    /// The tick label of the value at fraction `frac`, with enough
    /// decimals that the axis's five ticks read differently.
    pub fn tick_at(&self, frac: f64) -> String {
        let v = self.at(frac);
        if self.log {
            return tick(v);
        }
        let step = (self.hi - self.lo).abs() / 4.0;
        let digits = if step > 0.0 {
            (-step.log10()).ceil().clamp(0.0, 8.0) as usize
        } else {
            0
        };
        if digits <= 3 {
            tick(v)
        } else {
            format!("{v:.digits$}")
        }
    }

    /// The value at fraction `frac` of the range.
    pub fn at(&self, frac: f64) -> f64 {
        let t = self.lo + (self.hi - self.lo) * frac;
        if self.log {
            t.exp()
        } else {
            t
        }
    }
}

/// An SVG document being drawn.
pub struct Svg {
    text: String,
}

impl Svg {
    /// A white `width` × `height` canvas.
    pub fn new(width: f64, height: f64) -> Svg {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        );
        Svg { text }
    }

    /// `label` at `(x, y)`; `anchor` is `start`, `middle` or `end`.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, colour: &str, label: &str) {
        let _ = writeln!(
            self.text,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" fill=\"{colour}\">{}</text>",
            escape(label)
        );
    }

    /// A title in larger type.
    pub fn title(&mut self, x: f64, y: f64, label: &str) {
        let _ = writeln!(
            self.text,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
            escape(label)
        );
    }

    /// A straight line.
    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), colour: &str) {
        let _ = writeln!(
            self.text,
            "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"{colour}\"/>"
        );
    }

    /// A line through `points` (pixels), dashed when `dash` is given.
    pub fn polyline(
        &mut self,
        points: &[(f64, f64)],
        colour: &str,
        width: &str,
        dash: Option<&str>,
    ) {
        let points: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let dash = dash.map_or(String::new(), |d| format!(" stroke-dasharray=\"{d}\""));
        let _ = writeln!(
            self.text,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"{dash} points=\"{}\"/>",
            points.join(" ")
        );
    }

    /// A dot of radius `r`, with a tooltip when `tip` is given.
    pub fn dot(&mut self, (x, y): (f64, f64), r: f64, colour: &str, tip: Option<&str>) {
        match tip {
            Some(t) => {
                let _ = writeln!(
                    self.text,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{colour}\"><title>{}</title></circle>",
                    escape(t)
                );
            }
            None => {
                let _ = writeln!(
                    self.text,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r}\" fill=\"{colour}\"/>"
                );
            }
        }
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.text.push_str("</svg>\n");
        self.text
    }
}

/// A tick label: fewer decimals for larger values.
pub fn tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `s` safe inside an SVG text element.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_ends_onto_their_pixels() {
        let a = Axis::fit([1.0, 1000.0].into_iter(), 20.0, 0.0, 300.0);
        assert!(a.log);
        assert!((a.px(1.0) - 0.0).abs() < 1e-9 && (a.px(1000.0) - 300.0).abs() < 1e-9);
        assert!((a.px(10.0) - 100.0).abs() < 1e-6);
        let b = Axis::fit([2.0, 4.0].into_iter(), 20.0, 100.0, 0.0);
        assert!(!b.log);
        assert!((b.px(3.0) - 50.0).abs() < 1e-9 && (b.at(1.0) - 4.0).abs() < 1e-9);
        let same = Axis::fit([5.0, 5.0].into_iter(), f64::INFINITY, 0.0, 10.0);
        assert!((same.px(5.0) - 5.0).abs() < 1e-9);
        let narrow = Axis::between(0.9996, 1.0, false, 0.0, 100.0);
        assert_eq!(narrow.tick_at(0.25), "0.99970");
        let svg = {
            let mut s = Svg::new(10.0, 10.0);
            s.dot((1.0, 2.0), 3.0, "red", Some("a < b"));
            s.finish()
        };
        assert!(svg.contains("<title>a &lt; b</title>") && svg.ends_with("</svg>\n"));
    }
}
