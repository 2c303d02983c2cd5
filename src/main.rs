//! The `dbtap` command.

// glibc's malloc spent about a sixth of a replay's instructions in malloc/free (records, bind
// values and request events are allocated and freed per operation, on one thread and freed on
// another); mimalloc's thread-local free lists take a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    match dbtap::cli::main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("dbtap: {e:#}");
            std::process::exit(1);
        }
    }
}
