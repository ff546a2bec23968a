/* config.c - load and check rooms.ini into a struct config.
 *
 * The only caller of iniparser: iniparser gives the values, but no line
 * numbers, so a small scanner that follows iniparser 4.1's line rules records
 * where every section header and key is, and every message names the file,
 * line, section and key. Loading is all or nothing: on any error the caller's
 * struct is left as it was. Runs at start-up, before any thread exists, and
 * on the acceptor thread for a SIGHUP reload (into a new snapshot: a loaded
 * config is read-only); never on two threads at once (iniparser's error
 * callback below is process-wide). A shared snapshot's reference count is
 * the only field any thread writes, atomically (config_hold/_release). */
#include "config.h"

#include "log.h"
#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <iniparser.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A user fixes a file in one go when shown all of its faults, but a file
 * that is not an ini file at all would bury the first fault in noise. */
#define CONFIG_MAX_ERRORS 8

/* iniparser 4.1 reads lines with fgets into a 1024-byte buffer (its
 * ASCIILINESZ), continuation lines included, and fails the whole load on a
 * longer one; the scanner applies the same limit so it can say where. */
#define INI_LINESZ 1024

/* The other fields of a CHAT request (CHAT, JOIN_ID and CLIENT_NAME lines
 * with a 64-byte name, the MESSAGE key, the terminating blank line, \r\n
 * line ends and spaces) must still fit next to a maximal MESSAGE. */
#define CONFIG_REQUEST_SLACK 512

/* A send queue must hold a few maximal frames, or one burst of room traffic
 * would cut off a healthy reader that is merely a round trip behind. */
#define CONFIG_SENDQ_FRAMES 4

#define CONFIG_LIMIT_MAX 1000000L
#define CONFIG_ROOMS_MAX 100000L

/* ---- schema ---- */

enum key_type {
	K_ADDRS, /* list of numeric IPv4 or IPv6 addresses: config_bind_addrs() */
	K_HOST,  /* printable ASCII without spaces: a host name or address */
	K_TEXT,  /* no control bytes; UTF-8 allowed; min..max bytes */
	K_TOPIC, /* a room topic: what config_topic_valid() accepts */
	K_NAME,  /* a room name; its characters are checked once max_name is known */
	K_PORT,  /* unsigned, min..max */
	K_LONG,  /* long, min..max */
	K_BOOL,  /* int 0/1 */
	K_LEVEL, /* int enum log_level */
	K_SCOPE, /* int enum config_name_scope: server or room */
	K_TARGET, /* int enum log_target */
	K_LISTEN, /* "" or ADDR:PORT or [ADDR6]:PORT, numeric (config_split_listen) */
	K_TLSMODE, /* int enum config_tls_mode: off, optional, required */
	K_TLSVER, /* int enum config_tls_version: 1.2, 1.3 */
};

struct key_spec {
	const char *section; /* NULL for the keys of a [room:NAME] section */
	const char *name;
	enum key_type type;
	size_t off;          /* in struct config, or in struct room_conf */
	long min, max;       /* value range, or length range for strings */
};

#define G(field) offsetof(struct config, field)
#define R(field) offsetof(struct room_conf, field)

static const struct key_spec global_keys[] = {
	{ "server", "bind", K_ADDRS, G(bind), 1, CONFIG_BIND_LEN - 1 },
	{ "server", "port", K_PORT, G(port), 0, 65535 },
	{ "server", "public_host", K_HOST, G(public_host), 0, CONFIG_HOST_MAX - 1 },
	{ "server", "room_port_min", K_PORT, G(room_port_min), 0, 65535 },
	{ "server", "room_port_max", K_PORT, G(room_port_max), 0, 65535 },
	{ "server", "server_id", K_TEXT, G(server_id), 1, CONFIG_ID_MAX },
	{ "server", "log_level", K_LEVEL, G(log_level), 0, 0 },
	{ "server", "log_target", K_TARGET, G(log_target), 0, 0 },
	{ "server", "welcome", K_TEXT, G(welcome), 0, CONFIG_WELCOME_MAX },
	{ "server", "database", K_TEXT, G(database), 0, INI_LINESZ },
	{ "server", "name_scope", K_SCOPE, G(name_scope), 0, 0 },
	{ "limits", "max_clients", K_LONG, G(max_clients), 1, CONFIG_LIMIT_MAX },
	{ "limits", "max_clients_per_ip", K_LONG, G(max_clients_per_ip), 1, CONFIG_LIMIT_MAX },
	{ "limits", "max_rooms", K_LONG, G(max_rooms), 1, CONFIG_ROOMS_MAX },
	{ "limits", "max_members", K_LONG, G(max_members), 1, CONFIG_ROOMS_MAX },
	{ "limits", "max_rooms_per_client", K_LONG, G(max_rooms_per_client), 1, CONFIG_ROOMS_MAX },
	{ "limits", "max_name", K_LONG, G(max_name), 1, CONFIG_NAME_MAX },
	{ "limits", "max_message", K_LONG, G(max_message), 1, 1048576 },
	{ "limits", "max_request", K_LONG, G(max_request), 1 + CONFIG_REQUEST_SLACK,
	  1048576 + CONFIG_REQUEST_SLACK },
	{ "limits", "sendq_bytes", K_LONG, G(sendq_bytes), 65536, 1073741824 },
	{ "limits", "rate", K_LONG, G(rate), 1, CONFIG_LIMIT_MAX },
	{ "limits", "burst", K_LONG, G(burst), 1, CONFIG_LIMIT_MAX },
	{ "limits", "rate_per_ip", K_LONG, G(rate_per_ip), 1, CONFIG_LIMIT_MAX },
	{ "limits", "burst_per_ip", K_LONG, G(burst_per_ip), 1, CONFIG_LIMIT_MAX },
	{ "limits", "connect_rate_per_ip", K_LONG, G(connect_rate_per_ip), 1, CONFIG_LIMIT_MAX },
	{ "limits", "connect_burst_per_ip", K_LONG, G(connect_burst_per_ip), 1, CONFIG_LIMIT_MAX },
	{ "limits", "room_create_rate", K_LONG, G(room_create_rate), 1, CONFIG_LIMIT_MAX },
	{ "limits", "room_unattached_max", K_LONG, G(room_unattached_max), 1, 1024 },
	{ "limits", "idle_timeout", K_LONG, G(idle_timeout), 0, 604800 },
	{ "limits", "request_timeout", K_LONG, G(request_timeout), 0, 86400 },
	{ "limits", "end_quiet_ms", K_LONG, G(end_quiet_ms), 0, CONFIG_END_QUIET_MAX },
	{ "limits", "history", K_LONG, G(history), 0, CONFIG_HISTORY_MAX },
	{ "limits", "history_max_age", K_LONG, G(history_max_age), 0, CONFIG_MAX_AGE_MAX },
	{ "limits", "dormant_room_ttl", K_LONG, G(dormant_room_ttl), 0, CONFIG_MAX_AGE_MAX },
	{ "limits", "max_dormant_rooms", K_LONG, G(max_dormant_rooms), 0, CONFIG_ROOMS_MAX },
	{ "features", "room_creation", K_BOOL, G(room_creation), 0, 1 },
	{ "features", "kill_service", K_BOOL, G(kill_service), 0, 1 },
	{ "features", "topic_change", K_BOOL, G(topic_change), 0, 1 },
	{ "metrics", "listen", K_LISTEN, G(metrics_listen), 0, CONFIG_HOST_MAX - 1 },
	{ "tls", "mode", K_TLSMODE, G(tls_mode), 0, 0 },
	{ "tls", "cert", K_TEXT, G(tls_cert), 0, INI_LINESZ },
	{ "tls", "key", K_TEXT, G(tls_key), 0, INI_LINESZ },
	{ "tls", "ca", K_TEXT, G(tls_ca), 0, INI_LINESZ },
	{ "tls", "min_version", K_TLSVER, G(tls_min_version), 0, 0 },
	{ "tls", "verify_clients", K_BOOL, G(tls_verify_clients), 0, 1 },
	{ "cluster", "redis", K_TEXT, G(cluster_redis), 0, CONFIG_CLUSTER_LEN - 1 },
	{ "cluster", "node_id", K_TEXT, G(cluster_node_id), 0, CONFIG_ID_MAX },
	{ "cluster", "password", K_TEXT, G(cluster_password), 0, CONFIG_ID_MAX * 4 },
	{ "cluster", "tls", K_BOOL, G(cluster_tls), 0, 1 },
};
#define NGLOBAL (sizeof global_keys / sizeof global_keys[0])

static const struct key_spec room_keys[] = {
	{ NULL, "name", K_NAME, R(name), 1, CONFIG_NAME_MAX },
	{ NULL, "ref", K_LONG, R(ref), 1, PROTO_ID_MAX },
	{ NULL, "port", K_PORT, R(port), 0, 65535 },
	{ NULL, "topic", K_TOPIC, R(topic), 0, CONFIG_TOPIC_MAX },
	{ NULL, "max_members", K_LONG, R(max_members), 0, CONFIG_ROOMS_MAX },
	{ NULL, "history", K_LONG, R(history), 0, CONFIG_HISTORY_MAX },
	{ NULL, "topic_change", K_BOOL, R(topic_change), 0, 1 },
};
#define NROOMKEYS (sizeof room_keys / sizeof room_keys[0])
enum { RK_NAME, RK_REF, RK_PORT, RK_HISTORY = 5 }; /* indexes into room_keys */

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const char *const scope_names[] = { "server", "room" }; /* enum config_name_scope */
static const char *const tls_modes[] = { "off", "optional", "required" }; /* enum config_tls_mode */
static const char *const tls_versions[] = { "1.2", "1.3" };        /* enum config_tls_version */

/* The names of an enum-valued key type, in enum order, and what its
 * errors call it; NULL for a type that is not one of those. */
static const char *const *enum_names(enum key_type type, size_t *n, const char **what)
{
#define ENUM_NAMES(t, names, text) \
	case t: *n = sizeof(names) / sizeof(names[0]); *what = text; return names
	switch (type) {
	ENUM_NAMES(K_LEVEL, level_names, "a log level (error, warn, info, debug)");
	ENUM_NAMES(K_SCOPE, scope_names, "a name scope (server, room)");
	ENUM_NAMES(K_TLSMODE, tls_modes, "a TLS mode (off, optional, required)");
	ENUM_NAMES(K_TLSVER, tls_versions, "a TLS version roomd accepts as a minimum (1.2, 1.3)");
	default:
		return NULL;
	}
#undef ENUM_NAMES
}

/* ---- state and error messages ---- */

/* A section header or a key, as iniparser sees it. */
struct ini_item {
	int line;       /* first physical line of the (possibly continued) line */
	int is_section;
	int sec;        /* keys: the header item above; -1 before any header */
	char *name;     /* lowercased as iniparser does: "room:lobby", "port" */
	char *full;     /* the dictionary key: "room:lobby", "server:port" */
};

/* Everything one config_load call works on. */
struct load {
	const char *path;
	char *err;
	size_t errlen, used;
	int nerr;                /* errors found, kept or not */
	struct {
		int line;        /* 0: about the whole file */
		char msg[512];
	} errs[CONFIG_MAX_ERRORS]; /* the first errors by line, in line order */
	dictionary *dict;
	struct ini_item *items;  /* the scanned lines, in file order */
	size_t nitems, cap;
	struct config cfg;       /* the result; copied out only on success */
	int gline[NGLOBAL];      /* line of each global key: 0 unset, <0 bad value */
	int (*rline)[NROOMKEYS]; /* the same for each room */
	int *rsec;               /* each room's section header item */
};

static void emit(struct load *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct load *ld, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (!ld->err || ld->used + 1 >= ld->errlen)
		return;
	room = ld->errlen - ld->used;
	va_start(ap, fmt);
	n = vsnprintf(ld->err + ld->used, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		ld->used += (size_t)n < room ? (size_t)n : room - 1;
}

/* Record one error. Only the CONFIG_MAX_ERRORS first by line are kept, in
 * line order (cross-key checks run last but may blame an early line); the
 * others are only counted. */
static void report(struct load *ld, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(struct load *ld, int line, const char *fmt, ...)
{
	size_t n = ld->nerr < CONFIG_MAX_ERRORS ? (size_t)ld->nerr : CONFIG_MAX_ERRORS, at = n;
	va_list ap;

	ld->nerr++;
	while (at > 0 && ld->errs[at - 1].line > line)
		at--;
	if (at == CONFIG_MAX_ERRORS)
		return;
	if (n == CONFIG_MAX_ERRORS)
		n--; /* the last kept one drops out */
	memmove(&ld->errs[at + 1], &ld->errs[at], (n - at) * sizeof ld->errs[0]);
	ld->errs[at].line = line;
	va_start(ap, fmt);
	vsnprintf(ld->errs[at].msg, sizeof ld->errs[at].msg, fmt, ap);
	va_end(ap);
}

/* Write the kept errors into the caller's buffer, one a line:
 * "PATH:LINE: MESSAGE", or "PATH: MESSAGE" when there is no line. */
static void write_errors(struct load *ld)
{
	int kept = ld->nerr < CONFIG_MAX_ERRORS ? ld->nerr : CONFIG_MAX_ERRORS;

	if (ld->err && ld->errlen)
		ld->err[0] = '\0';
	for (int i = 0; i < kept; i++) {
		if (ld->errs[i].line > 0)
			emit(ld, "%s%s:%d: %s", i ? "\n" : "", ld->path, ld->errs[i].line, ld->errs[i].msg);
		else
			emit(ld, "%s%s: %s", i ? "\n" : "", ld->path, ld->errs[i].msg);
	}
	if (ld->nerr > CONFIG_MAX_ERRORS)
		emit(ld, "\n%s: ... and %d more error%s", ld->path, ld->nerr - CONFIG_MAX_ERRORS,
		     ld->nerr - CONFIG_MAX_ERRORS > 1 ? "s" : "");
}

/* A value as shown in a message: at most 60 bytes, control bytes as '?'. */
static const char *shown(const char *v, char out[72])
{
	size_t i, n = strlen(v);

	for (i = 0; i < n && i < 60; i++)
		out[i] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
	strcpy(out + i, n > 60 ? "..." : "");
	return out;
}

/* ---- the line scanner ---- */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int add_item(struct load *ld, int line, int is_section, int sec, const char *name, size_t len)
{
	const char *secname = sec >= 0 ? ld->items[sec].name : "";
	size_t flen = strlen(secname) + 1 + len + 1;
	struct ini_item *it;

	if (ld->nitems == ld->cap) {
		size_t ncap = ld->cap ? 2 * ld->cap : 64;
		void *p = realloc(ld->items, ncap * sizeof *ld->items);

		if (!p)
			return -ENOMEM;
		ld->items = p;
		ld->cap = ncap;
	}
	it = &ld->items[ld->nitems];
	it->name = malloc(len + 1);
	it->full = malloc(flen);
	if (!it->name || !it->full) {
		free(it->name);
		free(it->full);
		return -ENOMEM;
	}
	/* iniparser lowercases section and key names, byte by byte. */
	for (size_t i = 0; i < len; i++)
		it->name[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	it->name[len] = '\0';
	if (is_section)
		memcpy(it->full, it->name, len + 1);
	else
		snprintf(it->full, flen, "%s:%s", secname, it->name);
	it->line = line;
	it->is_section = is_section;
	it->sec = sec;
	ld->nitems++;
	return 0;
}

/* Classify one logical line as iniparser 4.1's iniparser_line does and
 * record it; *sec is the current header item (-1 none, -2 a bad one). Where
 * iniparser is lenient by accident ("[]"), the scanner reports an error. */
static int scan_line(struct load *ld, char *s, int line, int *sec)
{
	size_t len = strlen(s);
	const char *b, *end;

	while (len && is_space(s[len - 1]))
		s[--len] = '\0';
	while (is_space(*s))
		s++, len--;
	if (len == 0 || *s == '#' || *s == ';')
		return 0;
	if (s[0] == '[' && s[len - 1] == ']') {
		b = s + 1;
		end = strchr(b, ']'); /* iniparser reads "[%[^]]" */
		while (b < end && is_space(*b))
			b++;
		while (end > b && is_space(end[-1]))
			end--;
		if (end == b) {
			report(ld, line, "empty section name");
			*sec = -2;
			return 0;
		}
		*sec = (int)ld->nitems;
		return add_item(ld, line, 1, -1, b, (size_t)(end - b));
	}
	end = strchr(s, '=');
	if (!end || end == s) {
		report(ld, line, "syntax error: expected [section] or key = value, not '%.60s'%s", s,
		       s[0] == '[' && strchr(s, ']') ? " (no comment may follow a section header)" : "");
		return 0;
	}
	while (end > s && is_space(end[-1]))
		end--;
	if (*sec == -2)
		return 0;
	return add_item(ld, line, 0, *sec, s, (size_t)(end - s));
}

/* Split text into physical lines, join continued ones (the last non-space
 * byte a backslash) into logical lines, and hand those to scan_line; all
 * with iniparser 4.1's rules, so both see the same sections and keys. */
static int scan_text(struct load *ld, const char *text, size_t size)
{
	char buf[INI_LINESZ];
	size_t last = 0, pos = 0;
	int lineno = 0, start = 0, sec = -1, rc;

	while (pos < size) {
		const char *p = text + pos, *nl = memchr(p, '\n', size - pos);
		size_t clen = nl ? (size_t)(nl - p) : size - pos;

		pos += clen + (nl != NULL);
		lineno++;
		if (last == 0)
			start = lineno;
		if (memchr(p, '\0', clen)) {
			report(ld, lineno, "the line contains a NUL byte");
			last = 0;
			continue;
		}
		if (last + clen > INI_LINESZ - 2) {
			report(ld, start, "line too long: iniparser reads at most %d bytes a line, "
			       "continuation lines included", INI_LINESZ - 2);
			last = 0;
			continue;
		}
		memcpy(buf + last, p, clen);
		last += clen;
		buf[last] = '\0';
		while (last && is_space(buf[last - 1]))
			buf[--last] = '\0';
		if (last && buf[last - 1] == '\\') {
			buf[--last] = '\0';
			continue;
		}
		last = 0;
		if ((rc = scan_line(ld, buf, start, &sec)))
			return rc;
	}
	if (last)
		report(ld, start, "the last line ends in a backslash: it continues past the end of the file");
	return 0;
}

static int read_file(const char *path, char **text, size_t *size)
{
	FILE *f = fopen(path, "r");
	char *p = NULL, *np;
	size_t len = 0, cap = 0, n;
	int rc = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 8192;
			if (!(np = realloc(p, cap))) {
				rc = -ENOMEM;
				break;
			}
			p = np;
		}
		n = fread(p + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				rc = errno ? -errno : -EIO;
			break;
		}
	}
	fclose(f);
	if (rc) {
		free(p);
		return rc;
	}
	*text = p;
	*size = len;
	return 0;
}

/* ---- iniparser's error channel ---- */

/* iniparser reports through one process-wide callback. The config is loaded
 * by one thread only (the main thread, which becomes the acceptor and
 * reloads on SIGHUP), so a static capture buffer is enough; it is not
 * thread-safe and need not be. */
static char ini_msg[256];
static int ini_errno;

static int ini_capture(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ini_capture(const char *fmt, ...)
{
	size_t used = strlen(ini_msg);
	va_list ap;
	int n;

	if (used == 0)
		ini_errno = errno; /* fopen's, when this is "cannot open" */
	if (used + 1 >= sizeof ini_msg)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(ini_msg + used, sizeof ini_msg - used, fmt, ap);
	va_end(ap);
	return n;
}

/* iniparser_load with its messages captured; NULL when it failed, with the
 * error already reported if the file could not be opened. */
static dictionary *ini_load(struct load *ld)
{
	dictionary *d;

	ini_msg[0] = '\0';
	ini_errno = 0;
	iniparser_set_error_callback(ini_capture);
	d = iniparser_load(ld->path);
	iniparser_set_error_callback(NULL);
	if (!d && ini_errno && strstr(ini_msg, "cannot open"))
		report(ld, 0, "cannot read: %s", strerror(ini_errno));
	return d;
}

/* iniparser failed on something the scanner let through: pass its words on. */
static void report_ini_msg(struct load *ld)
{
	char *c;

	for (c = ini_msg; *c; c++)
		if (*c == '\n')
			*c = ' ';
	while (c > ini_msg && c[-1] == ' ')
		*--c = '\0';
	report(ld, 0, "%s", ini_msg[0] ? ini_msg : "iniparser could not load the file");
}

/* ---- values ---- */

static int parse_long(const char *s, long *out)
{
	char *end;
	long v;

	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Nonzero when s holds a byte that values of this type may not contain:
 * control bytes never (they would break a reply line), and a host name is
 * also limited to printable ASCII without spaces. */
static int has_bad_byte(enum key_type type, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c < 0x20 || *c == 0x7f || (type == K_HOST && (*c == ' ' || *c > 0x7e)))
			return 1;
	return 0;
}

int config_split_listen(const char *v, char *host, size_t hostlen, unsigned *port)
{
	char h[CONFIG_HOST_MAX];
	unsigned char addr[16];
	const char *colon, *start = v;
	size_t hl;
	long p;

	if (*v == '[') {
		const char *close = strchr(v, ']');
		if (!close || close[1] != ':')
			return -1;
		start = v + 1;
		hl = (size_t)(close - start);
		colon = close + 1;
	} else {
		colon = strrchr(v, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= sizeof(h) || parse_long(colon + 1, &p) < 0 || p < 0 || p > 65535)
		return -1;
	memcpy(h, start, hl);
	h[hl] = '\0';
	/* IPv4 bare, IPv6 only in brackets (its colons would be ambiguous). */
	if (*v == '[' ? inet_pton(AF_INET6, h, addr) != 1 : inet_pton(AF_INET, h, addr) != 1)
		return -1;
	if (host)
		snprintf(host, hostlen, "%s", h);
	if (port)
		*port = (unsigned)p;
	return 0;
}

int config_topic_valid(const char *topic, size_t len)
{
	if (len > CONFIG_TOPIC_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)topic[i];
		if (c < 0x20 || c == 0x7f) /* NUL included: the text would be cut */
			return 0;
	}
	return 1;
}

static int check_string(const struct key_spec *ks, const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);
	char sv[72];

	if (len < (size_t)ks->min || len > (size_t)ks->max) {
		snprintf(why, whylen, "'%s' is %zu bytes long, not %ld..%ld", shown(v, sv), len, ks->min, ks->max);
		return -1;
	}
	if (ks->type == K_LISTEN && len > 0 && config_split_listen(v, NULL, 0, NULL) < 0) {
		snprintf(why, whylen, "'%s' is not ADDR:PORT or [ADDR6]:PORT with a numeric address "
			 "and a port in 0..65535 (empty: no metrics)", shown(v, sv));
		return -1;
	}
	if (ks->type == K_TOPIC ? !config_topic_valid(v, len) : has_bad_byte(ks->type, v)) {
		snprintf(why, whylen, "'%s' contains %s", shown(v, sv),
			 ks->type == K_HOST ? "a space, control or non-ASCII byte" : "a control byte");
		return -1;
	}
	return 0;
}

/* ---- address lists ([server] bind) ---- */

/* One element of a bind list, trimmed, into its canonical text (inet_ntop's:
 * "0:0::1" is "::1"); *family is AF_INET or AF_INET6. -1 when not numeric. */
static int canonical_addr(const char *s, size_t len, char out[CONFIG_ADDR_MAX], int *family)
{
	unsigned char a[16];
	char tmp[CONFIG_ADDR_MAX];

	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (inet_pton(AF_INET, tmp, a) == 1)
		*family = AF_INET;
	else if (inet_pton(AF_INET6, tmp, a) == 1)
		*family = AF_INET6;
	else
		return -1;
	return inet_ntop(*family, a, out, CONFIG_ADDR_MAX) ? 0 : -1;
}

static int is_wildcard(const char *addr)
{
	return strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0;
}

/* A wildcard next to another address of its family: the wildcard listens
 * there already, and the second bind of the port would fail. */
static int wildcard_overlap(const struct config_addrs *a, const int *family, char *why, size_t whylen)
{
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = 0; j < a->n; j++)
			if (i != j && family[i] == family[j] && is_wildcard(a->addr[i])) {
				snprintf(why, whylen, "'%s' already listens on '%s': give one or the other",
					 a->addr[i], a->addr[j]);
				return -1;
			}
	return 0;
}

int config_bind_addrs(const char *bind, struct config_addrs *out, char *why, size_t whylen)
{
	int family[CONFIG_BIND_MAX];
	const char *p = bind;
	char sv[72];

	out->n = 0;
	for (;;) {
		const char *end = strchr(p, ','), *b = p, *e = end ? end : p + strlen(p);
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (out->n == CONFIG_BIND_MAX) {
			snprintf(why, whylen, "more than %d addresses", CONFIG_BIND_MAX);
			return -1;
		}
		if (canonical_addr(b, (size_t)(e - b), out->addr[out->n], &family[out->n]) < 0) {
			char one[CONFIG_ADDR_MAX + 1];
			snprintf(one, sizeof(one), "%.*s", (int)(e - b < CONFIG_ADDR_MAX ? e - b : CONFIG_ADDR_MAX), b);
			snprintf(why, whylen, "'%s' is not a numeric IPv4 or IPv6 address (a list: "
				 "'127.0.0.1, ::1'; 0.0.0.0 or :: for all interfaces)", shown(one, sv));
			return -1;
		}
		for (size_t i = 0; i < out->n; i++)
			if (strcmp(out->addr[i], out->addr[out->n]) == 0) {
				snprintf(why, whylen, "'%s' is listed twice", out->addr[i]);
				return -1;
			}
		out->ptr[out->n] = out->addr[out->n];
		out->n++;
		if (!end)
			break;
		p = end + 1;
	}
	return wildcard_overlap(out, family, why, whylen);
}

/* Store a bind list in its canonical form ("127.0.0.1, ::1"), so that a
 * reload compares addresses, not spelling. */
static int set_addrs(const struct key_spec *ks, const char *v, char *field, char *why, size_t whylen)
{
	struct config_addrs a;
	size_t off = 0;

	if (check_string(ks, v, why, whylen) || config_bind_addrs(v, &a, why, whylen))
		return -1;
	for (size_t i = 0; i < a.n; i++) /* fits: CONFIG_BIND_LEN counts ", " per address */
		off += (size_t)snprintf(field + off, CONFIG_BIND_LEN - off, "%s%s", i ? ", " : "", a.addr[i]);
	return 0;
}

/* One of the names of an enum-valued key type (any case) into *field:
 * 0, or -1 with the reason in why. */
static int parse_enum(enum key_type type, const char *v, char sv[72], int *field, char *why,
		      size_t whylen)
{
	const char *what = "";
	size_t n = 0;
	const char *const *names = enum_names(type, &n, &what);

	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v, names[i]) == 0) {
			*field = (int)i;
			return 0;
		}
	snprintf(why, whylen, "'%s' is not %s", shown(v, sv), what);
	return -1;
}

/* Store value v of key ks into the struct at base. Returns 0, or -1 with
 * the reason in why. */
static int set_value(const struct key_spec *ks, const char *v, void *base, char *why, size_t whylen)
{
	char *field = (char *)base + ks->off, sv[72];
	long n;
	int b;

	switch (ks->type) {
	case K_ADDRS:
		return set_addrs(ks, v, field, why, whylen);
	case K_HOST:
	case K_TEXT:
	case K_TOPIC:
	case K_NAME:
	case K_LISTEN:
		if (check_string(ks, v, why, whylen))
			return -1;
		memcpy(field, v, strlen(v) + 1);
		return 0;
	case K_PORT:
	case K_LONG:
		if (parse_long(v, &n) || n < ks->min || n > ks->max) {
			snprintf(why, whylen, "'%s' is not an integer in %ld..%ld", shown(v, sv), ks->min, ks->max);
			return -1;
		}
		if (ks->type == K_PORT)
			*(unsigned *)(void *)field = (unsigned)n;
		else
			*(long *)(void *)field = n;
		return 0;
	case K_BOOL:
		if ((b = parse_bool(v)) < 0) {
			snprintf(why, whylen, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", shown(v, sv));
			return -1;
		}
		*(int *)(void *)field = b;
		return 0;
	case K_LEVEL:
	case K_SCOPE:
	case K_TLSMODE:
	case K_TLSVER:
		return parse_enum(ks->type, v, sv, (int *)(void *)field, why, whylen);
	case K_TARGET:
		if ((b = log_target_parse(v)) < 0) {
			snprintf(why, whylen, "'%s' is not a log target (stderr, syslog)", shown(v, sv));
			return -1;
		}
		*(int *)(void *)field = b;
		return 0;
	}
	return -1;
}

/* ---- sections and keys, in file order ---- */

/* Index of key name in keys (of section, unless section is NULL); -1. */
static int find_key(const struct key_spec *keys, size_t n, const char *section, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if ((!section || strcmp(keys[i].section, section) == 0) && strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void list_keys(const struct key_spec *keys, size_t n, const char *section, char *out, size_t outlen)
{
	size_t used = 0;
	int w;

	out[0] = '\0';
	for (size_t i = 0; i < n && used + 1 < outlen; i++) {
		if (section && strcmp(keys[i].section, section) != 0)
			continue;
		w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", keys[i].name);
		if (w > 0)
			used += (size_t)w;
	}
}

static int is_room_section(const char *name)
{
	return strncmp(name, "room:", 5) == 0;
}

/* Where the keys of the current section go. */
struct section_ctx {
	int item;  /* the header item; -1 before the first */
	int skip;  /* a bad section: its keys are not looked at */
	long room; /* index into cfg.rooms; -1 for a global section */
};

static void begin_section(struct load *ld, size_t i, struct section_ctx *sc)
{
	const struct ini_item *it = &ld->items[i];
	struct room_conf *r;

	sc->item = (int)i;
	sc->skip = 1;
	sc->room = -1;
	/* Quadratic, but there are at most a few thousand sections, once.
	 * iniparser would merge a repeated section without a word. */
	for (size_t j = 0; j < i; j++)
		if (ld->items[j].is_section && strcmp(ld->items[j].name, it->name) == 0) {
			report(ld, it->line, "[%s]: duplicate section (first at line %d)", it->name, ld->items[j].line);
			return;
		}
	if (strcmp(it->name, "server") == 0 || strcmp(it->name, "limits") == 0 ||
	    strcmp(it->name, "features") == 0 || strcmp(it->name, "metrics") == 0 ||
	    strcmp(it->name, "tls") == 0 || strcmp(it->name, "cluster") == 0) {
		sc->skip = 0;
		return;
	}
	if (!is_room_section(it->name)) {
		report(ld, it->line, "[%s]: unknown section (expected [server], [limits], [features], [metrics], [tls], [cluster] or [room:NAME])",
		       it->name);
		return;
	}
	if (ld->cfg.nrooms == CONFIG_MAX_ROOMS_DEFINED) {
		report(ld, it->line, "[%s]: more than %d rooms defined", it->name, CONFIG_MAX_ROOMS_DEFINED);
		return;
	}
	sc->room = (long)ld->cfg.nrooms++;
	sc->skip = 0;
	ld->rsec[sc->room] = (int)i;
	r = &ld->cfg.rooms[sc->room];
	r->ref = sc->room + 1; /* its position, unless a ref key says otherwise */
	r->history = -1;       /* the server's, unless set */
	r->topic_change = -1;
	r->line = it->line;
}

static void do_key(struct load *ld, size_t i, const struct section_ctx *sc)
{
	const struct ini_item *it = &ld->items[i], *hd = &ld->items[sc->item];
	int in_room = sc->room >= 0;
	const struct key_spec *keys = in_room ? room_keys : global_keys;
	size_t nkeys = in_room ? NROOMKEYS : NGLOBAL;
	const char *sname = in_room ? NULL : hd->name, *v;
	int k, *lines = in_room ? ld->rline[sc->room] : ld->gline;
	void *base = in_room ? (void *)&ld->cfg.rooms[sc->room] : (void *)&ld->cfg;
	char why[320];

	for (size_t j = (size_t)sc->item + 1; j < i; j++)
		if (strcmp(ld->items[j].name, it->name) == 0) {
			report(ld, it->line, "[%s] %s: duplicate key (first at line %d)", hd->name, it->name,
			       ld->items[j].line);
			return;
		}
	if ((k = find_key(keys, nkeys, sname, it->name)) < 0) {
		list_keys(keys, nkeys, sname, why, sizeof why);
		report(ld, it->line, "[%s] %s: unknown key (known here: %s)", hd->name, it->name, why);
		return;
	}
	if (!(v = iniparser_getstring(ld->dict, it->full, NULL))) {
		report(ld, it->line, "[%s] %s: iniparser did not read this line as that key", hd->name, it->name);
		return;
	}
	if (set_value(&keys[k], v, base, why, sizeof why)) {
		report(ld, it->line, "[%s] %s: %s", hd->name, it->name, why);
		lines[k] = -it->line;
		return;
	}
	lines[k] = it->line;
}

/* Walk the scanned lines in file order: check sections, store values. */
static void walk_items(struct load *ld)
{
	struct section_ctx sc = { -1, 1, -1 };

	for (size_t i = 0; i < ld->nitems; i++) {
		const struct ini_item *it = &ld->items[i];

		if (it->is_section)
			begin_section(ld, i, &sc);
		else if (it->sec < 0)
			report(ld, it->line, "%s: key outside any section", it->name);
		else if (!sc.skip)
			do_key(ld, i, &sc);
	}
}

/* ---- checks across keys ---- */

static int gline_of(const struct load *ld, const char *key)
{
	return ld->gline[find_key(global_keys, NGLOBAL, NULL, key)];
}

/* Report a fault that involves several global keys (a NULL-terminated list)
 * at the line of the last of them set in the file. Nothing is reported when
 * one of them had a bad value: that error is already out, and the default
 * that stands in for it would only mislead. */
static void cross(struct load *ld, const char *const *keys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cross(struct load *ld, const char *const *keys, const char *fmt, ...)
{
	const char *blame = keys[0];
	int line = 0, l;
	char msg[384];
	va_list ap;

	for (; *keys; keys++) {
		if ((l = gline_of(ld, *keys)) < 0)
			return;
		if (l > line) {
			line = l;
			blame = *keys;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	report(ld, line, "[%s] %s: %s", global_keys[find_key(global_keys, NGLOBAL, NULL, blame)].section,
	       blame, msg);
}

static void check_server(struct load *ld)
{
	const struct config *c = &ld->cfg;

	/* 0..0 means "any free port" (the kernel picks; used by the tests);
	 * otherwise both ends are real ports. */
	if ((c->room_port_min == 0) != (c->room_port_max == 0))
		cross(ld, (const char *const[]){ "room_port_min", "room_port_max", NULL },
		      "the room port range %u..%u must be two ports, or 0..0 for any free port",
		      c->room_port_min, c->room_port_max);
	else if (c->room_port_min > c->room_port_max)
		cross(ld, (const char *const[]){ "room_port_min", "room_port_max", NULL },
		      "the room port range %u..%u is empty", c->room_port_min, c->room_port_max);
	else if (c->port != 0 && c->port >= c->room_port_min && c->port <= c->room_port_max)
		cross(ld, (const char *const[]){ "port", "room_port_min", "room_port_max", NULL },
		      "the control port %u is inside the room port range %u..%u", c->port,
		      c->room_port_min, c->room_port_max);
	if (c->max_request < c->max_message + CONFIG_REQUEST_SLACK)
		cross(ld, (const char *const[]){ "max_request", "max_message", NULL },
		      "max_request %ld is below max_message + %d = %ld: the other fields of a CHAT "
		      "request must fit next to a maximal message", c->max_request, CONFIG_REQUEST_SLACK,
		      c->max_message + CONFIG_REQUEST_SLACK);
	if (c->sendq_bytes < CONFIG_SENDQ_FRAMES * c->max_request)
		cross(ld, (const char *const[]){ "sendq_bytes", "max_request", NULL },
		      "sendq_bytes %ld is below %d x max_request = %ld: a send queue must hold a few "
		      "maximal messages", c->sendq_bytes, CONFIG_SENDQ_FRAMES,
		      CONFIG_SENDQ_FRAMES * c->max_request);
	if (c->history * c->max_message > CONFIG_HISTORY_BYTES_MAX)
		cross(ld, (const char *const[]){ "history", "max_message", NULL },
		      "history %ld x max_message %ld = %ld bytes is over %ld (16 MiB): what a room "
		      "keeps for HISTORY must stay bounded", c->history, c->max_message,
		      c->history * c->max_message, CONFIG_HISTORY_BYTES_MAX);
	if (gline_of(ld, "max_rooms") >= 0 && (long)c->nrooms > c->max_rooms)
		report(ld, c->rooms[c->max_rooms].line, "[%s]: one room more than [limits] max_rooms = %ld",
		       ld->items[ld->rsec[c->max_rooms]].name, c->max_rooms);
}

/* A relative path (database, TLS files) is relative to the config file,
 * not to the directory roomd happens to be started from: the shipped
 * config then finds its files wherever it is run. */
static void resolve_path(struct load *ld, const char *section, const char *key, char *path)
{
	const char *slash = strrchr(ld->path, '/');
	int line = gline_of(ld, key);
	char resolved[CONFIG_PATH_MAX];
	int n;

	if (line < 0 || path[0] == '\0' || path[0] == '/' || !slash)
		return;
	n = snprintf(resolved, sizeof resolved, "%.*s/%s", (int)(slash - ld->path), ld->path, path);
	if (n < 0 || (size_t)n >= sizeof resolved) {
		report(ld, line, "[%s] %s: the path, relative to the config file's directory, "
		       "is longer than %d bytes", section, key, CONFIG_PATH_MAX - 1);
		return;
	}
	memcpy(path, resolved, (size_t)n + 1);
}

static void resolve_paths(struct load *ld)
{
	struct config *c = &ld->cfg;

	if (config_persistent(c))
		resolve_path(ld, "server", "database", c->database);
	resolve_path(ld, "tls", "cert", c->tls_cert);
	resolve_path(ld, "tls", "key", c->tls_key);
	resolve_path(ld, "tls", "ca", c->tls_ca);
}

/* [tls]: what a mode needs is there (the files themselves are read by
 * roomd -t and at start, where OpenSSL says what is wrong with them). */
static void check_tls(struct load *ld)
{
	const struct config *c = &ld->cfg;

	if (c->tls_mode != CONFIG_TLS_OFF && (!c->tls_cert[0] || !c->tls_key[0]))
		cross(ld, (const char *const[]){ "mode", "cert", "key", NULL },
		      "mode %s needs a cert and a key", tls_modes[c->tls_mode]);
	if (c->tls_verify_clients && !c->tls_ca[0])
		cross(ld, (const char *const[]){ "verify_clients", "ca", NULL },
		      "verify_clients needs ca, the CA certificates that sign the clients' certificates");
}

/* [cluster]: a list of Redis addresses roomd can use, a node id that can
 * be part of a Redis key, no TLS yet, and no SQLite store next to it (the
 * room's stream is its history: docs/CLUSTER.md). */
static void check_cluster(struct load *ld)
{
	char host[CONFIG_CLUSTER_SHARDS][CONFIG_HOST_MAX];
	unsigned port[CONFIG_CLUSTER_SHARDS];
	const struct config *c = &ld->cfg;

	for (const char *p = c->cluster_node_id; *p; p++)
		if (*p == ' ' || *p == '{' || *p == '}' || *p == '/') {
			cross(ld, (const char *const[]){ "node_id", NULL },
			      "a node id may not contain a space, '{', '}' or '/'");
			break;
		}
	if (!c->cluster_redis[0]) {
		if (c->cluster_node_id[0] || c->cluster_password[0] || c->cluster_tls)
			cross(ld, (const char *const[]){ "node_id", "password", "tls", NULL },
			      "[cluster] needs redis = HOST:PORT");
		return;
	}
	if (config_cluster_shards(c->cluster_redis, host, port, CONFIG_CLUSTER_SHARDS) < 0)
		cross(ld, (const char *const[]){ "redis", NULL },
		      "expected HOST:PORT, or several separated by commas (at most %d)",
		      CONFIG_CLUSTER_SHARDS);
	if (c->cluster_tls)
		cross(ld, (const char *const[]){ "tls", NULL }, "TLS to Redis is not supported yet");
	if (config_persistent(c))
		cross(ld, (const char *const[]){ "redis", "database", NULL },
		      "the SQLite store cannot be used with [cluster]: a room's Redis stream is its "
		      "history (docs/CLUSTER.md); remove one of them");
}

static const char *room_sec(const struct load *ld, size_t r)
{
	return ld->items[ld->rsec[r]].name;
}

/* The line of a room's key, else that of its section header. */
static int room_line(const struct load *ld, size_t r, int key)
{
	int l = ld->rline[r][key];

	return l > 0 ? l : ld->cfg.rooms[r].line;
}

/* Settle room r's name: the name key, else the section suffix. */
static void check_room_name(struct load *ld, size_t r)
{
	struct room_conf *rc = &ld->cfg.rooms[r];
	int from_key = ld->rline[r][RK_NAME] > 0;
	const char *name = from_key ? rc->name : room_sec(ld, r) + 5;
	char sv[72];

	if (ld->rline[r][RK_NAME] < 0)
		return;
	if (!config_name_valid(&ld->cfg, name, strlen(name))) {
		report(ld, room_line(ld, r, RK_NAME), "[%s] name: '%s' is not a valid room name: 1..%ld bytes "
		       "of letters, digits, - _ . # @ + and inner spaces%s", room_sec(ld, r), shown(name, sv), ld->cfg.max_name,
		       from_key ? "" : " (taken from the section name; a name key may set another)");
		ld->rline[r][RK_NAME] = -rc->line;
		return;
	}
	if (!from_key)
		memcpy(rc->name, name, strlen(name) + 1);
}

static void check_room_port(struct load *ld, size_t r)
{
	const struct config *c = &ld->cfg;
	unsigned port = c->rooms[r].port;

	if (port == 0 || ld->rline[r][RK_PORT] < 0)
		return;
	if (port == c->port)
		report(ld, room_line(ld, r, RK_PORT), "[%s] port: %u is the control port", room_sec(ld, r), port);
	else if (c->room_port_min != 0 && port >= c->room_port_min && port <= c->room_port_max)
		report(ld, room_line(ld, r, RK_PORT), "[%s] port: %u is inside room_port_min..room_port_max "
		       "(%u..%u), which belongs to rooms created on demand", room_sec(ld, r), port,
		       c->room_port_min, c->room_port_max);
}

/* Room r against the rooms before it: names, refs and ports are unique. */
static void check_room_dups(struct load *ld, size_t r)
{
	const struct room_conf *a = &ld->cfg.rooms[r];
	int (*rl)[NROOMKEYS] = ld->rline;

	/* Quadratic in at most CONFIG_MAX_ROOMS_DEFINED rooms, once. */
	for (size_t j = 0; j < r; j++) {
		const struct room_conf *b = &ld->cfg.rooms[j];

		if (rl[r][RK_NAME] >= 0 && rl[j][RK_NAME] >= 0 && strcmp(a->name, b->name) == 0)
			report(ld, room_line(ld, r, RK_NAME), "[%s] name: '%s' is also the name of [%s] (line %d)",
			       room_sec(ld, r), a->name, room_sec(ld, j), b->line);
		if (rl[r][RK_REF] >= 0 && rl[j][RK_REF] >= 0 && a->ref == b->ref)
			report(ld, room_line(ld, r, RK_REF), "[%s] ref: %ld%s is also the ref of [%s] (line %d%s)",
			       room_sec(ld, r), a->ref, rl[r][RK_REF] ? "" : " (its position, as it sets no ref)",
			       room_sec(ld, j), b->line, rl[j][RK_REF] ? "" : ", by its position");
		if (rl[r][RK_PORT] >= 0 && rl[j][RK_PORT] >= 0 && a->port && a->port == b->port)
			report(ld, room_line(ld, r, RK_PORT), "[%s] port: %u is also the port of [%s] (line %d)",
			       room_sec(ld, r), a->port, room_sec(ld, j), b->line);
	}
}

/* A room's own history, times the server's max_message, under the cap. */
static void check_room_history(struct load *ld, size_t r)
{
	const struct room_conf *rc = &ld->cfg.rooms[r];

	if (ld->rline[r][RK_HISTORY] <= 0 || gline_of(ld, "max_message") < 0)
		return;
	if (rc->history * ld->cfg.max_message > CONFIG_HISTORY_BYTES_MAX)
		report(ld, room_line(ld, r, RK_HISTORY), "[%s] history: %ld x max_message %ld = %ld bytes "
		       "is over %ld (16 MiB): what a room keeps for HISTORY must stay bounded",
		       room_sec(ld, r), rc->history, ld->cfg.max_message,
		       rc->history * ld->cfg.max_message, CONFIG_HISTORY_BYTES_MAX);
}

static void check_rooms(struct load *ld)
{
	for (size_t r = 0; r < ld->cfg.nrooms; r++)
		check_room_name(ld, r);
	for (size_t r = 0; r < ld->cfg.nrooms; r++) {
		check_room_port(ld, r);
		check_room_dups(ld, r);
		check_room_history(ld, r);
	}
}

/* The scanner follows iniparser's rules; make sure the two saw the same
 * file, or a value could silently come from a line other than the one
 * named in a message. */
static void check_agreement(struct load *ld)
{
	for (size_t i = 0; i < ld->nitems; i++)
		if (ld->items[i].is_section && !iniparser_find_entry(ld->dict, ld->items[i].full)) {
			report(ld, ld->items[i].line, "[%s]: iniparser did not read this line as that section",
			       ld->items[i].name);
			return;
		}
	/* Without errors there are no repeated sections or keys, so both count
	 * every section and key exactly once. */
	if (ld->nerr == 0 && (size_t)ld->dict->n != ld->nitems)
		report(ld, 0, "iniparser found %d sections and keys, the line scanner %zu", ld->dict->n,
		       ld->nitems);
}

/* ---- the entry points ---- */

void config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	strcpy(cfg->bind, "127.0.0.1"); /* safe until told to serve the network */
	cfg->port = 9000;
	cfg->room_port_min = 9001;
	cfg->room_port_max = 9999;
	strcpy(cfg->server_id, "roomd");
	cfg->log_level = LOG_INFO;
	cfg->log_target = LOG_TO_STDERR;
	strcpy(cfg->welcome, "Welcome to roomd. Type help for the commands.");
	cfg->max_clients = 1024;
	cfg->max_clients_per_ip = 64;
	cfg->max_rooms = 256;
	cfg->max_members = 256;
	cfg->max_rooms_per_client = 32;
	cfg->max_name = 32;
	cfg->max_message = 4096;
	cfg->max_request = 8192;
	cfg->sendq_bytes = 1048576;
	cfg->rate = 200;
	cfg->burst = 400;
	cfg->rate_per_ip = 1000;
	cfg->burst_per_ip = 2000;
	cfg->connect_rate_per_ip = 20;
	cfg->connect_burst_per_ip = 64;
	cfg->room_create_rate = 30;
	cfg->room_unattached_max = 8;
	cfg->idle_timeout = 300;
	cfg->request_timeout = 120;
	cfg->end_quiet_ms = 250;
	cfg->history = 50;
	cfg->history_max_age = 0;
	cfg->name_scope = CONFIG_SCOPE_SERVER;
	cfg->dormant_room_ttl = 604800;
	cfg->max_dormant_rooms = 1024;
	cfg->room_creation = 1;
	cfg->kill_service = 0;
	cfg->topic_change = 1;
}

static int alloc_rooms(struct load *ld)
{
	size_t n = 0;

	for (size_t i = 0; i < ld->nitems; i++)
		if (ld->items[i].is_section && is_room_section(ld->items[i].name))
			n++;
	if (n > CONFIG_MAX_ROOMS_DEFINED)
		n = CONFIG_MAX_ROOMS_DEFINED;
	if (n == 0)
		return 0;
	ld->cfg.rooms = calloc(n, sizeof *ld->cfg.rooms);
	ld->rline = calloc(n, sizeof *ld->rline);
	ld->rsec = calloc(n, sizeof *ld->rsec);
	return ld->cfg.rooms && ld->rline && ld->rsec ? 0 : -ENOMEM;
}

/* Scan, load and check; every fault found goes to ld's error list. */
static void load_checked(struct load *ld)
{
	char *text = NULL;
	size_t size = 0;
	int rc;

	ld->dict = ini_load(ld);
	if (ld->nerr)
		return;
	if ((rc = read_file(ld->path, &text, &size))) {
		report(ld, 0, "cannot read: %s", strerror(-rc));
		return;
	}
	rc = scan_text(ld, text, size);
	free(text);
	if (rc == 0 && ld->dict)
		rc = alloc_rooms(ld);
	if (rc) {
		report(ld, 0, "%s", strerror(-rc));
		return;
	}
	if (!ld->dict) {
		if (ld->nerr == 0)
			report_ini_msg(ld);
		return;
	}
	walk_items(ld);
	check_server(ld);
	check_tls(ld);
	resolve_paths(ld);
	check_cluster(ld);
	check_rooms(ld);
	check_agreement(ld);
}

int config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	struct load ld;

	memset(&ld, 0, sizeof ld);
	ld.path = path;
	ld.err = err;
	ld.errlen = errlen;
	ld.cfg = *cfg;
	ld.cfg.rooms = NULL; /* the file's rooms replace any there were */
	ld.cfg.nrooms = 0;

	load_checked(&ld);

	write_errors(&ld);
	for (size_t i = 0; i < ld.nitems; i++) {
		free(ld.items[i].name);
		free(ld.items[i].full);
	}
	free(ld.items);
	free(ld.rline);
	free(ld.rsec);
	if (ld.dict)
		iniparser_freedict(ld.dict);
	if (ld.nerr) {
		free(ld.cfg.rooms);
		return -1;
	}
	free(cfg->rooms);
	*cfg = ld.cfg;
	return 0;
}

void config_fini(struct config *cfg)
{
	free(cfg->rooms);
	cfg->rooms = NULL;
	cfg->nrooms = 0;
}

int config_clustered(const struct config *cfg)
{
	return cfg->cluster_redis[0] != '\0';
}

/* One "HOST:PORT" item of len bytes, spaces around it allowed. */
static int cluster_item(const char *s, size_t len, char *host, unsigned *port)
{
	const char *colon;
	long p;
	char num[8];

	while (len && *s == ' ')
		s++, len--;
	while (len && s[len - 1] == ' ')
		len--;
	colon = memrchr(s, ':', len);
	if (!colon || colon == s || (size_t)(colon - s) >= CONFIG_HOST_MAX ||
	    len - (size_t)(colon - s) - 1 >= sizeof num)
		return -1;
	memcpy(num, colon + 1, len - (size_t)(colon - s) - 1);
	num[len - (size_t)(colon - s) - 1] = '\0';
	if (parse_long(num, &p) < 0 || p < 1 || p > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (has_bad_byte(K_HOST, host))
		return -1;
	*port = (unsigned)p;
	return 0;
}

int config_cluster_shards(const char *redis, char (*host)[CONFIG_HOST_MAX], unsigned *port,
			  size_t max)
{
	size_t n = 0;

	for (const char *s = redis;; n++) {
		size_t len = strcspn(s, ",");

		if (n == max || cluster_item(s, len, host[n], &port[n]) < 0)
			return -1;
		if (!s[len])
			return (int)n + 1;
		s += len + 1;
	}
}

int config_persistent(const struct config *cfg)
{
	return cfg->database[0] != '\0' && strcmp(cfg->database, ":memory:") != 0;
}

int config_name_valid(const struct config *cfg, const char *name, size_t len)
{
	if (!name || len == 0 || len > CONFIG_NAME_MAX || (long)len > cfg->max_name)
		return 0;
	/* Inner spaces only: the wire trims values, so an outer one could never
	 * be matched again (lab-era clients use "chatroom 1", SPEC §2.4). */
	if (name[0] == ' ' || name[len - 1] == ' ')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		/* memchr, not strchr: a NUL byte must not match the terminator. */
		if (!memchr("-_.#@+ ", c, 7))
			return 0;
	}
	return 1;
}

void config_each_key(void (*fn)(const char *section, const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < NGLOBAL; i++)
		if (strcmp(global_keys[i].section, "tls") != 0 &&
		    strcmp(global_keys[i].section, "cluster") != 0)
			fn(global_keys[i].section, global_keys[i].name, arg);
	for (size_t i = 0; i < NROOMKEYS; i++)
		fn("room", room_keys[i].name, arg);
}

void config_each_tls_key(void (*fn)(const char *section, const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < NGLOBAL; i++)
		if (strcmp(global_keys[i].section, "tls") == 0)
			fn(global_keys[i].section, global_keys[i].name, arg);
}

/* Does key ks hold the same value in the structs at a and b? */
static int same_value(const struct key_spec *ks, const void *a, const void *b)
{
	const char *fa = (const char *)a + ks->off, *fb = (const char *)b + ks->off;

	switch (ks->type) {
	case K_ADDRS: /* canonical lists: equal text, equal addresses in equal order */
	case K_HOST:
	case K_TEXT:
	case K_TOPIC:
	case K_NAME:
	case K_LISTEN:
		return strcmp(fa, fb) == 0;
	case K_PORT:
		return *(const unsigned *)(const void *)fa == *(const unsigned *)(const void *)fb;
	case K_LONG:
		return *(const long *)(const void *)fa == *(const long *)(const void *)fb;
	case K_BOOL:
	case K_LEVEL:
	case K_SCOPE:
	case K_TARGET:
	case K_TLSMODE:
	case K_TLSVER:
		return *(const int *)(const void *)fa == *(const int *)(const void *)fb;
	}
	return 0;
}

static const struct room_conf *room_named(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nrooms; i++)
		if (strcmp(c->rooms[i].name, name) == 0)
			return &c->rooms[i];
	return NULL;
}

void config_diff(const struct config *a, const struct config *b,
		 void (*fn)(const char *section, const char *key, void *arg), void *arg)
{
	char sec[5 + CONFIG_NAME_MAX + 1];

	for (size_t i = 0; i < NGLOBAL; i++)
		if (!same_value(&global_keys[i], a, b))
			fn(global_keys[i].section, global_keys[i].name, arg);
	/* Quadratic in the rooms defined (at most 4096), once per reload. */
	for (size_t r = 0; r < a->nrooms; r++) {
		const struct room_conf *ra = &a->rooms[r], *rb = room_named(b, ra->name);

		snprintf(sec, sizeof sec, "room:%s", ra->name);
		if (!rb) {
			fn(sec, NULL, arg);
			continue;
		}
		for (size_t k = 0; k < NROOMKEYS; k++)
			if (!same_value(&room_keys[k], ra, rb))
				fn(sec, room_keys[k].name, arg);
	}
	for (size_t r = 0; r < b->nrooms; r++)
		if (!room_named(a, b->rooms[r].name)) {
			snprintf(sec, sizeof sec, "room:%s", b->rooms[r].name);
			fn(sec, NULL, arg);
		}
}

/* ---- shared snapshots ---- */

struct config_refs {
	atomic_long n;
};

struct config *config_create(void)
{
	struct config *c = malloc(sizeof *c);
	struct config_refs *refs = malloc(sizeof *refs);

	if (!c || !refs) {
		free(c);
		free(refs);
		return NULL;
	}
	config_defaults(c);
	atomic_init(&refs->n, 1);
	c->refs = refs;
	return c;
}

const struct config *config_hold(const struct config *cfg)
{
	/* Relaxed: the holder got cfg from someone who holds it already. */
	if (cfg && cfg->refs)
		atomic_fetch_add_explicit(&cfg->refs->n, 1, memory_order_relaxed);
	return cfg;
}

void config_release(const struct config *cfg)
{
	struct config *c = (struct config *)(uintptr_t)cfg; /* the last holder owns it */

	/* acq_rel: every holder's reads of the snapshot happen before the
	 * last one frees it (an acquire on the decrement rather than a fence,
	 * which ThreadSanitizer does not model). */
	if (!cfg || !cfg->refs ||
	    atomic_fetch_sub_explicit(&cfg->refs->n, 1, memory_order_acq_rel) != 1)
		return;
	free(c->refs);
	config_fini(c);
	free(c);
}

/* ---- values as text ---- */

/* A text value as iniparser reads it back: quoted when it is empty, has
 * space at either end or holds a comment character; in single quotes when
 * it holds a double quote. */
static void quote_text(const char *v, char *out, size_t len)
{
	size_t n = strlen(v);
	int plain = n > 0 && !is_space(v[0]) && !is_space(v[n - 1]) && !strpbrk(v, ";#\"'");

	if (plain)
		snprintf(out, len, "%s", v);
	else
		snprintf(out, len, strchr(v, '"') ? "'%s'" : "\"%s\"", v);
}

static void value_text(const struct key_spec *ks, const void *base, char *out, size_t len)
{
	const char *f = (const char *)base + ks->off, *const *names, *what = "";
	size_t n = 0;
	int i;

	/* A secret is never printed (roomd -t, a reload's log): only whether it is set. */
	if (ks->section && strcmp(ks->name, "password") == 0) {
		snprintf(out, len, "%s", *f ? "(set)" : "");
		return;
	}
	switch (ks->type) {
	case K_ADDRS:
	case K_HOST:
	case K_TEXT:
	case K_TOPIC:
	case K_NAME:
	case K_LISTEN:
		quote_text(f, out, len);
		return;
	case K_PORT:
		snprintf(out, len, "%u", *(const unsigned *)(const void *)f);
		return;
	case K_LONG:
		snprintf(out, len, "%ld", *(const long *)(const void *)f);
		return;
	default:
		break;
	}
	i = *(const int *)(const void *)f;
	if (ks->type == K_BOOL)
		snprintf(out, len, "%s", i ? "true" : "false");
	else if ((names = enum_names(ks->type, &n, &what)))
		snprintf(out, len, "%s", i >= 0 && (size_t)i < n ? names[i] : "?");
	else
		snprintf(out, len, "%s", log_target_name((enum log_target)i));
}

/* Room rc with its unset keys filled in from c's server values. */
static struct room_conf room_effective(const struct config *c, const struct room_conf *rc)
{
	struct room_conf e = *rc;

	if (e.max_members == 0)
		e.max_members = c->max_members;
	if (e.history < 0)
		e.history = c->history;
	if (e.topic_change < 0)
		e.topic_change = c->topic_change;
	return e;
}

int config_value_text(const struct config *c, const char *section, const char *key, char *out,
		      size_t len)
{
	const struct room_conf *rc;
	struct room_conf e;
	int k;

	out[0] = '\0';
	if (strncmp(section, "room:", 5) != 0) {
		if ((k = find_key(global_keys, NGLOBAL, section, key)) < 0)
			return -1;
		value_text(&global_keys[k], c, out, len);
		return 0;
	}
	if (!(rc = room_named(c, section + 5)) || (k = find_key(room_keys, NROOMKEYS, NULL, key)) < 0)
		return -1;
	e = room_effective(c, rc);
	value_text(&room_keys[k], &e, out, len);
	return 0;
}

int config_dump(const struct config *c, FILE *f)
{
	const char *section = "";
	char v[2 * CONFIG_WELCOME_MAX + 8], sec[5 + CONFIG_NAME_MAX + 1];

	for (size_t i = 0; i < NGLOBAL; i++) {
		if (strcmp(section, global_keys[i].section) != 0) {
			section = global_keys[i].section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
		}
		value_text(&global_keys[i], c, v, sizeof v);
		fprintf(f, "%s = %s\n", global_keys[i].name, v);
	}
	for (size_t r = 0; r < c->nrooms; r++) {
		struct room_conf e = room_effective(c, &c->rooms[r]);

		/* iniparser lowercases section names; the name key keeps its case. */
		snprintf(sec, sizeof sec, "room:%s", e.name);
		for (char *p = sec; *p; p++)
			*p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
		fprintf(f, "\n[%s]\n", sec);
		for (size_t k = 0; k < NROOMKEYS; k++) {
			value_text(&room_keys[k], &e, v, sizeof v);
			fprintf(f, "%s = %s\n", room_keys[k].name, v);
		}
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

/* Bytes of a field of type t (strings: the whole array, whose size is
 * the spec's max + 1 or as laid out in the struct). */
static size_t field_size(const struct key_spec *ks, const struct key_spec *table, size_t n,
			 size_t struct_size)
{
	size_t end = struct_size;

	switch (ks->type) {
	case K_PORT:
		return sizeof(unsigned);
	case K_LONG:
		return sizeof(long);
	case K_BOOL:
	case K_LEVEL:
	case K_SCOPE:
	case K_TARGET:
	case K_TLSMODE:
	case K_TLSVER:
		return sizeof(int);
	default:
		break;
	}
	/* A string array ends where the next field of the table begins. */
	for (size_t i = 0; i < n; i++)
		if (table[i].off > ks->off && table[i].off < end)
			end = table[i].off;
	return end - ks->off;
}

int config_keep_value(struct config *dst, const struct config *src, const char *section,
		      const char *key)
{
	const struct room_conf *rs;
	struct room_conf *rd;
	const struct key_spec *ks;
	int k;

	if (strncmp(section, "room:", 5) != 0) {
		if ((k = find_key(global_keys, NGLOBAL, section, key)) < 0)
			return -1;
		ks = &global_keys[k];
		if (ks->type == K_ADDRS || ks->type == K_HOST || ks->type == K_TEXT || ks->type == K_LISTEN)
			return snprintf((char *)dst + ks->off, field_size(ks, global_keys, NGLOBAL,
					offsetof(struct config, rooms)), "%s", (const char *)src + ks->off) < 0 ? -1 : 0;
		memcpy((char *)dst + ks->off, (const char *)src + ks->off, field_size(ks, NULL, 0, 0));
		return 0;
	}
	rs = room_named(src, section + 5);
	rd = (struct room_conf *)(uintptr_t)room_named(dst, section + 5);
	if (!rs || !rd || (k = find_key(room_keys, NROOMKEYS, NULL, key)) < 0 || k == RK_NAME)
		return -1;
	ks = &room_keys[k];
	if (ks->type == K_TOPIC)
		memcpy(rd->topic, rs->topic, sizeof rd->topic);
	else
		memcpy((char *)rd + ks->off, (const char *)rs + ks->off, field_size(ks, NULL, 0, 0));
	return 0;
}

void config_each_cluster_key(void (*fn)(const char *section, const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < NGLOBAL; i++)
		if (strcmp(global_keys[i].section, "cluster") == 0)
			fn(global_keys[i].section, global_keys[i].name, arg);
}
