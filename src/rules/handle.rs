//! The rules of a run, compiled already or still being compiled on a helper thread.
//!
//! Compiling the built-in default pack (its TOML, the regexes and glob lists of its conditions)
//! takes about 3 ms, and done before the replay starts it is 3 ms in which the capture is not
//! read and the second core idles: a few percent of a 200 MB replay. Only the record and alert
//! stages need the rules; the reader and the protocol parsers do not. So `dbtap replay` with the
//! default pack compiles it on a helper thread while the pipeline starts, and the record thread
//! and the writer wait for it when their first batch comes (the reader meanwhile fills the
//! bounded queues in front of them, as it would behind any slow stage).
//!
//! Packs named with `--rules` are compiled before the replay starts, as before: a mistake in
//! one must stop the run before any output is touched, with the file and line of the mistake.
//! The default pack cannot have one: the test suite compiles it and runs every rule's
//! examples. Should its compile fail all the same, the run fails with that error (the stages
//! that wait for the rules stop, and the pipeline reports it), rather than going on unaudited.

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use super::RuleSet;

/// A shared handle to a run's rule set (cheap to clone).
#[derive(Clone, Debug)]
pub struct Rules(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    set: OnceLock<Result<Arc<RuleSet>, String>>,
    job: Mutex<Option<JoinHandle<Result<RuleSet, String>>>>,
}

impl Rules {
    /// Rules compiled already.
    pub fn ready(set: Arc<RuleSet>) -> Rules {
        Rules(Arc::new(Inner {
            set: OnceLock::from(Ok(set)),
            job: Mutex::new(None),
        }))
    }

    /// Rules compiled by `compile` on a new thread. Errs only when the thread cannot be
    /// started (then nothing was compiled).
    pub fn compile_in_background(
        compile: impl FnOnce() -> Result<RuleSet, String> + Send + 'static,
    ) -> std::io::Result<Rules> {
        let job = std::thread::Builder::new()
            .name("dbtap-rules".into())
            .spawn(compile)?;
        Ok(Rules(Arc::new(Inner {
            set: OnceLock::new(),
            job: Mutex::new(Some(job)),
        })))
    }

    /// The rule set, waiting for its compile to end when it has not yet; the compile's error
    /// when it failed (every caller gets the same answer).
    pub fn get(&self) -> Result<&Arc<RuleSet>, &str> {
        self.0
            .set
            .get_or_init(|| {
                // `get_or_init` runs this once; a second caller waits for its answer.
                let job = self.0.job.lock().ok().and_then(|mut j| j.take());
                match job.map(JoinHandle::join) {
                    Some(Ok(compiled)) => compiled.map(Arc::new),
                    Some(Err(_)) => Err("compiling the rules failed (the thread panicked)".into()),
                    None => Err("the rules were not compiled".into()),
                }
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

impl From<Arc<RuleSet>> for Rules {
    fn from(set: Arc<RuleSet>) -> Rules {
        Rules::ready(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_compiled_in_the_background_are_the_default_pack() {
        let rules =
            Rules::compile_in_background(|| RuleSet::default_packs().map_err(|e| e.to_string()))
                .unwrap();
        let copy = rules.clone();
        let waited = std::thread::spawn(move || copy.get().map(|s| s.rules.len()).ok());
        let here = rules.get().map(|s| s.rules.len()).ok();
        let eager = RuleSet::default_packs().unwrap().rules.len();
        assert!(eager > 10);
        assert_eq!(here, Some(eager));
        assert_eq!(waited.join().unwrap(), Some(eager));
    }

    #[test]
    fn a_failed_compile_is_every_callers_error() {
        let rules = Rules::compile_in_background(|| Err("bad pack".to_string())).unwrap();
        assert_eq!(rules.get().err(), Some("bad pack"));
        assert_eq!(rules.clone().get().err(), Some("bad pack"));
    }
}
