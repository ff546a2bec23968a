/* config.h - the rooms.ini schema and loader.
 *
 * The only module that calls iniparser. A loaded config is read-only, so any
 * thread may read it without a lock. The daemon's configs are shared
 * snapshots (config_create): a SIGHUP reload publishes a new one and each
 * thread drops its reference to the old one at a safe point of its loop
 * (config_hold / config_release; the last release frees it). Every key,
 * its default and its range is in conf/rooms.ini. */
#ifndef ROOMD_CONFIG_H
#define ROOMD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_HOST_MAX 256
#define CONFIG_BIND_MAX 8      /* addresses in [server] bind */
#define CONFIG_ADDR_MAX 46     /* one numeric address as text (INET6_ADDRSTRLEN) */
/* [server] bind as stored: at most CONFIG_BIND_MAX addresses, ", " between. */
#define CONFIG_BIND_LEN (CONFIG_BIND_MAX * (CONFIG_ADDR_MAX + 2))
#define CONFIG_NAME_MAX 64     /* hard ceiling for room and client names */
#define CONFIG_TOPIC_MAX 256
#define CONFIG_WELCOME_MAX 2048
#define CONFIG_ID_MAX 64
#define CONFIG_MAX_ROOMS_DEFINED 4096
/* History kept per room at most: every entry is a shared message, so this
 * bounds a room's memory; a bigger value is refused at start. */
#define CONFIG_HISTORY_MAX 10000
/* history x max_message at most, per room: what one room may keep for
 * HISTORY (a reply is at most about this big). */
#define CONFIG_HISTORY_BYTES_MAX (16L << 20)
/* The database path as resolved (the config file's directory + the value);
 * the value itself is bounded by iniparser's line length. */
#define CONFIG_PATH_MAX 4096
#define CONFIG_MAX_AGE_MAX 3153600000L /* 100 years of seconds */
#define CONFIG_END_QUIET_MAX 10000 /* end_quiet_ms: 10 s */
#define CONFIG_CLUSTER_SHARDS 16 /* Redis addresses in [cluster] redis */
#define CONFIG_CLUSTER_LEN 1024  /* [cluster] redis as written */

/* [server] name_scope: a CLIENT_NAME belongs to one control connection
 * server wide (SPEC 2.1), or, as before, only within a room. */
enum config_name_scope { CONFIG_SCOPE_SERVER = 0, CONFIG_SCOPE_ROOM = 1 };

/* [tls] mode: no TLS; TLS and plain on every port, told apart by the
 * first byte; or TLS only (a plain client gets an error and is closed). */
enum config_tls_mode { CONFIG_TLS_OFF = 0, CONFIG_TLS_OPTIONAL = 1, CONFIG_TLS_REQUIRED = 2 };
/* [tls] min_version */
enum config_tls_version { CONFIG_TLS_12 = 0, CONFIG_TLS_13 = 1 };

/* A room defined in a [room:NAME] section. */
struct room_conf {
	char name[CONFIG_NAME_MAX + 1]; /* "name" key, else the section suffix */
	long ref;                       /* ROOM_REF: "ref" key, else its position (1, 2, ...) */
	unsigned port;                  /* 0: taken from the room port range */
	char topic[CONFIG_TOPIC_MAX + 1];
	long max_members;               /* 0: the server's max_members */
	long history;                   /* messages kept; -1: the server's history */
	int topic_change;               /* members may set the topic; -1: the server's */
	int line;                       /* line of the section header, for messages */
};

struct config {
	/* [server] */
	char bind[CONFIG_BIND_LEN];        /* numeric addresses to listen on, in canonical
					    * form, ", " between (config_bind_addrs splits it) */
	unsigned port;                     /* control port */
	char public_host[CONFIG_HOST_MAX]; /* SERVER_IP/IP in replies; "" = local address */
	unsigned room_port_min, room_port_max; /* ports for rooms created on join */
	char server_id[CONFIG_ID_MAX + 1]; /* StudentID in the HELO reply */
	int log_level;                     /* enum log_level */
	int log_target;                    /* enum log_target: stderr or syslog */
	char welcome[CONFIG_WELCOME_MAX + 1];
	char database[CONFIG_PATH_MAX];    /* SQLite file, resolved against the config file's
					    * directory; "" or ":memory:" = no persistence */

	/* [limits] */
	long max_clients;          /* control connections in total */
	long max_clients_per_ip;
	long max_rooms;
	long max_members;          /* per room, unless the room sets its own */
	long max_rooms_per_client; /* memberships of one control connection */
	long max_name;             /* bytes of a room or client name */
	long max_message;          /* bytes of a MESSAGE; above: error 8, connection kept */
	long max_request;          /* bytes of one request; above: error 8, connection closed */
	long sendq_bytes;          /* unwritten bytes per connection; above: cut off */
	long rate;                 /* requests per second per connection (token refill) */
	long burst;                /* token bucket size */
	long rate_per_ip;          /* requests per second of all connections of one address */
	long burst_per_ip;         /* their shared bucket size */
	long connect_rate_per_ip;  /* connections per second one address may open */
	long connect_burst_per_ip; /* ...back to back */
	long room_create_rate;     /* rooms one address may create on demand per minute */
	long room_unattached_max;  /* room connections per room not attached yet */
	long idle_timeout;         /* seconds a connection without membership may idle; 0 = never */
	long request_timeout;      /* seconds a request may stay incomplete; 0 = no limit */
	long end_quiet_ms;         /* a request complete but for its terminator ends after
				    * this many quiet milliseconds (SPEC §2.4); 0 = off */
	long history;              /* messages kept per room (memory and database) */
	long history_max_age;      /* seconds a stored message is kept; 0 = no age limit */
	long dormant_room_ttl;     /* seconds a dormant on-demand room is kept; 0 = no age limit */
	long max_dormant_rooms;    /* dormant on-demand rooms kept at most (oldest forgotten first) */
	int name_scope;            /* enum config_name_scope: where a CLIENT_NAME is unique */

	/* [features] */
	int room_creation;         /* JOIN may create rooms not in the config */
	int kill_service;          /* KILL_SERVICE honoured (from loopback peers only) */
	int topic_change;          /* members may change topics (rooms may override) */

	/* [metrics] */
	char metrics_listen[CONFIG_HOST_MAX]; /* ADDR:PORT of /metrics; "" = off */

	/* [tls]: paths resolved against the config file's directory, like
	 * database; cert and key are re-read on SIGHUP */
	int tls_mode;                      /* enum config_tls_mode */
	char tls_cert[CONFIG_PATH_MAX];    /* PEM certificate chain, leaf first */
	char tls_key[CONFIG_PATH_MAX];     /* PEM private key of the leaf */
	char tls_ca[CONFIG_PATH_MAX];      /* PEM CAs that sign client certificates */
	int tls_min_version;               /* enum config_tls_version */
	int tls_verify_clients;            /* a client certificate signed by ca is required */

	/* [cluster]: "" redis = a single node (docs/CLUSTER.md) */
	char cluster_redis[CONFIG_CLUSTER_LEN]; /* HOST:PORT[, HOST:PORT...]: the Redis shards */
	char cluster_node_id[CONFIG_ID_MAX + 1]; /* "": derived from the host name and port */
	char cluster_password[CONFIG_ID_MAX * 4 + 1]; /* Redis AUTH; "": none */
	int cluster_tls;                   /* TLS to Redis (not supported yet: refused) */

	struct room_conf *rooms;   /* the [room:*] sections, in file order */
	size_t nrooms;

	struct config_refs *refs;  /* a shared snapshot's count (config_create); NULL:
				    * a plain struct its owner frees (config_fini) */
};

/* A shared snapshot holding the defaults (no rooms), one reference held by
 * the caller; load it with config_load before sharing it. NULL when out of
 * memory. */
struct config *config_create(void);

/* Take another reference to a shared snapshot, for a thread that keeps
 * using it after the owner moved on; returns cfg. Any thread. A plain
 * struct (refs NULL: tests, roomd -t) is returned untouched. */
const struct config *config_hold(const struct config *cfg);

/* Drop a reference: the last one frees the snapshot and its rooms. Any
 * thread; NULL or a plain struct: nothing. */
void config_release(const struct config *cfg);

/* The value of [section] key in c as rooms.ini would spell it (section
 * "server", "limits", "features", "metrics", or "room:NAME" for the room
 * called NAME, whose unset keys show the server's values they stand for).
 * Returns 0, or -1 when there is no such key or room ("" in out). */
int config_value_text(const struct config *c, const char *section, const char *key, char *out,
		      size_t len);

/* Give [section] key of dst (a config being built, not yet shared) the
 * value it has in src: a reload keeps the running value of a key that
 * needs a restart. Section as for config_value_text; a room's name cannot
 * be kept. 0, or -1 when there is no such key, or the room is not in both. */
int config_keep_value(struct config *dst, const struct config *src, const char *section,
		      const char *key);

/* Write c as a complete rooms.ini: every key with its value, defaults
 * filled in (a room's unset keys as the server's values they stand for),
 * so that two files' effective settings can be diffed. Returns 0, or -1
 * on a write error (errno set). */
int config_dump(const struct config *c, FILE *f);

/* Fill cfg with the defaults (no rooms). */
void config_defaults(struct config *cfg);

/* Load path over what cfg holds (call config_defaults first). Returns 0, or -1 with a message in err
 * ("rooms.ini:12: [limits] max_rooms: 'x' is not a number in 1..100000")
 * naming the file, line and key of every unknown key or bad value (the
 * first few). On failure cfg holds no allocation. */
int config_load(struct config *cfg, const char *path, char *err, size_t errlen);

/* Free what config_load allocated (not for a shared snapshot: release it). */
void config_fini(struct config *cfg);

/* Nonzero when cfg has a [cluster] redis (cluster mode). */
int config_clustered(const struct config *cfg);

/* Split [cluster] redis into its shards: host (CONFIG_HOST_MAX each) and
 * port of each, at most max; returns how many, or -1 when an item is not
 * HOST:PORT (a name or an address; port 1..65535) or there are too many. */
int config_cluster_shards(const char *redis, char (*host)[CONFIG_HOST_MAX], unsigned *port,
			  size_t max);

/* Nonzero when cfg asks for a database file (persistence on). */
int config_persistent(const struct config *cfg);

/* Every key the loader accepts but [tls]'s, in its table's order: fn(section, key,
 * arg) with section "server", "limits", "features" or "metrics", or "room" for the
 * keys of a [room:NAME] section. roomd --list-keys prints them (the test
 * that keeps rooms.ini(5) complete compares against it). */
void config_each_key(void (*fn)(const char *section, const char *key, void *arg), void *arg);
/* The [tls] keys, the same way (section "tls"): listed apart so that a
 * caller of config_each_key sees the sections it always did. */
void config_each_tls_key(void (*fn)(const char *section, const char *key, void *arg), void *arg);
/* The [cluster] keys, the same way (section "cluster"). */
void config_each_cluster_key(void (*fn)(const char *section, const char *key, void *arg), void *arg);

/* Compare two loaded configs key by key (a SIGHUP reload against the
 * running config): fn(section, key, arg) for every [server], [limits] or
 * [features] key whose value differs; fn("room:NAME", key, arg) for every
 * key of a room (matched by name) that differs, and fn("room:NAME", NULL,
 * arg) for a room only one of them defines. Reads both; no allocation. */
void config_diff(const struct config *a, const struct config *b,
		 void (*fn)(const char *section, const char *key, void *arg), void *arg);

/* [server] bind, split into its addresses. */
struct config_addrs {
	size_t n;                                   /* 1..CONFIG_BIND_MAX */
	char addr[CONFIG_BIND_MAX][CONFIG_ADDR_MAX]; /* canonical numeric text, in list order */
	const char *ptr[CONFIG_BIND_MAX];           /* addr[i], for net_listen_all() */
};

/* Split a bind list ("127.0.0.1, ::1"): comma separated numeric IPv4 or
 * IPv6 addresses, at most CONFIG_BIND_MAX, none twice, and no wildcard
 * (0.0.0.0, ::) next to another address of its own family (it covers them
 * already, and both could not listen on one port). Returns 0, or -1 with
 * the reason in why. The loader checks every list; a loaded config's list
 * always splits. */
int config_bind_addrs(const char *bind, struct config_addrs *out, char *why, size_t whylen);

/* Valid room or client name under this config: 1..max_name bytes of
 * printable ASCII letters, digits, "-_.#@+" and spaces, but not a space at
 * either end (lab-era clients name rooms "chatroom 1"; roomc quotes such
 * names). No control byte, quote, colon or bracket, so a name prints
 * unambiguously. Returns nonzero when valid. */
int config_name_valid(const struct config *cfg, const char *name, size_t len);

/* Valid room topic, wherever it comes from (a [room:NAME] topic key, or a
 * member's SET_TOPIC): at most CONFIG_TOPIC_MAX bytes, no control byte
 * (0x00-0x1f, 0x7f: they would break a reply line or drive a terminal).
 * UTF-8 passes unchecked. Returns nonzero when valid. */
int config_topic_valid(const char *topic, size_t len);

/* Split a [metrics] listen value, "ADDR:PORT" (numeric IPv4) or
 * "[ADDR6]:PORT", into host (hostlen bytes; NULL: only check) and port
 * (0..65535). 0, or -1 when v is not of that form. */
int config_split_listen(const char *v, char *host, size_t hostlen, unsigned *port);

#endif
