//! [`ChatConfig`]: the chatroom's limits, and the reactor limits that carry them.

use std::time::Duration;

use mio_selectors::Config;

/// The chatroom's limits; each is a flag of the `chatroom` example.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Longest line, bytes before the terminator. Longer: `* error: line
    /// too long (max N bytes)` to the sender, the line is discarded up to its
    /// next `\n`, the connection stays. Default 4096.
    pub max_line: usize,
    /// Pending output per client. Past it the client is disconnected and the
    /// others get `* NAME left (too slow)`. Default 1 MiB.
    pub max_output: usize,
    /// Connected clients. Past it a newcomer gets `* error: server full`
    /// and is closed. Default 10,000.
    pub max_clients: usize,
    /// Lines read per client per second. Over budget, the client is not read
    /// until the budget refills (TCP pushes back); nothing is dropped.
    /// Default 100.
    pub lines_per_sec: f64,
    /// Lines a client may send at once before the rate applies. Default 200.
    pub burst: f64,
    /// How long a partial line (no `\n`) may wait. Past it the client is
    /// disconnected and the others get `* NAME left (timeout)`. Default 60 s.
    pub partial_timeout: Duration,
    /// Join and leave notices said one by one per second, per room; past
    /// it the rest of that second's are summed up at its end as
    /// `* N joined, M left` (`chat-protocol.md`, "Notice storms"). Default 10.
    pub notices_per_sec: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_line: 4096,
            max_output: 1024 * 1024,
            max_clients: 10_000,
            lines_per_sec: 100.0,
            burst: 200.0,
            partial_timeout: Duration::from_secs(60),
            notices_per_sec: 10,
        }
    }
}

impl ChatConfig {
    /// The reactor limits that carry these: output capped at `max_output`,
    /// input room for one whole line, reading paused while the client's own
    /// output backs up.
    pub fn reactor_config(&self) -> Config {
        let base = Config::default();
        let high_water = base.high_water.min(self.max_output);
        Config {
            max_outb: self.max_output,
            max_inb: base.max_inb.max(self.max_line.saturating_add(2)),
            high_water,
            low_water: base.low_water.min(high_water / 2),
            ..base
        }
    }
}
