//! The Pushgateway's grouping-key URL: `{url}/metrics/job/{job}/instance/{instance}`.
//!
//! Label values are percent-encoded as path segments. A value with a `/` (which the
//! Pushgateway would take as a path separator even when percent-encoded) or an empty value uses
//! the Pushgateway's `name@base64/VALUE` form with URL-safe base64 (RFC 4648 §5).

/// The URL of the group `job`/`instance` under the Pushgateway at `base` (no trailing slash
/// needed).
pub fn group_url(base: &str, job: &str, instance: &str) -> String {
    format!(
        "{}/metrics/{}/{}",
        base.trim_end_matches('/'),
        label_segment("job", job),
        label_segment("instance", instance)
    )
}

/// [`group_url`] with more grouping labels after `instance` (e.g. `shard`): the Pushgateway
/// adds every grouping label to every metric of the group, and groups differing in any label
/// never overwrite each other.
pub fn group_url_with(base: &str, job: &str, instance: &str, more: &[(String, String)]) -> String {
    let mut url = group_url(base, job, instance);
    for (name, value) in more {
        url.push('/');
        url.push_str(&label_segment(name, value));
    }
    url
}

fn label_segment(name: &str, value: &str) -> String {
    if value.is_empty() || value.contains('/') {
        format!("{name}@base64/{}", url_safe_base64(value.as_bytes()))
    } else {
        format!("{name}/{}", percent_encode(value))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::config::template::UNRESERVED).to_string()
}

/// URL-safe base64 with padding; the empty input gives `=`, which the Pushgateway reads as the
/// empty string.
pub fn url_safe_base64(data: &[u8]) -> String {
    use base64::Engine;
    if data.is_empty() {
        return "=".to_string();
    }
    base64::engine::general_purpose::URL_SAFE.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(url_safe_base64(b"f"), "Zg==");
        assert_eq!(url_safe_base64(b"fo"), "Zm8=");
        assert_eq!(url_safe_base64(b"foo"), "Zm9v");
        assert_eq!(url_safe_base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(url_safe_base64(b"/var/tmp"), "L3Zhci90bXA=");
        assert_eq!(url_safe_base64(&[0xfb, 0xff]), "-_8=");
        assert_eq!(url_safe_base64(b""), "=");
    }

    #[test]
    fn group_urls_escape_values() {
        assert_eq!(group_url("http://pg:9091/", "herd", "box-1"), "http://pg:9091/metrics/job/herd/instance/box-1");
        assert_eq!(group_url("http://pg:9091", "my job", "a:b"), "http://pg:9091/metrics/job/my%20job/instance/a%3Ab");
        assert_eq!(
            group_url("http://pg:9091", "herd", "rack/7"),
            "http://pg:9091/metrics/job/herd/instance@base64/cmFjay83"
        );
        assert_eq!(group_url("http://pg:9091", "herd", ""), "http://pg:9091/metrics/job/herd/instance@base64/=");
        assert_eq!(group_url("http://pg:9091", "ünï", "x"), "http://pg:9091/metrics/job/%C3%BCn%C3%AF/instance/x");
        assert_eq!(
            group_url_with("http://pg:9091", "herd", "box", &[("shard".into(), "2".into())]),
            "http://pg:9091/metrics/job/herd/instance/box/shard/2"
        );
    }
}
