//! The disk guard: how much space a filesystem has, and whether a pull of a
//! given size would eat into the reserve the operator wants kept free.

use serde::de::{self, Deserializer, Visitor};
use serde::{Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// How much must stay free on the target filesystem.
///
/// In TOML either a byte count (`reserve = 10737418240`) or a percentage of
/// the filesystem's size (`reserve = "10%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    /// An absolute number of bytes.
    Bytes(u64),
    /// A percentage (0 to 100) of the filesystem's total size.
    Percent(f64),
}

impl Reserve {
    /// The reserve in bytes on a filesystem of `total` bytes (a percentage
    /// is rounded up, so the guard errs on the safe side).
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Reserve::Bytes(b) => b,
            Reserve::Percent(p) => {
                let b = (total as f64 * p.clamp(0.0, 100.0) / 100.0).ceil();
                // `as` saturates; the clamp above keeps it at most `total`.
                (b as u64).min(total)
            }
        }
    }

    /// Parses `"10%"` or a byte count written as a string (`"1073741824"`),
    /// the forms an environment override or a TOML string can take.
    pub fn parse(s: &str) -> Result<Reserve, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(Reserve::Percent(v)),
                Ok(_) => Err(format!(
                    "reserve `{s}` is not a percentage between 0% and 100%; write for example reserve = \"10%\""
                )),
                Err(_) => Err(bad_reserve(s)),
            };
        }
        t.parse::<u64>()
            .map(Reserve::Bytes)
            .map_err(|_| bad_reserve(s))
    }
}

fn bad_reserve(s: &str) -> String {
    format!(
        "reserve `{s}` is neither a byte count nor a percentage; write reserve = 10737418240 (bytes) or reserve = \"10%\""
    )
}

impl fmt::Display for Reserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reserve::Bytes(b) => write!(f, "{}", human(*b)),
            Reserve::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for Reserve {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reserve::Bytes(b) => s.serialize_u64(*b),
            Reserve::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Reserve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Reserve;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte count (10737418240) or a percentage (\"10%\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reserve, E> {
                Ok(Reserve::Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reserve, E> {
                u64::try_from(v).map(Reserve::Bytes).map_err(|_| {
                    E::custom(format!(
                        "reserve {v} is negative; write a byte count (reserve = 10737418240) or a percentage (reserve = \"10%\")"
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Reserve, E> {
                Err(E::custom(format!(
                    "reserve {v} is not a whole byte count; write reserve = 10737418240 (bytes) or reserve = \"10%\""
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Reserve, E> {
                Reserve::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Free and total bytes of a filesystem, as an unprivileged writer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes available to unprivileged users (`f_bavail * f_frsize`).
    pub free: u64,
    /// Size of the filesystem (`f_blocks * f_frsize`).
    pub total: u64,
}

/// Why the free space could not be read, or why a pull is refused.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// `statvfs` failed.
    #[error("cannot read the free space of {path} (statvfs on {on}): {source}; check that the directory exists and is readable by the manager")]
    Stat {
        /// The path asked about.
        path: PathBuf,
        /// The existing ancestor actually asked.
        on: PathBuf,
        /// The system error.
        source: nix::Error,
    },
    /// The pull would leave less than the reserve free.
    #[error(
        "not enough disk space on the filesystem of {path}: {} free, {} needed, {} must stay free{}, {} short; free some space, lower manager.reserve, or put the model on a bigger filesystem",
        human(*free), human(*needed), human(*reserve_bytes), reserve_note(*reserve), human(needed.saturating_add(*reserve_bytes).saturating_sub(*free))
    )]
    Refused {
        /// The path the pull writes to.
        path: PathBuf,
        /// Free bytes now.
        free: u64,
        /// Bytes the pull still needs.
        needed: u64,
        /// The reserve in bytes.
        reserve_bytes: u64,
        /// The reserve as configured.
        reserve: Reserve,
    },
}

impl DiskError {
    /// Whether a retry cannot help (a refusal stands until space is freed
    /// or the configuration changes; a failed statvfs may pass next time).
    pub fn is_permanent(&self) -> bool {
        matches!(self, DiskError::Refused { .. })
    }
}

/// Where a percentage reserve came from, so its byte count makes sense.
fn reserve_note(reserve: Reserve) -> String {
    match reserve {
        Reserve::Percent(p) => format!(" (manager.reserve = \"{p}%\" of the filesystem)"),
        Reserve::Bytes(_) => String::new(),
    }
}

/// `12.3 GiB (13207024435 bytes)`: readable and exact.
pub fn human(bytes: u64) -> String {
    format!(
        "{:.1} GiB ({bytes} bytes)",
        bytes as f64 / (1u64 << 30) as f64
    )
}

/// The nearest ancestor of `path` that exists (a target directory may not
/// have been created yet), `.` for a relative path with none.
fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Free and total space of the filesystem that holds (or will hold) `path`.
// The statvfs fields are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn space(path: &Path) -> Result<Space, DiskError> {
    let on = existing_ancestor(path);
    let st = nix::sys::statvfs::statvfs(&on).map_err(|source| DiskError::Stat {
        path: path.to_path_buf(),
        on: on.clone(),
        source,
    })?;
    let frsize = u64::from(st.fragment_size());
    Ok(Space {
        free: u64::from(st.blocks_available()).saturating_mul(frsize),
        total: u64::from(st.blocks()).saturating_mul(frsize),
    })
}

/// Refuses `needed` more bytes under `path` if the free space left after
/// them would drop below the reserve; the error gives the numbers.
pub fn check(path: &Path, needed: u64, reserve: Reserve) -> Result<Space, DiskError> {
    let space = space(path)?;
    let reserve_bytes = reserve.bytes(space.total);
    if needed > space.free || space.free - needed < reserve_bytes {
        return Err(DiskError::Refused {
            path: path.to_path_buf(),
            free: space.free,
            needed,
            reserve_bytes,
            reserve,
        });
    }
    Ok(space)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use figment::providers::{Format, Toml};
    use figment::Figment;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct W {
        reserve: Reserve,
    }

    fn toml(s: &str) -> Result<Reserve, String> {
        Figment::from(Toml::string(s))
            .extract::<W>()
            .map(|w| w.reserve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reserve_reads_bytes_and_percent_from_toml() {
        assert_eq!(
            toml("reserve = 10737418240").unwrap(),
            Reserve::Bytes(10737418240)
        );
        assert_eq!(toml("reserve = \"10%\"").unwrap(), Reserve::Percent(10.0));
        assert_eq!(toml("reserve = \"2.5 %\"").unwrap(), Reserve::Percent(2.5));
        assert_eq!(toml("reserve = \"4096\"").unwrap(), Reserve::Bytes(4096));
    }

    #[test]
    fn bad_reserves_say_what_to_write() {
        for bad in [
            "reserve = \"ten\"",
            "reserve = \"150%\"",
            "reserve = -1",
            "reserve = 1.5",
            "reserve = \"10GB\"",
        ] {
            let e = toml(bad).unwrap_err();
            assert!(e.contains("reserve"), "{bad}: {e}");
            assert!(e.contains("\"10%\""), "{bad}: {e}");
        }
    }

    #[test]
    fn reserve_round_trips_through_serialize() {
        for r in [
            Reserve::Bytes(123),
            Reserve::Percent(10.0),
            Reserve::Percent(0.5),
        ] {
            let json = serde_json::to_string(&W { reserve: r }).unwrap();
            let back: W = serde_json::from_str(&json).unwrap();
            assert_eq!(back.reserve, r, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Reserve::Percent(10.0)).unwrap(),
            "\"10%\""
        );
    }

    #[test]
    fn reserve_bytes_of_a_filesystem() {
        assert_eq!(Reserve::Bytes(5).bytes(1000), 5);
        assert_eq!(Reserve::Percent(10.0).bytes(1000), 100);
        assert_eq!(Reserve::Percent(0.15).bytes(1000), 2); // rounded up
        assert_eq!(Reserve::Percent(100.0).bytes(u64::MAX), u64::MAX);
        assert_eq!(Reserve::Percent(0.0).bytes(1000), 0);
    }

    #[test]
    fn space_of_a_path_not_yet_created_uses_its_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let s = space(&dir.path().join("a/b/c.gguf")).unwrap();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
        assert_eq!(existing_ancestor(Path::new("no/such/dir")), Path::new("."));
    }

    #[test]
    fn check_passes_within_the_reserve_and_refuses_with_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let s = check(dir.path(), 0, Reserve::Bytes(0)).unwrap();
        let e = check(dir.path(), 1 << 20, Reserve::Bytes(s.free)).unwrap_err();
        assert!(e.is_permanent());
        let msg = e.to_string();
        assert!(msg.contains("(1048576 bytes) needed"), "{msg}");
        assert!(
            msg.contains(&format!("({} bytes) must stay free", s.free)),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("free some space"), "{msg}");
        // More than is free is refused even with no reserve.
        assert!(check(dir.path(), u64::MAX, Reserve::Bytes(0)).is_err());
    }

    #[test]
    fn human_is_readable_and_exact() {
        assert_eq!(human(3 << 29), "1.5 GiB (1610612736 bytes)");
        assert_eq!(human(0), "0.0 GiB (0 bytes)");
    }
}
