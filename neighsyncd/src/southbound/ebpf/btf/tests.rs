//! The BTF reader on blobs made here, on garbage, and on the running kernel's BTF.

use super::*;

/// A BTF blob: the header, then `types`, then `strings`.
fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let mut b = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
    for v in [0, types.len(), types.len(), strings.len()] {
        b.extend_from_slice(&(v as u32).to_le_bytes());
    }
    b.extend_from_slice(types);
    b.extend_from_slice(strings);
    b
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A struct whose anonymous member is itself: the lookup ends, it does not recurse forever.
#[test]
fn a_self_nesting_type_does_not_hang_the_lookup() {
    // Type 1: struct "loop" (name at 1), one member, size 4; its member: anonymous, type 1.
    let types = words(&[1, (KIND_STRUCT << 24) | 1, 4, 0, 1, 0]);
    let btf = Btf::parse(&blob(&types, b"\0loop\0")).unwrap();
    assert!(matches!(
        btf.offset("loop", "x"),
        Err(BtfError::NoMember(_, _))
    ));
}

/// Members, nested anonymous members, arrays and aliases, read from a blob made here.
#[test]
fn follows_anonymous_members_aliases_and_arrays() {
    // 1: int, 4 bytes. 2: typedef "u" -> 1. 3: array of 8 of type 2.
    // 4: anonymous union { u a; } of size 4.
    // 5: struct "s" { int x @0; <anon 4> @32 bits; u[8] arr @64 bits }, size 40.
    let strings = b"\0s\0x\0a\0arr\0u\0";
    let (s, x, a, arr, u) = (1, 3, 5, 7, 11);
    #[rustfmt::skip]
    let types = words(&[
        0, KIND_INT << 24, 4, 32,
        u, KIND_TYPEDEF << 24, 1,
        0, KIND_ARRAY << 24, 0, 2, 1, 8,
        0, (KIND_UNION << 24) | 1, 4, a, 2, 0,
        s, (KIND_STRUCT << 24) | 3, 40, x, 1, 0, 0, 4, 32, arr, 3, 64,
    ]);
    let btf = Btf::parse(&blob(&types, strings)).unwrap();
    assert_eq!(btf.field("s", "x"), Ok(Field { offset: 0, size: 4 }));
    assert_eq!(btf.field("s", "a"), Ok(Field { offset: 4, size: 4 }));
    assert_eq!(
        btf.field("s", "arr"),
        Ok(Field {
            offset: 8,
            size: 32
        })
    );
    // A truncated blob is refused, not read past its end.
    assert_eq!(
        Btf::parse(&blob(&types[..types.len() - 4], strings)).err(),
        Some(BtfError::BadType(KIND_STRUCT))
    );
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
