//! The layout the report picture's panels share: the canvas width, each
//! panel's height and margins, the axes of a panel and its y ticks.

use crate::base::svg::{Axis, Svg};

/// The canvas width.
pub const W: f64 = 760.0;
/// One panel's height; panels stack downwards.
pub const PANEL: f64 = 380.0;
/// The margins of a panel's plot area (the legend sits in the right one).
pub const LEFT: f64 = 70.0;
pub const RIGHT: f64 = 230.0;
pub const TOP: f64 = 40.0;
pub const BOTTOM: f64 = 50.0;

/// The x and y axes of the panel whose top edge is at `top`, the x axis
/// labelled `x_label`.
pub fn axes(svg: &mut Svg, top: f64, x_label: &str) {
    let bottom = top + PANEL - BOTTOM;
    svg.line((LEFT, bottom), (W - RIGHT, bottom), "black");
    svg.line((LEFT, top + TOP), (LEFT, bottom), "black");
    svg.text(
        (LEFT + W - RIGHT) / 2.0,
        top + PANEL - 12.0,
        "middle",
        "black",
        x_label,
    );
}

/// Five tick labels of `axis` at `x` (anchored `anchor`) on the panel at
/// `top`.
pub fn y_ticks(svg: &mut Svg, top: f64, axis: &Axis, x: f64, anchor: &str) {
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let y = top + TOP + (PANEL - TOP - BOTTOM) * (1.0 - frac);
        svg.text(x, y + 4.0, anchor, "black", &axis.tick_at(frac));
    }
}
