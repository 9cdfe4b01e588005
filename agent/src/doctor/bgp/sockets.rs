//! The speaker's own TCP sockets, read from `/proc/net/tcp` (this network
//! namespace's): a socket in SYN_SENT to peer:179 is the speaker's SYN
//! going unanswered right now — first-hand "filtered" evidence that costs
//! the peer nothing, where a probe connection would be taken by the
//! peer's speaker as a BGP connection and reset its session set-up.

use std::net::{Ipv4Addr, SocketAddrV4};

/// `/proc/net/tcp`'s state code for SYN_SENT.
const SYN_SENT: u8 = 0x02;

/// Remote ends of the sockets in SYN_SENT.
pub fn syn_sent() -> Vec<SocketAddrV4> {
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| parse(&t, SYN_SENT))
        .unwrap_or_default()
}

/// `0B011FAC:00B3` → 172.31.1.11:179 (the address is the kernel's u32 in
/// host order, little-endian here; the port is plain hex).
fn addr(field: &str) -> Option<SocketAddrV4> {
    let (a, p) = field.split_once(':')?;
    let a = u32::from_str_radix(a, 16).ok()?;
    let p = u16::from_str_radix(p, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(a.to_le_bytes()), p))
}

/// The remote addresses of the sockets in `state`.
pub fn parse(text: &str, state: u8) -> Vec<SocketAddrV4> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let st = u8::from_str_radix(f.get(3)?, 16).ok()?;
            (st == state).then(|| addr(f.get(2)?)).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_sent_sockets_are_read_with_their_remote_end() {
        let t = "  sl  local_address rem_address   st tx_queue\n\
           0: 00000000:00B3 00000000:0000 0A 00000000:00000000\n\
           1: 0C011FAC:8A97 0B011FAC:00B3 02 00000000:00000000\n\
           2: 0C011FAC:8A98 0D011FAC:00B3 01 00000000:00000000\n";
        assert_eq!(parse(t, SYN_SENT), ["172.31.1.11:179".parse().unwrap()]);
        assert!(parse("header only\n", SYN_SENT).is_empty());
    }
}
