/* main.c - roomc, the roomd terminal client: options, the connection to the
 * daemon, the output's decorations, exit status.
 *
 * Runs on the main thread before any other exists; the session it starts
 * owns every thread and descriptor after that. Exit status: 0 after a clean
 * disconnect (command, end of input, Ctrl-C), 1 when the daemon cannot be
 * reached at the start or the connection drops without reconnecting (on a
 * terminal, or with --reconnect, it is retried: session.c), 2 for a usage
 * error. */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "output.h"
#include "rcfile.h"
#include "session.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 9000

enum { EXIT_USAGE = 2 };
enum args_result { ARGS_RUN, ARGS_DONE, ARGS_BAD };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: roomc [-h HOST] [-p PORT] [-n NAME] [--config FILE | --no-config]\n"
		"             [--tls [--cafile FILE | --insecure]]\n"
		"       roomc --help | --version\n"
		"Chat client for roomd: reads commands from stdin, one a line\n"
		"(join ROOM, send ROOM MESSAGE..., leave_chatroom ROOM, rooms, who ROOM,\n"
		"msg NAME MESSAGE..., history ROOM, topic ROOM [TEXT...], room ROOM,\n"
		"say MESSAGE..., disconnect, help). On a terminal a plain line goes to\n"
		"the current room (the prompt names it).\n"
		"On a terminal: line editing, history, Tab completion, timestamps and\n"
		"colours (none when NO_COLOR is set); Ctrl-C or Ctrl-D disconnects.\n"
		"  -h, --host HOST   the daemon's host name or address (default %s)\n"
		"  -p, --port PORT   its control port (default %d)\n"
		"  -n, --name NAME   your name in the rooms (default: your login name)\n"
		"      --reconnect   when the connection drops, reconnect and rejoin\n"
		"                    (the default when stdin is a terminal)\n"
		"      --no-reconnect  exit instead (the default for a script on a pipe)\n"
		"      --config FILE  defaults for these options and rooms to join at the\n"
		"                    start (default: $XDG_CONFIG_HOME/roomc/config, else\n"
		"                    ~/.config/roomc/config; options given here win)\n"
		"      --no-config   read no config file\n"
		"      --tls         speak TLS to the daemon (its [tls] mode optional or\n"
		"                    required), room ports too. The server is verified\n"
		"                    against the system's CAs and HOST; a certificate no\n"
		"                    known CA signed (self-signed) is trusted on first use:\n"
		"                    its SHA-256 fingerprint is shown once and remembered in\n"
		"                    $XDG_CONFIG_HOME/roomc/known_servers (else\n"
		"                    ~/.config/roomc/known_servers); a changed one is refused\n"
		"      --cafile FILE  verify against the CA certificates in FILE (PEM)\n"
		"                    instead of the system's (implies --tls)\n"
		"      --insecure    TLS without checking the server at all: the traffic is\n"
		"                    encrypted, but anyone between you and the daemon can\n"
		"                    pose as it and read everything (implies --tls)\n"
		"      --help        this text\n"
		"      --version     the version\n"
		"Exit status: 0 after a disconnect, end of input or Ctrl-C, 1 when the daemon\n"
		"cannot be reached at the start or the connection drops without\n"
		"--reconnect, 2 for bad usage.\n",
		DEFAULT_HOST, DEFAULT_PORT);
}

static enum args_result bad_usage(const char *what, const char *arg)
{
	if (what)
		fprintf(stderr, "roomc: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	fprintf(stderr, "Try 'roomc --help'.\n");
	return ARGS_BAD;
}

/* A name we can put on the wire: one line without control characters, and
 * no surrounding blanks (the server would trim them, and then our own
 * messages would not look like ours). The server judges the rest. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
		return 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return 0;
	return 1;
}

/* The login name when -n is omitted: the session's login, else the account
 * of the effective user, else $USER. NULL when none is known. */
static const char *login_name(void)
{
	static char buf[256];
	const struct passwd *pw;
	const char *user;

	if (getlogin_r(buf, sizeof(buf)) == 0 && buf[0])
		return buf;
	pw = getpwuid(geteuid());
	if (pw && pw->pw_name && pw->pw_name[0] && strlen(pw->pw_name) < sizeof(buf)) {
		strcpy(buf, pw->pw_name);
		return buf;
	}
	user = getenv("USER");
	return user && *user ? user : NULL;
}

/* The config file's values where the command line left a gap. A missing
 * default file is no error; a missing --config FILE is. */
static enum args_result apply_rcfile(const char *path, struct rcfile *rc,
				     struct session_params *p, int port_given)
{
	char defpath[4096], err[512];
	int rv;

	if (!path)
		path = rcfile_default_path(defpath, sizeof(defpath));
	if (!*path)
		return ARGS_RUN;
	rv = rcfile_load(path, path == defpath, rc, err, sizeof(err));
	if (rv == 1)
		return ARGS_RUN;
	if (rv < 0)
		return bad_usage(err, NULL);
	if (!p->host && rc->host)
		p->host = rc->host;
	if (!port_given && rc->port)
		p->port = rc->port;
	if (!p->name && rc->name)
		p->name = rc->name;
	if (p->no_reconnect < 0 && rc->reconnect >= 0)
		p->no_reconnect = !rc->reconnect;
	p->autojoin = rc->rooms;
	p->nautojoin = rc->nrooms;
	return ARGS_RUN;
}

static enum args_result parse_args(int argc, char **argv, struct session_params *p,
				   struct rcfile *rc)
{
	enum { OPT_HELP = 1000, OPT_VERSION, OPT_RECONNECT, OPT_NO_RECONNECT, OPT_CONFIG,
	       OPT_NO_CONFIG, OPT_TLS, OPT_CAFILE, OPT_INSECURE };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "reconnect", no_argument, NULL, OPT_RECONNECT },
		{ "no-reconnect", no_argument, NULL, OPT_NO_RECONNECT },
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "no-config", no_argument, NULL, OPT_NO_CONFIG },
		{ "tls", no_argument, NULL, OPT_TLS },
		{ "cafile", required_argument, NULL, OPT_CAFILE },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	int c, no_config = 0, port_given = 0;

	while ((c = getopt_long(argc, argv, "h:p:n:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': p->host = optarg; break;
		case 'p':
			if (net_parse_port(optarg, &p->port) < 0)
				return bad_usage("invalid port (1-65535)", optarg);
			port_given = 1;
			break;
		case 'n': p->name = optarg; break;
		case OPT_HELP: usage(stdout); return ARGS_DONE;
		case OPT_VERSION: printf("roomc %s\n", ROOMD_VERSION); return ARGS_DONE;
		case OPT_RECONNECT: p->no_reconnect = 0; break;
		case OPT_NO_RECONNECT: p->no_reconnect = 1; break;
		case OPT_CONFIG: config = optarg; break;
		case OPT_NO_CONFIG: no_config = 1; break;
		case OPT_TLS: p->tls.on = 1; break;
		case OPT_CAFILE: p->tls.on = 1; p->tls.cafile = optarg; break;
		case OPT_INSECURE: p->tls.on = 1; p->tls.insecure = 1; break;
		default: return bad_usage(NULL, NULL); /* getopt said why */
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (config && no_config)
		return bad_usage("--config and --no-config together", NULL);
	if (p->tls.cafile && p->tls.insecure)
		return bad_usage("--cafile and --insecure together", NULL);
	if (!no_config && apply_rcfile(config, rc, p, port_given) == ARGS_BAD)
		return ARGS_BAD;
	if (!p->host)
		p->host = DEFAULT_HOST;
	if (!p->name)
		p->name = login_name();
	if (!p->name)
		return bad_usage("no login name known: give one with -n NAME", NULL);
	if (!name_ok(p->name))
		return bad_usage("invalid name", p->name);
	if (!*p->host)
		return bad_usage("empty host name", NULL);
	p->tls.host = p->host;
	p->tls.port = p->port;
	return ARGS_RUN;
}

/* Connect and run the session; the exit status. */
static int connect_and_run(struct session_params *p)
{
	struct session *s;
	int fd, rc;

	/* A person at a terminal wants the session back after a daemon
	 * restart; a script on a pipe wants today's behaviour: the run ends,
	 * with a status, instead of waiting for a daemon that may never come. */
	if (p->no_reconnect < 0)
		p->no_reconnect = !isatty(STDIN_FILENO);
	/* Timestamps on a terminal; colour too unless NO_COLOR is set to
	 * anything non-empty (https://no-color.org). A pipe gets plain lines. */
	if (isatty(STDOUT_FILENO)) {
		const char *nc = getenv("NO_COLOR");
		output_init(1, !(nc && *nc));
	}
	fd = net_connect(p->host, p->port);
	if (fd < 0) {
		fprintf(stderr, "roomc: cannot connect to %s%s%s:%u: %s\n",
			strchr(p->host, ':') ? "[" : "", p->host, strchr(p->host, ':') ? "]" : "",
			p->port, fd == -ENOENT ? "host not found" : strerror(-fd));
		return EXIT_FAILURE;
	}
	if (p->tls.insecure)
		fprintf(stderr, "roomc: --insecure: the server's certificate is not checked: anyone between "
			"you and %s can pose as it and read and change everything\n", p->host);
	rc = session_create(p, fd, &s);
	if (rc < 0) {
		fprintf(stderr, "roomc: cannot start: %s\n", strerror(-rc));
		return EXIT_FAILURE;
	}
	rc = session_run(s);
	session_destroy(s);
	return rc;
}

int main(int argc, char **argv)
{
	struct session_params p = { .port = DEFAULT_PORT, .no_reconnect = -1 };
	struct rcfile conf = { .reconnect = -1 }; /* p points into it: freed last */
	int rc;

	switch (parse_args(argc, argv, &p, &conf)) {
	case ARGS_DONE: rc = EXIT_SUCCESS; break;
	case ARGS_BAD: rc = EXIT_USAGE; break;
	default: rc = connect_and_run(&p); break;
	}
	rcfile_free(&conf);
	return rc;
}
