//! `--tokens FILE`: one token per line, user `u` gets line `u mod lines` as `{token}`.
//!
//! The file is read once per run into one string with line offsets, shared by every core;
//! connections borrow their token, they never copy it.

use std::path::Path;

#[derive(Debug, Default)]
pub struct Tokens {
    text: String,
    /// End offset of each token in `text`.
    ends: Vec<usize>,
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = crate::config::readfile::read_text(
            path,
            crate::config::readfile::TOKENS_LIMIT,
            &crate::runtime::signal::stop_requested,
        )
        .map_err(|e| format!("--tokens {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("--tokens {}: {e}", path.display()))
    }

    /// One token per line (`\n` or `\r\n`). Blank lines at the end are ignored; a blank line
    /// elsewhere, or a control character in a token, is an error (it would shift every later user
    /// or break a header).
    pub fn parse(s: &str) -> Result<Tokens, String> {
        let mut lines: Vec<&str> = s.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        if lines.is_empty() {
            return Err("no tokens in the file".into());
        }
        let mut t = Tokens { text: String::with_capacity(s.len()), ends: Vec::with_capacity(lines.len()) };
        for (i, l) in lines.iter().enumerate() {
            if l.is_empty() {
                return Err(format!("line {} is blank", i + 1));
            }
            if l.chars().any(char::is_control) {
                return Err(format!("line {} has a control character", i + 1));
            }
            t.text.push_str(l);
            t.ends.push(t.text.len());
        }
        t.text.shrink_to_fit();
        Ok(t)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The token of a user; empty when there are no tokens.
    pub fn get(&self, user: u64) -> &str {
        if self.ends.is_empty() {
            return "";
        }
        let i = (user % self.ends.len() as u64) as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_wrap_around_the_lines() {
        let t = Tokens::parse("alpha\r\nbeta\ngamma\n\n").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t.get(0), t.get(1), t.get(2), t.get(4)), ("alpha", "beta", "gamma", "beta"));
        assert_eq!(Tokens::default().get(5), "");
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Tokens::parse("").unwrap_err().contains("no tokens"));
        assert!(Tokens::parse("a\n\nb\n").unwrap_err().contains("line 2"));
        assert!(Tokens::parse("a\tb\n").unwrap_err().contains("control"));
    }
}
