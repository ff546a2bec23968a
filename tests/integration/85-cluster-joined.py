#!/usr/bin/env python3
"""85-cluster-joined: JOINED names the local node's room port, and a
joiner's first room frame is its own join announcement (issue 15).

Room "j" is joined on n1, n2 and n3. Checked:
  * the three JOINED PORTs differ, and each is the joiner's own node's
    room port: HELO there answers with that port, ATTACH of the node's
    member there is ATTACHED; a member of n1 attaching on n2's port gets
    error 3 (the port is n2's, the membership n1's);
  * while members on n1 and n3 chat without pause, joiners on every node
    get JOINED and then their own join announcement before any other
    frame of the room: a plain joiner, a joiner whose connection is
    attached to another room busy with traffic, and a lab-style joiner
    that sends its CHAT to the JOINED port without an ATTACH; each then
    receives the room's one order from its join on (the first member's
    stream), whether on the control or on the room connection.
"""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clustertest import *  # noqa: E402,F401,F403
from roomtest import (TIMEOUT, attach_req, chat_frame, chat_req, check, helo_reply,  # noqa: E402
                      helo_req, run)


def chatter(members, n):
    for _ in range(n):
        for m in members:
            m.chat(payload(m.name, m.sent))


def main():
    with Cluster(limits={"history": 1000}) as cl:
        n1, n2, n3 = cl.nodes
        mem = []
        for i in range(3):
            mem.append(cl.member(i, "j%d" % (i + 1), "j"))
            pump(mem, lambda: all(announced(mem[-1].name) in m.chats() for m in mem), 5 * TIMEOUT,
                 "%s's join announced" % mem[-1].label)
        ports = [m.port for m in mem]
        check(len(set(ports)) == 3, "JOINED PORTs of j on n1, n2, n3: %s (one room port per node)"
              % ports)
        for node, m in zip(cl.nodes, mem):
            h = node.room_connect(m.port, "helo@%s" % node.node_id)
            h.send(helo_req("which"))
            h.expect(helo_reply("which", m.port), what="HELO on %s's room port" % node.node_id)
            h.close()
        # n1's member on n2's port: not that node's membership.
        w = n2.room_connect(ports[1], "wrong-node")
        w.send(attach_req(mem[0].ref, mem[0].jid, mem[0].name))
        w.expect_error(3, context="ATTACH of n1's member on n2's room port")
        w.expect_closed()
        for m in mem:
            m.attach()
        first = mem[0]

        # A busy second room for the attached joiner's connection.
        busy = [cl.member(0, "busy1", "busy", attach=True), cl.member(2, "busy3", "busy")]
        pump(busy, lambda: announced("busy3") in busy[0].chats(), 5 * TIMEOUT, "busy3's join")
        holder = cl.member(1, "holder", "busy", attach=True)
        busy.append(holder)
        pump(busy, lambda: all(announced("holder") in m.chats() for m in busy), 5 * TIMEOUT,
             "holder's join")

        talkers = [mem[0], mem[2]]
        joiners = []
        for step in range(3):
            chatter(talkers + busy[:2], 10)
            if step == 0:
                joiners.append(cl.member(1, "plain2", "j"))
            elif step == 1:
                # holder's control connection, already attached in "busy"
                joiners.append(Member(n2, "holder", "j", conn=holder.ctl, label="holder@n2/j"))
            else:
                lab = cl.member(2, "lab3", "j")
                lab.rc = n3.room_connect(lab.port, "lab3@n3/room")
                lab.rc.send(chat_req(lab.ref, lab.jid, lab.name, "from the room port"))
                lab.sent += 1
                joiners.append(lab)
        everyone = mem + joiners + busy
        pump(everyone, lambda: all(m.chats()[-1] == first.chats()[-1] for m in mem + joiners)
             and ("lab3", "from the room port") in first.chats()
             and sum(1 for f in first.chats() if "#" in f[1]) >= 60
             and sum(1 for f in busy[0].chats() if "#" in f[1]) >= 60
             and all(m.chats()[-1] == busy[0].chats()[-1] for m in busy),
             10 * TIMEOUT, "the room's traffic at every member")
        settle(everyone, 0.5)
        check_slices(first, mem[1:] + joiners, "j")
        check_senders(first.chats(), talkers, "j")
        check_senders(busy[0].chats(), busy[:2], "busy")
        for m in everyone:
            check(not m.errors(), "%s got errors: %s" % (m.label, m.errors()))
        lab = joiners[2]
        lab.chat("again")
        lab.rc.expect(chat_frame(lab.ref, "lab3", "again"), what="lab3's CHAT on the room port")
        lab.ctl.expect_nothing()


run(main)
