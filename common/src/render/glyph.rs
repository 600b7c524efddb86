//! Character bitmaps: GNU Unifont at 16×16, or a visible placeholder.
//!
//! Every glyph is normalised to sixteen 16-bit rows (bit 15 is the leftmost
//! pixel) so drawing code has one shape to handle: fullwidth Unifont glyphs
//! as they are, halfwidth (8×16) ones centred in the 16-pixel box. A
//! character Unifont lacks (private use, astral planes, surrogates' holes)
//! becomes a hollow box with an X ("tofu") rather than a blank cell, so a
//! missing character is never silently dropped from a couplet.

use super::canvas::Canvas;
use super::palette::Role;

/// Side of the square box a glyph is drawn in, in logical pixels.
pub const GLYPH_SIZE: i32 = 16;

/// A 16×16 one-bit bitmap; bit 15 of each row is the leftmost pixel.
pub type Bitmap = [u16; 16];

/// The placeholder drawn for characters without a Unifont glyph: a hollow
/// 14×14 box with both diagonals.
pub const PLACEHOLDER: Bitmap = placeholder();

const fn placeholder() -> Bitmap {
    let mut rows = [0u16; 16];
    let mut y = 1;
    while y <= 14 {
        let mut row: u16 = if y == 1 || y == 14 {
            0x7ffe
        } else {
            (0x8000 >> 1) | (0x8000 >> 14)
        };
        if y >= 3 && y <= 12 {
            // Diagonals from (3,3) to (12,12) and (12,3) to (3,12), clear of the box.
            row |= (0x8000 >> y) | (0x8000 >> (15 - y));
        }
        rows[y] = row;
        y += 1;
    }
    rows
}

/// Whether Unifont has a glyph for `c` (otherwise [`PLACEHOLDER`] is drawn).
pub fn has_glyph(c: char) -> bool {
    unifont::get_glyph(c).is_some()
}

/// The bitmap drawn for `c`.
pub fn bitmap(c: char) -> Bitmap {
    match unifont::get_glyph(c) {
        Some(unifont::Glyph::Fullwidth(rows)) => *rows,
        Some(unifont::Glyph::Halfwidth(rows)) => {
            let mut out = [0u16; 16];
            for (o, r) in out.iter_mut().zip(rows.iter()) {
                // Centre the 8-pixel glyph in the 16-pixel box.
                *o = u16::from(*r) << 4;
            }
            out
        }
        None => PLACEHOLDER,
    }
}

/// Draws a bitmap with its top-left corner at `(x, y)`, with an optional
/// one-pixel drop shadow to the lower right drawn underneath.
pub(crate) fn draw_bitmap(
    canvas: &mut Canvas,
    bits: &Bitmap,
    x: i32,
    y: i32,
    ink: Role,
    shadow: Option<Role>,
) {
    if let Some(shadow) = shadow {
        for_each_set(bits, |gx, gy| canvas.set(x + gx + 1, y + gy + 1, shadow));
    }
    for_each_set(bits, |gx, gy| canvas.set(x + gx, y + gy, ink));
}

/// Paints `role` on every pixel within two pixels of the bitmap's ink (and of
/// its shadow), so paper texture never touches or crowds a character.
pub(crate) fn clear_halo(canvas: &mut Canvas, bits: &Bitmap, x: i32, y: i32, role: Role) {
    for_each_set(bits, |gx, gy| {
        canvas.fill_rect(x + gx - 2, y + gy - 2, 6, 6, role)
    });
}

fn for_each_set(bits: &Bitmap, mut f: impl FnMut(i32, i32)) {
    for (gy, row) in bits.iter().enumerate() {
        let mut r = *row;
        while r != 0 {
            let lead = r.leading_zeros() as i32;
            f(lead, gy as i32);
            r &= !(0x8000u16 >> lead);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::palette::palette;
    use crate::Style;

    #[test]
    fn couplet_characters_and_punctuation_have_glyphs() {
        for c in "春回大地千山秀福满人间万户新万象更新，、；A1".chars() {
            assert!(has_glyph(c), "{c} should be in Unifont");
            assert_ne!(bitmap(c), [0u16; 16], "{c} should not be blank");
        }
    }

    #[test]
    fn missing_glyphs_get_a_visible_placeholder() {
        for c in ['\u{E000}', '\u{F8FF}', '\u{10FFFF}', '\u{1F600}'] {
            assert!(!has_glyph(c), "U+{:04X} unexpectedly in Unifont", c as u32);
            assert_eq!(bitmap(c), PLACEHOLDER);
        }
        // The placeholder is a box with an X: corners of the box and the centre are set.
        let set = |x: u32, y: usize| PLACEHOLDER[y] & (0x8000 >> x) != 0;
        assert!(set(1, 1) && set(14, 1) && set(1, 14) && set(14, 14));
        assert!(set(7, 7) && set(8, 7) && set(3, 3) && set(12, 3));
        assert!(!set(0, 0) && !set(5, 1 + 1) && !set(15, 15));
    }

    #[test]
    fn halfwidth_glyphs_are_centred() {
        let b = bitmap('I');
        let mask: u16 = b.iter().fold(0, |m, r| m | r);
        assert_eq!(
            mask & 0xf00f,
            0,
            "halfwidth glyph must sit in columns 4..12"
        );
    }

    #[test]
    fn drawing_puts_ink_over_shadow() {
        let mut c = Canvas::new(20, 20, Role::Scroll, palette(Style::Classic));
        draw_bitmap(
            &mut c,
            &PLACEHOLDER,
            2,
            2,
            Role::Text,
            Some(Role::ScrollShade),
        );
        assert_eq!(c.pixel(3, 3), Some(Role::Text.index()));
        assert_eq!(c.pixel(17, 17), Some(Role::ScrollShade.index()));
        assert_eq!(c.pixel(0, 0), Some(Role::Scroll.index()));
    }
}
