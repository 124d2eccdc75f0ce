//! The `herd` binary: parse, dispatch to the library, print `error: ...` and exit with the
//! error's sysexits code.

use herd::cli::Command;

fn main() {
    let cli = match herd::cli::parse() {
        Ok(c) => c,
        Err(herd::cli::ParseError::Clap(e)) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
        Err(herd::cli::ParseError::Setup(e)) => {
            herd::errln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    };
    // Each subcommand's `main` does its work; what it returns is printed here. `Ok(code)`: the
    // exit code of a subcommand that ended without an error (doctor's verdict).
    let result = match &cli.command {
        Command::Run(a) => herd::cmd::run::main_reporting(a).map(|_| 0),
        Command::Serve(a) => herd::server::main(a).map(|()| 0),
        Command::Doctor(a) => herd::doctor::main(a),
        Command::Merge(a) => herd::merge::main(a).map(|()| 0),
        Command::Ceiling(a) => {
            herd::cmd::ceiling::main(a).map(|r| herd::out!("{}", herd::cmd::ceiling::summary(&r))).map(|()| 0)
        }
        Command::Knee(a) => {
            herd::cmd::knee::main(a).map(|k| herd::out!("{}", herd::cmd::knee::summary(&k))).map(|()| 0)
        }
        Command::Collect(a) => herd::collect::main(a),
        Command::Kube(a) => herd::kube::main(a).map(|()| 0),
        Command::Compare(a) => herd::cmd::compare::main(a).map(|()| 0),
        Command::Report(a) => {
            herd::report::main(a).map(|p| herd::out!("report written to {}\n", p.display())).map(|()| 0)
        }
    };
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            herd::errln!("error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
