//! Names Calico derives from a SHA-1 of a name, reproduced bit for bit
//! because other nodes and tools compute the same values independently:
//! the pod's host-side veth (`cali` + 11 hex digits of SHA-1("<ns>.<pod>"),
//! Calico's CNI plugin) and a node's VTEP MAC (`'f'` then the first five
//! bytes of SHA-1(node name), felix/calc/vxlan_resolver.go). SHA-1 is a name
//! hash here, not a security boundary; a 50-line implementation spares the
//! workspace a dependency.

/// Longest Linux interface name (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// `aa:bb:cc:dd:ee:ff`, as `ip link` prints a MAC.
pub fn fmt_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `cali` + 11 hex digits: Calico's veth name for the pod.
pub fn host_veth_name(namespace: &str, pod: &str) -> String {
    let digest = sha1(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

/// Felix's derived MAC for a node's IPv4 VTEP, used when the Node resource
/// does not carry one.
pub fn vtep_mac(node_name: &str) -> [u8; 6] {
    let h = sha1(node_name.as_bytes());
    [b'f', h[0], h[1], h[2], h[3], h[4]]
}

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

    fn hex(d: [u8; 20]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Two blocks: the padding spills into a second one.
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn host_name_is_calico_derivation() {
        // printf 'default.nginx' | sha1sum → c440f455693b69cd...
        let name = host_veth_name("default", "nginx");
        assert_eq!(name, "calic440f455693");
        assert_eq!(name.len(), IFNAME_MAX);
    }

    #[test]
    fn vtep_mac_is_f_then_five_hash_bytes() {
        // sha1("abc") = a9993e3647...
        assert_eq!(vtep_mac("abc"), [0x66, 0xa9, 0x99, 0x3e, 0x36, 0x47]);
    }
}
