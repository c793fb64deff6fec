//! Giving memory back to the system after one-off work: freed heap after a peak (loading the
//! eBPF program parses several megabytes of kernel BTF), and the code only the start-up ran.
//! glibc keeps freed memory for reuse, and the kernel keeps code mapped once it ran; on a
//! switch CPU the daemon's resident size is what operators watch.

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps the resident pages of clean, read-only file mappings (this executable's code and
/// constants, the shared libraries'): pages that still equal the file. The next use faults a
/// page back in from the page cache, a minor fault.
///
/// Called once the start-up is over, it leaves resident only what the daemon goes on using.
/// The kernel maps code in runs of up to 64 KB (and whole large folios) around each page a
/// fault touches, so the start-up's one-off code (argument and config parsing, the sources'
/// set-up, the eBPF loader) would otherwise stay resident for good: about 1.5 MB of the
/// 100k benchmark's peak. Returns the bytes that were resident in those mappings.
pub fn release_clean_file_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut released = 0;
    for m in clean_file_mappings(&smaps) {
        // SAFETY: the range is a whole mapping of a file that is not writable and holds no
        // private (copied-on-write) page: every page in it equals the file. Dropping them
        // changes nothing the process can observe; the next access faults them back in.
        let rc = unsafe { libc::madvise(m.start as *mut libc::c_void, m.len, libc::MADV_DONTNEED) };
        if rc == 0 {
            released += m.resident;
        }
    }
    released
}

/// [`release_clean_file_pages`], the first time only: once the first source has synced, the
/// start-up is over.
pub fn release_start_up_code() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let released = release_clean_file_pages();
        tracing::debug!(released, "start-up over: let go of its resident code pages");
    });
}

/// A mapping that [`release_clean_file_pages`] may drop.
#[derive(Debug, PartialEq, Eq)]
struct CleanMapping {
    start: usize,
    len: usize,
    /// Bytes resident (`Rss`).
    resident: usize,
}

/// The mappings in `smaps` (the format of `/proc/PID/smaps`) that map a file (a path),
/// are readable and private but not writable, and hold no anonymous page. Relocated
/// constants (RELRO) hold anonymous pages, so they are never among them.
fn clean_file_mappings(smaps: &str) -> Vec<CleanMapping> {
    let mut found = Vec::new();
    // The mapping being read: (start, end, a candidate), its Rss, whether Anonymous was 0.
    let mut current: Option<(usize, usize)> = None;
    let (mut resident, mut anonymous) = (0, None);
    let mut finish =
        |current: Option<(usize, usize)>, resident: usize, anonymous: Option<usize>| {
            if let (Some((start, end)), Some(0)) = (current, anonymous) {
                found.push(CleanMapping {
                    start,
                    len: end - start,
                    resident,
                });
            }
        };
    for line in smaps.lines() {
        if let Some(header) = mapping_header(line) {
            finish(current.take(), resident, anonymous);
            current = header;
            (resident, anonymous) = (0, None);
        } else if let Some(kb) = field_kb(line, "Rss:") {
            resident = kb * 1024;
        } else if let Some(kb) = field_kb(line, "Anonymous:") {
            anonymous = Some(kb);
        }
    }
    finish(current, resident, anonymous);
    found
}

/// A mapping's header line (`start-end perms offset dev inode [path]`): `Some(Some(range))`
/// for a candidate, `Some(None)` for another mapping, `None` for a field line.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let (a, b) = fields.next()?.split_once('-')?;
    let (start, end) = (
        usize::from_str_radix(a, 16).ok()?,
        usize::from_str_radix(b, 16).ok()?,
    );
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("");
    let candidate = matches!(perms, "r-xp" | "r--p") && path.starts_with('/') && end > start;
    Some(candidate.then_some((start, end)))
}

/// The value of a `Name:   N kB` field line.
fn field_kb(line: &str, name: &str) -> Option<usize> {
    line.strip_prefix(name)?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0250000 r--p 00000000 fe:00 10010645                   /usr/sbin/neighsyncd
Size:               2368 kB
Rss:                 704 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
55d0a0250000-55d0a0ace000 r-xp 00250000 fe:00 10010645                   /usr/sbin/neighsyncd
Size:               8696 kB
Rss:                5656 kB
Anonymous:             0 kB
55d0a0ace000-55d0a0b09000 r--p 00acd000 fe:00 10010645                   /usr/sbin/neighsyncd
Rss:                 236 kB
Anonymous:           236 kB
55d0a0b09000-55d0a0b0c000 rw-p 00b08000 fe:00 10010645                   /usr/sbin/neighsyncd
Rss:                  12 kB
Anonymous:             0 kB
7f5300000000-7f5300857000 rw-p 00000000 00:00 0
Rss:                8488 kB
Anonymous:          8488 kB
7f53079ae000-7f5307baf000 r--s 00001000 00:10 1038                       anon_inode:bpf-map
Rss:                2052 kB
Anonymous:             0 kB
7ffdb7bd0000-7ffdb7bd2000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7f53080fe000-7f5308254000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 640 kB
Anonymous:             0 kB
";

    #[test]
    fn only_unchanged_read_only_file_mappings_are_dropped() {
        let found = clean_file_mappings(SMAPS);
        assert_eq!(
            found,
            [
                CleanMapping {
                    start: 0x55d0a0000000,
                    len: 0x250000,
                    resident: 704 * 1024
                },
                CleanMapping {
                    start: 0x55d0a0250000,
                    len: 0x87e000,
                    resident: 5656 * 1024
                },
                CleanMapping {
                    start: 0x7f53080fe000,
                    len: 0x156000,
                    resident: 640 * 1024
                },
            ]
        );
    }

    #[test]
    fn a_mapping_whose_anonymous_count_is_missing_is_kept() {
        let smaps =
            "7f53080fe000-7f5308254000 r-xp 00026000 fe:00 326279 /lib/libc.so.6\nRss: 640 kB\n";
        assert_eq!(clean_file_mappings(smaps), []);
    }

    /// This test process drops its own code and constants and then goes on running code
    /// from them (the test harness, formatting, the allocator): they fault back in.
    #[test]
    fn code_runs_on_after_its_pages_are_dropped() {
        let released = release_clean_file_pages();
        assert!(released > 0, "nothing was resident to drop");
        let text = format!("{:?}", clean_file_mappings(SMAPS));
        assert!(text.contains("CleanMapping"));
    }
}
