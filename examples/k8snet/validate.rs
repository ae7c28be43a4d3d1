//! `k8snet validate -f …`

use std::process::ExitCode;

use crate::Inputs;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: Inputs,
}

/// Prints one line per error (`file:line: Kind ns/name: field.path: message`)
/// and per warning to stderr; exits 1 when there is any error.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let m = args.inputs.load();
    for w in m.warnings() {
        eprintln!("warning: {w}");
    }
    for e in m.errors() {
        eprintln!("{e}");
    }
    let errors = m.errors().len();
    eprintln!(
        "{} valid object(s), {errors} error(s), {} warning(s)",
        m.objects().len(),
        m.warnings().len()
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
