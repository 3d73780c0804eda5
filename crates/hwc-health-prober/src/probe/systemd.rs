//! The `systemd_unit` probe's verdict from a unit's state over D-Bus; the
//! bus client itself ([`Systemd`], also `RestartUnit` for healing) is the
//! core's, shared with the agent runner.

use super::Verdict;

pub use hwc_ai_core::systemd::Systemd;

/// The probe verdict for a unit.
pub async fn unit_verdict(systemd: &Systemd, unit: &str) -> Result<Verdict, String> {
    let (active, sub) = systemd.unit_state(unit).await?;
    match active.as_str() {
        "active" => Ok(Verdict::Ok),
        "activating" | "reloading" => Ok(Verdict::Starting(format!("{unit} is {active} ({sub})"))),
        _ => Err(format!("{unit} is {active} ({sub})")),
    }
}
