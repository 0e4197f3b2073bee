//! The one pending-output watcher: [`Watch`] wraps any handler and
//! records, after every callback, the largest pending output of any open
//! connection, which the caps (`high_water`, `max_outb`, chat's
//! `max_output`) must bound.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use mio_selectors::{CloseReason, ConnId, Context, Handler, InBuf, PeerAddr};

/// Wraps a handler and records, after every callback, the largest
/// [`Context::pending_output`] of any open connection: what the caps
/// (`high_water`, `max_outb`) must bound.
pub struct Watch<H> {
    pub inner: H,
    pub peak: Arc<AtomicUsize>,
}

impl<H: Handler> Watch<H> {
    pub fn new(inner: H) -> (Watch<H>, Arc<AtomicUsize>) {
        let peak = Arc::new(AtomicUsize::new(0));
        let watch = Watch {
            inner,
            peak: peak.clone(),
        };
        (watch, peak)
    }

    fn check(&self, cx: &Context<'_, H::Data>) {
        let most = cx
            .ids()
            .filter_map(|id| cx.pending_output(id))
            .max()
            .unwrap_or(0);
        self.peak.fetch_max(most, SeqCst);
    }
}

impl<H: Handler> Handler for Watch<H> {
    type Data = H::Data;

    fn accept_wrapper(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        id: ConnId,
        peer: &PeerAddr,
    ) -> Option<H::Data> {
        let data = self.inner.accept_wrapper(cx, id, peer);
        self.check(cx);
        data
    }

    fn service_connection(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        id: ConnId,
        data: &mut H::Data,
        inb: &mut InBuf,
    ) {
        self.inner.service_connection(cx, id, data, inb);
        self.check(cx);
    }

    fn eof_received(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        id: ConnId,
        data: &mut H::Data,
        inb: &mut InBuf,
    ) {
        self.inner.eof_received(cx, id, data, inb);
        self.check(cx);
    }

    fn connection_lost(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        id: ConnId,
        data: H::Data,
        reason: &CloseReason,
    ) {
        self.inner.connection_lost(cx, id, data, reason);
        self.check(cx);
    }

    fn connection_made(&mut self, cx: &mut Context<'_, H::Data>, id: ConnId, data: &mut H::Data) {
        self.inner.connection_made(cx, id, data);
        self.check(cx);
    }

    fn connect_failed(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        id: ConnId,
        data: H::Data,
        reason: &CloseReason,
    ) {
        self.inner.connect_failed(cx, id, data, reason);
        self.check(cx);
    }

    fn pause_writing(&mut self, cx: &mut Context<'_, H::Data>, id: ConnId, data: &mut H::Data) {
        self.inner.pause_writing(cx, id, data);
        self.check(cx);
    }

    fn resume_writing(&mut self, cx: &mut Context<'_, H::Data>, id: ConnId, data: &mut H::Data) {
        self.inner.resume_writing(cx, id, data);
        self.check(cx);
    }

    fn on_timer(
        &mut self,
        cx: &mut Context<'_, H::Data>,
        conn: Option<(ConnId, &mut H::Data)>,
        tag: u64,
    ) {
        self.inner.on_timer(cx, conn, tag);
        self.check(cx);
    }

    fn shutting_down(&mut self, cx: &mut Context<'_, H::Data>) {
        self.inner.shutting_down(cx);
        self.check(cx);
    }
}
