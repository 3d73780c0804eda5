//! Where a daemon's requests run: `server.runtimes`.
//!
//! By default a daemon serves on its own multi-threaded tokio runtime,
//! beside its background work. That runtime hands work between its threads:
//! a request read on one thread, the upstream connection's task woken on
//! another, the answer woken back on the first. Every hand-off to a parked
//! thread is a futex wake and a context switch, and at low load, where
//! threads are parked most of the time, those hand-offs cost more CPU than
//! the request itself (docs/benchmarks.md, "Cutting CPU per request").
//!
//! `per-core` (or a number) serves instead on that many threads, each with
//! its own single-threaded runtime, all accepting on the one listening
//! socket (the one systemd passed, too): a connection, the tasks it spawns
//! and the upstream connections it opens stay on the thread that accepted
//! it, as nginx's workers do. Every thread polls the socket, so a new
//! connection wakes them all and the first to `accept` takes it; under load
//! the least busy thread is the first, which spreads connections by itself.
//! A handler that blocks its thread blocks every connection on it, which is
//! why this is the choice of a daemon whose handlers only wait (the router)
//! and not the default.
//!
//! Every serving runtime, the shared one included, holds a
//! [`crate::timer_anchor`], so the timers a request arms do not wake it.

use crate::tasks::CancellationToken;
use axum::Router;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::num::NonZeroUsize;

/// How a daemon's HTTP requests are spread over threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtimes {
    /// On the daemon's own multi-threaded runtime, beside its background
    /// work (`"shared"`).
    #[default]
    Shared,
    /// One single-threaded runtime per CPU the process may use, counting
    /// its CPU affinity and cgroup quota (`"per-core"`).
    PerCore,
    /// This many single-threaded runtimes (a number).
    Count(NonZeroUsize),
}

impl Runtimes {
    /// The number of serving threads to start, or `None` to serve on the
    /// daemon's own runtime.
    pub fn threads(self) -> Option<usize> {
        match self {
            Self::Shared => None,
            Self::PerCore => {
                Some(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
            }
            Self::Count(n) => Some(n.get()),
        }
    }
}

impl Serialize for Runtimes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Shared => s.serialize_str("shared"),
            Self::PerCore => s.serialize_str("per-core"),
            Self::Count(n) => s.serialize_u64(n.get() as u64),
        }
    }
}

/// What `server.runtimes` may be.
const EXPECTED: &str = "\"shared\", \"per-core\" or a number of threads (1 or more)";

/// The error for a value `server.runtimes` cannot take.
fn invalid<E: serde::de::Error>(shown: impl std::fmt::Display) -> E {
    E::custom(format!("server.runtimes is {shown}; set {EXPECTED}"))
}

impl<'de> Deserialize<'de> for Runtimes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Runtimes;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Runtimes, E> {
                match v {
                    "shared" => Ok(Runtimes::Shared),
                    "per-core" => Ok(Runtimes::PerCore),
                    // A count from an environment variable, say.
                    other => match other.parse::<u64>() {
                        Ok(n) => self.visit_u64(n),
                        Err(_) => Err(invalid(format_args!("{other:?}"))),
                    },
                }
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Runtimes, E> {
                usize::try_from(v)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .map(Runtimes::Count)
                    .ok_or_else(|| invalid(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Runtimes, E> {
                u64::try_from(v)
                    .map_err(|_| invalid(v))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What a serving thread ended with.
type Outcome = Result<(), std::io::Error>;

/// Serving threads started by [`start`]: each its own single-threaded
/// runtime running `axum::serve` on a copy of the listening socket.
///
/// A thread's runtime outlives its accept loop: what was opened on it (a
/// pooled connection to a backend or to PostgreSQL) may be in use by
/// another thread's request, so each runtime keeps running until
/// [`Threads::abort`] or the drop, which [`crate::server::serve_on`] reaches
/// only after the daemon's background tasks have ended.
pub(crate) struct Threads {
    outcomes: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
    running: usize,
    stop: CancellationToken,
    abort: CancellationToken,
}

/// Starts `n` serving threads for `app` on `listener` and returns once
/// every one is accepting, or with the first error, the others stopped.
/// Each stops accepting on [`Threads::stop`] and says it has finished when
/// its connections have ended; [`Threads::abort`] ends them at once,
/// dropping what is still open.
pub(crate) fn start(
    name: &str,
    listener: std::net::TcpListener,
    app: Router,
    n: usize,
) -> std::io::Result<Threads> {
    let (tx, outcomes) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    // Every copy of the socket first: a failure leaves no thread behind.
    let listeners = (0..n)
        .map(|_| listener.try_clone())
        .collect::<std::io::Result<Vec<_>>>()?;
    let (started_tx, started) = std::sync::mpsc::channel::<std::io::Result<()>>();
    for (i, listener) in listeners.into_iter().enumerate() {
        let thread = ServingThread {
            listener,
            app: app.clone(),
            stop: stop.clone(),
            abort: abort.clone(),
            started: started_tx.clone(),
            finished: tx.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-http-{i}"))
            .spawn(move || thread.run());
        if let Err(e) = spawned {
            // The threads already started must not serve on alone.
            abort.cancel();
            return Err(e);
        }
    }
    drop(started_tx);
    for _ in 0..n {
        let ready = started.recv().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "a serving thread ended while starting",
            ))
        });
        if let Err(e) = ready {
            abort.cancel();
            return Err(e);
        }
    }
    Ok(Threads {
        outcomes,
        running: n,
        stop,
        abort,
    })
}

/// What one serving thread is given.
struct ServingThread {
    listener: std::net::TcpListener,
    app: Router,
    stop: CancellationToken,
    abort: CancellationToken,
    started: std::sync::mpsc::Sender<std::io::Result<()>>,
    finished: tokio::sync::mpsc::UnboundedSender<Outcome>,
}

impl ServingThread {
    fn run(self) {
        let Self {
            listener,
            app,
            stop,
            abort,
            started,
            finished,
        } = self;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        // Held for the runtime's whole life, served and drained alike.
        let _anchor = {
            let _entered = runtime.enter();
            crate::timer_anchor::hold()
        };
        let listener = match runtime.block_on(async { tokio::net::TcpListener::from_std(listener) })
        {
            Ok(l) => l,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok(()));
        let serve = std::panic::AssertUnwindSafe(|| {
            runtime.block_on(async {
                let serve = std::future::IntoFuture::into_future(
                    axum::serve(crate::server::with_nodelay(listener), app)
                        .with_graceful_shutdown(stop.cancelled_owned()),
                );
                tokio::select! {
                    outcome = serve => outcome,
                    () = abort.cancelled() => Ok(()),
                }
            })
        });
        let outcome = std::panic::catch_unwind(serve)
            .unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked")));
        let _ = finished.send(outcome);
        // Keep driving what lives on this runtime (see [`Threads`]).
        runtime.block_on(abort.cancelled());
        // Dropping the runtime here drops what is still open on it.
    }
}

impl Threads {
    /// Waits until every thread's accept loop and connections have ended,
    /// or one has failed (a later call waits for the rest). Cancel-safe:
    /// threads already counted stay counted.
    pub(crate) async fn finished(&mut self) -> Outcome {
        while self.running > 0 {
            match self.outcomes.recv().await {
                Some(Ok(())) => self.running -= 1,
                Some(Err(e)) => {
                    self.running -= 1;
                    return Err(e);
                }
                None => return Err(std::io::Error::other("the serving threads are gone")),
            }
        }
        Ok(())
    }

    /// Stops accepting; each thread ends once its connections have.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Ends every thread now, with whatever connections it still has.
    pub(crate) fn abort(&self) {
        self.abort.cancel();
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        // A daemon that stops serving for any reason takes its threads along.
        self.abort.cancel();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Section {
        runtimes: Runtimes,
    }

    fn parse(toml: &str) -> Result<Runtimes, String> {
        toml::from_str::<Section>(toml)
            .map(|s| s.runtimes)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn runtimes_read_as_a_word_or_a_count() {
        assert_eq!(parse("runtimes = \"shared\""), Ok(Runtimes::Shared));
        assert_eq!(parse("runtimes = \"per-core\""), Ok(Runtimes::PerCore));
        assert_eq!(
            parse("runtimes = 3"),
            Ok(Runtimes::Count(NonZeroUsize::new(3).unwrap()))
        );
        for bad in ["runtimes = 0", "runtimes = -2", "runtimes = \"per_core\""] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("set \"shared\", \"per-core\" or a number"),
                "{bad}: {e}"
            );
        }
        for r in [
            Runtimes::Shared,
            Runtimes::PerCore,
            Runtimes::Count(NonZeroUsize::new(2).unwrap()),
        ] {
            let text = toml::to_string(&Section { runtimes: r }).unwrap();
            assert_eq!(parse(&text), Ok(r), "{text}");
        }
    }

    #[test]
    fn per_core_counts_the_cpus_this_process_may_use() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(Runtimes::PerCore.threads(), Some(cpus));
        assert_eq!(Runtimes::Shared.threads(), None);
    }
}
