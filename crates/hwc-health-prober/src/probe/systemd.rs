//! systemd over D-Bus: a unit's state for the `systemd_unit` probe, and
//! `RestartUnit` for healing. The connection is opened on first use and
//! reopened after an error; `DBUS_SYSTEM_BUS_ADDRESS` points it elsewhere
//! (tests use their own bus).

use super::Verdict;
use tokio::sync::Mutex;
use zbus_systemd::systemd1::{ManagerProxy, UnitProxy};

/// A lazily connected system bus.
#[derive(Default)]
pub struct Systemd {
    conn: Mutex<Option<zbus::Connection>>,
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

    /// The probe verdict for a unit.
    pub async fn unit_verdict(&self, unit: &str) -> Result<Verdict, String> {
        let (active, sub) = self.unit_state(unit).await?;
        match active.as_str() {
            "active" => Ok(Verdict::Ok),
            "activating" | "reloading" => {
                Ok(Verdict::Starting(format!("{unit} is {active} ({sub})")))
            }
            _ => Err(format!("{unit} is {active} ({sub})")),
        }
    }

    /// Restarts `unit` (mode "replace"); the job's object path.
    pub async fn restart(&self, unit: &str) -> Result<String, String> {
        let result = async {
            let conn = self.connection().await?;
            let manager = ManagerProxy::new(&conn).await.map_err(|e| e.to_string())?;
            manager
                .restart_unit(unit.to_string(), "replace".to_string())
                .await
                .map(|p| p.to_string())
                .map_err(|e| format!("RestartUnit {unit} refused: {e}"))
        }
        .await;
        if result.is_err() {
            self.forget().await;
        }
        result
    }
}
