//! The syscalls on a core's hot path (receive, send, epoll), made with `syscall(2)` rather than
//! through glibc's wrappers. Those wrappers are thread cancellation points: every call entered
//! and left asynchronous cancellation, about 2 % of herd's CPU in run B of
//! `benches/efficiency.sh` (`__pthread_enable_asynccancel` and its pair in `perf report`).
//! herd never cancels threads. The generic syscalls (`epoll_pwait`, `recvfrom`, `sendto`) exist
//! on every Linux architecture.
//!
//! Also the few fd helpers a core's wake-ups share: eventfds (the inbox, the bells), their
//! 8-byte counts (and a timerfd's), timeouts as `timespec`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn check(r: libc::c_long) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `recvmsg(fd, msg, flags)`.
pub fn recvmsg(fd: RawFd, msg: &mut libc::msghdr, flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: the caller's msghdr describes live buffers.
    check(unsafe { libc::syscall(libc::SYS_recvmsg, fd, msg as *mut libc::msghdr, flags) })
}

/// `recv(fd, buf, flags)`.
pub fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    let none = std::ptr::null_mut::<libc::sockaddr>();
    // SAFETY: buf is valid for its length; no source address is asked for.
    check(unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf.as_mut_ptr(), buf.len(), flags, none, 0usize) })
}

/// `send(fd, buf, flags)`.
pub fn send(fd: RawFd, buf: &[u8], flags: libc::c_int) -> io::Result<usize> {
    let none = std::ptr::null::<libc::sockaddr>();
    // SAFETY: buf is valid for its length; no destination address.
    check(unsafe { libc::syscall(libc::SYS_sendto, fd, buf.as_ptr(), buf.len(), flags, none, 0usize) })
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's count, which wakes whoever watches it. EAGAIN (count full) still
/// leaves it readable.
pub fn ring(fd: RawFd) {
    let one = 1u64;
    // SAFETY: an 8-byte write from a live u64.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Takes the 8-byte count of a non-blocking eventfd or timerfd: whether there was one.
pub fn take_count(fd: RawFd) -> bool {
    let mut n = 0u64;
    // SAFETY: an 8-byte read into a live u64.
    unsafe { libc::read(fd, (&mut n as *mut u64).cast(), 8) == 8 }
}

/// `ns` nanoseconds as a `timespec`.
pub fn timespec(ns: u64) -> libc::timespec {
    libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as _ }
}

/// Takes the ready events of `epfd` into `events` without waiting.
pub fn epoll_poll(epfd: RawFd, events: &mut [libc::epoll_event]) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as libc::c_int;
    let no_mask = std::ptr::null::<libc::sigset_t>();
    // SAFETY: events is valid for `max` entries; a null mask leaves the signal mask alone.
    check(unsafe { libc::syscall(libc::SYS_epoll_pwait, epfd, events.as_mut_ptr(), max, 0, no_mask, 0usize) })
}

/// Waits up to `ns` for events of `epfd` (`epoll_pwait2`, Linux 5.11: a timeout finer than
/// milliseconds). `ENOSYS` on older kernels.
pub fn epoll_wait_ns(epfd: RawFd, events: &mut [libc::epoll_event], ns: u64) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as libc::c_int;
    let ts = timespec(ns);
    let no_mask = std::ptr::null::<libc::sigset_t>();
    // SAFETY: events is valid for `max` entries, ts lives across the call, null mask as above.
    check(unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait2,
            epfd,
            events.as_mut_ptr(),
            max,
            &ts as *const libc::timespec,
            no_mask,
            0usize,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn send_recv_and_epoll_work_through_raw_syscalls() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(send(a.as_raw_fd(), b"hi", libc::MSG_NOSIGNAL).unwrap(), 2);
        // SAFETY: plain epoll calls on fds this test owns.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 7 };
        assert_eq!(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, b.as_raw_fd(), &mut ev) }, 0);
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        assert_eq!(epoll_poll(ep, &mut evs).unwrap(), 1);
        assert_eq!({ evs[0].u64 }, 7);
        let mut buf = [0u8; 8];
        assert_eq!(recv(b.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        let e = recv(b.as_raw_fd(), &mut buf, libc::MSG_DONTWAIT).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        // Nothing ready: the timed wait returns empty after its timeout (or ENOSYS before 5.11).
        match epoll_wait_ns(ep, &mut evs, 1_000_000) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ENOSYS)),
        }
        // SAFETY: closing the epoll fd made above.
        unsafe { libc::close(ep) };
    }

    #[test]
    fn an_eventfd_counts_rings_until_taken() {
        let e = eventfd().unwrap();
        assert!(!take_count(e.as_raw_fd()));
        ring(e.as_raw_fd());
        ring(e.as_raw_fd());
        assert!(take_count(e.as_raw_fd()));
        assert!(!take_count(e.as_raw_fd()), "one read takes every ring");
        let t = timespec(2_500_000_001);
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 500_000_001));
    }
}
