//! The command line: `herd run`, `herd serve`, `herd doctor`, `herd ceiling`, `herd knee`,
//! `herd merge`, `herd compare`, `herd report`, `herd collect`, `herd kube`. Parsing only; each
//! subcommand's work lives in its own module.
//!
//! The one precedence rule for run options, applied here for every subcommand that takes them
//! (`run`, `knee`, `ceiling`, all flattening `config::args::RunArgs`): a flag on the command line
//! wins over the same key of `--scenario FILE`, which wins over a `--target` preset's value
//! (`config::protocol`), which wins over the default. The file's keys are the flags' long names,
//! parsed by the same clap definition (`config::file`).

use crate::cmd::ceiling::CeilingArgs;
use crate::cmd::knee::KneeArgs;
use crate::config::args::RunArgs;
use crate::config::file::{self, ScenarioFile};
use crate::doctor::DoctorArgs;
use crate::error::Error;
use crate::server::ServeArgs;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "herd", version, about = "A thread-per-core WebSocket chat load generator")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open conversations of WebSocket clients, send at a fixed rate (or in stages), measure delivery
    Run(Box<RunArgs>),
    /// Run the reference chat server
    Serve(ServeArgs),
    /// Check the limits that cap connections on this host, and how to raise them
    Doctor(DoctorArgs),
    /// Find how many connections a target holds: open them in steps until errors or limits
    Ceiling(Box<CeilingArgs>),
    /// Find the knee: the highest send rate whose delivery p99 stays within a bound
    Knee(Box<KneeArgs>),
    /// Merge the results of the shards of one scenario (`herd run --shard I/N`) exactly
    Merge(crate::merge::MergeArgs),
    /// Compare runs' results: every headline figure side by side, fail on regressions
    Compare(crate::cmd::compare::CompareArgs),
    /// Write the self-contained HTML report of a run's results
    Report(crate::report::ReportArgs),
    /// Take the results of a distributed run's workers (`herd run --collect URL`) over HTTP,
    /// merge them exactly, and write and serve the merged results and the HTML report
    Collect(crate::collect::CollectArgs),
    /// Print the Kubernetes manifests of a distributed run (workers, collector) from herd run's flags
    Kube(crate::kube::KubeArgs),
}

/// Why a command line was refused.
#[derive(Debug)]
pub enum ParseError {
    /// clap's own refusal (or `--help`, `--version`): printed by clap.
    Clap(clap::Error),
    /// The scenario file could not be read, or one of its keys is bad.
    Setup(Error),
}

impl From<clap::Error> for ParseError {
    fn from(e: clap::Error) -> Self {
        ParseError::Clap(e)
    }
}

/// The subcommands that take the run options (and so `--scenario`).
const RUN_OPTION_COMMANDS: [&str; 3] = ["run", "knee", "ceiling"];

/// The command tree, with each subcommand's deliberate default overrides of shared run options.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("ceiling", crate::cmd::ceiling::run_option_defaults)
}

/// Parses the process's command line.
pub fn parse() -> Result<Cli, ParseError> {
    parse_from(std::env::args_os())
}

/// Parses a command line: the scenario file's keys are layered under the flags given, and the
/// order of `--join` and `--expect` relative to each other is kept (the join steps run in it).
pub fn parse_from<I, T>(args: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let m = command().try_get_matches_from(&argv)?;
    if let Some((name, sm)) = m.subcommand() {
        let path = if RUN_OPTION_COMMANDS.contains(&name) { sm.get_one::<PathBuf>("scenario") } else { None };
        if let Some(path) = path {
            let f = file::load_file(path).map_err(ParseError::Setup)?;
            return layered(&argv, name, sm, f);
        }
    }
    cli_from(&m, toml::Table::new())
}

/// The command line with the file's keys under it.
fn layered(argv: &[OsString], name: &str, given: &ArgMatches, f: ScenarioFile) -> Result<Cli, ParseError> {
    let words = file_words(name, given, &f).map_err(ParseError::Setup)?;
    cli_from(&command().try_get_matches_from(with_file_words(argv, name, words))?, f.tables)
}

/// Parses a command line with a scenario file's text instead of a `--scenario` path (tests).
pub fn parse_with_file(argv: &[&str], file_text: &str) -> Result<Cli, ParseError> {
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let m = command().try_get_matches_from(&argv)?;
    let (name, sm) =
        m.subcommand().ok_or_else(|| ParseError::Setup(Error::Usage("a subcommand is required".into())))?;
    let f = file::parse(file_text).map_err(|e| ParseError::Setup(Error::Usage(e)))?;
    layered(&argv, name, sm, f)
}

/// `herd run ARGV` with a scenario file's text, parsed as a user's command line, into its run
/// options; any refusal as its message (tests).
pub fn run_args_with_file(argv: &[&str], file_text: &str) -> Result<RunArgs, String> {
    let full: Vec<&str> = ["herd", "run"].iter().chain(argv).copied().collect();
    match parse_with_file(&full, file_text) {
        Ok(Cli { command: Command::Run(a) }) => Ok(*a),
        Ok(_) => Err("not herd run".into()),
        Err(ParseError::Clap(e)) => Err(e.to_string()),
        Err(ParseError::Setup(e)) => Err(e.to_string()),
    }
}

fn cli_from(m: &ArgMatches, tables: toml::Table) -> Result<Cli, ParseError> {
    let mut cli = Cli::from_arg_matches(m)?;
    let run = match &mut cli.command {
        Command::Run(a) => Some(&mut **a),
        Command::Knee(a) => Some(&mut a.run),
        Command::Ceiling(a) => Some(&mut a.run),
        _ => None,
    };
    if let (Some(run), Some((_, sm))) = (run, m.subcommand()) {
        run.protocol.expect_after = expect_positions(sm);
        run.file_tables = tables;
    }
    Ok(cli)
}

/// The command line with the file's words inserted right after the subcommand's name.
fn with_file_words(argv: &[OsString], name: &str, words: Vec<OsString>) -> Vec<OsString> {
    let at = argv.iter().skip(1).position(|a| a == name).map_or(argv.len(), |p| p + 2);
    argv[..at].iter().cloned().chain(words).chain(argv[at..].iter().cloned()).collect()
}

/// The words of the file's keys that the command line leaves to it: each key is a flag of
/// subcommand `name` (checked with that flag's parser, an error names the key); a key whose flag
/// (or a flag it conflicts with) was given on the command line is dropped: the flag wins.
fn file_words(name: &str, given: &ArgMatches, f: &ScenarioFile) -> Result<Vec<OsString>, Error> {
    let mut sub = command().find_subcommand(name).expect("the subcommand exists").clone();
    sub.build();
    let on_line = |id: &str| given.value_source(id) == Some(ValueSource::CommandLine);
    // Each key is checked alone, so nothing else may be required.
    let ids: Vec<clap::Id> = sub.get_arguments().map(|a| a.get_id().clone()).collect();
    let mut alone = sub.clone().no_binary_name(true);
    for id in ids {
        alone = alone.mut_arg(id, |a| a.required(false));
    }
    let mut out = vec![];
    let mut keys = vec![];
    for (key, words) in &f.flags {
        let arg = sub.get_arguments().find(|a| a.get_long() == Some(key.as_str())).ok_or_else(|| {
            Error::Usage(format!(
                "scenario key '{key}': herd {name} has no flag --{key} (keys are the flags' long names)"
            ))
        })?;
        let id = arg.get_id().as_str();
        // `join` steps and `expect` waits are one sequence: the command line's replaces the file's.
        // Stages set the duration and the rate: `--stage` on the command line replaces the file's.
        let wins = on_line(id)
            || (matches!(id, "join" | "expect") && (on_line("join") || on_line("expect")))
            || (matches!(id, "duration" | "rate" | "stages") && on_line("stages"))
            || sub.get_arg_conflicts_with(arg).iter().any(|c| on_line(c.get_id().as_str()))
            || sub.get_arguments().any(|o| {
                on_line(o.get_id().as_str()) && sub.get_arg_conflicts_with(o).iter().any(|c| c.get_id() == arg.get_id())
            });
        if !wins {
            out.extend(words.iter().cloned());
            keys.push(key.as_str());
        }
    }
    // The file's words alone, each with its flag's parser: a bad value names its key. What needs
    // the command line too (an argument another one requires) is left to the whole parse.
    if let Err(e) = alone.try_get_matches_from(&out) {
        if e.kind() != clap::error::ErrorKind::MissingRequiredArgument {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            let culprit = match e.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(a)) => {
                    keys.iter().find(|k| a.split([' ', '=']).next() == Some(&format!("--{k}"))).copied()
                }
                _ => None,
            };
            return Err(Error::Usage(match culprit {
                Some(key) => format!("scenario key '{key}': {first}"),
                None => format!("scenario file: {first}"),
            }));
        }
    }
    Ok(out)
}

/// For each `--expect`, how many `--join` flags came before it.
fn expect_positions(m: &ArgMatches) -> Vec<usize> {
    let joins: Vec<usize> = m.indices_of("join").map(Iterator::collect).unwrap_or_default();
    m.indices_of("expect").map(|e| e.map(|x| joins.iter().filter(|&&j| j < x).count()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str], file: &str) -> Result<RunArgs, String> {
        run_args_with_file(argv, file)
    }

    #[test]
    fn help_shows_the_defaults_the_code_uses() {
        let help = Cli::command().find_subcommand_mut("run").unwrap().render_help().to_string();
        for (flag, d) in [
            ("--rate", crate::config::args::defaults::RATE),
            ("--max-frame", crate::config::args::defaults::MAX_FRAME),
            ("--duration", crate::config::args::defaults::DURATION),
        ] {
            let line = help.lines().skip_while(|l| !l.contains(flag)).take(3).collect::<String>();
            assert!(line.contains(&format!("[default: {d}]")), "{flag}: {line}");
        }
    }

    #[test]
    fn expect_flags_keep_their_place_among_joins() {
        let cli = parse_from([
            "herd",
            "run",
            "--url",
            "ws://127.0.0.1:1/x",
            "--expect",
            "^0",
            "--join",
            "40",
            "--expect",
            "^40",
            "--join",
            "42",
            "--expect",
            "^43",
        ])
        .unwrap();
        let Command::Run(a) = cli.command else { panic!("not run") };
        assert_eq!(a.protocol.expect_after, vec![0, 1, 2]);
        assert_eq!(a.protocol.join, ["40", "42"]);
    }

    #[test]
    fn flags_win_over_the_file_which_fills_the_rest() {
        let a = run(&["--members", "3", "--header", "C: 3"], "members = 5\nconversations = 10\nheader = [\"A: 1\"]")
            .unwrap();
        assert_eq!((a.members, a.conversations), (Some(3), Some(10)));
        assert_eq!(a.protocol.headers, ["C: 3"], "a list on the command line replaces the file's");
        let a = run(&[], "header = [\"A: 1\", \"B: 2\"]\nreconnect = true\nquiet = false").unwrap();
        assert_eq!(a.protocol.headers, ["A: 1", "B: 2"]);
        assert!(a.reconnect && !a.quiet);
    }

    #[test]
    fn a_flag_wins_over_a_file_key_it_conflicts_with() {
        let a = run(&["--threads", "3"], "cores = \"0\"").unwrap();
        assert_eq!((a.threads, a.cores), (Some(3), None));
    }

    #[test]
    fn join_steps_come_from_one_side_in_their_order() {
        let a = run(&[], "join = [{ expect = \"^0\" }, \"40\"]").unwrap();
        assert_eq!(
            (a.protocol.join.clone(), a.protocol.expect.clone()),
            (vec!["40".to_string()], vec!["^0".to_string()])
        );
        assert_eq!(a.protocol.expect_after, [0]);
        let a = run(&["--join", "x"], "join = [{ expect = \"^0\" }, \"40\"]").unwrap();
        assert_eq!((a.protocol.join, a.protocol.expect), (vec!["x".to_string()], vec![]));
    }

    #[test]
    fn tables_reach_the_run_and_unknown_ones_are_refused() {
        let a = run(&[], "rate = 2\n[nosuch]\nx = 1").unwrap();
        assert!(a.file_tables.contains_key("nosuch"));
        let e = crate::config::args::resolve(&a, &[0]).unwrap_err().to_string();
        assert!(e.contains("[nosuch]"), "{e}");
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(run(&[], "duration = \"soon\"").unwrap_err().contains("scenario key 'duration'"));
        let e = run(&[], "conversatons = 3").unwrap_err();
        assert!(e.contains("scenario key 'conversatons'") && e.contains("no flag"), "{e}");
        assert!(run(&[], "members = true").unwrap_err().contains("scenario key 'members'"));
        // A bad file value under a flag given on the command line is never looked at.
        assert_eq!(
            run(&["--duration", "3s"], "duration = \"soon\"").unwrap().duration,
            Some(std::time::Duration::from_secs(3))
        );
    }

    #[test]
    fn knee_and_ceiling_take_the_run_options_and_the_file() {
        let cli = parse_with_file(&["herd", "knee", "--p99", "5ms"], "members = 6\nconnect-rate = \"2k\"").unwrap();
        let Command::Knee(k) = cli.command else { panic!("not knee") };
        assert_eq!((k.run.members, k.run.connect_rate), (Some(6), Some(2000.0)));
        let cli = parse_with_file(&["herd", "ceiling", "--step", "10"], "source-ip = \"127.0.0.2\"").unwrap();
        let Command::Ceiling(c) = cli.command else { panic!("not ceiling") };
        assert_eq!(c.run.source_ip.as_deref(), Some("127.0.0.2"));
        // The ceiling's own default for --members, named in cmd::ceiling, applies when not given.
        assert_eq!(c.run.members.map(|m| m.to_string()).as_deref(), Some(crate::cmd::ceiling::DEFAULT_MEMBERS));
    }
}
