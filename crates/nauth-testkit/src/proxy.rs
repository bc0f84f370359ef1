//! A TCP proxy the tests control, standing between an engine and its PostgreSQL, MySQL or
//! Redis server: [`Proxy::cut`] is the server going away (its port closes and every open
//! connection drops, so new connections are refused, as when the service stops), and
//! [`Proxy::restore`] brings it back on the same port.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// See the module documentation. Dropping the proxy cuts it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: String,
    running: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target`
    /// (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        Proxy {
            addr,
            target: target.to_string(),
            running: Mutex::new(Some(tokio::spawn(forward(listener, target.to_string())))),
        }
    }

    /// A proxy in front of the server of `url` (`scheme://[user@]host:port/…`).
    pub async fn in_front_of(url: &str) -> Proxy {
        let (_, target, _) = split_url(url);
        Proxy::start(target).await
    }

    /// `url` with its `host:port` replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (head, _, tail) = split_url(url);
        format!("{head}{}{tail}", self.addr)
    }

    /// The server goes away: the port closes and every forwarded connection drops.
    pub async fn cut(&self) {
        let running = self.running.lock().expect("proxy").take();
        if let Some(task) = running {
            task.abort();
            let _ = task.await;
        }
    }

    /// The server is back on the same port (a no-op while it is up).
    pub async fn restore(&self) {
        if self.running.lock().expect("proxy").is_some() {
            return;
        }
        let listener = TcpListener::bind(self.addr).await.expect("rebind");
        *self.running.lock().expect("proxy") =
            Some(tokio::spawn(forward(listener, self.target.clone())));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.running.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// Accepts and forwards until aborted; the connections live in a set that dies with it.
async fn forward(listener: TcpListener, target: String) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// `scheme://[userinfo@]` | `host:port` | `/path?query`.
fn split_url(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map(|i| i + 3).expect("a URL with a scheme");
    let rest = &url[start..];
    let host_start = start + rest.find('@').map(|i| i + 1).unwrap_or(0);
    let after = &url[host_start..];
    let end = host_start + after.find(['/', '?']).unwrap_or(after.len());
    (&url[..host_start], &url[host_start..end], &url[end..])
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn splits_server_urls() {
        assert_eq!(
            split_url("postgres://root@127.0.0.1:5432/test?application_name=x"),
            (
                "postgres://root@",
                "127.0.0.1:5432",
                "/test?application_name=x"
            )
        );
        assert_eq!(
            split_url("redis://127.0.0.1:6379"),
            ("redis://", "127.0.0.1:6379", "")
        );
        assert_eq!(
            split_url("mysql://root:pw@db:3306/test"),
            ("mysql://root:pw@", "db:3306", "/test")
        );
    }
}
