//! `Conns`: the reactor's connection bookkeeping in one place: the slab,
//! generations, the ready/dirty/dead lists and the per-IP counts.
//!
//! Every list holds `ConnId`s, never bare slab keys, and every lookup
//! compares the generation, so an entry outliving its connection finds
//! nothing. Removal from the slab happens only in [`Conns::remove`], which
//! the loop calls when it reaps a dead connection.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::mem;
use std::net::IpAddr;

use slab::Slab;

use super::conn::{Conn, State};
use super::id::GEN_MASK;
use super::stream::Stream;
use crate::{ConnId, PeerAddr};

pub(crate) struct Conns<D> {
    slab: Slab<Conn<D>>,
    next_gen: u32,
    lists: Lists,
    /// Accepted connections per peer IP, kept only with `config.max_per_ip`.
    per_ip: HashMap<IpAddr, usize>,
}

/// The work lists, apart from the slab so that a connection and the lists
/// can be borrowed at once ([`Conns::entry`]): one lookup per step.
#[derive(Default)]
pub(crate) struct Lists {
    /// Connections with readable work left for the next pass.
    ready: Vec<ConnId>,
    /// Connections to flush at the end of this pass.
    dirty: Vec<ConnId>,
    /// Connections to deregister, drop and report.
    dead: Vec<ConnId>,
    /// Spare list storage, swapped with the lists so that a pass allocates nothing.
    spare: Vec<ConnId>,
}

impl Lists {
    /// Files `id` (that is `conn`) to be flushed at the end of this pass, once.
    pub(crate) fn mark_dirty<D>(&mut self, id: ConnId, conn: &mut Conn<D>) {
        if !mem::replace(&mut conn.dirty, true) {
            self.dirty.push(id);
        }
    }

    /// Files `id` (that is `conn`) to be read on the next pass, once.
    pub(crate) fn queue_ready<D>(&mut self, id: ConnId, conn: &mut Conn<D>) {
        if !mem::replace(&mut conn.queued, true) {
            self.ready.push(id);
        }
    }

    /// Files `id` to be reaped.
    pub(crate) fn push_dead(&mut self, id: ConnId) {
        self.dead.push(id);
    }
}

impl<D> Default for Conns<D> {
    fn default() -> Self {
        Conns {
            slab: Slab::new(),
            next_gen: 1,
            lists: Lists::default(),
            per_ip: HashMap::new(),
        }
    }
}

impl<D> Conns<D> {
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn<D>> {
        self.slab.get(id.key()).filter(|c| c.gen == id.gen())
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn<D>> {
        self.slab.get_mut(id.key()).filter(|c| c.gen == id.gen())
    }

    /// The connection and the work lists at once: one lookup for a step
    /// that both changes a connection and files it.
    pub(crate) fn entry(&mut self, id: ConnId) -> Option<(&mut Conn<D>, &mut Lists)> {
        let conn = self.slab.get_mut(id.key()).filter(|c| c.gen == id.gen())?;
        Some((conn, &mut self.lists))
    }

    /// How many connections, whatever their state.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every connection with its id, whatever its state (for the metrics).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn<D>)> + '_ {
        self.slab
            .iter()
            .map(|(key, c)| (ConnId::new(key, c.gen), c))
    }

    /// Every connection, whatever its state (for shutdown).
    pub(crate) fn all_ids(&self) -> Vec<ConnId> {
        let ids = self.slab.iter().map(|(key, c)| ConnId::new(key, c.gen));
        ids.collect()
    }

    /// Open connections that got `connection_made`, in slab order.
    pub(crate) fn open_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.slab
            .iter()
            .filter(|(_, c)| c.is_open() && c.made)
            .map(|(key, c)| ConnId::new(key, c.gen))
    }

    /// One past the highest slot in use, to walk the slots without holding
    /// a borrow (a broadcast queues to each in turn).
    pub(crate) fn slots(&self) -> usize {
        self.slab.capacity()
    }

    /// The connection in `slot` if it is open and got `connection_made`.
    pub(crate) fn open_at(&self, slot: usize) -> Option<ConnId> {
        let conn = self.slab.get(slot).filter(|c| c.is_open() && c.made)?;
        Some(ConnId::new(slot, conn.gen))
    }

    /// The id the next [`insert`](Self::insert) files under: register the
    /// socket with its token first, and file it only if that succeeded, so
    /// a failure leaves nothing behind.
    pub(crate) fn next_id(&self) -> ConnId {
        ConnId::new(self.slab.vacant_key(), self.next_gen)
    }

    /// Files a new connection under [`next_id`](Self::next_id).
    pub(crate) fn insert(&mut self, stream: Stream, peer: PeerAddr, state: State) -> ConnId {
        let id = self.next_id();
        self.slab.insert(Conn::new(stream, peer, id.gen(), state));
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        id
    }

    /// Takes a connection out of the slab (it must be dead), with its per-IP
    /// count given back.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn<D>> {
        if !self.get(id)?.is_dead() {
            return None;
        }
        let conn = self.slab.remove(id.key());
        if let (true, Some(addr)) = (conn.counted, conn.peer.inet()) {
            if let Entry::Occupied(mut e) = self.per_ip.entry(addr.ip()) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        Some(conn)
    }

    /// Connections accepted from `ip` and not yet reaped.
    pub(crate) fn count_from(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Counts `id` against its peer's IP.
    pub(crate) fn count_ip(&mut self, id: ConnId, ip: IpAddr) {
        if let Some(conn) = self.slab.get_mut(id.key()).filter(|c| c.gen == id.gen()) {
            conn.counted = true;
            *self.per_ip.entry(ip).or_insert(0) += 1;
        }
    }

    /// Files `id` to be flushed at the end of this pass (once).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some((conn, lists)) = self.entry(id) {
            lists.mark_dirty(id, conn);
        }
    }

    /// Files `id` to be read (once) on the next pass.
    pub(crate) fn queue_ready(&mut self, id: ConnId) {
        if let Some((conn, lists)) = self.entry(id) {
            lists.queue_ready(id, conn);
        }
    }

    /// Whether work is queued, so the next poll must not block.
    pub(crate) fn has_work(&self) -> bool {
        !self.lists.ready.is_empty() || !self.lists.dirty.is_empty()
    }

    /// The ready list, emptied (an entry counts as queued until the loop
    /// reads it); hand the storage back with [`give_back`](Self::give_back).
    pub(crate) fn take_ready(&mut self) -> Vec<ConnId> {
        let l = &mut self.lists;
        mem::replace(&mut l.ready, mem::take(&mut l.spare))
    }

    /// The flush list, emptied.
    pub(crate) fn take_dirty(&mut self) -> Vec<ConnId> {
        let l = &mut self.lists;
        mem::replace(&mut l.dirty, mem::take(&mut l.spare))
    }

    /// The dead list, emptied.
    pub(crate) fn take_dead(&mut self) -> Vec<ConnId> {
        let l = &mut self.lists;
        mem::replace(&mut l.dead, mem::take(&mut l.spare))
    }

    /// Returns a list's storage for the next `take_*`.
    pub(crate) fn give_back(&mut self, mut list: Vec<ConnId>) {
        list.clear();
        if list.capacity() > self.lists.spare.capacity() {
            self.lists.spare = list;
        }
    }
}
