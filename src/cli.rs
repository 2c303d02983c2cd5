//! Command line: `dbtap replay FILE... --records PATH`.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::EngineConfig;
use crate::pipeline::{default_workers, PipelineConfig, PipelineError, Progress};
use crate::registry::Registry;
use crate::replay::{replay, ReplayReport};
use crate::rules::baseline::BaselineFile;
use crate::rules::{AlertOutput, RuleSet, Rules};
use crate::summary::Summary;

/// Exit status when some input could not be read to its end (records of everything readable
/// were still written).
pub const EXIT_INPUT_ERRORS: i32 = 2;

/// Exit status when the reader of the records on stdout went away: 128 + SIGPIPE, what a shell
/// reports for `cat` in `cat big | head`.
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// dbtap: database activity audit sensor. Turns mirrored database traffic into audit records.
#[derive(Debug, Parser)]
#[command(name = "dbtap", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay capture files (pcap, pcapng, optionally gzip-compressed) into audit records.
    Replay(ReplayArgs),
    /// Rule packs: validate them, or run the examples every rule carries.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Compile rule files (a file, or every *.toml under a directory); errors name file and line.
    Check {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Compile the rules and run their examples (records that must and must not raise them).
    Test {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SummaryFormat {
    /// Human-readable, on stderr.
    Text,
    /// One JSON object, on stderr (or --summary-file).
    Json,
    /// No summary.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// When stderr is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Capture files, replayed in the order given as one input; `-` is standard input (a
    /// capture piped in: `tcpdump -w - ... | dbtap replay -`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where records go, one JSON object per line; `-` is stdout.
    #[arg(long, default_value = "-")]
    records: PathBuf,
    /// Worker threads (default: cores − 1, at least 1); each also has a record thread that
    /// writes its records.
    #[arg(long, value_parser = parse_workers)]
    workers: Option<usize>,
    /// Parse traffic on PORT as protocol NAME without probing, e.g. `--port mysql=3307`.
    #[arg(long = "port", value_name = "NAME=PORT", value_parser = parse_port)]
    ports: Vec<(String, u16)>,
    /// Run summary format.
    #[arg(long, value_enum, default_value = "text")]
    summary: SummaryFormat,
    /// Write the summary here instead of stderr.
    #[arg(long)]
    summary_file: Option<PathBuf>,
    /// Progress display on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Close flows idle for this many seconds of packet time.
    #[arg(long, default_value_t = crate::engine::DEFAULT_IDLE_TIMEOUT_SECS)]
    idle_timeout: u64,
    /// Memory the flow table may use, in MiB, before the least recently active flows are evicted.
    #[arg(long, default_value_t = crate::engine::DEFAULT_MAX_FLOW_MEMORY / (1024 * 1024))]
    max_flow_memory_mb: usize,
    /// Statement text kept per record, in bytes (longer text is cut and flagged `truncated`).
    #[arg(long, default_value_t = dbtap_core::limits::DEFAULT_MAX_STATEMENT_LEN)]
    max_statement_len: usize,
    /// What of the statement values reaches the records. Passwords written in SQL (and bind
    /// values that are passwords) are replaced by `***` whatever this says.
    #[arg(long, value_enum, default_value = "none")]
    mask: MaskMode,
    /// Rule packs (a TOML file or a directory of them; repeatable). Default: the built-in
    /// default pack (rules/default); `none`: no rules.
    #[arg(long = "rules", value_name = "PATH|none")]
    rules: Vec<PathBuf>,
    /// Where alerts go, one JSON object per line (`-` is stdout). Without it alerts are only
    /// counted in the summary.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// Baseline rules' learnt values: read from this file at the start (when it exists) and
    /// saved to it at the end, so that learning carries over from run to run.
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// Time zone of the rules' time-of-day windows, as a UTC offset (`+08:00`, `-05:00`, `UTC`).
    #[arg(long, default_value = "UTC", value_parser = parse_tz)]
    tz: i32,
}

fn parse_tz(s: &str) -> Result<i32, String> {
    crate::rules::parse_offset(s)
        .ok_or_else(|| format!("{s:?} is not a UTC offset like +08:00, -05:30 or UTC"))
}

/// The rule set of a replay: the built-in default, the given packs, or none.
///
/// Given packs are compiled now, so that a mistake in one stops the run before any output is
/// touched. The built-in pack, which the test suite compiles and runs, is compiled on a helper
/// thread while the replay starts (see [`Rules`]).
fn load_rules(paths: &[PathBuf], tz: i32) -> anyhow::Result<Option<Rules>> {
    if paths.iter().any(|p| p.as_os_str() == "none") {
        if paths.len() > 1 {
            anyhow::bail!("--rules none cannot be combined with rule packs");
        }
        return Ok(None);
    }
    if paths.is_empty() {
        let rules = Rules::compile_in_background(move || {
            let mut set = RuleSet::default_packs().map_err(|e| e.to_string())?;
            set.offset_min = tz;
            Ok(set)
        })?;
        return Ok(Some(rules));
    }
    let mut set = RuleSet::default();
    for p in paths {
        set.add_path(p)?;
    }
    set.offset_min = tz;
    Ok(Some(Rules::ready(Arc::new(set))))
}

fn run_rules(cmd: RulesCommand) -> anyhow::Result<i32> {
    let (paths, test) = match cmd {
        RulesCommand::Check { paths } => (paths, false),
        RulesCommand::Test { paths } => (paths, true),
    };
    let mut set = RuleSet::default();
    for p in &paths {
        if let Err(e) = set.add_path(p) {
            eprintln!("dbtap: {e}");
            return Ok(1);
        }
    }
    if !test {
        println!("{} rules OK", set.rules.len());
        return Ok(0);
    }
    let (ran, failures) = crate::rules::run_examples(&set);
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    println!(
        "{} rules, {ran} examples: {} failed",
        set.rules.len(),
        failures.len()
    );
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// `--mask` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MaskMode {
    /// Statements and bind values as sent.
    None,
    /// Every literal in `sql` and every bind value replaced by `?` (kind, objects, fingerprint
    /// and normalized text are unchanged).
    Literals,
}

/// Most workers `--workers` takes: each is two threads, and more than the machine has cores
/// only adds switching; a typing slip must not start a hundred thousand threads.
pub const MAX_WORKERS: usize = 256;

/// `--workers N`: 1 to [`MAX_WORKERS`] (0 used to be taken silently as 1).
fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (leave it out for cores − 1)".into()),
        Ok(n) if n > MAX_WORKERS => Err(format!("at most {MAX_WORKERS}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_port(s: &str) -> Result<(String, u16), String> {
    let (name, port) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PORT, got {s:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("bad port {port:?} in {s:?}"))?;
    if port == 0 {
        return Err("port 0 is not a TCP port".into());
    }
    Ok((name.to_owned(), port))
}

/// Run the command line; returns the process exit status.
pub fn main() -> anyhow::Result<i32> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // `--help` and `--version` go to stdout with status 0. A bad argument is a fatal error,
        // status 1 as the README says: clap's own 2 is this command's "some input could not be
        // read to its end".
        Err(e) => {
            let _ = e.print();
            return Ok(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Rules(cmd) => run_rules(cmd),
    }
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<i32> {
    let stdin = crate::capture::STDIN;
    if args.files.iter().filter(|f| f.as_os_str() == stdin).count() > 1 {
        anyhow::bail!("standard input ({stdin}) can be given only once: it is read once");
    }
    let mut registry = Registry::default();
    for (name, port) in &args.ports {
        registry.force_port(name, *port)?;
    }
    let mut engine = EngineConfig {
        registry,
        ..Default::default()
    };
    engine.idle_timeout_ns = args.idle_timeout.saturating_mul(1_000_000_000);
    engine.max_flow_memory = args.max_flow_memory_mb.saturating_mul(1024 * 1024);
    engine.limits.max_statement_len = args.max_statement_len.max(16);
    engine.sql.mask = match args.mask {
        MaskMode::None => crate::sql::Mask::None,
        MaskMode::Literals => crate::sql::Mask::Literals,
    };
    engine.rules = load_rules(&args.rules, args.tz)?;
    if args.alerts.as_ref().is_some_and(|a| a.as_os_str() == "-") && args.records.as_os_str() == "-"
    {
        // Two streams interleaved on one stdout would cut each other's lines.
        anyhow::bail!("--alerts - needs --records PATH (records go to stdout by default)");
    }
    let alerts = match &args.alerts {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(AlertOutput::new(std::io::stdout())),
        Some(p) => {
            Some(AlertOutput::new(File::create(p).map_err(|e| {
                anyhow::anyhow!("cannot create {}: {e}", p.display())
            })?))
        }
    };
    if alerts.is_some() && engine.rules.is_none() {
        anyhow::bail!("--alerts needs rules (it was given with --rules none)");
    }
    let baseline = match &args.baseline {
        None => None,
        Some(_) if engine.rules.is_none() => {
            anyhow::bail!("--baseline needs rules (it was given with --rules none)")
        }
        Some(p) => Some(Arc::new(
            BaselineFile::load(p)
                .map_err(|e| anyhow::anyhow!("cannot use the baseline file {e}"))?
                .unwrap_or_else(BaselineFile::new),
        )),
    };
    let workers = args.workers.unwrap_or_else(default_workers).max(1);
    let cfg = PipelineConfig {
        workers,
        engine,
        alerts,
        baseline,
    };

    let progress = Arc::new(Progress::default());
    stop_on_signals(&progress)?;
    let interrupt = progress.interrupt.clone();
    let show_progress = match args.progress {
        ProgressMode::Always => true,
        ProgressMode::Never => false,
        ProgressMode::Auto => std::io::stderr().is_terminal(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = show_progress.then(|| spawn_progress(progress.clone(), stop.clone()));

    let report = if args.records.as_os_str() == "-" {
        replay(&args.files, &cfg, progress, std::io::stdout())
    } else {
        let file = File::create(&args.records)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.records.display()))?;
        replay(&args.files, &cfg, progress, file)
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let report = match report {
        Err(PipelineError::Write(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe && args.records.as_os_str() == "-" =>
        {
            // Whoever read the records has gone (`| head`, a pager quit): stop quietly, as
            // `cat` does, with the status of a command ended by SIGPIPE.
            return Ok(EXIT_BROKEN_PIPE);
        }
        r => r?,
    };
    // What went wrong or stopped the run, on stderr, unless the summary goes there: it says all
    // of it (text), and a JSON summary on stderr must stay one JSON object for whoever parses it.
    let summary_on_stderr =
        !matches!(args.summary, SummaryFormat::None) && args.summary_file.is_none();
    if !summary_on_stderr {
        for f in &report.files {
            if let Some(e) = &f.error {
                eprintln!("dbtap: {e}");
            }
        }
        for line in crate::summary::overlap_warnings(&report.time_overlaps) {
            eprintln!("dbtap: warning: {line}");
        }
        if let Some(i) = &report.interrupted {
            eprintln!(
                "dbtap: stopped by {} in {} at byte {}: the records of everything before it were written{}",
                i.signal,
                i.file,
                i.offset,
                match i.files_not_read {
                    0 => String::new(),
                    n => format!(" ({n} later file{} not read)", if n == 1 { "" } else { "s" }),
                }
            );
        }
    }
    if let (Some(path), Some(alerts)) = (&args.baseline, &report.run.alerts) {
        save_baseline(path, alerts)?;
    }
    write_summary(&args, &report, workers)?;
    let signal = interrupt.load(Ordering::Relaxed);
    Ok(if report.interrupted.is_some() {
        // The shell's convention for a command ended by a signal: 128 + its number.
        128 + i32::try_from(signal).unwrap_or(0)
    } else if report.had_input_errors() {
        EXIT_INPUT_ERRORS
    } else {
        0
    })
}

/// Ctrl-C (SIGINT) and SIGTERM stop a replay cleanly: the first sets `progress.interrupt`, the
/// reader stops within 64 frames, and the run ends as at the end of the input (open requests
/// written as unanswered, alerts and baselines as usual, the summary saying where it stopped),
/// so that no record of what was read is lost and no line is cut. A second one, while that
/// drains or when the reader waits on a pipe that sends nothing more, gets the signal's default
/// action: the process ends at once.
fn stop_on_signals(progress: &Progress) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // In this order: the default action is taken only when an earlier signal armed it.
        flag::register_conditional_default(sig, armed.clone())?;
        flag::register_usize(sig, progress.interrupt.clone(), sig as usize)?;
        flag::register(sig, armed.clone())?;
    }
    Ok(())
}

/// Save the learnt baselines, and say what was loaded that this run could not use.
fn save_baseline(path: &std::path::Path, alerts: &crate::rules::AlertReport) -> anyhow::Result<()> {
    if let Some(seed) = &alerts.baseline_seed {
        if !seed.changed_rules.is_empty() {
            eprintln!(
                "dbtap: {}: rules {} changed their key or value fields since the baseline was learnt: learning starts over for them",
                path.display(),
                seed.changed_rules.join(", ")
            );
        }
        if !seed.absent_rules.is_empty() {
            eprintln!(
                "dbtap: {}: baselines of rules not in this run kept unchanged: {}",
                path.display(),
                seed.absent_rules.join(", ")
            );
        }
    }
    if let Some(b) = &alerts.baseline {
        b.save(path)
            .map_err(|e| anyhow::anyhow!("cannot save the baseline file {e}"))?;
    }
    Ok(())
}

fn write_summary(args: &ReplayArgs, report: &ReplayReport, workers: usize) -> anyhow::Result<()> {
    let summary = Summary::new(report, workers);
    let text = match args.summary {
        SummaryFormat::None => return Ok(()),
        SummaryFormat::Json => serde_json::to_string_pretty(&summary)? + "\n",
        SummaryFormat::Text => summary.to_text(),
    };
    match &args.summary_file {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?,
        None => std::io::stderr().write_all(text.as_bytes())?,
    }
    Ok(())
}

fn spawn_progress(p: Arc<Progress>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // The only clock in dbtap: the operator's view of a long replay, never the records.
        let start = std::time::Instant::now();
        let mut err = std::io::stderr();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            if p.interrupt.load(Ordering::Relaxed) != 0 {
                let _ = write!(
                    err,
                    "\r\x1b[2Kstopping: writing the records of what was read (again to quit at once)"
                );
                let _ = err.flush();
                continue;
            }
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            let done = p.input_bytes.load(Ordering::Relaxed) as f64 / 1e6;
            let total = p.input_total.load(Ordering::Relaxed) as f64 / 1e6;
            let frames = p.frames.load(Ordering::Relaxed) as f64;
            let pct = if total > 0.0 {
                (done / total * 100.0).min(100.0)
            } else {
                0.0
            };
            let read = if total > 0.0 {
                // Time left at the pace so far (whole seconds: it is an estimate).
                let left = match done / secs {
                    rate if rate > 0.0 && done < total => match ((total - done) / rate).ceil() {
                        s if s < 60.0 => format!(", ~{s} s left"),
                        s => format!(", ~{} left", crate::summary::human_span(s)),
                    },
                    _ => String::new(),
                };
                format!("[{pct:5.1}%] {done:.1}/{total:.1} MB{left}")
            } else {
                // A pipe or standard input: no size known.
                format!("{done:.1} MB")
            };
            let _ = write!(
                err,
                "\r\x1b[2K{read}  {:.0} pkt/s  {} records",
                frames / secs,
                p.records.load(Ordering::Relaxed)
            );
            let _ = err.flush();
        }
        let _ = write!(err, "\r\x1b[2K");
    })
}
