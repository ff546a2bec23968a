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
#include "session.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 9000

enum { EXIT_USAGE = 2 };
enum args_result { ARGS_RUN, ARGS_DONE, ARGS_BAD };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: roomc [-h HOST] [-p PORT] [-n NAME]\n"
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

static int parse_port(const char *s, unsigned *port)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return -1;
	*port = (unsigned)v;
	return 0;
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

static enum args_result parse_args(int argc, char **argv, struct session_params *p)
{
	enum { OPT_HELP = 1000, OPT_VERSION, OPT_RECONNECT, OPT_NO_RECONNECT };
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "reconnect", no_argument, NULL, OPT_RECONNECT },
		{ "no-reconnect", no_argument, NULL, OPT_NO_RECONNECT },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h:p:n:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': p->host = optarg; break;
		case 'p':
			if (parse_port(optarg, &p->port) < 0)
				return bad_usage("invalid port (1-65535)", optarg);
			break;
		case 'n': p->name = optarg; break;
		case OPT_HELP: usage(stdout); return ARGS_DONE;
		case OPT_VERSION: printf("roomc %s\n", ROOMD_VERSION); return ARGS_DONE;
		case OPT_RECONNECT: p->no_reconnect = 0; break;
		case OPT_NO_RECONNECT: p->no_reconnect = 1; break;
		default: return bad_usage(NULL, NULL); /* getopt said why */
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument", argv[optind]);
	if (!p->name)
		p->name = login_name();
	if (!p->name)
		return bad_usage("no login name known: give one with -n NAME", NULL);
	if (!name_ok(p->name))
		return bad_usage("invalid name", p->name);
	if (!*p->host)
		return bad_usage("empty host name", NULL);
	return ARGS_RUN;
}

int main(int argc, char **argv)
{
	struct session_params p = { .host = DEFAULT_HOST, .port = DEFAULT_PORT, .no_reconnect = -1 };
	struct session *s;
	int fd, rc;

	switch (parse_args(argc, argv, &p)) {
	case ARGS_DONE: return EXIT_SUCCESS;
	case ARGS_BAD: return EXIT_USAGE;
	case ARGS_RUN: break;
	}
	/* A person at a terminal wants the session back after a daemon
	 * restart; a script on a pipe wants today's behaviour: the run ends,
	 * with a status, instead of waiting for a daemon that may never come. */
	if (p.no_reconnect < 0)
		p.no_reconnect = !isatty(STDIN_FILENO);
	/* Timestamps on a terminal; colour too unless NO_COLOR is set to
	 * anything non-empty (https://no-color.org). A pipe gets plain lines. */
	if (isatty(STDOUT_FILENO)) {
		const char *nc = getenv("NO_COLOR");
		output_init(1, !(nc && *nc));
	}
	fd = net_connect(p.host, p.port);
	if (fd < 0) {
		fprintf(stderr, "roomc: cannot connect to %s%s%s:%u: %s\n",
			strchr(p.host, ':') ? "[" : "", p.host, strchr(p.host, ':') ? "]" : "",
			p.port, fd == -ENOENT ? "host not found" : strerror(-fd));
		return EXIT_FAILURE;
	}
	rc = session_create(&p, fd, &s);
	if (rc < 0) {
		fprintf(stderr, "roomc: cannot start: %s\n", strerror(-rc));
		return EXIT_FAILURE;
	}
	rc = session_run(s);
	session_destroy(s);
	return rc;
}
