//! The `dbtap` command.

fn main() {
    match dbtap::cli::main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("dbtap: {e:#}");
            std::process::exit(1);
        }
    }
}
