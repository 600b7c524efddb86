//! Classical tone classes (平/仄) of characters, from the corpus's tone table
//! (`common/data/tone_table.tsv`, derived from chinese-poetry's annotations,
//! MIT). Embedded at build time so the binaries need no data files.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Tone class of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Level tone 平: lower lines end on it.
    Ping,
    /// Oblique tone 仄: upper lines end on it.
    Ze,
}

static TABLE_TSV: &str = include_str!("../data/tone_table.tsv");

fn table() -> &'static HashMap<char, Tone> {
    static TABLE: OnceLock<HashMap<char, Tone>> = OnceLock::new();
    TABLE.get_or_init(|| {
        TABLE_TSV
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (ch, tone) = line.split_once('\t')?;
                let c = ch.chars().next()?;
                let t = match tone.trim() {
                    "平" => Tone::Ping,
                    "仄" => Tone::Ze,
                    _ => return None,
                };
                Some((c, t))
            })
            .collect()
    })
}

/// The tone of `c`, or `None` when the table does not know it.
pub fn tone(c: char) -> Option<Tone> {
    table().get(&c).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_loads_and_knows_common_characters() {
        assert!(table().len() > 7000);
        assert_eq!(tone('春'), Some(Tone::Ping));
        assert_eq!(tone('岁'), Some(Tone::Ze));
        assert_eq!(tone('a'), None);
    }
}
