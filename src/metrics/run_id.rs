//! The run id (`--run-id`, `HERD_RUN_ID`): one value shared by every shard of one run, so that
//! its Pushgateway groups, its `--start-when` meeting and its collector are the run's own, and
//! a crashed worker of an earlier run (whose groups carry that run's id) joins none of them.

/// Longest run id: a Kubernetes label value's limit, so the id can be a pod label too.
pub const MAX_LEN: usize = 63;

/// 1 to 63 of `A-Z a-z 0-9 . _ -` (a Job's uid fits; so does a date or a name).
pub fn parse_run_id(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_LEN {
        return Err(format!("{s:?}: a run id has 1 to {MAX_LEN} characters"));
    }
    if let Some(c) = t.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{s:?}: {c:?} is not allowed (letters, digits, '.', '_', '-')"));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_label_values() {
        assert_eq!(parse_run_id("0f8c1e2a-4b5d-4c6e-9f70-1a2b3c4d5e6f").unwrap().len(), 36);
        assert_eq!(parse_run_id(" nightly.2026-12-06 ").unwrap(), "nightly.2026-12-06");
        assert!(parse_run_id("").is_err());
        assert!(parse_run_id("a/b").unwrap_err().contains("'/'"));
        assert!(parse_run_id(&"x".repeat(64)).is_err());
    }
}
