//! Workaround for sqlx 0.9.0, which opens Postgres TCP connections without
//! `TCP_NODELAY` (sqlx issue #4335; fixed upstream by #4336, not released
//! when this was written). With Nagle's algorithm on, the tail of a large
//! statement (a 500-row multi-row insert) waits for the server's delayed ACK,
//! about 40 ms on Linux, on every such statement. Measured on the 2-core
//! bench machine, backfilling 100,000 customers from the loopback fake:
//! 5.0 s over TCP without it, 2.0 s over the Unix socket (same work).
//!
//! sqlx gives no access to its socket, so after each new pool connection
//! this sets `TCP_NODELAY` on the process's TCP sockets whose peer port is
//! the Postgres port (others are left alone; setting it on an unrelated
//! socket to that port would be harmless anyway). Delete this module when
//! sqlx sets the option itself.

/// Set `TCP_NODELAY` on every TCP socket of this process connected to
/// `port`. Returns how many were changed.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn apply(port: u16) -> usize {
    use std::os::fd::{BorrowedFd, RawFd};

    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: the descriptor is only borrowed for three socket option
        // calls. If another thread closed it in between, they fail with
        // EBADF (or touch whatever reused the number, and only if that is
        // a TCP socket to the same port).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let to_pg = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_pg
            && sock.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
            && sock.tcp_nodelay().is_ok_and(|on| !on)
            && sock.set_tcp_nodelay(true).is_ok()
        {
            changed += 1;
        }
    }
    changed
}

/// Elsewhere: nothing (the delay costs time, never correctness).
#[cfg(not(target_os = "linux"))]
pub(crate) fn apply(_port: u16) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn sets_nodelay_only_on_sockets_to_the_port() {
        let pg = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_pg = TcpStream::connect(pg.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_pg.nodelay().unwrap(), "Linux default is Nagle on");
        let changed = super::apply(pg.local_addr().unwrap().port());
        assert!(changed >= 1);
        assert!(
            to_pg.nodelay().unwrap(),
            "the socket to the port was left with Nagle on"
        );
        assert!(
            !to_other.nodelay().unwrap(),
            "a socket to another port was changed"
        );
        assert_eq!(
            super::apply(pg.local_addr().unwrap().port()),
            0,
            "idempotent"
        );
    }
}
