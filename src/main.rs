//! The `herd` binary: parse, dispatch to the library, print `error: ...` and exit with the
//! error's sysexits code.

use herd::cli::Command;

fn main() {
    let cli = match herd::cli::parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 64 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let result = match &cli.command {
        Command::Run(a) => herd::run_command(a).map(|_| ()),
        Command::Serve(a) => herd::server::main(a),
        Command::Doctor(a) => std::process::exit(herd::doctor::main(a)),
        Command::Merge(a) => herd::merge::main(a),
        Command::Ceiling(a) => herd::ceiling::main(a).map(|r| herd::out!("{}", herd::ceiling::summary(&r))),
        Command::Knee(a) => herd::knee::main(a).map(|k| herd::out!("{}", herd::knee::summary(&k))),
        Command::Compare(a) => herd::compare::main(a),
        Command::Report(a) => herd::report::main(a).map(|p| herd::out!("report written to {}\n", p.display())),
    };
    if let Err(e) = result {
        herd::errln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
