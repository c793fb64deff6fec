//! ARP requests and IPv6 neighbor solicitations, built byte by byte (pure, unit-tested).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::core::rules::Mac;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

fn ethernet(dst: [u8; 6], src: Mac, ethertype: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// A broadcast ARP "who-has `target` tell `src_ip`".
pub fn arp_request(src_mac: Mac, src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(42);
    ethernet([0xff; 6], src_mac, ETH_P_ARP, &mut p);
    p.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p.push(6);
    p.push(4);
    p.extend_from_slice(&1u16.to_be_bytes()); // op: request
    p.extend_from_slice(&src_mac.0);
    p.extend_from_slice(&src_ip.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target.octets());
    p
}

/// The solicited-node multicast address of `target` (ff02::1:ffXX:XXXX).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    )
}

fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A neighbor solicitation for `target` from `src_ip`, to its solicited-node group, with the
/// source link-layer address option.
pub fn neighbor_solicitation(src_mac: Mac, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let g = group.octets();
    let mut icmp = Vec::with_capacity(32);
    icmp.push(135); // type: neighbor solicitation
    icmp.push(0);
    icmp.extend_from_slice(&[0, 0]); // checksum, below
    icmp.extend_from_slice(&[0; 4]); // reserved
    icmp.extend_from_slice(&target.octets());
    icmp.push(1); // option: source link-layer address
    icmp.push(1); // length in units of 8 bytes
    icmp.extend_from_slice(&src_mac.0);
    // Pseudo-header: source, destination, upper-layer length, next header.
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src_ip.octets());
    pseudo.extend_from_slice(&g);
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let mut sum = 0u32;
    for c in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    let ck = checksum(&icmp, sum);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());

    let mut p = Vec::with_capacity(14 + 40 + icmp.len());
    ethernet(
        [0x33, 0x33, g[12], g[13], g[14], g[15]],
        src_mac,
        ETH_P_IPV6,
        &mut p,
    );
    p.extend_from_slice(&[0x60, 0, 0, 0]); // version 6
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.push(58); // next header: ICMPv6
    p.push(255); // hop limit: NDP requires 255
    p.extend_from_slice(&src_ip.octets());
    p.extend_from_slice(&g);
    p.extend_from_slice(&icmp);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

    #[test]
    fn arp_request_layout() {
        let p = arp_request(
            MAC,
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        );
        assert_eq!(p.len(), 42);
        assert_eq!(&p[0..6], &[0xff; 6]);
        assert_eq!(&p[12..14], &[0x08, 0x06]);
        assert_eq!(&p[20..22], &[0, 1]);
        assert_eq!(&p[28..32], &[10, 0, 0, 1]);
        assert_eq!(&p[38..42], &[10, 0, 0, 2]);
    }

    #[test]
    fn neighbor_solicitation_layout_and_checksum() {
        let target: Ipv6Addr = "2000::1234:5678".parse().unwrap();
        assert_eq!(
            solicited_node(target),
            "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap()
        );
        let src: Ipv6Addr = "2000::1".parse().unwrap();
        let p = neighbor_solicitation(MAC, src, target);
        assert_eq!(&p[0..6], &[0x33, 0x33, 0xff, 0x34, 0x56, 0x78]);
        assert_eq!(p[14 + 6], 58);
        assert_eq!(p[14 + 7], 255);
        let icmp = &p[54..];
        assert_eq!(icmp.len(), 32);
        assert_eq!(icmp[0], 135);
        // Verifying: the checksum over pseudo-header + message (checksum included) is zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&solicited_node(target).octets());
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(checksum(&pseudo, 0), 0);
    }
}
