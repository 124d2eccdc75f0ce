//! Inline SVG charts, drawn here so the report needs no chart library: line charts (linear or
//! HdrHistogram's log percentile axis) and horizontal bars. Pure string building.

use std::fmt::Write;

const W: f64 = 760.0;
const H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 40.0;
/// Colours of successive series (colour-blind friendly).
pub const COLORS: [&str; 6] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum XAxis {
    /// Seconds.
    Time,
    /// Percentiles on HdrHistogram's axis: x = log10(1 / (1 − p)), ticks at 0, 90, 99, 99.9 ...
    Percentile,
}

/// The deepest percentile shown (99.9999 %): the 100 % point is drawn there.
const MAX_NINES: f64 = 6.0;

fn percentile_x(p: f64) -> f64 {
    let q = (p / 100.0).clamp(0.0, 1.0);
    if q >= 1.0 {
        MAX_NINES
    } else {
        (1.0 / (1.0 - q)).log10().min(MAX_NINES)
    }
}

/// A round step giving about `n` ticks over `span`.
pub fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{:.3}", v).trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.4}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart in a `<figure class="chart">`; a chart with no points says so instead.
pub fn line_chart(id: &str, title: &str, x_axis: XAxis, y_label: &str, lines: &[Line]) -> String {
    line_chart_marked(id, title, x_axis, y_label, lines, &[])
}

/// [`line_chart`] with labelled vertical marks at x values (stage boundaries on a time axis;
/// `data-t` holds the value).
pub fn line_chart_marked(
    id: &str,
    title: &str,
    x_axis: XAxis,
    y_label: &str,
    lines: &[Line],
    marks: &[(f64, String)],
) -> String {
    let mut s = format!("<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>", escape(title));
    let xs = |x: f64| if x_axis == XAxis::Percentile { percentile_x(x) } else { x };
    // Results files are input: drop what cannot be drawn rather than trust it.
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && p.0.abs() < 1e12 && p.1.abs() < 1e15;
    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line { name: l.name.clone(), points: l.points.iter().filter(finite).copied().collect() })
        .collect();
    let lines = &lines[..];
    let pts: Vec<(f64, f64)> = lines.iter().flat_map(|l| l.points.iter().map(|&(x, y)| (xs(x), y))).collect();
    if pts.is_empty() {
        s.push_str("<p class=\"empty\">nothing recorded</p></figure>");
        return s;
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    if x_axis == XAxis::Percentile {
        x1 = x1.ceil().max(1.0);
    }
    // Both axes start at 0: the start of the run, the 0th percentile.
    x0 = x0.min(0.0);
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let ymax = pts.iter().map(|p| p.1).fold(0.0, f64::max);
    let ystep = nice_step(ymax.max(1e-9), 5.0);
    let y1 = (ymax / ystep).ceil().max(1.0) * ystep;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - y / y1 * ph;
    let _ = write!(
        s,
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" data-x0=\"{x0}\" data-x1=\"{x1}\" data-y1=\"{y1}\">",
        escape(title)
    );
    s.push_str("<g class=\"grid\">");
    let mut y = 0.0;
    // Bounded: a step too small to advance the value must not loop for ever.
    for _ in 0..64 {
        if y > y1 + ystep * 1e-6 {
            break;
        }
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\"/><text x=\"{}\" y=\"{:.1}\" class=\"yt\">{}</text>",
            W - RIGHT,
            py(y),
            py(y),
            LEFT - 6.0,
            py(y) + 4.0,
            fmt_num(y)
        );
        y += ystep;
    }
    let xticks: Vec<(f64, String)> = match x_axis {
        XAxis::Percentile => (0..=x1 as i32)
            .map(|n| {
                let p = 100.0 * (1.0 - 10f64.powi(-n));
                (n as f64, format!("{}%", fmt_num(p)))
            })
            .collect(),
        XAxis::Time => {
            let step = nice_step(x1 - x0, 8.0);
            let mut v = vec![];
            let mut t = (x0 / step).ceil() * step;
            while t <= x1 + step * 1e-6 && v.len() < 64 {
                v.push((t, format!("{}s", fmt_num(t))));
                t += step;
            }
            v
        }
    };
    for (x, label) in xticks {
        let _ = write!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{TOP}\" y2=\"{}\"/><text x=\"{:.1}\" y=\"{}\" class=\"xt\">{label}</text>",
            px(x),
            px(x),
            TOP + ph,
            px(x),
            H - BOTTOM + 16.0
        );
    }
    let _ = write!(
        s,
        "</g><text class=\"axis\" x=\"12\" y=\"{:.1}\" transform=\"rotate(-90 12 {:.1})\">{}</text>",
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    let xl = if x_axis == XAxis::Percentile { "percentile" } else { "time since start" };
    let _ = write!(s, "<text class=\"axis\" x=\"{:.1}\" y=\"{}\">{xl}</text>", LEFT + pw / 2.0, H - 4.0);
    for (t, label) in marks.iter().filter(|(t, _)| t.is_finite() && (x0..=x1).contains(&xs(*t))) {
        let x = px(xs(*t));
        let _ = write!(
            s,
            "<line class=\"stage-mark\" data-t=\"{}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" \
             stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" class=\"mark\">{}</text>",
            fmt_num(*t),
            TOP + ph,
            x + 3.0,
            TOP + 10.0,
            escape(label)
        );
    }
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.points.is_empty()) {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = l.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(xs(x)), py(y))).collect();
        let data: Vec<String> = l.points.iter().map(|&(x, y)| format!("{},{}", fmt_num(x), fmt_num(y))).collect();
        let _ = write!(
            s,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" data-name=\"{}\" \
             data-values=\"{}\" points=\"{}\"/>",
            escape(&l.name),
            data.join(" "),
            points.join(" ")
        );
    }
    s.push_str("</svg><div class=\"legend\">");
    for (i, l) in lines.iter().enumerate().filter(|(_, l)| !l.points.is_empty()) {
        let _ = write!(s, "<span><i style=\"background:{}\"></i>{}</span>", COLORS[i % COLORS.len()], escape(&l.name));
    }
    s.push_str("</div><output class=\"readout\"></output></figure>");
    s
}

/// Horizontal bars of named counts (`<rect class="bar">` each).
pub fn bars(id: &str, title: &str, items: &[(String, f64)]) -> String {
    let mut s = format!("<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>", escape(title));
    let row = 26.0;
    let h = TOP + row * items.len() as f64 + 10.0;
    let max = items.iter().map(|i| i.1).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let (label_w, pw) = (170.0, W - 170.0 - 90.0);
    let _ = write!(s, "<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\">", escape(title));
    for (i, (name, v)) in items.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = if max > 0.0 && v.is_finite() { (v / max * pw).clamp(0.0, pw) } else { 0.0 };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"yt\">{}</text><rect class=\"bar\" x=\"{label_w}\" y=\"{y:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\" data-value=\"{v}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 8.0,
            y + 15.0,
            escape(name),
            w.max(1.0),
            row - 8.0,
            COLORS[i % COLORS.len()],
            label_w + w.max(1.0) + 6.0,
            y + 15.0,
            fmt_num(*v)
        );
    }
    s.push_str("</svg></figure>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.37, 5.0), 0.1);
        assert_eq!(nice_step(730.0, 5.0), 200.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn percentile_axis_is_logarithmic_in_nines() {
        assert_eq!(percentile_x(0.0), 0.0);
        assert!((percentile_x(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(percentile_x(100.0), MAX_NINES);
    }

    #[test]
    fn a_chart_draws_its_series_inside_the_plot() {
        let l = Line { name: "p99 <ms>".into(), points: vec![(0.0, 1.0), (50.0, 2.0), (99.0, 4.0), (100.0, 5.0)] };
        let c = line_chart("lat", "Latency", XAxis::Percentile, "ms", &[l]);
        assert_eq!(c.matches("<polyline class=\"series\"").count(), 1);
        assert!(c.contains("data-name=\"p99 &lt;ms&gt;\""), "names are escaped");
        assert!(c.contains(">99%<") && c.contains(">99.9%<"), "{c}");
        let pts = c.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        for p in pts.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((LEFT..=W - RIGHT).contains(&x) && (TOP..=H - BOTTOM).contains(&y), "{p}");
        }
        let empty = line_chart("e", "Empty", XAxis::Time, "ms", &[Line { name: "x".into(), points: vec![] }]);
        assert!(empty.contains("nothing recorded") && !empty.contains("<svg"));
    }

    #[test]
    fn hostile_values_are_dropped_not_looped_over() {
        let l = Line { name: "x".into(), points: vec![(-1e300, 1e300), (1e300, 1.0), (1.0, 2.0), (2.0, 3.0)] };
        let c = line_chart("h", "H", XAxis::Time, "ms", &[l]);
        assert!(c.contains("data-values=\"1,2 2,3\""), "{c}");
        let c = line_chart("h", "H", XAxis::Time, "ms", &[Line { name: "x".into(), points: vec![(1e11, 1e14)] }]);
        assert!(c.matches("<line").count() < 200);
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let b = bars("b", "Counts", &[("missed".into(), 10.0), ("duplicated".into(), 5.0), ("reordered".into(), 0.0)]);
        assert_eq!(b.matches("<rect class=\"bar\"").count(), 3);
        assert!(b.contains("width=\"500.0\"") && b.contains("width=\"250.0\""), "{b}");
    }
}
