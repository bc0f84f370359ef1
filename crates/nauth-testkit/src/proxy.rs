//! A TCP proxy the tests control, standing between an engine and its PostgreSQL, MySQL or
//! Redis server: [`Proxy::cut`] is the server going away (every open connection drops, and a
//! new one is closed as soon as it is accepted, so nothing reaches the server), and
//! [`Proxy::restore`] brings it back. The port stays bound the whole time: a port given back
//! to the system could be taken by another test's connection before it is bound again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// See the module documentation. Dropping the proxy closes it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    /// Forwarded connections still open.
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target`
    /// (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (up, rx) = watch::channel(true);
        let open = Arc::new(AtomicUsize::new(0));
        Proxy {
            addr,
            up,
            task: tokio::spawn(forward(listener, target.to_string(), rx, open.clone())),
            open,
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

    /// The server goes away: every forwarded connection drops, new ones are closed at once.
    pub async fn cut(&self) {
        self.up.send_replace(false);
        // Every forwarded connection is closed before the caller goes on.
        for _ in 0..5000 {
            if self.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the proxy's connections did not close");
    }

    /// The server is back.
    pub async fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts and forwards while up; the connections live in a set that dies with it.
async fn forward(
    listener: TcpListener,
    target: String,
    up: watch::Receiver<bool>,
    open: Arc<AtomicUsize>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                if !*up.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut down = up.clone();
                let open = Closes::count(&open);
                conns.spawn(async move {
                    let _open = open;
                    let Ok(mut server) = TcpStream::connect(&target).await else { return };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One open forwarded connection in the count, until dropped.
struct Closes(Arc<AtomicUsize>);

impl Closes {
    fn count(open: &Arc<AtomicUsize>) -> Closes {
        open.fetch_add(1, Ordering::SeqCst);
        Closes(open.clone())
    }
}

impl Drop for Closes {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
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
