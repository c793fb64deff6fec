//! Tables as SONiC's CLI prints them: Python `tabulate`'s default layout (columns two spaces
//! apart, a dashed rule under the headers, each column at least its header plus two wide,
//! all-integer columns right-aligned, no trailing blanks), rows in natural order, and `show arp`
//! / `show ndp`'s closing line.

use std::cmp::Ordering;

use neighsyncd_api::NeighborRecord;

/// The table, one line per entry, without a trailing newline.
pub fn tabulate(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let numeric: Vec<bool> = (0..n)
        .map(|c| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r.get(c).is_some_and(|v| v.parse::<i64>().is_ok()))
        })
        .collect();
    let widths: Vec<usize> = (0..n)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .fold(headers[c].chars().count() + 2, usize::max)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .zip(&widths)
            .zip(&numeric)
            .map(|((v, &w), &right)| {
                if right {
                    format!("{v:>w$}")
                } else {
                    format!("{v:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![
        line(&mut headers.iter().copied()),
        widths
            .iter()
            .map(|&w| "-".repeat(w))
            .collect::<Vec<_>>()
            .join("  "),
    ];
    out.extend(rows.iter().map(|r| line(&mut r.iter().map(String::as_str))));
    out.join("\n")
}

/// `show arp` / `show ndp`'s last line (with its trailing blank, as SONiC prints it).
pub fn total(n: usize) -> String {
    format!("Total number of entries {n} ")
}

/// Natural order (`natsort`): runs of digits compare as numbers, the rest as text, so
/// 10.0.0.9 comes before 10.0.0.10.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let o = match (da, db) {
            (true, true) => {
                let (ta, tb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
                ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
            }
            (false, false) => xa.cmp(xb),
            // natsort puts numbers before text.
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// Which table: `show arp` (IPv4) or `show ndp` (IPv6, with the state).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sonic {
    Arp,
    Ndp,
}

/// The rows of `show arp` / `show ndp` from the daemon's records: the kernel's neighbors
/// with a link-layer address that are not NOARP (what `arp -n` and `ip -6 neigh` list). As upstream: a neighbor
/// on `VlanN` shows VLAN N, and its port is the FDB's, which the daemon does not read, so the
/// Iface is `-` (as upstream shows when the FDB has no entry).
pub fn sonic(kind: Sonic, records: &[NeighborRecord]) -> String {
    let want = match kind {
        Sonic::Arp => "IPv4",
        Sonic::Ndp => "IPv6",
    };
    let mut rows: Vec<Vec<String>> = records
        .iter()
        .filter(|r| r.family == want)
        // NOARP entries (multicast, say) are not listed by `arp -n` or `ip neigh`.
        .filter(|r| r.kernel_state.as_deref() != Some("NOARP"))
        .filter_map(|r| {
            let mac = r.kernel_mac.clone()?;
            let (iface, vlan) = match r.ifname.strip_prefix("Vlan") {
                Some(id) if id.parse::<u16>().is_ok() => ("-".to_string(), id.to_string()),
                _ => (r.ifname.clone(), "-".to_string()),
            };
            let mut row = vec![r.ip.to_string(), mac, iface, vlan];
            if kind == Sonic::Ndp {
                row.push(r.kernel_state.as_deref().unwrap_or("-").to_string());
            }
            Some(row)
        })
        .collect();
    rows.sort_by(|a, b| natural_cmp(&a[0], &b[0]));
    let headers: &[&str] = match kind {
        Sonic::Arp => &["Address", "MacAddress", "Iface", "Vlan"],
        Sonic::Ndp => &["Address", "MacAddress", "Iface", "Vlan", "Status"],
    };
    format!("{}\n{}", tabulate(headers, &rows), total(rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Python tabulate 0.10's own output for the same input (`tabulate(rows, headers)`).
    #[test]
    fn lays_out_a_table_as_python_tabulate_does() {
        let h = ["Address", "MacAddress", "Iface", "Vlan"];
        assert_eq!(
            tabulate(
                &h,
                &[
                    row(&["10.0.0.2", "02:00:00:00:00:02", "Ethernet0", "-"]),
                    row(&["10.0.0.10", "02:00:00:00:00:0a", "Ethernet4", "1000"]),
                ]
            ),
            "Address    MacAddress         Iface      Vlan\n---------  -----------------  ---------  ------\n10.0.0.2   02:00:00:00:00:02  Ethernet0  -\n10.0.0.10  02:00:00:00:00:0a  Ethernet4  1000"
        );
        assert_eq!(
            tabulate(
                &h,
                &[
                    row(&["10.0.0.2", "02:00:00:00:00:02", "-", "1000"]),
                    row(&["10.0.0.3", "02:00:00:00:00:03", "-", "20"]),
                ]
            ),
            "Address    MacAddress         Iface      Vlan\n---------  -----------------  -------  ------\n10.0.0.2   02:00:00:00:00:02  -          1000\n10.0.0.3   02:00:00:00:00:03  -            20"
        );
        assert_eq!(
            tabulate(&h, &[]),
            "Address    MacAddress    Iface    Vlan\n---------  ------------  -------  ------"
        );
        assert_eq!(
            tabulate(
                &["Address", "MacAddress", "Iface", "Vlan", "Status"],
                &[row(&[
                    "fc00::72",
                    "52:54:00:87:8f:2c",
                    "PortChannel0001",
                    "-",
                    "REACHABLE"
                ])]
            ),
            "Address    MacAddress         Iface            Vlan    Status\n---------  -----------------  ---------------  ------  ---------\nfc00::72   52:54:00:87:8f:2c  PortChannel0001  -       REACHABLE"
        );
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["10.0.0.10", "10.0.0.9", "10.0.1.1", "10.0.0.100", "9.0.0.1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["9.0.0.1", "10.0.0.9", "10.0.0.10", "10.0.0.100", "10.0.1.1"]
        );
    }
}
