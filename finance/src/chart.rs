//! Usage per category per day as an SVG chart (`usage chart`): one stacked bar a day, one
//! colour a category, for people who would rather look than read. Written by hand: a chart of
//! rectangles and labels is a few lines of SVG, and the plotting crates bring font rasterisers
//! this project does not otherwise need.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::NaiveDate;

use crate::counting::UsageRow;
use crate::period::Period;

/// What the bars count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Measure {
    /// Priced messages.
    Messages,
    /// Units Meta charges for.
    Charged,
}

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 64.0;

/// Fixed colours for Meta's categories (colour-blind safe, Okabe–Ito); others cycle the rest.
const PALETTE: &[(&str, &str)] = &[
    ("marketing", "#E69F00"),
    ("utility", "#0072B2"),
    ("authentication", "#009E73"),
    ("authentication_international", "#56B4E9"),
    ("service", "#CC79A7"),
];
const OTHERS: &[&str] = &["#D55E00", "#F0E442", "#999999", "#000000"];

/// Totals per day and category over `rows`, for every day of `period` (empty days included).
pub fn totals(
    rows: &[UsageRow],
    period: &Period,
    measure: Measure,
) -> BTreeMap<NaiveDate, BTreeMap<String, u64>> {
    let mut out: BTreeMap<NaiveDate, BTreeMap<String, u64>> =
        period.days().map(|d| (d, BTreeMap::new())).collect();
    for r in rows {
        let value = match measure {
            Measure::Messages => r.counts.messages,
            Measure::Charged => r.counts.charged,
        };
        if let Some(day) = out.get_mut(&r.key.day) {
            *day.entry(r.key.category.clone()).or_default() += value;
        }
    }
    out
}

fn colour(category: &str, others: &mut BTreeMap<String, &'static str>) -> &'static str {
    if let Some((_, c)) = PALETTE.iter().find(|(name, _)| *name == category) {
        return c;
    }
    let next = OTHERS[others.len() % OTHERS.len()];
    others.entry(category.to_owned()).or_insert(next)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step for about five gridlines up to `max`.
fn step(max: u64) -> u64 {
    let rough = (max as f64 / 5.0).max(1.0);
    let magnitude = 10f64.powf(rough.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * magnitude >= rough)
        .unwrap_or(10.0);
    (nice * magnitude) as u64
}

/// The chart. Each bar segment is a `<rect class="bar">` whose `data-*` attributes name its
/// day, category and value (and whose tooltip says them).
pub fn svg(
    totals: &BTreeMap<NaiveDate, BTreeMap<String, u64>>,
    title: &str,
    measure: Measure,
) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = totals
        .values()
        .map(|d| d.values().sum::<u64>())
        .max()
        .unwrap_or(0);
    let step = step(max);
    let top = max.div_ceil(step).max(1) * step;
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let slot = plot_w / totals.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let unit = match measure {
        Measure::Messages => "messages",
        Measure::Charged => "charged",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="28" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut v = 0;
    while v <= top {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            y = y(v),
        );
        v += step;
    }
    let mut others = BTreeMap::new();
    let mut legend: BTreeMap<String, &str> = BTreeMap::new();
    let label_every = totals.len().div_ceil(15).max(1);
    for (i, (day, categories)) in totals.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0;
        for (category, value) in categories.iter().filter(|(_, v)| **v > 0) {
            let c = colour(category, &mut others);
            legend.insert(category.clone(), c);
            let (y0, y1) = (y(base), y(base + value));
            let _ = writeln!(
                s,
                r#"<rect class="bar" data-day="{day}" data-category="{cat}" data-value="{value}" x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{h:.1}" fill="{c}"><title>{day} {cat}: {value} {unit}</title></rect>"#,
                cat = escape(category),
                h = y0 - y1,
            );
            base += value;
        }
        if i % label_every == 0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                TOP + plot_h + 18.0,
                day.format("%m-%d")
            );
        }
    }
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{:.1}">UTC day · {unit} per category</text>"#,
        HEIGHT - 16.0
    );
    for (i, (category, c)) in legend.iter().enumerate() {
        let ly = TOP + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{ly:.1}" width="12" height="12" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT + 16.0,
            WIDTH - RIGHT + 34.0,
            ly + 11.0,
            escape(category)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals_of(days: &[(&str, &[(&str, u64)])]) -> BTreeMap<NaiveDate, BTreeMap<String, u64>> {
        days.iter()
            .map(|(d, cs)| {
                (
                    d.parse().unwrap(),
                    cs.iter().map(|(c, v)| ((*c).to_owned(), *v)).collect(),
                )
            })
            .collect()
    }

    fn attr(rect: &str, name: &str) -> f64 {
        let v = rect.split(&format!(" {name}=\"")).nth(1).unwrap();
        v.split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn bars_stack_each_category_in_proportion() {
        let t = totals_of(&[
            ("2026-11-14", &[("marketing", 300), ("utility", 100)]),
            ("2026-11-15", &[("marketing", 200), ("service", 0)]),
        ]);
        let svg = svg(&t, "usage", Measure::Messages);
        let bars: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains(r#"class="bar""#))
            .collect();
        assert_eq!(bars.len(), 3, "a zero draws nothing");
        let height = |i: usize| attr(bars[i], "height");
        assert!((height(0) / height(1) - 3.0).abs() < 0.01);
        assert!((height(0) / height(2) - 1.5).abs() < 0.01);
        // The second segment sits on the first.
        assert!((attr(bars[1], "y") + height(1) - attr(bars[0], "y")).abs() < 0.01);
        assert!(svg.contains(r#"data-category="utility" data-value="100""#));
        assert!(svg.contains("#E69F00") && svg.contains(">marketing</text>"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn names_are_escaped_and_gridlines_are_round() {
        let t = totals_of(&[("2026-11-14", &[("<odd>&", 7)])]);
        let svg = svg(&t, "a < b", Measure::Charged);
        assert!(svg.contains("&lt;odd&gt;&amp;") && svg.contains("a &lt; b"));
        assert!(!svg.contains("<odd>"));
        assert_eq!((step(7), step(1_234), step(0)), (2, 500, 1));
    }
}
