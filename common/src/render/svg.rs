//! SVG output: the same pixels as the PNG, as rectangles.
//!
//! The logical (scale 1) canvas is drawn in a `viewBox` of its own size and
//! the `width`/`height` attributes carry the scale, so the file does not grow
//! with the scale and the browser does the nearest-neighbour upscaling
//! (`shape-rendering="crispEdges"`). Horizontal runs of one colour become one
//! rectangle, and identical runs on consecutive rows merge into a taller one;
//! the background is a single rectangle underneath. Output is deterministic:
//! rectangles are grouped by palette index, in the order they were closed.

use std::fmt::Write as _;

use super::canvas::Canvas;
use super::palette::Role;

/// A merged rectangle of one palette index.
#[derive(Clone, Copy)]
struct Run {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    index: u8,
}

/// Writes the SVG document for a logical canvas shown at `scale`.
pub(crate) fn to_svg(canvas: &Canvas, scale: u32, title: &str) -> String {
    let rects = merge_runs(canvas);
    let (w, h) = (canvas.width, canvas.height);
    let mut out = String::with_capacity(64 + rects.len() * 48);
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" \
         viewBox=\"0 0 {w} {h}\" shape-rendering=\"crispEdges\" role=\"img\">",
        w * scale,
        h * scale
    );
    out.push_str("<title>");
    escape_into(&mut out, title);
    out.push_str("</title>");
    let background = canvas.palette.rgb(Role::Background).to_hex_string();
    let _ = write!(
        out,
        "<rect width=\"{w}\" height=\"{h}\" fill=\"{background}\"/>"
    );
    for (index, colour) in canvas.palette.colors.iter().enumerate() {
        let mut group = rects
            .iter()
            .filter(|r| usize::from(r.index) == index)
            .peekable();
        if group.peek().is_none() {
            continue;
        }
        let _ = write!(out, "<g fill=\"{}\">", colour.to_hex_string());
        for r in group {
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                r.x, r.y, r.w, r.h
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

/// Horizontal runs of non-background pixels, merged downwards while the run
/// below has the same position, width and index.
fn merge_runs(canvas: &Canvas) -> Vec<Run> {
    let background = Role::Background.index();
    let mut done = Vec::new();
    let mut open: Vec<Run> = Vec::new();
    let mut next: Vec<Run> = Vec::new();
    for y in 0..canvas.height {
        let row = canvas.row(y);
        let mut x = 0usize;
        let mut prev = open.drain(..).peekable();
        while x < row.len() {
            let index = row[x];
            let start = x;
            while x < row.len() && row[x] == index {
                x += 1;
            }
            if index == background {
                continue;
            }
            let run = Run {
                x: start as u32,
                y,
                w: (x - start) as u32,
                h: 1,
                index,
            };
            // Runs above that end before this one starts can no longer grow.
            while let Some(p) = prev.next_if(|p| p.x < run.x) {
                done.push(p);
            }
            match prev.next_if(|p| p.x == run.x && p.w == run.w && p.index == run.index) {
                Some(p) => next.push(Run { h: p.h + 1, ..p }),
                None => next.push(run),
            }
        }
        done.extend(prev);
        std::mem::swap(&mut open, &mut next);
    }
    done.extend(open);
    done
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::palette::palette;
    use crate::Style;

    /// Paints the rectangles back onto a canvas.
    fn replay(canvas: &Canvas) -> Vec<u8> {
        let mut px = vec![Role::Background.index(); canvas.pixels.len()];
        for r in merge_runs(canvas) {
            for y in r.y..r.y + r.h {
                for x in r.x..r.x + r.w {
                    px[(y * canvas.width + x) as usize] = r.index;
                }
            }
        }
        px
    }

    #[test]
    fn runs_cover_exactly_the_non_background_pixels() {
        let mut c = Canvas::new(7, 5, Role::Background, palette(Style::Classic));
        c.fill_rect(1, 0, 3, 4, Role::Scroll);
        c.set(2, 1, Role::Text);
        c.set(6, 4, Role::Text);
        c.fill_rect(4, 2, 2, 2, Role::Frame);
        assert_eq!(replay(&c), c.pixels);
        // The 3-wide scroll column above and below the text pixel merges.
        let runs = merge_runs(&c);
        assert!(runs
            .iter()
            .any(|r| r.x == 1 && r.w == 3 && r.h == 1 && r.y == 0));
        assert!(runs
            .iter()
            .any(|r| r.x == 1 && r.w == 3 && r.h == 2 && r.y == 2));
    }

    #[test]
    fn title_is_escaped() {
        let c = Canvas::new(1, 1, Role::Background, palette(Style::Classic));
        let svg = to_svg(&c, 2, "a<b>&\"c\"");
        assert!(svg.contains("<title>a&lt;b&gt;&amp;&quot;c&quot;</title>"));
        assert!(svg.contains("width=\"2\" height=\"2\" viewBox=\"0 0 1 1\""));
    }
}
