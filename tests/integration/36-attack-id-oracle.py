#!/usr/bin/env python3
"""36-attack-id-oracle: issue 10, attack 1 (hijacking a member by its JOIN_ID).

An outsider probes JOIN_IDs with LEAVE_CHATROOM: 10,000 random ids (/FACTOR)
plus every live id of other connections, with the right room and name. Every
reply must be the same echo, LEFT_CHATROOM: <ref>\\nJOIN_ID: <id>\\n, with
nothing else, and nobody may have left (SPEC §2.1). On the room port
(SPEC §2.2), a capability is accepted only from the member's control
address: the right (ref, JOIN_ID, name) from 127.0.0.2 is refused (3); and
refused attempts from one address are throttled after IPTABLE_CAP_BURST = 5:
the sixth and later get error 9 before any lookup, the right capability
included, with one log line for the episode. The member itself (from
127.0.0.1) still attaches. The other requests that take a JOIN_ID (CHAT,
HISTORY, SET_TOPIC on the control port; CHAT on a room connection) answer a
live id of another connection byte for byte as they answer a dead one."""
import os
import random
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from roomtest import *  # noqa: E402,F401,F403

CAP_BURST = 5  # server/iptable.h IPTABLE_CAP_BURST
MEMBERS = 24
PROBES = 10000 // FACTOR
# The probes are about the answers, not about rates.
FAST = {"rate": 1000000, "burst": 1000000, "rate_per_ip": 1000000, "burst_per_ip": 1000000}


def leave_probes(d, members, refs):
    out = d.connect("outsider")
    ref_a = refs[0]
    live = [(ref, jid, name) for (ref, jid, name, _) in members]
    rng = random.Random(36)
    probes = [(ref_a, rng.randint(1, 2 ** 31 - 1), "member0") for _ in range(PROBES)] + live
    rng.shuffle(probes)
    t0 = time.monotonic()
    for i in range(0, len(probes), 500):
        chunk = probes[i:i + 500]
        out.send(b"".join(leave_req(ref, jid, name) for ref, jid, name in chunk))
        expected = b"".join(left_reply(ref, jid) for ref, jid, _ in chunk)
        out.expect(expected, timeout=TIMEOUT * 5, what="LEAVE probe echoes %d..%d" % (i, i + len(chunk)))
    secs = time.monotonic() - t0
    out.expect_nothing()
    print("attack 1: %d LEAVE probes (%d random, %d live elsewhere) -> %d identical LEFT echoes, "
          "0 errors, in %.2fs" % (len(probes), PROBES, len(live), len(probes), secs))
    # Nobody left: no announcement anywhere, and every member still gets chat.
    expect_nothing_all([c for (_, _, _, c) in members])
    for ref in refs:
        speaker = next(m for m in members if m[0] == ref)
        speaker[3].chat(ref, speaker[1], speaker[2], "still here?")
        for (r, _, _, c) in members:
            if r == ref:
                c.expect_chat(ref, speaker[2], "still here?")
    out.ping()


def other_requests(d, members, refs):
    """CHAT, HISTORY, SET_TOPIC with live ids of others and with dead ids:
    the reply bytes may not depend on which."""
    out = d.connect("outsider2")
    rng = random.Random(8)
    live = [(ref, jid, name) for (ref, jid, name, _) in members]
    dead = [(ref, rng.randint(1, 2 ** 31 - 1), name) for (ref, _, name) in live]
    kinds = {
        "CHAT": lambda ref, jid, name: chat_req(ref, jid, name, "probe"),
        "HISTORY": lambda ref, jid, name: b"HISTORY: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\n"
                                          % (ref, jid, name.encode()),
        "SET_TOPIC": lambda ref, jid, name: b"SET_TOPIC: %d\nJOIN_ID: %d\nCLIENT_NAME: %s\nTOPIC: x\n"
                                            % (ref, jid, name.encode()),
    }
    for kind, req in kinds.items():
        answers = set()
        for probe in live + dead:
            out.send(req(*probe))
            answers.add(out.expect_frame().raw)
        check(len(answers) == 1, "%s with live and dead JOIN_IDs got different replies: %s"
              % (kind, [show(a) for a in answers]))
    # CHAT on an attached room connection with someone else's id.
    ref, jid, name, ctl = members[0]
    r = d.room_connect(d.member_ports[ref], "probe-room")
    r.send(attach_req(ref, jid, name))
    r.expect(attached_reply(ref, jid))
    answers = set()
    for (pref, pjid, pname) in live[1:] + dead:
        if pref == ref:
            r.send(chat_req(ref, pjid, pname, "probe"))
            answers.add(r.expect_frame().raw)
    check(len(answers) == 1, "room-port CHAT with live and dead JOIN_IDs got different replies: %s"
          % [show(a) for a in answers])
    r.close()
    d.conns.remove(r)
    ctl.ping()
    expect_nothing_all([c for (_, _, _, c) in members])
    print("attack 1: CHAT, HISTORY, SET_TOPIC (control) and CHAT (room port) with %d live ids of "
          "others and %d dead ids: one reply each, the same for both" % (len(live), len(dead)))


def attach_bruteforce(d, members):
    ref, jid, name, ctl = members[0]
    port = d.member_ports[ref]
    replies = []

    def attempt(req, source):
        r = d.room_connect(port, "attacker-room", source=source)
        r.send(req)
        f = r.expect_frame()
        m = ERROR_RE.match(f.raw)
        check(m, "refused ATTACH: expected an error, got %s" % show(f.raw))
        r.expect_closed()
        r.close()
        return int(m.group(1))

    # The right capability from another address: refused like a wrong one.
    replies.append(attempt(attach_req(ref, jid, name), "127.0.0.2"))
    check(replies[0] == 3, "right capability from 127.0.0.2: expected error 3, got %d" % replies[0])
    rng = random.Random(1)
    for _ in range(12):
        replies.append(attempt(attach_req(ref, rng.randint(1, 2 ** 31 - 1), name), "127.0.0.2"))
    refused = next((i for i, code in enumerate(replies) if code != 3), len(replies))
    check(refused == CAP_BURST and all(c == 9 for c in replies[refused:]),
          "ATTACH attempts from one address: expected %d x error 3 then error 9, got %s"
          % (CAP_BURST, replies))
    # Throttled: even the right capability gets 9, so the answer tells nothing.
    code = attempt(attach_req(ref, jid, name), "127.0.0.2")
    check(code == 9, "right capability from a throttled address: expected 9, got %d" % code)
    log = d.stderr()
    lines = [l for l in log.splitlines() if "127.0.0.2" in l and "refused capability checks" in l]
    check(len(lines) == 1, "expected one log line for the throttling episode, got %d:\n%s"
          % (len(lines), "\n".join(lines)))
    print("attack 1: ATTACH brute force from one address: %d refused (error 3, the right id from "
          "the wrong address among them), then throttled (error 9) for the other %d tries"
          % (refused, len(replies) - refused + 1))
    # The member itself, from its own address, still attaches and is served.
    r = d.room_connect(port, "member-room")
    r.send(attach_req(ref, jid, name))
    r.expect(attached_reply(ref, jid), what="ATTACHED for the member from its own address")
    other = next(m for m in members if m[0] == ref and m[1] != jid)
    other[3].chat(ref, other[1], other[2], "to the attached one")
    r.expect_chat(ref, other[2], "to the attached one")
    other[3].expect_chat(ref, other[2], "to the attached one")
    ctl.expect_nothing()


def main():
    with Daemon(limits=dict(FAST)) as d:
        members = []
        refs = []
        d.member_ports = {}
        for i in range(MEMBERS):
            room = "room%d" % (i % 2)
            c = d.connect("member%d" % i)
            ref, jid, _, port = c.join(room, "member%d" % i)
            for (r, _, _, other) in members:
                if r == ref:
                    other.expect(join_announce(ref, "member%d" % i))
            if ref not in refs:
                refs.append(ref)
            d.member_ports[ref] = port
            members.append((ref, jid, "member%d" % i, c))
        leave_probes(d, members, refs)
        other_requests(d, members, refs)
        attach_bruteforce(d, members)
        d.assert_alive()


run(main)
