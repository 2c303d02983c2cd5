//! `cargo test -p dbtap-mysql --test dump -- --ignored --nocapture`: print the events of every
//! stream file (a development aid, not an assertion).
mod common;

#[test]
#[ignore]
fn dump_all_streams() {
    let dir = format!("{}/tests/streams", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .map(|n| n.trim_end_matches(".txt").to_string())
        .collect();
    names.sort();
    let only = std::env::var("ONLY").ok();
    for n in names {
        if only.as_deref().is_some_and(|o| !n.contains(o)) {
            continue;
        }
        let mid = std::env::var("MID").is_ok();
        let ev = if mid {
            common::run_mid(&n)
        } else {
            common::run(&n)
        };
        println!("=== {n}");
        for e in &ev {
            println!("  {e:?}");
        }
    }
}

#[test]
#[ignore]
fn dump_one_verbose() {
    let n = std::env::var("ONLY").unwrap_or_default();
    let segs = common::load(&n);
    let (ev, d, _) = common::feed(&segs, Default::default(), Default::default());
    println!("{:?} {:?}", d.state(), d.stats());
    for e in ev {
        println!("{e:?}");
    }
}
