//! `herd run`'s flags for handing its results to a `herd collect` (`--collect`,
//! `--collect-within`); the posting itself is `collect::post`'s.

use std::time::Duration;

/// `herd run`'s flags for handing results to a `herd collect`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct PostArgs {
    /// Post the results to a `herd collect` at this http URL (e.g. http://herd-collect:8090),
    /// with retries: for clusters, where logs are cut into lines and vanish with their node
    #[arg(long = "collect", env = "HERD_COLLECT", value_name = "URL", value_parser = parse_collect_url)]
    pub collect: Option<String>,
    /// How long posting the results may keep retrying [default: 5m]
    #[arg(long = "collect-within", value_name = "DURATION", value_parser = crate::config::units::parse_duration)]
    pub collect_within: Option<Duration>,
}

pub(crate) fn parse_collect_url(s: &str) -> std::result::Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    if !t.starts_with("http://") || t.len() <= "http://".len() {
        return Err(format!("{s:?}: give the collector's http:// URL, e.g. http://herd-collect:8090"));
    }
    Ok(t.to_string())
}
