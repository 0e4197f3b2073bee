//! Limits that hold for a whole group of reactors: connections in all
//! (`Config::max_connections`), per peer IP (`Config::max_per_ip`), and
//! any count of the application's own ([`Quota`], such as the chat's
//! `--max-clients`).
//!
//! They are checked when a connection is admitted and released when it
//! closes, never per message: one atomic add (plus, with a per-IP limit,
//! one lock of one of 16 shards) at accept and at close.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Shards of the per-IP table, so reactors admitting clients from
/// different addresses rarely meet on one lock.
const SHARDS: usize = 16;

#[repr(align(64))]
struct Padded<T>(T);

/// Why a connection was refused at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` are open across the group.
    Full(usize),
    /// `max_per_ip` are open from this address across the group.
    PerIp(IpAddr, usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Full(n) => write!(f, "{n} connections open in the group already"),
            Refused::PerIp(ip, n) => write!(f, "{n} connections from {ip} already"),
        }
    }
}

/// The group's connection counts: in all, per reactor (for the
/// least-loaded acceptor and the stats) and per peer IP.
pub(crate) struct Admission {
    max_connections: usize,
    max_per_ip: Option<usize>,
    total: AtomicUsize,
    loads: Box<[Padded<AtomicUsize>]>,
    per_ip: Box<[Mutex<HashMap<IpAddr, usize>>]>,
}

/// One admitted connection's share of the group's limits, given back when
/// it is dropped (when the connection is reaped, on whichever thread).
pub(crate) struct Permit {
    admission: Arc<Admission>,
    reactor: usize,
    ip: Option<IpAddr>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("reactor", &self.reactor)
            .field("ip", &self.ip)
            .finish()
    }
}

impl Admission {
    pub(crate) fn new(reactors: usize, max_connections: usize, max_per_ip: Option<usize>) -> Self {
        Admission {
            max_connections,
            max_per_ip,
            total: AtomicUsize::new(0),
            loads: (0..reactors).map(|_| Padded(AtomicUsize::new(0))).collect(),
            per_ip: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        // A cheap, stable spread: the low bits of the address.
        let low = match ip {
            IpAddr::V4(a) => a.octets()[3] as usize ^ a.octets()[2] as usize,
            IpAddr::V6(a) => a.octets()[15] as usize ^ a.octets()[14] as usize,
        };
        &self.per_ip[low % SHARDS]
    }

    /// Admits a connection from `ip` (`None`: not an IP peer, a Unix
    /// socket) to reactor `reactor`, or says why not.
    pub(crate) fn admit(
        self: &Arc<Self>,
        reactor: usize,
        ip: Option<IpAddr>,
    ) -> Result<Permit, Refused> {
        // Compare-and-swap, not add-then-undo: the count never shows more
        // than the limit, even for an instant.
        let mut open = self.total.load(Ordering::Acquire);
        loop {
            if open >= self.max_connections {
                return Err(Refused::Full(open));
            }
            match self.total.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => open = now,
            }
        }
        let counted_ip = match (self.max_per_ip, ip) {
            (Some(max), Some(ip)) => {
                let mut table = self.shard(&ip).lock().unwrap_or_else(|e| e.into_inner());
                let count = table.entry(ip).or_insert(0);
                if *count >= max {
                    let n = *count;
                    if n == 0 {
                        table.remove(&ip); // max_per_ip of 0: keep no entry
                    }
                    drop(table);
                    self.total.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refused::PerIp(ip, n));
                }
                *count += 1;
                Some(ip)
            }
            _ => None,
        };
        self.loads[reactor].0.fetch_add(1, Ordering::AcqRel);
        Ok(Permit {
            admission: Arc::clone(self),
            reactor,
            ip: counted_ip,
        })
    }

    /// Connections open (or handed over and not yet closed) in the group.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Connections per reactor.
    pub(crate) fn loads(&self) -> Vec<usize> {
        self.loads
            .iter()
            .map(|l| l.0.load(Ordering::Acquire))
            .collect()
    }

    /// The reactor with the fewest connections; among equals, the first at
    /// or after `start`, so that a caller rotating `start` spreads ties.
    pub(crate) fn least_loaded(&self, start: usize) -> usize {
        let n = self.loads.len();
        (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| self.loads[i].0.load(Ordering::Acquire))
            .unwrap_or(0)
    }
}

impl Permit {
    /// The reactor the connection is counted on.
    #[cfg(test)]
    pub(crate) fn reactor(&self) -> usize {
        self.reactor
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let a = &self.admission;
        if let Some(ip) = self.ip {
            let mut table = a.shard(&ip).lock().unwrap_or_else(|e| e.into_inner());
            if let std::collections::hash_map::Entry::Occupied(mut e) = table.entry(ip) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        a.loads[self.reactor].0.fetch_sub(1, Ordering::AcqRel);
        a.total.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A count shared by every reactor of a group, with a maximum: for a limit
/// of the application's own that must hold for the whole group, such as
/// the chat's most clients at once. Take a [`QuotaPermit`] when the thing
/// counted begins and keep it in the connection's data; dropping it gives
/// the place back.
///
/// One atomic operation per acquire and per release, so it belongs at
/// admission, not on a per-message path.
///
/// ```
/// use mio_selectors::group::Quota;
///
/// let clients = Quota::new(2);
/// let a = clients.try_acquire().expect("room for one");
/// let _b = clients.try_acquire().expect("room for two");
/// assert!(clients.try_acquire().is_none()); // full
/// drop(a);
/// assert_eq!(clients.used(), 1);
/// assert!(clients.try_acquire().is_some());
/// ```
#[derive(Debug)]
pub struct Quota {
    max: usize,
    used: AtomicUsize,
}

impl Quota {
    /// A quota of at most `max` at once, shared through the `Arc`.
    ///
    /// ```
    /// let q = mio_selectors::group::Quota::new(10);
    /// assert_eq!(q.max(), 10);
    /// ```
    pub fn new(max: usize) -> Arc<Quota> {
        Arc::new(Quota {
            max,
            used: AtomicUsize::new(0),
        })
    }

    /// A place, if fewer than [`max`](Self::max) are taken.
    ///
    /// ```
    /// let q = mio_selectors::group::Quota::new(0);
    /// assert!(q.try_acquire().is_none());
    /// ```
    pub fn try_acquire(self: &Arc<Self>) -> Option<QuotaPermit> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used >= self.max {
                return None;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(QuotaPermit(Arc::clone(self))),
                Err(now) => used = now,
            }
        }
    }

    /// Places taken now.
    ///
    /// ```
    /// let q = mio_selectors::group::Quota::new(3);
    /// let _p = q.try_acquire();
    /// assert_eq!(q.used(), 1);
    /// ```
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The most places at once.
    ///
    /// ```
    /// assert_eq!(mio_selectors::group::Quota::new(3).max(), 3);
    /// ```
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One place of a [`Quota`], given back on drop.
///
/// ```
/// let q = mio_selectors::group::Quota::new(1);
/// let permit = q.try_acquire().unwrap();
/// drop(permit);
/// assert_eq!(q.used(), 0);
/// ```
#[derive(Debug)]
pub struct QuotaPermit(Arc<Quota>);

impl Drop for QuotaPermit {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_per_ip_hold_across_reactors() {
        let a = Arc::new(Admission::new(3, 4, Some(2)));
        let ip1: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = a.admit(0, Some(ip1)).unwrap();
        let p2 = a.admit(1, Some(ip1)).unwrap();
        assert_eq!(a.admit(2, Some(ip1)).unwrap_err(), Refused::PerIp(ip1, 2));
        let p3 = a.admit(2, Some(ip2)).unwrap();
        let p4 = a.admit(2, None).unwrap(); // a Unix peer: no per-IP count
        assert_eq!(a.admit(0, Some(ip2)).unwrap_err(), Refused::Full(4));
        assert_eq!(a.loads(), vec![1, 1, 2]);
        drop(p1);
        assert_eq!(a.total(), 3);
        let p5 = a.admit(0, Some(ip1)).unwrap();
        drop((p2, p3, p4, p5));
        assert_eq!(a.total(), 0);
        assert_eq!(a.loads(), vec![0, 0, 0]);
        assert!(a.per_ip.iter().all(|s| s.lock().unwrap().is_empty()));
    }

    #[test]
    fn least_loaded_spreads_ties() {
        let a = Arc::new(Admission::new(3, 100, None));
        let mut held = Vec::new();
        for k in 0..9 {
            let r = a.least_loaded(k);
            held.push(a.admit(r, None).unwrap());
        }
        assert_eq!(a.loads(), vec![3, 3, 3]);
        held.retain(|p| p.reactor() != 1);
        assert_eq!(a.least_loaded(0), 1);
        assert_eq!(a.least_loaded(2), 1);
    }

    /// Admission races between threads never let the count pass its limit.
    #[test]
    fn concurrent_admission_never_overshoots() {
        let a = Arc::new(Admission::new(4, 50, None));
        let q = Quota::new(30);
        let threads: Vec<_> = (0..4)
            .map(|r| {
                let (a, q) = (Arc::clone(&a), Arc::clone(&q));
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    let mut quota = Vec::new();
                    for _ in 0..1000 {
                        if let Ok(p) = a.admit(r, None) {
                            held.push(p);
                        }
                        quota.extend(q.try_acquire());
                        assert!(a.total() <= 50 && q.used() <= 30);
                        if held.len() > 5 {
                            held.remove(0);
                            quota.pop();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((a.total(), q.used()), (0, 0));
    }
}
