//! The SVG chart: throughput and p99 latency against connections.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::config::{EchoScenario, Server};
use crate::runs::Run;
use crate::stats::Table;
use crate::Res;

const COLORS: [RGBColor; 5] = [
    RGBColor(200, 30, 30),
    RGBColor(30, 100, 200),
    RGBColor(30, 150, 60),
    RGBColor(90, 90, 90),
    RGBColor(220, 140, 0),
];

/// Four panels: 64 B and 16 KiB ping-pong, throughput and p99 latency.
pub fn chart(
    path: &Path,
    table: &Table,
    servers: &[Server],
    scenarios: &[EchoScenario],
) -> Res<()> {
    let root = SVGBackend::new(path, (1200, 860)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(
            "Echo servers on loopback: throughput and p99 latency against connections (medians)",
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 2));
    let sizes = [(64usize, "64 B ping-pong"), (16384, "16 KiB ping-pong")];
    for (row, &(size, title)) in sizes.iter().enumerate() {
        for col in 0..2 {
            let pick = |r: &Run| if col == 0 { r.rate } else { r.p99 };
            let series: Vec<Vec<(f64, f64)>> = servers
                .iter()
                .map(|s| {
                    scenarios
                        .iter()
                        .filter(|sc| sc.size == size && sc.depth == 1)
                        .map(|sc| (sc.conns as f64, table.med(&sc.id(), s.key, pick)))
                        .filter(|p| p.1.is_finite() && p.1 > 0.0)
                        .collect()
                })
                .collect();
            panel(&panels[row * 2 + col], servers, series, title, col == 0)?;
        }
    }
    root.present().map_err(|e| e.to_string())
}

/// One panel: a line per server, log-log.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    servers: &[Server],
    series: Vec<Vec<(f64, f64)>>,
    title: &str,
    throughput: bool,
) -> Res<()> {
    let all: Vec<f64> = series.iter().flatten().map(|p| p.1).collect();
    if all.is_empty() {
        return Ok(());
    }
    let lo = all.iter().cloned().fold(f64::MAX, f64::min) / 1.5;
    let hi = all.iter().cloned().fold(0.0, f64::max) * 1.5;
    let (ydesc, caption) = if throughput {
        ("messages/s", format!("{title}: throughput"))
    } else {
        ("p99 latency (µs)", format!("{title}: p99 latency"))
    };
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.7f64..1500f64).log_scale(), (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("connections (log)")
        .y_desc(ydesc)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| {
            if *y >= 1000.0 {
                format!("{:.0}k", y / 1000.0)
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (s, pts)) in servers.iter().zip(series).enumerate() {
        let color = COLORS[i % COLORS.len()];
        c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    c.configure_series_labels()
        .position(if throughput {
            SeriesLabelPosition::LowerLeft
        } else {
            SeriesLabelPosition::UpperLeft
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())
}
