//! Render throughput: a 7-character door couplet at scale 4 to PNG, 1,000
//! times per style, printing mean and p99 (plus SVG and the indexed canvas
//! for comparison). Run with `cargo bench -p couplet-common --bench render`.
//! The budget is < 5 ms per PNG in release mode.

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::render::{render_indexed, render_png, render_svg, CoupletText, Layout, RenderOptions};
use common::Style;

const RUNS: usize = 1_000;

fn measure(mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    for _ in 0..20 {
        f();
    }
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / RUNS as u32;
    let p50 = times[RUNS / 2];
    let p99 = times[RUNS * 99 / 100 - 1];
    (mean, p50, p99)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let opts = RenderOptions {
        layout: Layout::Door,
        scale: 4,
        fu: true,
    };
    println!("7-char door couplet, scale 4, {RUNS} renders each (release build)");
    println!(
        "{:<10} {:<8} {:>9} {:>9} {:>9} {:>9}",
        "style", "output", "mean ms", "p50 ms", "p99 ms", "bytes"
    );
    for style in Style::ALL {
        let text = CoupletText {
            upper: "春回大地千山秀",
            lower: "福满人间万户新",
            hengpi: "万象更新",
            style,
        };
        let bytes = render_png(&text, &opts).map(|b| b.len()).unwrap_or(0);
        let (mean, p50, p99) = measure(|| {
            black_box(render_png(black_box(&text), &opts).ok());
        });
        println!(
            "{:<10} {:<8} {:>9.3} {:>9.3} {:>9.3} {:>9}",
            style.as_str(),
            "png",
            ms(mean),
            ms(p50),
            ms(p99),
            bytes
        );
        let (mean, p50, p99) = measure(|| {
            black_box(render_indexed(black_box(&text), &opts).ok());
        });
        println!(
            "{:<10} {:<8} {:>9.3} {:>9.3} {:>9.3} {:>9}",
            "",
            "indexed",
            ms(mean),
            ms(p50),
            ms(p99),
            "-"
        );
        let svg_len = render_svg(&text, &opts).map(|s| s.len()).unwrap_or(0);
        let (mean, p50, p99) = measure(|| {
            black_box(render_svg(black_box(&text), &opts).ok());
        });
        println!(
            "{:<10} {:<8} {:>9.3} {:>9.3} {:>9.3} {:>9}",
            "",
            "svg",
            ms(mean),
            ms(p50),
            ms(p99),
            svg_len
        );
    }
}
