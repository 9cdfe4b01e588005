//! VTEP MAC addresses as Felix derives them (felix/calc/vxlan_resolver.go):
//! `Node.spec.vxlanTunnelMACAddr` if set, else the byte `'f'` (0x66)
//! followed by the first five bytes of SHA-1 of the node name. Every node
//! computes every other node's MAC the same way, so they agree without
//! asking each other.

/// Felix's derived MAC for `node_name` (IPv4 VTEP).
pub fn derived_mac(node_name: &str) -> [u8; 6] {
    let h = sha1(node_name.as_bytes());
    [b'f', h[0], h[1], h[2], h[3], h[4]]
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), as Go's net.ParseMAC accepts for
/// 6-byte addresses.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// The MAC a node's VTEP uses: its stored one if valid, else Felix's
/// derivation.
pub fn node_mac(node_name: &str, stored: Option<&str>) -> [u8; 6] {
    stored
        .and_then(parse_mac)
        .unwrap_or_else(|| derived_mac(node_name))
}

/// SHA-1 (FIPS 180-4). Only for the MAC derivation above: a name hash, not
/// a security boundary, so a dependency is not worth it.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn mac_is_f_then_five_hash_bytes() {
        // sha1("abc") = a9993e3647...
        assert_eq!(derived_mac("abc"), [0x66, 0xa9, 0x99, 0x3e, 0x36, 0x47]);
        assert_eq!(format_mac(&derived_mac("abc")), "66:a9:99:3e:36:47");
    }

    #[test]
    fn stored_mac_wins_and_bad_ones_fall_back() {
        assert_eq!(
            node_mac("abc", Some("02:00:00:00:00:01")),
            [2, 0, 0, 0, 0, 1]
        );
        assert_eq!(node_mac("abc", Some("nonsense")), derived_mac("abc"));
        assert_eq!(parse_mac("02-00-00-00-00-0A"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
    }
}
