//! Geometry: where each scroll, character and the 福 diamond go, at scale 1.
//!
//! Geometry depends only on the layout, the line lengths and (for the banner)
//! whether the 福 diamond is drawn; never on the style, so all five styles of
//! one couplet are the same size and the PNG and SVG outputs line up exactly.
//!
//! With `n = max(chars(upper), chars(lower), 1)`, `h = max(chars(hengpi), 1)`,
//! a scroll of `k` characters is `len(k) = 2·BORDER + 2·PAD + k·CELL = 14 + 20k`
//! long and `THICKNESS = 34` wide, and (before upscaling):
//!
//! * Door: `width = 2·MARGIN + max(2·THICKNESS + DOOR_GAP, len(h))`
//!   `= 16 + max(125, 14 + 20h)`, `height = 2·MARGIN + THICKNESS + GAP + len(n)`
//!   `= 70 + 20n`.
//! * Banner: `width = 2·MARGIN + max(len(n), len(h)) = 30 + 20·max(n, h)`,
//!   `height = 2·MARGIN + 3·THICKNESS + 2·GAP (+ FU_SPAN + GAP with 福)`
//!   `= 130` (or `181`).
//!
//! Door: 上联 hangs on the right, 下联 on the left, and — consistent with that
//! traditional placement — the 横批 reads right to left. Banner: everything
//! reads left to right, 横批 then 上联 then 下联 top to bottom, with the 福
//! diamond above them.

use super::Layout;

/// Logical pixels per character cell (a 16-pixel glyph plus 2 on each side).
pub const CELL: i32 = 20;
/// Background margin around the whole picture.
pub const MARGIN: i32 = 8;
/// Width of a scroll's frame (outline, 3-pixel pattern band, inner line).
pub const BORDER: i32 = 5;
/// Plain paper between the frame and the first character cell.
pub const PAD: i32 = 2;
/// Space between the 横批 and the scrolls, and between banner rows.
pub const GAP: i32 = 6;
/// Half-diagonal of the 福 diamond: pixels with `|dx| + |dy| <= FU_RADIUS`.
pub const FU_RADIUS: i32 = 22;
/// Full width (and height) of the 福 diamond.
pub const FU_SPAN: i32 = 2 * FU_RADIUS + 1;
/// Smallest distance between the two door scrolls: room for the diamond.
pub const DOOR_GAP: i32 = FU_SPAN + 2 * GAP;
/// Short side of every scroll.
pub const THICKNESS: i32 = 2 * BORDER + 2 * PAD + CELL;

/// Long side of a scroll holding `k` characters.
pub const fn scroll_len(k: usize) -> i32 {
    2 * BORDER + 2 * PAD + k as i32 * CELL
}

/// Which way characters advance along a scroll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Top to bottom (door 对联).
    Down,
    /// Left to right.
    Right,
    /// Right to left (door 横批).
    Left,
}

/// One scroll: its outer rectangle, its text and how the text flows.
#[derive(Clone, Debug)]
pub(crate) struct ScrollPlan<'a> {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
    pub flow: Flow,
    pub text: &'a str,
}

/// Everything placed on one picture, at scale 1.
#[derive(Clone, Debug)]
pub(crate) struct Plan<'a> {
    pub width: i32,
    pub height: i32,
    pub scrolls: Vec<ScrollPlan<'a>>,
    /// Centre of the 福 diamond, when drawn.
    pub fu: Option<(i32, i32)>,
}

/// Lays out a couplet. Line lengths must already be validated (≤ 24 chars).
pub(crate) fn plan<'a>(
    upper: &'a str,
    lower: &'a str,
    hengpi: &'a str,
    layout: Layout,
    fu: bool,
) -> Plan<'a> {
    let n = upper.chars().count().max(lower.chars().count()).max(1);
    let h = hengpi.chars().count().max(1);
    let (line, head) = (scroll_len(n), scroll_len(h));
    match layout {
        Layout::Door => {
            let content = (2 * THICKNESS + DOOR_GAP).max(head);
            let width = 2 * MARGIN + content;
            let height = 2 * MARGIN + THICKNESS + GAP + line;
            let top = MARGIN + THICKNESS + GAP;
            let scrolls = vec![
                ScrollPlan {
                    x: (width - head) / 2,
                    y: MARGIN,
                    w: head,
                    h: THICKNESS,
                    flow: Flow::Left,
                    text: hengpi,
                },
                ScrollPlan {
                    x: width - MARGIN - THICKNESS,
                    y: top,
                    w: THICKNESS,
                    h: line,
                    flow: Flow::Down,
                    text: upper,
                },
                ScrollPlan {
                    x: MARGIN,
                    y: top,
                    w: THICKNESS,
                    h: line,
                    flow: Flow::Down,
                    text: lower,
                },
            ];
            let centre = (width / 2, top + line / 2);
            Plan {
                width,
                height,
                scrolls,
                fu: fu.then_some(centre),
            }
        }
        Layout::Banner => {
            let content = line.max(head);
            let width = 2 * MARGIN + content;
            let fu_rows = if fu { FU_SPAN + GAP } else { 0 };
            let height = 2 * MARGIN + fu_rows + 3 * THICKNESS + 2 * GAP;
            let top = MARGIN + fu_rows;
            let row = |i: i32, w: i32, text: &'a str| ScrollPlan {
                x: (width - w) / 2,
                y: top + i * (THICKNESS + GAP),
                w,
                h: THICKNESS,
                flow: Flow::Right,
                text,
            };
            let scrolls = vec![
                row(0, head, hengpi),
                row(1, line, upper),
                row(2, line, lower),
            ];
            Plan {
                width,
                height,
                scrolls,
                fu: fu.then_some((width / 2, MARGIN + FU_RADIUS)),
            }
        }
    }
}

/// Top-left corners of the 16×16 glyph boxes of a scroll's characters, in
/// reading order, centred along the scroll when the text is shorter than it.
pub(crate) fn glyph_origins<'a>(s: &ScrollPlan<'a>) -> impl Iterator<Item = (char, i32, i32)> + 'a {
    let count = s.text.chars().count() as i32;
    let inset = BORDER + PAD + (CELL - super::glyph::GLYPH_SIZE) / 2;
    let (long, step_x, step_y) = match s.flow {
        Flow::Down => (s.h, 0, CELL),
        Flow::Right => (s.w, CELL, 0),
        Flow::Left => (s.w, -CELL, 0),
    };
    // Free space along the scroll, split evenly on both ends.
    let lead = (long - 2 * (BORDER + PAD) - count * CELL) / 2;
    let (x0, y0) = match s.flow {
        Flow::Down => (s.x + inset, s.y + inset + lead),
        Flow::Right => (s.x + inset + lead, s.y + inset),
        Flow::Left => (
            s.x + s.w - inset - lead - super::glyph::GLYPH_SIZE,
            s.y + inset,
        ),
    };
    s.text
        .chars()
        .enumerate()
        .map(move |(i, c)| (c, x0 + step_x * i as i32, y0 + step_y * i as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_formulas() {
        let p = plan(
            "春回大地千山秀",
            "福满人间万户新",
            "万象更新",
            Layout::Door,
            true,
        );
        assert_eq!((p.width, p.height), (16 + 125, 70 + 20 * 7));
        let p = plan(
            "一二三四五六七八九十",
            "一",
            "一二三四五六七",
            Layout::Door,
            false,
        );
        assert_eq!((p.width, p.height), (16 + 14 + 20 * 7, 70 + 200));
        // Upper on the right, lower on the left.
        assert!(p.scrolls[1].x > p.scrolls[2].x);
    }

    #[test]
    fn banner_formulas() {
        let p = plan(
            "春回大地千山秀",
            "福满人间万户新",
            "万象更新",
            Layout::Banner,
            true,
        );
        assert_eq!((p.width, p.height), (30 + 140, 181));
        let p = plan(
            "春回大地",
            "福满人间",
            "万象更新新新",
            Layout::Banner,
            false,
        );
        assert_eq!((p.width, p.height), (30 + 120, 130));
    }

    #[test]
    fn door_hengpi_reads_right_to_left_and_scrolls_top_down() {
        let p = plan("春回大地", "福满人间", "万象更新", Layout::Door, true);
        let head: Vec<_> = glyph_origins(&p.scrolls[0]).collect();
        assert_eq!(head[0].0, '万');
        assert!(head[0].1 > head[3].1, "first 横批 character is rightmost");
        let up: Vec<_> = glyph_origins(&p.scrolls[1]).collect();
        assert!(up[0].2 < up[3].2);
        // Glyph boxes sit inside the paper, centred in the scroll's width.
        let s = &p.scrolls[1];
        assert_eq!(up[0].1 - s.x, s.x + s.w - (up[0].1 + 16));
        assert_eq!(up[0].2 - s.y, s.y + s.h - (up[3].2 + 16));
        let hd = &p.scrolls[0];
        assert_eq!(head[3].1 - hd.x, hd.x + hd.w - (head[0].1 + 16));
    }
}
