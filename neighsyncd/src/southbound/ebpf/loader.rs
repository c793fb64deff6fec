//! Loads the program object without aya's `EbpfLoader`.
//!
//! `EbpfLoader::new()` (aya 0.14) reads and parses the kernel's whole BTF as it is made,
//! even when told afterwards to use none (`.btf(None)`): 5.5 MB read, about 20 MB at its peak
//! while parsed. This object needs none of it: the struct offsets come from our own reader
//! (`offsets`), the programs are raw tracepoints without CO-RE relocations, and the maps are
//! plain. That parse was the eBPF daemon's peak of memory (28 MiB at start-up with no neighbor,
//! above what 100k neighbors take later). aya 0.15 reads the BTF only when an object needs
//! it, but asks for a newer Rust than ours.
//!
//! So the loader is put together from aya's public parts: aya-obj parses and relocates the
//! object, aya makes the maps (`MapData::create`). The three steps aya keeps to itself are
//! made here with the `bpf` system call: filling and freezing a global data map, loading a
//! program, and attaching it to a raw tracepoint.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use aya::maps::{Map, MapData};
use aya_obj::generated::{bpf_cmd, bpf_insn, bpf_prog_type};
use aya_obj::{EbpfSectionKind, Object, ProgramSection};

use super::EbpfError;

/// The object's maps and programs, loaded into the kernel; none attached yet.
pub struct Program {
    maps: HashMap<String, Map>,
    /// Each program's fd, by name (its function's name, which is also its tracepoint's).
    programs: HashMap<String, OwnedFd>,
    /// Attachments: dropping one detaches its program.
    links: Vec<OwnedFd>,
}

impl Program {
    /// Parses `object`, sets its global `(name, bytes)` pairs and the maps' `max_entries`, makes
    /// the maps and loads the programs.
    pub fn load(
        object: &[u8],
        globals: &[(&str, &[u8])],
        max_entries: &[(&str, u32)],
    ) -> Result<Program, EbpfError> {
        let load = |e: String| EbpfError::Load(e);
        let mut obj = Object::parse(object).map_err(|e| load(e.to_string()))?;
        obj.patch_map_data(globals.iter().map(|(n, b)| (*n, (*b, true))).collect())
            .map_err(|e| load(e.to_string()))?;
        let mut made: Vec<(String, aya_obj::Map, MapData)> = Vec::new();
        for (name, mut map) in obj.maps.drain() {
            if let Some((_, n)) = max_entries.iter().find(|(m, _)| *m == name) {
                map.set_max_entries(*n);
            }
            if map.map_type() == aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32 {
                // A ring buffer's records have no fixed size: the kernel wants none given.
                map.set_value_size(0);
            }
            let data = MapData::create(map.clone(), &name, None)
                .map_err(|e| EbpfError::Map("create", format!("{name}: {e}")))?;
            fill_global(&map, &data)
                .map_err(|e| EbpfError::Map("global data", format!("{name}: {e}")))?;
            made.push((name, map, data));
        }
        let text = obj.functions.keys().map(|(section, _)| *section).collect();
        obj.relocate_maps(
            made.iter()
                .map(|(name, map, data)| (name.as_str(), data.fd().as_fd().as_raw_fd(), map)),
            &text,
        )
        .map_err(|e| load(e.to_string()))?;
        obj.relocate_calls(&text).map_err(|e| load(e.to_string()))?;
        obj.sanitize_functions(aya::features());
        let mut programs = HashMap::new();
        for (name, prog) in &obj.programs {
            if !matches!(prog.section, ProgramSection::RawTracePoint) {
                return Err(load(format!("{name}: not a raw tracepoint program")));
            }
            let function = obj
                .functions
                .get(&prog.function_key())
                .ok_or_else(|| load(format!("{name}: its function is missing")))?;
            let fd = load_program(name, &function.instructions, &prog.license)
                .map_err(|e| load(format!("program {name}: {e}")))?;
            programs.insert(name.clone(), fd);
        }
        let mut maps = HashMap::new();
        for (name, _, data) in made {
            let map =
                Map::from_map_data(data).map_err(|e| EbpfError::Map("open", e.to_string()))?;
            maps.insert(name, map);
        }
        Ok(Program {
            maps,
            programs,
            links: Vec::new(),
        })
    }

    pub fn take_map(&mut self, name: &str) -> Option<Map> {
        self.maps.remove(name)
    }

    pub fn map_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.maps.get_mut(name)
    }

    /// Attaches program `name` to the raw tracepoint of the same name, until this is dropped.
    pub fn attach(&mut self, name: &'static str) -> Result<(), EbpfError> {
        let fd = self
            .programs
            .get(name)
            .ok_or_else(|| EbpfError::Attach(name, "the object has no such program".into()))?;
        let tp = CString::new(name)
            .map_err(|_| EbpfError::Attach(name, "not a tracepoint name".into()))?;
        let mut attr = RawTracepointOpen {
            name: tp.as_ptr() as u64,
            prog_fd: fd.as_raw_fd() as u32,
            _pad: 0,
        };
        let link = bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            .map_err(|e| EbpfError::Attach(name, e.to_string()))?;
        self.links.push(link);
        Ok(())
    }
}

/// A plain value's bytes (a global's new value).
pub fn bytes_of<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: `Pod` types are plain data, every byte initialised (no padding); the slice
    // borrows `value` for its life.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// `bpf(BPF_MAP_UPDATE_ELEM)` and `bpf(BPF_MAP_FREEZE)` arguments.
#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf(BPF_PROG_LOAD)` arguments, as far as a raw tracepoint program needs them (the kernel
/// takes a shorter struct as zeros beyond it).
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `bpf(BPF_RAW_TRACEPOINT_OPEN)` arguments.
#[repr(C)]
struct RawTracepointOpen {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// The `bpf` system call: its non-negative return, or the error.
fn sys_bpf<T>(cmd: bpf_cmd, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is one of the `#[repr(C)]` prefixes of `union bpf_attr` above, valid for
    // its size, and lives across the call; pointers in it point at live buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// A `bpf` command that makes an fd: the fd.
fn bpf<T>(cmd: bpf_cmd, attr: &mut T) -> std::io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: what these commands return is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A `bpf` command that returns 0 rather than an fd.
fn bpf_ok<T>(cmd: bpf_cmd, attr: &mut T) -> std::io::Result<()> {
    sys_bpf(cmd, attr).map(drop)
}

/// A global data map (`.rodata`, `.data`, `.bss`) gets its one value, the section's bytes;
/// `.rodata` is then frozen, so that the verifier can treat it as constant.
fn fill_global(map: &aya_obj::Map, data: &MapData) -> std::io::Result<()> {
    let kind = map.section_kind();
    if !matches!(
        kind,
        EbpfSectionKind::Rodata | EbpfSectionKind::Data | EbpfSectionKind::Bss
    ) {
        return Ok(());
    }
    let fd = data.fd().as_fd().as_raw_fd() as u32;
    let mut value = map.data().to_vec();
    if !value.is_empty() {
        let key = 0u32;
        let mut attr = MapElem {
            map_fd: fd,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        bpf_ok(bpf_cmd::BPF_MAP_UPDATE_ELEM, &mut attr)?;
    }
    if kind == EbpfSectionKind::Rodata {
        let mut attr = MapElem {
            map_fd: fd,
            _pad: 0,
            key: 0,
            value: 0,
            flags: 0,
        };
        bpf_ok(bpf_cmd::BPF_MAP_FREEZE, &mut attr)?;
    }
    Ok(())
}

/// Loads one raw tracepoint program; on the verifier's refusal, loads it again with its log
/// on, for an error that says why.
fn load_program(name: &str, insns: &[bpf_insn], license: &CString) -> Result<OwnedFd, String> {
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let attr = |log: &mut Vec<u8>| ProgLoad {
        prog_type: bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT as u32,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
    };
    let first = bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr(&mut Vec::new()));
    let Err(e) = first else {
        return first.map_err(|e| e.to_string());
    };
    let mut log = vec![0u8; 1 << 20];
    match bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr(&mut log)) {
        Ok(fd) => Ok(fd),
        Err(_) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let tail: String = text
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            Err(format!("{e}; the verifier said:\n{tail}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_that_is_not_one_is_a_load_error_before_any_call() {
        for bytes in [&b""[..], b"\x7fELF", &[0u8; 64]] {
            match Program::load(bytes, &[], &[]) {
                Err(EbpfError::Load(e)) => assert!(!e.is_empty()),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("{bytes:?} loaded"),
            }
        }
    }

    #[test]
    fn a_program_the_verifier_refuses_is_an_error_with_its_reasons() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: loading a BPF program needs root (CI runs as root)");
            return;
        }
        // `exit` with R0 never set: every kernel's verifier refuses it.
        // SAFETY: bpf_insn is plain data; all zeros is `r0 = r0 + 0`'s encoding, made `exit`.
        let mut exit: bpf_insn = unsafe { std::mem::zeroed() };
        exit.code = 0x95;
        let license = CString::new("GPL").unwrap();
        match load_program("refused", &[exit], &license) {
            Ok(_) => panic!("the verifier took a program that returns nothing"),
            Err(e) => assert!(e.contains("the verifier said") && e.contains("R0"), "{e}"),
        }
    }

    #[test]
    fn a_global_s_bytes_are_its_memory() {
        let v: u32 = 0x0403_0201;
        assert_eq!(bytes_of(&v), &v.to_ne_bytes());
    }
}
