//! Running a group: the member threads, what they tell the supervisor,
//! the supervisor itself ([`RunningGroup::join`]) and [`GroupHandle`].

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};

use mio::{Events, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use super::{AcceptMode, Admission, Bound, Envelope, Lanes, MailStats, Member, Wake};
use crate::metrics::Snapshot;
use crate::{Config, Error, Handle, Handler, Reactor, Result};

pub(super) const DONE: Token = Token(0);
pub(super) const SIGNALS: Token = Token(1);

/// What a member thread tells the supervisor.
enum Event {
    /// Reactor `I` is built and about to run.
    Ready(usize, Handle),
    /// Reactor `I`'s thread is done: how its run ended.
    Done(usize, Result<()>),
}

/// What one member thread needs to build and run its reactor.
struct Seat {
    index: usize,
    shared: Arc<GroupShared>,
    config: Config,
    listeners: Vec<Bound>,
    events: Sender<Event>,
    waker: Arc<Waker>,
}

impl Seat {
    fn run<H: Handler>(self, factory: impl FnOnce(usize) -> H) {
        let Seat {
            index,
            shared,
            config,
            listeners,
            events,
            waker,
        } = self;
        let ready = events.clone();
        let outcome = panic::catch_unwind(AssertUnwindSafe(move || -> Result<()> {
            let mut reactor = Reactor::new(factory(index), config)?;
            shared.lanes.set_waker(index, Box::new(reactor.handle()));
            reactor.join_group(Member::new(index, &shared));
            for bound in listeners {
                let id = reactor.add_listener(bound.sock)?;
                if let Some(wrap) = bound.wrap {
                    reactor.wrap_listener(id, wrap)?;
                }
                if bound.scrape {
                    reactor.mark_scrape(id);
                }
            }
            let _ = ready.send(Event::Ready(index, reactor.handle()));
            reactor.run()
        }));
        let outcome = outcome.unwrap_or_else(|payload| {
            let message = panic_message(payload.as_ref());
            log::error!("reactor-{index} panicked: {message}");
            Err(Error::ReactorPanicked {
                reactor: index,
                message,
            })
        });
        let _ = events.send(Event::Done(index, outcome));
        Wake::wake(&*waker);
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

/// What the reactors of a group share.
pub(crate) struct GroupShared {
    /// Every reactor's handle, once all have started.
    pub(super) handles: OnceLock<Vec<Handle>>,
    pub(super) stopping: AtomicBool,
    /// Stop without waiting for pending output (a second signal).
    pub(super) now: AtomicBool,
    pub(crate) lanes: Arc<Lanes<Envelope>>,
    pub(crate) admission: Arc<Admission>,
    pub(crate) mode: AcceptMode,
    /// Each reactor's latest published counters (see `Member::publish`).
    pub(crate) snapshots: Vec<Mutex<Option<Snapshot>>>,
    /// Whether the group serves metrics, so that its reactors publish.
    pub(crate) publish: bool,
}

impl GroupShared {
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for h in self.handles.get().into_iter().flatten() {
            h.stop();
        }
    }

    /// A second signal: every reactor closes what is left at once instead
    /// of flushing it.
    fn stop_now(&self) {
        self.now.store(true, Ordering::Release);
        self.stop();
    }

    pub(crate) fn is_stopping_now(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }
}

/// A `Send + Clone` handle to a running group: stop every reactor, or
/// reach one of them.
///
/// ```
/// # use mio_selectors::{Config, ConnId, Context, Handler, InBuf, PeerAddr};
/// use mio_selectors::group::{GroupOptions, ReactorGroup};
/// # struct App;
/// # impl Handler for App {
/// #     type Data = ();
/// # }
/// let group = ReactorGroup::new(GroupOptions { reactors: 2, ..Default::default() }, Config::default())?;
/// let running = group.start(|_| App)?;
/// let handle = running.handle();
/// assert_eq!(handle.reactors(), 2);
/// std::thread::spawn(move || handle.stop());
/// running.join()?; // returns once both reactors have stopped
/// # Ok::<(), mio_selectors::Error>(())
/// ```
#[derive(Clone)]
pub struct GroupHandle {
    shared: Arc<GroupShared>,
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupHandle")
            .field("reactors", &self.reactors())
            .field("stopping", &self.is_stopping())
            .finish()
    }
}

impl GroupHandle {
    /// Stops every reactor gracefully (each as [`Handle::stop`](crate::Handle::stop)).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether [`stop`](Self::stop) was called, or the group is stopping
    /// because one of its reactors ended.
    pub fn is_stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::Acquire)
    }

    /// How many reactors the group has.
    pub fn reactors(&self) -> usize {
        self.shared.admission.loads().len()
    }

    /// Reactor `index`'s own [`Handle`](crate::Handle), to hand it work.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`reactors`](Self::reactors).
    pub fn reactor(&self, index: usize) -> &Handle {
        &self.shared.handles.get().expect("started")[index]
    }

    /// Connections open on each reactor now (counted at admission and
    /// release, so a stream being handed over counts on its receiver).
    pub fn connections(&self) -> Vec<usize> {
        self.shared.admission.loads()
    }

    /// Each reactor's mailbox counters: messages, batches and wake-ups.
    pub fn mail_stats(&self) -> Vec<MailStats> {
        (0..self.reactors())
            .map(|i| self.shared.lanes.stats(i))
            .collect()
    }
}

/// A started group: its [`handle`](Self::handle), and
/// [`join`](Self::join) to supervise it until it has stopped.
pub struct RunningGroup {
    /// Handles of the reactors that reported ready, by index.
    handles: Vec<Option<Handle>>,
    shared: Arc<GroupShared>,
    threads: Vec<JoinHandle<()>>,
    events: Receiver<Event>,
    poll: Poll,
    /// Kept open here: an eventfd closed by the last member to leave would
    /// take its pending wake-up out of the supervisor's epoll with it.
    _waker: Arc<Waker>,
    signals: Option<Signals>,
    done: usize,
    failure: Option<Error>,
}

impl std::fmt::Debug for RunningGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningGroup")
            .field("reactors", &self.threads.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl RunningGroup {
    /// Spawns one thread per reactor (`reactor-I`, serving `listeners[I]`
    /// with the handler `factory(I)`) and waits until all run.
    pub(super) fn launch<H, F>(
        shared: Arc<GroupShared>,
        config: Config,
        listeners: Vec<Vec<Bound>>,
        poll: Poll,
        signals: Option<Signals>,
        factory: F,
    ) -> Result<RunningGroup>
    where
        H: Handler + 'static,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let n = listeners.len();
        let factory = Arc::new(factory);
        let waker = Arc::new(Waker::new(poll.registry(), DONE)?);
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(n);
        for (i, socks) in listeners.into_iter().enumerate() {
            let seat = Seat {
                index: i,
                shared: Arc::clone(&shared),
                config: config.clone(),
                listeners: socks,
                events: tx.clone(),
                waker: Arc::clone(&waker),
            };
            let factory = Arc::clone(&factory);
            let spawned = thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || seat.run(move |i| factory(i)));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Those started so far are told below, like any failure.
                    let _ = tx.send(Event::Done(i, Err(e.into())));
                    break;
                }
            }
        }
        drop(tx);
        let mut running = RunningGroup {
            handles: Vec::with_capacity(n),
            shared,
            threads,
            events: rx,
            poll,
            _waker: waker,
            signals,
            done: 0,
            failure: None,
        };
        running.await_start(n)?;
        Ok(running)
    }

    /// Waits until every reactor runs, or one failed to start (then stops
    /// the others and returns its error). A reactor that ran and stopped by
    /// itself meanwhile (a handler that gave up in `started`: its `Ready`
    /// came before its `Done`) is no failure to start: the group starts
    /// and, being stopped already, stops at once.
    fn await_start(&mut self, n: usize) -> Result<()> {
        self.handles = (0..n).map(|_| None).collect();
        let mut ready = 0;
        while ready < n && self.failure.is_none() {
            match self.events.recv() {
                Ok(Event::Ready(i, h)) => {
                    self.handles[i] = Some(h);
                    ready += 1;
                }
                Ok(Event::Done(i, r)) => self.finished(i, r),
                Err(_) => break, // every member is gone
            }
        }
        if self.failure.is_none() && ready == n {
            let handles = self.handles.iter().flatten().cloned().collect();
            let _ = self.shared.handles.set(handles);
            if self.shared.stopping.load(Ordering::Acquire) {
                self.shared.stop(); // stopped while starting
            }
            return Ok(());
        }
        // Some reactor did not start: stop those that did, wait for all.
        for h in self.handles.iter().flatten() {
            h.stop();
        }
        while let Ok(event) = self.events.recv() {
            match event {
                Event::Done(i, r) => self.finished(i, r),
                // Built after the failure: it would run for good otherwise.
                Event::Ready(_, h) => h.stop(),
            }
        }
        self.join_threads();
        Err(self
            .failure
            .take()
            .unwrap_or_else(|| Error::Io(std::io::Error::other("a reactor did not start"))))
    }

    /// A `Send + Clone` handle that stops the whole group.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    fn finished(&mut self, index: usize, result: Result<()>) {
        self.done += 1;
        match result {
            Ok(()) => log::debug!("reactor-{index} stopped"),
            Err(e) => {
                log::error!("reactor-{index} failed: {e}");
                if self.failure.is_none() {
                    self.failure = Some(e);
                }
            }
        }
        if !self.shared.stopping.load(Ordering::Acquire) {
            log::info!("reactor-{index} ended: stopping the group");
        }
        self.shared.stop();
    }

    /// Supervises the group until every reactor has stopped: stops all of
    /// them on a signal (after [`ReactorGroup::stop_on_signals`](super::ReactorGroup::stop_on_signals)) or as
    /// soon as any one ends, then joins the threads.
    ///
    /// # Errors
    ///
    /// The first failure of any reactor: [`Error::ReactorPanicked`](crate::Error::ReactorPanicked) for a
    /// panic in its handler, or the error its run returned.
    pub fn join(mut self) -> Result<()> {
        let n = self.threads.len();
        let mut events = Events::with_capacity(8);
        loop {
            while let Ok(event) = self.events.try_recv() {
                if let Event::Done(i, r) = event {
                    self.finished(i, r);
                }
            }
            if self.done >= n {
                break;
            }
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Cannot wait any more: stop everyone and join blocking.
                    log::error!("group supervisor: poll failed: {e}");
                    self.handle().stop();
                    while let Ok(event) = self.events.recv() {
                        if let Event::Done(i, r) = event {
                            self.finished(i, r);
                        }
                    }
                    break;
                }
            }
            if events.iter().any(|e| e.token() == SIGNALS) {
                if let Some(signals) = self.signals.as_mut() {
                    for sig in signals.pending() {
                        if self.shared.stopping.load(Ordering::Acquire) {
                            log::warn!("second signal ({sig}): closing everything now");
                            self.shared.stop_now();
                        } else {
                            log::info!("received signal {sig}: stopping the group");
                            self.shared.stop();
                        }
                    }
                }
            }
        }
        self.join_threads();
        for (i, s) in self.handle().mail_stats().iter().enumerate() {
            log::info!(
                "reactor-{i}: mail sent {}, in {} batches, {} wake-ups; received {}; refused {}",
                s.sent,
                s.batches,
                s.wakes,
                s.received,
                s.refused
            );
        }
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn join_threads(&mut self) {
        for t in self.threads.drain(..) {
            // Panics were caught in the thread; this cannot fail but for an abort.
            let _ = t.join();
        }
    }
}
