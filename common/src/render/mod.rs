//! Pixel-art couplet rendering: 对联 as 8-bit images in PNG or SVG.
//!
//! This module owns the picture of a couplet: its geometry ([`layout`]),
//! the five style palettes ([`palette()`]) and ornaments, the Unifont glyphs
//! and the placeholder for missing ones, and the two encodings. It is pure
//! and synchronous (CPU-bound: callers on an async runtime should use
//! `spawn_blocking`) and holds no global state.
//!
//! The pipeline is: validate (scale, line lengths, pixel cap) → lay out at
//! scale 1 → paint palette *roles* into an indexed [`Canvas`] → upscale by
//! an integer factor (nearest neighbour) → encode. Refusals happen before
//! any pixel buffer is allocated.

mod canvas;
mod decor;
mod encode_png;
mod error;
mod glyph;
pub mod layout;
mod paint;
mod palette;
mod svg;

pub use canvas::Canvas;
pub use error::RenderError;
pub use glyph::{bitmap, has_glyph, Bitmap, PLACEHOLDER};
pub use palette::{palette, Palette, Rgb, Role, ROLE_COUNT};

use crate::Style;

/// Largest accepted integer upscaling factor.
pub const MAX_SCALE: u32 = 8;
/// Longest accepted line (上联, 下联 or 横批), in characters.
pub const MAX_LINE_CHARS: usize = 24;
/// Largest accepted image, in pixels (4096 × 4096). Every valid couplet fits
/// at scale ≤ 4; at scale 8 only a door with both long scrolls *and* a long
/// 横批 exceeds it (see [`layout`] for the formulas).
pub const MAX_PIXELS: u64 = 4096 * 4096;
/// Scale used by [`RenderOptions::default`].
pub const DEFAULT_SCALE: u32 = 4;

/// The three lines of a couplet and the style to draw them in.
#[derive(Clone, Copy, Debug)]
pub struct CoupletText<'a> {
    /// 上联: hangs on the right of a door, first line of a banner.
    pub upper: &'a str,
    /// 下联: hangs on the left of a door, second line of a banner.
    pub lower: &'a str,
    /// 横批: the horizontal scroll across the top (usually 4 characters).
    pub hengpi: &'a str,
    /// Palette and ornaments.
    pub style: Style,
}

/// How the three lines are arranged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Two vertical scrolls as on a door, 横批 across the top, 福 between.
    Door,
    /// Three horizontal lines under each other, for narrow screens.
    Banner,
}

impl Layout {
    /// Parses a wire name: `"door"` or `"banner"`.
    pub fn parse(s: &str) -> Option<Layout> {
        match s {
            "door" => Some(Layout::Door),
            "banner" => Some(Layout::Banner),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Door => "door",
            Layout::Banner => "banner",
        }
    }
}

/// How to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// Door or banner arrangement.
    pub layout: Layout,
    /// Integer upscaling factor, `1..=MAX_SCALE`.
    pub scale: u32,
    /// Whether to draw the 福 diamond.
    pub fu: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            layout: Layout::Door,
            scale: DEFAULT_SCALE,
            fu: true,
        }
    }
}

/// Checks scale and line lengths, lays the couplet out and checks the size.
fn prepare<'a>(
    text: &CoupletText<'a>,
    opts: &RenderOptions,
) -> Result<layout::Plan<'a>, RenderError> {
    if !(1..=MAX_SCALE).contains(&opts.scale) {
        return Err(RenderError::InvalidScale {
            scale: opts.scale,
            max: MAX_SCALE,
        });
    }
    for (line, s) in [
        ("upper", text.upper),
        ("lower", text.lower),
        ("hengpi", text.hengpi),
    ] {
        let chars = s.chars().count();
        if chars > MAX_LINE_CHARS {
            return Err(RenderError::TooLong {
                line,
                chars,
                max: MAX_LINE_CHARS,
            });
        }
    }
    let plan = layout::plan(text.upper, text.lower, text.hengpi, opts.layout, opts.fu);
    let width = plan.width as u64 * u64::from(opts.scale);
    let height = plan.height as u64 * u64::from(opts.scale);
    if width * height > MAX_PIXELS {
        return Err(RenderError::TooLarge {
            width,
            height,
            max_pixels: MAX_PIXELS,
        });
    }
    Ok(plan)
}

/// The `(width, height)` in pixels a render would have, with the same checks
/// as the renderers but without drawing anything.
pub fn dimensions(text: &CoupletText, opts: &RenderOptions) -> Result<(u32, u32), RenderError> {
    let plan = prepare(text, opts)?;
    Ok((
        plan.width as u32 * opts.scale,
        plan.height as u32 * opts.scale,
    ))
}

/// Renders to a palette-indexed canvas at the requested scale.
pub fn render_indexed(text: &CoupletText, opts: &RenderOptions) -> Result<Canvas, RenderError> {
    let plan = prepare(text, opts)?;
    Ok(paint::paint(&plan, palette(text.style)).upscale(opts.scale))
}

/// Renders to a 4-bit indexed-colour PNG (with `PLTE`). The bytes depend only
/// on the arguments.
pub fn render_png(text: &CoupletText, opts: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    encode_png::encode(&render_indexed(text, opts)?)
}

/// Renders to an SVG of pixel rectangles with the same geometry (and size in
/// pixels) as the PNG.
pub fn render_svg(text: &CoupletText, opts: &RenderOptions) -> Result<String, RenderError> {
    let plan = prepare(text, opts)?;
    let canvas = paint::paint(&plan, palette(text.style));
    let title = format!("{}｜{}｜{}", text.hengpi, text.upper, text.lower);
    Ok(svg::to_svg(&canvas, opts.scale, &title))
}
