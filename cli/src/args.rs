//! Command-line arguments (clap derive). Style names are parsed with
//! `common::Style`, so the CLI accepts exactly the service's styles; all other
//! request checks (theme characters, lengths, punctuation, `--candidates`
//! 1–5, `--head`) are left to the server, whose refusal is exit code 3.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use common::Style;
use std::path::PathBuf;

/// Default base URL of the service.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Client for Pixel Couplet Gen: Spring Festival couplets (春联) drawn as 8-bit pixel art.
#[derive(Debug, Parser)]
#[command(name = "couplet", version, propagate_version = true, after_help = EXIT_CODES)]
pub struct Cli {
    /// Base URL of the service.
    #[arg(long, env = "COUPLET_URL", default_value = DEFAULT_URL, global = true, value_parser = parse_base_url)]
    pub url: url::Url,

    /// API key, sent as `Authorization: Bearer <key>` (only needed when the server requires one).
    #[arg(long, env = "COUPLET_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 ok, 2 usage, 3 rejected by the API (4xx), 4 job failed or canceled, \
5 service unreachable, timed out or 5xx, 1 local error (e.g. cannot write the PNG).";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a couplet for a theme (or complete an upper line).
    Gen(GenArgs),
    /// Show a job by id.
    Status(StatusArgs),
    /// Write the lower line and 横批 for an upper line you give.
    Complete(CompleteArgs),
}

/// `couplet gen`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true).args(["theme", "upper"]))]
pub struct GenArgs {
    /// Theme: up to 4 Chinese characters that must appear, e.g. "龙年 吉祥".
    #[arg(long)]
    pub theme: Option<String>,
    /// Style of vocabulary and palette.
    #[arg(long, default_value = "classic", value_parser = style_parser())]
    pub style: Style,
    /// Characters per line: 5, 7 or 9 (omit with --upper: the upper line sets it).
    #[arg(long)]
    pub length: Option<i64>,
    /// Your own upper line (4–24 characters); the service writes the lower line.
    #[arg(long)]
    pub upper: Option<String>,
    /// Seed for a reproducible couplet.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ranking options (--candidates, --head).
    #[command(flatten)]
    pub ranking: RankingArgs,
    /// Wait for the couplet and print it (otherwise print the job id and return).
    #[arg(long)]
    pub wait: bool,
    /// --json, image options (--png implies --wait) and --timeout.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `couplet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Job id (as printed by `couplet gen`).
    pub id: String,
    /// Wait until the job is finished.
    #[arg(long)]
    pub wait: bool,
    /// --json, image options (--png implies --wait) and --timeout.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `couplet complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The upper line (上联), 4–24 Chinese characters; ，、； allowed inside.
    pub upper: String,
    /// Style of vocabulary and palette.
    #[arg(long, default_value = "classic", value_parser = style_parser())]
    pub style: Style,
    /// Seed for a reproducible result.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ranking options (--candidates, --head; the head must open the upper line).
    #[command(flatten)]
    pub ranking: RankingArgs,
    /// --json, image options and --timeout.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// How a finished job is shown, and how long to wait for it (shared by
/// `gen`, `status` and `complete`).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print the job JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Image options.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Give up waiting after this many seconds (exit 5).
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub timeout: u64,
}

/// How many couplets to ask for, and 藏头. Passed to the server unchecked (it validates).
#[derive(Debug, Args)]
pub struct RankingArgs {
    /// How many ranked couplets to return, best first (1–5; the server's default is 1).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub candidates: Option<i64>,
    /// 藏头: two Chinese characters; the upper line starts with the first, the lower with the second.
    #[arg(long, value_name = "XY")]
    pub head: Option<String>,
}

/// Where and how to save the pixel image.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Save the pixel-art PNG here.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Which candidate the PNG shows: 0-based, as numbered in the text output (default 0, the best).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub candidate: usize,
    /// Pixel scale of the PNG (1–8).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub scale: u32,
    /// Arrangement of the PNG.
    #[arg(long, value_enum, default_value_t = LayoutArg::Door)]
    pub layout: LayoutArg,
}

/// Image layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// Two vertical scrolls and the 横批 across the top, as on a door.
    Door,
    /// Three horizontal lines, for narrow screens.
    Banner,
}

impl LayoutArg {
    /// The wire name (`layout=` query value).
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutArg::Door => "door",
            LayoutArg::Banner => "banner",
        }
    }
}

/// Accepts exactly `common::Style`'s names, and lists them in `--help` and errors.
fn style_parser() -> impl TypedValueParser<Value = Style> {
    PossibleValuesParser::new(Style::ALL.map(Style::as_str))
        .try_map(|s: String| Style::parse(&s).ok_or_else(|| format!("unknown style `{s}`")))
}

fn parse_base_url(s: &str) -> Result<url::Url, String> {
    let mut u = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err("the URL must start with http:// or https://".into());
    }
    if u.cannot_be_a_base() || u.host().is_none() {
        return Err("the URL needs a host, e.g. http://127.0.0.1:8080".into());
    }
    // A base path ("/couplets") must end in '/' for Url::join to keep it.
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gen_needs_a_theme_or_an_upper_line() {
        assert!(Cli::try_parse_from(["couplet", "gen"]).is_err());
        assert!(Cli::try_parse_from(["couplet", "gen", "--theme", "福"]).is_ok());
        assert!(Cli::try_parse_from(["couplet", "gen", "--upper", "天增岁月人增寿"]).is_ok());
    }

    #[test]
    fn candidates_and_head_reach_the_request_unchecked() {
        let cli = Cli::try_parse_from(["couplet", "gen", "--theme", "福", "--candidates", "0", "--head", "春福", "--candidate", "2"])
            .expect("parses");
        let Command::Gen(a) = cli.command else { panic!("not gen") };
        // 0 is the server's to refuse (422 invalid_candidates → exit 3), not clap's.
        assert_eq!((a.ranking.candidates, a.ranking.head.as_deref(), a.output.image.candidate), (Some(0), Some("春福"), 2));
        let cli = Cli::try_parse_from(["couplet", "complete", "春风送暖入屠苏", "--candidates", "3", "--head", "春福"]).expect("parses");
        let Command::Complete(a) = cli.command else { panic!("not complete") };
        assert_eq!(a.ranking.candidates, Some(3));
        assert!(Cli::try_parse_from(["couplet", "status", "a", "--candidate", "x"]).is_err());
    }

    #[test]
    fn styles_and_urls_are_checked() {
        assert!(Cli::try_parse_from(["couplet", "gen", "--theme", "福", "--style", "gothic"]).is_err());
        assert!(Cli::try_parse_from(["couplet", "--url", "ftp://x", "status", "a"]).is_err());
        let cli = Cli::try_parse_from(["couplet", "--url", "http://h:1/base", "status", "a"]).expect("parses");
        assert_eq!(cli.url.as_str(), "http://h:1/base/");
    }
}
