//! The core's reactor waits in the kernel only when no task is runnable and no timer is near
//! (`src/runtime/net/idle.rs`). A task spawned, or a timer set, straight through glommio would be
//! invisible to it: such a task could wait for the core's next look (50 ms), such a timer fire late. So
//! every spawn and timer in herd's code goes through `net::idle`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_task_and_timer_goes_through_net_idle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), src.display());
    let banned = ["glommio::spawn_local", "glommio::timer::", "spawn_local_into(", "LocalExecutorBuilder"];
    let mut found = vec![];
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let allowed: &[&str] = match rel.as_str() {
            "runtime/net/idle.rs" => &["glommio::spawn_local", "glommio::timer::", "spawn_local_into("],
            "runtime/executor.rs" => &["LocalExecutorBuilder"],
            _ => &[],
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for b in banned.iter().filter(|b| !allowed.contains(b)) {
                if code.contains(b) {
                    found.push(format!("src/{rel}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "spawn tasks and set timers through net::idle:\n{}", found.join("\n"));
}
