//! Writing a log line's values: addresses, times and JSON strings, each
//! appended to the line in place. A line has two dozen values, so each is
//! written with one append where it can be (`Display` through `fmt` costs
//! several times as much).

use std::cell::RefCell;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// Each octet's decimal digits, and how many there are.
static OCTETS: [([u8; 3], u8); 256] = {
    let mut t = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        let (h, te, o) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        t[n] = match n {
            0..10 => ([b'0' + o, 0, 0], 1),
            10..100 => ([b'0' + te, b'0' + o, 0], 2),
            _ => ([b'0' + h, b'0' + te, b'0' + o], 3),
        };
        n += 1;
    }
    t
};

/// An IPv4 address by its octets' digits, a character at a time (safe
/// code cannot append bytes to a `String` without checking them again).
fn push_v4(ip: std::net::Ipv4Addr, out: &mut String) {
    out.reserve(15);
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let (digits, len) = &OCTETS[usize::from(o)];
        for d in &digits[..usize::from(*len)] {
            out.push(char::from(*d));
        }
    }
}

pub(super) fn push_ip(ip: IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(v4) => push_v4(v4, out),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `a` as `Display` writes it. A line has three addresses, most
/// of them the same from one request to the next (a connection's two ends,
/// a pooled upstream): each thread keeps the last few written, by port.
pub(super) fn push_addr(a: SocketAddr, out: &mut String) {
    thread_local! {
        static WRITTEN: RefCell<[(Option<SocketAddr>, String); 8]> = RefCell::new(Default::default());
    }
    WRITTEN.with_borrow_mut(|written| {
        let (at, text) = &mut written[usize::from(a.port()) % 8];
        if *at != Some(a) {
            text.clear();
            write_addr(a, text);
            *at = Some(a);
        }
        out.push_str(text);
    });
}

fn write_addr(a: SocketAddr, out: &mut String) {
    match a {
        SocketAddr::V4(v4) => {
            push_v4(*v4.ip(), out);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(v4.port()));
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// `s` as a JSON string (RFC 8259: quote, backslash and control
/// characters escaped), written in place. Most values have nothing to
/// escape: they are checked eight bytes at a time and appended whole.
pub(super) fn json_string(s: &str, out: &mut String) {
    out.push('"');
    if needs_escape(s.as_bytes()) {
        escaped(s, out);
    } else {
        out.push_str(s);
    }
    out.push('"');
}

/// Whether `b` holds a quote, a backslash or a byte below a space: eight
/// bytes at a time, the last eight overlapping those before when the
/// length is not a multiple of eight.
fn needs_escape(b: &[u8]) -> bool {
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or_default());
    if b.len() < 8 {
        return b.iter().any(|&c| c == b'"' || c == b'\\' || c < b' ');
    }
    let mut chunks = b.chunks_exact(8);
    if chunks.any(|c| may_need_escape(word(c))) {
        return true;
    }
    !chunks.remainder().is_empty() && may_need_escape(word(&b[b.len() - 8..]))
}

/// Whether one of the eight bytes of `w` is a quote, a backslash or below
/// a space (exact: the subtraction's borrows only blur which byte).
fn may_need_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    (below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1)) != 0
}

/// The slow path: byte by byte. Every byte to escape is ASCII, never
/// inside a multi-byte character, so runs between them are copied whole.
fn escaped(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, c) in s.bytes().enumerate() {
        if c == b'"' || c == b'\\' || c < b' ' {
            out.push_str(&s[start..i]);
            match c {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                c => {
                    let _ = write!(out, "\\u{:04x}", c);
                }
            }
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
}

/// `2026-12-04T23:39:11.123Z`: Envoy's default START_TIME. The date and
/// time to the second are made once a second per thread (Envoy caches them
/// too); the milliseconds are added each time.
pub(super) fn start_time(t: std::time::SystemTime, out: &mut String) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = t.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
    let ms = since.subsec_millis();
    SECOND.with_borrow_mut(|(secs, text)| {
        if *secs != since.as_secs() {
            let d = time::OffsetDateTime::from(t);
            text.clear();
            let (y, mo, day, h, mi, s) = (d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second());
            let _ = write!(text, "{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}");
            *secs = since.as_secs();
        }
        out.push_str(text);
    });
    out.push('.');
    out.push(char::from(b'0' + (ms / 100) as u8));
    out.push(char::from(b'0' + (ms / 10 % 10) as u8));
    out.push(char::from(b'0' + (ms % 10) as u8));
    out.push('Z');
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_escape_what_json_requires_and_read_back_the_same() {
        let long = "a long value with \"quotes\" here, a \\ there, a\ttab and ünïcødé after sixteen bytes\n";
        let cases = [
            "plain",
            "a \"quoted\" \\ path",
            "tab\tnew\nline\r",
            "bell\u{7} nul\u{0}",
            "ünïcødé ✓",
            "",
            long,
            // The one byte to escape in the overlapping last word, or alone.
            "exactly8",
            "ninebyte\"",
            "fifteen bytes \\",
            "\"",
        ];
        for s in cases {
            let mut out = String::new();
            super::json_string(s, &mut out);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
            let plain = !s.bytes().any(|c| c == b'"' || c == b'\\' || c < b' ');
            assert_eq!(super::needs_escape(s.as_bytes()), !plain, "{s:?}");
        }
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        for a in ["127.0.0.1:80", "10.255.0.9:65535", "0.0.0.0:0", "192.168.100.10:8080", "[::1]:8080", "[fe80::1%2]:1"]
        {
            let a: std::net::SocketAddr = a.parse().unwrap();
            let (mut out, mut ip) = (String::new(), String::new());
            super::push_addr(a, &mut out);
            super::push_ip(a.ip(), &mut ip);
            assert_eq!((&out, ip), (&a.to_string(), a.ip().to_string()));
            // Again, from the thread's cache; and another address of that port.
            let other = std::net::SocketAddr::new([10, 0, 0, 1].into(), a.port());
            super::push_addr(a, &mut out);
            super::push_addr(other, &mut out);
            assert_eq!(out, format!("{a}{a}{other}"));
        }
    }

    #[test]
    fn start_times_have_milliseconds_and_follow_the_second() {
        let at = |ms: u64| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        let mut out = String::new();
        super::start_time(at(1_780_000_000_007), &mut out);
        out.push(' ');
        super::start_time(at(1_780_000_001_999), &mut out);
        assert_eq!(out, "2026-05-28T20:26:40.007Z 2026-05-28T20:26:41.999Z");
    }
}
