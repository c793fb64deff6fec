//! Types shared by the eBPF program (`neighsyncd-ebpf`) and the daemon.
//! Owned by the eBPF work; placeholder until it lands.
#![no_std]
