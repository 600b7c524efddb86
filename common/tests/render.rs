//! Black-box tests of the couplet renderer: geometry formulas, palette
//! discipline of the decoded PNG, placeholders, errors, SVG/PNG agreement and
//! byte-exact golden images (regenerate with `UPDATE_GOLDEN=1`).

/// Wrapped in a module so `cargo test -p couplet-common render` selects these too.
mod render {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use common::render::layout::{BORDER, GAP, MARGIN, PAD, THICKNESS};
    use common::render::{
        dimensions, has_glyph, palette, render_indexed, render_png, render_svg, Canvas,
        CoupletText, Layout, RenderError, RenderOptions, Rgb, Role, MAX_LINE_CHARS, MAX_PIXELS,
        PLACEHOLDER,
    };
    use common::Style;

    const UPPER: &str = "春回大地千山秀";
    const LOWER: &str = "福满人间万户新";
    const HENGPI: &str = "万象更新";

    fn text(style: Style) -> CoupletText<'static> {
        CoupletText {
            upper: UPPER,
            lower: LOWER,
            hengpi: HENGPI,
            style,
        }
    }

    fn opts(layout: Layout, scale: u32) -> RenderOptions {
        RenderOptions {
            layout,
            scale,
            fu: true,
        }
    }

    /// Decodes a PNG to (width, height, RGB pixels), checking it is indexed with a PLTE.
    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<Rgb>) {
        let mut decoder = png::Decoder::new(png_bytes);
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("valid PNG header");
        {
            let info = reader.info();
            assert_eq!(info.color_type, png::ColorType::Indexed);
            let plte = info.palette.as_ref().expect("PLTE chunk");
            assert!(
                plte.len() / 3 <= 16,
                "palette has {} entries",
                plte.len() / 3
            );
        }
        let mut buf = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut buf).expect("image data");
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        let rgb = buf[..frame.buffer_size()]
            .chunks_exact(3)
            .map(|p| Rgb {
                r: p[0],
                g: p[1],
                b: p[2],
            })
            .collect();
        (frame.width, frame.height, rgb)
    }

    #[test]
    fn dimensions_follow_the_formulas_at_every_scale() {
        let cases = [
            // (upper, lower, hengpi, layout, fu, logical width, logical height)
            (
                UPPER,
                LOWER,
                HENGPI,
                Layout::Door,
                true,
                16 + 125,
                70 + 20 * 7,
            ),
            (UPPER, LOWER, HENGPI, Layout::Door, false, 141, 210),
            (
                "一二三四",
                "五六七八",
                "横批",
                Layout::Door,
                true,
                141,
                70 + 80,
            ),
            (
                "一二三四五六七八九十",
                "一",
                "一二三四五六七",
                Layout::Door,
                true,
                16 + 14 + 140,
                70 + 200,
            ),
            (UPPER, LOWER, HENGPI, Layout::Banner, true, 30 + 20 * 7, 181),
            (
                UPPER,
                LOWER,
                HENGPI,
                Layout::Banner,
                false,
                30 + 20 * 7,
                130,
            ),
            (
                "一二三四",
                "五六七八",
                "一二三四五六",
                Layout::Banner,
                true,
                30 + 120,
                181,
            ),
        ];
        for (upper, lower, hengpi, layout, fu, w, h) in cases {
            for scale in [1, 2, 4, 8] {
                let t = CoupletText {
                    upper,
                    lower,
                    hengpi,
                    style: Style::Classic,
                };
                let o = RenderOptions { layout, scale, fu };
                let (ew, eh) = (w * scale, h * scale);
                assert_eq!(
                    dimensions(&t, &o).expect("fits"),
                    (ew, eh),
                    "{layout:?} {upper} x{scale}"
                );
                let c = render_indexed(&t, &o).expect("renders");
                assert_eq!((c.width, c.height), (ew, eh));
                assert_eq!(c.pixels.len(), (ew * eh) as usize);
                let (pw, ph, _) = decode(&render_png(&t, &o).expect("png"));
                assert_eq!((pw, ph), (ew, eh));
                let svg = render_svg(&t, &o).expect("svg");
                assert!(svg.contains(&format!(
                    "width=\"{ew}\" height=\"{eh}\" viewBox=\"0 0 {w} {h}\""
                )));
            }
        }
    }

    #[test]
    fn every_decoded_pixel_is_in_the_style_palette() {
        for style in Style::ALL {
            for layout in [Layout::Door, Layout::Banner] {
                let (_, _, pixels) =
                    decode(&render_png(&text(style), &opts(layout, 2)).expect("png"));
                let allowed: HashSet<Rgb> = palette(style).colors.iter().copied().collect();
                let used: HashSet<Rgb> = pixels.iter().copied().collect();
                assert!(used.is_subset(&allowed), "{style}: colour outside palette");
                assert!(used.len() <= 16, "{style}: {} colours", used.len());
                // The picture really uses its text, scroll, frame and 福 colours.
                for role in [
                    Role::Text,
                    Role::Scroll,
                    Role::Frame,
                    Role::Diamond,
                    Role::DiamondText,
                ] {
                    assert!(
                        used.contains(&palette(style).rgb(role)),
                        "{style}: no {}",
                        role.name()
                    );
                }
            }
        }
    }

    #[test]
    fn upscaling_is_exact_nearest_neighbour() {
        let one = render_indexed(&text(Style::Festive), &opts(Layout::Door, 1)).expect("x1");
        let three = render_indexed(&text(Style::Festive), &opts(Layout::Door, 3)).expect("x3");
        for y in 0..three.height {
            for x in 0..three.width {
                assert_eq!(three.pixel(x, y), one.pixel(x / 3, y / 3), "({x},{y})");
            }
        }
    }

    /// Top-left corner of the first glyph box of the door's 上联 (right scroll)
    /// when both scrolls are full, at scale 1.
    fn first_upper_glyph(c: &Canvas) -> (u32, u32) {
        let x = c.width as i32 - MARGIN - THICKNESS + BORDER + PAD + 2;
        let y = MARGIN + THICKNESS + GAP + BORDER + PAD + 2;
        (x as u32, y as u32)
    }

    #[test]
    fn missing_glyph_draws_the_placeholder_not_a_blank() {
        let missing = '\u{E000}';
        assert!(!has_glyph(missing), "Unifont has no private-use glyphs");
        let upper = format!("{missing}回大地千山秀");
        for style in Style::ALL {
            let t = CoupletText {
                upper: &upper,
                lower: LOWER,
                hengpi: HENGPI,
                style,
            };
            let c = render_indexed(&t, &opts(Layout::Door, 1)).expect("renders");
            let (x0, y0) = first_upper_glyph(&c);
            let ink = Role::Text.index();
            let mut inked = 0;
            for (gy, row) in PLACEHOLDER.iter().enumerate() {
                for gx in 0..16u32 {
                    let set = row & (0x8000 >> gx) != 0;
                    let px = c.pixel(x0 + gx, y0 + gy as u32).expect("inside");
                    if set {
                        assert_eq!(px, ink, "{style}: placeholder pixel ({gx},{gy}) missing");
                        inked += 1;
                    } else {
                        assert_ne!(px, ink, "{style}: stray ink at ({gx},{gy})");
                    }
                }
            }
            assert!(inked > 40, "placeholder is clearly visible");
        }
    }

    #[test]
    fn real_glyph_is_drawn_in_the_first_cell() {
        let c = render_indexed(&text(Style::Literary), &opts(Layout::Door, 1)).expect("renders");
        let (x0, y0) = first_upper_glyph(&c);
        let bits = common::render::bitmap('春');
        for (gy, row) in bits.iter().enumerate() {
            for gx in 0..16u32 {
                let is_ink = c.pixel(x0 + gx, y0 + gy as u32) == Some(Role::Text.index());
                assert_eq!(is_ink, row & (0x8000 >> gx) != 0, "({gx},{gy})");
            }
        }
    }

    #[test]
    fn fullwidth_punctuation_and_ascii_render() {
        for c in "，、；AZ09".chars() {
            assert!(has_glyph(c), "{c}");
        }
        let t = CoupletText {
            upper: "海阔凭鱼跃，天高任鸟飞",
            lower: "山高人为峰、水远我作舟",
            hengpi: "AI；2025",
            style: Style::Business,
        };
        for layout in [Layout::Door, Layout::Banner] {
            render_png(&t, &opts(layout, 2)).expect("renders");
        }
    }

    #[test]
    fn fu_option_draws_or_omits_the_diamond() {
        let with = render_indexed(&text(Style::Classic), &opts(Layout::Door, 1)).expect("with");
        let without = render_indexed(
            &text(Style::Classic),
            &RenderOptions {
                layout: Layout::Door,
                scale: 1,
                fu: false,
            },
        )
        .expect("without");
        let count = |c: &Canvas| {
            c.pixels
                .iter()
                .filter(|&&p| p == Role::DiamondText.index())
                .count()
        };
        assert!(count(&with) > 30);
        assert_eq!(
            count(&without),
            0,
            "Classic 福 ink shares no role with anything else"
        );
        assert_eq!((with.width, with.height), (without.width, without.height));
    }

    #[test]
    fn invalid_scales_are_refused() {
        for scale in [0, 9, 100, u32::MAX] {
            let err =
                render_png(&text(Style::Classic), &opts(Layout::Door, scale)).expect_err("refused");
            assert!(matches!(err, RenderError::InvalidScale { .. }), "{err}");
            assert_eq!(err.kind(), "invalid_scale");
            assert!(render_svg(&text(Style::Classic), &opts(Layout::Door, scale)).is_err());
        }
    }

    #[test]
    fn lines_longer_than_24_chars_are_refused() {
        let long = "春".repeat(MAX_LINE_CHARS + 1);
        let ok = "春".repeat(MAX_LINE_CHARS);
        for (upper, lower, hengpi, which) in [
            (long.as_str(), ok.as_str(), HENGPI, "upper"),
            (ok.as_str(), long.as_str(), HENGPI, "lower"),
            (UPPER, LOWER, long.as_str(), "hengpi"),
        ] {
            let t = CoupletText {
                upper,
                lower,
                hengpi,
                style: Style::Family,
            };
            let err = render_indexed(&t, &opts(Layout::Banner, 1)).expect_err("too long");
            assert_eq!(err.kind(), "too_long");
            assert!(
                matches!(err, RenderError::TooLong { line, chars: 25, max: 24 } if line == which),
                "{err}"
            );
        }
    }

    #[test]
    fn size_cap_admits_everything_up_to_scale_4() {
        let longest = "春".repeat(MAX_LINE_CHARS);
        let t = CoupletText {
            upper: &longest,
            lower: &longest,
            hengpi: &longest,
            style: Style::Classic,
        };
        for layout in [Layout::Door, Layout::Banner] {
            for scale in 1..=4 {
                for fu in [true, false] {
                    let (w, h) =
                        dimensions(&t, &RenderOptions { layout, scale, fu }).expect("fits");
                    assert!(u64::from(w) * u64::from(h) <= MAX_PIXELS);
                }
            }
        }
        // The largest valid render really works (2040×2200).
        let c = render_indexed(&t, &opts(Layout::Door, 4)).expect("largest scale-4 door");
        assert_eq!((c.width, c.height), (2040, 2200));
        // Scale 8: a 24-character door with a 24-character 横批 is 4080×4400: refused.
        let err = render_png(&t, &opts(Layout::Door, 8)).expect_err("too large");
        assert_eq!(err.kind(), "too_large");
        assert!(
            matches!(
                err,
                RenderError::TooLarge {
                    width: 4080,
                    height: 4400,
                    ..
                }
            ),
            "{err}"
        );
        // ...while a 24-character door with a normal 横批, and any banner, still fit.
        let t = CoupletText {
            hengpi: HENGPI,
            ..t
        };
        assert_eq!(
            dimensions(&t, &opts(Layout::Door, 8)).expect("fits"),
            (1128, 4400)
        );
        assert!(dimensions(&t, &opts(Layout::Banner, 8)).is_ok());
    }

    #[test]
    fn empty_lines_still_draw_scrolls() {
        let t = CoupletText {
            upper: "",
            lower: "",
            hengpi: "",
            style: Style::Literary,
        };
        let c = render_indexed(&t, &opts(Layout::Door, 1)).expect("renders");
        assert_eq!((c.width, c.height), (141, 90));
        assert!(c.pixels.contains(&Role::Scroll.index()));
    }

    #[test]
    fn output_is_deterministic() {
        for style in Style::ALL {
            let a = render_png(&text(style), &opts(Layout::Door, 4)).expect("a");
            let b = render_png(&text(style), &opts(Layout::Door, 4)).expect("b");
            assert_eq!(a, b);
            let a = render_svg(&text(style), &opts(Layout::Banner, 2)).expect("a");
            let b = render_svg(&text(style), &opts(Layout::Banner, 2)).expect("b");
            assert_eq!(a, b);
        }
    }

    /// Parses `x="…"`-style attributes out of one SVG element.
    fn attr(el: &str, name: &str) -> Option<u32> {
        let key = format!(" {name}=\"");
        let start = el.find(&key)? + key.len();
        el[start..].split('"').next()?.parse().ok()
    }

    #[test]
    fn svg_rectangles_reproduce_the_png_pixels() {
        for style in Style::ALL {
            for layout in [Layout::Door, Layout::Banner] {
                let t = text(style);
                let c = render_indexed(&t, &opts(layout, 1)).expect("canvas");
                let svg = render_svg(&t, &opts(layout, 3)).expect("svg");
                assert!(svg.contains("shape-rendering=\"crispEdges\""));
                let mut grid: Vec<Option<String>> = vec![None; c.pixels.len()];
                let mut fill = String::new();
                for piece in svg.split('<').skip(1) {
                    if let Some(rest) = piece.strip_prefix("g fill=\"") {
                        fill = rest[..7].to_string();
                    } else if piece.starts_with("rect ") {
                        let colour = match piece.find("fill=\"") {
                            Some(i) => piece[i + 6..i + 13].to_string(),
                            None => fill.clone(),
                        };
                        let x = attr(piece, "x").unwrap_or(0);
                        let y = attr(piece, "y").unwrap_or(0);
                        let (w, h) = (
                            attr(piece, "width").expect("w"),
                            attr(piece, "height").expect("h"),
                        );
                        for yy in y..y + h {
                            for xx in x..x + w {
                                grid[(yy * c.width + xx) as usize] = Some(colour.clone());
                            }
                        }
                    }
                }
                for (i, &p) in c.pixels.iter().enumerate() {
                    let want = c.palette.get(p).expect("in palette").to_hex_string();
                    assert_eq!(
                        grid[i].as_deref(),
                        Some(want.as_str()),
                        "{style} {layout:?} pixel {i}"
                    );
                }
            }
        }
    }

    fn golden_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    #[test]
    fn golden_images_match_byte_for_byte() {
        let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
        let mut mismatches = Vec::new();
        for style in Style::ALL {
            let png = render_png(&text(style), &opts(Layout::Door, 2)).expect("png");
            let path = golden_dir().join(format!("{}.png", style.as_str()));
            if update {
                std::fs::create_dir_all(golden_dir()).expect("golden dir");
                std::fs::write(&path, &png).expect("write golden");
                continue;
            }
            let want = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
            if want != png {
                mismatches.push(style.as_str());
            }
        }
        assert!(
            mismatches.is_empty(),
            "golden mismatch for {mismatches:?}; inspect, then regenerate with UPDATE_GOLDEN=1"
        );
    }
}
