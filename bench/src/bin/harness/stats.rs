//! Medians over rounds and per-round ratios.

use std::collections::BTreeMap;

use std::time::Instant;

use crate::passes::PassStats;
use crate::runs::{Idle, Run};
use crate::Res;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs of one server in one scenario, in round order (None: that run failed).
pub type Runs = Vec<Option<Run>>;

/// Every run of one kind (echo, chat, group), by (scenario id, server key):
/// the untraced rounds, and the one traced run.
#[derive(Default)]
pub struct Table {
    pub runs: BTreeMap<(String, &'static str), Runs>,
    pub meter: BTreeMap<(String, &'static str), Run>,
}

impl Table {
    pub fn med(&self, sc: &str, key: &str, f: impl Fn(&Run) -> f64) -> f64 {
        self.runs
            .iter()
            .find(|((s, k), _)| s == sc && *k == key)
            .map_or(f64::NAN, |(_, r)| {
                median(r.iter().flatten().map(&f).collect())
            })
    }
    /// Median over rounds of ours / peer (both from the same round).
    pub fn ratio(&self, sc: &str, peer: &str, f: impl Fn(&Run) -> f64) -> f64 {
        self.ratio_of(sc, "ours", sc, peer, f)
    }
    /// Median over rounds of (`sa`, `a`) / (`sb`, `b`), round by round.
    pub fn ratio_of(&self, sa: &str, a: &str, sb: &str, b: &str, f: impl Fn(&Run) -> f64) -> f64 {
        let get = |sc: &str, k: &str| {
            self.runs
                .iter()
                .find(|((s, kk), _)| s == sc && *kk == k)
                .map(|(_, r)| r.clone())
        };
        let (Some(a), Some(b)) = (get(sa, a), get(sb, b)) else {
            return f64::NAN;
        };
        median(
            a.iter()
                .zip(b.iter())
                .filter_map(|(x, y)| Some(f(x.as_ref()?) / f(y.as_ref()?)))
                .collect(),
        )
    }
    pub fn meter(&self, sc: &str, key: &str) -> Option<&Run> {
        self.meter
            .iter()
            .find(|((s, k), _)| s == sc && *k == key)
            .map(|(_, r)| r)
    }
}

/// Everything one harness run measured, for the report.
pub struct Results {
    pub echo: Table,
    pub chat: Table,
    /// Ours as a group of reactors: echo and chat, per reactor count.
    pub group: Table,
    /// Reactor counts the group runs skipped, and why.
    pub group_skipped: Vec<(usize, String)>,
    /// Issue 12: one room on one chatroom against the same room through Redis.
    pub redis: crate::redis::Fanout,
    pub idle: BTreeMap<&'static str, Idle>,
    pub xcheck: Vec<(String, Res<String>)>,
    pub passes: Vec<(String, usize, Res<PassStats>)>,
    pub tracer_note: String,
    pub failures: Vec<String>,
    pub started: Instant,
    /// Issue 13: WebSocket chat and TLS echo against their peers.
    pub layers: crate::layers::Layers,
}
