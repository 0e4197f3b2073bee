//! `redis://` URLs.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

use super::RedisError;

/// The port Redis listens on when the URL names none.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a Redis server is and how to log in:
/// `redis://[user[:password]@]host[:port][/db]`.
///
/// `host` is a name, an IPv4 address or an IPv6 address in brackets; the
/// port defaults to 6379 and the database to 0. The user name and password
/// may be percent-encoded (`%40` for `@`). A password alone is written
/// `redis://:password@host`. TLS (`rediss://`), Unix sockets, query
/// parameters and fragments are refused with a clear error rather than
/// ignored. [`Display`](fmt::Display) masks the password, so a URL can be
/// logged.
///
/// ```
/// use mio_selectors::redis::RedisUrl;
///
/// let url: RedisUrl = "redis://app:s%40cret@[::1]:6380/2".parse()?;
/// assert_eq!(url.host(), "::1");
/// assert_eq!(url.port(), 6380);
/// assert_eq!(url.username(), Some("app"));
/// assert_eq!(url.password(), Some("s@cret"));
/// assert_eq!(url.db(), 2);
/// assert_eq!(url.to_string(), "redis://app:***@[::1]:6380/2");
///
/// let err = "redis://localhost:99999".parse::<RedisUrl>().unwrap_err();
/// assert!(err.to_string().contains("port"));
/// # Ok::<(), mio_selectors::redis::RedisError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: u32,
}

impl RedisUrl {
    /// Parses a URL; the same as [`str::parse`].
    ///
    /// # Errors
    /// [`RedisError::InvalidUrl`] naming what is wrong.
    pub fn parse(url: &str) -> Result<RedisUrl, RedisError> {
        parse(url).map_err(|reason| RedisError::InvalidUrl {
            url: mask(url),
            reason,
        })
    }

    /// A URL for `host:port` with no credentials and database 0.
    pub fn new(host: impl Into<String>, port: u16) -> RedisUrl {
        RedisUrl {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
        }
    }

    /// The host: a name or an IP address (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The ACL user name, if the URL gives one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, if the URL gives one (`AUTH` is sent when it does).
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database number (`SELECT` is sent when it is not 0).
    pub fn db(&self) -> u32 {
        self.db
    }

    /// Resolves the host to socket addresses. This may block on DNS for a
    /// host name: call it before the loop starts, or on reconnect only.
    ///
    /// # Errors
    /// [`RedisError::Connect`] when the name does not resolve.
    pub fn socket_addrs(&self) -> Result<Vec<SocketAddr>, RedisError> {
        let addrs: io::Result<Vec<SocketAddr>> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map(Iterator::collect);
        match addrs {
            Ok(list) if !list.is_empty() => Ok(list),
            Ok(_) => Err(self.connect_error(io::Error::new(
                io::ErrorKind::NotFound,
                "the host name resolves to no address",
            ))),
            Err(e) => Err(self.connect_error(e)),
        }
    }

    /// Wraps a failed connect to this URL's address as
    /// [`RedisError::Connect`].
    pub fn connect_error(&self, source: io::Error) -> RedisError {
        RedisError::Connect {
            addr: self.authority(),
            source,
        }
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for RedisUrl {
    type Err = RedisError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisUrl::parse(s)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.username, &self.password) {
            (Some(user), Some(_)) => write!(f, "{user}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            _ => {}
        }
        f.write_str(&self.authority())?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// The URL with any user information replaced by `***`, for messages.
fn mask(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

fn parse(url: &str) -> Result<RedisUrl, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("expected redis://[user[:password]@]host[:port][/db]".into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" => {}
        "rediss" => return Err("TLS (rediss://) is not supported; use redis://".into()),
        other => return Err(format!("unsupported scheme `{other}`; expected redis://")),
    }
    if rest.contains(['?', '#']) {
        return Err("query parameters and fragments are not supported".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => {
            let (user, pass) = match info.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (info, None),
            };
            let user = decode(user, "user name")?;
            let pass = pass.map(|p| decode(p, "password")).transpose()?;
            match pass {
                None => {
                    return Err("a user name needs a password: redis://user:password@host".into())
                }
                Some(p) if p.is_empty() => return Err("the password is empty".into()),
                Some(p) => ((!user.is_empty()).then_some(user), Some(p)),
            }
        }
    };
    let (host, port) = split_host_port(hostport)?;
    let db = match path {
        "" => 0,
        db => db
            .parse::<u32>()
            .map_err(|_| format!("the database `{db}` is not a number"))?,
    };
    Ok(RedisUrl {
        host,
        port,
        username,
        password,
        db,
    })
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("an IPv6 address needs its closing `]`".into());
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("expected `:port` after the IPv6 address".into()),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.contains(':') && !hostport.starts_with('[') {
        return Err("put an IPv6 address in brackets: redis://[::1]:6379".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!("the port `{p}` is not a number from 1 to 65535"))
            }
            Ok(p) => p,
        },
    };
    Ok((host.to_string(), port))
}

/// Percent-decodes a user name or password.
fn decode(s: &str, what: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => out.push(b),
                None => return Err(format!("bad percent-escape in the {what}")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        RedisUrl::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn plain_forms() {
        let u = RedisUrl::parse("redis://127.0.0.1:7000").unwrap();
        assert_eq!((u.host(), u.port(), u.db()), ("127.0.0.1", 7000, 0));
        assert_eq!((u.username(), u.password()), (None, None));
        let u = RedisUrl::parse("redis://cache.internal").unwrap();
        assert_eq!((u.host(), u.port()), ("cache.internal", DEFAULT_PORT));
        let u = RedisUrl::parse("REDIS://h:1/15").unwrap();
        assert_eq!(u.db(), 15);
        let u = RedisUrl::parse("redis://h:1/").unwrap();
        assert_eq!(u.db(), 0);
        let u = RedisUrl::parse("redis://[::1]").unwrap();
        assert_eq!((u.host(), u.port()), ("::1", DEFAULT_PORT));
        assert_eq!(u.authority(), "[::1]:6379");
    }

    #[test]
    fn credentials() {
        let u = RedisUrl::parse("redis://:pw@h:1").unwrap();
        assert_eq!((u.username(), u.password()), (None, Some("pw")));
        assert_eq!(u.to_string(), "redis://:***@h:1");
        let u = RedisUrl::parse("redis://bob:a%3Ab%2Fc@h:1").unwrap();
        assert_eq!((u.username(), u.password()), (Some("bob"), Some("a:b/c")));
        // The last `@` ends the user information.
        let u = RedisUrl::parse("redis://:p@ss@h:1").unwrap();
        assert_eq!(u.password(), Some("p@ss"));
    }

    #[test]
    fn errors_are_clear_and_mask_the_password() {
        assert!(err("localhost:6379").contains("expected redis://"));
        assert!(err("rediss://h:1").contains("TLS"));
        assert!(err("http://h:1").contains("scheme `http`"));
        assert!(err("redis://h:0").contains("port `0`"));
        assert!(err("redis://h:x").contains("port `x`"));
        assert!(err("redis://h:70000").contains("port `70000`"));
        assert!(err("redis://:1").contains("host is missing"));
        assert!(err("redis://").contains("host is missing"));
        assert!(err("redis://h:1/x").contains("database `x`"));
        assert!(err("redis://h:1/-1").contains("database"));
        assert!(err("redis://h:1?db=2").contains("query"));
        assert!(err("redis://[::1:1").contains("closing"));
        assert!(err("redis://[nope]:1").contains("IPv6"));
        assert!(err("redis://::1:6379").contains("brackets"));
        assert!(err("redis://bob@h:1").contains("needs a password"));
        assert!(err("redis://bob:@h:1").contains("empty"));
        assert!(err("redis://bob:%zz@h:1").contains("percent"));
        let e = err("redis://bob:hunter2@h:x");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("redis://***@h:x"), "{e}");
    }

    #[test]
    fn resolves_loopback() {
        let u = RedisUrl::parse("redis://127.0.0.1:6390").unwrap();
        assert_eq!(
            u.socket_addrs().unwrap(),
            vec!["127.0.0.1:6390".parse().unwrap()]
        );
    }
}
