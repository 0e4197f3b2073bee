//! A wrapped [`Conn`]'s I/O (TLS, WebSocket): reads of raw wire bytes
//! for the layer, and output encoded by the layer before it is queued.

use super::*;

impl<D> Conn<D> {
    /// [`read`](Self::read) for a wrapped connection: the bytes go into
    /// `buf` (the loop's scratch, to be run through the layer, which then
    /// appends what came out to `inb`), not into `inb`. `Data(n)`: `n`
    /// bytes of `buf` were read.
    pub(crate) fn read_wire(&mut self, buf: &mut [u8], now: Instant) -> Read {
        let lingering = matches!(self.state, State::Lingering { .. });
        let want = buf.len();
        match (&self.stream).read(buf) {
            Ok(0) => {
                self.eof = true;
                self.readable = false;
                Read::Eof { lingering }
            }
            Ok(n) if lingering => Read::Discarded(n),
            Ok(n) => {
                if let Some(idle) = &mut self.idle {
                    idle.last_read = now;
                }
                if n < want && !self.hup {
                    self.readable = false;
                }
                Read::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Read::Drained
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::Interrupted,
            Err(e) => Read::Failed(e),
        }
    }

    /// A wrapped connection's output: the layer encodes it (TLS records,
    /// WebSocket frames) into scratch, which is queued as is.
    pub(super) fn queue_through_layer(
        &mut self,
        data: Output<'_>,
        pool: &mut BufPool,
        max: usize,
        high: usize,
    ) -> Result<bool> {
        self.accepts_output()?;
        let Some(w) = self.wrap.as_mut() else {
            return Err(Error::NoSuchConnection);
        };
        let len = data.len();
        let (taken, wire) = crate::reactor::wrap::with_scratch(|out| {
            let taken = match &data {
                Output::Bytes(bytes) => w.layer.on_app_output(bytes, out),
                Output::Buf(buf) => w.layer.on_app_output(buf.as_slice(), out),
                Output::Shared(shared) => w.layer.on_app_output(shared, out),
            };
            (taken, std::mem::take(out))
        });
        if let Output::Buf(buf) = data {
            buf.clear();
        }
        let r = match taken {
            Ok(n) if n == len => self.queue_raw(Output::Bytes(&wire), pool, max, high),
            // Only before a client's handshake, past the layer's own buffer.
            Ok(_) => Err(Error::OutputOverflow),
            Err(e) => {
                log::debug!("layer refused output: {e}");
                Err(Error::NoSuchConnection)
            }
        };
        crate::reactor::wrap::give_back_scratch(wire);
        r
    }

    /// The encoding its layer shares with others now, if any (see
    /// [`Layer::shared_encoding`](crate::layer::Layer::shared_encoding));
    /// `None` for a plain connection.
    pub(crate) fn shared_encoding(&self) -> Option<crate::layer::SharedEncoding> {
        self.wrap.as_ref()?.layer.shared_encoding()
    }

    /// `app` as its layer's shared encoding, made once for a broadcast.
    pub(crate) fn encode_shared(&self, app: &[u8]) -> Option<Arc<[u8]>> {
        let w = self.wrap.as_ref()?;
        let mut out = Vec::with_capacity(app.len() + 16);
        w.layer.encode_shared(app, &mut out).ok()?;
        Some(Arc::from(out))
    }
}
