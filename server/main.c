/* main.c - roomd's entry point: command line, config, logging, the store
 * (open, reconcile, stored rooms into the registry), then the acceptor loop
 * on this (the main) thread until a signal or KILL_SERVICE, then the store's
 * flush. systemd notifications and the SIGHUP reload are service.c's,
 * called from the loop. Exits non-zero only for start-up failures. */
#include "acceptor.h"
#include "cluster.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "service.h"
#include "store.h"
#include "tls.h"

#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The build sets it: conf/rooms.ini (relative to the working directory)
 * for a source tree, /etc/roomd/rooms.ini for the package. */
#ifndef ROOMD_DEFAULT_CONFIG
#define ROOMD_DEFAULT_CONFIG "conf/rooms.ini"
#endif
#define DEFAULT_CONFIG ROOMD_DEFAULT_CONFIG

static void usage(FILE *out)
{
	fprintf(out,
		"usage: roomd [-p PORT] [-c FILE] [-t] [-v LEVEL]\n"
		"       roomd [-c FILE] --backup DEST\n"
		"\n"
		"A multi-room chat daemon speaking the CS4032 chat protocol.\n"
		"\n"
		"  -p, --port PORT     control port (overrides [server] port; 0 = any free port)\n"
		"  -c, --config FILE   configuration file (default: %s)\n"
		"  -t, --check         validate the configuration (and load the [tls] certificate\n"
		"                      and key), print it with every default filled in, and\n"
		"                      exit (0 when valid)\n"
		"  -v, --log-level L   error, warn, info or debug (overrides [server] log_level)\n"
		"  -b, --backup DEST   copy the database of the config ([server] database) to the\n"
		"                      new file DEST, consistently, while roomd runs; then exit\n"
		"      --help          show this help and exit\n"
		"      --version       show the version and exit\n"
		"\n"
		"With [server] database set, rooms, their refs, topics and history are kept\n"
		"in that SQLite file across restarts (a kill -9 loses at most the last 100 ms).\n"
		"Exit 1: a bad config or database (the message names the file and what to do).\n"
		"SIGINT or SIGTERM: stop gracefully, the database flushed (exit 0). SIGHUP: reload\n"
		"the config file live, dropping no member: limits, rates, texts, log settings,\n"
		"history lengths, topics, rooms added or removed, and the [tls] certificate and\n"
		"key for new connections (a renewed certificate); keys that need a restart (bind,\n"
		"ports, database, [tls] mode, ...) are logged and kept; a bad file changes\n"
		"nothing, each error logged with its line. Diff two files' roomd -t output before\n"
		"a reload. With [tls] mode optional or required, every port speaks TLS (see\n"
		"rooms.ini(5)). Logs go to stderr, or syslog with [server] log_target. Under\n"
		"systemd (NOTIFY_SOCKET set): Type=notify, with watchdog pings when WatchdogSec is\n"
		"set.\n"
		"Manual pages: roomd(8), rooms.ini(5), roomc(1). Protocol: docs/PROTOCOL.md.\n",
		DEFAULT_CONFIG);
}

struct options {
	const char *config;
	long port;      /* -1: from the config */
	int check;
	int log_level;  /* -1: from the config */
	const char *backup; /* --backup DEST, or NULL */
	int list_keys;      /* --list-keys (hidden: for the man page's test) */
};

/* Returns -1 to exit 0 (help, version), 0 to go on, 1 for a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "backup", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "list-keys", no_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	*o = (struct options){ DEFAULT_CONFIG, -1, 0, -1, NULL, 0 };
	while ((ch = getopt_long(argc, argv, "p:c:tv:b:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			o->port = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || o->port < 0 || o->port > 65535) {
				fprintf(stderr, "roomd: -p: '%s' is not a port (0..65535)\n", optarg);
				return 1;
			}
			break;
		case 'c':
			o->config = optarg;
			break;
		case 't':
			o->check = 1;
			break;
		case 'b':
			o->backup = optarg;
			break;
		case 'v':
			o->log_level = log_level_parse(optarg);
			if (o->log_level < 0) {
				fprintf(stderr, "roomd: -v: unknown level '%s'\n", optarg);
				return 1;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("roomd %s\n", ROOMD_VERSION);
			return -1;
		case 'K':
			o->list_keys = 1;
			break;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "roomd: unexpected argument '%s'\n", argv[optind]);
		return 1;
	}
	return 0;
}

static void print_key(const char *section, const char *key, void *arg)
{
	(void)arg;
	printf("%s %s\n", section, key);
}

/* Raise the descriptor limit as far as allowed, and say so when it is below
 * what the configured limits can use: every client a control socket and a
 * room socket per room it attaches to, every room a listener, an epoll and
 * an eventfd. Running short is survivable (accept backs off), so it is a
 * warning, not a refusal. */
static void raise_fd_limit(const struct config *cfg)
{
	struct rlimit rl;
	unsigned long long need = (unsigned long long)cfg->max_clients * (1 + (unsigned long long)cfg->max_rooms_per_client) +
				  (unsigned long long)cfg->max_rooms * 3 + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
				 strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("open file limit is %llu, the configured limits may need %llu: raise it "
			 "(ulimit -n, LimitNOFILE=) or lower max_clients/max_rooms_per_client",
			 (unsigned long long)rl.rlim_cur, need);
	else
		log_debug("open file limit %llu (need up to %llu)", (unsigned long long)rl.rlim_cur, need);
}

/* roomd --backup DEST: the online backup of a running (or stopped)
 * daemon's database. */
static int backup(const struct config *cfg, const char *dest)
{
	char err[4096];

	if (!config_persistent(cfg)) {
		fprintf(stderr, "roomd: --backup: the config sets no [server] database: nothing to back up\n");
		return 1;
	}
	if (store_backup(cfg->database, dest, err, sizeof(err)) < 0) {
		fprintf(stderr, "roomd: %s\n", err);
		return 1;
	}
	printf("%s: consistent copy of %s written\n", dest, cfg->database);
	return 0;
}

/* The stored rooms, read before the writer thread takes the connection
 * over. Rooms created on demand go straight into the registry, dormant,
 * as they are read (then sorted, oldest first), so tens of thousands of
 * them cost one pass and no copy; a room without a stored
 * message has nothing to come back to and is forgotten. The topics of
 * configured rooms wait until the acceptor has registered those rooms. */
struct stored {
	const struct config *cfg;
	struct registry *reg;
	struct store *store;
	struct store_room *topics; /* configured rooms: at most cfg->nrooms */
	size_t ntopics;
	long forgotten;
};

static void stored_room(const struct store_room *sr, void *arg)
{
	struct stored *st = arg;
	struct room_info info = { .ref = sr->ref, .history = -1, .topic_change = -1, .on_demand = 1,
				  .history_seen = 1 };
	int err;

	if (sr->configured) {
		if (st->topics && st->ntopics < st->cfg->nrooms)
			st->topics[st->ntopics++] = *sr;
		return;
	}
	if (!config_name_valid(st->cfg, sr->name, strlen(sr->name))) {
		log_warn("store: stored room %s (ref %ld) is not a valid name under this config "
			 "(max_name): not served; its history stays in the database", sr->name, sr->ref);
		return;
	}
	if (!sr->has_messages) {
		store_forget_room(st->store, sr->ref); /* queued for the writer */
		st->forgotten++;
		return;
	}
	/* Dormant since its last message (or its creation). */
	info.dormant_since = sr->last_message > sr->created ? sr->last_message : sr->created;
	snprintf(info.name, sizeof(info.name), "%s", sr->name);
	snprintf(info.topic, sizeof(info.topic), "%s", sr->topic);
	err = registry_add_room(st->reg, &info);
	if (err < 0)
		log_warn("store: stored room %s (ref %ld) not served: %s", sr->name, sr->ref, strerror(-err));
}

static void forget_stored(const struct room_info *info, void *arg)
{
	store_forget_room(arg, info->ref);
}

/* Once the acceptor has registered the configured rooms: their stored
 * topics (a SET_TOPIC survives a restart), then the dormant bounds
 * (dormant_room_ttl, max_dormant_rooms), in the database too. Before
 * serving: no other thread changes the registry yet. */
static void apply_stored(struct stored *st)
{
	for (size_t i = 0; i < st->ntopics; i++)
		registry_set_topic(st->reg, st->topics[i].ref, st->topics[i].topic);
	registry_sort_dormant(st->reg); /* read in ref order; the oldest go first */
	st->forgotten += registry_trim_dormant(st->reg, (int64_t)time(NULL), forget_stored, st->store);
	if (st->forgotten)
		log_info("store: %ld stored rooms forgotten (no history, or beyond dormant_room_ttl "
			 "or max_dormant_rooms)", st->forgotten);
}

/* Open, check and reconcile the database and load its rooms, or say why
 * not. Returns 0 (*out NULL when persistence is off) or -1. */
static int open_store(const struct config *cfg, struct stored *st, struct store **out)
{
	struct store_options so;
	char err[4096];
	long n = 0, max_ref = 0;
	int rc;

	*out = NULL;
	if (!config_persistent(cfg)) {
		log_info("no [server] database: rooms and history are kept in memory only");
		return 0;
	}
	store_default_options(&so, cfg);
	rc = store_open(out, cfg->database, &so, err, sizeof(err));
	if (rc == 0)
		rc = store_reconcile(*out, cfg, err, sizeof(err));
	st->store = *out;
	if (rc == 0 && (n = store_each_room(*out, stored_room, st, err, sizeof(err))) < 0)
		rc = -1;
	if (rc == 0 && (max_ref = store_max_ref(*out)) < 0) {
		snprintf(err, sizeof(err), "database %.3000s: cannot read the highest room ref", cfg->database);
		rc = -1;
	}
	if (rc == 0)
		registry_reserve_refs(st->reg, max_ref); /* forgotten refs are not handed out again */
	if (rc == 0 && store_start(*out) < 0) {
		snprintf(err, sizeof(err), "database %.3000s: cannot start the writer thread", cfg->database);
		rc = -1;
	}
	if (rc < 0) {
		fprintf(stderr, "roomd: %s\n", err);
		store_close(*out);
		*out = NULL;
		return -1;
	}
	log_info("store: %s: %ld rooms stored", cfg->database, n);
	return 0;
}

/* Cluster mode: the streams keep at least what the biggest history of a
 * room may ask for, and never fewer than CLUSTER_MIN_MAXLEN entries (a
 * node that lags behind must still find what it has not read). */
#define CLUSTER_MIN_MAXLEN 1000
static int start_cluster(const struct config *cfg, struct cluster **out)
{
	long maxlen = cfg->history > CLUSTER_MIN_MAXLEN ? cfg->history : CLUSTER_MIN_MAXLEN;
	char err[512];

	for (size_t i = 0; i < cfg->nrooms; i++)
		if (cfg->rooms[i].history > maxlen)
			maxlen = cfg->rooms[i].history;
	if (cluster_start(cfg, maxlen, out, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct config *cfg;
	struct registry *reg;
	struct acceptor *acc;
	struct store *store = NULL;
	struct cluster *cluster = NULL;
	struct stored st;
	struct service svc;
	char err[4096];
	int rc = parse_options(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : 2;
	if (o.list_keys) {
		/* "SECTION KEY" a line, "room KEY" for [room:NAME] keys. */
		config_each_key(print_key, NULL);
		config_each_tls_key(print_key, NULL);
		config_each_cluster_key(print_key, NULL);
		return 0;
	}
	/* A shared snapshot: the room threads hold it, and a reload replaces
	 * it (service.c owns this reference once service_init has it). */
	if (!(cfg = config_create())) {
		fprintf(stderr, "roomd: %s\n", strerror(ENOMEM));
		return 1;
	}
	if (config_load(cfg, o.config, err, sizeof(err)) < 0) {
		fprintf(stderr, "roomd: invalid configuration:\n%s\n", err);
		config_release(cfg);
		return 1;
	}
	if (o.check && tls_check(cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "roomd: invalid configuration:\n%s: %s\n", o.config, err);
		config_release(cfg);
		return 1;
	}
	if (o.check) {
		/* The OK line, then the effective configuration (defaults filled
		 * in), for diffing two files before a reload. */
		printf("%s: configuration OK (%zu rooms defined)\n", o.config, cfg->nrooms);
		printf("# the effective configuration, every default filled in:\n");
		rc = config_dump(cfg, stdout) < 0;
		if (rc)
			fprintf(stderr, "roomd: writing the configuration: %s\n", strerror(errno));
		config_release(cfg);
		return rc;
	}
	if (o.backup) {
		rc = backup(cfg, o.backup);
		config_release(cfg);
		return rc;
	}
	if (o.port >= 0)
		cfg->port = (unsigned)o.port;
	/* Both are levels, checked when read (log_level_parse, the loader);
	 * -1 is -v's "not given". */
	log_set_level((enum log_level)(o.log_level >= 0 ? o.log_level : cfg->log_level));
	log_set_target((enum log_target)cfg->log_target);
	log_info("roomd %s starting, config %s", ROOMD_VERSION, o.config);
	raise_fd_limit(cfg);
	if (tls_init(cfg, err, sizeof(err)) < 0) {
		log_error("%s: %s", o.config, err);
		config_release(cfg);
		return 1;
	}

	reg = registry_create(cfg);
	st = (struct stored){ cfg, reg, NULL, calloc(cfg->nrooms + 1, sizeof(*st.topics)), 0, 0 };
	if (!reg || !st.topics || open_store(cfg, &st, &store) < 0) {
		free(st.topics);
		store_close(store);
		registry_destroy(reg);
		config_release(cfg);
		return 1;
	}
	if (config_clustered(cfg) && start_cluster(cfg, &cluster) < 0) {
		free(st.topics);
		store_close(store);
		registry_destroy(reg);
		config_release(cfg);
		return 1;
	}
	acc = acceptor_open(cfg, reg, store, cluster, cfg->port);
	if (acc)
		apply_stored(&st);
	free(st.topics);
	if (!acc) {
		cluster_stop(cluster);
		store_close(store);
		registry_destroy(reg);
		config_release(cfg);
		return 1;
	}
	/* Before READY: a daemon that said it is up serves its metrics. */
	if (metrics_start(cfg->metrics_listen, err, sizeof(err)) < 0) {
		log_error("%s", err);
		acceptor_destroy(acc);
		cluster_stop(cluster);
		store_close(store);
		registry_destroy(reg);
		config_release(cfg);
		return 1;
	}
	service_init(&svc, o.config, cfg, o.port, o.log_level);
	service_set_hooks(&svc, acc);
	service_ready(&svc);
	rc = acceptor_run(acc);
	metrics_stop();
	acceptor_destroy(acc); /* every room thread is gone: nothing more is queued */
	cluster_stop(cluster); /* after the rooms: their last appends get a bounded time */
	store_close(store);    /* commits what is queued: nothing accepted is lost */
	registry_destroy(reg);
	tls_fini();
	config_release(svc.running); /* cfg, or the last reload's */
	log_info("roomd stopped");
	return rc == 0 ? 0 : 1;
}
