//! The burst's latency over time as a PNG (plotters, bitmap backend): each order is a dot at
//! the second it was accepted, its accepted → payable time in one colour and its paid → first
//! purchase time in others (burst orders and the trickle that arrived meanwhile), on a log
//! scale. Text needs a TrueType font: DejaVu Sans (Debian's `fonts-dejavu-core`), registered at
//! run time; without it the plot is skipped with a message.

use super::results::BurstResult;
use anyhow::Context;
use plotters::prelude::*;
use std::path::Path;

/// Where Debian's fonts-dejavu-core puts DejaVu Sans.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font() -> anyhow::Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let Ok(bytes) = std::fs::read(FONT) else {
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    anyhow::ensure!(
        ok,
        "{FONT} is missing or unreadable (apt-get install fonts-dejavu-core)"
    );
    Ok(())
}

/// Which latency of a point a series shows.
type Pick = Box<dyn Fn(&super::results::BurstPoint) -> Option<f64>>;

pub fn burst(path: &Path, r: &BurstResult) -> anyhow::Result<()> {
    register_font()?;
    let max_x = r
        .points
        .iter()
        .map(|p| p.accepted_s)
        .fold(1.0_f64, f64::max);
    let max_y = r
        .points
        .iter()
        .flat_map(|p| [p.payable_ms, p.purchase_after_paid_ms])
        .flatten()
        .fold(10.0_f64, f64::max);
    let root = BitMapBackend::new(path, (1200, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let title = format!(
        "burst of {} orders (+{}/s trickle): latency by acceptance time",
        r.burst_orders, r.trickle_per_s
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x * 1.02, (1.0..max_y * 1.5).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("order accepted at (s after the burst began)")
        .y_desc("latency (ms, log scale)")
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let series: [(&str, RGBColor, Pick); 3] = [
        (
            "accepted → payable (intent stored)",
            RGBColor(31, 119, 180),
            Box::new(|p| p.payable_ms),
        ),
        (
            "paid → first purchase (burst orders)",
            RGBColor(214, 39, 40),
            Box::new(|p| p.purchase_after_paid_ms.filter(|_| p.in_burst)),
        ),
        (
            "paid → first purchase (orders arriving during the drain)",
            RGBColor(44, 160, 44),
            Box::new(|p| p.purchase_after_paid_ms.filter(|_| !p.in_burst)),
        ),
    ];
    for (label, colour, pick) in series {
        let dots: Vec<(f64, f64)> = r
            .points
            .iter()
            .filter_map(|p| pick(p).map(|y| (p.accepted_s, y.max(1.0))))
            .collect();
        chart
            .draw_series(
                dots.into_iter()
                    .map(|xy| Circle::new(xy, 2, colour.mix(0.6).filled())),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::BurstPoint;

    /// The plot is a PNG of the stated size (skipped where the font is not installed).
    #[test]
    fn draws_a_png() {
        if !Path::new(FONT).exists() {
            eprintln!("skipped: {FONT} is not installed");
            return;
        }
        let r = BurstResult {
            burst_orders: 3,
            points: (0..300)
                .map(|i| BurstPoint {
                    accepted_s: f64::from(i) / 10.0,
                    payable_ms: Some(f64::from(i % 50) + 5.0),
                    purchase_after_paid_ms: Some(f64::from(i) * 10.0),
                    in_burst: i < 200,
                })
                .collect(),
            ..BurstResult::default()
        };
        let path = std::env::temp_dir().join(format!("procure-burst-{}.png", uuid::Uuid::new_v4()));
        burst(&path, &r).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // IHDR: width and height, big-endian, at bytes 16..24.
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1200);
        assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 700);
        std::fs::remove_file(path).unwrap();
    }
}
