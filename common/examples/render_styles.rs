//! Renders one couplet in all five styles to `target/styles/{style}.png`
//! (and `.svg`), for eyeballing the artwork.
//!
//! ```sh
//! cargo run -p couplet-common --release --example render_styles -- \
//!     [UPPER LOWER HENGPI [door|banner [SCALE [nofu]]]]
//! ```

use std::path::PathBuf;

use common::render::{render_png, render_svg, CoupletText, Layout, RenderOptions};
use common::Style;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (upper, lower, hengpi) = (
        arg(0, "春回大地千山秀"),
        arg(1, "福满人间万户新"),
        arg(2, "万象更新"),
    );
    let layout = Layout::parse(arg(3, "door")).ok_or("layout must be door or banner")?;
    let scale: u32 = arg(4, "2").parse()?;
    let fu = arg(5, "fu") != "nofu";
    let opts = RenderOptions { layout, scale, fu };

    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
        .join("styles");
    std::fs::create_dir_all(&dir)?;
    let suffix = if layout == Layout::Door {
        ""
    } else {
        "-banner"
    };
    for style in Style::ALL {
        let text = CoupletText {
            upper,
            lower,
            hengpi,
            style,
        };
        let png = render_png(&text, &opts)?;
        let path = dir.join(format!("{style}{suffix}.png"));
        std::fs::write(&path, &png)?;
        std::fs::write(
            dir.join(format!("{style}{suffix}.svg")),
            render_svg(&text, &opts)?,
        )?;
        println!("{} ({} bytes)", path.display(), png.len());
    }
    Ok(())
}
