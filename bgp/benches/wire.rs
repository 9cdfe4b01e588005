//! Wire codec throughput against zettabgp 0.6.0 measured in the same run:
//! decoding and encoding full (4096-octet) UPDATEs of /24s, the shape a
//! route feeder sends. Prints prefixes per second and Tabby/zettabgp time
//! ratios (below 1 means Tabby is faster). `cargo bench -p tabby-bgp --bench wire`

use ipnet::{IpNet, Ipv4Net};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tabby_bgp::wire::{self, AsSegment, Message, Origin, PathAttributes, SessionContext};
use zettabgp::prelude as z;
use zettabgp::BgpMessage as _;

const PREFIXES: u32 = 100_000;
const ROUNDS: usize = 7;

/// Best of several rounds: the least disturbed by the other work on the box.
fn best(mut f: impl FnMut()) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn split(mut buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let Ok(Some(len)) = wire::message_len(buf) {
        out.push(&buf[..len]);
        buf = &buf[len..];
    }
    out
}

fn row(name: &str, t: Duration, reference: Option<Duration>) {
    let rate = f64::from(PREFIXES) / t.as_secs_f64() / 1e6;
    match reference {
        Some(r) => println!(
            "{name:<34} {:>9.2} ms {rate:>8.1} M prefixes/s  ratio {:.2}",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() / r.as_secs_f64()
        ),
        None => println!(
            "{name:<34} {:>9.2} ms {rate:>8.1} M prefixes/s",
            t.as_secs_f64() * 1e3
        ),
    }
}

fn main() {
    let ctx = SessionContext::default();
    let prefixes: Vec<IpNet> = (0..PREFIXES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap()))
        .collect();
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: vec![AsSegment::Sequence(vec![64512, 65001, 65002])],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(10),
        communities: vec![0xfc00_0001, 0xfc00_0002],
        ..Default::default()
    };
    let mut packed = Vec::with_capacity(1 << 20);
    let n = wire::encode_announce(&attrs, &prefixes, &ctx, &mut packed).unwrap();
    let msgs = split(&packed);
    assert_eq!(msgs.len(), n);
    println!(
        "{PREFIXES} IPv4 /24s with shared attributes in {n} UPDATEs ({} octets)",
        packed.len()
    );

    let mut zp = z::BgpSessionParams::new(
        64512,
        90,
        z::BgpTransportMode::IPv4,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![],
    );
    zp.fuzzy_pathid = false;

    // Decoding.
    let t_z = best(|| {
        let mut count = 0;
        for m in &msgs {
            let mut u = z::BgpUpdateMessage::new();
            u.decode_from(&zp, &m[19..]).unwrap();
            if let z::BgpAddrs::IPV4U(v) = &u.updates {
                count += v.len();
            }
        }
        assert_eq!(count, PREFIXES as usize);
        black_box(count);
    });
    let t_tabby = best(|| {
        let mut count = 0;
        for m in &msgs {
            if let Message::Update(u) = wire::decode(m, &ctx).unwrap() {
                count += u.nlri.len();
            }
        }
        assert_eq!(count, PREFIXES as usize);
        black_box(count);
    });
    let t_iter = best(|| {
        let mut count = 0;
        for m in &msgs {
            let f = wire::update::split_update(&m[19..]).unwrap();
            count += wire::nlri::iter_v4(f.nlri).filter(|p| p.is_ok()).count();
        }
        assert_eq!(count, PREFIXES as usize);
        black_box(count);
    });
    println!("\ndecode");
    row("zettabgp BgpUpdateMessage", t_z, None);
    row("tabby wire::decode", t_tabby, Some(t_z));
    row("tabby split_update + nlri::iter_v4", t_iter, Some(t_z));

    // Encoding the same messages.
    let ours: Vec<Message> = msgs
        .iter()
        .map(|m| wire::decode(m, &ctx).unwrap())
        .collect();
    let theirs: Vec<z::BgpUpdateMessage> = msgs
        .iter()
        .map(|m| {
            let mut u = z::BgpUpdateMessage::new();
            u.decode_from(&zp, &m[19..]).unwrap();
            u
        })
        .collect();
    let mut buf = vec![0u8; 65536];
    let t_ze = best(|| {
        for u in &theirs {
            black_box(u.encode_to(&zp, &mut buf).unwrap());
        }
    });
    let mut out = Vec::with_capacity(1 << 20);
    let t_te = best(|| {
        out.clear();
        for m in &ours {
            wire::encode(m, &ctx, &mut out).unwrap();
        }
        black_box(out.len());
    });
    let t_pack = best(|| {
        out.clear();
        black_box(wire::encode_announce(&attrs, &prefixes, &ctx, &mut out).unwrap());
    });
    println!("\nencode");
    row("zettabgp encode_to (per message)", t_ze, None);
    row("tabby wire::encode (per message)", t_te, Some(t_ze));
    row("tabby encode_announce (packer)", t_pack, Some(t_ze));
}
