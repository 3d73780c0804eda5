//! systemd over D-Bus, shared by the daemons that read or change units:
//! the prober (unit state for its probe, `RestartUnit` for healing) and
//! the agent runner (status for its tools, start/stop/restart/reload of the
//! units its policy allows, authorised by a polkit rule the NixOS module
//! writes). The connection is opened on first use and reopened after an
//! error; `DBUS_SYSTEM_BUS_ADDRESS` points it elsewhere (tests use their
//! own bus).

use tokio::sync::Mutex;
use zbus_systemd::systemd1::{ManagerProxy, UnitProxy};

/// A lazily connected system bus.
#[derive(Default)]
pub struct Systemd {
    conn: Mutex<Option<zbus::Connection>>,
}

/// A lifecycle change the manager can make to a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitVerb {
    /// `StartUnit`.
    Start,
    /// `StopUnit`.
    Stop,
    /// `RestartUnit`.
    Restart,
    /// `ReloadUnit`.
    Reload,
}

impl UnitVerb {
    /// The verb as `systemctl` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitVerb::Start => "start",
            UnitVerb::Stop => "stop",
            UnitVerb::Restart => "restart",
            UnitVerb::Reload => "reload",
        }
    }

    /// The verb that undoes this one given the unit was `was_active` before.
    pub fn undo(self, was_active: bool) -> Option<UnitVerb> {
        match (self, was_active) {
            (UnitVerb::Start, false) => Some(UnitVerb::Stop),
            (UnitVerb::Stop, true) => Some(UnitVerb::Start),
            (UnitVerb::Restart, false) => Some(UnitVerb::Stop),
            _ => None,
        }
    }
}

impl Systemd {
    async fn connection(&self) -> Result<zbus::Connection, String> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = zbus::Connection::system()
            .await
            .map_err(|e| format!("cannot connect to the system bus: {e}"))?;
        *guard = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// `ActiveState` and `SubState` of `unit`.
    pub async fn unit_state(&self, unit: &str) -> Result<(String, String), String> {
        let result = async {
            let conn = self.connection().await?;
            let manager = ManagerProxy::new(&conn).await.map_err(|e| e.to_string())?;
            let path = manager
                .load_unit(unit.to_string())
                .await
                .map_err(|e| format!("cannot look up unit {unit}: {e}"))?;
            let u = UnitProxy::builder(&conn)
                .path(path)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            let active = u.active_state().await.map_err(|e| e.to_string())?;
            let sub = u.sub_state().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((active, sub))
        }
        .await;
        if result.is_err() {
            self.forget().await;
        }
        result
    }

    /// Asks the manager to `verb` `unit` (mode "replace"); the job's object path.
    pub async fn change(&self, verb: UnitVerb, unit: &str) -> Result<String, String> {
        let result = async {
            let conn = self.connection().await?;
            let manager = ManagerProxy::new(&conn).await.map_err(|e| e.to_string())?;
            let (u, mode) = (unit.to_string(), "replace".to_string());
            let r = match verb {
                UnitVerb::Start => manager.start_unit(u, mode).await,
                UnitVerb::Stop => manager.stop_unit(u, mode).await,
                UnitVerb::Restart => manager.restart_unit(u, mode).await,
                UnitVerb::Reload => manager.reload_unit(u, mode).await,
            };
            r.map(|p| p.to_string()).map_err(|e| {
                let method = match verb {
                    UnitVerb::Start => "StartUnit",
                    UnitVerb::Stop => "StopUnit",
                    UnitVerb::Restart => "RestartUnit",
                    UnitVerb::Reload => "ReloadUnit",
                };
                format!("{method} {unit} refused: {e}")
            })
        }
        .await;
        if result.is_err() {
            self.forget().await;
        }
        result
    }

    /// Restarts `unit` (mode "replace"); the job's object path.
    pub async fn restart(&self, unit: &str) -> Result<String, String> {
        self.change(UnitVerb::Restart, unit).await
    }
}
