//! The child-process guard of `hwc_ai_core::process` as a binary of its
//! own. Daemons re-execute themselves as the guard; this binary is for the
//! core's own tests and for programs that do not start through
//! `hwc_ai_core::cli::run_daemon`.

use std::process::ExitCode;

fn main() -> ExitCode {
    hwc_ai_core::process::guard_if_requested().unwrap_or_else(|| {
        eprintln!("hwc-ai-guard is started by hwc_ai_core::process::Child::spawn, not by hand");
        ExitCode::from(2)
    })
}
