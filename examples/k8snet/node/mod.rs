//! `k8snet node up|down|status`: the reference node stack (design.md §4).
//!
//! `up` checks the manifests, then starts the stack as a background
//! process (`node run`, hidden) that makes the namespaces, serves, and
//! with `--watch` follows the manifests; `up` returns once it is ready and
//! prints what to try. `down` stops it and removes whatever is recorded in
//! the state directory, also after a crash. Without root, or with
//! `--dry-run`, nothing touches the kernel: the plan is printed and DNS
//! and the ingress proxy are served on loopback ports.

mod agent;
mod daemon;
mod dryrun;
mod kernel;
mod plan;
mod pods;
mod servers;
mod state;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::Inputs;
use state::{STATE_DIR, State};

/// Arguments of `node`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Bring the stack up in network namespaces (root); prints the plan
    /// and serves on loopback without root or with --dry-run.
    Up(UpArgs),
    /// Stop the stack and remove every namespace, file and process it made.
    Down(DirArgs),
    /// What runs where, each component's health, the node addresses.
    Status(DirArgs),
    /// The stack's process (started by `up`).
    #[command(hide = true)]
    Run(UpArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct DirArgs {
    /// Where the stack keeps its state, IPAM data, CNI cache and log.
    #[arg(long, default_value = STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    dir: DirArgs,
    /// Apply changes of the manifests as they happen.
    #[arg(long)]
    watch: bool,
    /// Change nothing in the kernel: print the plan, serve DNS and the
    /// ingress proxy on loopback.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print the plan and exit without serving.
    #[arg(long)]
    no_serve: bool,
    /// Stay in the foreground (logs on stderr) instead of detaching.
    #[arg(long)]
    foreground: bool,
    /// --dry-run: the DNS address.
    #[arg(long, default_value = "127.0.0.1:10053")]
    dns_listen: std::net::SocketAddr,
    /// --dry-run: the ingress proxy's HTTP address.
    #[arg(long, default_value = "127.0.0.1:10080")]
    http_listen: std::net::SocketAddr,
    /// --dry-run: the ingress proxy's HTTPS address.
    #[arg(long, default_value = "127.0.0.1:10443")]
    https_listen: std::net::SocketAddr,
    /// Seconds `up` waits for the stack to be ready.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Command::Up(a) => up(a),
        Command::Run(a) => run_stack(a),
        Command::Down(d) => down(&d.state_dir),
        Command::Status(d) => status::show(&d.state_dir),
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let objects = match daemon::load(&args.inputs.files) {
        Ok(o) => o,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            eprintln!("node up: fix the manifests first (k8snet validate -f …)");
            return Ok(ExitCode::from(1));
        }
    };
    if args.dry_run || !is_root() {
        if !args.dry_run {
            eprintln!("not root: a dry run (no kernel changes)");
        }
        return dryrun::run(args, objects);
    }
    if let Some(s) = State::load(&args.dir.state_dir)? {
        bail!(
            "a stack is recorded in {} (phase {}, pid {:?}): run `k8snet node down` first",
            args.dir.state_dir.display(),
            s.phase,
            s.pid
        );
    }
    if args.foreground {
        return run_stack(args);
    }
    // The stack's own process, detached from this terminal's job control.
    std::fs::create_dir_all(&args.dir.state_dir)?;
    let log_path = args.dir.state_dir.join("log");
    let log = std::fs::File::create(&log_path)?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["node", "run", "--state-dir"])
        .arg(&args.dir.state_dir);
    for f in &args.inputs.files {
        cmd.arg("-f")
            .arg(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()));
    }
    if args.watch {
        cmd.arg("--watch");
    }
    use std::os::unix::process::CommandExt as _;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the stack's process")?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.timeout);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            eprint!("{log}");
            bail!("the stack's process ended ({status}) before it was ready");
        }
        if let Some(s) = State::load(&args.dir.state_dir)? {
            match s.phase.as_str() {
                "ready" => {
                    println!("k8snet node stack up in {:.1?}", t0.elapsed());
                    status::print_state(&s);
                    status::print_next_steps(&s);
                    return Ok(ExitCode::SUCCESS);
                }
                "failed" => {
                    let _ = child.wait();
                    bail!("node up failed: {}", s.error.unwrap_or_default());
                }
                _ => {}
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the stack is not ready after {} s (log: {}); `k8snet node down` removes it",
                args.timeout,
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stack's process: bring up, serve, tear down.
fn run_stack(args: &UpArgs) -> anyhow::Result<ExitCode> {
    use k8snet::dns::server::Signals;
    // Before any thread starts, so that every thread inherits the mask.
    let signals = Signals::block()?;
    let dir = &args.dir.state_dir;
    let mut state = State {
        pid: Some(std::process::id()),
        phase: "starting".into(),
        manifests: args.inputs.files.clone(),
        watch: args.watch,
        ..State::default()
    };
    state.save(dir)?;
    let objects = match daemon::load(&args.inputs.files) {
        Ok(o) => o,
        Err(errs) => {
            state.phase = "failed".into();
            state.error = Some(errs.join("\n"));
            state.save(dir)?;
            bail!("{}", errs.join("\n"));
        }
    };
    let t0 = Instant::now();
    let mut stack = match daemon::Stack::up(dir, state.clone(), objects) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            // Whatever was made is recorded: remove it, keep the reason.
            let recorded = State::load(dir)?.unwrap_or(state);
            daemon::remove_all(&recorded);
            let failed = State {
                phase: "failed".into(),
                error: Some(format!("{e:#}")),
                namespaces: Default::default(),
                files: Default::default(),
                ..recorded
            };
            failed.save(dir)?;
            return Ok(ExitCode::from(1));
        }
    };
    stack.state.phase = "ready".into();
    stack.state.save(dir)?;
    eprintln!("up in {:.1?}: {}", t0.elapsed(), stack.summary());
    let r = daemon::serve(&mut stack, signals, &args.inputs.files, args.watch);
    eprintln!("shutting down");
    stack.down();
    let _ = std::fs::remove_dir_all(dir);
    r.map(|()| ExitCode::SUCCESS)
}

fn down(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let Some(state) = State::load(dir)? else {
        println!("nothing is up ({} has no state)", dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(pid) = state.pid.filter(|p| status::is_our_process(*p)) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while status::is_our_process(pid.as_raw().unsigned_abs()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if status::is_our_process(pid.as_raw().unsigned_abs()) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The process removes what it made; after a crash this does.
    daemon::remove_all(&state);
    let _ = std::fs::remove_dir_all(dir);
    println!(
        "down: removed {} namespaces and {} files",
        state.namespaces.len(),
        state.files.len()
    );
    Ok(ExitCode::SUCCESS)
}
