//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find a
//! struct member's byte offset and size, following nested members (`ns.inum`) and anonymous
//! structs/unions. Pure: parses bytes, so it is tested on the running kernel's BTF and on
//! malformed input alike.

use std::collections::HashMap;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF data (bad magic or header)")]
    BadHeader,
    #[error("BTF type section is truncated or has an unknown kind {0}")]
    BadType(u32),
    #[error("struct {0} not found in the kernel's BTF")]
    NoStruct(String),
    #[error("{0}.{1} not found in the kernel's BTF")]
    NoMember(String, String),
    #[error("{0}.{1} is a bitfield")]
    Bitfield(String, String),
    #[error("{0}.{1} has no size the reader can tell")]
    Unsized(String, String),
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    type_id: u32,
    /// Offset in bits.
    bits: u32,
    bitfield: bool,
}

#[derive(Debug, Clone)]
enum Type {
    Composite {
        members: Vec<Member>,
        size: u32,
    },
    /// typedef/const/volatile/restrict/type tag: points at another type.
    Alias(u32),
    /// int, enum, float, pointer: a size in bytes.
    Sized(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Other,
}

/// Where a member is, and how big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Pointers are 8 bytes on every 64-bit architecture a switch runs.
const POINTER: u32 = 8;

pub struct Btf {
    types: Vec<Type>,
    structs: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn str_at(strings: &[u8], off: u32) -> String {
    let s = strings.get(off as usize..).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

impl Btf {
    pub fn from_sys() -> Result<Btf, std::io::Error> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")?;
        Btf::parse(&data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        // Header: magic u16, version u8, flags u8, hdr_len u32, type_off, type_len, str_off, str_len.
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::BadHeader);
        }
        let hdr_len = u32_at(data, 4).ok_or(BtfError::BadHeader)? as usize;
        let field = |i: usize| u32_at(data, 8 + i * 4).ok_or(BtfError::BadHeader);
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let base = hdr_len;
        let types_bytes = data
            .get(base + type_off as usize..base + type_off as usize + type_len as usize)
            .ok_or(BtfError::BadHeader)?;
        let strings = data
            .get(base + str_off as usize..base + str_off as usize + str_len as usize)
            .ok_or(BtfError::BadHeader)?;
        // Type id 0 is void.
        let mut types = vec![Type::Other];
        let mut structs = HashMap::new();
        let mut off = 0usize;
        while off < types_bytes.len() {
            let name_off = u32_at(types_bytes, off).ok_or(BtfError::BadType(0))?;
            let info = u32_at(types_bytes, off + 4).ok_or(BtfError::BadType(0))?;
            let size_or_type = u32_at(types_bytes, off + 8).ok_or(BtfError::BadType(0))?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            off += 12;
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = off + i * 12;
                        let mname = u32_at(types_bytes, m).ok_or(BtfError::BadType(kind))?;
                        let mtype = u32_at(types_bytes, m + 4).ok_or(BtfError::BadType(kind))?;
                        let moff = u32_at(types_bytes, m + 8).ok_or(BtfError::BadType(kind))?;
                        let (bits, bitfield) = if kind_flag {
                            (moff & 0x00ff_ffff, moff >> 24 != 0)
                        } else {
                            (moff, false)
                        };
                        members.push(Member {
                            name: str_at(strings, mname),
                            type_id: mtype,
                            bits,
                            bitfield,
                        });
                    }
                    off += vlen * 12;
                    let name = str_at(strings, name_off);
                    if kind == KIND_STRUCT && !name.is_empty() {
                        // The first definition wins (later ones are rare duplicates).
                        structs.entry(name).or_insert(types.len() as u32);
                    }
                    Type::Composite {
                        members,
                        size: size_or_type,
                    }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias(size_or_type)
                }
                KIND_INT => {
                    off += 4;
                    Type::Sized(size_or_type)
                }
                KIND_VAR | KIND_DECL_TAG => {
                    off += 4;
                    Type::Other
                }
                KIND_ARRAY => {
                    let elem = u32_at(types_bytes, off).ok_or(BtfError::BadType(kind))?;
                    let nelems = u32_at(types_bytes, off + 8).ok_or(BtfError::BadType(kind))?;
                    off += 12;
                    Type::Array { elem, nelems }
                }
                KIND_ENUM => {
                    off += vlen * 8;
                    Type::Sized(size_or_type)
                }
                KIND_FUNC_PROTO => {
                    off += vlen * 8;
                    Type::Other
                }
                KIND_ENUM64 => {
                    off += vlen * 12;
                    Type::Sized(size_or_type)
                }
                KIND_DATASEC => {
                    off += vlen * 12;
                    Type::Other
                }
                KIND_FLOAT => Type::Sized(size_or_type),
                KIND_PTR => Type::Sized(POINTER),
                KIND_FWD | KIND_FUNC => Type::Other,
                other => return Err(BtfError::BadType(other)),
            };
            types.push(ty);
        }
        Ok(Btf { types, structs })
    }

    /// A type's size in bytes, following aliases and arrays (bounded: BTF may be hostile).
    fn size_of(&self, id: u32) -> Option<u32> {
        let mut id = id;
        let mut factor: u32 = 1;
        for _ in 0..32 {
            match self.resolve(id)? {
                Type::Sized(n) | Type::Composite { size: n, .. } => return factor.checked_mul(*n),
                Type::Array { elem, nelems } => {
                    factor = factor.checked_mul(*nelems)?;
                    id = *elem;
                }
                Type::Alias(_) | Type::Other => return None,
            }
        }
        None
    }

    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            match self.types.get(id as usize)? {
                Type::Alias(next) => id = *next,
                t => return Some(t),
            }
        }
        None
    }

    /// Finds `name` among a composite's members, looking into anonymous members.
    /// Finds `name` among a composite's members, looking into anonymous members (to a bounded
    /// depth: a hostile BTF may nest a type in itself).
    fn find<'a>(&'a self, ty: &'a Type, name: &str) -> Option<(u32, &'a Member)> {
        self.find_in(ty, name, 8)
    }

    fn find_in<'a>(&'a self, ty: &'a Type, name: &str, depth: u8) -> Option<(u32, &'a Member)> {
        let Type::Composite { members, .. } = ty else {
            return None;
        };
        for m in members {
            if m.name == name {
                return Some((m.bits, m));
            }
        }
        if depth == 0 {
            return None;
        }
        for m in members.iter().filter(|m| m.name.is_empty()) {
            if let Some(inner) = self.resolve(m.type_id)
                && let Some((bits, found)) = self.find_in(inner, name, depth - 1)
            {
                return Some((m.bits.saturating_add(bits), found));
            }
        }
        None
    }

    /// The byte offset of `path` (e.g. `"ns.inum"`) inside `struct root`.
    pub fn offset(&self, root: &str, path: &str) -> Result<u32, BtfError> {
        self.locate(root, path).map(|(offset, _)| offset)
    }

    /// The offset and size of `path` inside `struct root`.
    pub fn field(&self, root: &str, path: &str) -> Result<Field, BtfError> {
        let (offset, type_id) = self.locate(root, path)?;
        let size = self
            .size_of(type_id)
            .ok_or_else(|| BtfError::Unsized(root.to_string(), path.to_string()))?;
        Ok(Field { offset, size })
    }

    /// (byte offset, type id) of `path` inside `struct root`.
    fn locate(&self, root: &str, path: &str) -> Result<(u32, u32), BtfError> {
        let id = *self
            .structs
            .get(root)
            .ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let mut ty = self
            .resolve(id)
            .ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let mut bits = 0u32;
        let mut type_id = id;
        for part in path.split('.') {
            let (b, m) = self
                .find(ty, part)
                .ok_or_else(|| BtfError::NoMember(root.to_string(), path.to_string()))?;
            if m.bitfield {
                return Err(BtfError::Bitfield(root.to_string(), path.to_string()));
            }
            bits = bits.saturating_add(b);
            type_id = m.type_id;
            ty = match self.resolve(m.type_id) {
                Some(t) => t,
                None => return Err(BtfError::NoMember(root.to_string(), path.to_string())),
            };
        }
        Ok((bits / 8, type_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A struct whose anonymous member is itself: the lookup ends, it does not recurse forever.
    #[test]
    fn a_self_nesting_type_does_not_hang_the_lookup() {
        let mut types = vec![Type::Other];
        types.push(Type::Composite {
            members: vec![Member {
                name: String::new(),
                type_id: 1,
                bits: 0,
                bitfield: false,
            }],
            size: 4,
        });
        let btf = Btf {
            types,
            structs: [("loop".to_string(), 1)].into(),
        };
        assert!(matches!(
            btf.offset("loop", "x"),
            Err(BtfError::NoMember(_, _))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Btf::parse(&[0u8; 10]).err(), Some(BtfError::BadHeader));
        let mut h = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        h.extend_from_slice(&[0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Btf::parse(&h).err(), Some(BtfError::BadHeader));
    }

    /// On the running kernel (every machine of this project has BTF; skip where it does not).
    #[test]
    fn finds_the_neighbour_offsets_in_the_running_kernel() {
        // Every machine of this project has BTF (docs: platform); without it this must fail.
        let btf = Btf::from_sys().expect("/sys/kernel/btf/vmlinux");
        let tbl = btf.offset("neighbour", "tbl").unwrap();
        let dev = btf.offset("neighbour", "dev").unwrap();
        let key = btf.offset("neighbour", "primary_key").unwrap();
        assert!(tbl < dev && dev < key, "{tbl} {dev} {key}");
        assert!(btf.offset("net", "ns.inum").unwrap() > 0);
        btf.offset("net_device", "ifindex").unwrap();
        // Sizes, as the program reads them.
        assert_eq!(btf.field("neighbour", "nud_state").unwrap().size, 1);
        assert_eq!(btf.field("neighbour", "dev").unwrap().size, 8);
        assert!(btf.field("neighbour", "ha").unwrap().size >= 32);
        assert!([1, 4].contains(&btf.field("neighbour", "flags").unwrap().size));
        assert_eq!(btf.field("net", "ns.inum").unwrap().size, 4);
        assert_eq!(
            btf.offset("neighbour", "no_such_field").err(),
            Some(BtfError::NoMember(
                "neighbour".into(),
                "no_such_field".into()
            ))
        );
        assert!(matches!(
            btf.offset("no_such_struct", "x"),
            Err(BtfError::NoStruct(_))
        ));
    }
}
