//! Each style's ornament: background motif, frame pattern, corner pieces and
//! paper texture, written as little pixel-art sprites.
//!
//! Sprites are string rows, one character per pixel, so an ornament can be
//! read and edited by eye. They name palette *roles*, not colours, which keeps
//! the palette the only place a colour is chosen. Legend: `.` background,
//! `M`/`m` motif, `O` outline, `F`/`f` frame and its shade, `A` accent,
//! `S`/`s` scroll paper and its shade.

use super::palette::Role;
use crate::Style;

/// A sprite repeated over the background, every other row shifted by half a
/// tile when `stagger` is set.
pub(crate) struct Tile {
    pub rows: &'static [&'static str],
    pub stagger: bool,
}

/// Everything that differs between styles apart from the colours.
pub(crate) struct Ornament {
    /// Background tile; its size is its period.
    pub tile: Tile,
    /// The frame's 3-pixel band, outermost row first; repeats along the edge.
    pub band: [&'static str; 3],
    /// The top-left corner (BORDER × BORDER), mirrored for the other corners.
    pub corner: [&'static str; 5],
    /// Whether characters get a one-pixel drop shadow.
    pub text_shadow: bool,
    /// Paper texture: one fleck per this many pixels on average (0 = none).
    pub fleck_every: u32,
    /// Colour of the flecks (gold leaf on red paper, fibres on rice paper).
    pub fleck: Role,
}

/// The ornament of a style.
pub(crate) fn ornament(style: Style) -> &'static Ornament {
    match style {
        Style::Classic => &CLASSIC,
        Style::Festive => &FESTIVE,
        Style::Literary => &LITERARY,
        Style::Business => &BUSINESS,
        Style::Family => &FAMILY,
    }
}

/// Maps a sprite character to its role.
pub(crate) fn role_of(c: u8) -> Role {
    match c {
        b'M' => Role::Motif,
        b'm' => Role::MotifAlt,
        b'O' => Role::Outline,
        b'F' => Role::Frame,
        b'f' => Role::FrameShade,
        b'A' => Role::Accent,
        b'S' => Role::Scroll,
        b's' => Role::ScrollShade,
        b'T' => Role::Text,
        _ => Role::Background,
    }
}

impl Tile {
    /// The role of the background at `(x, y)`.
    pub(crate) fn role_at(&self, x: i32, y: i32) -> Role {
        let h = self.rows.len() as i32;
        let w = self.rows.first().map_or(1, |r| r.len()) as i32;
        let band = y.div_euclid(h);
        let shift = if self.stagger && band % 2 == 1 {
            w / 2
        } else {
            0
        };
        let tx = (x + shift).rem_euclid(w) as usize;
        let ty = y.rem_euclid(h) as usize;
        self.rows[ty]
            .as_bytes()
            .get(tx)
            .map_or(Role::Background, |&c| role_of(c))
    }
}

/// A cheap, stable hash of a pixel position (for paper flecks).
pub(crate) fn pixel_hash(x: i32, y: i32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x9e37_79b1) ^ (y as u32).wrapping_mul(0x85eb_ca77);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297a_2d39);
    h ^ (h >> 15)
}

/// Lacquered door: carved lattice with bronze studs.
static CLASSIC: Ornament = Ornament {
    tile: Tile {
        rows: &[
            "MMMMMMMMMMMMMMMM",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
            "M.......m.......",
            "M......mmm......",
            "M.......m.......",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
            "M...............",
        ],
        stagger: false,
    },
    band: ["FFFF", "FAFf", "FFFF"],
    corner: ["OOOOO", "OAAAF", "OAFAF", "OAAAF", "OFFFf"],
    text_shadow: true,
    fleck_every: 150,
    fleck: Role::Frame,
};

/// Lanterns in the night, firecracker frame.
static FESTIVE: Ornament = Ornament {
    tile: Tile {
        rows: &[
            "...m....................",
            "..mmm...................",
            ".MMMMM..................",
            "MMmMmMM.................",
            "MMmMmMM.................",
            "MMmMmMM.................",
            ".MMMMM..................",
            "..mmm...................",
            "...m....................",
            "..m.m...................",
            "........................",
            "........................",
            "................m.......",
            "...............m.m......",
            "................m.......",
            "........................",
            "........................",
            "........................",
            "........................",
            "........................",
        ],
        stagger: true,
    },
    band: ["FAAAAf", "FAAAAf", "FAAAAf"],
    corner: ["OOOOO", "OmmmF", "OmAmF", "OmmmF", "OFFFf"],
    text_shadow: true,
    fleck_every: 0,
    fleck: Role::ScrollShade,
};

/// Slate sky with drifting clouds; plain grey-blue silk mount.
static LITERARY: Ornament = Ornament {
    tile: Tile {
        rows: &[
            "........................",
            "......MMM...............",
            ".....M...M..............",
            "..MMM..M..M.MM..........",
            ".M...MM..MMM..M.........",
            ".M.M...........M........",
            "..MMMMMMMMMMMMM.........",
            "........................",
            "........................",
            "........................",
            "........................",
            "........................",
        ],
        stagger: true,
    },
    band: ["FFFF", "FFFF", "FFFF"],
    corner: ["OOOOO", "OFFFF", "OFAFF", "OFFFF", "OFFFf"],
    text_shadow: false,
    fleck_every: 45,
    fleck: Role::ScrollShade,
};

/// Navy counter strewn with gold coins; coin-chain frame.
static BUSINESS: Ornament = Ornament {
    tile: Tile {
        rows: &[
            "..mmmmm...............",
            ".mMMMMMm..............",
            "mMMmmmMMm.............",
            "mMm...mMm.............",
            "mMm...mMm.............",
            "mMm...mMm.............",
            "mMMmmmMMm.............",
            ".mMMMMMm..............",
            "..mmmmm...............",
            "......................",
            "......................",
            "......................",
            "......................",
            "......................",
            "......................",
            "......................",
            "......................",
            "......................",
        ],
        stagger: true,
    },
    band: ["FFfFF", "FfAfF", "FFfFF"],
    corner: ["OOOOO", "OfffF", "OfAfF", "OfffF", "OFFFf"],
    text_shadow: true,
    fleck_every: 0,
    fleck: Role::ScrollShade,
};

/// Peach wall with plum blossoms; pink frame with gold buds.
static FAMILY: Ornament = Ornament {
    tile: Tile {
        rows: &[
            "..M.M...........",
            ".MMMMM..........",
            "MMMmMMM.........",
            ".MmmmM..........",
            "MMMmMMM.........",
            ".MM.MM..........",
            "................",
            "................",
            "................",
            "................",
            "................",
            "................",
            "................",
            "................",
        ],
        stagger: true,
    },
    band: ["FFFF", "FAFf", "FFFF"],
    corner: ["OOOOO", "OAAAF", "OAfAF", "OAAAF", "OFFFf"],
    text_shadow: true,
    fleck_every: 0,
    fleck: Role::ScrollShade,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprites_are_rectangular_and_use_known_roles() {
        for style in Style::ALL {
            let o = ornament(style);
            let w = o.tile.rows[0].len();
            assert!(o.tile.rows.iter().all(|r| r.len() == w), "{style} tile");
            assert!(
                o.band.iter().all(|r| r.len() == o.band[0].len()),
                "{style} band"
            );
            assert!(o.corner.iter().all(|r| r.len() == 5), "{style} corner");
            let all = o
                .tile
                .rows
                .iter()
                .chain(o.band.iter())
                .chain(o.corner.iter());
            for row in all {
                assert!(
                    row.bytes().all(|c| b".MmOFfASsT".contains(&c)),
                    "{style}: {row}"
                );
            }
        }
    }
}
