//! herd's print macros. A closed or broken stdout/stderr (a pipe whose reader left) must never
//! stop a run or lose its results, so nothing prints through the panicking `println!` family.
//! Exported at the crate root: `crate::errln!`, `herd::out!`.

/// `eprintln!` that never panics: a closed or broken stderr (a pipe whose reader left) must not
/// stop a run or lose its results.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// `print!` that never panics, for the same reason.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut o = ::std::io::stdout().lock();
        let _ = ::std::write!(o, $($arg)*);
        let _ = o.flush();
    }};
}
