#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets: tests/fuzz/corpus/{proto,control}/.

The seeds are committed; this script is how they were made, so that they can
be regenerated or extended (it rewrites only the files it names). Input
formats (see the targets' header comments):

  fuzz_proto:   byte 0 = max_request (64 + (b & 127) * 64) and bit 7 the
                quiet-period path, byte 1 = chunk pattern (and where the
                sender pauses), then the stream (requests or replies: the target
                parses every input in both dialects).
  fuzz_control: byte 0 = flags (0x01 two connections, 0x06 write pattern,
                0x08 far peer, 0x10 slow reader, 0x20 room creation off,
                0x40 tight rate limit), then segments separated by
                0xff; "$J<d>"/"$R<d>" become the JOIN_ID/ROOM_REF of the d-th
                JOINED_CHATROOM reply received.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\xff"


def join(room, name, crlf=False, sep=": "):
    s = (f"JOIN_CHATROOM{sep}{room}\nCLIENT_IP{sep}0\nPORT{sep}0\n"
         f"CLIENT_NAME{sep}{name}\n")
    return crlf_(s, crlf)


def leave(ref, jid, name, crlf=False):
    return crlf_(f"LEAVE_CHATROOM: {ref}\nJOIN_ID: {jid}\nCLIENT_NAME: {name}\n", crlf)


def chat(ref, jid, name, text, crlf=False):
    return crlf_(f"CHAT: {ref}\nJOIN_ID: {jid}\nCLIENT_NAME: {name}\nMESSAGE: {text}\n\n", crlf)


def disconnect(name, crlf=False):
    return crlf_(f"DISCONNECT: 0\nPORT: 0\nCLIENT_NAME: {name}\n", crlf)


def attach(ref, jid, name):
    return f"ATTACH_CHATROOM: {ref}\nJOIN_ID: {jid}\nCLIENT_NAME: {name}\n".encode()


def crlf_(s, crlf):
    if crlf:
        s = s.replace("\n", "\r\n")
    return s.encode()


# ---- fuzz_proto: header (max_request byte, chunk pattern byte) + stream ----

BIG, SMALL, MID = 0x7F, 0x00, 0x0F  # max_request 8192, 64, 1024
QUIET = 0x80                         # byte 0 bit 7: the quiet-period path

PROTO = {
    "req-helo": (BIG, 0x00, b"HELO hello there\n"),
    "req-helo-crlf-colon": (BIG, 0x01, b"HELO:text\r\nHELO\r\nHELO  spaced  \r\n"),
    "req-kill": (BIG, 0x02, b"KILL_SERVICE\n"),
    "req-join-lf": (BIG, 0x03, join("lobby", "alice")),
    "req-join-crlf-nospace": (BIG, 0x05, join("lobby", "alice", crlf=True, sep=":")),
    "req-join-reordered-spacing": (MID, 0x06, b"  JOIN_CHATROOM :  room1  \n"
                                   b"CLIENT_NAME:\tbob \r\nPORT :0\nCLIENT_IP:   0\n"),
    "req-leave": (BIG, 0x07, leave(1, 123456, "alice")),
    "req-disconnect": (BIG, 0x0B, disconnect("alice")),
    "req-chat": (BIG, 0x04, chat(1, 42, "alice", "hello world")),
    "req-chat-multiline": (BIG, 0x09, b"CHAT: 2\nJOIN_ID: 7\nCLIENT_NAME: bob\n"
                           b"MESSAGE: line one\n  line two indented\nJOIN_ID: 9\nHELO x\n\n"),
    "req-chat-multiline-crlf": (BIG, 0x0A, b"CHAT: 2\r\nJOIN_ID: 7\r\nCLIENT_NAME: bob\r\n"
                                b"MESSAGE: a\r\nb \r\n c\r\n\r\n"),
    "req-chat-empty-text": (BIG, 0x0D, b"CHAT: 1\nJOIN_ID: 1\nCLIENT_NAME: a\nMESSAGE:\n\n"),
    "req-attach": (BIG, 0x0E, attach(3, 99, "carol")),
    "req-coalesced-session": (BIG, 0x0F, b"HELO x\n\n" + join("lobby", "alice") + b"\n\n"
                              + chat(1, 1234, "alice", "hi") + leave(1, 1234, "alice")
                              + b"\n\n" + disconnect("alice") + b"\n\n"),
    "req-blank-lines": (BIG, 0x11, b"\n\r\n \t \n\n" + join("r", "n") + b"\n \n\n"),
    "err-unknown-command": (BIG, 0x12, b"FOO: bar\nJOIN_ID: 3\n\n" + join("r", "n")),
    "err-lowercase-key": (BIG, 0x13, b"join_chatroom: r\nclient_ip: 0\n\nHELO ok\n"),
    "err-repeated-field": (BIG, 0x15, b"JOIN_CHATROOM: r\nCLIENT_IP: 0\nCLIENT_IP: 0\n"
                           b"PORT: 0\nCLIENT_NAME: x\n\nHELO after\n"),
    "err-missing-field": (BIG, 0x16, b"LEAVE_CHATROOM: 1\nJOIN_ID: 5\n\nHELO after\n"),
    "err-head-inside-message": (BIG, 0x17, b"JOIN_CHATROOM: r\nCLIENT_IP: 0\n"
                                b"LEAVE_CHATROOM: 1\nJOIN_ID: 2\nCLIENT_NAME: z\n"),
    "err-nul-byte": (BIG, 0x19, b"HELO a\x00b\nJOIN_ID: 1\x00\n\nHELO fine\n"),
    "err-message-before-fields": (BIG, 0x1A, b"CHAT: 1\nMESSAGE: early\nJOIN_ID: 1\n"
                                  b"CLIENT_NAME: a\n\nHELO again\n"),
    "err-bad-ints": (BIG, 0x1B, leave("+1", "99999999999999999999", "a")
                     + chat("-5", "0x10", "a", "t") + attach(" 7", "2147483648", "a")),
    "err-too-large-line": (SMALL, 0x1C, b"HELO " + b"x" * 200 + b"\nHELO small\n"),
    "err-too-large-message": (SMALL, 0x1D, join("r" * 20, "n" * 20) + b"HELO y\n"),
    "err-skipping-resync": (BIG, 0x1E, b"garbage line\nmore garbage: x\n\x01\x02\n"
                            b"HELO resynced\n"),
    "exact-limit": (0x01, 0x20, b"HELO " + b"a" * 122 + b"\nHELO " + b"b" * 123 + b"\n"),
    "rep-helo": (BIG, 0x21, b"HELO text\nIP:127.0.0.1\nPort:9000\nStudentID:roomd\n"),
    "rep-joined": (BIG, 0x22, b"JOINED_CHATROOM: lobby\nSERVER_IP: 127.0.0.1\nPORT: 9001\n"
                   b"ROOM_REF: 1\nJOIN_ID: 1804289383\n"),
    "rep-left-and-announce": (BIG, 0x23, b"LEFT_CHATROOM: 1\nJOIN_ID: 1804289383\n"
                              b"CHAT: 1\nCLIENT_NAME: alice\n"
                              b"MESSAGE: alice has left this chatroom.\n\n"),
    "rep-chat-multiline": (BIG, 0x25, b"CHAT: 3\nCLIENT_NAME: bob\nMESSAGE: one\n two\n"
                           b"ERROR_CODE: 1\n\n"),
    "rep-error": (BIG, 0x26, b"ERROR_CODE: 5\nERROR_DESCRIPTION: name already in use in that room\n"),
    "rep-attached": (BIG, 0x27, b"ATTACHED_CHATROOM: 2\nJOIN_ID: 77\n"),
    "rep-stream-crlf": (MID, 0x29, (b"HELO x\nIP:10.0.0.1\nPort:1\nStudentID:id\n"
                                    b"JOINED_CHATROOM: r\nSERVER_IP: h\nPORT: 2\nROOM_REF: 3\n"
                                    b"JOIN_ID: 4\nCHAT: 3\nCLIENT_NAME: n\n"
                                    b"MESSAGE: n has joined this chatroom.\n\n")
                        .replace(b"\n", b"\r\n")),
    # The quiet-period path (byte 0 bit 7; byte 1 = where the sender pauses,
    # as a fraction of 255): lab-era habits (SPEC §2.4).
    "quiet-join-no-newline": (QUIET | BIG, 0x80, b"JOIN_CHATROOM: chatroom 1\nCLIENT IP: 0\n"
                              b"PORT: 0\nCLIENT_NAME: Client 1"),
    "quiet-chat-no-blank": (QUIET | BIG, 0xFF, b"CHAT: 1\nJOIN_ID: 5\nCLIENT_NAME: a\n"
                            b"MESSAGE: hello\n"),
    "quiet-chat-then-leave": (QUIET | BIG, 0x9A, b"CHAT: 1\nJOIN_ID: 5\nCLIENT_NAME: a\n"
                              b"MESSAGE: one\ntwo\nLEAVE_CHATROOM: 1\nJOIN_ID: 5\nCLIENT_NAME: a"),
    "quiet-join-trailer": (QUIET | MID, 0x7F, b"JOIN_CHATROOM: r\nCLIENT_NAME: a\nPORT: 0\n"
                           b"X-UNKNOWN: 1\nHELO x"),
}

# ---- fuzz_control: flags byte + segments -----------------------------------

TWO, W1, W64, W512, FAR, SLOW = 0x01, 0x02, 0x04, 0x06, 0x08, 0x10
NO_CREATION, TIGHT_RATE = 0x20, 0x40


def segs(*parts):
    return SEP.join(parts)


CONTROL = {
    "helo": (0, b"HELO hello\n"),
    "helo-pipelined": (W1, b"HELO a\nHELO b\r\nHELO:c\n\n\nHELO d\n"),
    "kill-loopback": (0, segs(join("lobby", "a"), b"KILL_SERVICE\n", b"HELO late\n")),
    "kill-far-peer": (FAR, b"KILL_SERVICE\nHELO still here\n"),
    "join-lobby": (0, join("lobby", "alice")),
    "join-crlf-nospace": (W64, join("lobby", "alice", crlf=True, sep=":")),
    "session": (0, segs(join("lobby", "alice"), chat("$R0", "$J0", "alice", "hello"),
                        leave("$R0", "$J0", "alice"), disconnect("alice"))),
    "session-crlf-split": (W1, segs(join("lobby", "alice", crlf=True),
                                    chat("$R0", "$J0", "alice", "hi", crlf=True),
                                    leave("$R0", "$J0", "alice", crlf=True),
                                    disconnect("alice", crlf=True))),
    "create-room-multiline": (W512, segs(join("new-room", "bob"),
                                         chat("$R0", "$J0", "bob", "line1\n line2\nline3"))),
    "max-rooms": (0, segs(join("r1", "n"), join("r2", "n"), join("r3", "n"), join("r4", "n"),
                          join("lobby", "n"), join("lobby", "m"))),
    "room-full": (TWO, segs(join("tiny", "a"), join("tiny", "b"), join("tiny", "c"),
                            join("tiny", "d"))),
    "name-in-use": (TWO, segs(join("lobby", "same"), join("lobby", "same"))),
    "leave-others-id": (TWO, segs(join("lobby", "alice"), leave("$R0", "$J0", "alice"),
                                  chat("$R0", "$J0", "alice", "impersonating"))),
    "chat-others-room": (TWO, segs(join("lobby", "a"), join("tiny", "b"),
                                   chat("$R1", "$J0", "a", "wrong room"),
                                   chat("$R0", "$J1", "b", "not mine"))),
    "two-conns-chat": (TWO, segs(join("lobby", "a"), join("lobby", "b"),
                                 chat("$R0", "$J0", "a", "from a"),
                                 chat("$R1", "$J1", "b", "from b"),
                                 disconnect("a"), leave("$R1", "$J1", "b"))),
    "leave-never-live": (0, leave(1, 123456789, "ghost") + leave(99, 5, "ghost")),
    "leave-twice": (0, segs(join("lobby", "a"), leave("$R0", "$J0", "a"),
                            leave("$R0", "$J0", "a"))),
    "leave-wrong-name-ref": (0, segs(join("lobby", "a"), leave("$R0", "$J0", "b"),
                                     leave(2, "$J0", "a"), leave(77, "$J0", "a"))),
    "rejoin-same": (0, segs(join("lobby", "a"), join("lobby", "a"), join("lobby", "b"))),
    "chat-wrong-name": (0, segs(join("lobby", "a"), chat("$R0", "$J0", "b", "x"),
                                chat("$R0", "1", "a", "x"), chat(99, "$J0", "a", "x"))),
    "bad-names": (0, join("lob by", "a") + join("lobby", "x" * 40) + join("", "a")
                  + join("lobby", "a!b")),
    "chat-too-long": (W512, segs(join("lobby", "a"), chat("$R0", "$J0", "a", "m" * 600),
                                 chat("$R0", "$J0", "a", "ok"))),
    "request-too-large": (W64, segs(join("lobby", "a"), b"HELO " + b"z" * 1100 + b"\n",
                                    b"HELO never\n")),
    "garbage": (W64, b"\x00\x01\x02garbage\n\xfe\xfd: x\n\nHELO ok\n"),
    "split-across-segments": (0, segs(b"JOIN_CHATROOM: lobby\nCLIENT_IP: 0\n",
                                      b"PORT: 0\nCLIENT_NAME: a\n")),
    "disconnect-then-more": (0, segs(join("lobby", "a"), disconnect("a") + b"HELO after\n",
                                     b"HELO after close\n")),
    "vanish-in-rooms": (0, segs(join("lobby", "a"), join("r9", "a"),
                                chat("$R0", "$J0", "a", "bye"))),
    "leave-then-chat": (0, segs(join("lobby", "a"), leave("$R0", "$J0", "a")
                                + chat("$R0", "$J0", "a", "after leave")
                                + join("lobby", "a"))),
    "attach-on-control": (0, segs(join("lobby", "a"), attach("$R0", "$J0", "a"))),
    "kill-mid-session": (TWO, segs(join("lobby", "a"), join("lobby", "b"),
                                   chat("$R0", "$J0", "a", "x") + b"KILL_SERVICE\n",
                                   b"HELO\n")),
    "room-lifecycle": (0, segs(join("pop", "a"), leave("$R0", "$J0", "a"), join("pop", "a"),
                               chat("$R1", "$J1", "a", "back again"))),
    "room-retire-rejoin-same-segment": (0, segs(join("pop", "a"), leave("$R0", "$J0", "a")
                                                + join("pop", "b") + join("pop", "a"),
                                                chat("$R1", "$J1", "b", "x"))),
    "room-lifecycle-two-conns": (TWO, segs(join("pop", "a"), join("pop", "b"),
                                           disconnect("a"), leave("$R1", "$J1", "b"),
                                           b"HELO\n", join("pop", "b"),
                                           chat("$R2", "$J2", "b", "restarted"))),
    "room-retire-on-vanish": (TWO, segs(join("pop", "a"), join("lobby", "b"),
                                        chat("$R0", "$J0", "a", "bye") + disconnect("a"),
                                        join("pop", "b"), join("pop2", "b"))),
    "no-room-creation": (NO_CREATION, segs(join("brand-new", "a"), join("lobby", "a"),
                                           chat("$R0", "$J0", "a", "still works"))),
    "tight-rate-pipelined": (TIGHT_RATE, b"".join(b"HELO %d\n" % i for i in range(12))
                             + join("lobby", "a")),
    "tight-rate-leave-vanish": (TIGHT_RATE | TWO, segs(join("lobby", "a"), join("lobby", "b"),
                                                       b"".join(chat("$R0", "$J0", "a", "m%d" % i)
                                                                for i in range(8))
                                                       + leave("$R0", "$J0", "a"))),
    "kill-with-queued-traffic": (SLOW | TWO, segs(join("lobby", "a"), join("lobby", "b"),
                                                  b"".join(chat("$R0", "$J0", "a", "k" * 400)
                                                           for _ in range(4))
                                                  + b"KILL_SERVICE\n")),
    "slow-reader": (SLOW | W512, segs(join("lobby", "a"),
                                      b"".join(b"HELO " + bytes([65 + i]) * 400 + b"\n"
                                               for i in range(8)),
                                      chat("$R0", "$J0", "a", "q" * 500))),
    "slow-two-conns": (SLOW | TWO, segs(join("lobby", "a"), join("lobby", "b"),
                                        b"".join(chat("$R1", "$J1", "b", "w" * 300) for _ in range(6)),
                                        b"HELO x\n")),
}


def write(target, table):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, entry in table.items():
        data = bytes(entry[:-1]) + entry[-1]
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"{d}: {len(table)} seeds")


if __name__ == "__main__":
    write("proto", PROTO)
    write("control", CONTROL)
