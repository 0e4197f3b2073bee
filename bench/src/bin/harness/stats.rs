//! Medians over rounds and per-round ratios.

use std::collections::BTreeMap;

use crate::runs::Run;

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
        let get = |k: &str| {
            self.runs
                .iter()
                .find(|((s, kk), _)| s == sc && *kk == k)
                .map(|(_, r)| r.clone())
        };
        let (Some(a), Some(b)) = (get("ours"), get(peer)) else {
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
