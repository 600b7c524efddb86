//! Turns a [`Plan`] into pixels at scale 1: background, framed scrolls with
//! their characters, and the 福 diamond.
//!
//! Painting is a handful of plain loops over a ~30k-pixel logical canvas, so
//! it costs far less than PNG encoding of the upscaled image; nothing here is
//! cached or shared between calls.

use super::canvas::Canvas;
use super::decor::{ornament, pixel_hash, role_of, Ornament};
use super::glyph::{bitmap, clear_halo, draw_bitmap, GLYPH_SIZE};
use super::layout::{glyph_origins, Plan, ScrollPlan, BORDER, FU_RADIUS};
use super::palette::{Palette, Role};

/// Offset of the drop shadow under scrolls and the diamond.
const SHADOW: i32 = 2;

/// The character on the diamond.
const FU: char = '福';

/// Paints a whole picture at logical size.
pub(crate) fn paint(plan: &Plan<'_>, palette: &'static Palette) -> Canvas {
    let orn = ornament(palette.style);
    let mut canvas = Canvas::new(
        plan.width as u32,
        plan.height as u32,
        Role::Background,
        palette,
    );
    background(&mut canvas, orn);
    for s in &plan.scrolls {
        scroll(&mut canvas, orn, s);
    }
    if let Some((cx, cy)) = plan.fu {
        diamond(&mut canvas, orn, cx, cy);
    }
    canvas
}

fn background(canvas: &mut Canvas, orn: &Ornament) {
    for y in 0..canvas.height as i32 {
        for x in 0..canvas.width as i32 {
            let role = orn.tile.role_at(x, y);
            if role != Role::Background {
                canvas.set(x, y, role);
            }
        }
    }
}

/// The frame role at a pixel `depth` pixels in from the scroll's edge, `t`
/// pixels along that edge; `None` inside the frame (paper).
fn frame_role(orn: &Ornament, dx: i32, dy: i32, w: i32, h: i32) -> Option<Role> {
    let depth_x = dx.min(w - 1 - dx);
    let depth_y = dy.min(h - 1 - dy);
    if depth_x >= BORDER && depth_y >= BORDER {
        return None;
    }
    if depth_x < BORDER && depth_y < BORDER {
        let row = orn.corner[depth_y as usize].as_bytes();
        return Some(role_of(row[depth_x as usize]));
    }
    // On a straight edge: depth across it, t along it.
    let (depth, t) = if depth_y < BORDER {
        (depth_y, dx - BORDER)
    } else {
        (depth_x, dy - BORDER)
    };
    Some(match depth {
        0 => Role::Outline,
        d if d == BORDER - 1 => Role::FrameShade,
        d => {
            let row = orn.band[(d - 1) as usize].as_bytes();
            role_of(row[t.rem_euclid(row.len() as i32) as usize])
        }
    })
}

fn scroll(canvas: &mut Canvas, orn: &Ornament, s: &ScrollPlan<'_>) {
    canvas.fill_rect(s.x + SHADOW, s.y + SHADOW, s.w, s.h, Role::Outline);
    for dy in 0..s.h {
        for dx in 0..s.w {
            let role = match frame_role(orn, dx, dy, s.w, s.h) {
                Some(role) => role,
                // `checked_rem` is `None` for `fleck_every == 0`: no flecks.
                None if pixel_hash(s.x + dx, s.y + dy).checked_rem(orn.fleck_every) == Some(0) => {
                    orn.fleck
                }
                None => Role::Scroll,
            };
            canvas.set(s.x + dx, s.y + dy, role);
        }
    }
    let shadow = orn.text_shadow.then_some(Role::ScrollShade);
    for (c, x, y) in glyph_origins(s) {
        let bits = bitmap(c);
        // Flecks must not touch a character: clear paper around its strokes.
        clear_halo(canvas, &bits, x, y, Role::Scroll);
        draw_bitmap(canvas, &bits, x, y, Role::Text, shadow);
    }
}

/// A square rotated 45°: pixels with `|dx| + |dy| <= FU_RADIUS`, in rings.
fn diamond(canvas: &mut Canvas, orn: &Ornament, cx: i32, cy: i32) {
    let r = FU_RADIUS;
    for dy in -r..=r {
        let span = r - dy.abs();
        canvas.fill_rect(
            cx - span + SHADOW,
            cy + dy + SHADOW,
            2 * span + 1,
            1,
            Role::Outline,
        );
    }
    for dy in -r..=r {
        for dx in -r..=r {
            let m = dx.abs() + dy.abs();
            let role = match r - m {
                d if d < 0 => continue,
                0 => Role::Outline,
                1 | 2 => Role::Frame,
                3 => Role::FrameShade,
                6 => Role::Frame,
                _ => Role::Diamond,
            };
            canvas.set(cx + dx, cy + dy, role);
        }
    }
    // Accent studs on the four tips of the inner line.
    for (tx, ty) in [(0, -(r - 6)), (0, r - 6), (-(r - 6), 0), (r - 6, 0)] {
        canvas.set(cx + tx, cy + ty, Role::Accent);
    }
    let shadow = orn.text_shadow.then_some(Role::ScrollShade);
    let half = GLYPH_SIZE / 2;
    draw_bitmap(
        canvas,
        &bitmap(FU),
        cx - half,
        cy - half,
        Role::DiamondText,
        shadow,
    );
}
