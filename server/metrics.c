/* metrics.c - the counters behind /metrics and the HTTP endpoint.
 *
 * Threads: any thread counts (relaxed atomics, no lock, no system call).
 * The room list (live_head, under lock) changes when a room starts or
 * stops; the scrape (libmicrohttpd's internal thread, one request at a
 * time) holds the lock only to copy the list and take a reference to each
 * room, then reads the counters without it. The HTTP side is bounded: one
 * listening socket where configured, GET /metrics only, a few connections,
 * each for a few seconds. */
#include "metrics.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The HTTP side's bounds: scrapers are a few Prometheus servers. */
#define METRICS_CONN_LIMIT 8
#define METRICS_TIMEOUT_S 5

/* Commit latency buckets, seconds (upper bounds; +Inf is the count). */
static const double commit_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					0.1, 0.25, 0.5, 1, 2.5, 5 };
#define NBOUNDS (sizeof(commit_bounds) / sizeof(commit_bounds[0]))

static const char *const kind_names[METRICS_CONN_KINDS] = { "control", "room" };
static const char *const slow_names[METRICS_SLOWDOWNS] = { "connection_rate", "address_rate",
							   "room_busy" };
static const char *const refusal_names[METRICS_REFUSALS] = {
	"max_clients", "max_clients_per_ip", "connect_rate_per_ip", "room_create_rate", "capability"
};
#define NCODES (PROTO_E_SERVER + 1)

static struct {
	pthread_mutex_t lock;         /* guards the list below */
	struct room_metrics *live_head;
	long nlive;
	atomic_long conns[METRICS_CONN_KINDS];
	atomic_ulong conns_total[METRICS_CONN_KINDS];
	atomic_ulong requests;
	atomic_ulong cut_off[METRICS_CONN_KINDS];
	atomic_ulong errors[NCODES];
	atomic_ulong slowdowns[METRICS_SLOWDOWNS];
	atomic_ulong refusals[METRICS_REFUSALS];
	atomic_long store_queue;
	atomic_ulong commit_buckets[NBOUNDS]; /* non-cumulative; summed at scrape */
	atomic_ulong commit_count, commit_ns, commit_failed;
	struct MHD_Daemon *mhd;       /* main thread */
} M = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline void add(atomic_ulong *c, unsigned long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline unsigned long get(atomic_ulong *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static inline long gauge(atomic_long *g)
{
	return atomic_load_explicit(g, memory_order_relaxed);
}

/* ---- rooms ---- */

struct room_metrics *metrics_room_open(const char *name)
{
	struct room_metrics *rm = calloc(1, sizeof(*rm));

	if (!rm)
		return NULL;
	snprintf(rm->name, sizeof(rm->name), "%s", name);
	atomic_init(&rm->refs, 2); /* the room's and the list's */
	pthread_mutex_lock(&M.lock);
	rm->listed = 1;
	rm->next = M.live_head;
	if (M.live_head)
		M.live_head->prev = rm;
	M.live_head = rm;
	M.nlive++;
	pthread_mutex_unlock(&M.lock);
	return rm;
}

static void room_unref(struct room_metrics *rm)
{
	if (atomic_fetch_sub_explicit(&rm->refs, 1, memory_order_acq_rel) == 1)
		free(rm);
}

void metrics_room_unlist(struct room_metrics *rm)
{
	int was;

	if (!rm)
		return;
	pthread_mutex_lock(&M.lock);
	was = rm->listed;
	if (was) {
		rm->listed = 0;
		if (rm->prev)
			rm->prev->next = rm->next;
		else
			M.live_head = rm->next;
		if (rm->next)
			rm->next->prev = rm->prev;
		rm->prev = rm->next = NULL;
		M.nlive--;
	}
	pthread_mutex_unlock(&M.lock);
	if (was)
		room_unref(rm); /* the list's reference */
}

void metrics_room_close(struct room_metrics *rm)
{
	if (!rm)
		return;
	metrics_room_unlist(rm);
	room_unref(rm);
}

void metrics_room_cut_off(struct room_metrics *rm)
{
	if (rm)
		add(&rm->cut_off, 1);
}

/* ---- server-wide ---- */

void metrics_conn_open(enum metrics_conn_kind kind)
{
	atomic_fetch_add_explicit(&M.conns[kind], 1, memory_order_relaxed);
	add(&M.conns_total[kind], 1);
}

void metrics_conn_close(enum metrics_conn_kind kind)
{
	atomic_fetch_sub_explicit(&M.conns[kind], 1, memory_order_relaxed);
}

void metrics_request(void) { add(&M.requests, 1); }
void metrics_cut_off(enum metrics_conn_kind kind) { add(&M.cut_off[kind], 1); }

void metrics_error(enum proto_err code)
{
	if ((int)code > 0 && (int)code < NCODES)
		add(&M.errors[code], 1);
}

void metrics_slowdown(enum metrics_slowdown why) { add(&M.slowdowns[why], 1); }
void metrics_refusal(enum metrics_refusal why) { add(&M.refusals[why], 1); }

void metrics_store_queue(size_t depth)
{
	atomic_store_explicit(&M.store_queue, (long)depth, memory_order_relaxed);
}

void metrics_store_commit(uint64_t ns, int ok)
{
	double s = (double)ns / 1e9;
	size_t i = 0;

	while (i < NBOUNDS && s > commit_bounds[i])
		i++;
	if (i < NBOUNDS)
		add(&M.commit_buckets[i], 1);
	add(&M.commit_count, 1);
	add(&M.commit_ns, ns);
	if (!ok)
		add(&M.commit_failed, 1);
}

/* ---- exposition ---- */

size_t metrics_escape_label(const char *v, char *out, size_t outlen)
{
	size_t n = 0, w = 0; /* bytes needed; bytes written (stops at the first that does not fit) */
	int full = outlen == 0;

	for (; *v; v++) {
		char e = *v == '\\' ? '\\' : *v == '"' ? '"' : *v == '\n' ? 'n' : 0;
		size_t k = e ? 2 : 1;
		if (!full && w + k < outlen) {
			if (e) {
				out[w++] = '\\';
				out[w++] = e;
			} else {
				out[w++] = *v;
			}
		} else {
			full = 1; /* no half escape, nothing after a gap */
		}
		n += k;
	}
	if (outlen > 0)
		out[w] = '\0';
	return n;
}

/* A growing text buffer; on failure it stays failed and render returns NULL. */
struct text {
	char *p;
	size_t len, cap;
	int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = 1;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t ncap = (t->cap + (size_t)n + 1) * 2;
		char *np = realloc(t->p, ncap);
		if (!np) {
			t->failed = 1;
			return;
		}
		t->p = np;
		t->cap = ncap;
	}
}

static void head(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The live rooms' counters, each with a reference: the lock is held for
 * the copy only. *n rooms; NULL with *n 0 when there are none (or out of
 * memory: the scrape then shows no rooms). */
static struct room_metrics **rooms_snapshot(size_t *n)
{
	struct room_metrics **v = NULL, *rm;
	size_t k = 0;

	pthread_mutex_lock(&M.lock);
	if (M.nlive > 0)
		v = malloc((size_t)M.nlive * sizeof(*v));
	for (rm = M.live_head; v && rm; rm = rm->next) {
		atomic_fetch_add_explicit(&rm->refs, 1, memory_order_relaxed);
		v[k++] = rm;
	}
	pthread_mutex_unlock(&M.lock);
	*n = k;
	return v;
}

enum room_field { RF_MEMBERS, RF_ATTACHED, RF_HISTORY, RF_MESSAGES, RF_BYTES, RF_DELIVERIES,
		  RF_CUT_OFF, RF_COUNT };

static const struct {
	const char *name, *type, *help;
} room_series[RF_COUNT] = {
	{ "roomd_room_members", "gauge", "Members of the room." },
	{ "roomd_room_attached_members", "gauge", "Members with an attached room connection." },
	{ "roomd_room_history_messages", "gauge", "Messages kept for HISTORY." },
	{ "roomd_room_messages_total", "counter", "Members' messages relayed." },
	{ "roomd_room_bytes_total", "counter", "Bytes of the members' messages relayed (each frame once)." },
	{ "roomd_room_deliveries_total", "counter", "Frames queued to members (members times frames)." },
	{ "roomd_room_slow_consumers_cut_off_total", "counter",
	  "Members' connections cut off because they were not reading." },
};

static unsigned long room_value(struct room_metrics *rm, enum room_field f)
{
	switch (f) {
	case RF_MEMBERS: return (unsigned long)gauge(&rm->members);
	case RF_ATTACHED: return (unsigned long)gauge(&rm->attached);
	case RF_HISTORY: return (unsigned long)gauge(&rm->history);
	case RF_MESSAGES: return get(&rm->messages);
	case RF_BYTES: return get(&rm->bytes);
	case RF_DELIVERIES: return get(&rm->deliveries);
	case RF_CUT_OFF: return get(&rm->cut_off);
	default: return 0;
	}
}

/* The per-room series of one snapshot; returns how many rooms it held. */
static size_t render_rooms(struct text *t)
{
	size_t n, need;
	struct room_metrics **v = rooms_snapshot(&n);
	/* Escaping at most doubles a name. */
	char (*esc)[2 * CONFIG_NAME_MAX + 1] = n ? calloc(n, sizeof(*esc)) : NULL;

	if (n && !esc)
		t->failed = 1;
	for (size_t i = 0; esc && i < n; i++) {
		need = metrics_escape_label(v[i]->name, esc[i], sizeof(esc[i]));
		if (need >= sizeof(esc[i]))
			t->failed = 1; /* cannot happen: names are at most CONFIG_NAME_MAX */
	}
	for (int f = 0; f < RF_COUNT; f++) {
		head(t, room_series[f].name, room_series[f].type, room_series[f].help);
		for (size_t i = 0; esc && i < n; i++)
			put(t, "%s{room=\"%s\"} %lu\n", room_series[f].name, esc[i],
			    room_value(v[i], (enum room_field)f));
	}
	free(esc);
	for (size_t i = 0; i < n; i++)
		room_unref(v[i]);
	free(v);
	return n;
}

/* The server-wide series; nrooms is the room count of the same scrape's
 * snapshot, so roomd_rooms always matches the rooms listed above it (a
 * room closing in between would otherwise be counted gone but listed). */
static void render_server(struct text *t, size_t nrooms)
{
	head(t, "roomd_connections", "gauge", "Connections open now, by kind (control or room port).");
	for (int k = 0; k < METRICS_CONN_KINDS; k++)
		put(t, "roomd_connections{kind=\"%s\"} %ld\n", kind_names[k], gauge(&M.conns[k]));
	head(t, "roomd_connections_accepted_total", "counter", "Connections accepted, by kind.");
	for (int k = 0; k < METRICS_CONN_KINDS; k++)
		put(t, "roomd_connections_accepted_total{kind=\"%s\"} %lu\n", kind_names[k],
		    get(&M.conns_total[k]));
	head(t, "roomd_slow_consumers_cut_off_total", "counter",
	     "Connections cut off because they were not reading, by kind.");
	for (int k = 0; k < METRICS_CONN_KINDS; k++)
		put(t, "roomd_slow_consumers_cut_off_total{kind=\"%s\"} %lu\n", kind_names[k],
		    get(&M.cut_off[k]));
	head(t, "roomd_requests_total", "counter", "Requests handled (control and room ports).");
	put(t, "roomd_requests_total %lu\n", get(&M.requests));
	head(t, "roomd_errors_total", "counter", "ERROR replies sent, by code.");
	for (int c = 1; c < NCODES; c++)
		put(t, "roomd_errors_total{code=\"%d\"} %lu\n", c, get(&M.errors[c]));
	head(t, "roomd_rate_limit_slowdowns_total", "counter",
	     "Connections made to wait before their next request, by reason.");
	for (int r = 0; r < METRICS_SLOWDOWNS; r++)
		put(t, "roomd_rate_limit_slowdowns_total{reason=\"%s\"} %lu\n", slow_names[r],
		    get(&M.slowdowns[r]));
	head(t, "roomd_refusals_total", "counter", "Connections or requests refused by a limit, by reason.");
	for (int r = 0; r < METRICS_REFUSALS; r++)
		put(t, "roomd_refusals_total{reason=\"%s\"} %lu\n", refusal_names[r], get(&M.refusals[r]));
	head(t, "roomd_rooms", "gauge", "Rooms with a running thread.");
	put(t, "roomd_rooms %zu\n", nrooms);
	head(t, "roomd_store_queue_messages", "gauge", "Messages waiting for the store's writer.");
	put(t, "roomd_store_queue_messages %ld\n", gauge(&M.store_queue));
	head(t, "roomd_store_commit_failures_total", "counter", "Store commits that failed.");
	put(t, "roomd_store_commit_failures_total %lu\n", get(&M.commit_failed));
	head(t, "roomd_store_commit_seconds", "histogram", "Time the store's writer takes per commit.");
	/* Buckets are counted apart and summed here: a bucket and the count
	 * may disagree by a commit that lands mid-scrape, so the count is
	 * taken first and no bucket is shown above it. */
	unsigned long count = get(&M.commit_count), cum = 0;
	uint64_t ns = get(&M.commit_ns);
	for (size_t i = 0; i < NBOUNDS; i++) {
		cum += get(&M.commit_buckets[i]);
		put(t, "roomd_store_commit_seconds_bucket{le=\"%g\"} %lu\n", commit_bounds[i],
		    cum < count ? cum : count);
	}
	put(t, "roomd_store_commit_seconds_bucket{le=\"+Inf\"} %lu\n", count);
	put(t, "roomd_store_commit_seconds_sum %.9f\n", (double)ns / 1e9);
	put(t, "roomd_store_commit_seconds_count %lu\n", count);
}

char *metrics_render(size_t *len)
{
	struct text t = { 0 };

	render_server(&t, render_rooms(&t));
	if (t.failed || !t.p) {
		free(t.p);
		return NULL;
	}
	*len = t.len;
	return t.p;
}

/* ---- HTTP (libmicrohttpd's thread) ---- */

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, char *body,
				  size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result rc;

	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
						      : "text/plain; charset=utf-8");
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	static char not_found[] = "not found: GET /metrics\n";
	static char no_memory[] = "out of memory\n";
	size_t len;
	char *body;

	(void)cls;
	(void)version;
	(void)upload;
	if (*upload_len > 0)
		return MHD_NO; /* no request body is asked for: close */
	(void)state;
	if (strcmp(method, "GET") != 0 || strcmp(url, "/metrics") != 0)
		return reply_text(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1,
				  MHD_RESPMEM_PERSISTENT);
	body = metrics_render(&len);
	if (!body)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, no_memory, sizeof(no_memory) - 1,
				  MHD_RESPMEM_PERSISTENT);
	return reply_text(conn, MHD_HTTP_OK, body, len, MHD_RESPMEM_MUST_FREE);
}

/* listen as a socket address (config_split_listen checked its form). */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[CONFIG_HOST_MAX];
	struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)ss;
	unsigned port;

	if (config_split_listen(s, host, sizeof(host), &port) < 0)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*sl = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a6);
		return 0;
	}
	return -1;
}

/* Bind and listen on listen ourselves, so that port 0 can be reported. */
static int bind_listener(const char *where, char *shown, size_t shownlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	char host[INET6_ADDRSTRLEN];
	unsigned port;
	int fd, one = 1;

	if (parse_listen(where, &ss, &sl) < 0) {
		snprintf(err, errlen, "[metrics] listen: '%s' is not ADDR:PORT or [ADDR6]:PORT", where);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(err, errlen, "[metrics] listen: %s: %s", where, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)&ss;
		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
		port = ntohs(a4->sin_port);
		snprintf(shown, shownlen, "%s:%u", host, port);
	} else {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)&ss;
		inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
		port = ntohs(a6->sin6_port);
		snprintf(shown, shownlen, "[%s]:%u", host, port);
	}
	return fd;
}

int metrics_start(const char *where, char *err, size_t errlen)
{
	char shown[INET6_ADDRSTRLEN + 16];
	int fd;

	if (!where || !where[0])
		return 0;
	fd = bind_listener(where, shown, sizeof(shown), err, errlen);
	if (fd < 0)
		return -1;
	/* The HTTP thread takes no signal: SIGTERM and SIGHUP are the
	 * acceptor's (signalfd), whatever the mask is now. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	M.mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0,
				 NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONN_LIMIT,
				 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_CONN_LIMIT / 2,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
				 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!M.mhd) {
		snprintf(err, errlen, "[metrics] listen: %s: cannot start the HTTP server", where);
		close(fd);
		return -1;
	}
	log_info("metrics listening on %s", shown);
	return 0;
}

void metrics_stop(void)
{
	if (M.mhd) {
		MHD_stop_daemon(M.mhd); /* MHD closes the listening socket it was given */
		M.mhd = NULL;
	}
}
