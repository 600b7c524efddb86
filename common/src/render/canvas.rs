//! The palette-indexed pixel buffer every renderer output is made from.
//!
//! Drawing happens once at logical size (scale 1); [`Canvas::upscale`] then
//! makes the final image by nearest-neighbour integer scaling, which is a
//! per-row byte repeat followed by whole-row copies. Pixels hold palette
//! indices ([`Role`] discriminants), never colours, so no colour outside the
//! style's palette can appear and PNG/SVG output are both exact.

use super::palette::{Palette, Rgb, Role};

/// A rendered image: one palette index per pixel, row-major, top to bottom.
///
/// Invariant: `pixels.len() == width * height` and every index is below
/// `palette.colors.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Palette indices, `width * height` of them.
    pub pixels: Vec<u8>,
    /// The colours the indices refer to.
    pub palette: &'static Palette,
}

impl Canvas {
    /// A canvas filled with one role.
    pub(crate) fn new(width: u32, height: u32, fill: Role, palette: &'static Palette) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![fill.index(); width as usize * height as usize],
            palette,
        }
    }

    /// The palette index at `(x, y)`, or `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u8> {
        if x < self.width && y < self.height {
            self.pixels
                .get(y as usize * self.width as usize + x as usize)
                .copied()
        } else {
            None
        }
    }

    /// The colour at `(x, y)`, or `None` outside the image.
    pub fn rgb(&self, x: u32, y: u32) -> Option<Rgb> {
        self.pixel(x, y).and_then(|i| self.palette.get(i))
    }

    /// One row of palette indices.
    ///
    /// # Panics
    ///
    /// If `y >= self.height`, like slice indexing.
    pub fn row(&self, y: u32) -> &[u8] {
        let w = self.width as usize;
        let start = y as usize * w;
        &self.pixels[start..start + w]
    }

    /// Sets one pixel; coordinates outside the canvas are ignored so drawing
    /// code can clip for free (shadows and sprites may poke past an edge).
    pub(crate) fn set(&mut self, x: i32, y: i32, role: Role) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            let i = y as usize * self.width as usize + x as usize;
            self.pixels[i] = role.index();
        }
    }

    /// Fills a rectangle, clipped to the canvas.
    pub(crate) fn fill_rect(&mut self, x: i32, y: i32, w: i32, h: i32, role: Role) {
        let x0 = x.clamp(0, self.width as i32);
        let x1 = (x + w).clamp(0, self.width as i32);
        let y0 = y.clamp(0, self.height as i32);
        let y1 = (y + h).clamp(0, self.height as i32);
        let stride = self.width as usize;
        for yy in y0..y1 {
            let row = yy as usize * stride;
            self.pixels[row + x0 as usize..row + x1 as usize].fill(role.index());
        }
    }

    /// Nearest-neighbour integer upscaling: each pixel becomes a
    /// `scale × scale` block. `scale == 1` returns the canvas unchanged.
    pub(crate) fn upscale(self, scale: u32) -> Canvas {
        if scale <= 1 {
            return self;
        }
        let s = scale as usize;
        let (w, h) = (self.width as usize, self.height as usize);
        let out_w = w * s;
        let mut out = Vec::with_capacity(out_w * h * s);
        for src in self.pixels.chunks_exact(w.max(1)).take(h) {
            let start = out.len();
            for &p in src {
                out.extend(std::iter::repeat_n(p, s));
            }
            for _ in 1..s {
                out.extend_from_within(start..start + out_w);
            }
        }
        Canvas {
            width: self.width * scale,
            height: self.height * scale,
            pixels: out,
            palette: self.palette,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::palette::palette;
    use crate::Style;

    #[test]
    fn upscale_repeats_pixels_and_rows() {
        let mut c = Canvas::new(2, 2, Role::Background, palette(Style::Classic));
        c.set(1, 0, Role::Text);
        c.set(0, 1, Role::Scroll);
        let u = c.upscale(3);
        assert_eq!((u.width, u.height), (6, 6));
        let t = Role::Text.index();
        let s = Role::Scroll.index();
        let b = Role::Background.index();
        for y in 0..3 {
            assert_eq!(u.row(y), &[b, b, b, t, t, t]);
        }
        for y in 3..6 {
            assert_eq!(u.row(y), &[s, s, s, b, b, b]);
        }
    }

    #[test]
    fn drawing_clips_at_edges() {
        let mut c = Canvas::new(4, 4, Role::Background, palette(Style::Classic));
        c.set(-1, 0, Role::Text);
        c.set(4, 4, Role::Text);
        c.fill_rect(-2, -2, 3, 3, Role::Text);
        c.fill_rect(3, 3, 9, 9, Role::Scroll);
        assert_eq!(c.pixel(0, 0), Some(Role::Text.index()));
        assert_eq!(c.pixel(1, 1), Some(Role::Background.index()));
        assert_eq!(c.pixel(3, 3), Some(Role::Scroll.index()));
        assert_eq!(c.pixel(4, 0), None);
    }
}
