/* test_cluster.c - the parts of cluster mode with logic and no Redis: the
 * consistent hash of rooms over shards, the
 * stream entry codec (decode, frame rebuilt with the local ref), the
 * reaping decisions (whose member, an earlier incarnation of this node),
 * and the [cluster] config checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "config.h"
#include "msg.h"
#include "proto.h"

static void test_shard_of(void **state)
{
	unsigned count[4] = { 0 };

	(void)state;
	for (long ref = 1; ref <= 4000; ref++) {
		unsigned s3 = cluster_shard_of(ref, 3), s4 = cluster_shard_of(ref, 4);

		assert_int_equal(cluster_shard_of(ref, 1), 0);
		assert_true(s3 < 3);
		assert_int_equal(s3, cluster_shard_of(ref, 3)); /* deterministic */
		/* Consistent: a fourth shard takes rooms, never moves them elsewhere. */
		assert_true(s4 == s3 || s4 == 3);
		count[s4]++;
	}
	for (int i = 0; i < 4; i++) /* about 1000 each */
		assert_true(count[i] > 800 && count[i] < 1200);
}

/* The fields of an entry as Redis returns them. */
static struct cluster_entry *decode(const char *id, const char *const *kv, size_t pairs, const char *self)
{
	size_t lens[32];

	for (size_t i = 0; i < 2 * pairs; i++)
		lens[i] = strlen(kv[i]);
	return cluster_entry_decode(id, kv, lens, pairs, self);
}

static void test_entry_codec(void **state)
{
	struct proto_chat_layout at, back;
	struct msg *frame = proto_write_chat_at(7, "ann", "hello", 5, &at);
	const char *nl = memchr(frame->data, '\n', frame->len);
	size_t head = (size_t)(nl - frame->data);
	char no[16], nl_s[16], to[16], tl[16];
	struct cluster_entry *e;
	struct msg *again;

	(void)state;
	snprintf(no, sizeof(no), "%zu", at.name_off - head);
	snprintf(nl_s, sizeof(nl_s), "%zu", at.name_len);
	snprintf(to, sizeof(to), "%zu", at.text_off - head);
	snprintf(tl, sizeof(tl), "%zu", at.text_len);
	{
		const char *kv[] = { "s", "42", "t", "m", "b", nl, "no", no, "nl", nl_s, "to", to,
				     "tl", tl, "u", "n1/5/9" };
		e = decode("1700000000123-0", kv, 8, "n1/5");
	}
	assert_non_null(e);
	assert_int_equal(e->kind, CLUSTER_MSG);
	assert_int_equal(e->seq, 42); /* the room's number, counted by Redis */
	assert_int_equal(e->when_ms, 1700000000123LL);
	assert_int_equal(e->join_id, 0);
	/* Rebuilt for a node whose ref is another: only the head differs. */
	again = cluster_entry_frame(e, 7, &back);
	assert_int_equal(again->len, frame->len);
	assert_memory_equal(again->data, frame->data, frame->len);
	assert_int_equal(back.name_off, at.name_off);
	assert_int_equal(back.text_off, at.text_off);
	assert_int_equal(back.text_len, 5);
	msg_unref(&again);
	again = cluster_entry_frame(e, 123456, &back);
	assert_string_equal(again->data, "CHAT: 123456\nCLIENT_NAME: ann\nMESSAGE: hello\n\n");
	assert_memory_equal(again->data + back.name_off, "ann", 3);
	assert_memory_equal(again->data + back.text_off, "hello", 5);
	msg_unref(&again);
	free(e);
	msg_unref(&frame);
}

static void test_entry_join(void **state)
{
	const char *mine[] = { "t", "j", "b", "\nCLIENT_NAME: x\nMESSAGE: x has joined this chatroom.\n\n",
			       "o", "n1/5/4242" };
	const char *other[] = { "t", "j", "b", "\nCLIENT_NAME: x\nMESSAGE: x has joined this chatroom.\n\n",
				"o", "n1/4/4242" };
	struct cluster_entry *e;

	(void)state;
	e = decode("1-0", mine, 3, "n1/5");
	assert_non_null(e);
	assert_int_equal(e->kind, CLUSTER_JOIN);
	assert_int_equal(e->join_id, 4242);
	free(e);
	/* Another incarnation's joiner is nobody this node waits for. */
	e = decode("1-1", other, 3, "n1/5");
	assert_non_null(e);
	assert_int_equal(e->join_id, 0);
	free(e);
	e = decode("1-2", mine, 3, "n1/55"); /* a prefix is not a match */
	assert_non_null(e);
	assert_int_equal(e->join_id, 0);
	free(e);
}

static void test_entry_malformed(void **state)
{
	const char *no_body[] = { "t", "m" , "x", "y" };
	const char *bad_kind[] = { "t", "z", "b", "\nCLIENT_NAME: a\nMESSAGE: b\n\n" };
	const char *bad_body[] = { "t", "n", "b", "CLIENT_NAME: a\n" };
	const char *no_layout[] = { "t", "m", "b", "\nCLIENT_NAME: a\nMESSAGE: b\n\n" };
	const char *out_of_body[] = { "t", "m", "b", "\nCLIENT_NAME: a\n", "no", "14", "nl", "1",
				      "to", "40", "tl", "1" };

	(void)state;
	assert_null(decode("1-0", no_body, 2, "n/1"));
	assert_null(decode("1-0", bad_kind, 2, "n/1"));
	assert_null(decode("1-0", bad_body, 2, "n/1"));
	assert_null(decode("1-0", no_layout, 2, "n/1"));
	assert_null(decode("1-0", out_of_body, 6, "n/1"));
}

static void test_reaping(void **state)
{
	(void)state;
	assert_true(cluster_member_of("n2/17/99", "n2/17"));
	assert_false(cluster_member_of("n2/170/99", "n2/17"));
	assert_false(cluster_member_of("n2/17", "n2/17"));
	/* A restarted node (new incarnation) reaps its own earlier ones at once. */
	assert_true(cluster_earlier_self("n1/100", "n1/200"));
	assert_false(cluster_earlier_self("n1/200", "n1/200"));
	assert_false(cluster_earlier_self("n11/100", "n1/200"));
	assert_false(cluster_earlier_self("n2/100", "n1/200"));
}

/* A reply to an XREAD made for an earlier opening of a room is relayed
 * only past the room's start now (take_xread). */
static void test_stream_id_order(void **state)
{
	(void)state;
	assert_true(cluster_id_after("5-1", "5-0"));
	assert_true(cluster_id_after("6-0", "5-9"));
	assert_true(cluster_id_after("10-0", "9-0")); /* numbers, not text */
	assert_true(cluster_id_after("1-0", "0-0"));
	assert_false(cluster_id_after("5-0", "5-0"));
	assert_false(cluster_id_after("5-0", "5-1"));
	assert_false(cluster_id_after("9-0", "10-0"));
	assert_false(cluster_id_after("x", "0-0"));
	assert_false(cluster_id_after("5-", "0-0"));
	assert_false(cluster_id_after("5-1x", "0-0"));
	assert_false(cluster_id_after("-5-1", "0-0"));
	assert_false(cluster_id_after("99999999999999999999999-0", "0-0")); /* out of range */
}

/* ---- [cluster] config ---- */

static int load(const char *text, struct config *cfg, char *err, size_t errlen)
{
	char path[] = "/tmp/test_cluster_XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	config_defaults(cfg);
	rc = config_load(cfg, path, err, errlen);
	unlink(path);
	return rc;
}

static void test_config(void **state)
{
	char host[CONFIG_CLUSTER_SHARDS][CONFIG_HOST_MAX], err[1024];
	unsigned port[CONFIG_CLUSTER_SHARDS];
	struct config cfg;

	(void)state;
	assert_int_equal(config_cluster_shards("127.0.0.1:6380", host, port, 16), 1);
	assert_string_equal(host[0], "127.0.0.1");
	assert_int_equal(port[0], 6380);
	assert_int_equal(config_cluster_shards("a:1, redis.example:7000 ,b:65535", host, port, 16), 3);
	assert_string_equal(host[1], "redis.example");
	assert_int_equal(port[1], 7000);
	assert_int_equal(port[2], 65535);
	assert_int_equal(config_cluster_shards("a", host, port, 16), -1);
	assert_int_equal(config_cluster_shards("a:0", host, port, 16), -1);
	assert_int_equal(config_cluster_shards("a:1,", host, port, 16), -1);
	assert_int_equal(config_cluster_shards("a:1,b:2", host, port, 1), -1);

	assert_int_equal(load("[server]\nport = 7000\n", &cfg, err, sizeof(err)), 0);
	assert_false(config_clustered(&cfg));
	config_fini(&cfg);
	assert_int_equal(load("[cluster]\nredis = 127.0.0.1:6380\nnode_id = n1\n", &cfg, err, sizeof(err)), 0);
	assert_true(config_clustered(&cfg));
	assert_string_equal(cfg.cluster_node_id, "n1");
	config_fini(&cfg);
	assert_int_equal(load("[cluster]\nredis = 127.0.0.1:6380\ntls = on\n", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not supported yet"));
	assert_int_equal(load("[cluster]\nredis = nohost\n", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "HOST:PORT"));
	assert_int_equal(load("[cluster]\nnode_id = n1\n", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "needs redis"));
	assert_int_equal(load("[cluster]\nredis = h:1\nnode_id = a/b\n", &cfg, err, sizeof(err)), -1);
	assert_int_equal(load("[server]\ndatabase = x.db\n[cluster]\nredis = h:1\n", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "SQLite store"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shard_of),
		cmocka_unit_test(test_entry_codec),
		cmocka_unit_test(test_entry_join),
		cmocka_unit_test(test_entry_malformed),
		cmocka_unit_test(test_reaping),
		cmocka_unit_test(test_stream_id_order),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
