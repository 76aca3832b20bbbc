//! A network link with a fixed one-way delay, for measuring what round trips cost a user
//! whose server is not on the same machine: a TCP listener on loopback that forwards each
//! connection to the test server's Unix socket, holding every chunk for `delay` in each
//! direction (so one request and its answer take `2 × delay` more). Bandwidth is not
//! limited; chunks keep their order and are each delayed from when they arrived, as on a
//! long wire.
//!
//! Through the Unix socket the server sees the proxy's OS user, so peer authentication
//! works as for the tests' own connections; clients connect with `-h 127.0.0.1 -p <port>`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The running link; it serves until the process ends.
pub struct Link {
    pub port: u16,
    turns: Arc<AtomicU64>,
}

impl Link {
    /// Starts a link to the server the tests use (`PGHOST`, `PGPORT`).
    pub fn start(delay: Duration) -> Link {
        let socket = PathBuf::from(crate::host()).join(format!(".s.PGSQL.{}", crate::port()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local_addr").port();
        let turns = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&turns);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = UnixStream::connect(&socket) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let side = Arc::new(Side::default());
                let (c_read, c_write) = (client.try_clone().expect("clone"), client);
                let (s_read, s_write) = (server.try_clone().expect("clone"), server);
                let up = Arc::clone(&side);
                let down = Arc::clone(&side);
                let counted = Arc::clone(&counted);
                pipe(
                    c_read,
                    move |buf, stream: &mut UnixStream| {
                        up.client_sent();
                        stream.write_all(buf)
                    },
                    s_write,
                    delay,
                    |s: &UnixStream| {
                        let _ = s.shutdown(Shutdown::Write);
                    },
                );
                pipe(
                    s_read,
                    move |buf, stream: &mut TcpStream| {
                        if down.server_answers() {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                        stream.write_all(buf)
                    },
                    c_write,
                    delay,
                    |s: &TcpStream| {
                        let _ = s.shutdown(Shutdown::Write);
                    },
                );
            }
        });
        Link { port, turns }
    }

    /// Round trips so far, over all connections: how many times the server answered after
    /// the client had sent something since its last answer.
    pub fn round_trips(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }
}

/// Which way the last bytes of one connection went.
#[derive(Default)]
struct Side {
    client_last: std::sync::atomic::AtomicBool,
}

impl Side {
    fn client_sent(&self) {
        self.client_last.store(true, Ordering::Relaxed);
    }

    /// True when this answer starts a new round trip.
    fn server_answers(&self) -> bool {
        self.client_last.swap(false, Ordering::Relaxed)
    }
}

/// Forwards `from` into `to`, each chunk `delay` after it was read; `close` ends the
/// writing half when `from` ends.
fn pipe<R, W, F, C>(mut from: R, mut forward: F, mut to: W, delay: Duration, close: C)
where
    R: Read + Send + 'static,
    W: Send + 'static,
    F: FnMut(&[u8], &mut W) -> std::io::Result<()> + Send + 'static,
    C: Fn(&W) + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if forward(&chunk, &mut to).is_err() {
                break;
            }
        }
        close(&to);
    });
}
