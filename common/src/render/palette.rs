//! The five style palettes and the named colour roles they fill.
//!
//! Every palette has the same roles in the same order, so a pixel buffer holds
//! the *role* index and any style can be applied to the same geometry. That
//! keeps every image at ≤ 16 colours (4-bit indexed PNG) by construction, and
//! lets the tests check the one thing readers care about most: text contrast
//! (WCAG 2 relative luminance) of at least 4.5:1 against its paper.

use crate::Style;

/// One sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb {
    /// Red channel.
    pub r: u8,
    /// Green channel.
    pub g: u8,
    /// Blue channel.
    pub b: u8,
}

impl Rgb {
    /// Builds a colour from a `0xRRGGBB` literal.
    pub const fn hex(v: u32) -> Rgb {
        Rgb {
            r: (v >> 16) as u8,
            g: (v >> 8) as u8,
            b: v as u8,
        }
    }

    /// The `#rrggbb` form used in SVG.
    pub fn to_hex_string(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// WCAG 2 relative luminance, 0.0 (black) to 1.0 (white).
    pub fn relative_luminance(self) -> f64 {
        fn channel(c: u8) -> f64 {
            let c = f64::from(c) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        }
        0.2126 * channel(self.r) + 0.7152 * channel(self.g) + 0.0722 * channel(self.b)
    }

    /// WCAG 2 contrast ratio between two colours, 1.0 to 21.0.
    pub fn contrast_ratio(self, other: Rgb) -> f64 {
        let (a, b) = (self.relative_luminance(), other.relative_luminance());
        let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
        (hi + 0.05) / (lo + 0.05)
    }
}

/// What a palette entry is used for. The discriminant is the palette index
/// stored in every pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    /// The wall or door behind the scrolls.
    Background = 0,
    /// Main colour of the background motif (lattice, lanterns, clouds, coins, blossoms).
    Motif = 1,
    /// Second colour of the background motif (studs, tassels, highlights, centres).
    MotifAlt = 2,
    /// Darkest colour: outlines and drop shadows.
    Outline = 3,
    /// Main frame colour around each scroll.
    Frame = 4,
    /// Darker frame colour: the inner line and pattern shading.
    FrameShade = 5,
    /// Pattern colour inside the frame band (firecrackers, coins, flowers, seal).
    Accent = 6,
    /// The scroll paper.
    Scroll = 7,
    /// Darker paper: text shadow and paper flecks.
    ScrollShade = 8,
    /// The characters on the scrolls.
    Text = 9,
    /// The paper of the 福 diamond.
    Diamond = 10,
    /// The 福 character on the diamond.
    DiamondText = 11,
}

impl Role {
    /// Every role, in palette-index order.
    pub const ALL: [Role; ROLE_COUNT] = [
        Role::Background,
        Role::Motif,
        Role::MotifAlt,
        Role::Outline,
        Role::Frame,
        Role::FrameShade,
        Role::Accent,
        Role::Scroll,
        Role::ScrollShade,
        Role::Text,
        Role::Diamond,
        Role::DiamondText,
    ];

    /// The palette index of this role.
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// A short, stable name for docs and debugging.
    pub fn name(self) -> &'static str {
        match self {
            Role::Background => "background",
            Role::Motif => "motif",
            Role::MotifAlt => "motif_alt",
            Role::Outline => "outline",
            Role::Frame => "frame",
            Role::FrameShade => "frame_shade",
            Role::Accent => "accent",
            Role::Scroll => "scroll",
            Role::ScrollShade => "scroll_shade",
            Role::Text => "text",
            Role::Diamond => "diamond",
            Role::DiamondText => "diamond_text",
        }
    }
}

/// Number of roles, hence of colours in every palette (≤ 16, so 4-bit PNG).
pub const ROLE_COUNT: usize = 12;

/// The colours of one style, indexed by [`Role`].
#[derive(Debug, PartialEq, Eq)]
pub struct Palette {
    /// The style this palette belongs to.
    pub style: Style,
    /// One colour per role, in [`Role::ALL`] order.
    pub colors: [Rgb; ROLE_COUNT],
}

impl Palette {
    /// The colour of a role.
    pub fn rgb(&self, role: Role) -> Rgb {
        self.colors[role as usize]
    }

    /// The colour stored at a palette index, if the index is in range.
    pub fn get(&self, index: u8) -> Option<Rgb> {
        self.colors.get(usize::from(index)).copied()
    }

    /// The palette as packed `RGBRGB…` bytes, the layout of a PNG `PLTE` chunk.
    pub fn plte_bytes(&self) -> [u8; ROLE_COUNT * 3] {
        let mut out = [0u8; ROLE_COUNT * 3];
        for (i, c) in self.colors.iter().enumerate() {
            out[i * 3] = c.r;
            out[i * 3 + 1] = c.g;
            out[i * 3 + 2] = c.b;
        }
        out
    }
}

/// Builds a palette from colours listed in [`Role::ALL`] order.
const fn pal(style: Style, c: [u32; ROLE_COUNT]) -> Palette {
    let mut colors = [Rgb { r: 0, g: 0, b: 0 }; ROLE_COUNT];
    let mut i = 0;
    while i < ROLE_COUNT {
        colors[i] = Rgb::hex(c[i]);
        i += 1;
    }
    Palette { style, colors }
}

// Order: background, motif, motif_alt, outline, frame, frame_shade, accent,
//        scroll, scroll_shade, text, diamond, diamond_text.

/// Lacquered wooden door, red scroll, gold characters and frame.
static CLASSIC: Palette = pal(
    Style::Classic,
    [
        0x2a1610, 0x3d2318, 0x8a5a2b, 0x120805, 0xf0b83a, 0xa8701c, 0xc8262c, 0xa8121c, 0x6c0a12,
        0xffd84a, 0xb3121d, 0xffd84a,
    ],
);

/// Night of lanterns: bright red scroll, pale gold text, firecracker frame.
static FESTIVE: Palette = pal(
    Style::Festive,
    [
        0x3c0610, 0xd8202a, 0xffc83d, 0x180206, 0xffc83d, 0xd07a10, 0xe8202a, 0xbe0f1c, 0x780610,
        0xffe680, 0xbe0f1c, 0xffe680,
    ],
);

/// Ink on rice paper, mounted on grey-blue silk, a red seal for the 福.
static LITERARY: Palette = pal(
    Style::Literary,
    [
        0x26313b, 0x33424f, 0x4a5d6c, 0x0f151b, 0x71879a, 0x4b5e70, 0xb3261e, 0xf1e9d2, 0xd8cba8,
        0x1b1b1f, 0xf1e9d2, 0xb3261e,
    ],
);

/// Navy counter with gold coins, deep red scroll, gold text.
static BUSINESS: Palette = pal(
    Style::Business,
    [
        0x0f1a38, 0x4f3d16, 0x8f6a22, 0x060b1a, 0xe8b64a, 0x9c7424, 0x1b2c5e, 0x8e0e16, 0x560710,
        0xf6cb5a, 0x8e0e16, 0xf6cb5a,
    ],
);

/// Peach wall with plum blossoms, warm red scroll, pink-and-gold frame.
static FAMILY: Palette = pal(
    Style::Family,
    [
        0xf6c7a2, 0xee7f9f, 0xf6c04a, 0x5a1a1a, 0xf4a3b8, 0xc8607a, 0xf6c04a, 0xb3302a, 0x7a1a18,
        0xffedb8, 0xb3302a, 0xffedb8,
    ],
);

/// The palette of a style.
pub fn palette(style: Style) -> &'static Palette {
    match style {
        Style::Classic => &CLASSIC,
        Style::Festive => &FESTIVE,
        Style::Literary => &LITERARY,
        Style::Business => &BUSINESS,
        Style::Family => &FAMILY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_contrast_is_at_least_4_5_for_every_style() {
        for style in Style::ALL {
            let p = palette(style);
            let text = p.rgb(Role::Text).contrast_ratio(p.rgb(Role::Scroll));
            assert!(text >= 4.5, "{style}: text/scroll contrast {text:.2} < 4.5");
            let fu = p
                .rgb(Role::DiamondText)
                .contrast_ratio(p.rgb(Role::Diamond));
            assert!(fu >= 4.5, "{style}: 福/diamond contrast {fu:.2} < 4.5");
        }
    }

    #[test]
    fn contrast_matches_wcag_reference_values() {
        let black = Rgb::hex(0x000000);
        let white = Rgb::hex(0xffffff);
        assert!((black.contrast_ratio(white) - 21.0).abs() < 1e-9);
        assert!((white.contrast_ratio(white) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known 4.54:1 grey.
        let grey = Rgb::hex(0x767676).contrast_ratio(white);
        assert!((grey - 4.54).abs() < 0.01, "{grey}");
    }

    #[test]
    fn palettes_are_small_distinct_and_indexed_by_role() {
        for style in Style::ALL {
            let p = palette(style);
            assert_eq!(p.style, style);
            assert!(p.colors.len() <= 16);
            for (i, role) in Role::ALL.iter().enumerate() {
                assert_eq!(usize::from(role.index()), i);
            }
            // Roles that must be told apart on screen never share a colour.
            for (a, b) in [
                (Role::Background, Role::Scroll),
                (Role::Scroll, Role::Text),
                (Role::Frame, Role::Scroll),
                (Role::Outline, Role::Frame),
            ] {
                assert_ne!(p.rgb(a), p.rgb(b), "{style}: {} == {}", a.name(), b.name());
            }
        }
    }
}
