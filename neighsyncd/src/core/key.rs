//! Compact names for a neighbor: interned interface names, the APPL_DB key as a value
//! (`<ifname>:<ip>` without the string), and a link-layer address kept inline.
//!
//! At a million neighbors every byte per neighbor is a megabyte: an interface name is one of a
//! few thousand, so it is stored once and referred to by a 4-byte id; a key is 20 bytes
//! instead of a ~40-byte heap string; a MAC is 8 bytes inline (unaligned) instead of a heap `Vec`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{OnceLock, PoisonError, RwLock};

/// An interned interface name. Names are never freed: there are as many as the interfaces
/// (and APPL_DB keys' first parts) the daemon has ever seen, a bounded set on a switch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(NonZeroU32);

/// Values stored once, for the process's life, and referred to by their position: interface
/// names, and link-layer addresses too long to keep inline.
struct Interner<T: ?Sized + 'static> {
    positions: HashMap<&'static T, u32>,
    values: Vec<&'static T>,
}

impl<T: ?Sized + Eq + std::hash::Hash + 'static> Interner<T> {
    fn new() -> RwLock<Interner<T>> {
        RwLock::new(Interner {
            positions: HashMap::new(),
            values: Vec::new(),
        })
    }

    /// The position of `v` if it was ever interned.
    fn existing(lock: &RwLock<Self>, v: &T) -> Option<u32> {
        let i = lock.read().unwrap_or_else(PoisonError::into_inner);
        i.positions.get(v).copied()
    }

    /// The position of `v`, interning it (as `leak` makes it) if it is new.
    fn intern(lock: &RwLock<Self>, v: &T, leak: impl FnOnce(&T) -> &'static T) -> u32 {
        if let Some(p) = Self::existing(lock, v) {
            return p;
        }
        let mut i = lock.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = i.positions.get(v) {
            return *p;
        }
        let p = u32::try_from(i.values.len()).unwrap_or(u32::MAX);
        let leaked = leak(v);
        i.values.push(leaked);
        i.positions.insert(leaked, p);
        p
    }

    /// The value at position `p`.
    fn get(lock: &RwLock<Self>, p: u32) -> Option<&'static T> {
        let i = lock.read().unwrap_or_else(PoisonError::into_inner);
        i.values.get(p as usize).copied()
    }
}

fn names() -> &'static RwLock<Interner<str>> {
    static NAMES: OnceLock<RwLock<Interner<str>>> = OnceLock::new();
    NAMES.get_or_init(Interner::new)
}

impl IfName {
    /// The id of the name at interner position `p`: ids are `p + 1` (non-zero, so an
    /// `Option<IfName>` is 4 bytes), within NAME_MASK (2^24 names would be 16 million
    /// interfaces): the bits above are the partition's and RAW.
    fn at(p: u32) -> IfName {
        let n = p.saturating_add(1).min(NAME_MASK);
        IfName(NonZeroU32::MIN.saturating_add(n - 1))
    }

    /// The id of `name`, interning it if it is new.
    pub fn new(name: &str) -> IfName {
        IfName::at(Interner::intern(names(), name, |n| Box::leak(n.into())))
    }

    /// The id of `name` if it was ever interned (client input must not grow the table).
    pub fn existing(name: &str) -> Option<IfName> {
        Interner::existing(names(), name).map(IfName::at)
    }

    pub fn as_str(self) -> &'static str {
        let n = self.0.get() & NAME_MASK;
        Interner::get(names(), n.wrapping_sub(1)).unwrap_or("")
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Marks a [`NeighKey`] that is not `<ifname>:<ip>`: its name part holds the key whole.
const RAW: u32 = 1 << 31;
/// The bits of an [`IfName`] id that name it (2^23 names: 8 million interfaces). Above them,
/// in a key: [`V6`], then the key's partition, then RAW.
const NAME_MASK: u32 = (1 << 23) - 1;
/// In a key: the address is IPv6.
const V6: u32 = 1 << 23;
const PART_SHIFT: u32 = 24;
const PART_MASK: u32 = !(NAME_MASK | V6 | RAW);
/// How many partitions (namespaces served by one process) a key can tell apart.
pub const PARTITIONS: usize = 1 << (31 - PART_SHIFT);

/// A `NEIGH_TABLE` key, `<ifname>:<ip>`, as a value. Ordered by interface (in the order
/// names were first seen), then address (IPv4 first).
///
/// 20 bytes, aligned to 4: the name's id, whose spare bits say the partition, RAW and
/// whether the address is IPv6, and the address's 16 bytes (IPv4 in the first 4). An
/// `(IfName, IpAddr)` is 24: the `IpAddr`'s tag is a 17th byte, padded to 4.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighKey {
    id: NonZeroU32,
    addr: [u8; 16],
}

/// An address as 16 bytes (IPv4 in the first 4) and whether it is IPv6.
pub(crate) fn addr_bytes(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, false)
        }
        IpAddr::V6(a) => (a.octets(), true),
    }
}

/// The address `addr_bytes` made.
pub(crate) fn addr_of(b: &[u8; 16], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(std::net::Ipv6Addr::from(*b))
    } else {
        IpAddr::V4(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }
}

impl Ord for NeighKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let order = |k: &NeighKey| (k.id.get() & !V6, k.id.get() & V6, k.addr);
        order(self).cmp(&order(other))
    }
}

impl PartialOrd for NeighKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl NeighKey {
    /// The key of `ip` on the interface `ifname` (in `ifname`'s partition, if it has one).
    pub fn of(ifname: IfName, ip: IpAddr) -> NeighKey {
        let (addr, v6) = addr_bytes(ip);
        NeighKey {
            id: ifname.0 | if v6 { V6 } else { 0 },
            addr,
        }
    }

    pub fn new(ifname: &str, ip: IpAddr) -> NeighKey {
        NeighKey::of(IfName::new(ifname), ip)
    }

    /// The interface (with the key's partition and RAW bits).
    pub fn ifname(&self) -> IfName {
        IfName(NonZeroU32::new(self.id.get() & !V6).unwrap_or(NonZeroU32::MIN))
    }

    pub fn ip(&self) -> IpAddr {
        addr_of(&self.addr, self.id.get() & V6 != 0)
    }

    /// Reads `<ifname>:<ip>`, interning the name (keys from APPL_DB or the kernel's side).
    /// Interface names contain no ':'; IPv6 addresses do.
    pub fn parse(key: &str) -> Option<NeighKey> {
        let (ifname, ip) = key.split_once(':')?;
        Some(NeighKey::new(ifname, ip.parse().ok()?))
    }

    /// A key APPL_DB holds: `<ifname>:<ip>`, or else (a key someone else wrote, which the
    /// daemon still has to account for) the key whole, as a raw key.
    pub fn from_appl_db(key: &str) -> NeighKey {
        NeighKey::parse(key).unwrap_or_else(|| {
            NeighKey::of(
                IfName(IfName::new(key).0 | RAW),
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            )
        })
    }

    /// Not a neighbor's key (see [`NeighKey::from_appl_db`]).
    pub fn is_raw(&self) -> bool {
        self.id.get() & RAW != 0
    }

    /// This key in partition `part` (the namespace it is of, when one process serves several):
    /// keys of different partitions differ, and order by partition first. The key's text does
    /// not change. Partitions at or beyond [`PARTITIONS`] are refused.
    pub fn in_partition(self, part: usize) -> Option<NeighKey> {
        let part = u32::try_from(part)
            .ok()
            .filter(|p| (*p as usize) < PARTITIONS)?;
        let id = (self.id.get() & !PART_MASK) | (part << PART_SHIFT);
        Some(NeighKey {
            id: NonZeroU32::new(id)?,
            addr: self.addr,
        })
    }

    /// The partition this key is in (0 unless put in another).
    pub fn partition(&self) -> usize {
        ((self.id.get() & PART_MASK) >> PART_SHIFT) as usize
    }

    /// Reads `<ifname>:<ip>` without interning: `None` if no such interface was ever seen.
    pub fn parse_existing(key: &str) -> Option<NeighKey> {
        let (ifname, ip) = key.split_once(':')?;
        Some(NeighKey::of(IfName::existing(ifname)?, ip.parse().ok()?))
    }
}

/// A kernel neighbor's identity: its interface's index and its address, in 20 bytes as a
/// [`NeighKey`] is. The kernel's ifindex is a positive `int`: its top bit says IPv6 here.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelId {
    ifindex: u32,
    addr: [u8; 16],
}

const ID_V6: u32 = 1 << 31;

impl KernelId {
    /// `None` for an ifindex no kernel gives (above `i32::MAX`).
    pub fn new(ifindex: u32, ip: IpAddr) -> Option<KernelId> {
        if ifindex & ID_V6 != 0 {
            return None;
        }
        let (addr, v6) = addr_bytes(ip);
        Some(KernelId {
            ifindex: ifindex | if v6 { ID_V6 } else { 0 },
            addr,
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex & !ID_V6
    }

    pub fn ip(&self) -> IpAddr {
        addr_of(&self.addr, self.ifindex & ID_V6 != 0)
    }
}

impl fmt::Debug for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.ifindex(), self.ip())
    }
}

impl NeighKey {
    /// The key's text ([`Display`](fmt::Display)), in one allocation of its final size or
    /// near it: a write makes one per operation.
    pub fn text(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        let _ = write!(s, "{self}");
        s
    }
}

impl fmt::Display for NeighKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_raw() {
            return write!(f, "{}", self.ifname());
        }
        write!(f, "{}:{}", self.ifname(), self.ip())
    }
}

impl fmt::Debug for NeighKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A link-layer address as the kernel gave it, or none, in 8 bytes (no alignment, so it packs
/// into its neighbor's entry): up to 7 bytes (every Ethernet MAC) inline; a longer one
/// (InfiniBand's 20 bytes, which SONiC does not use) interned like an interface name and
/// referred to by id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkAddr {
    /// 0..=7: the length of an inline address; [`ABSENT`] or [`LONG`] otherwise.
    len: u8,
    /// The address (inline), or the interned one's id (little-endian, in the first 4 bytes).
    bytes: [u8; 7],
}

const ABSENT: u8 = u8::MAX;
const LONG: u8 = u8::MAX - 1;
const INLINE: usize = 7;

impl Default for LinkAddr {
    fn default() -> Self {
        LinkAddr::ABSENT
    }
}

fn long_addrs() -> &'static RwLock<Interner<[u8]>> {
    static LONG_ADDRS: OnceLock<RwLock<Interner<[u8]>>> = OnceLock::new();
    LONG_ADDRS.get_or_init(Interner::new)
}

impl LinkAddr {
    pub const ABSENT: LinkAddr = LinkAddr {
        len: ABSENT,
        bytes: [0; INLINE],
    };

    pub fn new(addr: Option<&[u8]>) -> LinkAddr {
        let Some(a) = addr else {
            return LinkAddr::ABSENT;
        };
        let mut bytes = [0; INLINE];
        if let Some(inline) = bytes.get_mut(..a.len()) {
            inline.copy_from_slice(a);
            return LinkAddr {
                len: a.len() as u8,
                bytes,
            };
        }
        let id = Interner::intern(long_addrs(), a, |a| Box::leak(a.into()));
        bytes[..4].copy_from_slice(&id.to_le_bytes());
        LinkAddr { len: LONG, bytes }
    }

    pub fn get(&self) -> Option<&[u8]> {
        match self.len {
            ABSENT => None,
            LONG => {
                let id = u32::from_le_bytes([
                    self.bytes[0],
                    self.bytes[1],
                    self.bytes[2],
                    self.bytes[3],
                ]);
                Some(Interner::get(long_addrs(), id).unwrap_or(&[]))
            }
            len => self.bytes.get(..usize::from(len)),
        }
    }
}

impl fmt::Debug for LinkAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once_and_keys_print_as_appl_db_keys() {
        let a = IfName::new("Ethernet0-key-test");
        assert_eq!(a, IfName::new("Ethernet0-key-test"));
        assert_eq!(a.as_str(), "Ethernet0-key-test");
        assert_eq!(IfName::existing("never-seen-key-test"), None);
        let k = NeighKey::parse("Ethernet0-key-test:fe80::1").unwrap();
        assert_eq!(k.to_string(), "Ethernet0-key-test:fe80::1");
        assert_eq!(
            NeighKey::parse_existing("never-seen-key-test:10.0.0.1"),
            None
        );
        assert_eq!(NeighKey::parse("Ethernet0-key-test:not-an-ip"), None);
        assert_eq!(std::mem::size_of::<NeighKey>(), 20);
        let raw = NeighKey::from_appl_db("no-address-here");
        assert!(raw.is_raw() && !k.is_raw());
        assert_eq!(raw.to_string(), "no-address-here");
        // Partitions: the same text, a different key, ordered by partition first.
        let k3 = k.in_partition(3).unwrap();
        assert_eq!((k3.partition(), k.partition()), (3, 0));
        assert_ne!(k3, k);
        assert_eq!(k3.to_string(), k.to_string());
        assert_eq!(k3.in_partition(0), Some(k));
        assert!(NeighKey::parse("zz-key-test:10.0.0.1").unwrap() < k3);
        let raw5 = raw.in_partition(5).unwrap();
        assert!(raw5.is_raw() && raw5.partition() == 5);
        assert_eq!(raw5.to_string(), "no-address-here");
        assert_eq!(k.in_partition(PARTITIONS), None);
        assert_eq!(NeighKey::from_appl_db("Ethernet0-key-test:fe80::1"), k);
    }

    #[test]
    fn link_addresses_round_trip_short_and_long() {
        for a in [
            None,
            Some(&[][..]),
            Some(&[1, 2, 3, 4][..]),
            Some(&[7; 6][..]),
            Some(&[7; 7][..]),
        ] {
            assert_eq!(LinkAddr::new(a).get(), a);
        }
        let ib = [9u8; 20];
        assert_eq!(LinkAddr::new(Some(&ib)).get(), Some(&ib[..]));
        assert_eq!(LinkAddr::new(Some(&ib)), LinkAddr::new(Some(&ib)));
        assert_ne!(LinkAddr::new(Some(&ib)), LinkAddr::new(Some(&ib[1..])));
        assert_ne!(LinkAddr::new(None), LinkAddr::new(Some(&[])));
        assert_eq!(std::mem::size_of::<LinkAddr>(), 8);
        assert_eq!(std::mem::align_of::<LinkAddr>(), 1);
        assert_eq!(std::mem::size_of::<Option<IfName>>(), 4);
    }
}
