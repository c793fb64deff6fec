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

/// A struct or union member, as its record says.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// Where its name starts in the string section (0: anonymous).
    name: u32,
    type_id: u32,
    /// Offset in bits.
    bits: u32,
    bitfield: bool,
}

/// A type, decoded from its record when a lookup reaches it.
#[derive(Debug, Clone, Copy)]
enum Type {
    Composite {
        /// Where its member records start in the type section.
        members: usize,
        vlen: usize,
        kind_flag: bool,
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

/// The kernel's BTF, kept as its bytes: parsing indexes where each type's record starts and
/// where each named struct is, and a lookup decodes only the records it walks through. The
/// kernel's BTF describes ~100k types with ~300k members; decoding them all up front (a
/// `String` per member name) made the eBPF source's start-up the daemon's peak of memory.
pub struct Btf {
    data: Vec<u8>,
    /// Where the type and the string sections are in `data`.
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Where type id `i`'s record starts in `types` (id 0 is void: it has none).
    starts: Vec<u32>,
    structs: HashMap<Box<str>, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The name at `off` in a string section (empty when out of bounds).
fn name_at(strings: &[u8], off: u32) -> &[u8] {
    let s = strings.get(off as usize..).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    &s[..end]
}

/// How many bytes follow a type's 12-byte header, by its kind, or `None` for a kind this
/// reader does not know.
fn trailer(kind: u32, vlen: usize) -> Option<usize> {
    Some(match kind {
        KIND_STRUCT | KIND_UNION | KIND_ENUM64 | KIND_DATASEC => vlen * 12,
        KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
        KIND_ARRAY => 12,
        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG | KIND_FLOAT
        | KIND_PTR | KIND_FWD | KIND_FUNC => 0,
        _ => return None,
    })
}

impl Btf {
    pub fn from_sys() -> Result<Btf, std::io::Error> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")?;
        Btf::index(data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Indexes a BTF blob: every type record must fit and be of a known kind.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        Btf::index(data.to_vec())
    }

    fn index(data: Vec<u8>) -> Result<Btf, BtfError> {
        // Header: magic u16, version u8, flags u8, hdr_len u32, type_off, type_len, str_off, str_len.
        if data.len() < 24 || data[0..2] != [0x9f, 0xeb] {
            return Err(BtfError::BadHeader);
        }
        let hdr_len = u32_at(&data, 4).ok_or(BtfError::BadHeader)? as usize;
        let field = |i: usize| {
            u32_at(&data, 8 + i * 4)
                .map(|v| v as usize)
                .ok_or(BtfError::BadHeader)
        };
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let range = start..start.checked_add(len)?;
            data.get(range.clone()).map(|_| range)
        };
        let types_at = section(type_off, type_len).ok_or(BtfError::BadHeader)?;
        let strings_at = section(str_off, str_len).ok_or(BtfError::BadHeader)?;
        let (types, strings) = (&data[types_at.clone()], &data[strings_at.clone()]);
        // Type id 0 is void.
        let mut starts = vec![0u32];
        let mut structs = HashMap::new();
        let mut off = 0usize;
        while off < types.len() {
            let bad = || BtfError::BadType(0);
            let name_off = u32_at(types, off).ok_or_else(bad)?;
            let info = u32_at(types, off + 4).ok_or_else(bad)?;
            u32_at(types, off + 8).ok_or_else(bad)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let end = trailer(kind, vlen)
                .ok_or(BtfError::BadType(kind))?
                .checked_add(off + 12)
                .filter(|end| *end <= types.len())
                .ok_or(BtfError::BadType(kind))?;
            let id = u32::try_from(starts.len()).map_err(|_| BtfError::BadType(kind))?;
            let start = u32::try_from(off).map_err(|_| BtfError::BadType(kind))?;
            if kind == KIND_STRUCT {
                let name = name_at(strings, name_off);
                if !name.is_empty() {
                    // The first definition wins (later ones are rare duplicates).
                    structs
                        .entry(String::from_utf8_lossy(name).into())
                        .or_insert(id);
                }
            }
            starts.push(start);
            off = end;
        }
        Ok(Btf {
            data,
            types: types_at,
            strings: strings_at,
            starts,
            structs,
        })
    }

    fn types(&self) -> &[u8] {
        &self.data[self.types.clone()]
    }

    fn strings(&self) -> &[u8] {
        &self.data[self.strings.clone()]
    }

    /// Type `id`, decoded from its record.
    fn ty(&self, id: u32) -> Option<Type> {
        if id == 0 {
            return Some(Type::Other);
        }
        let off = *self.starts.get(id as usize)? as usize;
        let t = self.types();
        let info = u32_at(t, off + 4)?;
        let size_or_type = u32_at(t, off + 8)?;
        let vlen = (info & 0xffff) as usize;
        Some(match (info >> 24) & 0x1f {
            KIND_STRUCT | KIND_UNION => Type::Composite {
                members: off + 12,
                vlen,
                kind_flag: info >> 31 == 1,
                size: size_or_type,
            },
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                Type::Alias(size_or_type)
            }
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => Type::Sized(size_or_type),
            KIND_PTR => Type::Sized(POINTER),
            KIND_ARRAY => Type::Array {
                elem: u32_at(t, off + 12)?,
                nelems: u32_at(t, off + 20)?,
            },
            _ => Type::Other,
        })
    }

    /// The members of a composite (none of anything else).
    fn members(&self, ty: Type) -> impl Iterator<Item = Member> + '_ {
        let (members, vlen, kind_flag) = match ty {
            Type::Composite {
                members,
                vlen,
                kind_flag,
                ..
            } => (members, vlen, kind_flag),
            _ => (0, 0, false),
        };
        (0..vlen).map_while(move |i| {
            let m = members + i * 12;
            let moff = u32_at(self.types(), m + 8)?;
            let (bits, bitfield) = if kind_flag {
                (moff & 0x00ff_ffff, moff >> 24 != 0)
            } else {
                (moff, false)
            };
            Some(Member {
                name: u32_at(self.types(), m)?,
                type_id: u32_at(self.types(), m + 4)?,
                bits,
                bitfield,
            })
        })
    }

    fn name(&self, m: &Member) -> &[u8] {
        name_at(self.strings(), m.name)
    }

    /// A type's size in bytes, following aliases and arrays (bounded: BTF may be hostile).
    fn size_of(&self, id: u32) -> Option<u32> {
        let mut id = id;
        let mut factor: u32 = 1;
        for _ in 0..32 {
            match self.resolve(id)? {
                Type::Sized(n) | Type::Composite { size: n, .. } => return factor.checked_mul(n),
                Type::Array { elem, nelems } => {
                    factor = factor.checked_mul(nelems)?;
                    id = elem;
                }
                Type::Alias(_) | Type::Other => return None,
            }
        }
        None
    }

    fn resolve(&self, mut id: u32) -> Option<Type> {
        for _ in 0..32 {
            match self.ty(id)? {
                Type::Alias(next) => id = next,
                t => return Some(t),
            }
        }
        None
    }

    /// Finds `name` among a composite's members, looking into anonymous members (to a bounded
    /// depth: a hostile BTF may nest a type in itself).
    fn find(&self, ty: Type, name: &str) -> Option<(u32, Member)> {
        self.find_in(ty, name.as_bytes(), 8)
    }

    fn find_in(&self, ty: Type, name: &[u8], depth: u8) -> Option<(u32, Member)> {
        if let Some(m) = self.members(ty).find(|m| self.name(m) == name) {
            return Some((m.bits, m));
        }
        if depth == 0 {
            return None;
        }
        self.members(ty)
            .filter(|m| self.name(m).is_empty())
            .find_map(|m| {
                let (bits, found) = self.find_in(self.resolve(m.type_id)?, name, depth - 1)?;
                Some((m.bits.saturating_add(bits), found))
            })
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
            ty = self
                .resolve(m.type_id)
                .ok_or_else(|| BtfError::NoMember(root.to_string(), path.to_string()))?;
        }
        Ok((bits / 8, type_id))
    }
}

#[cfg(test)]
mod tests;
