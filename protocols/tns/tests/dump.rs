//! `cargo test -p dbtap-tns --test dump -- --ignored --nocapture NAME`: print what the parser
//! makes of a stream file (for reviewing, not asserting).
mod common;

#[test]
#[ignore]
fn dump() {
    let name = std::env::var("STREAM").unwrap_or_else(|_| "sqlplus10g_select".into());
    for e in common::run(&name) {
        println!("{e:?}");
    }
}
