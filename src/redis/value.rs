//! Replies as values.

use redis_protocol::resp2::types::OwnedFrame;

use super::ServerError;

/// A reply from Redis, or one element of an array reply.
///
/// An error reply at the top level arrives as `Err(ServerError)` (see
/// [`Reply`]); inside an array (as `EXEC` can return) it is
/// [`Value::Error`].
///
/// ```
/// use mio_selectors::redis::Value;
///
/// let v = Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Int(2), Value::Nil]);
/// let items = v.as_array().unwrap();
/// assert_eq!(items[0].as_bytes(), Some(&b"a"[..]));
/// assert_eq!(items[1].as_int(), Some(2));
/// assert!(items[2].is_nil());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `$-1` or `*-1`: no value (a missing key, a `SET NX` that lost).
    Nil,
    /// `+OK`, `+PONG`: a status line.
    Status(String),
    /// `:42`.
    Int(i64),
    /// `$3\r\nabc`: bytes.
    Bulk(Vec<u8>),
    /// `*2 ...`: an array.
    Array(Vec<Value>),
    /// An error inside an array.
    Error(ServerError),
}

/// What one command gets back: a value, or Redis's error reply.
pub type Reply = Result<Value, ServerError>;

impl Value {
    /// Whether this is [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Whether this is the status `OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Value::Status(s) if s == "OK")
    }

    /// The bytes of a bulk string or a status.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// An integer reply, or a bulk string or status holding a decimal number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(_) | Value::Status(_) => {
                std::str::from_utf8(self.as_bytes()?).ok()?.parse().ok()
            }
            _ => None,
        }
    }

    /// The elements of an array reply.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The elements of an array reply, by value.
    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The bytes of a bulk string or status, by value.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Status(s) => Some(s.into_bytes()),
            _ => None,
        }
    }
}

impl From<OwnedFrame> for Value {
    fn from(frame: OwnedFrame) -> Value {
        match frame {
            OwnedFrame::Null => Value::Nil,
            OwnedFrame::SimpleString(s) => Value::Status(String::from_utf8_lossy(&s).into_owned()),
            OwnedFrame::Error(e) => Value::Error(ServerError::new(e)),
            OwnedFrame::Integer(i) => Value::Int(i),
            OwnedFrame::BulkString(b) => Value::Bulk(b),
            OwnedFrame::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
        }
    }
}

/// A top-level frame as a reply.
pub(crate) fn reply(frame: OwnedFrame) -> Reply {
    match Value::from(frame) {
        Value::Error(e) => Err(e),
        v => Ok(v),
    }
}
