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

/// `CENSUS_DIR=/dir`: per stream file there, counts of ops / errors for comparison with tshark.
#[test]
#[ignore]
fn census() {
    let Ok(dir) = std::env::var("CENSUS_DIR") else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let segs = common::parse(&text);
        let mid = !text
            .lines()
            .any(|l| l.contains(" < 0a") || l.contains(" < 09"));
        let (ev, d, _) = common::feed(
            &segs,
            dbtap_core::SessionOpts { midstream: false },
            Default::default(),
        );
        let p = common::pairs(&ev);
        let q = p
            .iter()
            .filter(|(r, _)| {
                matches!(
                    r.op.as_ref().map(|o| o.as_str()),
                    Some("query") | Some("prepare")
                )
            })
            .count();
        let errs: Vec<String> = p
            .iter()
            .filter_map(|(_, r)| {
                r.as_ref()
                    .and_then(|r| r.error.as_ref())
                    .map(|e| format!("{:?}", e.code))
            })
            .collect();
        let logins = p.iter().filter(|(r, _)| r.login.is_some()).count();
        let anomalies = ev
            .iter()
            .filter(|e| matches!(e, dbtap_core::DbEvent::Anomaly { .. }))
            .count();
        println!(
            "{:70} q={q} logins={logins} errs={errs:?} anomalies={anomalies} state={:?} mid={mid}",
            path.file_name().unwrap().to_string_lossy(),
            d.state()
        );
    }
}

/// `CENSUS_DIR=/dir`: the probe's verdict on the first segment of each direction.
#[test]
#[ignore]
fn census_probe() {
    let Ok(dir) = std::env::var("CENSUS_DIR") else {
        return;
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    names.sort();
    for path in names {
        let segs = common::parse(&std::fs::read_to_string(&path).unwrap());
        let mut v = Vec::new();
        for want in [
            dbtap_core::Direction::ToServer,
            dbtap_core::Direction::ToClient,
        ] {
            let first = segs.iter().find_map(|s| match s {
                common::Seg::Data(d, _, b) if *d == want => Some(b.clone()),
                _ => None,
            });
            v.push(
                first
                    .map(|b| format!("{:?}", dbtap_mysql::probe(want, &b)))
                    .unwrap_or("-".into()),
            );
        }
        println!(
            "{:70} client={} server={}",
            path.file_name().unwrap().to_string_lossy(),
            v[0],
            v[1]
        );
    }
}
