//! The HTML rendering of an [`AuditReport`]: one self-contained page (inline
//! CSS, with a print stylesheet, and inline SVG charts) laid out from the
//! document model of [`super::render`], which also gives the Markdown.

use std::fmt::Write as _;

use crate::html::escape as html_escape;

use super::render::{document, Block, Chart};
use super::AuditReport;


const CSS: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; overflow-wrap: anywhere; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #999; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
p.strong { font-size: 1.15rem; font-weight: 600; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; }
th, td { border: 1px solid #bbb; padding: .2rem .5rem; text-align: left; vertical-align: top; overflow-wrap: normal; }
th { background: #eee; }
td.mark { text-align: center; font-weight: 700; }
td.pass { color: #116611; } td.fail { color: #aa1111; } td.no_data { color: #666; }
figure { margin: .5rem 0 1rem; }
figcaption { font-size: .9rem; color: #333; }
svg { display: block; width: 100%; min-width: 34rem; max-width: 720px; height: auto; }
svg text { font: 12px sans-serif; fill: #333; }
svg .axis { stroke: #666; stroke-width: 1; }
svg .dup, svg .err { fill: #b22222; }
svg .rec { fill: #4a7ab5; }
svg .kc { fill: #c8860b; }
svg .none { fill: none; stroke: #bbb; stroke-dasharray: 2 2; }
@media (max-width: 40rem) {
  body { margin: 1rem auto; padding: 0 .75rem; }
  h1 { font-size: 1.35rem; }
}
@media print {
  body { margin: 0; max-width: none; padding: 0; font-size: 10pt; color: #000; }
  h2, h3 { break-after: avoid; }
  h2 { margin-top: 1.2rem; }
  .scroll { overflow: visible; }
  table, figure, tr, li { break-inside: avoid; }
  thead { display: table-header-group; }
  th { background: none; font-weight: 700; }
  td, th { overflow-wrap: anywhere; }
  svg { min-width: 0; max-width: 100%; }
  svg * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a[href]::after { content: " (" attr(href) ")"; font-size: .9em; }
}
@page { size: A4; margin: 1.5cm; }
"#;

pub(super) fn html(r: &AuditReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        html_escape(&format!("Uniqueness audit for {}", r.month))
    );
    for block in document(r) {
        match block {
            Block::Title(t) => {
                let _ = writeln!(out, "<h1>{}</h1>", html_escape(&t));
            }
            Block::Heading(t) => {
                let _ = writeln!(out, "<h2>{}</h2>", html_escape(&t));
            }
            Block::Sub(t) => {
                let _ = writeln!(out, "<h3>{}</h3>", html_escape(&t));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "<p>{}</p>", html_escape(&t));
            }
            Block::Strong(t) => {
                let _ = writeln!(out, "<p class=\"strong\">{}</p>", html_escape(&t));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_escape(&item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows, marks } => {
                out.push_str("<div class=\"scroll\">\n<table>\n<thead><tr>");
                for h in &head {
                    let _ = write!(out, "<th>{}</th>", html_escape(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for (i, cell) in row.iter().enumerate() {
                        if marks == Some(i) {
                            let class = match cell.as_str() {
                                "✓" => "pass",
                                "✗" => "fail",
                                _ => "no_data",
                            };
                            let _ = write!(out, "<td class=\"mark {class}\">{}</td>", html_escape(cell));
                        } else {
                            let _ = write!(out, "<td>{}</td>", html_escape(cell));
                        }
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n</div>\n");
            }
            Block::Chart(chart) => out.push_str(&svg_chart(&chart)),
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A bar chart: one group of bars per day, a dashed outline where a day
/// has no data, the maximum on the y axis, and a tooltip per bar.
fn svg_chart(chart: &Chart) -> String {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 22.0;
    const BOTTOM: f64 = 22.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = chart.days.len().max(1) as f64;
    let slot = plot_w / n;
    let k = chart.series.len().max(1) as f64;
    let bar = (slot * 0.8 / k).max(1.0);
    let max = chart
        .series
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure>\n<div class=\"scroll\">\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">\n",
        html_escape(&chart.title)
    );
    let base = TOP + plot_h;
    let _ = writeln!(s, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>", W - RIGHT);
    let _ = writeln!(s, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\"/>");
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", LEFT - 4.0, TOP + 4.0, max as u64);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>", LEFT - 4.0);
    let mut legend_x = LEFT;
    for (name, class, _) in &chart.series {
        let _ = writeln!(
            s,
            "<rect class=\"{class}\" x=\"{legend_x}\" y=\"4\" width=\"10\" height=\"10\"/><text x=\"{}\" y=\"13\">{}</text>",
            legend_x + 14.0,
            html_escape(name)
        );
        legend_x += 24.0 + 7.2 * name.len() as f64;
    }
    for (d, day) in chart.days.iter().enumerate() {
        let x0 = LEFT + d as f64 * slot + slot * 0.1;
        if chart.series.iter().all(|(_, _, v)| v.get(d).copied().flatten().is_none()) {
            let _ = writeln!(
                s,
                "<rect class=\"none\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{day}: no data</title></rect>",
                base - 6.0,
                slot * 0.8,
                6.0
            );
        }
        for (i, (name, class, values)) in chart.series.iter().enumerate() {
            if let Some(v) = values.get(d).copied().flatten() {
                let h = plot_h * v as f64 / max;
                let _ = writeln!(
                    s,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{day}: {v} {}</title></rect>",
                    x0 + i as f64 * bar,
                    base - h,
                    html_escape(name)
                );
            }
        }
        let day_of_month = day.format("%-d").to_string();
        if d == 0 || (d + 1) % 5 == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{day_of_month}</text>",
                LEFT + d as f64 * slot + slot / 2.0,
                H - 6.0
            );
        }
    }
    let _ = write!(s, "</svg>\n</div>\n<figcaption>{}</figcaption>\n</figure>\n", html_escape(&chart.title));
    s
}
