//! Process signals: SIGINT/SIGTERM stop the server gracefully, SIGHUP reloads the config,
//! SIGUSR2 enters lame-duck mode, SIGUSR1 (reopen log files) is accepted and logged.

use anyhow::Context;

/// What a signal asks for.
pub enum Signal {
    /// Shut down gracefully; the signal's name as nats-server logs it ("terminated",
    /// "interrupt").
    Stop(&'static str),
    /// Re-read the configuration.
    Reload,
    /// Lame-duck mode, then exit.
    LameDuck,
    /// Reopen the log file (logs go through one open handle; nothing to do).
    Reopen,
}

/// The signal streams the server listens to.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    usr1: tokio::signal::unix::Signal,
    #[cfg(unix)]
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    /// Install the handlers.
    #[cfg(unix)]
    pub fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("cannot install SIGHUP handler")?,
            usr1: signal(SignalKind::user_defined1()).context("cannot install SIGUSR1 handler")?,
            usr2: signal(SignalKind::user_defined2()).context("cannot install SIGUSR2 handler")?,
        })
    }

    /// Install the handlers.
    #[cfg(not(unix))]
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    /// Wait for the next signal.
    #[cfg(unix)]
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("terminated"),
            _ = self.int.recv() => Signal::Stop("interrupt"),
            _ = self.hup.recv() => Signal::Reload,
            _ = self.usr1.recv() => Signal::Reopen,
            _ = self.usr2.recv() => Signal::LameDuck,
        }
    }

    /// Wait for the next signal.
    #[cfg(not(unix))]
    pub async fn next(&mut self) -> Signal {
        let _ = tokio::signal::ctrl_c().await;
        Signal::Stop("interrupt")
    }
}
