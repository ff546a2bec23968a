/* main.c - roomd's entry point: command line, config, logging, then the
 * acceptor loop on this (the main) thread until a signal or KILL_SERVICE.
 * Exits non-zero only for start-up failures. */
#include "acceptor.h"
#include "config.h"
#include "log.h"
#include "registry.h"

#include <errno.h>
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONFIG "conf/rooms.ini"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: roomd [-p PORT] [-c FILE] [-t] [-v LEVEL]\n"
		"\n"
		"A multi-room chat daemon speaking the CS4032 chat protocol.\n"
		"\n"
		"  -p, --port PORT     control port (overrides [server] port; 0 = any free port)\n"
		"  -c, --config FILE   configuration file (default: %s)\n"
		"  -t, --check         validate the configuration and exit (0 when valid)\n"
		"  -v, --log-level L   error, warn, info or debug (overrides [server] log_level)\n"
		"      --help          show this help and exit\n"
		"      --version       show the version and exit\n"
		"\n"
		"SIGINT or SIGTERM: stop gracefully (exit 0). Logs go to stderr.\n"
		"Protocol: docs/PROTOCOL.md. Every config key: conf/rooms.ini.\n",
		DEFAULT_CONFIG);
}

struct options {
	const char *config;
	long port;      /* -1: from the config */
	int check;
	int log_level;  /* -1: from the config */
};

/* Returns -1 to exit 0 (help, version), 0 to go on, 1 for a usage error. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 't' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	*o = (struct options){ DEFAULT_CONFIG, -1, 0, -1 };
	while ((ch = getopt_long(argc, argv, "p:c:tv:", longopts, NULL)) != -1) {
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

int main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct registry *reg;
	struct acceptor *acc;
	char err[4096];
	int rc = parse_options(argc, argv, &o);

	if (rc != 0)
		return rc < 0 ? 0 : 2;
	config_defaults(&cfg);
	if (config_load(&cfg, o.config, err, sizeof(err)) < 0) {
		fprintf(stderr, "roomd: invalid configuration:\n%s\n", err);
		return 1;
	}
	if (o.check) {
		printf("%s: configuration OK (%zu rooms defined)\n", o.config, cfg.nrooms);
		config_fini(&cfg);
		return 0;
	}
	if (o.port >= 0)
		cfg.port = (unsigned)o.port;
	log_set_level(o.log_level >= 0 ? o.log_level : cfg.log_level);
	log_info("roomd %s starting, config %s", ROOMD_VERSION, o.config);
	raise_fd_limit(&cfg);

	reg = registry_create(&cfg);
	acc = reg ? acceptor_create(&cfg, reg, cfg.port) : NULL;
	if (!acc) {
		registry_destroy(reg);
		config_fini(&cfg);
		return 1;
	}
	rc = acceptor_run(acc);
	acceptor_destroy(acc);
	registry_destroy(reg);
	config_fini(&cfg);
	log_info("roomd stopped");
	return rc == 0 ? 0 : 1;
}
