/* cluster.c - the cluster thread: every Redis connection of this node, the
 * per-room stream positions, appends, the relay of entries to the rooms,
 * the acceptor's requests (names, refs, lists, private messages), liveness
 * and the reaping of dead nodes (docs/CLUSTER.md).
 *
 * Threads: the cluster thread alone touches the shards, the room list, the
 * append queue and this node's identity (everything under "cluster thread
 * only"). Room threads post to the cluster's mailbox (cluster_room_open/
 * close, cluster_append), the acceptor its requests (cluster_request), and
 * both read cluster_accepting's atomics. A room's callback is called on the
 * cluster thread under the room's lock, which cluster_room_close takes to
 * stop it for good; answers go to the acceptor's mailbox under acc_lock,
 * which cluster_set_acceptor takes. The hiredis contexts are blocking
 * sockets with a send and receive timeout; the XREAD one is only read once
 * poll() says it is readable, so the thread waits on the mailbox and every
 * XREAD at once.
 *
 * Keys (one room's share the hash tag {ref}, so they sit in one slot):
 *   roomd:{REF}:s             the room's stream (fields t, b, no nl to tl,
 *                             s, o, u)
 *   roomd:{REF}:seq           the room's message counter (msg_script)
 *   roomd:{REF}:members       hash "node/inc/join_id" -> name
 *   roomd:node:NODE/INC:rooms set of refs with members of that incarnation
 *                             (on each shard: the refs of its rooms)
 * and on shard 0:
 *   roomd:name:NAME           "node/inc/fd/id" of the connection holding it
 *   roomd:node:NODE/INC:names the names that incarnation holds
 *   roomd:ext:NODE/INC/FD/ID  that connection takes extension frames
 *   roomd:refs, roomd:ref_next  on-demand rooms' refs (HSETNX), the counter
 *   roomd:rooms               name -> ref of every room opened (LIST_ROOMS)
 *   roomd:inbox:NODE/INC      private messages for that node (a stream)
 *   roomd:nodes               set of "node/inc"
 *   roomd:alive:NODE/INC      liveness, PX CLUSTER_TTL_MS
 *   roomd:reaping:NODE/INC    the reaper's claim, SET NX, for
 *                             CLUSTER_REAP_CLAIM_S: a reaper that dies
 *                             midway is taken over then
 *   roomd:reaped:NODE/INC     set by the reaper before any leave: that
 *                             incarnation was judged dead (kept a day, for
 *                             a node only cut off to find out) */
#include "cluster.h"

#include "config.h"
#include "log.h"
#include "mailbox.h"
#include "msg.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLUSTER_QUEUE_MAX 4096     /* member messages waiting for Redis */
#define CLUSTER_BATCH 512          /* appends pipelined per shard per pass */
#define CLUSTER_BATCH_BYTES (4 << 20) /* ...and their bytes (a message may be 1 MiB) */
#define CLUSTER_READ_COUNT 256     /* entries per stream per XREAD */
/* A room with this many entries handed and not taken is not read until it
 * catches up (its mailbox stays bounded: at most this plus one XREAD). */
#define CLUSTER_ROOM_INFLIGHT_MAX 1024
#define CLUSTER_BLOCK_MS 100       /* XREAD BLOCK: how soon a new room is read */
#define CLUSTER_TTL_MS 3000        /* a node's liveness key */
#define CLUSTER_BEAT_MS 1000       /* refreshed, and the others checked, this often */
/* A node reaps others only after this long connected: after a Redis
 * restart every node must have had the time to come back and beat. */
#define CLUSTER_REAP_GRACE_MS (CLUSTER_TTL_MS + 2 * CLUSTER_BEAT_MS)
#define CLUSTER_BACKOFF_MIN_MS 100
#define CLUSTER_BACKOFF_MAX_MS 2000
#define CLUSTER_REAP_CLAIM_S 30    /* a reaper has this long to finish */
#define CLUSTER_IO_TIMEOUT_MS 1000 /* a Redis that stops answering is down */
#define CLUSTER_STOP_MS 1000       /* what is queued at shutdown gets this long */
#define CLUSTER_ID_LEN 48          /* a stream id "ms-seq" as text */
#define CLUSTER_KEY_LEN 64
#define CLUSTER_LIST_MAX 4096      /* rooms a LIST_ROOMS answer holds at most */
#define CLUSTER_SELF_LEN (CONFIG_ID_MAX + 24)
/* On-demand refs (Redis counts them): above any ref a config gives by position. */
#define CLUSTER_REF_BASE 0x100000L

enum { CM_OPEN, CM_CLOSE, CM_APPEND, CM_REQ };

struct shard {
	char host[CONFIG_HOST_MAX];
	unsigned port;
	redisContext *w;        /* appends, bookkeeping: command, reply */
	redisContext *r;        /* XREAD only */
	int up;
	int reading;            /* an XREAD is outstanding on r */
	uint64_t up_since;      /* when it came up (reaping waits a grace) */
	uint64_t down_since;    /* 0: never lost */
	uint64_t retry_at, backoff;
	uint64_t refused_backoff; /* grows while Redis refuses appends (shard_refused) */
	uint64_t read_at;       /* no XREAD before (after one refused) */
};

struct cl_mail {
	struct mail mail;       /* first */
	struct cluster_room *cr;
};

struct cluster_room {
	struct cl_mail open_m, close_m;
	struct cluster *cl;
	pthread_mutex_t lock;   /* guards closed: fn is never called once set */
	int closed;
	cluster_entry_fn fn;
	void *arg;
	atomic_long inflight;   /* entries handed to the room, not yet taken */
	atomic_int held;        /* the room's relay backlog is over its bound */
	/* cluster thread only (set before the open is posted) */
	long ref, history;
	unsigned shard;
	char name[CONFIG_NAME_MAX + 1];
	char key[CLUSTER_KEY_LEN];
	char last_id[CLUSTER_ID_LEN]; /* the last entry relayed (or the tail at open) */
	int ready;              /* last_id is known */
	uint64_t init_at;       /* not ready: when to ask for the tail again */
	uint64_t init_backoff;  /* ...after a refusal, doubling */
	atomic_int refused;     /* its key holds another type: its appends wait
				 * (set_aside), the shard's others go on, its
				 * members' new messages get error 11 */
	struct cluster_room *next;
};

struct append {
	struct mail mail;       /* first; mail.next links the thread's queue */
	unsigned shard;
	long ref;
	int kind;
	long join_id;
	char name[CONFIG_NAME_MAX + 1];
	int has_at;
	int reaped;             /* a dead node's member: its registry entry is gone */
	int unsure;             /* sent when the connection failed: Redis may
				 * have taken it; looked for before a resend */
	unsigned long long uid; /* "u": this node's number for it, so a resend
				 * never makes a duplicate */
	unsigned gen;           /* the incarnation it was made in (cl->gen) */
	struct proto_chat_layout at; /* relative to body */
	size_t body_len;
	char body[];
};

struct cluster {
	char self[CLUSTER_SELF_LEN];  /* "node/incarnation" (cluster thread, after start) */
	char node_id[CONFIG_ID_MAX + 1]; /* [cluster] node_id ("": derived) */
	unsigned port;                /* the control port, for a derived id */
	char password[CONFIG_ID_MAX * 4 + 1];
	long maxlen;
	struct shard shard[CONFIG_CLUSTER_SHARDS];
	unsigned nshards;
	struct mailbox mbox;
	pthread_t thread;
	atomic_int stop;
	atomic_int all_up;       /* every shard connected */
	atomic_long queued;      /* message and notice appends not yet taken by Redis */
	atomic_uint gen;         /* incarnations since start: a reaped node takes a new one */
	pthread_mutex_t acc_lock; /* guards acc_mbox: posted to under it, so
				   * clearing it stops every post at once */
	struct mailbox *acc_mbox; /* answers, private messages (NULL: none) */
	/* cluster thread only */
	struct cluster_room *rooms;
	struct mail *q_head, **q_tail; /* appends in order */
	unsigned long long next_uid;
	char inbox[CLUSTER_KEY_LEN + CLUSTER_SELF_LEN]; /* private messages to this node */
	char inbox_id[CLUSTER_ID_LEN];                  /* the last one taken */
	uint64_t next_beat;
	int flush_more;          /* a full batch went: more may wait (flush_appends) */
	int nrefused;            /* rooms refused (cluster_room.refused) */
};

static void take_inbox(struct cluster *cl, const redisReply *entries);
static int appendable(const struct cluster *cl, const struct append *a);
static void unqueue(struct cluster *cl, struct append *a);
static void set_aside(struct cluster_room *cr, const char *what, const char *detail);
static void hand_entry(struct cluster_room *cr, struct cluster_entry *e);
static int acceptor_set(struct cluster *cl);
static void post_acceptor(struct cluster *cl, struct cluster_req *q);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- pure helpers ---- */

/* Jump consistent hash (Lamping and Veach), of the ref mixed first. */
unsigned cluster_shard_of(long ref, unsigned n)
{
	uint64_t key = (uint64_t)ref * 0x9E3779B97F4A7C15ull;
	int64_t b = -1, j = 0;

	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ull + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
	}
	return b < 0 ? 0 : (unsigned)b;
}

int cluster_member_of(const char *f, const char *dead)
{
	size_t n = strlen(dead);

	return strncmp(f, dead, n) == 0 && f[n] == '/';
}

int cluster_earlier_self(const char *x, const char *self)
{
	const char *slash = strrchr(self, '/');
	size_t n;

	if (!slash)
		return 0;
	n = (size_t)(slash - self) + 1;
	return strncmp(x, self, n) == 0 && strcmp(x, self) != 0 && !strchr(x + n, '/');
}

/* "ms-seq" into its two numbers; -1 if it is not one. */
static int parse_stream_id(const char *id, unsigned long long *ms, unsigned long long *seq)
{
	char *end;

	if (!id || *id < '0' || *id > '9')
		return -1;
	errno = 0;
	*ms = strtoull(id, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9')
		return -1;
	*seq = strtoull(end + 1, &end, 10);
	return *end || errno ? -1 : 0;
}

int cluster_id_after(const char *id, const char *last)
{
	unsigned long long ms, seq, lms, lseq;

	if (parse_stream_id(id, &ms, &seq) < 0 || parse_stream_id(last, &lms, &lseq) < 0)
		return 0;
	return ms > lms || (ms == lms && seq > lseq);
}

static int parse_size(const char *s, size_t len, size_t *out)
{
	size_t v = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* The fields of an entry, as cluster_entry_decode reads them. */
struct raw_entry {
	const char *b, *t, *o;
	size_t blen, olen;
	size_t seq;
	size_t no, nl, to, tl;
	int has_at;
};

static int raw_fields(struct raw_entry *re, const char *const *f, const size_t *len, size_t n)
{
	int layout = 0;

	memset(re, 0, sizeof(*re));
	for (size_t i = 0; i + 1 < 2 * n; i += 2) {
		const char *k = f[i], *v = f[i + 1];
		size_t vl = len[i + 1];

		if (len[i] == 1 && k[0] == 'b')
			re->b = v, re->blen = vl;
		else if (len[i] == 1 && k[0] == 't' && vl == 1)
			re->t = v;
		else if (len[i] == 1 && k[0] == 'o')
			re->o = v, re->olen = vl;
		else if (len[i] == 1 && k[0] == 's' && parse_size(v, vl, &re->seq) < 0)
			return -1;
		else if (len[i] == 2 && (!memcmp(k, "no", 2) || !memcmp(k, "nl", 2) ||
					 !memcmp(k, "to", 2) || !memcmp(k, "tl", 2))) {
			size_t *dst = k[0] == 'n' ? (k[1] == 'o' ? &re->no : &re->nl)
						  : (k[1] == 'o' ? &re->to : &re->tl);
			if (parse_size(v, vl, dst) < 0)
				return -1;
			layout++;
		}
	}
	re->has_at = layout == 4;
	return re->b && re->t ? 0 : -1;
}

struct cluster_entry *cluster_entry_decode(const char *id, const char *const *fields,
					   const size_t *lens, size_t nfields, const char *self)
{
	struct raw_entry re;
	struct cluster_entry *e;
	size_t sl = strlen(self);

	if (raw_fields(&re, fields, lens, nfields) < 0 || !strchr("mnjl", re.t[0]) ||
	    re.blen == 0 || re.b[0] != '\n')
		return NULL;
	if (re.t[0] == CLUSTER_MSG && (!re.has_at || re.no + re.nl > re.blen || re.to + re.tl > re.blen))
		return NULL;
	if (!(e = calloc(1, sizeof(*e) + re.blen + 1)))
		return NULL;
	e->kind = re.t[0];
	e->seq = e->kind == CLUSTER_MSG ? (long)re.seq : 0;
	e->when_ms = atoll(id);
	memcpy(e->body, re.b, re.blen);
	e->body_len = re.blen;
	if (re.has_at)
		e->at = (struct proto_chat_layout){ re.no, re.nl, re.to, re.tl };
	/* Our own join or leave: "self/join_id" (only this incarnation's
	 * members wait for them). */
	if ((e->kind == CLUSTER_JOIN || e->kind == CLUSTER_LEAVE) && re.o && re.olen > sl + 1 && !memcmp(re.o, self, sl) &&
	    re.o[sl] == '/') {
		size_t id_v;
		if (parse_size(re.o + sl + 1, re.olen - sl - 1, &id_v) == 0)
			e->join_id = (long)id_v;
	}
	return e;
}

struct msg *cluster_entry_frame(const struct cluster_entry *e, long ref, struct proto_chat_layout *at)
{
	char head[32];
	int hl = snprintf(head, sizeof(head), "CHAT: %ld", ref);
	struct msg *m = msg_new((size_t)hl + e->body_len);

	if (!m)
		return NULL;
	memcpy(m->data, head, (size_t)hl);
	memcpy(m->data + hl, e->body, e->body_len);
	m->data[(size_t)hl + e->body_len] = '\0';
	if (at)
		*at = (struct proto_chat_layout){ e->at.name_off + (size_t)hl, e->at.name_len,
						  e->at.text_off + (size_t)hl, e->at.text_len };
	return m;
}

/* ---- connections ---- */

static void update_all_up(struct cluster *cl)
{
	int all = 1;

	for (unsigned i = 0; i < cl->nshards; i++)
		all &= cl->shard[i].up;
	atomic_store(&cl->all_up, all);
}

/* The pause after prev (0: the first): doubling, from CLUSTER_BACKOFF_MIN_MS
 * to CLUSTER_BACKOFF_MAX_MS. */
static uint64_t next_backoff(uint64_t prev)
{
	uint64_t next = prev ? 2 * prev : CLUSTER_BACKOFF_MIN_MS;

	return next > CLUSTER_BACKOFF_MAX_MS ? CLUSTER_BACKOFF_MAX_MS : next;
}

static void shard_down(struct cluster *cl, struct shard *s, const char *why)
{
	uint64_t now = now_ms();

	if (s->up) {
		log_warn("cluster: Redis %s:%u lost (%s): member messages get error 11 until it is back; "
			 "reconnecting", s->host, s->port, why);
		s->down_since = now;
		s->backoff = CLUSTER_BACKOFF_MIN_MS;
	} else {
		s->backoff = next_backoff(s->backoff);
	}
	if (s->w)
		redisFree(s->w);
	if (s->r)
		redisFree(s->r);
	s->w = s->r = NULL;
	s->up = 0;
	s->reading = 0;
	s->retry_at = now + s->backoff;
	update_all_up(cl);
}

/* Redis answered an append with an error (out of memory, a read-only
 * replica after a failover, persistence failing): it cannot take messages
 * now. As for a lost connection, members get error 11 and the appends stay
 * queued, looked for by their uid before they go again; the retries back
 * off further each time Redis refuses again, so a lasting refusal costs a
 * reconnect and a log line every CLUSTER_BACKOFF_MAX_MS at most. */
static void shard_refused(struct cluster *cl, struct shard *s, const char *why)
{
	uint64_t backoff = next_backoff(s->refused_backoff);

	shard_down(cl, s, why);
	s->backoff = backoff;
	s->retry_at = now_ms() + backoff;
	s->refused_backoff = backoff;
}

static redisContext *connect_one(struct cluster *cl, struct shard *s, char *why, size_t whylen)
{
	struct timeval tv = { CLUSTER_IO_TIMEOUT_MS / 1000, (CLUSTER_IO_TIMEOUT_MS % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(s->host, (int)s->port, tv);
	redisReply *rep;

	if (!c || c->err) {
		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (cl->password[0]) {
		rep = redisCommand(c, "AUTH %s", cl->password);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "AUTH: %s", rep ? rep->str : c->errstr);
			freeReplyObject(rep);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(rep);
	}
	return c;
}

static int shard_connect(struct cluster *cl, struct shard *s)
{
	char why[256];

	s->w = connect_one(cl, s, why, sizeof(why));
	s->r = s->w ? connect_one(cl, s, why, sizeof(why)) : NULL;
	if (!s->r) {
		/* Down already: shard_down logs nothing more (the outage once). */
		if (s->down_since == 0) {
			log_warn("cluster: Redis %s:%u unreachable (%s): retrying", s->host, s->port, why);
			s->down_since = now_ms();
		}
		shard_down(cl, s, why);
		return -1;
	}
	s->up = 1;
	s->up_since = now_ms();
	s->read_at = 0;
	if (s->down_since)
		log_info("cluster: Redis %s:%u back after %llu ms: every stream resumes after the last "
			 "entry relayed", s->host, s->port, (unsigned long long)(s->up_since - s->down_since));
	else
		log_info("cluster: connected to Redis %s:%u", s->host, s->port);
	s->down_since = 0;
	s->backoff = 0;
	update_all_up(cl);
	cl->next_beat = 0; /* say we are alive at once */
	return 0;
}

static void connect_due(struct cluster *cl)
{
	uint64_t now = now_ms();

	for (unsigned i = 0; i < cl->nshards; i++)
		if (!cl->shard[i].up && cl->shard[i].retry_at <= now)
			shard_connect(cl, &cl->shard[i]);
}

/* A command on shard s's bookkeeping connection: the reply (the caller
 * frees it), or NULL with the shard down. */
static redisReply *command(struct cluster *cl, struct shard *s, int argc, const char **argv,
			   const size_t *lens)
{
	redisReply *rep;

	if (!s->up)
		return NULL;
	rep = redisCommandArgv(s->w, argc, argv, lens);
	if (!rep)
		shard_down(cl, s, s->w->errstr[0] ? s->w->errstr : "no reply");
	return rep;
}

/* The same with NUL-terminated arguments. */
static redisReply *commandv(struct cluster *cl, struct shard *s, int argc, const char **argv)
{
	size_t lens[8];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	return command(cl, s, argc, argv, lens);
}

/* ---- appends ---- */

static void queue_append(struct cluster *cl, struct append *a)
{
	a->uid = ++cl->next_uid;
	a->mail.next = NULL;
	*cl->q_tail = &a->mail;
	cl->q_tail = &a->mail.next;
}

static void append_done(struct cluster *cl, struct append *a)
{
	if (a->kind == CLUSTER_MSG || a->kind == CLUSTER_NOTICE)
		atomic_fetch_sub(&cl->queued, 1);
	free(a);
}

/* Every script starts by checking that the room's stream key is a
 * stream (or absent): a key of another type, written by someone else, is
 * refused before the script changes anything (a script's effects before
 * an error stay), with the WRONGTYPE error flush_shard takes as the
 * room's, not the shard's. */
#define STREAM_GUARD                                                                         \
	"local t = redis.call('TYPE', KEYS[1]).ok "                                          \
	"if t ~= 'stream' and t ~= 'none' then "                                             \
	"return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. t) end "

/* A leave's announcement and its member's removal from the registry, in
 * one step: KEYS the stream and the members hash, ARGV the member's field,
 * MAXLEN, then the entry's fields. Nothing when the member is not there. */
static const char leave_script[] = STREAM_GUARD
	"if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then "
	"return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3)) "
	"end return false";

/* A join's announcement, its member's registry entry and its room in this
 * node's list (for a reaper), in one step, so that a join found in the
 * stream after a lost connection is registered too: KEYS the stream, the
 * members hash and the node's room set, ARGV MAXLEN, the member's field,
 * its name, the ref, then the entry's fields. */
static const char join_script[] = STREAM_GUARD
	"local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 5)) "
	"redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) "
	"redis.call('SADD', KEYS[3], ARGV[4]) "
	"return id";

/* A member's message with its number in the room (§7.7), the same on
 * every node: KEYS the stream and the room's counter, ARGV MAXLEN then
 * the entry's fields. */
static const char msg_script[] = STREAM_GUARD
	"local n = redis.call('INCR', KEYS[2]) "
	"return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', n, unpack(ARGV, 2))";

/* One append into s's pipeline, as one command: a join through
 * join_script, a leave through leave_script, a member's message through
 * msg_script, a notice or a reaper's leave a plain XADD (which Redis
 * refuses with WRONGTYPE itself on a key of another type). */
static void pipeline_append(struct cluster *cl, struct shard *s, const struct append *a)
{
	char key[CLUSTER_KEY_LEN], maxlen[24], kind[2] = { (char)a->kind, 0 }, num[4][24];
	char origin[CLUSTER_SELF_LEN + 24], uid[CLUSTER_SELF_LEN + 24], mkey[CLUSTER_KEY_LEN],
		skey[CLUSTER_KEY_LEN], nkey[CLUSTER_SELF_LEN + 24], ref[24];
	const char *argv[24];
	size_t lens[24];
	int n = 0;

	snprintf(key, sizeof(key), "roomd:{%ld}:s", a->ref);
	snprintf(maxlen, sizeof(maxlen), "%ld", cl->maxlen);
	snprintf(origin, sizeof(origin), "%s/%ld", cl->self, a->join_id);
	snprintf(uid, sizeof(uid), "%s/%llu", cl->self, a->uid);
#define ARG(s_, l_) (argv[n] = (s_), lens[n++] = (l_))
	snprintf(mkey, sizeof(mkey), "roomd:{%ld}:members", a->ref);
	snprintf(skey, sizeof(skey), "roomd:{%ld}:seq", a->ref);
	if (a->kind == CLUSTER_LEAVE && !a->reaped) {
		/* Announced only if the member is still registered: a reaper
		 * that announced it already removed it (exactly once). */
		ARG("EVAL", 4); ARG(leave_script, strlen(leave_script)); ARG("2", 1);
		ARG(key, strlen(key)); ARG(mkey, strlen(mkey)); ARG(origin, strlen(origin));
		ARG(maxlen, strlen(maxlen));
	} else if (a->kind == CLUSTER_JOIN) {
		snprintf(nkey, sizeof(nkey), "roomd:node:%s:rooms", cl->self);
		snprintf(ref, sizeof(ref), "%ld", a->ref);
		ARG("EVAL", 4); ARG(join_script, strlen(join_script)); ARG("3", 1);
		ARG(key, strlen(key)); ARG(mkey, strlen(mkey)); ARG(nkey, strlen(nkey));
		ARG(maxlen, strlen(maxlen)); ARG(origin, strlen(origin)); ARG(a->name, strlen(a->name));
		ARG(ref, strlen(ref));
	} else if (a->kind == CLUSTER_MSG) {
		ARG("EVAL", 4); ARG(msg_script, strlen(msg_script)); ARG("2", 1);
		ARG(key, strlen(key)); ARG(skey, strlen(skey)); ARG(maxlen, strlen(maxlen));
	} else {
		ARG("XADD", 4); ARG(key, strlen(key)); ARG("MAXLEN", 6); ARG("~", 1);
		ARG(maxlen, strlen(maxlen)); ARG("*", 1);
	}
	ARG("t", 1); ARG(kind, 1);
	ARG("b", 1); ARG(a->body, a->body_len); ARG("u", 1); ARG(uid, strlen(uid));
	if (a->has_at) {
		snprintf(num[0], 24, "%zu", a->at.name_off);
		snprintf(num[1], 24, "%zu", a->at.name_len);
		snprintf(num[2], 24, "%zu", a->at.text_off);
		snprintf(num[3], 24, "%zu", a->at.text_len);
		ARG("no", 2); ARG(num[0], strlen(num[0])); ARG("nl", 2); ARG(num[1], strlen(num[1]));
		ARG("to", 2); ARG(num[2], strlen(num[2])); ARG("tl", 2); ARG(num[3], strlen(num[3]));
	}
	if (a->kind == CLUSTER_JOIN || (a->kind == CLUSTER_LEAVE && !a->reaped)) {
		ARG("o", 1);
		ARG(origin, strlen(origin));
	}
#undef ARG
	redisAppendCommandArgv(s->w, n, argv, lens);
}

/* Room ref, if it is open here. */
static struct cluster_room *room_of_ref(const struct cluster *cl, long ref)
{
	for (struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		if (cr->ref == ref)
			return cr;
	return NULL;
}

/* Redis refused a with WRONGTYPE: the room's stream key holds another
 * type (STREAM_GUARD), which is that room's matter, not the shard's. If
 * the room is open here it is set aside (set_aside) and a waits, in
 * order, with the room's later appends; otherwise (a reaper's leave, a
 * room closed since) a is dropped. */
static void append_refused_by_type(struct cluster *cl, struct append *a, const char *why)
{
	struct cluster_room *cr = room_of_ref(cl, a->ref);

	if (cr) {
		if (!cr->refused)
			set_aside(cr, "append refused: ", why);
		return;
	}
	log_error("cluster: an event of room %ld dropped: %s", a->ref, why);
	unqueue(cl, a);
}

/* leave_script found a's member gone (a reaper announced it): its room
 * here, if one of its members waits for that leave, is told so, with an
 * entry it does not relay. */
static void leave_not_announced(struct cluster *cl, const struct append *a)
{
	struct cluster_entry *e = calloc(1, sizeof(*e) + 1);
	struct cluster_room *cr = room_of_ref(cl, a->ref);

	if (!cr || !e) {
		free(e);
		return;
	}
	e->kind = CLUSTER_LEAVE;
	e->join_id = a->join_id;
	e->not_relayed = 1;
	hand_entry(cr, e);
}

/* Did Redis take a, sent before the connection failed? Its uid is looked
 * for among the stream's newest entries (what one batch can have added).
 * 1 yes, 0 no, -1 the shard is down. */
static int taken_before(struct cluster *cl, struct shard *s, const struct append *a)
{
	char key[CLUSTER_KEY_LEN], uid[CLUSTER_SELF_LEN + 24], count[16];
	const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", count };
	redisReply *rep;
	int found = 0;

	snprintf(key, sizeof(key), "roomd:{%ld}:s", a->ref);
	snprintf(uid, sizeof(uid), "%s/%llu", cl->self, a->uid);
	snprintf(count, sizeof(count), "%d", 4 * CLUSTER_BATCH);
	if (!(rep = commandv(cl, s, 6, argv)))
		return -1;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && !found; i++) {
		const redisReply *kv = rep->element[i]->elements == 2 ? rep->element[i]->element[1] : NULL;

		for (size_t k = 0; kv && kv->type == REDIS_REPLY_ARRAY && k + 1 < kv->elements; k += 2)
			if (kv->element[k]->str && !strcmp(kv->element[k]->str, "u") &&
			    kv->element[k + 1]->str && !strcmp(kv->element[k + 1]->str, uid))
				found = 1;
	}
	freeReplyObject(rep);
	return found;
}

static void unqueue(struct cluster *cl, struct append *a)
{
	for (struct mail **l = &cl->q_head; *l; l = &(*l)->next)
		if (*l == &a->mail) {
			*l = a->mail.next;
			if (!*l)
				cl->q_tail = l;
			break;
		}
	append_done(cl, a);
}

/* The appends of shard si sent before a connection failure that Redis
 * took after all leave the queue; the others are sent again. 0, or -1
 * when the shard went down again. */
static int settle_unsure(struct cluster *cl, unsigned si)
{
	struct mail *m, *next;

	for (m = cl->q_head; m; m = next) {
		struct append *a = (struct append *)m;
		int rc;

		next = m->next;
		if (a->shard != si || !a->unsure)
			continue;
		if ((rc = taken_before(cl, &cl->shard[si], a)) < 0)
			return -1;
		a->unsure = 0;
		if (rc == 1)
			unqueue(cl, a);
	}
	return 0;
}

/* Appends made before this node was reaped (its members' leaves were
 * announced by the reaper; what they said after is not to come after
 * that) are dropped, logged. */
static void drop_stale(struct cluster *cl, unsigned si)
{
	unsigned gen = atomic_load(&cl->gen);
	struct mail *m, *next;
	long n = 0;

	for (m = cl->q_head; m; m = next) {
		struct append *a = (struct append *)m;

		next = m->next;
		if (a->shard == si && a->gen != gen && !a->reaped) {
			unqueue(cl, a);
			n++;
		}
	}
	if (n)
		log_warn("cluster: %ld event%s of this node's previous incarnation dropped (its members "
			 "were announced as left)", n, n == 1 ? "" : "s");
}

/* Send up to CLUSTER_BATCH of shard si's queued appends in one pipeline,
 * then read their replies: the ones Redis took leave the queue. 1 when
 * the batch was full and taken: more of si's may wait. */
static int flush_shard(struct cluster *cl, unsigned si)
{
	struct shard *s = &cl->shard[si];
	struct append *batch[CLUSTER_BATCH];
	size_t n = 0, bytes = 0;

	if (settle_unsure(cl, si) < 0)
		return 0;
	drop_stale(cl, si);
	for (struct mail *m = cl->q_head; m && n < CLUSTER_BATCH && bytes < CLUSTER_BATCH_BYTES;
	     m = m->next)
		if (((struct append *)m)->shard == si && appendable(cl, (struct append *)m)) {
			batch[n] = (struct append *)m;
			pipeline_append(cl, s, batch[n]);
			bytes += batch[n]->body_len;
			n++;
		}
	for (size_t i = 0; i < n && s->up; i++) {
		redisReply *rep = NULL;

		if (redisGetReply(s->w, (void **)&rep) != REDIS_OK || !rep) {
			shard_down(cl, s, s->w->errstr[0] ? s->w->errstr : "no reply");
			for (size_t j = i; j < n; j++)
				batch[j]->unsure = 1;
			return 0;
		}
		if (rep->type == REDIS_REPLY_ERROR && rep->str && !strncmp(rep->str, "WRONGTYPE", 9)) {
			append_refused_by_type(cl, batch[i], rep->str);
			freeReplyObject(rep);
			continue;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			/* Not taken: it and the rest of the batch stay queued, in
			 * order (a JOIN waiting for its entry, a LEAVE for its
			 * announcement). */
			char why[200];
			snprintf(why, sizeof(why), "an append of room %ld refused: %s", batch[i]->ref,
				 rep->str ? rep->str : "error");
			freeReplyObject(rep);
			shard_refused(cl, s, why);
			for (size_t j = i; j < n; j++)
				batch[j]->unsure = 1;
			return 0;
		}
		s->refused_backoff = 0;
		if (rep->type == REDIS_REPLY_NIL)
			leave_not_announced(cl, batch[i]);
		freeReplyObject(rep);
		unqueue(cl, batch[i]); /* taken */
	}
	return s->up && (n == CLUSTER_BATCH || bytes >= CLUSTER_BATCH_BYTES);
}

/* Nonzero when every room of shard si knows its start position (but
 * those refused: their appends are left out, appendable()). */
static int shard_ready(const struct cluster *cl, unsigned si)
{
	for (const struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		if (cr->shard == si && !cr->ready && !cr->refused)
			return 0;
	return 1;
}

/* May a go in this pass: not while its room is refused (it and the
 * room's later appends wait, in order). */
static int appendable(const struct cluster *cl, const struct append *a)
{
	const struct cluster_room *cr = cl->nrefused ? room_of_ref(cl, a->ref) : NULL;

	return !cr || !cr->refused;
}

/* cl->flush_more: a shard's batch was full, the next pass must not wait.
 * Appends that wait for a shard (down, or a room of it without its start
 * position yet) do not count: the pass waits for what they wait for. */
static void flush_appends(struct cluster *cl)
{
	cl->flush_more = 0;
	for (unsigned i = 0; i < cl->nshards && cl->q_head; i++)
		if (cl->shard[i].up && shard_ready(cl, i) && flush_shard(cl, i))
			cl->flush_more = 1;
}

/* ---- reading the streams ---- */

static void hand_entry(struct cluster_room *cr, struct cluster_entry *e)
{
	pthread_mutex_lock(&cr->lock);
	if (cr->closed) {
		free(e);
	} else {
		atomic_fetch_add(&cr->inflight, 1);
		cr->fn(cr->arg, e);
	}
	pthread_mutex_unlock(&cr->lock);
}

/* One entry of a reply ([id, [field, value, ...]]) for cr: decoded and
 * handed over; cr's position moves past it either way. */
static void take_entry(struct cluster *cl, struct cluster_room *cr, const redisReply *ent,
		       int history_only)
{
	const char *fields[64];
	size_t lens[64], n;
	const redisReply *kv;
	struct cluster_entry *e;

	if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
	    ent->element[0]->type != REDIS_REPLY_STRING)
		return;
	kv = ent->element[1];
	if (!history_only)
		snprintf(cr->last_id, sizeof(cr->last_id), "%s", ent->element[0]->str);
	if (kv->type != REDIS_REPLY_ARRAY)
		return;
	n = kv->elements < 64 ? kv->elements : 64;
	for (size_t i = 0; i < n; i++) {
		fields[i] = kv->element[i]->type == REDIS_REPLY_STRING ? kv->element[i]->str : "";
		lens[i] = kv->element[i]->type == REDIS_REPLY_STRING ? (size_t)kv->element[i]->len : 0;
	}
	e = cluster_entry_decode(ent->element[0]->str, fields, lens, n / 2, cl->self);
	if (!e) {
		log_error("cluster: room %ld: entry %s is not one roomd wrote (or out of memory): "
			  "skipped", cr->ref, ent->element[0]->str);
		return;
	}
	if (history_only && e->kind != CLUSTER_MSG) {
		free(e);
		return;
	}
	e->history_only = history_only;
	hand_entry(cr, e);
}

static struct cluster_room *room_of_key(struct cluster *cl, const char *key)
{
	for (struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		if (strcmp(cr->key, key) == 0)
			return cr;
	return NULL;
}

static void take_xread(struct cluster *cl, const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY)
		return; /* nil: nothing new within the block time */
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *st = rep->element[i];
		struct cluster_room *cr;

		if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
		    st->element[0]->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(st->element[0]->str, cl->inbox)) {
			take_inbox(cl, st->element[1]);
			continue;
		}
		if (!(cr = room_of_key(cl, st->element[0]->str)) || !cr->ready)
			continue; /* closed meanwhile */
		for (size_t j = 0; j < st->element[1]->elements; j++) {
			const redisReply *ent = st->element[1]->element[j];

			/* Asked for by an earlier opening of the room (closed and
			 * opened again while this XREAD was out): what is not
			 * after its start now was history when it opened. */
			if (ent->type == REDIS_REPLY_ARRAY && ent->elements == 2 &&
			    ent->element[0]->type == REDIS_REPLY_STRING &&
			    !cluster_id_after(ent->element[0]->str, cr->last_id))
				continue;
			take_entry(cl, cr, ent, 0);
		}
	}
}

/* LIST_ROOMS lists the rooms of every node: this one is known by name. */
static void list_room(struct cluster *cl, const struct cluster_room *cr)
{
	char ref[24];
	const char *argv[] = { "HSET", "roomd:rooms", cr->name, ref };

	snprintf(ref, sizeof(ref), "%ld", cr->ref);
	freeReplyObject(commandv(cl, &cl->shard[0], 4, argv));
}

/* Room cr's stream key was refused (it holds something else than a
 * stream: written by someone else): the room is not read, its appends
 * wait (appendable), and its start is asked for again after a growing
 * pause, not on every pass; its joins wait meanwhile. */
static void set_aside(struct cluster_room *cr, const char *what, const char *detail)
{
	cr->ready = 0;
	if (!cr->refused) {
		cr->refused = 1;
		cr->cl->nrefused++;
	}
	cr->init_backoff = next_backoff(cr->init_backoff);
	cr->init_at = now_ms() + cr->init_backoff;
	log_error("cluster: room %ld: %s %s%s (again in %llu ms)", cr->ref, cr->key, what, detail,
		  (unsigned long long)cr->init_backoff);
}

/* A room new here: its tail is where it starts, its last history entries
 * (the newest history of them) are handed over first, oldest first. */
static void init_room(struct cluster *cl, struct cluster_room *cr)
{
	char count[24];
	const char *argv[] = { "XREVRANGE", cr->key, "+", "-", "COUNT", count };
	redisReply *rep;

	snprintf(count, sizeof(count), "%ld", cr->history > 0 ? cr->history : 1);
	rep = commandv(cl, &cl->shard[cr->shard], 6, argv);
	if (!rep)
		return; /* the shard is down: tried again once it is up */
	if (rep->type == REDIS_REPLY_ARRAY) {
		snprintf(cr->last_id, sizeof(cr->last_id), "0-0");
		if (cr->refused) {
			/* Set aside: the stream it had is gone, what is there now
			 * came since (from other nodes) and is relayed as new,
			 * from the start. */
			cr->refused = 0;
			cl->nrefused--;
			cr->init_backoff = 0;
			log_info("cluster: room %ld: %s is a stream again: relaying it from its start",
				 cr->ref, cr->key);
		} else {
			if (rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
			    rep->element[0]->elements == 2 && rep->element[0]->element[0]->str)
				snprintf(cr->last_id, sizeof(cr->last_id), "%s",
					 rep->element[0]->element[0]->str);
			for (size_t i = rep->elements; i > 0 && cr->history > 0; i--)
				take_entry(cl, cr, rep->element[i - 1], 1);
			list_room(cl, cr);
		}
		cr->ready = 1;
	} else {
		set_aside(cr, "XREVRANGE: ",
			   rep->type == REDIS_REPLY_ERROR && rep->str ? rep->str : "unexpected reply");
	}
	freeReplyObject(rep);
}

static void init_rooms(struct cluster *cl)
{
	uint64_t now = now_ms();

	for (struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		if (!cr->ready && cl->shard[cr->shard].up && now >= cr->init_at)
			init_room(cl, cr);
}

/* Is cr, of shard si, read in the next XREAD: its position known, and the
 * room keeping up (not held by its backlog, its mailbox not full)? */
static int readable(struct cluster_room *cr, unsigned si)
{
	return cr->shard == si && cr->ready && !atomic_load(&cr->held) &&
	       atomic_load(&cr->inflight) < CLUSTER_ROOM_INFLIGHT_MAX;
}

/* Send one XREAD over every readable room of shard si (from each room's
 * last entry relayed), unless one is outstanding. Which rooms are readable
 * is taken once, into rd: room threads change held and inflight at any
 * moment, and the keys and the ids must name the same rooms. */
static void start_read(struct cluster *cl, unsigned si)
{
	struct shard *s = &cl->shard[si];
	size_t nrooms = 0, n = 0, k = 0;
	struct cluster_room **rd;
	const char **argv;
	char count[16], block[16];
	int done = 0;
	int inbox = si == 0 && acceptor_set(cl);

	if (!s->up || s->reading || now_ms() < s->read_at)
		return;
	for (struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		nrooms++;
	rd = malloc((nrooms + 1) * sizeof(*rd));
	argv = malloc((8 + 2 * nrooms) * sizeof(*argv));
	if (!rd || !argv) {
		free(rd);
		free(argv);
		log_error("cluster: out of memory: streams not read this pass");
		return;
	}
	for (struct cluster_room *cr = cl->rooms; cr && n < nrooms; cr = cr->next)
		if (readable(cr, si))
			rd[n++] = cr;
	if (n + (size_t)inbox == 0) {
		free(rd);
		free(argv);
		return;
	}
	snprintf(count, sizeof(count), "%d", CLUSTER_READ_COUNT);
	snprintf(block, sizeof(block), "%d", CLUSTER_BLOCK_MS);
	argv[k++] = "XREAD", argv[k++] = "COUNT", argv[k++] = count, argv[k++] = "BLOCK";
	argv[k++] = block, argv[k++] = "STREAMS";
	for (size_t i = 0; i < n; i++)
		argv[k++] = rd[i]->key;
	if (inbox)
		argv[k++] = cl->inbox;
	for (size_t i = 0; i < n; i++)
		argv[k++] = rd[i]->last_id;
	if (inbox)
		argv[k++] = cl->inbox_id;
	redisAppendCommandArgv(s->r, (int)k, argv, NULL);
	free(rd);
	free(argv);
	while (!done)
		if (redisBufferWrite(s->r, &done) != REDIS_OK) {
			shard_down(cl, s, s->r->errstr);
			return;
		}
	s->reading = 1;
}

/* An XREAD of shard s was refused: a room of it whose stream key now
 * holds another type (written by someone else) is set aside, as one
 * found so at its start (set_aside), so that the others are read on.
 * How many were found. */
static int drop_foreign_keys(struct cluster *cl, struct shard *s)
{
	int found = 0;

	for (struct cluster_room *cr = cl->rooms; cr && s->up; cr = cr->next) {
		const char *argv[] = { "TYPE", cr->key };
		redisReply *t;

		if (&cl->shard[cr->shard] != s || !cr->ready)
			continue;
		if (!(t = commandv(cl, s, 2, argv)))
			break;
		if (t->type == REDIS_REPLY_STATUS && t->str && strcmp(t->str, "stream") != 0 &&
		    strcmp(t->str, "none") != 0) {
			set_aside(cr, "is not a stream but a ", t->str);
			found++;
		}
		freeReplyObject(t);
	}
	return found;
}

/* s's XREAD connection is readable: its reply, when complete. */
static void finish_read(struct cluster *cl, struct shard *s)
{
	void *rep = NULL;

	if (redisBufferRead(s->r) != REDIS_OK || redisGetReplyFromReader(s->r, &rep) != REDIS_OK) {
		shard_down(cl, s, s->r->errstr[0] ? s->r->errstr : "connection closed");
		return;
	}
	if (!rep)
		return; /* more to come */
	s->reading = 0;
	if (((redisReply *)rep)->type == REDIS_REPLY_ERROR) {
		log_error("cluster: XREAD on %s:%u: %s", s->host, s->port, ((redisReply *)rep)->str);
		if (!drop_foreign_keys(cl, s))
			s->read_at = now_ms() + CLUSTER_BACKOFF_MAX_MS;
	} else {
		take_xread(cl, rep);
	}
	freeReplyObject(rep);
}

/* ---- liveness and reaping ---- */

/* The leave announcement of name in room ref, as a queued append's body
 * (the reaper's XADD). NULL when out of memory. */
static struct append *leave_append(long ref, unsigned shard, const char *name)
{
	char text[CONFIG_NAME_MAX + 64];
	struct msg *frame;
	struct append *a;
	const char *nl;

	snprintf(text, sizeof(text), "%s%s", name, PROTO_LEFT_TEXT);
	if (!(frame = proto_write_chat(ref, name, text)))
		return NULL;
	nl = memchr(frame->data, '\n', frame->len);
	a = nl ? calloc(1, sizeof(*a) + frame->len) : NULL;
	if (a) {
		a->body_len = frame->len - (size_t)(nl - frame->data);
		memcpy(a->body, nl, a->body_len);
		a->ref = ref;
		a->shard = shard;
		a->kind = CLUSTER_LEAVE;
		a->reaped = 1;
	}
	msg_unref(&frame);
	return a;
}

/* Announce the members of incarnation dead in room ref (shard si) as left
 * and drop them from its registry. How many. */
static long reap_room(struct cluster *cl, unsigned si, const char *dead, const char *ref_s)
{
	struct shard *s = &cl->shard[si];
	char mkey[CLUSTER_KEY_LEN];
	const char *argv[3] = { "HGETALL", mkey, NULL };
	long ref = atol(ref_s), n = 0;
	redisReply *rep;

	snprintf(mkey, sizeof(mkey), "roomd:{%ld}:members", ref);
	if (!(rep = commandv(cl, s, 2, argv)))
		return 0;
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
		const char *f = rep->element[i]->str, *name = rep->element[i + 1]->str;
		struct append *a;
		redisReply *del;
		int mine;

		if (!f || !name || !cluster_member_of(f, dead))
			continue;
		/* Whoever removes the registry entry announces the leave: once,
		 * even if a reaping taken over overlaps with this one. */
		if (!(del = redisCommand(s->w, "HDEL %s %s", mkey, f))) {
			shard_down(cl, s, s->w->errstr);
			break;
		}
		mine = del->type == REDIS_REPLY_INTEGER && del->integer == 1;
		freeReplyObject(del);
		if (!mine)
			continue;
		if (!(a = leave_append(ref, si, name))) {
			log_error("cluster: out of memory announcing %s's leave from room %ld", name, ref);
			continue;
		}
		queue_append(cl, a); /* like a local leave: kept until Redis takes it */
		n++;
	}
	freeReplyObject(rep);
	return n;
}

/* The names incarnation dead held are free again. */
static void reap_names(struct cluster *cl, const char *dead)
{
	struct shard *s0 = &cl->shard[0];
	char nkey[CLUSTER_SELF_LEN + 24];
	const char *argv[] = { "SMEMBERS", nkey };
	redisReply *names;

	snprintf(nkey, sizeof(nkey), "roomd:node:%s:names", dead);
	names = commandv(cl, s0, 2, argv);
	for (size_t i = 0; names && names->type == REDIS_REPLY_ARRAY && i < names->elements && s0->up; i++) {
		redisReply *v = redisCommand(s0->w, "GET roomd:name:%s", names->element[i]->str);

		if (v && v->type == REDIS_REPLY_STRING && cluster_member_of(v->str, dead))
			freeReplyObject(redisCommand(s0->w, "DEL roomd:name:%s", names->element[i]->str));
		freeReplyObject(v);
	}
	freeReplyObject(names);
	if (s0->up)
		freeReplyObject(redisCommand(s0->w, "DEL %s", nkey));
}

/* Incarnation dead is gone: whoever wins the claim announces its members
 * as left, once. */
static void reap(struct cluster *cl, const char *dead)
{
	struct shard *s0 = &cl->shard[0];
	char claim[CLUSTER_SELF_LEN + 24], nkey[CLUSTER_SELF_LEN + 24];
	redisReply *rep;
	long n = 0;

	if (!s0->up) /* an earlier reap of this pass lost it */
		return;
	snprintf(claim, sizeof(claim), "roomd:reaping:%s", dead);
	rep = redisCommand(s0->w, "SET %s %s NX EX %d", claim, cl->self, CLUSTER_REAP_CLAIM_S);
	if (!rep) {
		shard_down(cl, s0, s0->w->errstr);
		return;
	}
	if (rep->type != REDIS_REPLY_STATUS) { /* nil: another node has it */
		freeReplyObject(rep);
		return;
	}
	freeReplyObject(rep);
	/* Before any leave: the incarnation, if only cut off, finds out at
	 * its next beat. A reaping taken over (this one died midway) goes
	 * again over what is left: a member's leave is announced by whoever
	 * removes its registry entry, once (reap_room). */
	rep = redisCommand(s0->w, "SET roomd:reaped:%s %s EX 86400", dead, cl->self);
	if (!rep) {
		shard_down(cl, s0, s0->w->errstr);
		return;
	}
	freeReplyObject(rep);
	snprintf(nkey, sizeof(nkey), "roomd:node:%s:rooms", dead);
	for (unsigned si = 0; si < cl->nshards; si++) {
		const char *argv[] = { "SMEMBERS", nkey };
		redisReply *refs = commandv(cl, &cl->shard[si], 2, argv);

		for (size_t i = 0; refs && refs->type == REDIS_REPLY_ARRAY && i < refs->elements; i++)
			if (refs->element[i]->str)
				n += reap_room(cl, si, dead, refs->element[i]->str);
		freeReplyObject(refs);
		if (cl->shard[si].up)
			freeReplyObject(redisCommand(cl->shard[si].w, "DEL %s", nkey));
	}
	reap_names(cl, dead);
	if (s0->up) {
		freeReplyObject(redisCommand(s0->w, "DEL roomd:inbox:%s", dead));
		freeReplyObject(redisCommand(s0->w, "SREM roomd:nodes %s", dead));
	}
	log_info("cluster: node %s is gone: %ld member%s announced as left", dead, n, n == 1 ? "" : "s");
}

/* Is it safe to judge the others dead: every shard up for a grace period
 * (after a Redis restart the others need the time to come back). */
static int may_reap(const struct cluster *cl, uint64_t now)
{
	for (unsigned i = 0; i < cl->nshards; i++)
		if (!cl->shard[i].up || now - cl->shard[i].up_since < CLUSTER_REAP_GRACE_MS)
			return 0;
	return 1;
}

static void check_others(struct cluster *cl, uint64_t now)
{
	struct shard *s0 = &cl->shard[0];
	const char *argv[] = { "SMEMBERS", "roomd:nodes" };
	redisReply *nodes = commandv(cl, s0, 2, argv);

	for (size_t i = 0; nodes && nodes->type == REDIS_REPLY_ARRAY && i < nodes->elements; i++) {
		const char *x = nodes->element[i]->str;
		redisReply *alive;

		if (!x || strcmp(x, cl->self) == 0)
			continue;
		if (cluster_earlier_self(x, cl->self)) {
			reap(cl, x); /* our own previous life: at once */
			continue;
		}
		if (!may_reap(cl, now) || !s0->up)
			continue;
		alive = redisCommand(s0->w, "EXISTS roomd:alive:%s", x);
		if (alive && alive->type == REDIS_REPLY_INTEGER && alive->integer == 0)
			reap(cl, x);
		freeReplyObject(alive);
	}
	freeReplyObject(nodes);
}

static void set_self(struct cluster *cl, const char *node_id, unsigned port);

/* Another node judged this one dead (it was cut off from Redis, or
 * stopped, for longer than the TTL) and announced its members as left:
 * this node goes on as a new incarnation, and every membership here ends
 * (the acceptor closes their connections; their leaves, announced
 * already, are dropped with the rest of the old incarnation's events). */
static void became_reaped(struct cluster *cl)
{
	struct cluster_req *q = cluster_req_new(CLUSTER_REQ_REAPED, -1, 0, NULL, 0);

	log_error("cluster: node %s was judged dead by the cluster (cut off from Redis for more "
		  "than %d ms): its members were announced as left; closing their connections",
		  cl->self, CLUSTER_TTL_MS);
	atomic_fetch_add(&cl->gen, 1);
	set_self(cl, cl->node_id, cl->port);
	snprintf(cl->inbox, sizeof(cl->inbox), "roomd:inbox:%s", cl->self);
	snprintf(cl->inbox_id, sizeof(cl->inbox_id), "0-0");
	log_info("cluster: now node %s", cl->self);
	cl->next_beat = 0;
	if (q)
		post_acceptor(cl, q);
	else
		log_error("cluster: out of memory: the memberships of the reaped node stay");
}

static void heartbeat(struct cluster *cl)
{
	struct shard *s0 = &cl->shard[0];
	uint64_t now = now_ms();
	redisReply *rep;

	if (!s0->up || now < cl->next_beat)
		return;
	cl->next_beat = now + CLUSTER_BEAT_MS;
	rep = redisCommand(s0->w, "SET roomd:alive:%s 1 PX %d", cl->self, CLUSTER_TTL_MS);
	if (!rep) {
		shard_down(cl, s0, s0->w->errstr);
		return;
	}
	freeReplyObject(rep);
	freeReplyObject(redisCommand(s0->w, "SADD roomd:nodes %s", cl->self));
	rep = s0->up ? redisCommand(s0->w, "EXISTS roomd:reaped:%s", cl->self) : NULL;
	if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
		became_reaped(cl);
	freeReplyObject(rep);
	if (s0->up)
		check_others(cl, now);
}

/* ---- the acceptor's requests ---- */

static int acceptor_set(struct cluster *cl)
{
	int set;

	pthread_mutex_lock(&cl->acc_lock);
	set = cl->acc_mbox != NULL;
	pthread_mutex_unlock(&cl->acc_lock);
	return set;
}

/* q to the acceptor's mailbox (freed when it has none any more). */
static void post_acceptor(struct cluster *cl, struct cluster_req *q)
{
	pthread_mutex_lock(&cl->acc_lock);
	if (cl->acc_mbox) {
		q->mail.type = CLUSTER_MAIL_ANSWER;
		mailbox_post(cl->acc_mbox, &q->mail);
		q = NULL;
	}
	pthread_mutex_unlock(&cl->acc_lock);
	cluster_req_free(q);
}

static void answer(struct cluster *cl, struct cluster_req *q)
{
	if (q->kind == CLUSTER_REQ_RELEASE || q->kind == CLUSTER_REQ_EXT)
		cluster_req_free(q);
	else
		post_acceptor(cl, q);
}

/* "self/fd/id": what a name's key holds for its connection. */
static void holder_of(const struct cluster *cl, const struct cluster_req *q, char *out, size_t len)
{
	snprintf(out, len, "%s/%d/%llu", cl->self, q->ctl_fd, q->ctl_id);
}

/* The ref of room q->room: the one Redis holds for the name, or a new one
 * (INCR), kept with HSETNX so that two nodes racing agree. */
static void serve_ref(struct shard *s0, struct cluster_req *q)
{
	redisReply *rep = redisCommand(s0->w, "HGET roomd:refs %s", q->room), *n;

	q->ref = 0;
	if (rep && rep->type == REDIS_REPLY_STRING) {
		q->ref = atol(rep->str);
	} else if (rep && (n = redisCommand(s0->w, "INCR roomd:ref_next"))) {
		if (n->type == REDIS_REPLY_INTEGER && n->integer > 0 &&
		    n->integer < PROTO_ID_MAX - CLUSTER_REF_BASE) {
			long ref = CLUSTER_REF_BASE + (long)n->integer;
			redisReply *set = redisCommand(s0->w, "HSETNX roomd:refs %s %ld", q->room, ref);

			if (set && set->type == REDIS_REPLY_INTEGER && set->integer == 1) {
				q->ref = ref;
			} else if (set) { /* another node was first */
				redisReply *again = redisCommand(s0->w, "HGET roomd:refs %s", q->room);
				if (again && again->type == REDIS_REPLY_STRING)
					q->ref = atol(again->str);
				freeReplyObject(again);
			}
			freeReplyObject(set);
		}
		freeReplyObject(n);
	}
	freeReplyObject(rep);
	if (q->ref <= 0 || q->ref > PROTO_ID_MAX) {
		log_error("cluster: no ref for room %s from Redis", q->room);
		q->ref = 0;
		q->result = -EAGAIN;
	}
}

static void serve_claim(struct cluster *cl, struct shard *s0, struct cluster_req *q)
{
	char holder[CLUSTER_SELF_LEN + 48];
	redisReply *rep;

	holder_of(cl, q, holder, sizeof(holder));
	if (!q->name[0]) { /* name_scope room: only the ref */
		q->result = 0;
		if (q->need_ref)
			serve_ref(s0, q);
		return;
	}
	rep = redisCommand(s0->w, "SET roomd:name:%s %s NX", q->name, holder);
	if (!rep) {
		shard_down(cl, s0, s0->w->errstr);
		q->result = -EAGAIN;
		return;
	}
	if (rep->type == REDIS_REPLY_STATUS) {
		freeReplyObject(rep);
		freeReplyObject(redisCommand(s0->w, "SADD roomd:node:%s:names %s", cl->self, q->name));
		q->result = 0;
		if (q->need_ref)
			serve_ref(s0, q);
		return;
	}
	freeReplyObject(rep);
	rep = redisCommand(s0->w, "GET roomd:name:%s", q->name);
	q->result = !rep ? -EAGAIN
		  : rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, holder) ? 0 : -EEXIST;
	freeReplyObject(rep);
	if (q->result == 0 && q->need_ref)
		serve_ref(s0, q);
}

static void serve_release(struct cluster *cl, struct shard *s0, struct cluster_req *q)
{
	char holder[CLUSTER_SELF_LEN + 48];
	redisReply *rep;

	holder_of(cl, q, holder, sizeof(holder));
	rep = redisCommand(s0->w, "GET roomd:name:%s", q->name);
	if (rep && rep->type == REDIS_REPLY_STRING && !strcmp(rep->str, holder))
		freeReplyObject(redisCommand(s0->w, "DEL roomd:name:%s", q->name));
	freeReplyObject(rep);
	freeReplyObject(redisCommand(s0->w, "SREM roomd:node:%s:names %s", cl->self, q->name));
}

/* Add an item to q's list (bounded by the caller). */
static int add_item(struct cluster_req *q, const char *name, long ref, long count)
{
	struct cluster_item *it = realloc(q->items, (q->nitems + 1) * sizeof(*it));

	if (!it)
		return -ENOMEM;
	q->items = it;
	it += q->nitems++;
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->ref = ref;
	it->count = count;
	return 0;
}

/* Every room's member count: one HLEN each, pipelined on the room's
 * shard, the replies read back in the same order (0 for a shard down). */
static void count_members(struct cluster *cl, struct cluster_req *q)
{
	for (size_t i = 0; i < q->nitems; i++) {
		struct shard *s = &cl->shard[cluster_shard_of(q->items[i].ref, cl->nshards)];

		if (s->up)
			redisAppendCommand(s->w, "HLEN roomd:{%ld}:members", q->items[i].ref);
	}
	for (size_t i = 0; i < q->nitems; i++) {
		unsigned si = cluster_shard_of(q->items[i].ref, cl->nshards);
		struct shard *s = &cl->shard[si];
		redisReply *n = NULL;

		if (!s->up)
			continue;
		if (redisGetReply(s->w, (void **)&n) != REDIS_OK || !n) {
			shard_down(cl, s, s->w->errstr[0] ? s->w->errstr : "no reply");
			continue;
		}
		q->items[i].count = n->type == REDIS_REPLY_INTEGER ? (long)n->integer : 0;
		freeReplyObject(n);
	}
}

static void serve_rooms(struct cluster *cl, struct shard *s0, struct cluster_req *q)
{
	const char *argv[] = { "HGETALL", "roomd:rooms" };
	redisReply *rep = commandv(cl, s0, 2, argv);

	q->result = rep ? 0 : -EAGAIN;
	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements &&
			   q->nitems < CLUSTER_LIST_MAX; i += 2)
		if (add_item(q, rep->element[i]->str, atol(rep->element[i + 1]->str), 0) < 0)
			q->result = -ENOMEM;
	freeReplyObject(rep);
	count_members(cl, q);
}

static void serve_members(struct cluster *cl, struct cluster_req *q)
{
	struct shard *s = &cl->shard[cluster_shard_of(q->ref, cl->nshards)];
	redisReply *rep = s->up ? redisCommand(s->w, "HVALS roomd:{%ld}:members", q->ref) : NULL;

	q->result = rep ? 0 : -EAGAIN;
	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
		if (add_item(q, rep->element[i]->str, q->ref, 0) < 0)
			q->result = -ENOMEM;
	freeReplyObject(rep);
}

/* A private message: to the holder's node's inbox, if it is another node. */
static void serve_private(struct cluster *cl, struct shard *s0, struct cluster_req *q)
{
	redisReply *rep = redisCommand(s0->w, "GET roomd:name:%s", q->name), *ext;
	char node[CLUSTER_SELF_LEN + 48], *slash;

	q->result = -ENOENT;
	if (!rep || rep->type != REDIS_REPLY_STRING) {
		q->result = rep ? -ENOENT : -EAGAIN;
		freeReplyObject(rep);
		return;
	}
	snprintf(node, sizeof(node), "%s", rep->str);
	freeReplyObject(rep);
	if (cluster_member_of(node, cl->self)) {
		q->result = 1;
		return;
	}
	ext = redisCommand(s0->w, "EXISTS roomd:ext:%s", node);
	if (ext && ext->type == REDIS_REPLY_INTEGER && ext->integer == 1) {
		char *conn_part = strrchr(node, '/');
		*conn_part = '\0';
		slash = strrchr(node, '/');
		*conn_part = '/';
		*slash = '\0'; /* node: "node/inc", slash + 1: "fd/id" */
		rep = redisCommand(s0->w, "XADD roomd:inbox:%s MAXLEN ~ 1000 * n %s f %s c %s x %b", node,
				   q->name, q->from, slash + 1, q->text, q->text_len);
		q->result = rep && rep->type == REDIS_REPLY_STRING ? 0 : -EAGAIN;
		freeReplyObject(rep);
	}
	freeReplyObject(ext);
}

static void serve(struct cluster *cl, struct cluster_req *q)
{
	struct shard *s0 = &cl->shard[0];
	char holder[CLUSTER_SELF_LEN + 48];

	q->result = -EAGAIN;
	if (!s0->up) {
		answer(cl, q);
		return;
	}
	switch (q->kind) {
	case CLUSTER_REQ_CLAIM:
		serve_claim(cl, s0, q);
		break;
	case CLUSTER_REQ_RELEASE:
		serve_release(cl, s0, q);
		break;
	case CLUSTER_REQ_EXT:
		holder_of(cl, q, holder, sizeof(holder));
		freeReplyObject(redisCommand(s0->w, "SET roomd:ext:%s 1 EX 86400", holder));
		break;
	case CLUSTER_REQ_ROOMS:
		serve_rooms(cl, s0, q);
		break;
	case CLUSTER_REQ_MEMBERS:
		serve_members(cl, q);
		break;
	case CLUSTER_REQ_PRIVATE:
		serve_private(cl, s0, q);
		break;
	default:
		break;
	}
	answer(cl, q);
}

/* Private messages from other nodes, for the acceptor to deliver. */
static void take_inbox(struct cluster *cl, const redisReply *entries)
{
	for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
		const redisReply *e = entries->element[i], *kv;
		const char *to = NULL, *from = NULL, *conn = NULL, *text = NULL;
		size_t text_len = 0;
		struct cluster_req *q;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
			continue;
		snprintf(cl->inbox_id, sizeof(cl->inbox_id), "%s", e->element[0]->str);
		kv = e->element[1];
		for (size_t k = 0; kv->type == REDIS_REPLY_ARRAY && k + 1 < kv->elements; k += 2) {
			const char *f = kv->element[k]->str, *v = kv->element[k + 1]->str;
			if (!f || !v)
				continue;
			if (!strcmp(f, "n"))
				to = v;
			else if (!strcmp(f, "f"))
				from = v;
			else if (!strcmp(f, "c"))
				conn = v;
			else if (!strcmp(f, "x"))
				text = v, text_len = (size_t)kv->element[k + 1]->len;
		}
		if (!to || !from || !conn || !text ||
		    !(q = cluster_req_new(CLUSTER_REQ_FROM, atoi(conn), 0, text, text_len))) {
			log_error("cluster: a private message from another node is lost (malformed, or "
				  "out of memory)");
			continue;
		}
		q->ctl_id = strtoull(strchr(conn, '/') ? strchr(conn, '/') + 1 : "0", NULL, 10);
		snprintf(q->name, sizeof(q->name), "%s", to);
		snprintf(q->from, sizeof(q->from), "%s", from);
		post_acceptor(cl, q);
	}
}

struct cluster_req *cluster_req_new(int kind, int fd, unsigned long long id, const char *text,
				    size_t len)
{
	struct cluster_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->kind = kind;
	q->ctl_fd = fd;
	q->ctl_id = id;
	if (text) {
		if (!(q->text = malloc(len + 1))) {
			free(q);
			return NULL;
		}
		memcpy(q->text, text, len);
		q->text[len] = '\0';
		q->text_len = len;
	}
	return q;
}

void cluster_req_free(struct cluster_req *q)
{
	if (q) {
		free(q->items);
		free(q->text);
	}
	free(q);
}

void cluster_set_acceptor(struct cluster *cl, struct mailbox *mb)
{
	pthread_mutex_lock(&cl->acc_lock);
	cl->acc_mbox = mb;
	pthread_mutex_unlock(&cl->acc_lock);
	mailbox_wake(&cl->mbox);
}

void cluster_request(struct cluster *cl, struct cluster_req *q)
{
	q->mail.type = CM_REQ;
	mailbox_post(&cl->mbox, &q->mail);
}

/* ---- the thread ---- */

static void take_mail(struct cluster *cl)
{
	struct mail *all = mailbox_take_all(&cl->mbox), *next;

	for (; all; all = next) {
		struct cluster_room *cr = ((struct cl_mail *)all)->cr;

		next = all->next;
		switch (all->type) {
		case CM_OPEN:
			cr->next = cl->rooms;
			cl->rooms = cr;
			break;
		case CM_CLOSE:
			if (cr->refused)
				cl->nrefused--;
			for (struct cluster_room **l = &cl->rooms; *l; l = &(*l)->next)
				if (*l == cr) {
					*l = cr->next;
					break;
				}
			pthread_mutex_destroy(&cr->lock);
			free(cr);
			break;
		case CM_REQ:
			serve((struct cluster *)cl, (struct cluster_req *)all);
			break;
		default:
			queue_append(cl, (struct append *)all);
			break;
		}
	}
}

/* Wait for mail, an XREAD reply or the next deadline. */
static void wait_events(struct cluster *cl)
{
	struct pollfd pfd[1 + CONFIG_CLUSTER_SHARDS];
	struct shard *who[1 + CONFIG_CLUSTER_SHARDS];
	uint64_t now = now_ms(), until = now + CLUSTER_BEAT_MS;
	nfds_t n = 1;

	pfd[0] = (struct pollfd){ .fd = cl->mbox.efd, .events = POLLIN };
	for (unsigned i = 0; i < cl->nshards; i++) {
		struct shard *s = &cl->shard[i];
		if (s->up && s->reading) {
			who[n] = s;
			pfd[n++] = (struct pollfd){ .fd = s->r->fd, .events = POLLIN };
		}
		if (!s->up && s->retry_at < until)
			until = s->retry_at;
		if (s->up && !s->reading && s->read_at > now && s->read_at < until)
			until = s->read_at;
	}
	if (cl->next_beat < until)
		until = cl->next_beat;
	if (cl->flush_more)
		until = now; /* appends left over from a full batch */
	if (atomic_load(&cl->stop) && until > now + 50)
		until = now + 50; /* cluster_main's stop deadline is checked each pass */
	for (struct cluster_room *cr = cl->rooms; cr; cr = cr->next)
		if (!cr->ready && cl->shard[cr->shard].up && cr->init_at < until)
			until = cr->init_at > now ? cr->init_at : now; /* its next try */
	if (poll(pfd, n, until > now ? (int)(until - now) : 0) <= 0)
		return;
	for (nfds_t i = 1; i < n; i++)
		if (pfd[i].revents && who[i]->up && who[i]->reading)
			finish_read(cl, who[i]);
}

static void *cluster_main(void *arg)
{
	struct cluster *cl = arg;
	uint64_t deadline = 0;

	for (;;) {
		if (atomic_load(&cl->stop)) {
			if (!deadline)
				deadline = now_ms() + CLUSTER_STOP_MS;
			if (!cl->q_head || now_ms() >= deadline)
				break;
		}
		connect_due(cl);
		take_mail(cl);
		/* A room's start position before any append of it: its
		 * joiner's own entry must come after it. */
		init_rooms(cl);
		/* The beat first: after a reconnect it finds out whether this
		 * node was reaped meanwhile, so that the old incarnation's
		 * queued events are dropped, not appended after its members'
		 * leaves. */
		heartbeat(cl);
		flush_appends(cl);
		for (unsigned i = 0; i < cl->nshards; i++)
			start_read(cl, i);
		wait_events(cl);
	}
	return NULL;
}

/* ---- the API ---- */

/* "node/incarnation": a new incarnation per start (and per reaping), the
 * wall-clock ms, so later ones are bigger. */
static void set_self(struct cluster *cl, const char *node_id, unsigned port)
{
	char host[CONFIG_HOST_MAX] = "";
	struct timespec ts;
	long long inc;

	clock_gettime(CLOCK_REALTIME, &ts);
	inc = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (node_id[0]) {
		snprintf(cl->self, sizeof(cl->self), "%s/%lld", node_id, inc);
		return;
	}
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "roomd");
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ' ' || *p == '{' || *p == '}')
			*p = '_';
	snprintf(cl->self, sizeof(cl->self), "%.*s-%u/%lld", CONFIG_ID_MAX - 6, host, port, inc);
}

int cluster_start(const struct config *cfg, long maxlen, struct cluster **out, char *err,
		  size_t errlen)
{
	char host[CONFIG_CLUSTER_SHARDS][CONFIG_HOST_MAX];
	unsigned port[CONFIG_CLUSTER_SHARDS];
	struct cluster *cl = calloc(1, sizeof(*cl));
	int n = config_cluster_shards(cfg->cluster_redis, host, port, CONFIG_CLUSTER_SHARDS);
	sigset_t all, old;
	int rc;

	if (!cl || n <= 0 || mailbox_init(&cl->mbox) < 0) {
		snprintf(err, errlen, "cluster: %s", n <= 0 ? "bad [cluster] redis" : strerror(ENOMEM));
		free(cl);
		return -1;
	}
	pthread_mutex_init(&cl->acc_lock, NULL);
	cl->nshards = (unsigned)n;
	for (unsigned i = 0; i < cl->nshards; i++) {
		snprintf(cl->shard[i].host, sizeof(cl->shard[i].host), "%s", host[i]);
		cl->shard[i].port = port[i];
	}
	snprintf(cl->password, sizeof(cl->password), "%s", cfg->cluster_password);
	cl->maxlen = maxlen;
	cl->q_tail = &cl->q_head;
	snprintf(cl->node_id, sizeof(cl->node_id), "%s", cfg->cluster_node_id);
	cl->port = cfg->port;
	set_self(cl, cl->node_id, cl->port);
	snprintf(cl->inbox, sizeof(cl->inbox), "roomd:inbox:%s", cl->self);
	snprintf(cl->inbox_id, sizeof(cl->inbox_id), "0-0");
	log_info("cluster: node %s, %u Redis shard%s", cl->self, cl->nshards, n == 1 ? "" : "s");
	connect_due(cl); /* at once, so the configured rooms start with Redis up */
	/* The thread takes no signal: the acceptor's signalfd does. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&cl->thread, NULL, cluster_main, cl);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cluster: cannot start its thread: %s", strerror(rc));
		for (unsigned i = 0; i < cl->nshards; i++)
			shard_down(cl, &cl->shard[i], "stopping");
		mailbox_fini(&cl->mbox);
		free(cl);
		return -1;
	}
	*out = cl;
	return 0;
}

void cluster_stop(struct cluster *cl)
{
	if (!cl)
		return;
	atomic_store(&cl->stop, 1);
	mailbox_wake(&cl->mbox);
	pthread_join(cl->thread, NULL);
	take_mail(cl); /* requests left are answered -EAGAIN (shards down) */
	for (struct mail *m = cl->q_head, *next; m; m = next) {
		next = m->next;
		append_done(cl, (struct append *)m);
	}
	if (cl->q_head)
		log_warn("cluster: stopping with appends Redis has not taken: they are lost");
	for (unsigned i = 0; i < cl->nshards; i++) {
		if (cl->shard[i].w)
			redisFree(cl->shard[i].w);
		if (cl->shard[i].r)
			redisFree(cl->shard[i].r);
	}
	while (cl->rooms) {
		struct cluster_room *cr = cl->rooms;
		cl->rooms = cr->next;
		pthread_mutex_destroy(&cr->lock);
		free(cr);
	}
	mailbox_fini(&cl->mbox);
	pthread_mutex_destroy(&cl->acc_lock);
	free(cl);
}

int cluster_accepting(struct cluster *cl)
{
	return atomic_load(&cl->all_up) && atomic_load(&cl->queued) < CLUSTER_QUEUE_MAX;
}

struct cluster_room *cluster_room_open(struct cluster *cl, const char *name, long ref, long history,
				       cluster_entry_fn fn, void *arg)
{
	struct cluster_room *cr = calloc(1, sizeof(*cr));

	if (!cr || pthread_mutex_init(&cr->lock, NULL) != 0) {
		free(cr);
		return NULL;
	}
	cr->cl = cl;
	cr->fn = fn;
	cr->arg = arg;
	cr->ref = ref;
	cr->history = history;
	cr->shard = cluster_shard_of(ref, cl->nshards);
	snprintf(cr->name, sizeof(cr->name), "%s", name);
	snprintf(cr->key, sizeof(cr->key), "roomd:{%ld}:s", ref);
	cr->open_m = (struct cl_mail){ { NULL, CM_OPEN }, cr };
	cr->close_m = (struct cl_mail){ { NULL, CM_CLOSE }, cr };
	mailbox_post(&cl->mbox, &cr->open_m.mail);
	return cr;
}

void cluster_room_taken(struct cluster_room *cr)
{
	/* Back under the bound: the thread reads the room again now. */
	if (atomic_fetch_sub(&cr->inflight, 1) == CLUSTER_ROOM_INFLIGHT_MAX)
		mailbox_wake(&cr->cl->mbox);
}

void cluster_room_hold(struct cluster_room *cr, int held)
{
	if (atomic_exchange(&cr->held, held) && !held)
		mailbox_wake(&cr->cl->mbox);
}

void cluster_room_close(struct cluster_room *cr)
{
	if (!cr)
		return;
	pthread_mutex_lock(&cr->lock);
	cr->closed = 1;
	pthread_mutex_unlock(&cr->lock);
	mailbox_post(&cr->cl->mbox, &cr->close_m.mail);
}

int cluster_append(struct cluster_room *cr, int kind, const struct msg *frame,
		   const struct proto_chat_layout *at, const char *name, long join_id,
		   int admitted)
{
	struct cluster *cl = cr->cl;
	const char *nl = memchr(frame->data, '\n', frame->len);
	size_t head = nl ? (size_t)(nl - frame->data) : 0;
	struct append *a;

	/* Messages and notices are what a client can make many of: bounded.
	 * Joins need accepting() at the JOIN; leaves are at most the joins. */
	if ((kind == CLUSTER_MSG || kind == CLUSTER_NOTICE) &&
	    ((!admitted && !cluster_accepting(cl)) || atomic_load(&cr->refused)))
		return -EAGAIN;
	if (!nl || !(a = calloc(1, sizeof(*a) + frame->len - head)))
		return -ENOMEM;
	a->mail.type = CM_APPEND;
	a->ref = cr->ref;
	a->shard = cr->shard;
	a->kind = kind;
	a->join_id = join_id;
	if (name)
		snprintf(a->name, sizeof(a->name), "%s", name);
	if (at && kind == CLUSTER_MSG && at->name_off >= head && at->text_off >= head) {
		a->has_at = 1;
		a->at = (struct proto_chat_layout){ at->name_off - head, at->name_len,
						    at->text_off - head, at->text_len };
	}
	a->body_len = frame->len - head;
	memcpy(a->body, nl, a->body_len);
	a->gen = atomic_load(&cl->gen);
	if (kind == CLUSTER_MSG || kind == CLUSTER_NOTICE)
		atomic_fetch_add(&cl->queued, 1);
	mailbox_post(&cl->mbox, &a->mail);
	return 0;
}
