//! `cargo test -p dbtap-pgsql --test dump -- --ignored --nocapture`: print the events of every
//! stream file (a development aid, not an assertion). `ONLY=name` limits it to matching files;
//! `MID=1` feeds them as sessions picked up mid-stream.
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
        let segs = common::load(&n);
        let (ev, d, _) = common::feed(
            &segs,
            dbtap_core::SessionOpts { midstream: mid },
            Default::default(),
        );
        println!("=== {n} {:?} {:?}", d.state(), d.stats());
        if std::env::var("SUMMARY").is_ok() {
            for e in &ev {
                if !matches!(
                    e,
                    dbtap_core::DbEvent::Request(_) | dbtap_core::DbEvent::Response(_)
                ) {
                    println!("  {e:?}");
                }
            }
            for l in common::summary(&ev) {
                println!("  {l}");
            }
            continue;
        }
        for e in &ev {
            println!("  {e:?}");
        }
    }
}
