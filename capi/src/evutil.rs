//! The `evutil_*` helpers libevent programs call: sockets, time, strings.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;
use std::ptr;

use evloop::backend::sys::Clock;

ffi! {
    /// `evutil_socketpair`: `socketpair(2)`.
    fn evutil_socketpair(family: c_int, ty: c_int, protocol: c_int, fds: *mut c_int) -> c_int {
        nonnull!(fds, -1);
        // SAFETY: `fds` points at two writable ints (libevent's contract).
        unsafe { libc::socketpair(family, ty, protocol, fds) }
    }
}

ffi! {
    /// `evutil_make_socket_nonblocking`: sets `O_NONBLOCK`. 0 or -1.
    fn evutil_make_socket_nonblocking(fd: c_int) -> c_int {
        // SAFETY: fcntl on a descriptor number; no pointers.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL, 0) };
        if flags < 0 {
            return -1;
        }
        if flags & libc::O_NONBLOCK == 0 {
            // SAFETY: as above.
            if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
                return -1;
            }
        }
        0
    }
}

ffi! {
    /// `evutil_make_socket_closeonexec`: sets `FD_CLOEXEC`. 0 or -1.
    fn evutil_make_socket_closeonexec(fd: c_int) -> c_int {
        // SAFETY: fcntl on a descriptor number; no pointers.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD, 0) };
        if flags < 0 {
            return -1;
        }
        if flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: as above.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } == -1 {
                return -1;
            }
        }
        0
    }
}

fn setsockopt_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    let one: c_int = 1;
    // SAFETY: `one` is a readable int of the length given.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::addr_of!(one).cast(),
            std::mem::size_of::<c_int>() as libc::socklen_t,
        )
    }
}

ffi! {
    /// `evutil_make_listen_socket_reuseable`: `SO_REUSEADDR`.
    fn evutil_make_listen_socket_reuseable(fd: c_int) -> c_int {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR)
    }
}

ffi! {
    /// `evutil_make_listen_socket_reuseable_port`: `SO_REUSEPORT`.
    fn evutil_make_listen_socket_reuseable_port(fd: c_int) -> c_int {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT)
    }
}

ffi! {
    /// `evutil_make_listen_socket_ipv6only`: `IPV6_V6ONLY`.
    fn evutil_make_listen_socket_ipv6only(fd: c_int) -> c_int {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)
    }
}

ffi! {
    /// `evutil_make_tcp_listen_socket_deferred`: `TCP_DEFER_ACCEPT`.
    fn evutil_make_tcp_listen_socket_deferred(fd: c_int) -> c_int {
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT)
    }
}

ffi! {
    /// `evutil_closesocket`: `close(2)`.
    fn evutil_closesocket(fd: c_int) -> c_int {
        // SAFETY: close on a descriptor number the caller owns.
        unsafe { libc::close(fd) }
    }
}

ffi! {
    /// `evutil_strtoll`: `strtoll(3)` in base 10.
    fn evutil_strtoll(s: *const c_char, endptr: *mut *mut c_char, base: c_int) -> i64 {
        nonnull!(s, 0);
        // SAFETY: `s` is a NUL-terminated string; `endptr` NULL or writable.
        unsafe { libc::strtoll(s, endptr, base) }
    }
}

ffi! {
    /// `evutil_vsnprintf`: `vsnprintf(3)` that always NUL-terminates (x86-64: a `va_list` is
    /// passed as a pointer).
    fn evutil_vsnprintf(buf: *mut c_char, buflen: usize, fmt: *const c_char, ap: *mut c_void) -> c_int {
        extern "C" {
            fn vsnprintf(s: *mut c_char, n: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
        }
        if buflen == 0 {
            return 0;
        }
        nonnull!(buf, -1);
        nonnull!(fmt, -1);
        // SAFETY: `buf` is writable for `buflen` bytes; `fmt` and `ap` come from the caller.
        let r = unsafe { vsnprintf(buf, buflen, fmt, ap) };
        // SAFETY: `buflen - 1` is inside `buf`.
        unsafe { *buf.add(buflen - 1) = 0 };
        r
    }
}

ffi! {
    /// `evutil_ascii_strcasecmp`.
    fn evutil_ascii_strcasecmp(a: *const c_char, b: *const c_char) -> c_int {
        // SAFETY: NUL-terminated strings (libevent's contract).
        unsafe { libc::strcasecmp(a, b) }
    }
}

ffi! {
    /// `evutil_ascii_strncasecmp`.
    fn evutil_ascii_strncasecmp(a: *const c_char, b: *const c_char, n: usize) -> c_int {
        // SAFETY: NUL-terminated strings (libevent's contract).
        unsafe { libc::strncasecmp(a, b, n) }
    }
}

ffi! {
    /// `evutil_inet_ntop`: `inet_ntop(3)`.
    fn evutil_inet_ntop(af: c_int, src: *const c_void, dst: *mut c_char, len: usize) -> *const c_char {
        extern "C" {
            fn inet_ntop(af: c_int, src: *const c_void, dst: *mut c_char, size: u32) -> *const c_char;
        }
        // SAFETY: the caller's buffers, as inet_ntop documents them.
        unsafe { inet_ntop(af, src, dst, len as u32) }
    }
}

ffi! {
    /// `evutil_inet_pton`: `inet_pton(3)`.
    fn evutil_inet_pton(af: c_int, src: *const c_char, dst: *mut c_void) -> c_int {
        extern "C" {
            fn inet_pton(af: c_int, src: *const c_char, dst: *mut c_void) -> c_int;
        }
        // SAFETY: the caller's buffers, as inet_pton documents them.
        unsafe { inet_pton(af, src, dst) }
    }
}

/// A `SocketAddr` as a C `sockaddr` of `*len` bytes at most; the length used.
///
/// # Safety
/// `out` is writable for `cap` bytes.
pub(crate) unsafe fn write_sockaddr(a: &SocketAddr, out: *mut libc::sockaddr, cap: usize) -> usize {
    // SAFETY: sockaddr_storage is plain old data; zero is valid.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough for a sockaddr_in.
            unsafe { ptr::write(ptr::addr_of_mut!(st).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is large enough for a sockaddr_in6.
            unsafe { ptr::write(ptr::addr_of_mut!(st).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    let n = len.min(cap);
    // SAFETY: `out` is writable for `cap` ≥ `n` bytes; `st` readable for `len` ≥ `n`.
    unsafe { ptr::copy_nonoverlapping(ptr::addr_of!(st).cast::<u8>(), out.cast::<u8>(), n) };
    len
}

/// A C `sockaddr` of `len` bytes as a `SocketAddr` (IPv4 and IPv6 only).
///
/// # Safety
/// `sa` is readable for `len` bytes.
pub(crate) unsafe fn read_sockaddr(sa: *const libc::sockaddr, len: c_int) -> Option<SocketAddr> {
    if sa.is_null() || len < 2 {
        return None;
    }
    // SAFETY: at least the family field is readable.
    let family = unsafe { (*sa).sa_family } as c_int;
    if family == libc::AF_INET && len as usize >= std::mem::size_of::<libc::sockaddr_in>() {
        // SAFETY: readable as a sockaddr_in (length checked).
        let sin = unsafe { ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
        let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
        return Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))));
    }
    if family == libc::AF_INET6 && len as usize >= std::mem::size_of::<libc::sockaddr_in6>() {
        // SAFETY: readable as a sockaddr_in6 (length checked).
        let s6 = unsafe { ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>()) };
        let ip = std::net::Ipv6Addr::from(s6.sin6_addr.s6_addr);
        return Some(SocketAddr::V6(std::net::SocketAddrV6::new(
            ip,
            u16::from_be(s6.sin6_port),
            s6.sin6_flowinfo,
            s6.sin6_scope_id,
        )));
    }
    None
}

ffi! {
    /// `evutil_parse_sockaddr_port`: `"1.2.3.4:80"`, `"1.2.3.4"`, `"[::1]:80"`, `"::1"` into
    /// `out` (at most `*outlen` bytes; `*outlen` becomes the length). 0 or -1.
    fn evutil_parse_sockaddr_port(s: *const c_char, out: *mut libc::sockaddr, outlen: *mut c_int) -> c_int {
        nonnull!(s, -1);
        nonnull!(out, -1);
        nonnull!(outlen, -1);
        // SAFETY: `s` is a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
        let addr: Option<SocketAddr> = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
            .or_else(|| {
                let t = text.strip_prefix('[')?.strip_suffix(']')?;
                t.parse::<std::net::Ipv6Addr>().ok().map(|ip| SocketAddr::new(ip.into(), 0))
            });
        let Some(a) = addr else {
            return -1;
        };
        // SAFETY: `outlen` is readable and writable.
        let cap = unsafe { *outlen }.max(0) as usize;
        // SAFETY: `out` is writable for `cap` bytes.
        let len = unsafe { write_sockaddr(&a, out, cap) };
        if len > cap {
            return -1;
        }
        // SAFETY: as above.
        unsafe { *outlen = len as c_int };
        0
    }
}

ffi! {
    /// `evutil_sockaddr_cmp`: orders two IPv4/IPv6 addresses (ports too unless
    /// `include_port` is 0).
    fn evutil_sockaddr_cmp(a: *const libc::sockaddr, b: *const libc::sockaddr, include_port: c_int) -> c_int {
        let sz = std::mem::size_of::<libc::sockaddr_in6>() as c_int;
        // SAFETY: libevent's contract: both point at whole addresses of their family.
        let (x, y) = unsafe {
            let la = if !a.is_null() && (*a).sa_family as c_int == libc::AF_INET {
                std::mem::size_of::<libc::sockaddr_in>() as c_int
            } else {
                sz
            };
            let lb = if !b.is_null() && (*b).sa_family as c_int == libc::AF_INET {
                std::mem::size_of::<libc::sockaddr_in>() as c_int
            } else {
                sz
            };
            (read_sockaddr(a, la), read_sockaddr(b, lb))
        };
        let key = |s: Option<SocketAddr>| {
            s.map(|s| {
                let fam = if s.is_ipv4() { 0 } else { 1 };
                (fam, s.ip(), if include_port != 0 { s.port() } else { 0 })
            })
        };
        match key(x).cmp(&key(y)) {
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
            std::cmp::Ordering::Greater => 1,
        }
    }
}

ffi! {
    /// `evutil_secure_rng_init`: nothing to initialise (the kernel's RNG); 0.
    fn evutil_secure_rng_init() -> c_int {
        0
    }
}

ffi! {
    /// `evutil_secure_rng_get_bytes`: `getrandom(2)` bytes.
    fn evutil_secure_rng_get_bytes(buf: *mut c_void, n: usize) {
        let mut done = 0;
        while done < n {
            // SAFETY: `buf` is writable for `n` bytes.
            let r = unsafe { libc::getrandom(buf.cast::<u8>().add(done).cast(), n - done, 0) };
            if r <= 0 {
                break;
            }
            done += r as usize;
        }
    }
}

ffi! {
    /// `evutil_secure_rng_add_bytes`: ignored (the kernel's RNG needs no seed).
    fn evutil_secure_rng_add_bytes(_buf: *const c_char, _n: usize) {}
}

ffi! {
    /// `evutil_gai_strerror`: `gai_strerror(3)`.
    fn evutil_gai_strerror(err: c_int) -> *const c_char {
        // SAFETY: gai_strerror returns a static string.
        unsafe { libc::gai_strerror(err) }
    }
}

/// `evutil_monotonic_timer`: the clock it reads.
pub struct MonotonicTimer {
    clock: Clock,
}

/// `EV_MONOT_PRECISE` and `EV_MONOT_FALLBACK` (`event2/util.h`).
const EV_MONOT_PRECISE: c_int = 1;
const EV_MONOT_FALLBACK: c_int = 2;

ffi! {
    /// `evutil_monotonic_timer_new`: reads the default clock until configured.
    fn evutil_monotonic_timer_new() -> *mut MonotonicTimer {
        Box::into_raw(Box::new(MonotonicTimer {
            clock: Clock::default(),
        }))
    }
}

ffi! {
    /// `evutil_monotonic_timer_free`.
    fn evutil_monotonic_timer_free(t: *mut MonotonicTimer) {
        if !t.is_null() {
            // SAFETY: `t` came from evutil_monotonic_timer_new.
            drop(unsafe { Box::from_raw(t) });
        }
    }
}

ffi! {
    /// `evutil_configure_monotonic_time`: libevent's choice of clock, as a base makes it
    /// ([`Clock`]): `CLOCK_MONOTONIC_COARSE` by default, `CLOCK_MONOTONIC` with
    /// `EV_MONOT_PRECISE`. `EV_MONOT_FALLBACK` (libevent: `gettimeofday` kept monotonic) also
    /// reads `CLOCK_MONOTONIC`, which every Linux has. Returns 0.
    fn evutil_configure_monotonic_time(t: *mut MonotonicTimer, flags: c_int) -> c_int {
        nonnull!(t, -1);
        let clock = if flags & (EV_MONOT_PRECISE | EV_MONOT_FALLBACK) != 0 {
            Clock::PRECISE
        } else {
            Clock::default()
        };
        // SAFETY: `t` came from evutil_monotonic_timer_new and is not aliased during the call.
        unsafe { (*t).clock = clock };
        0
    }
}

ffi! {
    /// `evutil_gettime_monotonic`: the timer's clock as a timeval.
    fn evutil_gettime_monotonic(t: *mut MonotonicTimer, tv: *mut libc::timeval) -> c_int {
        nonnull!(t, -1);
        nonnull!(tv, -1);
        // SAFETY: `t` came from evutil_monotonic_timer_new.
        let now = unsafe { (*t).clock }.now();
        // SAFETY: `tv` is writable.
        unsafe { *tv = crate::base::wall_tv(now, 0) };
        0
    }
}

ffi! {
    /// `evutil_getaddrinfo`: `getaddrinfo(3)` (on Linux `struct evutil_addrinfo` is
    /// `struct addrinfo` and the `EVUTIL_EAI_*` codes are the `EAI_*` codes).
    fn evutil_getaddrinfo(
        node: *const c_char,
        service: *const c_char,
        hints: *const libc::addrinfo,
        res: *mut *mut libc::addrinfo,
    ) -> c_int {
        nonnull!(res, libc::EAI_FAIL);
        // SAFETY: the caller's strings and structures, as getaddrinfo documents them.
        unsafe { libc::getaddrinfo(node, service, hints, res) }
    }
}

ffi! {
    /// `evutil_freeaddrinfo`: `freeaddrinfo(3)`.
    fn evutil_freeaddrinfo(ai: *mut libc::addrinfo) {
        if !ai.is_null() {
            // SAFETY: `ai` came from evutil_getaddrinfo.
            unsafe { libc::freeaddrinfo(ai) };
        }
    }
}
