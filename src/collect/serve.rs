//! `herd collect`'s HTTP side: one thread answers every request in turn (50 workers posting
//! once each is little work), and between requests merges when every shard settled or the
//! deadline passed, and merges again when a shard arrives after that.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/results` (results JSON; `X-Herd-Run`) | 200, or 400/409 with why |
//! | `POST /v1/started?shard=I` | 204 |
//! | `POST /v1/failed?shard=I` (the error as text) | 204 |
//! | `POST /v1/merge` | merge now, before the deadline (a shard is known lost) |
//! | `GET /v1/status` | every shard's state (JSON) |
//! | `GET /merged.json`, `/report.html` | the merge, 503 until there is one |
//! | `GET /shards/shard-I-of-N.json` | one shard's results as posted |
//! | `GET /healthz` | 200 |

use super::store::{Refusal, Store};
use serde_json::Value;
use std::io::Read;
use std::time::{Duration, Instant};
use tiny_http::{Header, Method, Request, Response};

/// Largest body taken (a 10-minute run's results are ~160 KB; hours of `series` stay far below).
pub const MAX_BODY: u64 = 256 << 20;

/// The merge as served.
#[derive(Default)]
pub struct Merged {
    pub doc: Option<Value>,
    pub json: String,
    pub html: String,
    pub error: Option<String>,
    /// A shard arrived since: merge again.
    pub stale: bool,
    /// `POST /v1/merge` asked for a merge before the deadline.
    pub asked: bool,
}

/// The collector: its store, its deadline and its last merge.
pub struct Collector {
    pub store: Store,
    pub deadline: Instant,
    pub merged: Merged,
    pub say: Box<dyn Fn(String) + Send>,
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header")
}

/// A whole body with its Content-Length: never chunked, so that the simplest client reads it.
fn body(code: u16, kind: &str, text: String) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(text)
        .with_status_code(code)
        .with_header(header("Content-Type", kind))
        .with_chunked_threshold(usize::MAX)
}

fn text(code: u16, t: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    body(code, "text/plain; charset=utf-8", t.into())
}

fn json_response(v: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    body(200, "application/json", v.to_string())
}

fn get_header(req: &Request, name: &'static str) -> Option<String> {
    req.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string())
}

fn query_shard(url: &str) -> Option<u32> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.strip_prefix("shard=")).and_then(|v| v.parse().ok())
}

impl Collector {
    /// Merges when the time has come (every shard settled, or the deadline passed) and the last
    /// merge is out of date. Returns whether it merged now.
    pub fn maybe_merge(&mut self, now: Instant) -> bool {
        let due = self.store.settled() || now >= self.deadline || self.merged.asked;
        if !due || (self.merged.doc.is_some() || self.merged.error.is_some()) && !self.merged.stale {
            return false;
        }
        let why = if self.store.settled() {
            "every shard settled".to_string()
        } else if self.merged.asked {
            "asked for (POST /v1/merge)".to_string()
        } else {
            "the --deadline passed".to_string()
        };
        self.merged.stale = false;
        match self.store.merge(&why) {
            Ok((doc, summary)) => {
                if let Err(e) = self.store.write_merged(&doc) {
                    (self.say)(format!("{e}"));
                }
                self.merged.json = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
                self.merged.html = crate::report::render(&doc);
                self.merged.doc = Some(doc);
                self.merged.error = None;
                (self.say)(format!(
                    "merged ({why}) into {}:\n{summary}",
                    self.store.dir().join("merged.json").display()
                ));
            }
            Err(e) => {
                (self.say)(format!("cannot merge ({why}): {e}"));
                self.merged.error = Some(e.to_string());
            }
        }
        true
    }

    /// Answers one request.
    pub fn handle(&mut self, mut req: Request) {
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or("").to_string();
        let run = get_header(&req, "X-Herd-Run");
        let worker = get_header(&req, "X-Herd-Worker").unwrap_or_default();
        let resp = match (req.method(), path.as_str()) {
            (Method::Post, "/v1/results" | "/v1/failed" | "/v1/started") => {
                let mut body = String::new();
                let read = req.as_reader().take(MAX_BODY + 1).read_to_string(&mut body);
                if let Err(e) = read {
                    text(400, format!("the body could not be read: {e}"))
                } else if body.len() as u64 > MAX_BODY {
                    text(413, format!("bodies are at most {MAX_BODY} bytes"))
                } else {
                    self.post(&path, &url, &body, run.as_deref(), &worker)
                }
            }
            (Method::Post, "/v1/merge") => {
                self.merged.asked = true;
                self.merged.stale = true;
                text(202, "merging: see /merged.json\n")
            }
            (Method::Get, "/v1/status") => json_response(&self.store.status().to_string()),
            (Method::Get, "/merged.json") => match (&self.merged.doc, &self.merged.error) {
                (Some(_), _) => json_response(&self.merged.json),
                (None, Some(e)) => text(500, e.clone()),
                (None, None) => text(503, "not merged yet: see /v1/status"),
            },
            (Method::Get, "/report.html") => match &self.merged.doc {
                Some(_) => body(200, "text/html; charset=utf-8", self.merged.html.clone()),
                None => text(503, "not merged yet: see /v1/status"),
            },
            (Method::Get, p) if p.starts_with("/shards/") => {
                let name = &p["/shards/".len()..];
                match self.store.slots.iter().find(|s| s.results.as_deref() == Some(name)) {
                    Some(_) => match std::fs::read_to_string(self.store.dir().join(name)) {
                        Ok(t) => json_response(&t),
                        Err(e) => text(500, e.to_string()),
                    },
                    None => text(404, format!("no shard file {name:?}")),
                }
            }
            (Method::Get, "/healthz") => text(200, "ok\n"),
            _ => text(404, "not found: see `herd collect --help`"),
        };
        let _ = req.respond(resp);
    }

    fn post(
        &mut self,
        path: &str,
        url: &str,
        body: &str,
        run: Option<&str>,
        worker: &str,
    ) -> Response<std::io::Cursor<Vec<u8>>> {
        let now = crate::drive::shard::unix_now();
        let done = match path {
            "/v1/results" => self.store.results(body, run).map(|name| {
                (self.say)(format!("{name}: {} bytes from {worker}", body.len()));
                format!("taken as {name}\n")
            }),
            _ => match query_shard(url) {
                None => Err(Refusal(400, "give ?shard=I".into())),
                Some(i) if path == "/v1/started" => self.store.started(i, worker, run, now).map(|()| String::new()),
                Some(i) => self.store.failed(i, body, run).map(|()| {
                    (self.say)(format!("shard {i} failed: {body}"));
                    String::new()
                }),
            },
        };
        match done {
            Ok(msg) => {
                if path != "/v1/started" {
                    self.merged.stale = true;
                }
                text(200, msg)
            }
            Err(Refusal(code, why)) => {
                (self.say)(format!("refused {path} from {worker}: {why}"));
                text(code, why + "\n")
            }
        }
    }

    /// Answers the next request (or waits up to 200 ms for one), then merges if it is time.
    pub fn step(&mut self, server: &tiny_http::Server) {
        if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) {
            self.handle(req);
        }
        self.maybe_merge(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::query_shard;

    #[test]
    fn the_shard_comes_from_the_query() {
        assert_eq!(query_shard("/v1/failed?shard=3"), Some(3));
        assert_eq!(query_shard("/v1/failed?x=1&shard=12"), Some(12));
        assert_eq!(query_shard("/v1/failed?shard=x"), None);
        assert_eq!(query_shard("/v1/failed"), None);
    }
}
