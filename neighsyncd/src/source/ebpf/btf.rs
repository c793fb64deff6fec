//! A minimal reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find a
//! struct member's byte offset, following nested members (`ns.inum`) and anonymous
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
    },
    /// typedef/const/volatile/restrict/type tag: points at another type.
    Alias(u32),
    Other,
}

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
                    Type::Composite { members }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias(size_or_type)
                }
                KIND_INT | KIND_VAR | KIND_DECL_TAG => {
                    off += 4;
                    Type::Other
                }
                KIND_ARRAY => {
                    off += 12;
                    Type::Other
                }
                KIND_ENUM | KIND_FUNC_PROTO => {
                    off += vlen * 8;
                    Type::Other
                }
                KIND_DATASEC | KIND_ENUM64 => {
                    off += vlen * 12;
                    Type::Other
                }
                KIND_PTR | KIND_FWD | KIND_FUNC | KIND_FLOAT => Type::Other,
                other => return Err(BtfError::BadType(other)),
            };
            types.push(ty);
        }
        Ok(Btf { types, structs })
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
    fn find<'a>(&'a self, ty: &'a Type, name: &str) -> Option<(u32, &'a Member)> {
        let Type::Composite { members, .. } = ty else {
            return None;
        };
        for m in members {
            if m.name == name {
                return Some((m.bits, m));
            }
        }
        for m in members.iter().filter(|m| m.name.is_empty()) {
            if let Some(inner) = self.resolve(m.type_id)
                && let Some((bits, found)) = self.find(inner, name)
            {
                return Some((m.bits + bits, found));
            }
        }
        None
    }

    /// The byte offset of `path` (e.g. `"ns.inum"`) inside `struct root`.
    pub fn offset(&self, root: &str, path: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs
            .get(root)
            .ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let mut ty = self
            .resolve(id)
            .ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let mut bits = 0u32;
        for part in path.split('.') {
            let (b, m) = self
                .find(ty, part)
                .ok_or_else(|| BtfError::NoMember(root.to_string(), path.to_string()))?;
            if m.bitfield {
                return Err(BtfError::Bitfield(root.to_string(), path.to_string()));
            }
            bits += b;
            ty = match self.resolve(m.type_id) {
                Some(t) => t,
                None => return Err(BtfError::NoMember(root.to_string(), path.to_string())),
            };
        }
        Ok(bits / 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let Ok(btf) = Btf::from_sys() else {
            eprintln!("SKIP: no /sys/kernel/btf/vmlinux");
            return;
        };
        let tbl = btf.offset("neighbour", "tbl").unwrap();
        let dev = btf.offset("neighbour", "dev").unwrap();
        let key = btf.offset("neighbour", "primary_key").unwrap();
        assert!(tbl < dev && dev < key, "{tbl} {dev} {key}");
        assert!(btf.offset("net", "ns.inum").unwrap() > 0);
        btf.offset("net_device", "ifindex").unwrap();
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
