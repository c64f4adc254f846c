"""Rebuild the classic BPF corpus cases: real tcpdump filters over hand-made packets.

Each case is a filter expression, compiled here by ``tcpdump -ddd -y EN10MB``
(Debian package ``tcpdump``; no network interface needed), and a list of packets
built below with the verdict the filter must give each one. The verdicts are
written by hand from the expression (262144, tcpdump's snap length, for a match;
0 otherwise), never taken from a run. Run ``python corpus/cbpf/build_cases.py``
to rewrite the .data files next to this script.
"""
from __future__ import annotations

import struct
import subprocess
from pathlib import Path

MATCH, DROP = 262144, 0
HERE = Path(__file__).resolve().parent
MAC_A, MAC_B, BROADCAST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002"), b"\xff" * 6


def eth(ethertype: int, payload: bytes, dst: bytes = MAC_B) -> bytes:
    return dst + MAC_A + struct.pack(">H", ethertype) + payload


def vlan(outer: int, inner: int, payload: bytes) -> bytes:
    """An 802.1Q (or 802.1ad) tag: TPID ``outer``, VLAN 5, then the inner ethertype."""
    return MAC_B + MAC_A + struct.pack(">HHH", outer, 5, inner) + payload


def ipv4(proto: int, payload: bytes, src: str = "192.0.2.1", dst: str = "198.51.100.2",
         frag: int = 0, options: bytes = b"") -> bytes:
    """IPv4 header (IHL from the options' length) + payload; ``frag`` is the flags/offset word."""
    ihl = 5 + len(options) // 4
    header = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 1, frag, 64, proto, 0,
                         bytes(int(x) for x in src.split(".")), bytes(int(x) for x in dst.split(".")))
    return header + options + payload


def ipv6(next_header: int, payload: bytes) -> bytes:
    return struct.pack(">IHBB", 0x60000000, len(payload), next_header, 64) + bytes(15) + b"\x01" \
        + bytes(15) + b"\x02" + payload


def tcp(sport: int, dport: int, flags: int = 0x10) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 0, 0x50, flags, 8192, 0, 0)


def udp(sport: int, dport: int) -> bytes:
    return struct.pack(">HHHH", sport, dport, 12, 0) + b"data"


def icmp(kind: int) -> bytes:
    return struct.pack(">BBHHH", kind, 0, 0, 1, 1)


def arp(sender: str, target: str) -> bytes:
    ip = lambda text: bytes(int(x) for x in text.split("."))  # noqa: E731
    return struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + ip(sender) + bytes(6) + ip(target)


SYN, ACK, FIN = 0x02, 0x10, 0x01

CASES = [
    ("ip", "ip", [
        ("IPv4/TCP", eth(0x0800, ipv4(6, tcp(1000, 80))), MATCH),
        ("IPv6/TCP", eth(0x86DD, ipv6(6, tcp(1000, 80))), DROP),
        ("ARP", eth(0x0806, arp("10.0.0.1", "10.0.0.2")), DROP),
        ("IPv4 inside a VLAN tag: the outer ethertype is 0x8100", vlan(0x8100, 0x0800, ipv4(6, tcp(1, 2))), DROP),
        ("a 10-byte runt: the ethertype load is out of the packet", bytes(range(10)), DROP),
    ]),
    ("tcp_port_80", "tcp port 80", [
        ("IPv4/TCP source port 80", eth(0x0800, ipv4(6, tcp(80, 40000))), MATCH),
        ("IPv4/TCP destination port 80", eth(0x0800, ipv4(6, tcp(40000, 80))), MATCH),
        ("IPv4/TCP 8080 -> 443", eth(0x0800, ipv4(6, tcp(8080, 443))), DROP),
        ("IPv4/UDP to port 80", eth(0x0800, ipv4(17, udp(5000, 80))), DROP),
        ("IPv6/TCP to port 80", eth(0x86DD, ipv6(6, tcp(5000, 80))), MATCH),
        ("IPv4/TCP fragment at offset 800 bytes (ports not in it)", eth(0x0800, ipv4(6, tcp(80, 80), frag=100)), DROP),
        ("IPv4 with 4 bytes of options (IHL 6): ports found via ldxb 4*([14]&0xf)",
         eth(0x0800, ipv4(6, tcp(1234, 80), options=b"\x01\x01\x01\x00")), MATCH),
        ("IPv4/TCP cut after the source port 1234: the destination port load falls off", eth(0x0800, ipv4(6, tcp(1234, 80)))[:36], DROP),
    ]),
    ("udp_dst_port_53", "udp and dst port 53", [
        ("IPv4/UDP to 53", eth(0x0800, ipv4(17, udp(33000, 53))), MATCH),
        ("IPv4/UDP from 53 (a reply)", eth(0x0800, ipv4(17, udp(53, 33000))), DROP),
        ("IPv4/TCP to 53", eth(0x0800, ipv4(6, tcp(33000, 53))), DROP),
        ("IPv6/UDP to 53", eth(0x86DD, ipv6(17, udp(33000, 53))), MATCH),
    ]),
    ("icmp_echo_request", "icmp[icmptype] == icmp-echo", [
        ("ICMP echo request (type 8)", eth(0x0800, ipv4(1, icmp(8))), MATCH),
        ("ICMP echo reply (type 0)", eth(0x0800, ipv4(1, icmp(0))), DROP),
        ("TCP whose first byte is 8", eth(0x0800, ipv4(6, tcp(0x0800, 1))), DROP),
        ("ICMP echo request in a non-first fragment", eth(0x0800, ipv4(1, icmp(8), frag=0x20)), DROP),
    ]),
    ("arp", "arp", [
        ("ARP request", eth(0x0806, arp("10.0.0.1", "10.0.0.2"), dst=BROADCAST), MATCH),
        ("IPv4", eth(0x0800, ipv4(17, udp(1, 2))), DROP),
        ("RARP (0x8035) is not arp", eth(0x8035, arp("0.0.0.0", "0.0.0.0")), DROP),
    ]),
    ("vlan_and_ip", "vlan and ip", [
        ("802.1Q tag, inner IPv4", vlan(0x8100, 0x0800, ipv4(6, tcp(1, 2))), MATCH),
        ("802.1Q tag, inner IPv6", vlan(0x8100, 0x86DD, ipv6(6, tcp(1, 2))), DROP),
        ("802.1ad (0x88a8) tag, inner IPv4", vlan(0x88A8, 0x0800, ipv4(6, tcp(1, 2))), MATCH),
        ("untagged IPv4", eth(0x0800, ipv4(6, tcp(1, 2))), DROP),
    ]),
    ("ip6_and_tcp", "ip6 and tcp", [
        ("IPv6/TCP", eth(0x86DD, ipv6(6, tcp(1, 2))), MATCH),
        ("IPv6/UDP", eth(0x86DD, ipv6(17, udp(1, 2))), DROP),
        ("IPv4/TCP", eth(0x0800, ipv4(6, tcp(1, 2))), DROP),
        ("IPv6 fragment header (44) followed by TCP", eth(0x86DD, ipv6(44, bytes([6, 0, 0, 1, 0, 0, 0, 7]) + tcp(1, 2))), MATCH),
        ("IPv6 hop-by-hop header (0) first: not followed by the filter", eth(0x86DD, ipv6(0, bytes([6, 0]) + bytes(6) + tcp(1, 2))), DROP),
    ]),
    ("greater_100", "greater 100", [
        ("exactly 100 bytes", bytes(100), MATCH),
        ("99 bytes", bytes(99), DROP),
        ("1514 bytes", bytes(1514), MATCH),
    ]),
    ("less_64", "less 64", [
        ("64 bytes", bytes(64), MATCH),
        ("65 bytes", bytes(65), DROP),
        ("14 bytes", bytes(14), MATCH),
    ]),
    ("tcp_syn", "tcp[tcpflags] & tcp-syn != 0", [
        ("SYN", eth(0x0800, ipv4(6, tcp(1, 2, SYN))), MATCH),
        ("SYN+ACK", eth(0x0800, ipv4(6, tcp(1, 2, SYN | ACK))), MATCH),
        ("ACK", eth(0x0800, ipv4(6, tcp(1, 2, ACK))), DROP),
        ("UDP", eth(0x0800, ipv4(17, udp(1, 2))), DROP),
        ("SYN behind 8 bytes of IP options (IHL 7)", eth(0x0800, ipv4(6, tcp(1, 2, SYN), options=bytes(8))), MATCH),
    ]),
    ("ip_non_first_fragment", "ip[6:2] & 0x1fff != 0", [
        ("first fragment: MF set, offset 0", eth(0x0800, ipv4(17, udp(1, 2), frag=0x2000)), DROP),
        ("offset 185 (1480 bytes)", eth(0x0800, ipv4(17, b"x" * 8, frag=185)), MATCH),
        ("DF set, offset 0", eth(0x0800, ipv4(17, udp(1, 2), frag=0x4000)), DROP),
    ]),
    ("net_10_slash_8", "net 10.0.0.0/8", [
        ("IPv4 from 10.1.2.3", eth(0x0800, ipv4(17, udp(1, 2), src="10.1.2.3")), MATCH),
        ("IPv4 to 10.9.9.9", eth(0x0800, ipv4(17, udp(1, 2), dst="10.9.9.9")), MATCH),
        ("IPv4 192.168.1.1 -> 172.16.0.1", eth(0x0800, ipv4(17, udp(1, 2), "192.168.1.1", "172.16.0.1")), DROP),
        ("ARP from 10.0.0.5 (net also matches ARP)", eth(0x0806, arp("10.0.0.5", "192.168.0.1")), MATCH),
        ("ARP between 192.168 addresses", eth(0x0806, arp("192.168.0.5", "192.168.0.1")), DROP),
        ("IPv6", eth(0x86DD, ipv6(17, udp(1, 2))), DROP),
    ]),
    ("host_and_not_port_22", "host 192.168.1.1 and not port 22", [
        ("TCP 192.168.1.1:5000 -> :80", eth(0x0800, ipv4(6, tcp(5000, 80), src="192.168.1.1")), MATCH),
        ("TCP to 192.168.1.1 port 22", eth(0x0800, ipv4(6, tcp(5000, 22), dst="192.168.1.1")), DROP),
        ("UDP from 192.168.1.1 port 22", eth(0x0800, ipv4(17, udp(22, 5000), src="192.168.1.1")), DROP),
        ("ICMP to 192.168.1.1 (no ports)", eth(0x0800, ipv4(1, icmp(8), dst="192.168.1.1")), MATCH),
        ("TCP port 22 fragment to 192.168.1.1: ports unknown, so 'not port 22' holds",
         eth(0x0800, ipv4(6, tcp(22, 22), dst="192.168.1.1", frag=10)), MATCH),
        ("TCP between other hosts", eth(0x0800, ipv4(6, tcp(5000, 80))), DROP),
        ("ARP asking for 192.168.1.1", eth(0x0806, arp("192.168.1.7", "192.168.1.1")), MATCH),
    ]),
    ("ether_broadcast", "ether broadcast", [
        ("to ff:ff:ff:ff:ff:ff", eth(0x0806, arp("10.0.0.1", "10.0.0.2"), dst=BROADCAST), MATCH),
        ("unicast", eth(0x0800, ipv4(17, udp(1, 2))), DROP),
        ("IPv4 multicast MAC", eth(0x0800, ipv4(17, udp(1, 2)), dst=bytes.fromhex("01005e000001")), DROP),
    ]),
    ("udp_portrange_1000_2000", "udp portrange 1000-2000", [
        ("IPv4/UDP 999 -> 2001", eth(0x0800, ipv4(17, udp(999, 2001))), DROP),
        ("IPv4/UDP 999 -> 1000", eth(0x0800, ipv4(17, udp(999, 1000))), MATCH),
        ("IPv4/UDP 2000 -> 3000", eth(0x0800, ipv4(17, udp(2000, 3000))), MATCH),
        ("IPv6/UDP 1500 -> 53", eth(0x86DD, ipv6(17, udp(1500, 53))), MATCH),
        ("IPv4/TCP 1500 -> 1500", eth(0x0800, ipv4(6, tcp(1500, 1500))), DROP),
    ]),
    ("icmp6", "icmp6", [
        ("IPv6/ICMPv6", eth(0x86DD, ipv6(58, icmp(128))), MATCH),
        ("IPv6 fragment header then ICMPv6", eth(0x86DD, ipv6(44, bytes([58, 0, 0, 1, 0, 0, 0, 7]) + icmp(128))), MATCH),
        ("IPv6/UDP", eth(0x86DD, ipv6(17, udp(1, 2))), DROP),
        ("IPv4/ICMP", eth(0x0800, ipv4(1, icmp(8))), DROP),
    ]),
]


def tcpdump_program(expression: str) -> str:
    completed = subprocess.run(["tcpdump", "-ddd", "-y", "EN10MB", expression],
                               capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def render(name: str, expression: str, packets: list[tuple[str, bytes, int]], program: str) -> str:
    lines = ["-- description", f"tcpdump filter '{expression}' over {len(packets)} hand-made packets "
             "(262144 = accept, 0 = drop).", f"# tcpdump -ddd -y EN10MB '{expression}'",
             "# Generated by corpus/cbpf/build_cases.py: edit the script, not this file.", "-- cbpf", program]
    for comment, packet, _ in packets:
        lines += ["-- mem", f"# {comment}"]
        lines += [" ".join(f"{b:02x}" for b in packet[i:i + 16]) for i in range(0, len(packet), 16)] or ["# (empty)"]
    lines += ["-- result", " ".join(str(verdict) for _, _, verdict in packets)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for name, expression, packets in CASES:
        (HERE / f"{name}.data").write_text(render(name, expression, packets, tcpdump_program(expression)))
    print(f"wrote {len(CASES)} cases")
