#!/usr/bin/env python3
"""53-ipv6: one daemon bound to "127.0.0.1, ::1" (issue 14, IPv6).

1. The control port listens on both addresses, with one port number; HELO's
   IP is the address the client reached, in its family: ::1 / 127.0.0.1.
2. A member over ::1 and a member over 127.0.0.1 join one room: JOINED's
   SERVER_IP is "::1" (bare, no brackets) for the one and "127.0.0.1" for
   the other, with one PORT; each sees the other's CHAT, exact bytes.
3. The room port listens on both addresses: the IPv6 member attaches over
   ::1 and gets the IPv4 member's traffic there, exactly once; its JOIN_ID
   shown over 127.0.0.1 is refused (error 3: not the member's source
   address), the IPv4 member attaches over 127.0.0.1.
4. roomc -h ::1 and roomc -h localhost join and send (roomc's room
   connection goes to SERVER_IP, an IPv6 literal for the first).
5. max_clients_per_ip counts IPv6 clients by /64: in a private network
   namespace (unshare -rn: loopback with 2001:db8::1..3/64 and
   2001:db8:0:1::1/64), connections from 2001:db8::2 and ::3 count
   together, 2001:db8:0:1::1 is another client. Without unshare, part 5
   is skipped (printed), and tests/unit/test_iptable.c's /64 test stands."""
import os
import shutil
import socket
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

V6 = "::1"


def attach_req_of(ref, jid, name):
    return b"ATTACH_CHATROOM: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\n" % (ref, jid, name.encode())


def both_families():
    with Daemon(server={"bind": "127.0.0.1, ::1"}) as d:
        err = d.stderr()
        for ip in ("127.0.0.1", V6):
            check("control listening on %s:%d" % (ip, d.port) in err,
                  "no 'control listening on %s:%d' line:\n%s" % (ip, d.port, err[-2000:]))

        # 1. HELO over each family names the address in that family.
        c6 = d.connect("alice6", host=V6)
        c4 = d.connect("bob4")
        c6.send(helo_req("v6"))
        c6.expect(helo_reply("v6", d.port, ip=V6), what="HELO reply over ::1")
        c4.send(helo_req("v4"))
        c4.expect(helo_reply("v4", d.port, ip="127.0.0.1"), what="HELO reply over 127.0.0.1")

        # 2. One room, one port, two families (join() checks SERVER_IP).
        ref, id6, ip6, port = c6.join("room1", "alice6")
        ref4, id4, ip4, port4 = c4.join("room1", "bob4")
        check((ref4, port4) == (ref, port), "room1 differs by family: ref/port %s vs %s"
              % ((ref4, port4), (ref, port)))
        print("ipv6: JOINED SERVER_IP %s (v6 client) and %s (v4 client), PORT %d" % (ip6, ip4, port))
        c6.expect(join_announce(ref, "bob4"), what="bob4's join, seen over ::1")
        c4.chat(ref, id4, "bob4", "hello from 127.0.0.1")
        c4.expect(chat_frame(ref, "bob4", "hello from 127.0.0.1"))
        c6.expect(chat_frame(ref, "bob4", "hello from 127.0.0.1"), what="v4 member's CHAT over ::1")
        c6.chat(ref, id6, "alice6", "hello from ::1")
        c6.expect(chat_frame(ref, "alice6", "hello from ::1"))
        c4.expect(chat_frame(ref, "alice6", "hello from ::1"), what="v6 member's CHAT over 127.0.0.1")

        # 3. The room port over ::1; the capability is bound to the family's address.
        r6 = d.room_connect(port, "alice6-room", host=V6)
        r6.send(attach_req_of(ref, id6, "alice6"))
        r6.expect(attached_reply(ref, id6), what="ATTACHED over ::1")
        wrong = d.room_connect(port, "alice6-id-over-v4")
        wrong.send(attach_req_of(ref, id6, "alice6"))
        wrong.expect_error(3, context="alice6's JOIN_ID from 127.0.0.1 (she joined from ::1)")
        wrong.expect_closed()
        r4 = d.room_connect(port, "bob4-room")
        r4.send(attach_req_of(ref, id4, "bob4"))
        r4.expect(attached_reply(ref, id4), what="ATTACHED over 127.0.0.1")
        c4.chat(ref, id4, "bob4", "to the room ports")
        r6.expect(chat_frame(ref, "bob4", "to the room ports"), what="v4 CHAT on the ::1 room connection")
        r4.expect(chat_frame(ref, "bob4", "to the room ports"))
        r6.send(chat_req(ref, id6, "alice6", "from the ::1 room port"))
        r6.expect(chat_frame(ref, "alice6", "from the ::1 room port"))
        r4.expect(chat_frame(ref, "alice6", "from the ::1 room port"), what="v6 room-port CHAT over v4")
        expect_nothing_all([c6, c4, r6, r4])

        # 4. roomc by IPv6 literal and by name.
        for host, name in ((V6, "carol6"), ("localhost", "dave")):
            with Roomc(d.port, name, host=host) as rc:
                rc.write("join room1\n")
                r6.expect(join_announce(ref, name), timeout=2 * TIMEOUT,
                          what="roomc -h %s joining" % host)
                r4.expect(join_announce(ref, name))
                rc.write("send room1 hi from roomc -h %s\n" % host)
                frame = chat_frame(ref, name, "hi from roomc -h %s" % host)
                r6.expect(frame, what="roomc -h %s's CHAT" % host)
                r4.expect(frame)
                rc.expect_output("[room1] %s: hi from roomc -h %s" % (name, host))
                c4.chat(ref, id4, "bob4", "back to %s" % name)
                rc.expect_output("[room1] bob4: back to %s" % name)
                r6.expect(chat_frame(ref, "bob4", "back to %s" % name))
                r4.expect(chat_frame(ref, "bob4", "back to %s" % name))
                rc.write("disconnect\n")
                r6.expect(leave_announce(ref, name), what="roomc -h %s leaving" % host)
                r4.expect(leave_announce(ref, name))
                check(rc.wait() == 0, "roomc -h %s exited with %s\n  stderr: %s"
                      % (host, rc.rc, show(rc.err)))
            print("ipv6: roomc -h %s joined, sent and received" % host)
        d.assert_alive()


# ---- 5: /64 counting, inside a private network namespace ----

NETNS_ADDRS = ("2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1")


def refused(c, what):
    c.send(helo_req("over the limit"))
    f = c.expect_frame()
    m = ERROR_RE.match(f.raw)
    check(m and int(m.group(1)) == 7, "%s: expected ERROR_CODE: 7, got %s" % (what, show(f.raw)))
    c.expect_closed()


def per_64_in_netns():
    """Runs as root of a fresh user and network namespace."""
    setup = ["ip link set lo up"] + ["ip -6 addr add %s/64 dev lo nodad" % a for a in NETNS_ADDRS]
    for cmd in setup:
        subprocess.run(cmd.split(), check=True)
    with Daemon(server={"bind": "2001:db8::1"}, limits={"max_clients_per_ip": 2}) as d:
        a = Conn(d.port, host="2001:db8::1", label="a:2001:db8::2", daemon=d, source="2001:db8::2")
        b = Conn(d.port, host="2001:db8::1", label="b:2001:db8::3", daemon=d, source="2001:db8::3")
        d.conns += [a, b]
        a.send(helo_req("a"))
        a.expect(helo_reply("a", d.port, ip="2001:db8::1"))
        b.send(helo_req("b"))
        b.expect(helo_reply("b", d.port, ip="2001:db8::1"))
        third = Conn(d.port, host="2001:db8::1", label="c:2001:db8::2", daemon=d, source="2001:db8::2")
        d.conns.append(third)
        refused(third, "a third connection from 2001:db8::/64 with max_clients_per_ip = 2")
        other = Conn(d.port, host="2001:db8::1", label="d:2001:db8:0:1::1", daemon=d,
                     source="2001:db8:0:1::1")
        d.conns.append(other)
        other.send(helo_req("other /64"))
        other.expect(helo_reply("other /64", d.port, ip="2001:db8::1"), what="a client of another /64")
        print("ipv6: max_clients_per_ip 2: 2001:db8::2 + 2001:db8::3 counted as one /64 "
              "(third refused, error 7); 2001:db8:0:1::1 admitted")


def per_64():
    if not shutil.which("unshare") or not shutil.which("ip"):
        print("ipv6: /64 counting: not run here (no unshare or ip); see tests/unit/test_iptable.c")
        return
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        print("ipv6: /64 counting: not run here (unshare -rn refused); see tests/unit/test_iptable.c")
        return
    p = subprocess.run(["unshare", "-rn", sys.executable, os.path.abspath(__file__), "--netns"],
                       timeout=TEST_BOUND / 2)
    check(p.returncode == 0, "the /64 part (in a network namespace) failed: exit %s" % p.returncode)


def main():
    try:
        socket.socket(socket.AF_INET6).bind((V6, 0))
    except OSError as e:
        print("ipv6: not run: ::1 is not usable on this machine (%s)" % e)
        return
    both_families()
    per_64()


if len(sys.argv) > 1 and sys.argv[1] == "--netns":
    run(per_64_in_netns)
else:
    run(main)
